/* lib/app/metrics and lib/app/httpd: the controller's families and the
 * listener, checked through the strict parser of the text exposition format
 * 0.0.4 in expo.h (independent of the renderer), and over HTTP with the
 * project's client (net/http) on
 * 127.0.0.1:0. The registry itself is tested in tests/unit/base/test_prom.c. */
#include "t.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>


#include "app/httpd.h"
#include "app/metrics.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/proc.h"
#include "base/json.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "idp/tokcache.h"
#include "kube/kclient.h"
#include "kube/queue.h"
#include "kube/secret.h"
#include "kube/store.h"
#include "kube/watch.h"
#include "net/http.h"
#include "pg/pgcheck.h"
#include "rot/reconcile.h"
#include "expo.h"

/* A whole scrape of m read into text (emptied first), as the listener reads
 * it. 0, or the negative code a read returned. */
static int scrape(struct buf *text, struct metrics *m)
{
    struct metrics_scrape *s = metrics_scrape_start(m);
    char piece[4096];
    long n;

    buf_release(text);
    buf_init(text, PROM_RENDER_MAX);
    while ((n = metrics_scrape_read(s, piece, sizeof(piece))) > 0 &&
           buf_add(text, piece, (size_t)n) == 0)
        ;
    metrics_scrape_free(s);
    return n > 0 ? ERR_TOOBIG : (int)n;
}

/* Scrapes m and parses the text strictly; the test fails with the reason. */
static bool render_parse(struct expo *x, struct metrics *m, struct buf *text)
{
    int rc = scrape(text, m);

    return expo_parse_scraped(x, rc, buf_str(text));
}

/* ---- The controller's families ----------------------------------------------- */

static int fake_check(struct pg_check_result *out, const struct pg_target *t,
                      const struct sbuf *token, const struct pg_check_opts *o, void *arg)
{
    (void)token, (void)o, (void)arg;
    memset(out, 0, sizeof(*out));
    out->login = strcmp(t->user, "refused") ? PG_LOGIN_OK : PG_LOGIN_REJECTED;
    return 0;
}

static struct kube_secret *secret(const char *ns, const char *name, const char *exp,
                                  const char *rot, bool deleting)
{
    char text[1024];
    cJSON *j = NULL;
    struct kube_secret *s = NULL;

    snprintf(text, sizeof(text),
             "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"1\"%s,"
             "\"annotations\":{\"%s\":\"%s\",\"%s\":\"%s\"}},\"data\":{}}",
             ns, name, deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "",
             STATUS_EXPIRES_AT, exp, STATUS_ROTATE_AT, rot);
    if (json_parse(&j, text, strlen(text), 1 << 20) == 0)
        kube_secret_from_json(&s, j);
    cJSON_Delete(j);
    return s;
}

static bool ready_flag(void *ctx)
{
    return atomic_load((atomic_bool *)ctx);
}

struct app_fixture {
    struct metrics *m;
    struct rot_stats rot;
    struct watch_stats watch;
    struct kube_client *kc;
    struct tokcache *tc;
    struct pg_check_cache *pg;
    struct store *st;
    struct queue *q;
    atomic_bool ready;
    atomic_long overdue, requeued;
};

static size_t overdue_count(void *ctx)
{
    return (size_t)atomic_load((atomic_long *)ctx);
}

static int fixture_init(struct app_fixture *f)
{
    struct kube_client_opts ko = { .server = "https://127.0.0.1:1" };
    struct http_opts ho = { 0 };
    struct pg_check_cache_hooks hooks = { .check = fake_check };
    int rc;

    memset(f, 0, sizeof(*f));
    if ((rc = kube_client_new(&f->kc, &ko)) < 0 || (rc = tokcache_new(&f->tc, &ho, 0.25)) < 0)
        return rc;
    f->pg = pg_check_cache_new(0, &hooks);
    f->st = store_new();
    f->q = queue_new();
    f->m = metrics_new();
    struct metrics_sources src = {
        .rot = &f->rot, .watch = &f->watch, .kube = kube_client_stats(f->kc), .tokens = f->tc,
        .pg = f->pg, .store = f->st, .secret_status = f->st, .queue = f->q, .lease = NULL,
        .ready = ready_flag, .ready_ctx = &f->ready, .version = "1.2.3", .revision = "abc\"def",
        .overdue = overdue_count, .overdue_ctx = &f->overdue, .resync_requeued = &f->requeued,
    };
    return metrics_register_app(f->m, &src);
}

static void fixture_release(struct app_fixture *f)
{
    metrics_free(f->m);
    queue_free(f->q);
    store_free(f->st);
    pg_check_cache_free(f->pg);
    tokcache_free(f->tc);
    kube_client_free(f->kc);
}

static void test_app_families(void)
{
    static const char *const names[] = {
        "build_info", "rotations_total", "rotation_failures_total", "secret_write_conflicts_total",
        "workload_restarts_total",
        "token_requests_total", "token_cache_hits_total", "token_request_duration_seconds",
        "login_checks_total", "login_check_duration_seconds", "login_check_cache_hits_total",
        "login_check_cache_failures_shared_total",
        "login_check_cache_shared_total", "login_check_cache_evictions_total",
        "login_check_cache_entries", "secret_token_expiry_timestamp_seconds", "secret_ready",
        "secret_next_rotation_timestamp_seconds", "managed_secrets", "watch_lists_total",
        "watch_restarts_total", "watch_events_total", "watch_expired_total",
        "relist_found_total", "kube_api_requests_total", "kube_api_request_duration_seconds", "kube_api_errors_total",
        "kube_api_conflicts_total", "kube_api_throttled_total", "workqueue_depth",
        "workqueue_delayed", "leader", "ready", "secrets_overdue", "resync_requeued_total",
    };
    /* the standard ones, without the prefix */
    static const char *const process[] = {
        "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
        "process_virtual_memory_bytes", "process_resident_memory_bytes",
        "process_start_time_seconds",
    };
    struct app_fixture f;
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    char full[160];

    if (fixture_init(&f) < 0) {
        t_fail(__FILE__, __LINE__, "fixture: %s", err_msg());
        goto out;
    }
    if (!render_parse(&x, f.m, &text))
        goto out;
    T_EQ_INT(x.nf, (int)(sizeof(names) / sizeof(names[0]) + sizeof(process) / sizeof(process[0])));
    for (size_t i = 0; i < sizeof(process) / sizeof(process[0]); i++) {
        /* one series each, read from /proc at the scrape */
        if (expo_count(&x, process[i]) != 1)
            t_fail(__FILE__, __LINE__, "%s: %d series", process[i], expo_count(&x, process[i]));
        else if (!(expo_get(&x, process[i], "") >= 0))
            t_fail(__FILE__, __LINE__, "%s is %g", process[i], expo_get(&x, process[i], ""));
    }
    T_EQ_STR(fam_type(&x, "process_cpu_seconds_total"), "counter");
    T_EQ_STR(fam_type(&x, "process_start_time_seconds"), "gauge");
    T_CHECK(expo_get(&x, "process_open_fds", "") >= 3);
    T_CHECK(expo_get(&x, "process_max_fds", "") >= expo_get(&x, "process_open_fds", ""));
    T_CHECK(expo_get(&x, "process_start_time_seconds", "") > 1.7e9);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct x_family *fam;
        snprintf(full, sizeof(full), METRICS_PREFIX "%s", names[i]);
        fam = expo_family(&x, full);
        if (!fam) {
            t_fail(__FILE__, __LINE__, "family %s missing", full);
            continue;
        }
        /* counters are named _total, nothing else is */
        if ((strcmp(fam->type, "counter") == 0) != (strstr(full, "_total") != NULL))
            t_fail(__FILE__, __LINE__, "%s is a %s", full, fam->type);
        if (!*fam->help)
            t_fail(__FILE__, __LINE__, "%s has no help", full);
    }
    T_CHECK(expo_get(&x, "pgtoken_rotator_build_info", "version=1.2.3,revision=abc\"def") == 1);
    T_CHECK(expo_get(&x, "pgtoken_rotator_rotations_total", "result=success") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_rotation_failures_total", "reason=LoginFailed") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_leader", "") == 1); /* no election: leads */
    T_CHECK(expo_get(&x, "pgtoken_rotator_ready", "") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_managed_secrets", "") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_secrets_overdue", "") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_resync_requeued_total", "") == 0);
    /* the latency histograms exist from the start, empty (rate() has a series) */
    T_CHECK(expo_get(&x, "pgtoken_rotator_login_check_duration_seconds_bucket", "le=+Inf") == 0);
    T_CHECK(expo_get(&x, "pgtoken_rotator_token_request_duration_seconds_count", "") == 0);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_token_request_duration_seconds_bucket"), 13);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_kube_api_request_duration_seconds_count"), 0);
    T_RC(metrics_register_app(f.m, &(struct metrics_sources){ 0 }), ERR_INVALID);
out:
    expo_free(&x);
    buf_release(&text);
    fixture_release(&f);
}

static void test_app_values_move(void)
{
    struct app_fixture f;
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    struct kube_secret *s1 = NULL, *s2 = NULL, *s3 = NULL;
    struct pg_check_result res;
    struct pg_target t = { "db.example.test", 5432, "app", "role" };
    struct sbuf *tok = sbuf_from("header.payload.signature", 24);
    struct tokcache_stats *ts;
    struct kube_stats *ks;

    if (fixture_init(&f) < 0) {
        t_fail(__FILE__, __LINE__, "fixture: %s", err_msg());
        goto out;
    }
    /* what the modules count */
    atomic_fetch_add(&f.rot.rotations, 3);
    atomic_fetch_add(&f.rot.rotation_failures, 2);
    atomic_fetch_add(&f.rot.noop, 1);
    atomic_fetch_add(&f.rot.conflicts, 4);
    atomic_fetch_add(&f.rot.restarts, 2);
    atomic_fetch_add(&f.rot.login[PG_LOGIN_OK], 3);
    atomic_fetch_add(&f.rot.login[PG_LOGIN_TLS], 1);
    /* four checks: 3 ms, 40 ms, 1.2 s, 1.257 s */
    latency_hist_observe_ms(&f.rot.login_latency, 3);
    latency_hist_observe_ms(&f.rot.login_latency, 40);
    latency_hist_observe_ms(&f.rot.login_latency, 1200);
    latency_hist_observe_ms(&f.rot.login_latency, 1257);
    atomic_fetch_add(&f.watch.lists, 2);
    atomic_fetch_add(&f.watch.restarts, 5);
    atomic_fetch_add(&f.watch.events, 40);
    atomic_fetch_add(&f.watch.gone, 1);
    atomic_fetch_add(&f.watch.relist_found, 3);
    ts = tokcache_stats(f.tc);
    atomic_fetch_add(&ts->requests, 4);
    atomic_fetch_add(&ts->failures, 1);
    atomic_fetch_add(&ts->hits, 9);
    for (int i = 0; i < 4; i++) /* four requests: 300 ms each */
        latency_hist_observe_ms(&ts->latency, 300);
    ks = kube_client_stats(f.kc);
    atomic_fetch_add(&ks->errors, 6);
    atomic_fetch_add(&ks->conflicts, 2);
    atomic_fetch_add(&ks->throttled, 1);
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    t.user = "refused"; /* a failure, kept: the second call is answered with it */
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    pg_check_cached(&res, f.pg, &t, tok, 4102444800, NULL);
    queue_add(f.q, "ns/a");
    queue_add_after(f.q, "ns/b", 60000);
    s1 = secret("team-a", "db", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", false);
    s2 = secret("team-b", "db", "garbage", "2026-11-23T17:30:00.5Z", false);
    store_upsert(f.st, kube_secret_dup(s1));
    store_upsert(f.st, kube_secret_dup(s2));
    atomic_store(&f.ready, true);
    atomic_store(&f.overdue, 7);
    atomic_store(&f.requeued, 3);
    /* per-Secret series come from the store's status annotations at the scrape */
    store_upsert(f.st, secret("team-c", "x", "2027-01-15T08:00:00Z", "2027-01-15T05:13:20Z",
                              false));
    metrics_api_request(f.m, "GET", 200, 12);
    metrics_api_request(f.m, "get", 404, 3);
    metrics_api_request(f.m, "PUT", 409, 40);
    metrics_api_request(f.m, "PATCH", 0, 30000);
    metrics_api_request(f.m, "WATCH", 200, 300000);
    metrics_api_request(f.m, "BREW", 418, 1);
    metrics_api_request(f.m, "POST", 201, 5);
    metrics_api_request(f.m, "post", 201, 5);
    metrics_api_request(f.m, "DELETE", 99, 5);   /* not a status: no answer */
    metrics_api_request(f.m, "DELETE", 600, 5);
    metrics_rotation_failure(f.m, "LoginFailed");
    metrics_rotation_failure(f.m, "LoginFailed");
    metrics_rotation_failure(f.m, "TokenFailed");
    metrics_rotation_failure(f.m, "Surprise");

    if (!render_parse(&x, f.m, &text))
        goto out;
#define G(name, labels) expo_get(&x, "pgtoken_rotator_" name, labels)
    T_CHECK(G("rotations_total", "result=success") == 3);
    T_CHECK(G("rotations_total", "result=failure") == 2);
    T_CHECK(G("rotations_total", "result=noop") == 1);
    T_CHECK(G("secret_write_conflicts_total", "") == 4);
    T_CHECK(G("workload_restarts_total", "") == 2);
    T_CHECK(G("rotation_failures_total", "reason=LoginFailed") == 2);
    T_CHECK(G("rotation_failures_total", "reason=TokenFailed") == 1);
    T_CHECK(G("rotation_failures_total", "reason=WriteFailed") == 0);
    T_CHECK(G("rotation_failures_total", "reason=Other") == 1);
    T_CHECK(G("login_checks_total", "result=ok") == 3);
    T_CHECK(G("login_checks_total", "result=tls") == 1);
    T_CHECK(G("login_checks_total", "result=unreachable") == 0);
    T_CHECK(G("login_check_duration_seconds_sum", "") == 2.5);
    T_CHECK(G("login_check_duration_seconds_count", "") == 4);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=0.005") == 1);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=0.025") == 1);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=0.1") == 2);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=1") == 2);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=2") == 4);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=60") == 4);
    T_CHECK(G("login_check_duration_seconds_bucket", "le=+Inf") == 4);
    T_CHECK(G("token_requests_total", "result=success") == 3);
    T_CHECK(G("token_requests_total", "result=failure") == 1);
    T_CHECK(G("token_cache_hits_total", "") == 9);
    T_CHECK(G("token_request_duration_seconds_sum", "") == 1.2);
    T_CHECK(G("token_request_duration_seconds_count", "") == 4);
    T_CHECK(G("token_request_duration_seconds_bucket", "le=0.25") == 0);
    T_CHECK(G("token_request_duration_seconds_bucket", "le=0.5") == 4);
    T_CHECK(G("token_request_duration_seconds_bucket", "le=+Inf") == 4);
    T_EQ_STR(fam_type(&x, "pgtoken_rotator_token_request_duration_seconds"), "histogram");
    T_CHECK(G("login_check_cache_hits_total", "") == 1);
    T_CHECK(G("login_check_cache_failures_shared_total", "") == 1);
    T_CHECK(G("login_check_cache_entries", "") == 2);
    T_CHECK(G("watch_lists_total", "") == 2);
    T_CHECK(G("watch_restarts_total", "") == 5);
    T_CHECK(G("watch_events_total", "") == 40);
    T_CHECK(G("watch_expired_total", "") == 1);
    T_CHECK(G("relist_found_total", "") == 3);
    T_CHECK(G("kube_api_errors_total", "") == 6);
    T_CHECK(G("kube_api_conflicts_total", "") == 2);
    T_CHECK(G("kube_api_throttled_total", "") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=get,code=200") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=get,code=404") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=put,code=409") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=patch,code=error") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=watch,code=200") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=other,code=418") == 1);
    T_CHECK(G("kube_api_requests_total", "verb=post,code=201") == 2);
    T_CHECK(G("kube_api_requests_total", "verb=delete,code=error") == 2);
    T_CHECK(G("kube_api_requests_total", "verb=get,code=4xx") == -12345); /* no classes */
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_kube_api_requests_total"), 8);
    T_CHECK(G("kube_api_request_duration_seconds_count", "verb=get") == 2);
    T_CHECK(G("kube_api_request_duration_seconds_bucket", "verb=get,le=0.005") == 1);
    T_CHECK(G("kube_api_request_duration_seconds_bucket", "verb=get,le=0.025") == 2);
    T_CHECK(G("kube_api_request_duration_seconds_bucket", "verb=patch,le=30") == 1);
    T_CHECK(G("kube_api_request_duration_seconds_count", "verb=watch") == -12345);
    T_CHECK(G("managed_secrets", "") == 3);
    T_CHECK(G("workqueue_depth", "") == 1);
    T_CHECK(G("workqueue_delayed", "") == 1);
    T_CHECK(G("ready", "") == 1);
    T_CHECK(G("secrets_overdue", "") == 7);
    T_CHECK(G("resync_requeued_total", "") == 3);
    /* 2026-11-23T18:00:00Z = 1795456800 */
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800 - 1800);
    /* an unparsable expiry is no series at all, not a 0 that would fire alerts */
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-b,secret=db") == -12345);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-b,secret=db") ==
            1795456800 - 1800);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-c,secret=x") == 1.8e9);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-c,secret=x") ==
            1.8e9 - 10000);
    T_CHECK(strstr(buf_str(&text), "header.payload") == NULL); /* nothing secret */
    expo_free(&x);
    buf_release(&text);

    /* counters move on, Secrets go */
    atomic_fetch_add(&f.rot.rotations, 1);
    atomic_fetch_add(&f.watch.restarts, 1);
    store_delete(f.st, "team-b/db");
    s3 = secret("team-a", "db", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", true);
    store_upsert(f.st, kube_secret_dup(s3)); /* being deleted: no series */
    store_upsert(f.st, secret("team-c", "x", "2027-01-15T08:00:00Z", "", false));
    if (!render_parse(&x, f.m, &text))
        goto out;
    T_CHECK(G("rotations_total", "result=success") == 4);
    T_CHECK(G("watch_restarts_total", "") == 6);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 1);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_next_rotation_timestamp_seconds"), 0);
    store_delete(f.st, "team-a/db");
    store_delete(f.st, "team-c/x");
    expo_free(&x);
    buf_release(&text);
    if (!render_parse(&x, f.m, &text))
        goto out;
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 0);
#undef G
    /* every call takes NULL */
    metrics_api_request(NULL, "GET", 200, 1);
    metrics_rotation_failure(NULL, "TokenFailed");
out:
    expo_free(&x);
    buf_release(&text);
    kube_secret_free(s1);
    kube_secret_free(s2);
    kube_secret_free(s3);
    sbuf_free(tok);
    fixture_release(&f);
}

/* Drops the samples of the process_* families (they move between two scrapes). */
static void strip_process(struct buf *b)
{
    size_t w = 0;

    for (size_t r = 0; r < b->len;) {
        const char *nl = memchr(b->ptr + r, '\n', b->len - r);
        size_t n = nl ? (size_t)(nl - (b->ptr + r)) + 1 : b->len - r;
        if (strncmp(b->ptr + r, "process_", 8)) {
            memmove(b->ptr + w, b->ptr + r, n);
            w += n;
        }
        r += n;
    }
    b->len = w;
    if (b->ptr)
        b->ptr[w] = '\0';
}

/* With secret_status, the per-Secret gauges come from the store at scrape time:
 * nothing is kept per Secret in the registry, and a Secret gone from the store
 * is gone from the next scrape without any call. */
static void test_app_secret_gauges_from_store(void)
{
    struct metrics *m = metrics_new();
    struct store *st = store_new();
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    struct metrics_sources src = { .store = st, .secret_status = st };
    const char *body;
    char name[32];

    T_RC(metrics_register_app(m, &src), 0);
    store_upsert(st, secret("team-b", "db", "garbage", "2026-11-23T17:30:00Z", false));
    store_upsert(st, secret("team-a", "db", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", false));
    store_upsert(st, secret("team-a", "old", "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z", true));
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "s-%03d", 299 - i);
        store_upsert(st, secret("bulk", name, "2026-11-23T18:00:00Z", "2026-11-23T17:30:00Z",
                                false));
    }
    if (!render_parse(&x, m, &text))
        goto out;
#define G(name, labels) expo_get(&x, "pgtoken_rotator_" name, labels)
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-a,secret=db") ==
            1795456800 - 1800);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-b,secret=db") == -12345);
    T_CHECK(G("secret_next_rotation_timestamp_seconds", "namespace=team-b,secret=db") ==
            1795456800 - 1800);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=old") == -12345);
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=bulk,secret=s-123") ==
            1795456800);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 301);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_next_rotation_timestamp_seconds"), 302);
    /* sorted by label values */
    body = buf_str(&text);
    T_CHECK(strstr(body, "namespace=\"bulk\",secret=\"s-000\"") <
            strstr(body, "namespace=\"bulk\",secret=\"s-001\""));
    T_CHECK(strstr(body, "namespace=\"bulk\",secret=\"s-299\"") <
            strstr(body, "namespace=\"team-a\",secret=\"db\""));
    expo_free(&x);
    buf_release(&text);
    /* gone from the store: gone from the scrape */
    T_CHECK(store_delete(st, "team-a/db"));
    if (!render_parse(&x, m, &text))
        goto out;
    T_CHECK(G("secret_token_expiry_timestamp_seconds", "namespace=team-a,secret=db") == -12345);
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds"), 300);
#undef G
    /* read a piece at a time (the listener's way): the same bytes, over several
     * batches of source series */
    {
        struct metrics_scrape *sc = metrics_scrape_start(m);
        struct buf pieces = BUF_INIT(PROM_RENDER_MAX);
        char piece[7];
        long n;
        while ((n = metrics_scrape_read(sc, piece, sizeof(piece))) > 0)
            T_RC(buf_add(&pieces, piece, (size_t)n), 0);
        T_EQ_INT(n, 0);
        T_EQ_INT(metrics_scrape_read(sc, piece, sizeof(piece)), 0); /* and stays over */
        metrics_scrape_free(sc);
        strip_process(&pieces);
        strip_process(&text);
        T_EQ_INT(pieces.len, text.len);
        T_CHECK(pieces.len == text.len && !memcmp(pieces.ptr, text.ptr, text.len));
        buf_release(&pieces);
    }
out:
    expo_free(&x);
    buf_release(&text);
    metrics_free(m);
    store_free(st);
}

/* A Secret with the given annotations (a JSON object's members, may be ""),
 * kept as the controller keeps it: only pgtoken.io/ annotations. */
static struct kube_secret *secret_ann(const char *ns, const char *name, const char *ann,
                                      bool deleting)
{
    static const char *const skip[] = { STATUS_LAST_ERROR_AT, NULL };
    static const struct kube_secret_keep keep = { "pgtoken.io/", skip };
    char text[2048];
    cJSON *j = NULL;
    struct kube_secret *s = NULL;

    snprintf(text, sizeof(text),
             "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"1\"%s,"
             "\"annotations\":{\"other.example/x\":\"InvalidConfig: not ours\"%s%s}},"
             "\"data\":{}}",
             ns, name, deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "",
             *ann ? "," : "", ann);
    if (json_parse(&j, text, strlen(text), 1 << 20) == 0)
        kube_secret_from_json_keep(&s, j, &keep);
    cJSON_Delete(j);
    return s;
}

#define EXP_FUTURE "\"pgtoken.io/status.expires-at\":\"2099-01-01T00:00:00Z\""
#define EXP_PAST "\"pgtoken.io/status.expires-at\":\"2001-01-01T00:00:00Z\""
#define LAST_ERROR(text) "\"pgtoken.io/status.last-error\":\"" text "\""

/* The readiness of one Secret, each way it can be, at a fixed now. */
static void test_secret_readiness(void)
{
    static const struct {
        const char *ann;
        bool ready;
        const char *reason;
    } cases[] = {
        { EXP_FUTURE, true, "Ready" },
        { EXP_FUTURE ",\"pgtoken.io/status.rotate-at\":\"2001-01-01T00:00:00Z\"", true, "Ready" },
        { EXP_PAST, false, "Expired" },
        { "\"pgtoken.io/status.expires-at\":\"2026-11-23T18:00:00Z\"", false, "Expired" }, /* == now */
        { "\"pgtoken.io/status.expires-at\":\"2026-11-23T18:00:01Z\"", true, "Ready" },
        { "", false, "Pending" },
        { "\"pgtoken.io/host\":\"db.example.test\"", false, "Pending" },
        { "\"pgtoken.io/status.expires-at\":\"garbage\"", false, "Pending" },
        /* an error wins over a good token: the Secret is not what its user asked for */
        { EXP_FUTURE "," LAST_ERROR("InvalidConfig: unknown annotation pgtoken.io/hots; did you "
                                    "mean pgtoken.io/host?; nothing was written"),
          false, "InvalidConfig" },
        { EXP_PAST "," LAST_ERROR("TokenFailed: token endpoint answered 401"), false,
          "TokenFailed" },
        { LAST_ERROR("LoginFailed: password authentication failed for user \\\"app\\\""), false,
          "LoginFailed" },
        { EXP_FUTURE "," LAST_ERROR("WriteFailed: 403 Forbidden"), false, "WriteFailed" },
        { LAST_ERROR("SomethingNew: x"), false, "SomethingNew" },
        { LAST_ERROR("Abcdefghijklmnopqrstuvwxyzabcdef: 32 letters"), false,
          "Abcdefghijklmnopqrstuvwxyzabcdef" },
        { LAST_ERROR("Abcdefghijklmnopqrstuvwxyzabcdefg: 33 letters"), false, "Other" },
        { LAST_ERROR("no colon at all"), false, "Other" },
        { LAST_ERROR("Two words: x"), false, "Other" },
        { LAST_ERROR("Tok3n: x"), false, "Other" },
        { LAST_ERROR(": x"), false, "Other" },
        { LAST_ERROR("Token\\\"Failed\\\": x"), false, "Other" },
        { LAST_ERROR("Tokén: x"), false, "Other" },
        { EXP_FUTURE "," LAST_ERROR(""), false, "Other" },
    };
    const int64_t now = 1795456800; /* 2026-11-23T18:00:00Z */
    char reason[METRICS_READY_REASON_MAX + 1];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kube_secret *s = secret_ann("ns", "s", cases[i].ann, false);
        if (!s) {
            t_fail(__FILE__, __LINE__, "case %zu: no Secret (%s)", i, err_msg());
            continue;
        }
        memset(reason, 'x', sizeof(reason));
        if (metrics_secret_readiness(reason, s, now) != cases[i].ready)
            t_fail(__FILE__, __LINE__, "case %zu (%s): ready is not %d", i, cases[i].ann,
                   cases[i].ready);
        if (memchr(reason, '\0', sizeof(reason)) == NULL || strcmp(reason, cases[i].reason))
            t_fail(__FILE__, __LINE__, "case %zu (%s): reason \"%.*s\", want \"%s\"", i,
                   cases[i].ann, (int)sizeof(reason), reason, cases[i].reason);
        kube_secret_free(s);
    }
}

/* pgtoken_rotator_secret_ready: one series per cached Secret, made at scrape
 * time from the store, whatever its state; none for a Secret being deleted, or
 * once it is gone from the store. */
static void test_app_secret_ready(void)
{
    struct metrics *m = metrics_new(), *m2 = metrics_new();
    struct store *st = store_new();
    struct buf text = BUF_INIT(0);
    struct expo x = { 0 };
    struct metrics_sources src = { .store = st, .secret_status = st };
    struct metrics_sources no_status = { .store = st };

    T_RC(metrics_register_app(m, &src), 0);
    store_upsert(st, secret_ann("team-a", "good", EXP_FUTURE, false));
    store_upsert(st, secret_ann("team-a", "new", "", false));
    store_upsert(st, secret_ann("team-a", "old", EXP_PAST, false));
    store_upsert(st, secret_ann("team-b", "typo",
                                LAST_ERROR("InvalidConfig: unknown annotation pgtoken.io/hots"),
                                false));
    store_upsert(st, secret_ann("team-b", "denied",
                                EXP_FUTURE "," LAST_ERROR("LoginFailed: role \\\"app\\\""), false));
    store_upsert(st, secret_ann("team-b", "odd", LAST_ERROR("who knows"), false));
    store_upsert(st, secret_ann("team-b", "going", EXP_FUTURE, true));
    if (!render_parse(&x, m, &text))
        goto out;
#define G(labels) expo_get(&x, "pgtoken_rotator_secret_ready", labels)
    T_EQ_STR(fam_type(&x, "pgtoken_rotator_secret_ready"), "gauge");
    T_CHECK(*fam_help(&x, "pgtoken_rotator_secret_ready") != '\0');
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_ready"), 6);
    T_CHECK(G("namespace=team-a,secret=good,reason=Ready") == 1);
    T_CHECK(G("namespace=team-a,secret=new,reason=Pending") == 0);
    T_CHECK(G("namespace=team-a,secret=old,reason=Expired") == 0);
    T_CHECK(G("namespace=team-b,secret=typo,reason=InvalidConfig") == 0);
    T_CHECK(G("namespace=team-b,secret=denied,reason=LoginFailed") == 0);
    T_CHECK(G("namespace=team-b,secret=odd,reason=Other") == 0);
    T_CHECK(G("namespace=team-b,secret=going,reason=Ready") == -12345);
    expo_free(&x);
    buf_release(&text);
    /* the error is cleared and a token written: the series changes its reason */
    store_upsert(st, secret_ann("team-b", "typo", EXP_FUTURE, false));
    T_CHECK(store_delete(st, "team-a/old"));
    if (!render_parse(&x, m, &text))
        goto out;
    T_EQ_INT(expo_count(&x, "pgtoken_rotator_secret_ready"), 5);
    T_CHECK(G("namespace=team-b,secret=typo,reason=Ready") == 1);
    T_CHECK(G("namespace=team-b,secret=typo,reason=InvalidConfig") == -12345);
    T_CHECK(G("namespace=team-a,secret=old,reason=Expired") == -12345);
#undef G
    expo_free(&x);
    buf_release(&text);
    /* without secret_status there is nothing to read it from: no family */
    T_RC(metrics_register_app(m2, &no_status), 0);
    if (!render_parse(&x, m2, &text))
        goto out;
    T_CHECK(expo_family(&x, "pgtoken_rotator_secret_ready") == NULL);
    T_CHECK(expo_get(&x, "pgtoken_rotator_managed_secrets", "") == 6);
out:
    expo_free(&x);
    buf_release(&text);
    metrics_free(m);
    metrics_free(m2);
    store_free(st);
}

/* ---- The listener ------------------------------------------------------------ */

struct fetched {
    long status;
    char body[1 << 16];
    size_t len;
    char content_type[128];
};

/* One request with the project's HTTP client (lib/net/http.c), a new
 * connection each time. */
static int fetch(struct fetched *out, const char *method, int port, const char *path)
{
    struct http_opts o = { .timeout_ms = 5000 };
    struct http_client *c = NULL;
    struct http_resp resp = HTTP_RESP_INIT;
    char url[256];
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct http_req req = { .method = method, .url = url };
    if (!strcmp(method, "POST"))
        req.body = "x=1", req.body_len = 3, req.content_type = "application/x-www-form-urlencoded";
    if ((rc = http_client_new(&c, &o)) == 0 && (rc = http_do(&resp, c, &req)) == 0) {
        out->status = resp.status;
        snprintf(out->content_type, sizeof(out->content_type), "%s", resp.content_type);
        if (resp.body.len >= sizeof(out->body))
            rc = -1;
        else
            memcpy(out->body, resp.body.ptr ? resp.body.ptr : "", resp.body.len + 1), out->len = resp.body.len;
    }
    http_resp_release(&resp);
    http_client_free(c);
    return rc == 0 ? 0 : -1;
}

/* Open descriptors, as the process metrics count them (base/proc.h); -1 when unreadable. */
static int count_fds(void)
{
    struct proc_stats ps;

    return proc_stats_read(&ps) == 0 ? (int)ps.open_fds : -1;
}

static void test_httpd_endpoints(void)
{
    struct app_fixture f;
    struct httpd *h = NULL;
    struct fetched *r = calloc(1, sizeof(*r));
    struct expo x = { 0 };
    int fds_before = count_fds(), port;

    if (fixture_init(&f) < 0) {
        t_fail(__FILE__, __LINE__, "fixture: %s", err_msg());
        goto out;
    }
    struct httpd_opts o = { .addr = "127.0.0.1:0", .metrics = f.m, .heartbeat_timeout_ms = 400,
                            .ready = ready_flag, .ready_ctx = &f.ready };
    T_RC(httpd_start(&h, &o), 0);
    if (!h)
        goto out;
    port = httpd_port(h);
    T_CHECK(port > 0 && port < 65536);

    atomic_fetch_add(&f.rot.rotations, 7);
    store_upsert(f.st, secret("ns", "s", "2027-01-15T08:00:00Z", "2027-01-15T05:13:20Z", false));
    T_RC(fetch(r, "GET", port, "/metrics"), 0);
    T_EQ_INT(r->status, 200);
    T_EQ_STR(r->content_type, "text/plain; version=0.0.4; charset=utf-8");
    if (expo_parse(&x, r->body) < 0)
        t_fail(__FILE__, __LINE__, "exposition over HTTP rejected: %s", x.why);
    T_CHECK(expo_get(&x, "pgtoken_rotator_rotations_total", "result=success") == 7);
    T_CHECK(expo_get(&x, "pgtoken_rotator_secret_token_expiry_timestamp_seconds",
                     "namespace=ns,secret=s") == 1.8e9);
    expo_free(&x);

    T_RC(fetch(r, "GET", port, "/healthz"), 0);
    T_EQ_INT(r->status, 200);
    T_EQ_STR(r->body, "ok\n");
    T_RC(fetch(r, "GET", port, "/readyz"), 0);
    T_EQ_INT(r->status, 503);
    atomic_store(&f.ready, true);
    T_RC(fetch(r, "GET", port, "/readyz?verbose=1"), 0);
    T_EQ_INT(r->status, 200);
    T_RC(fetch(r, "HEAD", port, "/metrics"), 0);
    T_EQ_INT(r->status, 200);
    T_EQ_INT(r->len, 0);
    T_RC(fetch(r, "POST", port, "/metrics"), 0);
    T_EQ_INT(r->status, 405);
    T_RC(fetch(r, "GET", port, "/"), 0);
    T_EQ_INT(r->status, 404);
    T_RC(fetch(r, "GET", port, "/metrics/../healthz"), 0);
    T_CHECK(r->status == 404 || r->status == 200); /* never anything else */

    /* a stale heartbeat fails /healthz, a new one heals it */
    usleep(600 * 1000);
    T_RC(fetch(r, "GET", port, "/healthz"), 0);
    T_EQ_INT(r->status, 500);
    T_CHECK(strstr(r->body, "main loop") != NULL);
    httpd_heartbeat(h);
    T_RC(fetch(r, "GET", port, "/healthz"), 0);
    T_EQ_INT(r->status, 200);

    /* the port is taken while it runs */
    {
        char addr[32];
        struct httpd *h2 = NULL;
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        struct httpd_opts o2 = { .addr = addr };
        T_RC(httpd_start(&h2, &o2), ERR_IO);
        T_CHECK(h2 == NULL);
    }
    httpd_stop(h);
    h = NULL;
    T_CHECK(fetch(r, "GET", port, "/healthz") < 0); /* closed */
out:
    httpd_stop(h);
    fixture_release(&f);
    free(r);
    T_EQ_INT(count_fds(), fds_before);
}

static void test_httpd_addresses(void)
{
    static const char *const bad[] = { "9090", "localhost", ":", ":99999", ":90a", "::1:80",
                                       "[::1]80", "[::1", "host:-1", "a b:80" };
    struct httpd *h = (struct httpd *)1;
    struct fetched *r = calloc(1, sizeof(*r));

    T_CHECK(httpd_addr_off(NULL) && httpd_addr_off("") && httpd_addr_off("0"));
    T_CHECK(!httpd_addr_off(":9090"));
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "" }), 0);
    T_CHECK(h == NULL);
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "0" }), 0);
    T_CHECK(h == NULL);
    httpd_heartbeat(NULL);
    httpd_stop(NULL);
    T_EQ_INT(httpd_port(NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = httpd_start(&h, &(struct httpd_opts){ .addr = bad[i] });
        if (rc != ERR_INVALID)
            t_fail(__FILE__, __LINE__, "address \"%s\": %d, want ERR_INVALID", bad[i], rc);
        httpd_stop(h);
    }
    /* every address (dual stack), then reached over IPv4 loopback; no registry: 404 */
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = ":0" }), 0);
    if (h) {
        T_RC(fetch(r, "GET", httpd_port(h), "/metrics"), 0);
        T_EQ_INT(r->status, 404);
        T_RC(fetch(r, "GET", httpd_port(h), "/readyz"), 0);
        T_EQ_INT(r->status, 200); /* no ready callback: ready */
        httpd_stop(h);
    }
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "localhost:0" }), 0);
    httpd_stop(h);
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "192.0.2.1:0" }), ERR_IO); /* not ours */
    free(r);
}

int main(void)
{
    log_set_level(LOG_OFF);
    http_global_init();
    T_RUN(test_app_families);
    T_RUN(test_app_values_move);
    T_RUN(test_app_secret_gauges_from_store);
    T_RUN(test_secret_readiness);
    T_RUN(test_app_secret_ready);
    T_RUN(test_httpd_endpoints);
    T_RUN(test_httpd_addresses);
    http_global_cleanup();
    return t_done();
}
