/* Leader election on a coordination.k8s.io/v1 Lease, as client-go's
 * tools/leaderelection does it with a LeaseLock, so that replicas of this
 * controller and of client-go based programs read each other's Leases the
 * same way:
 *
 *   - The Lease's spec is the record: holderIdentity, leaseDurationSeconds,
 *     acquireTime, renewTime (MicroTime, "2026-11-23T18:00:00.000000Z"),
 *     leaseTransitions (incremented when the holder changes).
 *   - A candidate reads the Lease every retry period (jittered by up to 1.2
 *     times, client-go's JitterFactor) and takes it over only when the
 *     record has not changed for leaseDurationSeconds by its own monotonic
 *     clock, counted from when it saw the record change: the timestamps in
 *     the record are never compared with the local clock, so clock skew
 *     between nodes does not matter. An empty holderIdentity (a released
 *     Lease) can be taken at once. A missing Lease is created.
 *   - Every write is a PUT of the whole Lease carrying the resourceVersion
 *     last read: a 409 means another replica wrote first, and it wins.
 *   - The leader renews every retry period. When it has not renewed for
 *     renew_deadline_ms, or it sees another holder, it stops leading.
 *   - On stop (release_on_stop), the leader writes holderIdentity "" and
 *     leaseDurationSeconds 1 (client-go's ReleaseOnCancel), so that a standby
 *     takes over within a (jittered) retry period instead of a lease duration.
 *
 * Where this differs from client-go (each is stricter or simpler):
 *   - lease_is_leader() also turns false by itself once renew_deadline_ms has
 *     passed since the start of the last successful renew, even while a
 *     request hangs: a leader that cannot renew stops acting within the
 *     deadline (client-go's deadline starts a retry period after the last
 *     success, and Run may be stuck in a request past it).
 *   - Seeing another holder ends leadership at once (client-go polls on until
 *     the deadline, which cannot succeed).
 *   - A renew that succeeds only after the deadline has passed still ends
 *     the term (lease_is_leader() already said false), and a new one starts
 *     at once, so the callbacks always agree with lease_is_leader().
 *   - lease_run does not return after leadership is lost: it goes back to
 *     being a candidate (client-go's Run returns, and controllers exit).
 *     on_started_leading and on_stopped_leading always come in pairs; a
 *     candidate that never led gets neither.
 *   - The release checks that the Lease it just read still names this
 *     replica (client-go releases on its older observation).
 *   - A record "changes" when any field differs as sent (times with their
 *     microseconds); client-go compares its JSON with times cut to seconds.
 *   - No renew right after acquiring (client-go's renew loop starts with one).
 * Like client-go, this does not fence: a paused leader may act for a moment
 * after another has taken over; keep every write conditional (resourceVersion
 * preconditions), as the reconciler's are. */
#ifndef PGTR_LEASE_H
#define PGTR_LEASE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "kube/kclient.h"

#define LEASE_DEFAULT_DURATION_S 15
#define LEASE_DEFAULT_RENEW_DEADLINE_MS 10000
#define LEASE_DEFAULT_RETRY_PERIOD_MS 2000
#define LEASE_JITTER_FACTOR 1.2

struct lease_opts {
    const char *ns;             /* the Lease's namespace (the controller's own) */
    const char *name;           /* the Lease's name, e.g. "pgtoken-rotator" */
    const char *identity;       /* holderIdentity: unique per process (lease_identity_new) */
    long lease_duration_s;      /* 0: LEASE_DEFAULT_DURATION_S */
    long renew_deadline_ms;     /* 0: LEASE_DEFAULT_RENEW_DEADLINE_MS */
    long retry_period_ms;       /* 0: LEASE_DEFAULT_RETRY_PERIOD_MS */
    bool release_on_stop;       /* give the Lease up when lease_run is stopped while leading */
    /* Called on the lease_run thread; they must not block for long (a leader
     * that does not renew loses the Lease). ctx is theirs. Both required. */
    void (*on_started_leading)(void *ctx);
    void (*on_stopped_leading)(void *ctx);
    void *ctx;
};

struct lease_elector;

/* Checks the options as client-go's NewLeaderElector does: lease duration >
 * renew deadline > LEASE_JITTER_FACTOR x retry period > 0, identity, ns and
 * name set, both callbacks set. 0: *out is ready (strings are copied; kc must
 * outlive it); ERR_INVALID naming the bad option.
 * Give it a kube_client of its own whose http.timeout_ms is
 * lease_request_timeout_ms(renew deadline), as client-go's NewFromKubeconfig
 * does, so that one hung request cannot outlast a term. */
int lease_elector_new(struct lease_elector **out, struct kube_client *kc,
                      const struct lease_opts *o);
/* After lease_run has returned. NULL is fine. */
void lease_elector_free(struct lease_elector *e);

/* Runs the election on the calling thread (give it its own) until *stop is
 * true: candidate, leader, candidate again after losing the Lease, ... It
 * uses its own API connection; API errors are logged and retried, never
 * returned. On stop while leading: stops leading, releases the Lease if
 * release_on_stop, then calls on_stopped_leading. A request in flight is not
 * interrupted, so stopping can take up to the API client's timeout.
 * Returns 0, or the error of kube_conn_new. Call once per elector. */
int lease_run(struct lease_elector *e, const atomic_bool *stop);

/* True while this replica leads: between on_started_leading and
 * on_stopped_leading, and never later than renew_deadline_ms after the start
 * of the last successful renew. Any thread; cheap (two atomic loads). */
bool lease_is_leader(struct lease_elector *e);

/* The holder identity last seen in the Lease ("" when none or released), a
 * new string (free it). For logs. */
char *lease_holder(struct lease_elector *e);

/* Half the renew deadline, at least 1000 ms (0: the default deadline). */
long lease_request_timeout_ms(long renew_deadline_ms);

/* "<instance>_<random UUID>": an identity unique to this process, as
 * controller-runtime builds it (a restarted pod with the same name is a new
 * candidate, not the old holder). A new string. */
char *lease_identity_new(const char *instance);

#endif
