/* List then watch Secrets, as an informer does: page through a list with the
 * label selector, remember its resourceVersion, watch from there with
 * bookmarks, resume from the last version seen after a dropped stream, and
 * relist when the server says the version is gone (410). The store follows
 * what the server says; the handler hears of every change. Only Secrets that
 * match the selector reach this process, so memory does not grow with the
 * rest of the cluster. */
#ifndef PGTR_WATCH_H
#define PGTR_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kube/kclient.h"
#include "kube/store.h"

struct watch_opts {
    const char *ns;              /* NULL: all namespaces */
    const char *label_selector;  /* e.g. "pgtoken.io/managed=true" */
    long timeout_s;              /* server-side watch timeout; default 300 (jittered) */
    long idle_timeout_s;         /* no byte for this long: reconnect; default 120 */
    int page_size;               /* list chunk; default 100 */
    long relist_s;               /* a complete list again this often; 0: only after a 410 */
    long backoff_base_ms;        /* default 500 */
    long backoff_cap_ms;         /* default 30000 */
    const struct kube_secret_keep *keep; /* annotations the store keeps; NULL: all */
};

struct watch_handler {
    void (*on_upsert)(void *ctx, const char *key, bool changed);
    void (*on_delete)(void *ctx, const char *key);
    void (*on_synced)(void *ctx); /* after the first complete list */
    /* After every complete list (the first and each relist), once the store holds
     * exactly what it returned; may be NULL. */
    void (*on_listed)(void *ctx);
    void *ctx;
};

struct watch_stats {
    atomic_long lists;     /* complete lists (the first, and every relist) */
    atomic_long restarts;  /* watch streams opened after the first */
    atomic_long events;
    atomic_long gone;      /* 410s that forced a relist */
    atomic_long relist_found; /* Secrets a relist found that the cache lacked */
};

/* Runs until *stop is true; returns 0 then. Errors are logged and retried
 * with backoff, never returned: the controller keeps running. */
int watch_run(struct kube_conn *k, struct store *st, const struct watch_opts *o,
              const struct watch_handler *h, const atomic_bool *stop, struct watch_stats *stats);

#define WATCH_RV_MAX 64 /* bytes of a resourceVersion we keep, NUL included */

/* Handles one line of a watch stream (a JSON watch event, without its newline) exactly as
 * watch_run does: ADDED and MODIFIED upsert the Secret into st, DELETED removes it, and h hears
 * of it; these and BOOKMARK move rv (the NUL-terminated version a resumed watch starts from);
 * an event of another type is ignored. 0; ERR_GONE for a 410 ERROR event (relist);
 * ERR_UNAVAILABLE for another ERROR event; ERR_PARSE (ERR_TOOBIG over 4 MiB) when the line is
 * not an event (reconnect). Exposed for tests and fuzzing. */
int watch_parse_event(struct store *st, const struct watch_handler *h, struct watch_stats *stats,
                      char rv[WATCH_RV_MAX], const char *line, size_t len);

#endif
