#include "app/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/latency_hist.h"
#include "base/mem.h"
#include "base/proc.h"
#include "idp/tokcache.h"
#include "kube/kclient.h"
#include "kube/lease.h"
#include "kube/queue.h"
#include "kube/secret.h"
#include "kube/store.h"
#include "kube/watch.h"
#include "pg/pgcheck.h"
#include "rot/reconcile.h"
#include "base/banned.h"

#ifndef PGTR_VERSION
#define PGTR_VERSION "unknown"
#endif
#ifndef PGTR_GIT_REV
#define PGTR_GIT_REV "unknown"
#endif

/* ---- The controller's families ---------------------------------------------- */

static const char *const login_results[] = { "ok", "rejected", "unreachable", "tls", "error" };
static const char *const failure_reasons[] = { "TokenFailed", "LoginFailed", "InvalidConfig",
                                               "WriteFailed", "Other" };
#define N_REASONS (sizeof(failure_reasons) / sizeof(failure_reasons[0]))
enum { VERB_GET, VERB_POST, VERB_PUT, VERB_PATCH, VERB_DELETE, VERB_WATCH, VERB_OTHER, N_VERBS };
static const char *const api_verbs[N_VERBS] = {
    [VERB_GET] = "get",       [VERB_POST] = "post",   [VERB_PUT] = "put",
    [VERB_PATCH] = "patch",   [VERB_DELETE] = "delete", [VERB_WATCH] = "watch",
    [VERB_OTHER] = "other",
};

struct app {
    struct metrics_sources src;
    char *version, *revision;
    struct prom_family *build_info;
    struct prom_family *rotations, *failures, *conflicts, *restarts;
    struct prom_family *token_requests, *token_hits, *token_latency;
    struct prom_family *logins, *login_latency;
    struct prom_family *pg_hits, *pg_failures_shared, *pg_shared, *pg_evicted, *pg_entries;
    struct prom_family *expiry, *next_rotation, *secret_ready, *managed;
    struct prom_family *watch_lists, *watch_restarts, *watch_events, *watch_gone, *relist_found;
    struct prom_family *api_requests, *api_latency, *api_errors, *api_conflicts, *api_throttled;
    struct prom_family *queue_depth, *queue_delayed;
    struct prom_family *leader, *ready;
    struct prom_family *overdue, *resync_requeued;
    struct prom_family *cpu, *rss, *vsize, *open_fds, *max_fds, *start_time;
    /* API request latency by verb (api_verbs; watches are not timed), observed
     * without a lock by the workers' metrics_api_request, copied at scrape time. */
    struct latency_hist api_hist[N_VERBS];
};

static void app_free(struct app *a)
{
    if (!a)
        return;
    free(a->version);
    free(a->revision);
    free(a);
}

/* ---- The registry and its scrape --------------------------------------------- */

struct metrics {
    struct prom *reg;
    struct app *_Atomic app; /* NULL until metrics_register_app */
};

struct metrics *metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));

    m->reg = prom_new();
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    prom_free(m->reg);
    app_free(atomic_load(&m->app));
    free(m);
}

struct prom *metrics_registry(struct metrics *m)
{
    return m->reg;
}

/* The listener's handle on a scrape of the registry. */
struct metrics_scrape {
    struct prom_scrape *s;
};

struct metrics_scrape *metrics_scrape_start(struct metrics *m)
{
    struct metrics_scrape *ms = xcalloc(1, sizeof(*ms));

    ms->s = prom_scrape_start(m->reg);
    return ms;
}

long metrics_scrape_read(struct metrics_scrape *ms, char *out, size_t max)
{
    return prom_scrape_read(ms->s, out, max);
}

void metrics_scrape_free(struct metrics_scrape *ms)
{
    if (!ms)
        return;
    prom_scrape_free(ms->s);
    free(ms);
}

/* ---- Collection at scrape time ------------------------------------------------ */

static double ld(atomic_long *v)
{
    return (double)atomic_load(v);
}

static void set_histogram(struct prom_family *f, const char *const *values,
                          const struct latency_hist *h)
{
    struct latency_hist_snapshot snap;

    latency_hist_read(&snap, h);
    prom_set_histogram(f, values, snap.buckets, LATENCY_HIST_NBOUNDS + 1, snap.sum_s);
}

/* The process families, as the Prometheus client libraries' process collector
 * exports them. Without /proc (not Linux) they are described with no series. */
static void collect_process(struct app *a)
{
    struct proc_stats ps;

    if (proc_stats_read(&ps) < 0)
        return;
    prom_set(a->cpu, NULL, ps.cpu_seconds);
    prom_set(a->rss, NULL, ps.resident_bytes);
    prom_set(a->vsize, NULL, ps.virtual_bytes);
    prom_set(a->open_fds, NULL, ps.open_fds);
    prom_set(a->max_fds, NULL, ps.max_fds);
    prom_set(a->start_time, NULL, ps.start_time);
}

static void collect_app(struct prom *p, void *ctx)
{
    struct app *a = ctx;
    const struct metrics_sources *src = &a->src;

    (void)p;
    if (src->rot) {
        struct rot_stats *r = src->rot;
        prom_set(a->rotations, PROM_LABELS("success"), ld(&r->rotations));
        prom_set(a->rotations, PROM_LABELS("failure"), ld(&r->rotation_failures));
        prom_set(a->rotations, PROM_LABELS("noop"), ld(&r->noop));
        prom_set(a->conflicts, NULL, ld(&r->conflicts));
        prom_set(a->restarts, NULL, ld(&r->restarts));
        for (size_t i = 0; i < 5; i++)
            prom_set(a->logins, PROM_LABELS(login_results[i]), ld(&r->login[i]));
        set_histogram(a->login_latency, NULL, &r->login_latency);
    }
    if (src->tokens) {
        struct tokcache_stats *t = tokcache_stats(src->tokens);
        long req = atomic_load(&t->requests), fail = atomic_load(&t->failures);
        prom_set(a->token_requests, PROM_LABELS("success"), (double)(req - fail));
        prom_set(a->token_requests, PROM_LABELS("failure"), (double)fail);
        prom_set(a->token_hits, NULL, ld(&t->hits));
        set_histogram(a->token_latency, NULL, &t->latency);
    }
    if (src->pg) {
        struct pg_check_cache_stats st;
        pg_check_cache_stats(&st, src->pg);
        prom_set(a->pg_hits, NULL, (double)st.hits);
        prom_set(a->pg_failures_shared, NULL, (double)st.failures_shared);
        prom_set(a->pg_shared, NULL, (double)st.shared);
        prom_set(a->pg_evicted, NULL, (double)st.evicted);
        prom_set(a->pg_entries, NULL, (double)st.entries);
    }
    if (src->store)
        prom_set(a->managed, NULL, (double)store_len(src->store));
    if (src->watch) {
        prom_set(a->watch_lists, NULL, ld(&src->watch->lists));
        prom_set(a->watch_restarts, NULL, ld(&src->watch->restarts));
        prom_set(a->watch_events, NULL, ld(&src->watch->events));
        prom_set(a->watch_gone, NULL, ld(&src->watch->gone));
        prom_set(a->relist_found, NULL, ld(&src->watch->relist_found));
    }
    if (src->kube) {
        prom_set(a->api_errors, NULL, ld(&src->kube->errors));
        prom_set(a->api_conflicts, NULL, ld(&src->kube->conflicts));
        prom_set(a->api_throttled, NULL, ld(&src->kube->throttled));
    }
    if (src->queue) {
        prom_set(a->queue_depth, NULL, (double)queue_len(src->queue));
        prom_set(a->queue_delayed, NULL, (double)queue_delayed(src->queue));
    }
    prom_set(a->leader, NULL, !src->lease || lease_is_leader(src->lease) ? 1 : 0);
    if (src->ready)
        prom_set(a->ready, NULL, src->ready(src->ready_ctx) ? 1 : 0);
    if (src->overdue)
        prom_set(a->overdue, NULL, (double)src->overdue(src->overdue_ctx));
    if (src->resync_requeued)
        prom_set(a->resync_requeued, NULL, ld(src->resync_requeued));
    for (size_t i = 0; i < N_VERBS; i++) {
        struct latency_hist_snapshot snap;
        latency_hist_read(&snap, &a->api_hist[i]);
        if (snap.count) /* a verb's series appears with its first timed request */
            prom_set_histogram(a->api_latency, PROM_LABELS(api_verbs[i]), snap.buckets,
                               LATENCY_HIST_NBOUNDS + 1, snap.sum_s);
    }
    collect_process(a);
}

static void source_expiry(void *ctx, prom_emit_fn emit, void *ectx);
static void source_next_rotation(void *ctx, prom_emit_fn emit, void *ectx);
static void source_ready(void *ctx, prom_emit_fn emit, void *ectx);

struct family_def {
    struct prom_family **out;
    enum { COUNTER, GAUGE, HISTOGRAM } type;
    const char *name;
    const char *help;
    const char *labels[PROM_MAX_LABELS];
};

int metrics_register_app(struct metrics *m, const struct metrics_sources *src)
{
    struct app *a;
    int rc = 0;

    if (atomic_load(&m->app))
        return err_set(ERR_INVALID, "the controller's metrics are already registered");
    a = xcalloc(1, sizeof(*a));
    a->src = *src;
    a->version = xstrdup(src->version ? src->version : PGTR_VERSION);
    a->revision = xstrdup(src->revision ? src->revision : PGTR_GIT_REV);
    a->src.version = a->version;
    a->src.revision = a->revision;

#define P METRICS_PREFIX
    const struct family_def defs[] = {
        { &a->build_info, GAUGE, P "build_info",
          "Always 1; the labels say which build is running.", { "version", "revision" } },
        { &a->rotations, COUNTER, P "rotations_total",
          "Rotation attempts by result: success (a new token written), failure, noop (the "
          "Secret already held the values).", { "result" } },
        { &a->failures, COUNTER, P "rotation_failures_total",
          "Failed reconciles by reason (the Warning Event's reason).", { "reason" } },
        { &a->conflicts, COUNTER, P "secret_write_conflicts_total",
          "Secret writes refused with 409 Conflict (re-read and decided again).", { NULL } },
        { &a->restarts, COUNTER, P "workload_restarts_total",
          "Deployments and StatefulSets restarted after a write (pgtoken.io/restart).", { NULL } },
        { &a->token_requests, COUNTER, P "token_requests_total",
          "Token requests sent to the identity provider, by result.", { "result" } },
        { &a->token_hits, COUNTER, P "token_cache_hits_total",
          "Token requests answered from the shared token cache.", { NULL } },
        { &a->token_latency, HISTOGRAM, P "token_request_duration_seconds",
          "Time spent on token requests to the identity provider.", { NULL } },
        { &a->logins, COUNTER, P "login_checks_total",
          "PostgreSQL login checks made, by result.", { "result" } },
        { &a->login_latency, HISTOGRAM, P "login_check_duration_seconds",
          "Time spent on PostgreSQL login checks (cached results excluded).", { NULL } },
        { &a->pg_hits, COUNTER, P "login_check_cache_hits_total",
          "Login checks answered from a kept successful check.", { NULL } },
        { &a->pg_failures_shared, COUNTER, P "login_check_cache_failures_shared_total",
          "Login checks answered from a kept failed check (one cause, many Secrets).", { NULL } },
        { &a->pg_shared, COUNTER, P "login_check_cache_shared_total",
          "Login checks that waited for an identical check in progress.", { NULL } },
        { &a->pg_evicted, COUNTER, P "login_check_cache_evictions_total",
          "Kept login checks dropped to make room.", { NULL } },
        { &a->pg_entries, GAUGE, P "login_check_cache_entries",
          "Login checks kept now (successful ones, and failed ones for a while).", { NULL } },
        { &a->expiry, GAUGE, P "secret_token_expiry_timestamp_seconds",
          "When the token written in the Secret expires (Unix time).",
          { "namespace", "secret" } },
        { &a->next_rotation, GAUGE, P "secret_next_rotation_timestamp_seconds",
          "When the next rotation of the Secret is planned (Unix time).",
          { "namespace", "secret" } },
        { &a->secret_ready, GAUGE, P "secret_ready",
          "1 when the Secret holds an unexpired token and no error (reason Ready); else 0 "
          "with the reason: the last error's (InvalidConfig, TokenFailed, LoginFailed, "
          "WriteFailed, ...), Expired or Pending.", { "namespace", "secret", "reason" } },
        { &a->managed, GAUGE, P "managed_secrets",
          "Secrets selected by the label selector and held in the cache.", { NULL } },
        { &a->watch_lists, COUNTER, P "watch_lists_total",
          "Complete lists of the managed Secrets (the first one, and every relist).", { NULL } },
        { &a->watch_restarts, COUNTER, P "watch_restarts_total",
          "Watch streams opened after the first one.", { NULL } },
        { &a->watch_events, COUNTER, P "watch_events_total",
          "Watch events received.", { NULL } },
        { &a->watch_gone, COUNTER, P "watch_expired_total",
          "Watches the API server ended with 410 Gone (resourceVersion too old), forcing a "
          "relist.", { NULL } },
        { &a->relist_found, COUNTER, P "relist_found_total",
          "Secrets a periodic relist found that the cache lacked (an earlier list or the watch "
          "missed them, or they were created just then), and queued.", { NULL } },
        { &a->api_requests, COUNTER, P "kube_api_requests_total",
          "Kubernetes API requests by verb (HTTP method, or watch) and HTTP status code "
          "(error: no response).", { "verb", "code" } },
        { &a->api_latency, HISTOGRAM, P "kube_api_request_duration_seconds",
          "Kubernetes API request latency by verb (watches excluded).", { "verb" } },
        { &a->api_errors, COUNTER, P "kube_api_errors_total",
          "Kubernetes API requests that failed (any error status or no response).", { NULL } },
        { &a->api_conflicts, COUNTER, P "kube_api_conflicts_total",
          "Kubernetes API requests answered 409 Conflict.", { NULL } },
        { &a->api_throttled, COUNTER, P "kube_api_throttled_total",
          "Kubernetes API requests answered 429 Too Many Requests.", { NULL } },
        { &a->queue_depth, GAUGE, P "workqueue_depth",
          "Secrets waiting in the work queue, ready now.", { NULL } },
        { &a->queue_delayed, GAUGE, P "workqueue_delayed",
          "Secrets scheduled in the work queue for later (next rotation, retry).", { NULL } },
        { &a->leader, GAUGE, P "leader",
          "1 when this replica is the leader (always 1 without leader election).", { NULL } },
        { &a->ready, GAUGE, P "ready",
          "1 once the initial list of Secrets is synced (what /readyz reports).", { NULL } },
        { &a->overdue, GAUGE, P "secrets_overdue",
          "Cached Secrets more than a minute past their planned reconcile (0 on a standby "
          "replica).", { NULL } },
        { &a->resync_requeued, COUNTER, P "resync_requeued_total",
          "Secrets a resync found past their planned time and in no queue, and queued again.",
          { NULL } },
        /* The standard process families: no prefix, client_golang's names and help. */
        { &a->cpu, COUNTER, "process_cpu_seconds_total",
          "Total user and system CPU time spent in seconds.", { NULL } },
        { &a->open_fds, GAUGE, "process_open_fds", "Number of open file descriptors.",
          { NULL } },
        { &a->max_fds, GAUGE, "process_max_fds",
          "Maximum number of open file descriptors.", { NULL } },
        { &a->vsize, GAUGE, "process_virtual_memory_bytes",
          "Virtual memory size in bytes.", { NULL } },
        { &a->rss, GAUGE, "process_resident_memory_bytes",
          "Resident memory size in bytes.", { NULL } },
        { &a->start_time, GAUGE, "process_start_time_seconds",
          "Start time of the process since unix epoch in seconds.", { NULL } },
    };
#undef P
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]) && rc == 0; i++) {
        const struct family_def *d = &defs[i];
        if ((d->out == &a->ready && !src->ready) || (d->out == &a->overdue && !src->overdue) ||
            (d->out == &a->resync_requeued && !src->resync_requeued) ||
            (d->out == &a->secret_ready && !src->secret_status))
            continue;
        if (d->type == HISTOGRAM)
            rc = prom_histogram(d->out, m->reg, d->name, d->help, d->labels,
                                latency_hist_bounds_s, LATENCY_HIST_NBOUNDS);
        else if (d->type == GAUGE)
            rc = prom_gauge(d->out, m->reg, d->name, d->help, d->labels);
        else
            rc = prom_counter(d->out, m->reg, d->name, d->help, d->labels);
    }
    if (rc < 0) {
        app_free(a);
        return rc;
    }
    prom_set(a->build_info, PROM_LABELS(a->version, a->revision), 1);
    if (src->secret_status) {
        prom_source(a->expiry, source_expiry, src->secret_status);
        prom_source(a->next_rotation, source_next_rotation, src->secret_status);
        prom_source(a->secret_ready, source_ready, src->secret_status);
    }
    /* Series that alerts rate() over exist from the start, at 0. */
    for (size_t i = 0; i < N_REASONS; i++)
        prom_add(a->failures, PROM_LABELS(failure_reasons[i]), 0);
    atomic_store(&m->app, a);
    return prom_collector(m->reg, collect_app, a);
}

/* m->app is set once, before the controller's threads start. */
static struct app *app_of(struct metrics *m)
{
    return m ? atomic_load(&m->app) : NULL;
}

static int64_t annotation_time(const struct kube_secret *s, const char *name)
{
    const char *v = kube_secret_annotation(s, name);
    int64_t t;

    return v && clock_parse_rfc3339(&t, v) == 0 ? t : 0;
}

struct status_emit {
    const char *annotation;
    prom_emit_fn emit;
    void *ectx;
};

static void emit_status(void *ctx, const struct kube_secret *s)
{
    const struct status_emit *se = ctx;
    int64_t t;

    if (s->deleting || (t = annotation_time(s, se->annotation)) <= 0)
        return; /* unknown: no series (no 0 that would fire alerts) */
    se->emit(se->ectx, PROM_LABELS(s->ns, s->name), (double)t);
}

static void source_expiry(void *ctx, prom_emit_fn emit, void *ectx)
{
    struct status_emit se = { STATUS_EXPIRES_AT, emit, ectx };

    store_each(ctx, emit_status, &se);
}

static void source_next_rotation(void *ctx, prom_emit_fn emit, void *ectx)
{
    struct status_emit se = { STATUS_ROTATE_AT, emit, ectx };

    store_each(ctx, emit_status, &se);
}

bool metrics_secret_readiness(char reason[METRICS_READY_REASON_MAX + 1],
                              const struct kube_secret *s, int64_t now)
{
    const char *err = kube_secret_annotation(s, STATUS_LAST_ERROR);
    int64_t expires_at = annotation_time(s, STATUS_EXPIRES_AT);
    size_t n = 0;

    if (err) {
        /* The reconciler writes "Reason: message"; anything else is someone else's text,
         * and a label value made of it could be anything. */
        while (n <= METRICS_READY_REASON_MAX &&
               ((err[n] >= 'A' && err[n] <= 'Z') || (err[n] >= 'a' && err[n] <= 'z')))
            n++;
        if (n == 0 || n > METRICS_READY_REASON_MAX || err[n] != ':')
            snprintf(reason, METRICS_READY_REASON_MAX + 1, "Other");
        else
            snprintf(reason, METRICS_READY_REASON_MAX + 1, "%.*s", (int)n, err);
        return false;
    }
    if (expires_at <= 0) {
        snprintf(reason, METRICS_READY_REASON_MAX + 1, "Pending");
        return false;
    }
    if (expires_at <= now) {
        snprintf(reason, METRICS_READY_REASON_MAX + 1, "Expired");
        return false;
    }
    snprintf(reason, METRICS_READY_REASON_MAX + 1, "Ready");
    return true;
}

struct ready_emit {
    int64_t now;
    prom_emit_fn emit;
    void *ectx;
};

static void emit_ready(void *ctx, const struct kube_secret *s)
{
    const struct ready_emit *re = ctx;
    char reason[METRICS_READY_REASON_MAX + 1];
    bool ready;

    if (s->deleting)
        return; /* going: no series, as the other per-Secret gauges */
    ready = metrics_secret_readiness(reason, s, re->now);
    re->emit(re->ectx, PROM_LABELS(s->ns, s->name, reason), ready ? 1 : 0);
}

/* One series per cached Secret, from the moment it is cached: a Secret that never
 * got a token shows here (Pending, or its error) when the timestamp gauges have
 * nothing to say about it. */
static void source_ready(void *ctx, prom_emit_fn emit, void *ectx)
{
    struct ready_emit re = { clock_wall_s(), emit, ectx };

    store_each(ctx, emit_ready, &re);
}

void metrics_api_request(struct metrics *m, const char *verb, long status, int64_t latency_ms)
{
    struct app *a = app_of(m);
    size_t v = VERB_OTHER; /* the verbs before it are HTTP methods, or "watch" */
    char code[8] = "error";

    if (!a)
        return;
    for (size_t i = 0; verb && i < VERB_OTHER; i++)
        if (!strcasecmp(verb, api_verbs[i]))
            v = i;
    if (status >= 100 && status <= 599) /* at most 500 codes: the series stay few */
        snprintf(code, sizeof(code), "%ld", status);
    prom_inc(a->api_requests, PROM_LABELS(api_verbs[v], code));
    if (v != VERB_WATCH && latency_ms >= 0)
        latency_hist_observe_ms(&a->api_hist[v], latency_ms);
}

void metrics_rotation_failure(struct metrics *m, const char *reason)
{
    struct app *a = app_of(m);
    const char *r = "Other";

    if (!a)
        return;
    for (size_t i = 0; reason && i < N_REASONS; i++)
        if (!strcmp(reason, failure_reasons[i]))
            r = failure_reasons[i];
    prom_inc(a->failures, PROM_LABELS(r));
}
