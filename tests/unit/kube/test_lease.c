/* lib/kube/lease: leader election against the fake API server (run through
 * tests/unit/kube/with-kube.sh, which starts it). Short durations keep the
 * test quick: lease 4 s, renew deadline 2.5 s, retry period 0.5 s. */
#include "t.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "base/clock.h"
#include "base/sleep.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "kube/kclient.h"
#include "kube/kconfig.h"
#include "kube/lease.h"
#include "net/http.h"

#define LEASE_S 4
#define DEADLINE_MS 2500
#define RETRY_MS 500

static struct {
    bool loaded;
    char why[256];
    const char *url, *ca, *ns;
    struct kube_config *kcfg;
    struct kube_client *kc;
    struct kube_conn *k; /* the test's own connection */
} env;

static int bearer(struct sbuf **out, uint64_t *generation, void *ctx)
{
    *generation = 0;
    return kube_config_bearer(out, ctx);
}

static bool need_env(void)
{
    const char *kcfg = getenv("PGTR_TEST_KUBECONFIG");
    struct kube_config_opts ko = { 0 };
    struct kube_client_opts co = { 0 };
    int rc;

    if (env.loaded)
        goto out;
    env.loaded = true;
    env.url = getenv("PGTR_TEST_KUBE_URL");
    env.ca = getenv("PGTR_TEST_KUBE_CA");
    env.ns = getenv("PGTR_TEST_KUBE_NS");
    if (!kcfg || !env.url || !env.ca || !env.ns) {
        snprintf(env.why, sizeof(env.why), "PGTR_TEST_KUBECONFIG and friends are not set: run "
                 "this binary through tests/unit/kube/with-kube.sh, which starts the fake");
        goto out;
    }
    ko.kubeconfig = kcfg;
    if ((rc = kube_config_load(&env.kcfg, &ko)) < 0 ||
        (rc = kube_config_http_opts(&co.http, env.kcfg)) < 0) {
        snprintf(env.why, sizeof(env.why), "kubeconfig: %s", err_msg());
        goto out;
    }
    co.server = env.kcfg->server;
    co.bearer = bearer;
    co.bearer_ctx = env.kcfg;
    if ((rc = kube_client_new(&env.kc, &co)) < 0 || (rc = kube_conn_new(&env.k, env.kc)) < 0)
        snprintf(env.why, sizeof(env.why), "client: %s", err_msg());
out:
    if (*env.why)
        t_fail(__FILE__, __LINE__, "%s", env.why);
    return !*env.why;
}

static void env_release(void)
{
    kube_conn_free(env.k);
    kube_client_free(env.kc);
    kube_config_free(env.kcfg);
}

/* ---- The fake's control API and the Lease as the server holds it --------- */

/* One call to the control API, on a connection of its own (the project's
 * HTTP client). GET and DELETE are tried again if the connection fails. */
static int control(const char *method, const char *path, const char *body, struct buf *out)
{
    struct http_opts o = { .tls = { .ca_file = env.ca }, .timeout_ms = 10000,
                           .max_body = 64u << 20 };
    struct http_resp resp = HTTP_RESP_INIT;
    char url[512];
    int rc = ERR_UNAVAILABLE;

    snprintf(url, sizeof(url), "%s%s", env.url, path);
    struct http_req req = { .method = method, .url = url, .body = body,
                            .body_len = body ? strlen(body) : 0,
                            .content_type = "application/json" };
    for (int attempt = 0; attempt < 3 && rc == ERR_UNAVAILABLE; attempt++) {
        struct http_client *c = NULL;

        if (attempt && !strcmp(method, "POST"))
            break;
        if ((rc = http_client_new(&c, &o)) == 0)
            rc = http_do(&resp, c, &req);
        http_client_free(c);
        if (rc < 0)
            fprintf(stderr, "# control %s %s: %s\n", method, path, err_msg());
        else if (resp.status < 200 || resp.status > 299)
            rc = err_set(ERR_INVALID, "%s %s: %ld %s", method, path, resp.status,
                         buf_str(&resp.body));
    }
    if (rc == 0 && out)
        buf_addstr(out, buf_str(&resp.body));
    http_resp_release(&resp);
    return rc;
}

static void lease_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", env.ns, name);
}

/* The Lease's spec field as a string ("" when absent), or its number. */
static cJSON *get_lease(const char *name)
{
    char path[256];
    cJSON *obj = NULL;

    lease_path(path, sizeof(path), name);
    if (kube_call(&obj, env.k, "GET", path, NULL, NULL, 0) < 0)
        return NULL;
    return obj;
}

static const char *spec_str(const cJSON *lease, const char *key)
{
    const char *v = json_str(json_obj(lease, "spec"), key);
    return v ? v : "";
}

static long spec_num(const cJSON *lease, const char *key)
{
    int64_t n = -1;
    json_i64(&n, json_obj(lease, "spec"), key);
    return (long)n;
}

/* "2026-11-23T18:00:00.000000Z" */
static bool is_microtime(const char *s)
{
    static const char *const shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";

    if (strlen(s) != strlen(shape))
        return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    return true;
}

/* Writes the Lease's spec with a PUT of what the server holds (retrying on
 * our own 409s), as another client would. labels: also set metadata.labels.touched. */
static int put_lease(const char *name, const char *holder, bool touch_label)
{
    char path[256], now[40];
    int rc = ERR_CONFLICT;
    struct timespec ts;
    struct tm tm;

    lease_path(path, sizeof(path), name);
    for (int i = 0; i < 20 && rc == ERR_CONFLICT; i++) {
        cJSON *obj = get_lease(name), *resp = NULL, *spec;
        char *text;
        if (!obj)
            return ERR_NOTFOUND;
        spec = json_obj(obj, "spec");
        if (holder) {
            clock_gettime(CLOCK_REALTIME, &ts);
            gmtime_r(&ts.tv_sec, &tm);
            strftime(now, 32, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(now + 19, sizeof(now) - 19, ".%06ldZ", ts.tv_nsec / 1000);
            cJSON_ReplaceItemInObject(spec, "holderIdentity", cJSON_CreateString(holder));
            cJSON_ReplaceItemInObject(spec, "renewTime", cJSON_CreateString(now));
            cJSON_ReplaceItemInObject(spec, "acquireTime", cJSON_CreateString(now));
            cJSON_ReplaceItemInObject(spec, "leaseDurationSeconds", cJSON_CreateNumber(LEASE_S));
        }
        if (touch_label) {
            cJSON *meta = json_obj(obj, "metadata"), *labels = json_obj(meta, "labels");
            if (!labels)
                labels = cJSON_AddObjectToObject(meta, "labels");
            cJSON_DeleteItemFromObject(labels, "touched");
            cJSON_AddStringToObject(labels, "touched", "yes");
        }
        text = cJSON_PrintUnformatted(obj);
        rc = kube_call(&resp, env.k, "PUT", path, "application/json", text, strlen(text));
        free(text);
        cJSON_Delete(resp);
        cJSON_Delete(obj);
    }
    return rc;
}

/* Updates of Lease name that the server answered with code, since seq. */
static int count_updates(const char *name, long code, long *since_seq)
{
    struct buf body = BUF_INIT(64u << 20);
    cJSON *arr = NULL, *r;
    int n = 0;

    if (control("GET", "/_fake/requests?resource=leases&verb=update", NULL, &body) < 0 ||
        json_parse(&arr, body.ptr, body.len, body.max) < 0) {
        buf_release(&body);
        return -1;
    }
    if (cJSON_IsObject(arr) && json_arr(arr, "items"))
        r = json_arr(arr, "items")->child;
    else
        r = cJSON_IsArray(arr) ? arr->child : NULL;
    for (; r; r = r->next) {
        int64_t c = 0, seq = 0;
        const char *nm = json_str(r, "name");
        json_i64(&c, r, "code");
        json_i64(&seq, r, "seq");
        if (nm && !strcmp(nm, name) && c == code && (!since_seq || seq > *since_seq))
            n++;
    }
    cJSON_Delete(arr);
    buf_release(&body);
    return n;
}

/* ---- Candidates ------------------------------------------------------------ */

struct cand {
    struct lease_elector *e;
    char *id;
    pthread_t th;
    bool running;
    atomic_bool stop;
    atomic_int started, stopped;
    _Atomic int64_t started_at, stopped_at; /* monotonic ms of the last callbacks */
    atomic_bool inside;                     /* between the callbacks */
    atomic_bool overlap_seen;               /* a callback out of order */
};

static void on_started(void *ctx)
{
    struct cand *c = ctx;

    if (atomic_exchange(&c->inside, true))
        atomic_store(&c->overlap_seen, true);
    atomic_store(&c->started_at, clock_mono_ms());
    atomic_fetch_add(&c->started, 1);
}

static void on_stopped(void *ctx)
{
    struct cand *c = ctx;

    if (!atomic_exchange(&c->inside, false))
        atomic_store(&c->overlap_seen, true);
    atomic_store(&c->stopped_at, clock_mono_ms());
    atomic_fetch_add(&c->stopped, 1);
}

static void *cand_main(void *arg)
{
    struct cand *c = arg;
    lease_run(c->e, &c->stop);
    return NULL;
}

static int cand_start(struct cand *c, const char *lease, const char *instance, bool release)
{
    struct lease_opts o = {
        .ns = env.ns, .name = lease, .lease_duration_s = LEASE_S,
        .renew_deadline_ms = DEADLINE_MS, .retry_period_ms = RETRY_MS,
        .release_on_stop = release, .on_started_leading = on_started,
        .on_stopped_leading = on_stopped, .ctx = c,
    };
    int rc;

    memset(c, 0, sizeof(*c));
    c->id = lease_identity_new(instance);
    o.identity = c->id;
    if ((rc = lease_elector_new(&c->e, env.kc, &o)) < 0)
        return rc;
    c->running = pthread_create(&c->th, NULL, cand_main, c) == 0;
    return c->running ? 0 : ERR_IO;
}

static void cand_stop(struct cand *c)
{
    if (c->running) {
        atomic_store(&c->stop, true);
        sleep_wake_all();
        pthread_join(c->th, NULL);
        c->running = false;
    }
}

static void cand_free(struct cand *c)
{
    cand_stop(c);
    lease_elector_free(c->e);
    c->e = NULL;
    free(c->id);
    c->id = NULL;
}

static bool leads(struct cand *c)
{
    return lease_is_leader(c->e);
}

/* Polls every 20 ms until cond(c) == want or timeout_ms; returns the wait in ms, or -1. */
static long wait_until(bool (*cond)(struct cand *), struct cand *c, bool want, long timeout_ms)
{
    int64_t t0 = clock_mono_ms();

    while (clock_mono_ms() - t0 <= timeout_ms) {
        if (cond(c) == want)
            return (long)(clock_mono_ms() - t0);
        usleep(20 * 1000);
    }
    return -1;
}

static void sleep_ms(long ms)
{
    usleep((useconds_t)ms * 1000);
}

/* ---- Tests -------------------------------------------------------------------- */

static void noop_cb(void *ctx)
{
    (void)ctx;
}

static void test_options_and_identity(void)
{
    struct kube_client *kc = NULL;
    struct kube_client_opts ko = { .server = "https://127.0.0.1:1" };
    struct lease_elector *e = NULL;
    struct lease_opts ok = { .ns = "ns", .name = "l", .identity = "me",
                             .on_started_leading = noop_cb, .on_stopped_leading = noop_cb };
    struct lease_opts o;
    char *a, *b;

    T_RC(kube_client_new(&kc, &ko), 0);
    o = ok;
    T_RC(lease_elector_new(&e, kc, &o), 0);
    T_CHECK(!lease_is_leader(e));
    a = lease_holder(e);
    T_EQ_STR(a, "");
    free(a);
    lease_elector_free(e);
    T_RC(lease_elector_new(&e, NULL, &o), ERR_INVALID);
    o = ok, o.ns = "";
    T_RC(lease_elector_new(&e, kc, &o), ERR_INVALID);
    o = ok, o.name = NULL;
    T_RC(lease_elector_new(&e, kc, &o), ERR_INVALID);
    o = ok, o.identity = "";
    T_RC(lease_elector_new(&e, kc, &o), ERR_INVALID);
    o = ok, o.lease_duration_s = 10, o.renew_deadline_ms = 10000; /* must be greater */
    T_RC(lease_elector_new(&e, kc, &o), ERR_INVALID);
    o = ok, o.renew_deadline_ms = 2400, o.retry_period_ms = 2000; /* not > 1.2 x retry */
    T_RC(lease_elector_new(&e, kc, &o), ERR_INVALID);
    o = ok, o.lease_duration_s = -1;
    T_RC(lease_elector_new(&e, kc, &o), ERR_INVALID);
    o = ok, o.on_stopped_leading = NULL;
    T_RC(lease_elector_new(&e, kc, &o), ERR_INVALID);
    o = ok, o.renew_deadline_ms = 2500, o.retry_period_ms = 2000; /* 2500 > 2400: fine */
    T_RC(lease_elector_new(&e, kc, &o), 0);
    lease_elector_free(e);
    lease_elector_free(NULL);

    T_EQ_INT(lease_request_timeout_ms(0), 5000);
    T_EQ_INT(lease_request_timeout_ms(10000), 5000);
    T_EQ_INT(lease_request_timeout_ms(1500), 1000);

    a = lease_identity_new("pod-7");
    b = lease_identity_new("pod-7");
    T_CHECK(strncmp(a, "pod-7_", 6) == 0);
    T_EQ_INT(strlen(a), 6 + 36);
    T_CHECK(a[6 + 14] == '4');                  /* UUID version 4 */
    T_CHECK(strchr("89ab", a[6 + 19]) != NULL); /* RFC 4122 variant */
    T_CHECK(strcmp(a, b) != 0);
    free(a);
    free(b);
    a = lease_identity_new(NULL);
    T_CHECK(strncmp(a, "pgtoken-rotator_", 16) == 0);
    free(a);
    kube_client_free(kc);
}

static bool both_lead(struct cand *c)
{
    return leads(&c[0]) && leads(&c[1]);
}

static bool one_leads(struct cand *c)
{
    return leads(&c[0]) || leads(&c[1]);
}

static void test_two_candidates_one_leads(void)
{
    struct cand c[2];
    cJSON *l1 = NULL, *l2 = NULL;
    int w;

    if (!need_env())
        return;
    T_RC(cand_start(&c[0], "two", "a", true), 0);
    T_RC(cand_start(&c[1], "two", "b", true), 0);
    T_CHECK(wait_until(one_leads, c, true, 3000) >= 0);
    w = leads(&c[0]) ? 0 : 1;
    for (int i = 0; i < 40; i++) { /* 2 s: never two leaders, never a change */
        T_CHECK(!both_lead(c));
        T_CHECK(leads(&c[w]));
        sleep_ms(50);
    }
    l1 = get_lease("two");
    T_CHECK(l1 != NULL);
    T_EQ_STR(spec_str(l1, "holderIdentity"), c[w].id);
    T_EQ_INT(spec_num(l1, "leaseDurationSeconds"), LEASE_S);
    T_EQ_INT(spec_num(l1, "leaseTransitions"), 0);
    T_CHECK(is_microtime(spec_str(l1, "renewTime")));
    T_CHECK(is_microtime(spec_str(l1, "acquireTime")));
    {
        char *h = lease_holder(c[1 - w].e); /* the standby saw who leads */
        T_EQ_STR(h, c[w].id);
        free(h);
    }
    sleep_ms(1000);
    l2 = get_lease("two");
    T_CHECK(l2 != NULL);
    /* renewed, same term */
    T_CHECK(strcmp(spec_str(l1, "renewTime"), spec_str(l2, "renewTime")) < 0);
    T_EQ_STR(spec_str(l1, "acquireTime"), spec_str(l2, "acquireTime"));
    T_EQ_INT(atomic_load(&c[w].started), 1);
    T_EQ_INT(atomic_load(&c[1 - w].started), 0);
    cand_stop(&c[1 - w]); /* the standby first, or it would take over */
    cand_stop(&c[w]);
    T_EQ_INT(atomic_load(&c[w].stopped), 1);
    T_EQ_INT(atomic_load(&c[1 - w].stopped), 0); /* never led: no callback */
    T_CHECK(!atomic_load(&c[0].overlap_seen) && !atomic_load(&c[1].overlap_seen));
    cJSON_Delete(l1);
    cJSON_Delete(l2);
    cand_free(&c[0]);
    cand_free(&c[1]);
}

static void test_takeover_waits_for_lease_duration(void)
{
    struct cand a, b;
    cJSON *l = NULL;
    int64_t t0;
    long waited;

    if (!need_env())
        return;
    T_RC(cand_start(&a, "crash", "a", false), 0); /* a crash: no release */
    T_CHECK(wait_until(leads, &a, true, 3000) >= 0);
    T_RC(cand_start(&b, "crash", "b", true), 0);
    sleep_ms(1500); /* b watches a renew */
    T_CHECK(leads(&a) && !leads(&b));
    cand_stop(&a);
    t0 = clock_mono_ms();
    T_CHECK(!leads(&a));
    waited = wait_until(leads, &b, true, 8000);
    /* a's last renew was at most a retry period before it stopped; b counts
     * the lease duration from when it saw that renew, on its own clock */
    if (waited < 0)
        t_fail(__FILE__, __LINE__, "b never took over");
    else if (waited < LEASE_S * 1000 - RETRY_MS - 300 || waited > LEASE_S * 1000 + 2500)
        t_fail(__FILE__, __LINE__, "b took over after %ld ms, want about %d", waited,
               LEASE_S * 1000);
    (void)t0;
    l = get_lease("crash");
    T_EQ_STR(spec_str(l, "holderIdentity"), b.id);
    T_EQ_INT(spec_num(l, "leaseTransitions"), 1);
    T_EQ_INT(atomic_load(&a.started), 1);
    T_EQ_INT(atomic_load(&a.stopped), 1);
    T_EQ_INT(atomic_load(&b.started), 1);
    cJSON_Delete(l);
    cand_free(&b);
    cand_free(&a);
}

static void test_release_on_stop_hands_over_at_once(void)
{
    struct cand a, b;
    cJSON *l = NULL;
    long waited;
    long seq = 0;

    if (!need_env())
        return;
    T_RC(cand_start(&a, "handover", "a", true), 0);
    T_CHECK(wait_until(leads, &a, true, 3000) >= 0);
    T_RC(cand_start(&b, "handover", "b", true), 0);
    sleep_ms(1000);
    T_CHECK(!leads(&b));
    cand_stop(&a);
    /* released: holder "" and a 1 s duration, transitions unchanged */
    l = get_lease("handover");
    if (strcmp(spec_str(l, "holderIdentity"), b.id)) { /* unless b was quicker than us */
        T_EQ_STR(spec_str(l, "holderIdentity"), "");
        T_EQ_INT(spec_num(l, "leaseDurationSeconds"), 1);
        T_EQ_INT(spec_num(l, "leaseTransitions"), 0);
    }
    cJSON_Delete(l);
    waited = wait_until(leads, &b, true, 4000);
    if (waited < 0 || waited > 2 * RETRY_MS * 2 + 600) /* a jittered retry period, not 4 s */
        t_fail(__FILE__, __LINE__, "b took over after %ld ms", waited);
    l = get_lease("handover");
    T_EQ_STR(spec_str(l, "holderIdentity"), b.id);
    T_EQ_INT(spec_num(l, "leaseTransitions"), 1);
    T_EQ_INT(spec_num(l, "leaseDurationSeconds"), LEASE_S);
    T_CHECK(count_updates("handover", 200, &seq) >= 3);
    cJSON_Delete(l);
    cand_free(&b);
    cand_free(&a);
}

static void test_conflicts(void)
{
    struct cand a;
    cJSON *l = NULL;
    long lost, back;
    int c409;

    if (!need_env())
        return;
    T_RC(cand_start(&a, "conflict", "a", true), 0);
    T_CHECK(wait_until(leads, &a, true, 3000) >= 0);
    sleep_ms(600);

    /* Someone else writes the Lease without taking it (a label): a's next
     * renew is refused with 409; it re-reads, sees itself, and renews. */
    c409 = count_updates("conflict", 409, NULL);
    T_RC(put_lease("conflict", NULL, true), 0);
    sleep_ms(4 * RETRY_MS);
    T_CHECK(count_updates("conflict", 409, NULL) > c409);
    T_CHECK(leads(&a));
    T_EQ_INT(atomic_load(&a.stopped), 0);
    l = get_lease("conflict");
    T_EQ_STR(spec_str(l, "holderIdentity"), a.id);
    T_EQ_STR(json_str(json_obj(json_obj(l, "metadata"), "labels"), "touched"), "yes");
    cJSON_Delete(l);

    /* Someone else takes it: a's renew gets 409, a re-reads, sees the other
     * holder, and stops leading at once, without writing over it. */
    T_RC(put_lease("conflict", "intruder", false), 0);
    lost = wait_until(leads, &a, false, 3000);
    T_CHECK(lost >= 0 && lost <= RETRY_MS + 700);
    T_EQ_INT(atomic_load(&a.stopped), 1);
    l = get_lease("conflict");
    T_EQ_STR(spec_str(l, "holderIdentity"), "intruder");
    cJSON_Delete(l);
    /* The intruder never renews: a takes the Lease back after the lease duration. */
    back = wait_until(leads, &a, true, LEASE_S * 1000 + 3000);
    T_CHECK(back >= LEASE_S * 1000 - RETRY_MS - 700 - lost);
    T_EQ_INT(atomic_load(&a.started), 2);
    l = get_lease("conflict");
    T_EQ_STR(spec_str(l, "holderIdentity"), a.id);
    T_EQ_INT(spec_num(l, "leaseTransitions"), 1);
    cJSON_Delete(l);
    T_CHECK(!atomic_load(&a.overlap_seen));
    cand_free(&a);
}

static void test_renew_failure_loses_leadership(void)
{
    struct cand a;
    long lost;
    int64_t t_fault;

    if (!need_env())
        return;
    T_RC(cand_start(&a, "fault", "a", false), 0);
    T_CHECK(wait_until(leads, &a, true, 3000) >= 0);
    sleep_ms(700);
    T_RC(control("POST", "/_fake/faults",
                 "{\"match\":{\"verb\":\"update\",\"resource\":\"leases\"},\"status\":500,"
                 "\"count\":0}", NULL), 0);
    t_fault = clock_mono_ms();
    lost = wait_until(leads, &a, false, DEADLINE_MS + 2000);
    /* the last good renew was at most a retry period before the fault */
    if (lost < 0 || lost > DEADLINE_MS + 200 || lost < DEADLINE_MS - RETRY_MS - 300)
        t_fail(__FILE__, __LINE__, "leadership ended %ld ms after the fault, want within %d ms "
               "of the last renew", lost, DEADLINE_MS);
    /* the callback follows within a retry period and a request */
    T_CHECK(!leads(&a)); /* and still so (a zero-timeout wait_until could read a new ms) */
    while (atomic_load(&a.stopped) == 0 && clock_mono_ms() - t_fault < DEADLINE_MS + 3000)
        sleep_ms(20);
    T_EQ_INT(atomic_load(&a.stopped), 1);
    T_CHECK(atomic_load(&a.stopped_at) - t_fault <= DEADLINE_MS + RETRY_MS + 500);
    T_RC(control("DELETE", "/_fake/faults", NULL, NULL), 0);
    /* nobody took it meanwhile: a gets it back, as a new term of its own */
    T_CHECK(wait_until(leads, &a, true, 4000) >= 0);
    T_EQ_INT(atomic_load(&a.started), 2);
    T_CHECK(!atomic_load(&a.overlap_seen));
    cand_free(&a);
}

static void test_hung_renew_stops_leading_in_time(void)
{
    struct cand a;
    long lost;

    if (!need_env())
        return;
    T_RC(cand_start(&a, "hang", "a", false), 0);
    T_CHECK(wait_until(leads, &a, true, 3000) >= 0);
    sleep_ms(700);
    T_RC(control("POST", "/_fake/faults",
                 "{\"match\":{\"verb\":\"update\",\"resource\":\"leases\"},\"hang\":true,"
                 "\"status\":503,\"count\":0}", NULL), 0);
    /* the renew request hangs (the API client's timeout is 30 s): the leader
     * still stops counting itself one within the renew deadline */
    lost = wait_until(leads, &a, false, DEADLINE_MS + 2000);
    T_CHECK(lost >= 0 && lost <= DEADLINE_MS + 200);
    T_RC(control("DELETE", "/_fake/faults", NULL, NULL), 0);
    T_CHECK(wait_until(leads, &a, true, 5000) >= 0);
    T_EQ_INT(atomic_load(&a.stopped), 1);
    T_EQ_INT(atomic_load(&a.started), 2);
    cand_free(&a);
}

int main(void)
{
    const char *lv = getenv("PGTR_TEST_LOG");

    log_set_level(lv && log_parse_level(lv) >= 0 ? (enum log_level)log_parse_level(lv) : LOG_OFF);
    http_global_init();
    T_RUN(test_options_and_identity);
    T_RUN(test_two_candidates_one_leads);
    T_RUN(test_takeover_waits_for_lease_duration);
    T_RUN(test_release_on_stop_hands_over_at_once);
    T_RUN(test_conflicts);
    T_RUN(test_renew_failure_loses_leadership);
    T_RUN(test_hung_renew_stops_leading_in_time);
    env_release();
    http_global_cleanup();
    return t_done();
}
