#include "app/controller.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/httpd.h"
#include "app/metrics.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sleep.h"
#include "idp/idp.h"
#include "idp/imds.h"
#include "idp/tokcache.h"
#include "kube/event.h"
#include "kube/kclient.h"
#include "kube/kconfig.h"
#include "kube/lease.h"
#include "kube/queue.h"
#include "kube/resync.h"
#include "kube/store.h"
#include "kube/watch.h"
#include "pg/pgcheck.h"
#include "idp/sareg.h"
#include "rot/liveio.h"
#include "rot/reconcile.h"
#include "base/banned.h"

#define HEARTBEAT_MS 1000
#define STANDBY_RECHECK_MS 60000

struct watcher {
    struct controller *c;
    pthread_t th;
    const char *ns; /* NULL: all */
    bool synced;
};

struct worker {
    struct controller *c;
    pthread_t th;
    int id;
};

struct controller {
    const struct config *cfg;
    struct kube_config *kcfg;
    struct kube_client *kube;
    struct idp *idp;
    struct tokcache *tokens;
    struct pg_check_cache *pg;
    struct store *store;
    struct queue *queue;
    struct event_recorder *events;
    struct sareg *sas;
    struct rot_stats rstats;
    struct watch_stats wstats;
    struct reconcile_cfg rcfg;
    struct liveio_deps rdeps;
    struct watcher *watchers;
    size_t nwatchers;
    atomic_int synced;
    atomic_bool *stop;
    struct metrics *metrics;
    struct httpd *httpd;
    atomic_long resync_requeued;    /* keys a resync found forgotten */
    struct kube_client *lease_kube; /* the elector's own client: short timeouts */
    struct lease_elector *lease;    /* NULL: no leader election, always act */
    char *lease_id;
    atomic_bool lease_stop;
};

static int bearer(struct sbuf **out, uint64_t *generation, void *ctx)
{
    struct kube_cred cred = KUBE_CRED_INIT;
    int rc;

    if ((rc = kube_config_cred(&cred, ctx)) < 0)
        return rc;
    *out = cred.bearer;
    *generation = cred.generation;
    cred.bearer = NULL;
    kube_cred_release(&cred);
    return 0;
}

static void unauthorized(void *ctx, uint64_t generation)
{
    log_warn("kubernetes_unauthorized", LOG_STR("detail", "the API server refused our "
             "credential (401); fetching a new one"));
    kube_config_invalidate(ctx, generation);
}

/* The controller's own identity: workload identity (the AKS webhook's
 * environment) or a managed identity through IMDS. Without one, only Secrets
 * naming a ServiceAccount can be served, which is allowed when the
 * controller's own identity is switched off anyway. */
static int make_identity(struct controller *c)
{
    const struct config *cfg = c->cfg;
    struct idp_wi_opts o;
    int rc;

    if (!strcmp(cfg->identity_source, "imds")) {
        struct idp_imds_opts io = { .endpoint = cfg->imds_endpoint, .client_id = cfg->client_id };
        return idp_imds_new(&c->idp, &io);
    }
    if ((rc = idp_wi_opts_from_env(&o)) < 0) {
        char why[256];
        if (!cfg->allow_controller_identity)
            return 0;
        snprintf(why, sizeof(why), "%s", err_msg()); /* err_set writes over err_msg() */
        return err_set(ERR_INVALID, "%s: run the pod with the label azure.workload.identity/use="
                       "\"true\" and a ServiceAccount annotated azure.workload.identity/client-id",
                       why);
    }
    if (cfg->authority_host)
        o.authority_host = cfg->authority_host;
    o.allow_http_authority = cfg->insecure_http_authority;
    return idp_wi_new(&c->idp, &o);
}

static void observe_request(void *ctx, const char *verb, long status, int64_t latency_ms)
{
    metrics_api_request(ctx, verb, status, latency_ms);
}

static void count_failure(void *ctx, const char *reason)
{
    metrics_rotation_failure(ctx, reason);
}

static bool ready(void *ctx)
{
    return controller_synced(ctx);
}

static void requeue_key(void *ctx, const char *key)
{
    queue_add(ctx, key);
}

static bool acting(struct controller *c)
{
    return !c->lease || lease_is_leader(c->lease);
}

/* A key past its planned time by more than this counts as overdue (metrics). */
#define OVERDUE_MS 60000
/* Keys a resync names in the log, one line each; a summary line gives the count. */
#define RESYNC_LOG_MAX 20

static void resync_lost(void *ctx, const char *key)
{
    size_t *logged = ctx;

    if ((*logged)++ < RESYNC_LOG_MAX)
        log_warn("secret_requeued", LOG_STR("key", key),
                 LOG_STR("detail", "past its planned time and in no queue: queued again by the "
                         "resync"));
}

/* Re-examines every cached Secret whose planned time has passed: the store keeps
 * each one's planned time beside the queue, so whatever lost a key, it is forgotten
 * for one resync period at most. */
static void resync(struct controller *c, const char *why)
{
    struct resync_result r;
    size_t logged = 0;

    if (!acting(c))
        return; /* a standby does no work; a new term queues every key anyway */
    resync_run(&r, c->store, c->queue, clock_mono_ms(), resync_lost, &logged);
    if (r.lost) {
        atomic_fetch_add(&c->resync_requeued, (long)r.lost);
        log_warn("resync_requeued", LOG_STR("after", why), LOG_I64("requeued", (int64_t)r.lost),
                 LOG_I64("due", (int64_t)r.due));
    }
}

static size_t overdue(void *ctx)
{
    struct controller *c = ctx;

    if (!acting(c))
        return 0;
    return store_each_due(c->store, clock_mono_ms() - OVERDUE_MS, NULL, NULL);
}

/* A new term: reconcile every Secret, as after a start (level-triggered). */
static void on_started_leading(void *ctx)
{
    struct controller *c = ctx;

    store_each_key(c->store, requeue_key, c->queue);
    sleep_wake_all(); /* standby workers wait for this */
}

/* Workers check lease_is_leader() before each Secret; nothing to undo here. */
static void on_stopped_leading(void *ctx)
{
    (void)ctx;
}

/* The Lease's namespace: the setting, POD_NAMESPACE, or the in-cluster file. */
static int lease_namespace(char **out, const struct config *cfg)
{
    struct sbuf *ns = NULL;
    int rc;

    if (cfg->lease_namespace && *cfg->lease_namespace) {
        *out = xstrdup(cfg->lease_namespace);
        return 0;
    }
    const char *pod_ns = getenv("POD_NAMESPACE");
    if (pod_ns && *pod_ns) {
        *out = xstrdup(pod_ns);
        return 0;
    }
    if ((rc = sbuf_read_file(&ns, KUBE_SA_DIR "/namespace", 256)) < 0)
        return err_set(ERR_INVALID, "leader election: set leaderElection.namespace or "
                       "POD_NAMESPACE (not running in a cluster)");
    sbuf_rtrim(ns);
    *out = xstrdup(sbuf_expose(ns)); /* a namespace name, not a secret */
    sbuf_free(ns);
    return 0;
}

static int make_lease(struct controller *c, const struct kube_client_opts *copts)
{
    const struct config *cfg = c->cfg;
    struct kube_client_opts lo = *copts;
    char *ns = NULL;
    int rc;

    if (!cfg->leader_elect)
        return 0;
    lo.http.timeout_ms = lease_request_timeout_ms(cfg->renew_deadline_s * 1000);
    if ((rc = lease_namespace(&ns, cfg)) < 0 || (rc = kube_client_new(&c->lease_kube, &lo)) < 0)
        goto out;
    c->lease_id = lease_identity_new(cfg->instance);
    struct lease_opts o = {
        .ns = ns, .name = cfg->lease_name, .identity = c->lease_id,
        .lease_duration_s = cfg->lease_duration_s,
        .renew_deadline_ms = cfg->renew_deadline_s * 1000,
        .retry_period_ms = cfg->retry_period_s * 1000, .release_on_stop = true,
        .on_started_leading = on_started_leading, .on_stopped_leading = on_stopped_leading,
        .ctx = c,
    };
    rc = lease_elector_new(&c->lease, c->lease_kube, &o);
out:
    free(ns);
    return rc;
}

int controller_new(struct controller **out, const struct config *cfg)
{
    struct controller *c = xcalloc(1, sizeof(*c));
    struct kube_config_opts kopts = { .kubeconfig = cfg->kubeconfig, .context = cfg->context };
    struct kube_client_opts copts = { 0 };
    struct http_opts idp_http = { 0 };
    int rc;

    c->cfg = cfg;
    c->metrics = metrics_new();
    if ((rc = kube_config_load(&c->kcfg, &kopts)) < 0)
        goto fail;
    if (c->kcfg->insecure_skip_tls_verify)
        log_warn("insecure_kubernetes_tls", LOG_STR("detail", "the kubeconfig sets "
                 "insecure-skip-tls-verify: the API server's certificate is not verified"));
    copts.server = c->kcfg->server;
    if ((rc = kube_config_http_opts(&copts.http, c->kcfg)) < 0)
        goto fail;
    copts.bearer = bearer;
    copts.unauthorized = unauthorized;
    copts.bearer_ctx = c->kcfg;
    copts.observe = observe_request;
    copts.observe_ctx = c->metrics;
    if ((rc = kube_client_new(&c->kube, &copts)) < 0 || (rc = make_lease(c, &copts)) < 0 ||
        (rc = make_identity(c)) < 0)
        goto fail;
    idp_http.tls.ca_file = cfg->identity_ca_file;
    if ((rc = tokcache_new(&c->tokens, &idp_http, 0.25)) < 0)
        goto fail;
    if (cfg->insecure_skip_db_tls_verify)
        log_warn("insecure_database_tls", LOG_STR("detail", "--insecure-skip-db-tls-verify: "
                 "tokens are sent to PostgreSQL servers whose certificate is not verified"));
    c->pg = pg_check_cache_new(0, NULL);
    c->store = store_new();
    c->queue = queue_new();
    c->events = event_recorder_new("pgtoken-rotator", cfg->instance);
    struct sareg_opts so = {
        .kube = c->kube,
        .tenant_id = cfg->tenant_id ? cfg->tenant_id : getenv("AZURE_TENANT_ID"),
        .authority_host = cfg->authority_host ? cfg->authority_host
                                              : getenv("AZURE_AUTHORITY_HOST"),
        .allow_http_authority = cfg->insecure_http_authority,
    };
    c->sas = sareg_new(&so);
    c->rdeps = (struct liveio_deps){
        .store = c->store, .events = c->events, .tokens = c->tokens, .idp = c->idp,
        .sas = c->sas, .scope = cfg->scope, .pg = c->pg, .stats = &c->rstats,
        .pg_opts = { .sslmode = cfg->db_sslmode, .ca_file = cfg->db_ca_file,
                     .insecure_skip_tls_verify = cfg->insecure_skip_db_tls_verify,
                     .connect_timeout_s = cfg->db_connect_timeout_s },
    };
    c->rcfg = (struct reconcile_cfg){
        .policy = { cfg->refresh_ratio, cfg->jitter, cfg->min_remaining_s * 1000, 1000,
                    60 * 1000 },
        .login_check = cfg->login_check == LOGIN_CHECK_REQUIRED      ? SPEC_LOGIN_REQUIRED
                       : cfg->login_check == LOGIN_CHECK_BEST_EFFORT ? SPEC_LOGIN_BEST_EFFORT
                                                                     : SPEC_LOGIN_OFF,
        .own_identity = c->idp != NULL,
        .allow_own_identity = cfg->allow_controller_identity,
        .stats = &c->rstats, .on_failure = count_failure, .hook_ctx = c->metrics,
    };
    struct metrics_sources src = {
        .rot = &c->rstats, .watch = &c->wstats, .kube = kube_client_stats(c->kube),
        .tokens = c->tokens, .pg = c->pg, .store = c->store, .secret_status = c->store,
        .queue = c->queue,
        .lease = c->lease, .ready = ready, .ready_ctx = c,
        .overdue = overdue, .overdue_ctx = c, .resync_requeued = &c->resync_requeued,
    };
    if ((rc = metrics_register_app(c->metrics, &src)) < 0)
        goto fail;
    log_info("controller_configured", LOG_STR("server", c->kcfg->server),
             LOG_STR("credentials", kube_cred_kind_name(c->kcfg->cred_kind)),
             LOG_STR("identity", c->idp ? c->idp->id : "none"),
             LOG_BOOL("controller_identity_allowed", cfg->allow_controller_identity),
             LOG_STR("login_check", login_check_name(cfg->login_check)),
             LOG_STR("label_selector", cfg->label_selector), LOG_I64("workers", cfg->workers));
    *out = c;
    return 0;
fail:
    controller_free(c);
    return rc;
}

void controller_free(struct controller *c)
{
    if (!c)
        return;
    free(c->watchers);
    lease_elector_free(c->lease);
    kube_client_free(c->lease_kube);
    free(c->lease_id);
    metrics_free(c->metrics);
    sareg_free(c->sas);
    event_recorder_free(c->events);
    queue_free(c->queue);
    store_free(c->store);
    pg_check_cache_free(c->pg);
    tokcache_free(c->tokens);
    idp_free(c->idp);
    kube_client_free(c->kube);
    kube_config_free(c->kcfg);
    free(c);
}

bool controller_synced(struct controller *c)
{
    return (size_t)atomic_load(&c->synced) == c->nwatchers;
}

/* The per-Secret metrics are read from the store at scrape time
 * (metrics_sources.secret_status): nothing to tell them here. */
static void on_upsert(void *ctx, const char *key, bool changed)
{
    struct controller *c = ctx;

    if (changed)
        queue_add(c->queue, key);
}

static void on_delete(void *ctx, const char *key)
{
    struct controller *c = ctx;

    log_info("secret_forgotten", LOG_STR("key", key));
    queue_forget(c->queue, key); /* its backoff too */
    liveio_forget(&c->rdeps, key);
}

static void on_synced(void *ctx)
{
    struct controller *c = ctx;

    atomic_fetch_add(&c->synced, 1);
}

/* After every complete list, every cached Secret that needs work is in the queue,
 * whatever the upserts of the list queued or not. */
static void on_listed(void *ctx)
{
    resync(ctx, "list");
}

/* What the store keeps of each Secret's annotations: the pgtoken.io/ ones
 * (spec_parse refuses unknown ones, so all of them), less the status fields
 * that nothing reads back (reconcile reads issued-at, expires-at, spec-hash and
 * last-error; metrics expires-at and rotate-at). */
static const char *const unread_status[] = { STATUS_ROTATED_AT, STATUS_IDENTITY,
                                             STATUS_LAST_ERROR_AT, NULL };
static const struct kube_secret_keep keep_annotations = { SPEC_PREFIX, unread_status };

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    struct controller *c = w->c;
    struct kube_conn *k = NULL;
    struct watch_opts o = { .ns = w->ns, .label_selector = c->cfg->label_selector,
                            .timeout_s = c->cfg->watch_timeout_s,
                            .idle_timeout_s = c->cfg->watch_idle_timeout_s,
                            .relist_s = c->cfg->relist_s,
                            .keep = &keep_annotations };
    struct watch_handler h = { .on_upsert = on_upsert, .on_delete = on_delete,
                               .on_synced = on_synced, .on_listed = on_listed, .ctx = c };
    int rc;

    if ((rc = kube_conn_new(&k, c->kube)) < 0) {
        log_error("watch_not_started", LOG_ERR(rc));
        return NULL;
    }
    watch_run(k, c->store, &o, &h, c->stop, &c->wstats);
    kube_conn_free(k);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct controller *c = w->c;
    struct kube_conn *k = NULL;
    struct reconcile_io io;
    struct liveio live;
    char *key;
    int rc;

    if ((rc = kube_conn_new(&k, c->kube)) < 0) {
        log_error("worker_not_started", LOG_ERR(rc));
        return NULL;
    }
    liveio_init(&io, &live, &c->rdeps, k);
    while (!atomic_load(c->stop)) {
        struct reconcile_result res;
        uint64_t ticket = sleep_ticket(); /* before the check: a new term wakes us */
        if (!acting(c)) {
            /* Standby: keys wait in the queue; on_started_leading wakes us. The
             * timeout is only a safety net. */
            sleep_until_woken(STANDBY_RECHECK_MS, c->stop, ticket);
            continue;
        }
        if (!queue_get(c->queue, &key))
            break;
        if (!acting(c)) { /* lost it while waiting */
            queue_done(c->queue, key);
            queue_add(c->queue, key);
            free(key);
            continue;
        }
        struct queue_backoff qb;
        struct reconcile_backoff rb = { 0, 0, NULL };
        if (queue_backoff(c->queue, key, &qb))
            rb = (struct reconcile_backoff){ qb.failures, qb.not_before_ms - clock_mono_ms(),
                                             qb.tag };
        reconcile_secret(&res, &c->rcfg, &io, key, &rb);
        /* One planned time for the store and the queue, so that a resync never sees the
         * store's plan due while the queue's is not. It goes to the store before the key
         * is released: a change that arrives meanwhile runs the key again, and that
         * run's plan wins. */
        int64_t due = res.requeue_after_ms > 0 ? clock_mono_ms() + res.requeue_after_ms
                                               : STORE_DUE_NEVER;
        store_set_due(c->store, key, due);
        /* The backoff is recorded before the key is released: a change that arrived
         * meanwhile hands it out again at once, maybe to another worker, which must
         * see this failure counted and its wait in force. */
        if (res.reset_backoff)
            queue_backoff_reset(c->queue, key);
        if (res.backoff)
            queue_add_rate_limited(c->queue, key, due != STORE_DUE_NEVER ? due : clock_mono_ms(),
                                   res.spec_hash);
        queue_done(c->queue, key);
        if (!res.backoff && due != STORE_DUE_NEVER)
            queue_add_at(c->queue, key, due);
        free(key);
    }
    kube_conn_free(k);
    return NULL;
}

static void *lease_main(void *arg)
{
    struct controller *c = arg;

    lease_run(c->lease, &c->lease_stop);
    return NULL;
}

/* pthread_create, its error as ours: 0, or ERR_UNAVAILABLE naming the thread. */
static int start_thread(pthread_t *out, void *(*fn)(void *), void *arg, const char *what)
{
    int e = pthread_create(out, NULL, fn, arg);

    if (e)
        return err_set(ERR_UNAVAILABLE, "cannot start a %s thread: %s", what, strerror(e));
    return 0;
}

int controller_run(struct controller *c, atomic_bool *stop)
{
    const struct config *cfg = c->cfg;
    struct worker *workers;
    size_t nw = cfg->nnamespaces ? cfg->nnamespaces : 1, nw_started = 0;
    int nworkers = 0;
    bool lease_started = false;
    pthread_t lease_th = 0;
    struct httpd_opts ho = { .addr = cfg->metrics_addr, .metrics = c->metrics, .ready = ready,
                             .ready_ctx = c };
    int rc;

    /* One malloc arena for all threads: the workers' short-lived buffers then
     * reuse the same free blocks instead of each thread's arena keeping its own
     * (1.5 MB less RSS at 10,000 Secrets, no measurable CPU cost: the threads
     * mostly wait on the network). MALLOC_ARENA_MAX in the environment wins. */
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 1);
    /* Blocks of 128 KB and more (list pages, a scrape's sorted labels) always
     * mmapped and unmapped when freed: with glibc's sliding threshold, the first
     * one freed raises it and the later ones land in the heap, among the cached
     * Secrets, whose holes then stay resident (0.4 MB at 10,000 Secrets). */
    if (!getenv("MALLOC_MMAP_THRESHOLD_"))
        mallopt(M_MMAP_THRESHOLD, 128 << 10);
    c->stop = stop;
    c->nwatchers = nw; /* before /readyz can be asked */
    if ((rc = httpd_start(&c->httpd, &ho)) < 0)
        return rc;
    workers = xcalloc((size_t)cfg->workers, sizeof(*workers));
    c->watchers = xcalloc(nw, sizeof(*c->watchers));
    /* A thread that cannot start (no memory for its stack, a thread limit) stops the
     * start: the ones already running are stopped and joined below and the error
     * returned, rather than running short of a watch or joining a thread that
     * never was. */
    rc = 0;
    if (c->lease && (rc = start_thread(&lease_th, lease_main, c, "lease")) == 0)
        lease_started = true;
    for (; rc == 0 && nw_started < nw; nw_started++) {
        c->watchers[nw_started].c = c;
        c->watchers[nw_started].ns = cfg->nnamespaces ? cfg->namespaces[nw_started] : NULL;
        if ((rc = start_thread(&c->watchers[nw_started].th, watch_main,
                               &c->watchers[nw_started], "watch")) < 0)
            break;
    }
    for (; rc == 0 && nworkers < cfg->workers; nworkers++) {
        workers[nworkers].c = c;
        workers[nworkers].id = nworkers;
        if ((rc = start_thread(&workers[nworkers].th, worker_main, &workers[nworkers],
                               "worker")) < 0)
            break;
    }
    if (rc < 0) {
        log_error("thread_start_failed", LOG_I64("watches_started", (int64_t)nw_started),
                  LOG_I64("workers_started", nworkers), LOG_ERR(rc));
        atomic_store(stop, true);
    } else {
        log_info("controller_started", LOG_I64("watches", nw), LOG_I64("workers", cfg->workers));
    }
    /* The main loop only proves it turns (/healthz): one wake-up a second. Whoever
     * sets *stop wakes it (sleep_wake_all); it wakes every other sleeper in turn. */
    int64_t next_resync = clock_mono_ms() + cfg->resync_s * 1000;
    while (!atomic_load(stop)) {
        httpd_heartbeat(c->httpd);
        if (clock_mono_ms() >= next_resync) {
            if (controller_synced(c))
                resync(c, "period");
            next_resync = clock_mono_ms() + cfg->resync_s * 1000;
        }
        sleep_unless_stopped(HEARTBEAT_MS, stop);
    }
    sleep_wake_all();
    log_info("controller_stopping");
    queue_shutdown(c->queue);
    for (int i = 0; i < nworkers; i++)
        pthread_join(workers[i].th, NULL);
    for (size_t i = 0; i < nw_started; i++)
        pthread_join(c->watchers[i].th, NULL);
    if (lease_started) { /* the Lease goes last, once nothing writes any more */
        atomic_store(&c->lease_stop, true);
        sleep_wake_all();
        pthread_join(lease_th, NULL);
    }
    httpd_stop(c->httpd);
    c->httpd = NULL;
    free(workers);
    log_info("controller_stopped", LOG_I64("rotations", atomic_load(&c->rstats.rotations)),
             LOG_I64("failures", atomic_load(&c->rstats.rotation_failures)));
    return rc;
}
