#include "kube/store.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/banned.h"

#define STALE 1 /* kube_secret.store_mark: not seen by the relist in progress */

/* An open-addressing table (linear probing, backward-shift deletion) of the
 * Secrets themselves: the key "namespace/name" is read from each entry, never
 * copied, so an entry costs the Secret and two pointers of table. */
struct store {
    pthread_mutex_t mu;
    struct kube_secret **slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
};

static uint64_t hash_parts(const char *ns, size_t ns_len, const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (size_t i = 0; i < ns_len; i++)
        h = (h ^ (unsigned char)ns[i]) * 1099511628211ull;
    h = (h ^ (unsigned char)'/') * 1099511628211ull;
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_secret(const struct kube_secret *s)
{
    return hash_parts(s->ns, strlen(s->ns), s->name);
}

/* Splits "ns/name" (the namespace has no '/'); false when there is no '/'. */
static bool split_key(const char *key, const char **name, size_t *ns_len)
{
    const char *slash = strchr(key, '/');

    if (!slash)
        return false;
    *ns_len = (size_t)(slash - key);
    *name = slash + 1;
    return true;
}

static bool matches(const struct kube_secret *s, const char *ns, size_t ns_len, const char *name)
{
    return !strncmp(s->ns, ns, ns_len) && s->ns[ns_len] == '\0' && !strcmp(s->name, name);
}

/* The slot holding ns/name, or the empty slot where it would go. */
static size_t find(const struct store *st, const char *ns, size_t ns_len, const char *name)
{
    size_t mask = st->cap - 1, i = (size_t)hash_parts(ns, ns_len, name) & mask;

    while (st->slots[i] && !matches(st->slots[i], ns, ns_len, name))
        i = (i + 1) & mask;
    return i;
}

static void grow(struct store *st)
{
    size_t ncap = st->cap ? st->cap * 2 : 64;
    struct kube_secret **old = st->slots;
    size_t ocap = st->cap;

    st->slots = xcalloc(ncap, sizeof(struct kube_secret *));
    st->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i])
            continue;
        size_t j = (size_t)hash_secret(old[i]) & (ncap - 1);
        while (st->slots[j])
            j = (j + 1) & (ncap - 1);
        st->slots[j] = old[i];
    }
    free(old);
}

/* Removes slot i, shifting back the entries that probed past it. */
static struct kube_secret *remove_at(struct store *st, size_t i)
{
    struct kube_secret *gone = st->slots[i];
    size_t mask = st->cap - 1, j = i;

    st->slots[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!st->slots[j])
            break;
        size_t home = (size_t)hash_secret(st->slots[j]) & mask;
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            st->slots[i] = st->slots[j];
            st->slots[j] = NULL;
            i = j;
        }
    }
    st->len--;
    return gone;
}

struct store *store_new(void)
{
    struct store *st = xcalloc(1, sizeof(*st));

    pthread_mutex_init(&st->mu, NULL);
    return st;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->cap; i++)
        kube_secret_free(st->slots[i]);
    free(st->slots);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

bool store_upsert(struct store *st, struct kube_secret *s)
{
    size_t i;
    bool changed = true;

    s->store_mark = 0;
    s->store_due_ms = clock_mono_ms();
    pthread_mutex_lock(&st->mu);
    if ((st->len + 1) * 4 > st->cap * 3) /* at most 3/4 full */
        grow(st);
    i = find(st, s->ns, strlen(s->ns), s->name);
    if (st->slots[i]) {
        changed = strcmp(st->slots[i]->rv, s->rv) != 0;
        if (!changed)
            s->store_due_ms = st->slots[i]->store_due_ms;
        kube_secret_free(st->slots[i]);
    } else {
        st->len++;
    }
    st->slots[i] = s;
    pthread_mutex_unlock(&st->mu);
    return changed;
}

void store_set_due(struct store *st, const char *key, int64_t due_ms)
{
    const char *name;
    size_t ns_len;

    if (!split_key(key, &name, &ns_len))
        return;
    pthread_mutex_lock(&st->mu);
    if (st->cap) {
        size_t i = find(st, key, ns_len, name);
        if (st->slots[i])
            st->slots[i]->store_due_ms = due_ms;
    }
    pthread_mutex_unlock(&st->mu);
}

size_t store_each_due(struct store *st, int64_t before_ms,
                      void (*fn)(void *ctx, const char *key), void *ctx)
{
    char key[KUBE_SECRET_NAMESPACE_MAX + 1 + KUBE_SECRET_NAME_MAX + 1];
    size_t n = 0;

    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->cap; i++) {
        const struct kube_secret *s = st->slots[i];
        if (!s || s->store_due_ms > before_ms)
            continue;
        n++;
        if (fn) {
            snprintf(key, sizeof(key), "%s/%s", s->ns, s->name);
            fn(ctx, key);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

bool store_delete(struct store *st, const char *key)
{
    struct kube_secret *gone = NULL;
    const char *name;
    size_t ns_len;

    if (!split_key(key, &name, &ns_len))
        return false;
    pthread_mutex_lock(&st->mu);
    if (st->cap) {
        size_t i = find(st, key, ns_len, name);
        if (st->slots[i])
            gone = remove_at(st, i);
    }
    pthread_mutex_unlock(&st->mu);
    kube_secret_free(gone);
    return gone != NULL;
}

bool store_has(struct store *st, const char *key)
{
    const char *name;
    size_t ns_len;
    bool has = false;

    if (!split_key(key, &name, &ns_len))
        return false;
    pthread_mutex_lock(&st->mu);
    if (st->cap)
        has = st->slots[find(st, key, ns_len, name)] != NULL;
    pthread_mutex_unlock(&st->mu);
    return has;
}

int store_get(struct kube_secret **out, struct store *st, const char *key)
{
    struct kube_secret *s = NULL;
    const char *name;
    size_t ns_len;

    if (split_key(key, &name, &ns_len)) {
        pthread_mutex_lock(&st->mu);
        if (st->cap) {
            size_t i = find(st, key, ns_len, name);
            if (st->slots[i])
                s = kube_secret_dup(st->slots[i]);
        }
        pthread_mutex_unlock(&st->mu);
    }
    if (!s)
        return err_set(ERR_NOTFOUND, "Secret %s is not in the cache", key);
    *out = s;
    return 0;
}

size_t store_len(struct store *st)
{
    size_t n;

    pthread_mutex_lock(&st->mu);
    n = st->len;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void store_mark(struct store *st, const char *ns)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->cap; i++)
        if (st->slots[i] && (!ns || !strcmp(st->slots[i]->ns, ns)))
            st->slots[i]->store_mark = STALE;
    pthread_mutex_unlock(&st->mu);
}

void store_sweep(struct store *st, void (*on_removed)(void *ctx, const char *key), void *ctx)
{
    struct kube_secret **gone = NULL;
    size_t ngone = 0, capgone = 0;
    const size_t elem = sizeof(struct kube_secret *);

    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->cap;) {
        if (st->slots[i] && st->slots[i]->store_mark == STALE) {
            xgrow((void **)&gone, &capgone, ngone + 1, elem);
            gone[ngone++] = remove_at(st, i); /* slot i may hold a shifted entry now */
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < ngone; i++) {
        char *key = kube_secret_key(gone[i]);
        if (on_removed)
            on_removed(ctx, key);
        free(key);
        kube_secret_free(gone[i]);
    }
    free(gone);
}

void store_each_key(struct store *st, void (*fn)(void *ctx, const char *key), void *ctx)
{
    (void)store_each_due(st, STORE_DUE_NEVER, fn, ctx); /* every entry is due by never */
}

void store_each(struct store *st, void (*fn)(void *ctx, const struct kube_secret *s), void *ctx)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->cap; i++)
        if (st->slots[i])
            fn(ctx, st->slots[i]);
    pthread_mutex_unlock(&st->mu);
}
