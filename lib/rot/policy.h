/* When to rotate a managed Secret's token: pure functions of the Secret's status annotations,
 * the current spec hash and the time. No I/O, no clock reads: callers pass now.
 *
 * A token issued at I and expiring at E (lifetime L = E - I) is due at
 *     min(I + ratio*L - jitter, E - min(min_remaining, L/2))
 * where jitter is in [0, jitter_fraction * ratio * L], fixed per Secret by its seed, so that
 * Secrets created together spread out and none rotates later than its ratio point.
 * min_remaining is limited to half the lifetime so that a token shorter than min_remaining
 * (20 s in tests) is not due the moment it is issued, which would rotate in a loop. */
#ifndef PGTR_POLICY_H
#define PGTR_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define POLICY_MIN_DELAY_MS 1000 /* the shortest wait a NONE plan asks for */

/* Values out of range (a ratio outside (0, 1), a negative or NaN fraction, a jitter of 1 or
 * more, a negative duration, a cap below the base) are replaced by the defaults. */
struct policy_cfg {
    double refresh_ratio;     /* rotate after this fraction of the lifetime; 0.5 */
    double jitter;            /* spread, as a fraction of ratio * lifetime; 0.1 */
    int64_t min_remaining_ms; /* rotate at least this long before expiry; 5 min */
    int64_t retry_base_ms;    /* first retry delay after a failure; 1 s */
    int64_t retry_cap_ms;     /* longest retry delay; 5 min */
};

#define POLICY_CFG_INIT { 0.5, 0.1, INT64_C(300000), INT64_C(1000), INT64_C(300000) }

/* What the Secret says. Strings are the raw annotation values, NULL when absent. */
struct policy_input {
    const char *spec_hash;          /* spec_hash() of the spec parsed now */
    const char *status_spec_hash;   /* pgtoken.io/status.spec-hash */
    const char *status_issued_at;   /* pgtoken.io/status.issued-at, RFC 3339 (when received) */
    const char *status_expires_at;  /* pgtoken.io/status.expires-at, RFC 3339 (token exp) */
    bool keys_present;              /* every output key is in the Secret's data */
    uint64_t seed;                  /* per Secret, e.g. policy_seed(namespace, name) */
    const char *force_rotate;       /* pgtoken.io/force-rotate (NULL or "": none) */
    const char *status_force_rotate; /* pgtoken.io/status.force-rotate: the last one handled */
};

enum plan_action { PLAN_NONE, PLAN_ROTATE };

struct plan {
    enum plan_action action;
    int64_t next_in_ms; /* NONE: wait this long, >= POLICY_MIN_DELAY_MS; ROTATE: 0 */
    const char *reason; /* static: "new", "forced", "spec-changed", "keys-missing", "expired",
                         * "due", "fresh" (the only NONE reason) */
    bool force;         /* ROTATE only: a force-rotate value not handled yet. The token must be
                         * minted for this rotation (not the shared one), proven by a login of
                         * its own, and force_rotate recorded in the status with the values */
};

#define PLAN_INIT { PLAN_NONE, 0, "", false }

/* Decides what to do at now_ms. In order: status missing or unreadable (no hash, a time that
 * is not RFC 3339 UTC, issued-at not before expires-at) -> ROTATE "new"; a non-empty
 * force_rotate other than status_force_rotate (compared byte for byte) -> ROTATE "forced";
 * hash differs -> ROTATE "spec-changed"; an output key missing -> ROTATE "keys-missing";
 * now >= expires-at ->
 * ROTATE "expired"; now >= due (see above) -> ROTATE "due"; else NONE "fresh" with next_in_ms
 * = due - now, at least POLICY_MIN_DELAY_MS. plan.force is set with every ROTATE while such a
 * force_rotate is pending ("new" included), so that its value is recorded by the write that
 * handles it; the same value again asks for nothing. cfg may be NULL (defaults). Never fails. */
void policy_decide(struct plan *out, const struct policy_input *in, int64_t now_ms,
                   const struct policy_cfg *cfg);

/* The due time (epoch ms) of a token issued at issued_at_ms and expiring at expires_at_ms,
 * per the formula above. expires_at_ms <= issued_at_ms gives issued_at_ms (due at once). */
int64_t policy_due_at_ms(int64_t issued_at_ms, int64_t expires_at_ms, uint64_t seed,
                         const struct policy_cfg *cfg);

/* The delay before retry number attempt (0-based) after a failed rotation: exponential backoff
 * (base/backoff.h, retry_base_ms doubling up to retry_cap_ms, scaled by jitter01 into
 * [0.5, 1]), but while the current token is still valid (now_ms < expires_at_ms) at most a
 * quarter of its remaining lifetime, and that cap at least POLICY_MIN_DELAY_MS: the short cap
 * is there to save a live value. With no token or an expired one (expires_at_ms <= now_ms;
 * pass 0 when unknown) there is none to save: the backoff goes on doubling up to
 * POLICY_NO_VALUE_RETRY_CAP_MS (or retry_cap_ms if longer). >= 0. */
#define POLICY_NO_VALUE_RETRY_CAP_MS INT64_C(300000)
int64_t policy_retry_ms(unsigned attempt, int64_t now_ms, int64_t expires_at_ms,
                        const struct policy_cfg *cfg, double jitter01);

/* A jitter seed for the Secret namespace/name (FNV-1a): stable across restarts and replicas. */
uint64_t policy_seed(const char *ns, const char *name);

/* The status annotation values to write after minting a token. */
struct policy_status {
    char issued_at[32];  /* pgtoken.io/status.issued-at */
    char expires_at[32]; /* pgtoken.io/status.expires-at */
    char rotate_at[32];  /* when it will be due (for people; policy_decide recomputes it) */
    char spec_hash[17];  /* pgtoken.io/status.spec-hash */
};

/* Formats the status for a token with iat issued_at_s and exp expires_at_s (epoch seconds),
 * minted for a spec with hash spec_hash (16 hex characters; longer is cut). Times are RFC 3339
 * UTC with seconds; rotate_at is policy_due_at_ms rounded down to the second. */
void policy_status(struct policy_status *out, int64_t issued_at_s, int64_t expires_at_s,
                   const char *spec_hash, uint64_t seed, const struct policy_cfg *cfg);

#endif
