#include "kube/lease.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "base/backoff.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sleep.h"
#include "kube/kpath.h"
#include "base/banned.h"

#define LEASE_PATH_MAX 1024
#define MICROTIME_LEN 40
#define LEASE_RECORD_RAW_MAX (64u << 10)

/* The election record, as client-go's LeaderElectionRecord holds it. */
struct record {
    char *holder;                 /* "" when released */
    long duration_s;
    char acquire[MICROTIME_LEN];  /* as in the Lease; "" when absent */
    char renew[MICROTIME_LEN];
    long transitions;
};

struct lease_elector {
    struct kube_client *kc;
    char *ns, *name, *identity;
    char *path;      /* the Lease */
    char *coll_path; /* the namespace's Leases (create) */
    long lease_s, deadline_ms, retry_ms;
    bool release;
    void (*on_started)(void *ctx);
    void (*on_stopped)(void *ctx);
    void *ctx;

    /* Lease thread only. */
    struct kube_conn *k;
    cJSON *lease;          /* the object last read or written: its resourceVersion goes in PUTs */
    char *observed_raw;    /* the record last read with a GET, serialised for comparison */
    char *reported_holder; /* the holder last logged */

    /* mu guards observed and observed_ms (lease_holder reads them). */
    pthread_mutex_t mu;
    struct record observed;
    int64_t observed_ms;   /* monotonic: when observed was set */

    atomic_bool leading;
    _Atomic int64_t renewed_ms; /* monotonic start of the last successful acquire or renew */
};

static void record_release(struct record *r)
{
    free(r->holder);
    r->holder = NULL;
}

static void record_copy(struct record *dst, const struct record *src)
{
    char *h = xstrdup(src->holder ? src->holder : "");

    record_release(dst);
    *dst = *src;
    dst->holder = h;
}

/* Wall-clock now as a MicroTime: RFC 3339, UTC, six fractional digits. */
static void microtime_now(char out[MICROTIME_LEN])
{
    struct timespec ts;
    struct tm tm;
    char date[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    if (!gmtime_r(&ts.tv_sec, &tm) || !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(date, sizeof(date), "1970-01-01T00:00:00");
    snprintf(out, MICROTIME_LEN, "%s.%06ldZ", date, ts.tv_nsec / 1000);
}

int lease_elector_new(struct lease_elector **out, struct kube_client *kc,
                      const struct lease_opts *o)
{
    struct lease_elector *e;
    struct buf path = BUF_INIT(LEASE_PATH_MAX);
    long lease_s = o->lease_duration_s ? o->lease_duration_s : LEASE_DEFAULT_DURATION_S;
    long deadline = o->renew_deadline_ms ? o->renew_deadline_ms : LEASE_DEFAULT_RENEW_DEADLINE_MS;
    long retry = o->retry_period_ms ? o->retry_period_ms : LEASE_DEFAULT_RETRY_PERIOD_MS;
    int rc = 0;

    if (!kc)
        return err_set(ERR_INVALID, "leader election: no API client");
    if (!o->ns || !*o->ns || !o->name || !*o->name)
        return err_set(ERR_INVALID, "leader election: the Lease's namespace and name are required");
    if (!o->identity || !*o->identity)
        return err_set(ERR_INVALID, "leader election: the identity is empty");
    if (lease_s < 1 || deadline < 1 || retry < 1)
        return err_set(ERR_INVALID, "leader election: durations must be greater than zero");
    if (lease_s * 1000 <= deadline)
        return err_set(ERR_INVALID, "leader election: the lease duration (%lds) must be greater "
                       "than the renew deadline (%ldms)", lease_s, deadline);
    if ((double)deadline <= LEASE_JITTER_FACTOR * (double)retry)
        return err_set(ERR_INVALID, "leader election: the renew deadline (%ldms) must be greater "
                       "than %.1f x the retry period (%ldms)", deadline, LEASE_JITTER_FACTOR, retry);
    if (!o->on_started_leading || !o->on_stopped_leading)
        return err_set(ERR_INVALID, "leader election: both callbacks are required");
    e = xcalloc(1, sizeof(*e));
    rc |= kpath_add(&path, KPATH_COORDINATION_V1, o->ns, "leases", NULL, NULL);
    e->coll_path = xstrdup(buf_str(&path));
    buf_reset(&path);
    rc |= kpath_add(&path, KPATH_COORDINATION_V1, o->ns, "leases", o->name, NULL);
    e->path = xstrdup(buf_str(&path));
    buf_release(&path);
    e->kc = kc;
    e->ns = xstrdup(o->ns);
    e->name = xstrdup(o->name);
    e->identity = xstrdup(o->identity);
    e->lease_s = lease_s;
    e->deadline_ms = deadline;
    e->retry_ms = retry;
    e->release = o->release_on_stop;
    e->on_started = o->on_started_leading;
    e->on_stopped = o->on_stopped_leading;
    e->ctx = o->ctx;
    e->observed.holder = xstrdup("");
    pthread_mutex_init(&e->mu, NULL);
    if (rc) {
        lease_elector_free(e);
        return err_set(ERR_TOOBIG, "leader election: the Lease's name is too long");
    }
    *out = e;
    return 0;
}

void lease_elector_free(struct lease_elector *e)
{
    if (!e)
        return;
    record_release(&e->observed);
    pthread_mutex_destroy(&e->mu);
    cJSON_Delete(e->lease);
    free(e->observed_raw);
    free(e->reported_holder);
    free(e->ns);
    free(e->name);
    free(e->identity);
    free(e->path);
    free(e->coll_path);
    free(e);
}

bool lease_is_leader(struct lease_elector *e)
{
    return atomic_load(&e->leading) &&
           clock_mono_ms() - atomic_load(&e->renewed_ms) < e->deadline_ms;
}

char *lease_holder(struct lease_elector *e)
{
    char *h;

    pthread_mutex_lock(&e->mu);
    h = xstrdup(e->observed.holder ? e->observed.holder : "");
    pthread_mutex_unlock(&e->mu);
    return h;
}

long lease_request_timeout_ms(long renew_deadline_ms)
{
    long t = (renew_deadline_ms > 0 ? renew_deadline_ms : LEASE_DEFAULT_RENEW_DEADLINE_MS) / 2;

    return t < 1000 ? 1000 : t;
}

char *lease_identity_new(const char *instance)
{
    unsigned char u[16];
    struct buf b = BUF_INIT(LEASE_PATH_MAX);

    if (RAND_bytes(u, sizeof(u)) != 1)
        for (size_t i = 0; i < sizeof(u); i++) /* no entropy source: still unique enough */
            u[i] = (unsigned char)(backoff_rand() * 256);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    buf_addf(&b, "%.200s_", instance && *instance ? instance : "pgtoken-rotator");
    for (size_t i = 0; i < sizeof(u); i++)
        buf_addf(&b, "%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", u[i]);
    return buf_detach(&b, NULL);
}

/* ---- The record in the Lease ---------------------------------------------- */

static void time_field(char out[MICROTIME_LEN], const cJSON *spec, const char *key)
{
    const char *v = json_str(spec, key);

    snprintf(out, MICROTIME_LEN, "%s", v && strlen(v) < MICROTIME_LEN ? v : "");
}

/* Reads the record from a Lease object (client-go's LeaseSpecToLeaderElectionRecord). */
static void record_from_lease(struct record *out, const cJSON *lease)
{
    const cJSON *spec = json_obj(lease, "spec");
    const char *h = json_str(spec, "holderIdentity");
    int64_t n;

    memset(out, 0, sizeof(*out));
    out->holder = xstrdup(h ? h : "");
    if (json_i64(&n, spec, "leaseDurationSeconds") == 0)
        out->duration_s = (long)n;
    if (json_i64(&n, spec, "leaseTransitions") == 0)
        out->transitions = (long)n;
    time_field(out->acquire, spec, "acquireTime");
    time_field(out->renew, spec, "renewTime");
}

static char *record_raw(const struct record *r)
{
    struct buf b = BUF_INIT(LEASE_RECORD_RAW_MAX); /* a longer holder compares by its start */

    buf_addstr(&b, r->holder);
    buf_addf(&b, "\x1f%ld\x1f%s\x1f%s\x1f%ld", r->duration_s, r->acquire, r->renew, r->transitions);
    return buf_detach(&b, NULL);
}

/* client-go's LeaderElectionRecordToLeaseSpec. */
static cJSON *record_spec(const struct record *r)
{
    cJSON *spec = cJSON_CreateObject();

    cJSON_AddStringToObject(spec, "holderIdentity", r->holder);
    cJSON_AddNumberToObject(spec, "leaseDurationSeconds", (double)r->duration_s);
    cJSON_AddStringToObject(spec, "acquireTime", r->acquire);
    cJSON_AddStringToObject(spec, "renewTime", r->renew);
    cJSON_AddNumberToObject(spec, "leaseTransitions", (double)r->transitions);
    return spec;
}

static void set_lease(struct lease_elector *e, cJSON *obj)
{
    cJSON_Delete(e->lease);
    e->lease = obj;
}

/* GET: 0 with *out filled (release it), ERR_NOTFOUND, or another error. */
static int lease_get(struct record *out, struct lease_elector *e)
{
    cJSON *obj = NULL;
    int rc;

    if ((rc = kube_call(&obj, e->k, "GET", e->path, NULL, NULL, 0)) < 0)
        return rc;
    if (!obj || !json_obj(obj, "metadata")) {
        cJSON_Delete(obj);
        return err_set(ERR_PARSE, "GET %s: not a Lease", e->path);
    }
    set_lease(e, obj);
    record_from_lease(out, obj);
    return 0;
}

static int send_body(struct lease_elector *e, const char *method, const char *path, cJSON *body)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON *resp = NULL;
    int rc;

    if (!text)
        return err_set(ERR_INVALID, "leader election: could not serialise the Lease");
    rc = kube_call(&resp, e->k, method, path, "application/json", text, strlen(text));
    free(text);
    if (rc == 0 && (!resp || !json_obj(resp, "metadata"))) {
        cJSON_Delete(resp);
        return err_set(ERR_PARSE, "%s %s: the answer is not a Lease", method, path);
    }
    if (rc == 0)
        set_lease(e, resp);
    return rc;
}

static int lease_create(struct lease_elector *e, const struct record *r)
{
    cJSON *obj = cJSON_CreateObject(), *meta;
    int rc;

    cJSON_AddStringToObject(obj, "apiVersion", "coordination.k8s.io/v1");
    cJSON_AddStringToObject(obj, "kind", "Lease");
    meta = cJSON_AddObjectToObject(obj, "metadata");
    cJSON_AddStringToObject(meta, "name", e->name);
    cJSON_AddStringToObject(meta, "namespace", e->ns);
    cJSON_AddItemToObject(obj, "spec", record_spec(r));
    rc = send_body(e, "POST", e->coll_path, obj);
    cJSON_Delete(obj);
    return rc;
}

/* PUT of the Lease last read or written with a new spec: its
 * metadata.resourceVersion makes the write conditional (409 if stale). */
static int lease_update(struct lease_elector *e, const struct record *r)
{
    cJSON *obj;
    int rc;

    if (!e->lease)
        return err_set(ERR_INVALID, "leader election: the Lease was never read");
    obj = cJSON_Duplicate(e->lease, true);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "spec");
    cJSON_AddItemToObject(obj, "spec", record_spec(r));
    rc = send_body(e, "PUT", e->path, obj);
    cJSON_Delete(obj);
    return rc;
}

/* ---- Observations (client-go's setObservedRecord / isLeaseValid / IsLeader) */

static void set_observed(struct lease_elector *e, const struct record *r)
{
    pthread_mutex_lock(&e->mu);
    record_copy(&e->observed, r);
    e->observed_ms = clock_mono_ms();
    pthread_mutex_unlock(&e->mu);
}

static bool observed_is_us(struct lease_elector *e)
{
    bool us;

    pthread_mutex_lock(&e->mu);
    us = !strcmp(e->observed.holder, e->identity);
    pthread_mutex_unlock(&e->mu);
    return us;
}

static bool lease_valid(struct lease_elector *e, int64_t now_ms)
{
    bool valid;

    pthread_mutex_lock(&e->mu);
    valid = e->observed_ms + (int64_t)e->observed.duration_s * 1000 > now_ms;
    pthread_mutex_unlock(&e->mu);
    return valid;
}

static void maybe_report_transition(struct lease_elector *e)
{
    char *h = lease_holder(e);

    if (e->reported_holder && !strcmp(e->reported_holder, h)) {
        free(h);
        return;
    }
    free(e->reported_holder);
    e->reported_holder = h;
    log_info("leader_observed", LOG_STR("lease", e->name), LOG_STR("namespace", e->ns),
             LOG_STR("holder", h), LOG_BOOL("us", !strcmp(h, e->identity)));
}

static void log_api_error(struct lease_elector *e, const char *what, int rc)
{
    if (rc == ERR_CONFLICT)
        log_debug(what, LOG_STR("lease", e->name), LOG_ERR(rc));
    else
        log_warn(what, LOG_STR("lease", e->name), LOG_STR("namespace", e->ns), LOG_ERR(rc));
}

/* client-go's tryAcquireOrRenew: true when this replica holds the Lease now. */
static bool try_acquire_or_renew(struct lease_elector *e)
{
    int64_t now = clock_mono_ms();
    struct record rec = { .holder = e->identity, .duration_s = e->lease_s };
    struct record old = { 0 };
    char *raw;
    bool ok = false;
    int rc;

    microtime_now(rec.acquire);
    memcpy(rec.renew, rec.acquire, sizeof(rec.renew));

    /* 1. The leader's fast path: update as if what we saw last is current. */
    if (observed_is_us(e) && lease_valid(e, now)) {
        pthread_mutex_lock(&e->mu);
        memcpy(rec.acquire, e->observed.acquire, sizeof(rec.acquire));
        rec.transitions = e->observed.transitions;
        pthread_mutex_unlock(&e->mu);
        if (!*rec.acquire)
            memcpy(rec.acquire, rec.renew, sizeof(rec.acquire));
        if ((rc = lease_update(e, &rec)) == 0) {
            set_observed(e, &rec);
            return true;
        }
        log_debug("lease_fast_renew_failed", LOG_STR("lease", e->name), LOG_ERR(rc));
        memcpy(rec.acquire, rec.renew, sizeof(rec.acquire));
        rec.transitions = 0;
    }

    /* 2. Read the Lease, or create it. */
    if ((rc = lease_get(&old, e)) == ERR_NOTFOUND) {
        if ((rc = lease_create(e, &rec)) < 0) {
            log_api_error(e, "lease_create_failed", rc);
            return false;
        }
        set_observed(e, &rec);
        return true;
    }
    if (rc != 0) {
        log_api_error(e, "lease_get_failed", rc);
        return false;
    }

    /* 3. A changed record restarts the observation clock. */
    raw = record_raw(&old);
    if (!e->observed_raw || strcmp(raw, e->observed_raw)) {
        set_observed(e, &old);
        free(e->observed_raw);
        e->observed_raw = raw;
        raw = NULL;
    }
    free(raw);
    if (*old.holder && lease_valid(e, now) && !observed_is_us(e)) {
        log_debug("lease_held", LOG_STR("lease", e->name), LOG_STR("holder", old.holder));
        goto out;
    }

    /* 4. Take it over (or keep it). */
    if (observed_is_us(e)) {
        memcpy(rec.acquire, *old.acquire ? old.acquire : rec.renew, sizeof(rec.acquire));
        rec.transitions = old.transitions;
    } else {
        rec.transitions = old.transitions + 1;
    }
    if ((rc = lease_update(e, &rec)) < 0) {
        log_api_error(e, "lease_update_failed", rc);
        goto out;
    }
    set_observed(e, &rec);
    ok = true;
out:
    record_release(&old);
    return ok;
}

/* client-go's tryRelease, retried on conflict until the renew deadline. */
static void release(struct lease_elector *e)
{
    int64_t until = clock_mono_ms() + e->deadline_ms;
    char nobody[1] = "";
    struct record old = { 0 }, rec = { .holder = nobody, .duration_s = 1 };
    int rc;

    do {
        record_release(&old);
        if ((rc = lease_get(&old, e)) != 0) {
            log_api_error(e, "lease_release_failed", rc);
            return;
        }
        if (!old.holder || strcmp(old.holder, e->identity)) {
            log_info("lease_not_released", LOG_STR("lease", e->name),
                     LOG_STR("holder", old.holder ? old.holder : ""), LOG_STR("detail", "held by another replica"));
            record_release(&old);
            return;
        }
        microtime_now(rec.renew);
        memcpy(rec.acquire, rec.renew, sizeof(rec.acquire));
        rec.transitions = old.transitions;
        rc = lease_update(e, &rec);
    } while (rc == ERR_CONFLICT && clock_mono_ms() < until);
    record_release(&old);
    if (rc < 0) {
        log_api_error(e, "lease_release_failed", rc);
        return;
    }
    set_observed(e, &rec);
    log_info("leader_released", LOG_STR("lease", e->name), LOG_STR("namespace", e->ns));
}

static long jittered(long ms)
{
    return ms + (long)(backoff_rand() * LEASE_JITTER_FACTOR * (double)ms);
}

/* Candidate: tries every retry period (jittered) until it holds the Lease.
 * false when stopped first. */
static bool acquire(struct lease_elector *e, const atomic_bool *stop)
{
    while (!atomic_load(stop)) {
        int64_t start = clock_mono_ms();
        bool ok = try_acquire_or_renew(e);
        maybe_report_transition(e);
        if (ok) {
            atomic_store(&e->renewed_ms, start);
            return true;
        }
        sleep_unless_stopped(jittered(e->retry_ms), stop);
    }
    return false;
}

/* Leader: renews every retry period until it is stopped (returns NULL) or
 * loses the Lease (returns why). A renew that ends after the deadline ends
 * the term even when it succeeded: lease_is_leader() has already said false,
 * so the callbacks must say so too (lease_run then starts a new term). */
static const char *renew(struct lease_elector *e, const atomic_bool *stop)
{
    sleep_unless_stopped(e->retry_ms, stop);
    while (!atomic_load(stop)) {
        int64_t start = clock_mono_ms(), prev = atomic_load(&e->renewed_ms), left;
        bool ok = try_acquire_or_renew(e);
        maybe_report_transition(e);
        if (ok && !observed_is_us(e))
            ok = false; /* cannot happen: a success records us as the holder */
        left = e->deadline_ms - (clock_mono_ms() - prev);
        if (left <= 0)
            return "the Lease was not renewed within the renew deadline";
        if (ok) {
            atomic_store(&e->renewed_ms, start);
            sleep_unless_stopped(e->retry_ms, stop);
            continue;
        }
        if (!observed_is_us(e))
            return "another replica holds the Lease";
        sleep_unless_stopped(left < e->retry_ms ? left : e->retry_ms, stop);
    }
    return NULL;
}

int lease_run(struct lease_elector *e, const atomic_bool *stop)
{
    int rc;

    if ((rc = kube_conn_new(&e->k, e->kc)) < 0) {
        log_error("leader_election_not_started", LOG_ERR(rc));
        return rc;
    }
    log_info("leader_election_started", LOG_STR("lease", e->name), LOG_STR("namespace", e->ns),
             LOG_STR("identity", e->identity), LOG_I64("lease_duration_s", e->lease_s),
             LOG_I64("renew_deadline_ms", e->deadline_ms),
             LOG_I64("retry_period_ms", e->retry_ms));
    while (acquire(e, stop)) {
        const char *lost;
        atomic_store(&e->leading, true);
        log_info("leader_acquired", LOG_STR("lease", e->name), LOG_STR("namespace", e->ns),
                 LOG_STR("identity", e->identity));
        e->on_started(e->ctx);
        lost = renew(e, stop);
        atomic_store(&e->leading, false);
        if (lost)
            log_warn("leader_lost", LOG_STR("lease", e->name), LOG_STR("namespace", e->ns),
                     LOG_STR("reason", lost));
        else if (e->release)
            release(e);
        e->on_stopped(e->ctx);
    }
    kube_conn_free(e->k);
    e->k = NULL;
    log_info("leader_election_stopped", LOG_STR("lease", e->name));
    return 0;
}
