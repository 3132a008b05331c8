/* Metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Two parts:
 *
 * 1. A registry (struct metrics) of metric families: counters, gauges and
 *    histograms with fixed buckets, each with up to METRICS_MAX_LABELS label
 *    names. A series is one combination of label values; it appears on its
 *    first update. Values are either updated directly (metric_inc,
 *    metric_set, metric_observe) or set at scrape time by collectors
 *    (metrics_collector) that copy them from the atomic stats structs the
 *    modules keep (metric_set, metric_set_histogram).
 *    Thread-safe: any thread may update any family while another scrapes.
 *
 *      const char *const labels[] = { "result", NULL };
 *      struct metric *f;
 *      metrics_counter(&f, m, "pgtoken_rotator_rotations_total", "Rotations.", labels);
 *      metric_inc(f, METRIC_LABELS("success"));
 *
 * 2. The controller's own families (pgtoken_rotator_*, listed and explained
 *    in docs/metrics.md), registered by metrics_register_app, read at scrape
 *    time from the stats structs and the cache, with the two calls the
 *    controller makes for what neither holds: API requests by verb and status
 *    code, failures by reason. Every one of those calls accepts m == NULL and then does
 *    nothing, so callers need not care whether metrics are on.
 *
 * No secret ever reaches a metric: label values are namespaces, Secret names,
 * verbs, results and reasons; the functions take const char *, never a struct
 * sbuf. Label values and help texts are escaped as the format requires. */
#ifndef PGTR_METRICS_H
#define PGTR_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define METRICS_PREFIX "pgtoken_rotator_"
#define METRICS_MAX_LABELS 4
/* Series per family; updates that would create more are dropped (and logged
 * once), so a flood of names cannot grow memory without bound. */
#define METRICS_MAX_SERIES 65536
#define METRICS_MAX_BUCKETS 32
/* Longest label value kept; updates with a longer one are dropped (and logged once). */
#define METRICS_MAX_VALUE_LEN 1024
/* Cap on one rendered exposition. */
#define METRICS_RENDER_MAX (16u << 20)
/* The Content-Type of metrics_render's output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Label values for an update, in the order of the family's label names:
 * metric_inc(f, METRIC_LABELS("get", "200")). A family without labels takes NULL. */
#define METRIC_LABELS(...) ((const char *const[]){ __VA_ARGS__ })

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric; /* one family; owned by its registry */

/* A new empty registry. Never NULL. Free with metrics_free once no thread
 * updates or scrapes it (NULL is fine). */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Register a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: one line (any
 * text; escaped when rendered); labels: NULL-terminated label names
 * ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no repeats, at most
 * METRICS_MAX_LABELS; "le" not on a histogram),
 * or NULL for none. Families are rendered in registration order.
 * 0: *out is the family (owned by m); ERR_INVALID naming the bad name, label
 * or bucket, or when name is already registered. */
int metrics_counter(struct metric **out, struct metrics *m, const char *name, const char *help,
                    const char *const *labels);
int metrics_gauge(struct metric **out, struct metrics *m, const char *name, const char *help,
                  const char *const *labels);
/* bounds: the buckets' upper bounds, finite and strictly increasing, 1 to
 * METRICS_MAX_BUCKETS of them (copied); the +Inf bucket is implied. */
int metrics_histogram(struct metric **out, struct metrics *m, const char *name, const char *help,
                      const char *const *labels, const double *bounds, size_t nbounds);

/* Updates. values: one per label name of f (NULL for a family without
 * labels); a NULL value counts as "". f may be NULL (nothing happens).
 * metric_add: counters and gauges; a negative v on a counter is ignored.
 * metric_set: gauges, and counters set by a collector from a monotonic source.
 * metric_observe: histograms (one observation of v). */
void metric_inc(struct metric *f, const char *const *values);
void metric_add(struct metric *f, const char *const *values, double v);
void metric_set(struct metric *f, const char *const *values, double v);
void metric_observe(struct metric *f, const char *const *values, double v);
/* Histograms only: sets a series as a collector read it from a stats struct
 * (struct latency_hist): buckets holds the observations per bucket, not
 * cumulative, nbuckets of them, one per bound of f and the last for +Inf (any
 * other nbuckets: nothing happens); the count is their total; sum is the sum
 * of the observations. */
void metric_set_histogram(struct metric *f, const char *const *values, const uint64_t *buckets,
                          size_t nbuckets, double sum);
/* Drops one series / every series of f. */
void metric_remove(struct metric *f, const char *const *values);
void metric_clear(struct metric *f);
/* The current value of a counter or gauge series (the count of a histogram);
 * 0 when the series does not exist. For tests and collectors. */
double metric_value(struct metric *f, const char *const *values);

/* Series produced at scrape time instead of kept (counters and gauges only), for
 * families with one series per object of a cache that already holds the value:
 * fn calls emit once per series with its label values (one per label name,
 * borrowed for the call) and value. They are rendered after the family's kept
 * series, sorted by label values; the caller must not emit a kept series'
 * labels again. fn runs during metrics_render with the registry locked: it must
 * not call metrics functions. A later call replaces fn; NULL removes it. */
typedef void (*metrics_emit_fn)(void *ectx, const char *const *values, double v);
typedef void (*metrics_source_fn)(void *ctx, metrics_emit_fn emit, void *ectx);
void metric_source(struct metric *f, metrics_source_fn fn, void *ctx);

/* fn runs at the start of every metrics_render, one scrape at a time, and may
 * update any family of m (not register new ones). 0, or ERR_INVALID when fn
 * is NULL. */
typedef void (*metrics_collect_fn)(struct metrics *m, void *ctx);
int metrics_collector(struct metrics *m, metrics_collect_fn fn, void *ctx);

/* Runs the collectors and appends the exposition of every family to out:
 * HELP and TYPE lines, then its series sorted by label values (a family with
 * no series is still described). out's max caps the text (0 or more than
 * METRICS_RENDER_MAX: METRICS_RENDER_MAX). 0, or ERR_TOOBIG when the cap
 * would be passed (out then holds a partial text that must not be served). */
int metrics_render(struct buf *out, struct metrics *m);

/* The same text a piece at a time, for serving it without holding all of it:
 * metrics_scrape_start runs the collectors (never NULL; free with
 * metrics_scrape_free, NULL is fine); each metrics_scrape_read copies the next
 * bytes of the exposition to out (at most max, at least 1 while any remain)
 * and returns how many, 0 at the end, or ERR_TOOBIG when the text would pass
 * METRICS_RENDER_MAX (what was read must then not be served as complete).
 * The registry is locked only while each piece (one family's kept series, or a
 * batch of its source's series) is rendered, so a scrape read slowly never
 * delays updates; a series updated during a scrape shows its old or new value.
 * m must outlive the scrape. */
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
 * ("200", "409", ...; 100 to 599) or "error" (none, or out of range), and for verbs other than watch observes latency_ms in
 * pgtoken_rotator_kube_api_request_duration_seconds{verb}. */
void metrics_api_request(struct metrics *m, const char *verb, long status, int64_t latency_ms);

/* One failed reconcile: reason is the Event reason, "TokenFailed",
 * "LoginFailed", "InvalidConfig" or "WriteFailed" (anything else counts as
 * "Other"). Counts pgtoken_rotator_rotation_failures_total{reason}. */
void metrics_rotation_failure(struct metrics *m, const char *reason);

#endif
