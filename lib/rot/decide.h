/* What reconcile does with one Secret, decided by a pure function of the facts:
 * the Secret as cached (its spec, status annotations and key fingerprints), the
 * key's backoff, one reading of the clock, and the outcome of every step tried
 * so far (identity, token, login check, rendering, write). No I/O, no clock, no
 * randomness of its own: the same facts give the same plan.
 *
 * The actor (rot/reconcile.h) asks decide_next what to do, does that one step
 * through its I/O, records the outcome in the facts and asks again, until the
 * plan says DECIDE_DONE; then it carries out the plan's effects (a log line,
 * counters, an Event, the status annotation, restarts) and hands the requeue to
 * the worker. Each step is tried at most once per reconcile. */
#ifndef PGTR_DECIDE_H
#define PGTR_DECIDE_H

#include <stdbool.h>
#include <stdint.h>

#include "pg/pgcheck.h"
#include "rot/policy.h"
#include "rot/spec.h"

#define DECIDE_MSG_MAX 512     /* Event and status text, cut to fit */
#define DECIDE_CONFLICT_MS 250 /* a write that lost a race is decided again this soon */

/* The outcome of a step: rc 0 (or the step's own success), or a negative ERR_* with
 * the message the step set (copied: err_msg() does not last). */
struct decide_step {
    bool tried;
    int rc;
    char msg[DECIDE_MSG_MAX];
    int64_t retry_after_ms; /* the peer's Retry-After with this outcome; 0: none */
};

struct decide_facts {
    int64_t now_ms;                   /* wall clock, read once per reconcile */
    double jitter01;                  /* [0, 1): spreads retries */
    const struct policy_cfg *policy;  /* the controller's; a Secret's refresh ratio overrides */
    enum spec_login_check login_check; /* the controller's default mode */
    bool own_identity;                /* the controller has an identity of its own */
    bool allow_own_identity;          /* ... and Secrets may use it */

    /* The Secret, as cached. */
    bool found;                       /* false: gone from the cache */
    bool deleting;
    const char *ns, *name;
    int spec_rc;                      /* spec_parse's return */
    const char *spec_err;             /* its message when spec_rc < 0 */
    const struct spec *spec;          /* when spec_rc == 0 */
    const char *spec_hash;            /* spec_hash(spec) */
    struct policy_input status;       /* the status annotations and key presence */
    const char *last_error;           /* pgtoken.io/status.last-error; NULL: none */

    /* The key's backoff (kube/queue.h): failures in a row, how long it still
     * holds, and the spec hash that failed. */
    unsigned failures;
    int64_t backoff_wait_ms;
    const char *backoff_tag;

    /* Steps, in order. */
    struct decide_step identity;      /* the ServiceAccount's identity (skipped for our own) */
    const char *identity_id;          /* the identity's id once chosen */
    struct decide_step token;         /* minting (or taking the shared token) */
    int64_t token_issued_at_s, token_expires_at_s;
    struct decide_step check;         /* the login check; rc < 0: it could not be made */
    enum pg_login login;              /* its class when it was made (rc 0) */
    const char *login_message;        /* the server's or libpq's words */
    struct decide_step render;        /* values and patch built; rc < 0 e.g. too big */
    bool unchanged;                   /* the Secret already holds exactly those values */
    struct decide_step write;         /* the merge patch */
};

enum decide_next {
    DECIDE_IDENTITY, /* look up the ServiceAccount's identity (plan.service_account) */
    DECIDE_TOKEN,    /* mint: plan.fresh ? a new token : the shared one (plan.max_age_ratio) */
    DECIDE_CHECK,    /* the login check (plan.fresh: a login of its own) */
    DECIDE_RENDER,   /* render the values and the patch (plan.status, plan.force_rotate) */
    DECIDE_WRITE,    /* send the patch */
    DECIDE_DONE,
};

/* How a reconcile ended (DECIDE_DONE). */
enum decide_end {
    DECIDE_GONE,        /* not in the cache (or deleted while we wrote): forget it */
    DECIDE_DELETING,    /* being deleted: nothing to do */
    DECIDE_INVALID,     /* the annotations are wrong: wait for the user to change them */
    DECIDE_FRESH,       /* nothing due: wake at requeue_after_ms */
    DECIDE_BACKING_OFF, /* a failure of this spec is still backing off */
    DECIDE_FAILED,      /* a step failed: retry after requeue_after_ms with backoff */
    DECIDE_NOOP,        /* rotated to the values the Secret already holds */
    DECIDE_CONFLICT,    /* someone else wrote first: decide again with their version */
    DECIDE_ROTATED,     /* the new values are written */
};

struct decide_plan {
    enum decide_next next;

    /* For the steps. */
    const struct spec *spec;
    const char *service_account;  /* DECIDE_IDENTITY: the name; NULL: the controller's own */
    bool fresh;                   /* a force-rotate is pending: new token, own login */
    double max_age_ratio;         /* DECIDE_TOKEN: the oldest shared token to accept */
    const char *why;              /* policy's reason ("due", "new", "forced", ...) */
    struct policy_status status;  /* DECIDE_RENDER on: the status to write with the values */
    const char *force_rotate;     /* DECIDE_RENDER: the force-rotate value to record; NULL */
    bool login_inconclusive;      /* best-effort mode wrote past an inconclusive check */

    /* DECIDE_DONE. */
    enum decide_end end;
    int rc;                       /* what reconcile returns: 0, or the failed step's code */
    const char *reason;           /* FAILED and INVALID: the Event reason ("TokenFailed",
                                   * "LoginFailed", "InvalidConfig", "WriteFailed") */
    char msg[DECIDE_MSG_MAX];     /* FAILED, INVALID: the Event and status text;
                                   * ROTATED: the Normal Event's text */
    bool report;                  /* a Warning Event and the error status (FAILED, INVALID;
                                   * not while the API server asked us to wait) */
    bool clear_error;             /* clear the error status (FRESH with an old error) */
    bool backoff;                 /* FAILED: count a failure of the key */
    bool reset_backoff;           /* the key's backoff ends (ROTATED, NOOP, INVALID, FRESH) */
    bool restart;                 /* ROTATED: roll the spec's restart targets */
    int64_t requeue_after_ms;     /* 0: nothing planned (wait for a change); else > 0 */
};

/* The next step, or the end, for the facts so far. Never fails. */
void decide_next(struct decide_plan *out, const struct decide_facts *f);

/* The expiry of the value the Secret holds now (its status), epoch ms; 0 when unknown. */
int64_t decide_status_expiry_ms(const struct decide_facts *f);

#endif
