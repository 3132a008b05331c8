/* The controller's metrics: the pgtoken_rotator_* families (listed and
 * explained in docs/metrics.md) and the standard process_* ones, on a registry
 * of base/prom, and the scrape that the listener serves.
 *
 * metrics_register_app registers them and a collector that reads them at
 * scrape time from the stats structs and the cache; two calls count what
 * neither holds: API requests by verb and status code, failures by reason.
 * Every one of those calls accepts m == NULL and then does nothing, so callers
 * need not care whether metrics are on.
 *
 * No secret ever reaches a metric: label values are namespaces, Secret names,
 * verbs, results and reasons. */
#ifndef PGTR_METRICS_H
#define PGTR_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/prom.h"

#define METRICS_PREFIX "pgtoken_rotator_"
/* The Content-Type of the scrape's text. */
#define METRICS_CONTENT_TYPE PROM_CONTENT_TYPE

struct metrics;

/* A new registry with no family yet (metrics_register_app adds them). Never
 * NULL. Free with metrics_free once no thread updates or scrapes it (NULL is
 * fine). */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* m's registry, for families registered elsewhere (the proxy's: app/pxmetrics.h). */
struct prom *metrics_registry(struct metrics *m);

/* The exposition of every family of m, a piece at a time: prom_scrape_start,
 * prom_scrape_read and prom_scrape_free (base/prom.h) on m's registry, with
 * the same results. */
struct metrics_scrape;
struct metrics_scrape *metrics_scrape_start(struct metrics *m);
long metrics_scrape_read(struct metrics_scrape *s, char *out, size_t max);
void metrics_scrape_free(struct metrics_scrape *s);

/* ---- The controller's metrics (pgtoken_rotator_*) ------------------------ */

struct rot_stats;
struct watch_stats;
struct kube_stats;
struct tokcache;
struct pg_check_cache;
struct store;
struct queue;
struct lease_elector;
struct kube_secret;

/* What the collector reads at scrape time. Every member may be NULL; the
 * families it would feed are then described but have no series (leader:
 * NULL means no leader election, so this replica counts as the leader).
 * The pointed-to objects must outlive every scrape of m. */
struct metrics_sources {
    struct rot_stats *rot;         /* rotations, login checks */
    struct watch_stats *watch;     /* lists, restarts, events, 410s */
    struct kube_stats *kube;       /* API errors, conflicts, throttling */
    struct tokcache *tokens;       /* token requests, cache hits, latency */
    struct pg_check_cache *pg;     /* login-check cache */
    struct store *store;           /* managed Secrets */
    /* The per-Secret gauges (secret_token_expiry_timestamp_seconds,
     * secret_next_rotation_timestamp_seconds, and secret_ready: see
     * metrics_secret_readiness), read at scrape time from the status annotations
     * of the Secrets in this store, so that nothing is kept per Secret here and
     * every replica reports what the cluster holds; NULL: the timestamp families
     * are described with no series, and there is no secret_ready. */
    struct store *secret_status;
    struct queue *queue;           /* work queue depth */
    struct lease_elector *lease;   /* leader status */
    bool (*ready)(void *ctx);      /* pgtoken_rotator_ready; NULL: not exported */
    void *ready_ctx;
    /* pgtoken_rotator_secrets_overdue: Secrets past their planned time; NULL: not exported. */
    size_t (*overdue)(void *ctx);
    void *overdue_ctx;
    /* pgtoken_rotator_resync_requeued_total; NULL: not exported. */
    atomic_long *resync_requeued;
    const char *version;           /* build_info; NULL: PGTR_VERSION */
    const char *revision;          /* build_info; NULL: PGTR_GIT_REV */
};

/* Registers every pgtoken_rotator_* family on m and a collector reading src
 * (copied). 0, or ERR_INVALID when m already has them. */
int metrics_register_app(struct metrics *m, const struct metrics_sources *src);

/* Longest reason taken from a last-error annotation; longer ones read "Other". */
#define METRICS_READY_REASON_MAX 32

/* What pgtoken_rotator_secret_ready{namespace,secret,reason} reports for a
 * Secret at time now (epoch seconds), from its status annotations: returns
 * true (reason "Ready") when it has no pgtoken.io/status.last-error and its
 * pgtoken.io/status.expires-at is after now; else false, with reason the word
 * before the first ':' of last-error (the reconciler writes "Reason: message")
 * when that is [A-Za-z]+ of at most METRICS_READY_REASON_MAX letters, "Other"
 * for any other last-error, "Expired" for an expiry at or before now, and
 * "Pending" when there is no (readable) expiry: no token written yet. reason
 * receives a NUL-terminated word. Pure: no I/O. */
bool metrics_secret_readiness(char reason[METRICS_READY_REASON_MAX + 1],
                              const struct kube_secret *s, int64_t now);

/* One Kubernetes API request: verb is the HTTP method ("GET", "PUT", ...) or
 * "WATCH" (any case; others count as "other"); status the HTTP status, 0 when
 * no response came (connection, TLS, timeout). Counts
 * pgtoken_rotator_kube_api_requests_total{verb,code} with code the status
 * ("200", "409", ...; 100 to 599) or "error" (none, or out of range), and for
 * verbs other than watch observes latency_ms in
 * pgtoken_rotator_kube_api_request_duration_seconds{verb}. */
void metrics_api_request(struct metrics *m, const char *verb, long status, int64_t latency_ms);

/* One failed reconcile: reason is the Event reason, "TokenFailed",
 * "LoginFailed", "InvalidConfig" or "WriteFailed" (anything else counts as
 * "Other"). Counts pgtoken_rotator_rotation_failures_total{reason}. */
void metrics_rotation_failure(struct metrics *m, const char *reason);

#endif
