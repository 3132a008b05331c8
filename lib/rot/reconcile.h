/* Reconcile one managed Secret: read its current state from the cache, decide
 * (rot/policy.h, pure), and when a rotation is due: mint (or take the shared)
 * token -> prove it logs in -> patch the Secret's owned keys and status
 * annotations in one write with optimistic concurrency. Level-triggered: what
 * the event said does not matter, only what the Secret is now.
 *
 * Never writes a token that failed its login check (mode "required"; with
 * "best-effort" only a server's outright rejection stops the write). Errors
 * become an Event and the pgtoken.io/status.last-error annotation on the
 * Secret, and a retry with backoff that never waits past the current token's
 * usefulness. */
#ifndef PGTR_RECONCILE_H
#define PGTR_RECONCILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/latency_hist.h"
#include "idp/idp.h"
#include "idp/sa.h"
#include "idp/tokcache.h"
#include "kube/event.h"
#include "kube/kclient.h"
#include "kube/store.h"
#include "pg/pgcheck.h"
#include "rot/policy.h"
#include "rot/spec.h"

#define STATUS_ISSUED_AT "pgtoken.io/status.issued-at"
#define STATUS_EXPIRES_AT "pgtoken.io/status.expires-at"
#define STATUS_ROTATE_AT "pgtoken.io/status.rotate-at"
#define STATUS_ROTATED_AT "pgtoken.io/status.rotated-at"
#define STATUS_SPEC_HASH "pgtoken.io/status.spec-hash"
#define STATUS_IDENTITY "pgtoken.io/status.identity"
#define STATUS_LAST_ERROR "pgtoken.io/status.last-error"
#define STATUS_LAST_ERROR_AT "pgtoken.io/status.last-error-at"
#define STATUS_FORCE_ROTATE "pgtoken.io/status.force-rotate" /* last force-rotate handled */

struct rot_stats {
    atomic_long rotations;        /* Secrets written with a new token */
    atomic_long rotation_failures;
    atomic_long noop;             /* rotations that found nothing to change */
    atomic_long invalid;          /* InvalidConfig */
    atomic_long conflicts;        /* 409 on our write: re-read and retried */
    atomic_long restarts;         /* workloads rolled after a write */
    atomic_long login[5];         /* by enum pg_login */
    struct latency_hist login_latency; /* the checks counted in login[] */
};

struct rot_failures;
struct idp_registry;

/* Identities of ServiceAccounts named by Secrets, created on first use and
 * kept (one per ServiceAccount and client id) so that their tokens are
 * cached and shared like the controller's own. Thread-safe. */
struct idp_registry *idp_registry_new(void);
void idp_registry_free(struct idp_registry *r);

struct rot_failures *rot_failures_new(void);
void rot_failures_free(struct rot_failures *f);

struct reconcile_ctx {
    struct store *store;
    struct event_recorder *events;
    struct tokcache *tokens;
    struct idp *idp;               /* the controller's own identity; NULL: none */
    bool allow_controller_identity; /* false: every Secret must name a ServiceAccount */
    struct idp_registry *idps;     /* per-ServiceAccount identities */
    struct kube_client *kube;      /* for ServiceAccount identities' TokenRequests */
    const char *tenant_id;         /* default tenant for ServiceAccount identities */
    const char *authority_host;
    bool allow_http_authority;
    const char *scope;
    struct pg_check_cache *pg;
    struct pg_check_opts pg_opts;
    enum spec_login_check login_check; /* default when the Secret does not say */
    struct policy_cfg policy;
    struct rot_failures *failures;
    struct rot_stats *stats;
    /* Each failure, by its Event reason ("TokenFailed", "LoginFailed",
     * "InvalidConfig", "WriteFailed"); may be NULL. For metrics. */
    void (*on_failure)(void *ctx, const char *reason);
    void *hook_ctx;
};

struct reconcile_result {
    int64_t requeue_after_ms; /* 0: nothing scheduled (wait for a change) */
};

/* Reconciles the Secret "namespace/name". Returns 0 when it reached a
 * decision (including "the configuration is invalid: wait for the user"),
 * or a negative code when the attempt failed and will be retried after
 * out->requeue_after_ms. Uses k for API calls (the worker's connection). */
int reconcile_secret(struct reconcile_result *out, const struct reconcile_ctx *ctx,
                     struct kube_conn *k, const char *key);

/* The Secret is gone from the cache: drop per-Secret state. */
void reconcile_forget(const struct reconcile_ctx *ctx, const char *key);

#endif
