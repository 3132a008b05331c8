/* The cache of managed Secrets, keyed "namespace/name", filled by the watch
 * and read by reconcile workers. Thread-safe. Holds only what struct
 * kube_secret holds: no secret values. An entry costs its Secret's one
 * allocation and about two pointers of hash table: keys are not copied. */
#ifndef PGTR_STORE_H
#define PGTR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kube/secret.h"

struct store;

struct store *store_new(void);
void store_free(struct store *st);

/* Every entry carries its owner's planned time: when the entry must be looked at
 * next (CLOCK_MONOTONIC milliseconds, clock_mono_ms). STORE_DUE_NEVER: only when it
 * changes. The planned times are what a periodic resync reads to find an entry that
 * was forgotten (store_each_due), whatever lost it. */
#define STORE_DUE_NEVER INT64_MAX

/* Takes ownership of s. Returns true when the entry is new or its
 * resourceVersion changed (a reconcile is worth queueing), except to the
 * resourceVersion store_expect named for it: that is the owner's own write
 * coming back. A changed entry is planned for now; an unchanged one keeps its
 * planned time. */
bool store_upsert(struct store *st, struct kube_secret *s);
/* The owner wrote key and the API server answered with resourceVersion rv: when
 * the watch brings key at rv, store_upsert reports it unchanged (its reconcile
 * already ran: the write was the outcome of it). Kept until key comes again,
 * whatever its version, or goes. Nothing when key is not cached or already
 * holds rv (the watch was first), or rv is empty, or 1,024 other writes await
 * their echo (a lagging watch: those are reconciled once more). */
void store_expect(struct store *st, const char *key, const char *rv);
/* Sets key's planned time (monotonic ms or STORE_DUE_NEVER); nothing when key
 * is not cached. */
void store_set_due(struct store *st, const char *key, int64_t due_ms);
/* Calls fn (NULL: none) for the key of every entry planned at or before
 * before_ms, under the lock (fn must not call the store); returns how many
 * there are. */
size_t store_each_due(struct store *st, int64_t before_ms,
                      void (*fn)(void *ctx, const char *key), void *ctx);
/* Whether key is cached. */
bool store_has(struct store *st, const char *key);
/* Removes key; true if it was there. */
bool store_delete(struct store *st, const char *key);
/* 0: *out is a copy (kube_secret_free it); ERR_NOTFOUND otherwise. */
int store_get(struct kube_secret **out, struct store *st, const char *key);
size_t store_len(struct store *st);

/* Relist: marks every entry of namespace ns (NULL: all) stale, then
 * store_upsert()s clear the mark; store_sweep() removes what is still stale
 * and calls on_removed for each removed key. */
void store_mark(struct store *st, const char *ns);
void store_sweep(struct store *st, void (*on_removed)(void *ctx, const char *key), void *ctx);

/* Calls fn for every key (under the lock: fn must not call the store). */
void store_each_key(struct store *st, void (*fn)(void *ctx, const char *key), void *ctx);
/* Calls fn for every Secret, borrowed for the call (under the lock: fn must not
 * call the store, nor keep s). For scrape-time readers such as metrics. */
void store_each(struct store *st, void (*fn)(void *ctx, const struct kube_secret *s), void *ctx);

#endif
