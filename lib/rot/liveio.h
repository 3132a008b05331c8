/* The live I/O of reconcile (rot/reconcile.h): the Secret from the informer's
 * cache, identities from the controller and the ServiceAccount registry,
 * tokens from the shared token cache, login checks through the shared check
 * cache, writes, restarts and Events through the worker's API connection. */
#ifndef PGTR_LIVEIO_H
#define PGTR_LIVEIO_H

#include "idp/sareg.h"
#include "idp/tokcache.h"
#include "kube/event.h"
#include "kube/kclient.h"
#include "kube/store.h"
#include "pg/pgcheck.h"
#include "rot/reconcile.h"

/* Shared by every worker; all of it outlives them. */
struct liveio_deps {
    struct store *store;
    struct event_recorder *events;
    struct tokcache *tokens;
    struct idp *idp;              /* the controller's own identity; NULL: none */
    struct sareg *sas;            /* ServiceAccount identities */
    const char *scope;
    struct pg_check_cache *pg;
    struct pg_check_opts pg_opts;
    struct rot_stats *stats;      /* login checks made, by class, and their latency */
};

/* One worker's I/O: the deps and its API connection. */
struct liveio {
    const struct liveio_deps *d;
    struct kube_conn *k;
};

/* Fills *out to act through l (which must outlive *out) with d and k. */
void liveio_init(struct reconcile_io *out, struct liveio *l, const struct liveio_deps *d,
                 struct kube_conn *k);

/* The Secret key is gone: drops what the I/O keeps for it (Event aggregation). */
void liveio_forget(const struct liveio_deps *d, const char *key);

#endif
