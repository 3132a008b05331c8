/* Reconcile one managed Secret: read it from the cache, let rot/decide.h decide
 * step by step (pure), and carry each step out through an injected I/O
 * interface: mint (or take the shared) token -> prove it logs in -> patch the
 * Secret's owned keys and status annotations in one write with optimistic
 * concurrency -> restart the workloads that read it. Level-triggered: what the
 * event said does not matter, only what the Secret is now.
 *
 * Never writes a token that failed its login check (mode "required"; with
 * "best-effort" only a server's outright rejection stops the write). Errors
 * become an Event and the pgtoken.io/status.last-error annotation on the
 * Secret, and a result that asks the work queue for a rate-limited retry that
 * never waits past the current token's usefulness. The live I/O is
 * rot/liveio.h; tests/unit/rot/test_reconcile.c drives this with fakes. */
#ifndef PGTR_RECONCILE_H
#define PGTR_RECONCILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/latency_hist.h"
#include "base/sbuf.h"
#include "idp/idp.h"
#include "kube/event.h"
#include "kube/secret.h"
#include "pg/pgcheck.h"
#include "rot/decide.h"
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

#define RECONCILE_PATCH_MAX (1u << 20) /* the largest write we send */

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

/* What reconcile needs of the world. Every call that can fail returns 0 or a
 * negative ERR_* with err_msg() set; a peer's Retry-After comes back in
 * *retry_after_ms (0: it did not say), never through thread-local state. */
struct reconcile_io {
    void *ctx;
    int64_t (*now_ms)(void *ctx); /* wall clock, epoch ms; read once per reconcile */
    double (*jitter)(void *ctx);  /* uniform in [0, 1) */
    /* The cached Secret key: 0 and *out (caller frees), or ERR_NOTFOUND. */
    int (*get)(struct kube_secret **out, void *ctx, const char *key);
    /* The identity of ServiceAccount sa in ns, or the controller's own (sa NULL).
     * *out is borrowed (it outlives the reconcile). Errors as sareg_get. */
    int (*identity)(struct idp **out, int64_t *retry_after_ms, void *ctx, const char *ns,
                    const char *sa);
    /* A token of who: fresh, a new one; else the shared one if younger than
     * max_age_ratio of its lifetime. 0: *out filled (caller releases). */
    int (*mint)(struct idp_token *out, int64_t *retry_after_ms, void *ctx, struct idp *who,
                bool fresh, double max_age_ratio);
    /* The login check of tok on t (fresh: a login of its own). rc < 0: it could
     * not be made; else out->login says how it went. */
    int (*check)(struct pg_check_result *out, void *ctx, const struct pg_target *t,
                 const struct idp_token *tok, bool fresh);
    /* A merge patch of the Secret (the body is JSON, values included). */
    int (*patch)(int64_t *retry_after_ms, void *ctx, const struct kube_secret *s,
                 const struct sbuf *body);
    /* `kubectl rollout restart` of r in s's namespace, stamped at (RFC 3339). */
    int (*restart)(void *ctx, const struct kube_secret *s, const struct spec_restart *r,
                   const char *at);
    void (*event)(void *ctx, const struct kube_secret *s, enum event_type type,
                  const char *reason, const char *msg);
    /* The Secret is gone: drop what the I/O keeps for it (Event aggregation). */
    void (*forget)(void *ctx, const char *key);
};

/* What does not change between reconciles. */
struct reconcile_cfg {
    struct policy_cfg policy;
    enum spec_login_check login_check; /* when the Secret does not say */
    bool own_identity;                 /* the controller has an identity of its own */
    bool allow_own_identity;           /* false: every Secret must name a ServiceAccount */
    struct rot_stats *stats;
    /* Each failure, by its Event reason ("TokenFailed", "LoginFailed",
     * "InvalidConfig", "WriteFailed"); may be NULL. For metrics. */
    void (*on_failure)(void *ctx, const char *reason);
    void *hook_ctx;
};

/* The key's backoff as the work queue keeps it (kube/queue.h). */
struct reconcile_backoff {
    unsigned failures;  /* in a row */
    int64_t wait_ms;    /* how long it still holds; <= 0: none */
    const char *tag;    /* the spec hash that failed; NULL: none */
};

struct reconcile_result {
    enum decide_end end;
    int64_t requeue_after_ms; /* 0: nothing planned (wait for a change); else > 0 */
    bool backoff;             /* a failure: re-add rate limited, tagged spec_hash */
    bool reset_backoff;       /* the key's backoff ends */
    char spec_hash[17];       /* "" when the spec did not parse */
};

/* Reconciles the Secret "namespace/name" with b its backoff (NULL: none).
 * Returns 0 when it reached a decision (including "the configuration is
 * invalid: wait for the user"), or the failed step's negative code (the
 * result says when to retry). */
int reconcile_secret(struct reconcile_result *out, const struct reconcile_cfg *cfg,
                     const struct reconcile_io *io, const char *key,
                     const struct reconcile_backoff *b);

#endif
