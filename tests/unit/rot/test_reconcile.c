/* reconcile with fake I/O: a Secret held as the API server would (merge patches
 * applied, resourceVersion preconditions enforced with 409), an identity, a
 * token source and a login check whose outcomes each test sets, and a record of
 * every call. Drives every branch of the decision through the actor. */
#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/sbuf.h"
#include "rot/reconcile.h"

#define T0_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define LIFE_S 3600
#define MAX_CALLS 16

struct fake {
    int64_t now_ms;
    cJSON *secret;          /* the server's object; NULL: gone */
    long rv;
    /* outcomes */
    int identity_rc, mint_rc, check_rc, write_rc, restart_rc;
    int64_t identity_ra_ms, mint_ra_ms, write_ra_ms;
    enum pg_login login;
    const char *token;
    /* record */
    struct idp own, sa;
    int identities, mints, checks, writes, status_writes, restarts, forgets;
    char sa_asked[64];     /* "" the own identity */
    bool mint_fresh, check_fresh;
    double max_age_ratio;
    char restart_at[32];
    int nevents;
    struct { enum event_type type; char reason[32]; char msg[DECIDE_MSG_MAX]; } events[MAX_CALLS];
};

static struct rot_stats stats;
static int failures_hooked;

static void on_failure(void *ctx, const char *reason)
{
    (void)ctx;
    (void)reason;
    failures_hooked++;
}

/* RFC 7386: null deletes, objects merge, anything else replaces. */
static void merge(cJSON *target, const cJSON *patch)
{
    for (const cJSON *p = patch->child; p; p = p->next) {
        if (cJSON_IsNull(p)) {
            cJSON_DeleteItemFromObjectCaseSensitive(target, p->string);
        } else if (cJSON_IsObject(p)) {
            cJSON *t = cJSON_GetObjectItemCaseSensitive(target, p->string);
            if (!cJSON_IsObject(t)) {
                cJSON_DeleteItemFromObjectCaseSensitive(target, p->string);
                t = cJSON_AddObjectToObject(target, p->string);
            }
            merge(t, p);
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(target, p->string);
            cJSON_AddItemToObject(target, p->string, cJSON_Duplicate(p, 1));
        }
    }
}

static const char *ann_of(struct fake *fk, const char *name)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(fk->secret, "metadata"), "annotations");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *data_of(struct fake *fk, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(fk->secret, "data"), key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void set_ann(struct fake *fk, const char *name, const char *value)
{
    cJSON *a = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(fk->secret, "metadata"), "annotations");

    cJSON_DeleteItemFromObjectCaseSensitive(a, name);
    if (value)
        cJSON_AddItemToObject(a, name, cJSON_CreateString(value));
}

static void bump_rv(struct fake *fk)
{
    char rv[32];
    cJSON *md = cJSON_GetObjectItemCaseSensitive(fk->secret, "metadata");

    snprintf(rv, sizeof(rv), "%ld", ++fk->rv);
    cJSON_DeleteItemFromObjectCaseSensitive(md, "resourceVersion");
    cJSON_AddItemToObject(md, "resourceVersion", cJSON_CreateString(rv));
}

static int64_t f_now(void *ctx)
{
    return ((struct fake *)ctx)->now_ms;
}

static double f_jitter(void *ctx)
{
    (void)ctx;
    return 0.5;
}

static int f_get(struct kube_secret **out, void *ctx, const char *key)
{
    struct fake *fk = ctx;

    (void)key;
    if (!fk->secret)
        return err_set(ERR_NOTFOUND, "not in the cache");
    return kube_secret_from_json(out, fk->secret);
}

static int f_identity(struct idp **out, int64_t *ra, void *ctx, const char *ns, const char *sa)
{
    struct fake *fk = ctx;

    (void)ns;
    fk->identities++;
    snprintf(fk->sa_asked, sizeof(fk->sa_asked), "%s", sa ? sa : "");
    *ra = fk->identity_ra_ms;
    if (fk->identity_rc < 0)
        return err_set(fk->identity_rc, "identity says no");
    *out = sa ? &fk->sa : &fk->own;
    return 0;
}

static int f_mint(struct idp_token *out, int64_t *ra, void *ctx, struct idp *who, bool fresh,
                  double max_age_ratio)
{
    struct fake *fk = ctx;

    (void)who;
    fk->mints++;
    fk->mint_fresh = fresh;
    fk->max_age_ratio = max_age_ratio;
    *ra = fk->mint_ra_ms;
    if (fk->mint_rc < 0)
        return err_set(fk->mint_rc, "AADSTS700016: application not found");
    out->token = sbuf_from(fk->token, strlen(fk->token));
    out->issued_at = fk->now_ms / 1000;
    out->expires_at = fk->now_ms / 1000 + LIFE_S;
    return 0;
}

static int f_check(struct pg_check_result *out, void *ctx, const struct pg_target *t,
                   const struct idp_token *tok, bool fresh)
{
    struct fake *fk = ctx;

    (void)tok;
    fk->checks++;
    fk->check_fresh = fresh;
    T_EQ_STR(t->host, "db.example.com");
    if (fk->check_rc < 0)
        return err_set(fk->check_rc, "check could not run");
    memset(out, 0, sizeof(*out));
    out->login = fk->login;
    snprintf(out->message, sizeof(out->message), "%s",
             fk->login == PG_LOGIN_OK ? "" : "FATAL: 28000: password authentication failed");
    return 0;
}

/* Applies the merge patch as the API server does: a resourceVersion in the patch
 * is a precondition (409 when it is not the current one). The rotation's write is
 * the one with data; status-only patches are counted apart. */
static int f_patch(int64_t *ra, void *ctx, const struct kube_secret *s, const struct sbuf *body)
{
    struct fake *fk = ctx;
    cJSON *p = NULL;
    const cJSON *rv;
    bool data;
    int rc = 0;

    (void)s;
    *ra = 0;
    T_RC(json_parse(&p, sbuf_expose(body), sbuf_len(body), 1u << 20), 0);
    if (!p)
        return err_set(ERR_INVALID, "bad patch");
    data = cJSON_GetObjectItemCaseSensitive(p, "data") != NULL;
    data ? fk->writes++ : fk->status_writes++;
    rv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "metadata"),
                                          "resourceVersion");
    if (data && fk->write_rc < 0) {
        *ra = fk->write_ra_ms;
        rc = err_set(fk->write_rc, "the server said no");
    } else if (!fk->secret) {
        rc = err_set(ERR_NOTFOUND, "secrets \"app-db\" not found");
    } else if (rv && atol(rv->valuestring) != fk->rv) {
        rc = err_set(ERR_CONFLICT, "the object has been modified");
    } else {
        merge(fk->secret, p);
        bump_rv(fk);
    }
    cJSON_Delete(p);
    return rc;
}

static int f_restart(void *ctx, const struct kube_secret *s, const struct spec_restart *r,
                     const char *at)
{
    struct fake *fk = ctx;

    (void)s;
    (void)r;
    fk->restarts++;
    snprintf(fk->restart_at, sizeof(fk->restart_at), "%s", at);
    return fk->restart_rc < 0 ? err_set(fk->restart_rc, "deployments.apps is forbidden")
                              : 0;
}

static void f_event(void *ctx, const struct kube_secret *s, enum event_type type,
                    const char *reason, const char *msg)
{
    struct fake *fk = ctx;

    (void)s;
    if (fk->nevents == MAX_CALLS)
        return;
    fk->events[fk->nevents].type = type;
    snprintf(fk->events[fk->nevents].reason, sizeof(fk->events[0].reason), "%s", reason);
    snprintf(fk->events[fk->nevents].msg, sizeof(fk->events[0].msg), "%s", msg);
    fk->nevents++;
}

static void f_forget(void *ctx, const char *key)
{
    struct fake *fk = ctx;

    T_EQ_STR(key, "apps/app-db");
    fk->forgets++;
}

/* A Secret with the pgtoken.io annotations given as name, value pairs after host
 * and user (NULL ends them). */
static void fake_init(struct fake *fk, const char *extra_json)
{
    char json[4096];

    memset(fk, 0, sizeof(*fk));
    fk->now_ms = T0_MS;
    fk->token = "eyJ0eXAiOiJKV1QifQ.fake.token";
    fk->login = PG_LOGIN_OK;
    fk->own.id = "wi:own";
    fk->sa.id = "sa:apps/app-sa:client";
    fk->rv = 7;
    snprintf(json, sizeof(json),
             "{\"metadata\":{\"namespace\":\"apps\",\"name\":\"app-db\",\"uid\":\"u1\","
             "\"resourceVersion\":\"7\",\"annotations\":{\"pgtoken.io/host\":\"db.example.com\","
             "\"pgtoken.io/user\":\"app\"%s}},\"data\":{}}",
             extra_json ? extra_json : "");
    T_RC(json_parse(&fk->secret, json, strlen(json), 1u << 16), 0);
    memset(&stats, 0, sizeof(stats));
    failures_hooked = 0;
}

static void fake_free(struct fake *fk)
{
    cJSON_Delete(fk->secret);
}

static struct reconcile_io io_of(struct fake *fk)
{
    return (struct reconcile_io){ fk, f_now, f_jitter, f_get, f_identity, f_mint, f_check,
                                  f_patch, f_restart, f_event, f_forget };
}

static const struct reconcile_cfg cfg = {
    .policy = POLICY_CFG_INIT, .login_check = SPEC_LOGIN_REQUIRED, .own_identity = true,
    .allow_own_identity = true, .stats = &stats, .on_failure = on_failure,
};

static int run(struct reconcile_result *res, struct fake *fk, const struct reconcile_cfg *c,
               const struct reconcile_backoff *b)
{
    struct reconcile_io io = io_of(fk);

    return reconcile_secret(res, c ? c : &cfg, &io, "apps/app-db", b);
}

/* The base64 of the fake token: what the password key must hold. */
static void token_b64(char *out, size_t n, const struct fake *fk)
{
    struct buf b = BUF_INIT(4096);

    T_RC(b64_encode(&b, fk->token, strlen(fk->token)), 0);
    snprintf(out, n, "%s", b.ptr);
    buf_release(&b);
}

static void test_new_secret_is_filled(void)
{
    struct fake fk;
    struct reconcile_result res;
    char want[256];

    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    T_EQ_INT(fk.identities, 1);
    T_EQ_STR(fk.sa_asked, ""); /* the controller's own identity */
    T_EQ_INT(fk.mints, 1);
    T_CHECK(!fk.mint_fresh);
    T_CHECK(fk.max_age_ratio > 0.24 && fk.max_age_ratio < 0.26); /* half the 0.5 ratio */
    T_EQ_INT(fk.checks, 1);
    T_EQ_INT(fk.writes, 1);
    T_EQ_INT(fk.status_writes, 0);
    token_b64(want, sizeof(want), &fk);
    T_EQ_STR(data_of(&fk, "password"), want);
    T_EQ_STR(ann_of(&fk, STATUS_ISSUED_AT), "2026-01-01T00:00:00Z");
    T_EQ_STR(ann_of(&fk, STATUS_EXPIRES_AT), "2026-01-01T01:00:00Z");
    T_EQ_STR(ann_of(&fk, STATUS_ROTATED_AT), "2026-01-01T00:00:00Z");
    T_EQ_STR(ann_of(&fk, STATUS_IDENTITY), "wi:own");
    T_EQ_STR(ann_of(&fk, STATUS_SPEC_HASH), res.spec_hash);
    T_EQ_INT(fk.nevents, 1);
    T_EQ_STR(fk.events[0].reason, "Rotated");
    T_CHECK(fk.events[0].type == EVENT_NORMAL);
    T_CHECK(strstr(fk.events[0].msg, "role app on db.example.com:5432/postgres (new)") != NULL);
    T_CHECK(strstr(fk.events[0].msg, fk.token) == NULL);
    T_CHECK(res.reset_backoff && !res.backoff);
    /* due at half the hour, less up to 10 % jitter of it */
    T_CHECK(res.requeue_after_ms >= 1620000 && res.requeue_after_ms <= 1800000);
    T_EQ_INT(stats.rotations, 1);
    fake_free(&fk);
}

static void test_fresh_then_due(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, NULL, NULL), 0);
    /* At once again: nothing to do, no call made. */
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_FRESH);
    T_EQ_INT(fk.mints, 1);
    T_EQ_INT(fk.writes, 1);
    T_CHECK(res.requeue_after_ms >= 1620000 && res.requeue_after_ms <= 1800000);
    /* At the due time: a rotation, "due". */
    fk.now_ms += res.requeue_after_ms;
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    T_EQ_INT(fk.writes, 2);
    T_CHECK(strstr(fk.events[1].msg, "(due)") != NULL);
    fake_free(&fk);
}

static void test_spec_changed_rotates(void)
{
    struct fake fk;
    struct reconcile_result res;
    char first[17];

    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, NULL, NULL), 0);
    snprintf(first, sizeof(first), "%s", res.spec_hash);
    set_ann(&fk, "pgtoken.io/database", "orders");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    T_CHECK(strcmp(first, res.spec_hash) != 0);
    T_EQ_STR(ann_of(&fk, STATUS_SPEC_HASH), res.spec_hash);
    T_CHECK(strstr(fk.events[1].msg, "(spec-changed)") != NULL);
    fake_free(&fk);
}

static void test_same_values_are_not_written_again(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, NULL, NULL), 0);
    /* The key went missing and the same token (same times) is served: the values
     * would change, so it is written... */
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(fk.secret, "data"), "password");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    T_EQ_INT(fk.writes, 2);
    /* ... while a status it cannot read, with the values in place, asks for a
     * rotation that renders what the Secret holds (same token, same expiry): no
     * write, and the next look at the token's due time. */
    set_ann(&fk, STATUS_ISSUED_AT, "garbage");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_NOOP);
    T_EQ_INT(fk.writes, 2);
    T_EQ_INT(stats.noop, 1);
    T_CHECK(res.reset_backoff && !res.backoff);
    T_CHECK(res.requeue_after_ms >= 1620000 && res.requeue_after_ms <= 1800000);
    fake_free(&fk);
}

static void test_invalid_config_waits_for_the_user(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, ",\"pgtoken.io/prot\":\"5432\"");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_INVALID);
    T_EQ_INT(res.requeue_after_ms, 0);
    T_CHECK(!res.backoff && res.reset_backoff);
    T_EQ_INT(fk.mints + fk.writes, 0);
    T_EQ_INT(fk.nevents, 1);
    T_EQ_STR(fk.events[0].reason, "InvalidConfig");
    T_CHECK(strstr(fk.events[0].msg, "did you mean pgtoken.io/port?") != NULL);
    T_CHECK(strstr(ann_of(&fk, STATUS_LAST_ERROR), "InvalidConfig: unknown annotation") ==
            ann_of(&fk, STATUS_LAST_ERROR));
    T_EQ_INT(stats.invalid, 1);
    T_EQ_INT(failures_hooked, 1);
    /* The same again: the Event goes to the recorder (it aggregates), the status is
     * not rewritten with the same text. */
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(fk.status_writes, 1);
    T_EQ_INT(fk.nevents, 2);
    fake_free(&fk);
}

static void test_token_failure_shares_the_identity_retry(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    fk.mint_rc = ERR_UNAVAILABLE;
    fk.mint_ra_ms = 30000; /* when the token cache asks the identity provider again */
    T_RC(run(&res, &fk, NULL, NULL), ERR_UNAVAILABLE);
    T_EQ_INT(res.end, DECIDE_FAILED);
    T_CHECK(res.backoff);
    T_EQ_INT(res.requeue_after_ms, 30000 + 125); /* + jitter 0.5 * 250 */
    T_EQ_INT(fk.checks + fk.writes, 0);
    T_EQ_STR(fk.events[0].reason, "TokenFailed");
    T_CHECK(strstr(fk.events[0].msg, "token request for wi:own failed: AADSTS700016") != NULL);
    T_CHECK(strncmp(ann_of(&fk, STATUS_LAST_ERROR), "TokenFailed: ", 13) == 0);
    T_EQ_INT(stats.rotation_failures, 1);
    /* No Retry-After from the cache: a second. */
    fk.mint_ra_ms = 0;
    T_RC(run(&res, &fk, NULL, NULL), ERR_UNAVAILABLE);
    T_EQ_INT(res.requeue_after_ms, 1000 + 125);
    fake_free(&fk);
}

/* The login check's outcomes: each keeps the current value and backs off. */
static void login_fails(enum pg_login login, int check_rc, const char *cls)
{
    struct fake fk;
    struct reconcile_result res;
    int rc;

    fake_init(&fk, NULL);
    fk.login = login;
    fk.check_rc = check_rc;
    rc = run(&res, &fk, NULL, NULL);
    T_CHECK(rc < 0);
    T_EQ_INT(res.end, DECIDE_FAILED);
    T_CHECK(res.backoff);
    T_EQ_INT(fk.writes, 0);
    T_CHECK(data_of(&fk, "password") == NULL);
    T_EQ_STR(fk.events[0].reason, "LoginFailed");
    if (cls) {
        char want[128];
        snprintf(want, sizeof(want), "new token did not log in as app to "
                 "db.example.com:5432/postgres (%s)", cls);
        T_CHECK(strstr(fk.events[0].msg, want) != NULL);
        T_CHECK(strstr(fk.events[0].msg, "the current value was kept") != NULL);
    }
    /* No value yet: the first retry is the base delay scaled by the jitter. */
    T_EQ_INT(res.requeue_after_ms, 750);
    fake_free(&fk);
}

static void test_login_failures_keep_the_value(void)
{
    login_fails(PG_LOGIN_REJECTED, 0, "rejected");
    login_fails(PG_LOGIN_UNREACHABLE, 0, "unreachable");
    login_fails(PG_LOGIN_TLS, 0, "tls");
    login_fails(PG_LOGIN_OK, ERR_INVALID, NULL); /* the check could not be made */
}

static void test_best_effort_writes_past_an_inconclusive_check(void)
{
    struct reconcile_cfg c = cfg;
    struct fake fk;
    struct reconcile_result res;

    c.login_check = SPEC_LOGIN_BEST_EFFORT;
    fake_init(&fk, NULL);
    fk.login = PG_LOGIN_UNREACHABLE;
    T_RC(run(&res, &fk, &c, NULL), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    /* ... but not past a rejection. */
    fake_free(&fk);
    fake_init(&fk, NULL);
    fk.login = PG_LOGIN_REJECTED;
    T_RC(run(&res, &fk, &c, NULL), ERR_REJECTED);
    T_EQ_INT(fk.writes, 0);
    fake_free(&fk);
    /* The Secret's own mode wins over the controller's: off makes no check. */
    fake_init(&fk, ",\"pgtoken.io/login-check\":\"off\"");
    fk.login = PG_LOGIN_REJECTED;
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(fk.checks, 0);
    T_EQ_INT(fk.writes, 1);
    fake_free(&fk);
}

static void test_conflict_decides_again_soon(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    fk.rv = 8; /* someone wrote after our cache's version 7 */
    T_RC(run(&res, &fk, NULL, NULL), ERR_CONFLICT);
    T_EQ_INT(res.end, DECIDE_CONFLICT);
    T_EQ_INT(res.requeue_after_ms, DECIDE_CONFLICT_MS);
    T_CHECK(!res.backoff); /* not a failure: no backoff, no Event */
    T_EQ_INT(fk.nevents, 0);
    T_EQ_INT(stats.conflicts, 1);
    T_CHECK(data_of(&fk, "password") == NULL);
    fake_free(&fk);
}

static void test_throttled_write_waits_quietly(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    fk.write_rc = ERR_UNAVAILABLE;
    fk.write_ra_ms = 20000; /* 429 with Retry-After: 20 */
    T_RC(run(&res, &fk, NULL, NULL), ERR_UNAVAILABLE);
    T_EQ_INT(res.end, DECIDE_FAILED);
    T_EQ_INT(res.requeue_after_ms, 20000);
    T_CHECK(res.backoff);
    T_EQ_INT(fk.nevents, 0);       /* no Event ... */
    T_EQ_INT(fk.status_writes, 0); /* ... and no status write: it asked us to wait */
    /* Without Retry-After the failure is reported. */
    fk.write_ra_ms = 0;
    fk.write_rc = ERR_UNAVAILABLE;
    T_RC(run(&res, &fk, NULL, NULL), ERR_UNAVAILABLE);
    T_EQ_INT(fk.nevents, 1);
    T_EQ_STR(fk.events[0].reason, "WriteFailed");
    T_CHECK(strstr(fk.events[0].msg, "writing the Secret failed: the server said no") != NULL);
    T_EQ_INT(fk.status_writes, 1);
    fake_free(&fk);
}

/* A Retry-After belongs to the call it came with: the next failure of another
 * kind does not inherit it. */
static void test_retry_after_does_not_leak(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    fk.write_rc = ERR_UNAVAILABLE;
    fk.write_ra_ms = 600000;
    T_RC(run(&res, &fk, NULL, NULL), ERR_UNAVAILABLE);
    T_EQ_INT(res.requeue_after_ms, 600000);
    fk.write_rc = 0;
    fk.login = PG_LOGIN_REJECTED;
    T_RC(run(&res, &fk, NULL, NULL), ERR_REJECTED);
    T_CHECK(res.requeue_after_ms < 600000);
    T_EQ_INT(res.requeue_after_ms, 750);
    fake_free(&fk);
}

static void test_backoff_holds_until_the_spec_changes(void)
{
    struct fake fk;
    struct reconcile_result res;
    struct reconcile_backoff b;
    char tag[17];

    fake_init(&fk, NULL);
    fk.login = PG_LOGIN_REJECTED;
    T_RC(run(&res, &fk, NULL, NULL), ERR_REJECTED);
    snprintf(tag, sizeof(tag), "%s", res.spec_hash);
    /* Woken by our own status write while the backoff holds: no new attempt. */
    b = (struct reconcile_backoff){ 1, 700, tag };
    T_RC(run(&res, &fk, NULL, &b), 0);
    T_EQ_INT(res.end, DECIDE_BACKING_OFF);
    T_EQ_INT(res.requeue_after_ms, 700);
    T_EQ_INT(fk.checks, 1);
    /* The backoff over, the next failure waits longer (attempt 2). */
    b.wait_ms = 0;
    b.failures = 3;
    T_RC(run(&res, &fk, NULL, &b), ERR_REJECTED);
    T_EQ_INT(res.requeue_after_ms, 6000); /* 8 s scaled by 0.75 */
    /* A changed spec goes at once, backoff or not. */
    b.wait_ms = 100000;
    set_ann(&fk, "pgtoken.io/database", "orders");
    fk.login = PG_LOGIN_OK;
    T_RC(run(&res, &fk, NULL, &b), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    T_CHECK(res.reset_backoff);
    fake_free(&fk);
}

static void test_failing_live_value_is_saved_in_time(void)
{
    struct fake fk;
    struct reconcile_result res;
    struct reconcile_backoff b = { 20, 0, NULL };

    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, NULL, NULL), 0);
    fk.now_ms += 3000 * 1000; /* 10 minutes left of the written token: due */
    fk.mint_rc = ERR_REJECTED;
    T_RC(run(&res, &fk, NULL, &b), ERR_REJECTED);
    /* the shared identity's failure: its retry, not the Secret's */
    T_EQ_INT(res.requeue_after_ms, 1125);
    fk.mint_rc = 0;
    fk.login = PG_LOGIN_UNREACHABLE;
    T_RC(run(&res, &fk, NULL, &b), ERR_REJECTED);
    T_EQ_INT(res.requeue_after_ms, 150000); /* a quarter of the 10 minutes left */
    fake_free(&fk);
}

static void test_write_failure_reports_and_backs_off(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    fk.write_rc = ERR_DENIED;
    T_RC(run(&res, &fk, NULL, NULL), ERR_DENIED);
    T_EQ_INT(res.end, DECIDE_FAILED);
    T_CHECK(res.backoff);
    T_EQ_STR(fk.events[0].reason, "WriteFailed");
    T_EQ_INT(failures_hooked, 1);
    fake_free(&fk);
}

static void test_restarts_after_the_write(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, ",\"pgtoken.io/restart\":\"deployment/api,statefulset/worker\"");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(fk.restarts, 2);
    T_EQ_STR(fk.restart_at, "2026-01-01T00:00:00Z");
    T_EQ_INT(stats.restarts, 2);
    T_EQ_INT(fk.nevents, 3);
    T_EQ_STR(fk.events[1].reason, "Restarted");
    T_CHECK(strstr(fk.events[1].msg, "restarted deployment/api") != NULL);
    fake_free(&fk);
    /* A failed restart is reported, not retried: the write stands. */
    fake_init(&fk, ",\"pgtoken.io/restart\":\"deployment/api\"");
    fk.restart_rc = ERR_DENIED;
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    T_CHECK(!res.backoff);
    T_EQ_INT(fk.nevents, 2);
    T_EQ_STR(fk.events[1].reason, "RestartFailed");
    T_CHECK(strstr(fk.events[1].msg, "RBAC") != NULL);
    T_EQ_INT(stats.restarts, 0);
    fake_free(&fk);
}

static void test_deleted_secret_is_forgotten(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    cJSON_Delete(fk.secret);
    fk.secret = NULL;
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_GONE);
    T_EQ_INT(fk.forgets, 1);
    T_EQ_INT(res.requeue_after_ms, 0);
    T_EQ_INT(fk.identities + fk.mints, 0);
    /* Deleted between our read and our write: the 404 ends it quietly. */
    fake_init(&fk, NULL);
    fk.write_rc = ERR_NOTFOUND;
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_GONE);
    T_EQ_INT(fk.nevents, 0);
    T_CHECK(!res.backoff);
    fake_free(&fk);
    /* Being deleted: nothing. */
    fake_init(&fk, NULL);
    cJSON_AddStringToObject(cJSON_GetObjectItem(fk.secret, "metadata"), "deletionTimestamp",
                            "2026-01-01T00:00:00Z");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_DELETING);
    T_EQ_INT(fk.identities + fk.nevents, 0);
    fake_free(&fk);
}

static void test_identity_choices(void)
{
    struct reconcile_cfg c = cfg;
    struct fake fk;
    struct reconcile_result res;

    /* Own identity not allowed and none named: InvalidConfig, no call. */
    c.allow_own_identity = false;
    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, &c, NULL), ERR_INVALID);
    T_EQ_INT(fk.identities, 0);
    T_CHECK(strstr(fk.events[0].msg, "allowControllerIdentity is false") != NULL);
    T_CHECK(res.requeue_after_ms >= 500); /* backs off, to minutes with no value */
    fake_free(&fk);
    /* A named ServiceAccount is used, and shows in the status. */
    fake_init(&fk, ",\"pgtoken.io/service-account\":\"app-sa\"");
    T_RC(run(&res, &fk, &c, NULL), 0);
    T_EQ_STR(fk.sa_asked, "app-sa");
    T_EQ_STR(ann_of(&fk, STATUS_IDENTITY), "sa:apps/app-sa:client");
    fake_free(&fk);
    /* A missing ServiceAccount is the user's to fix; an API error is not. */
    fake_init(&fk, ",\"pgtoken.io/service-account\":\"app-sa\"");
    fk.identity_rc = ERR_NOTFOUND;
    T_RC(run(&res, &fk, &c, NULL), ERR_NOTFOUND);
    T_EQ_STR(fk.events[0].reason, "InvalidConfig");
    T_CHECK(strstr(fk.events[0].msg, "pgtoken.io/service-account: identity says no") != NULL);
    fk.identity_rc = ERR_UNAVAILABLE;
    fk.identity_ra_ms = 9000;
    T_RC(run(&res, &fk, &c, NULL), ERR_UNAVAILABLE);
    T_EQ_STR(fk.events[1].reason, "TokenFailed");
    T_CHECK(strstr(fk.events[1].msg, "reading ServiceAccount apps/app-sa failed") != NULL);
    T_EQ_INT(res.requeue_after_ms, 9000);
    T_EQ_INT(fk.mints, 0);
    fake_free(&fk);
}

static void test_force_rotate(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, NULL, NULL), 0);
    set_ann(&fk, "pgtoken.io/force-rotate", "2026-01-01 ticket 42");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_ROTATED);
    T_CHECK(fk.mint_fresh && fk.check_fresh); /* a token and a login of its own */
    T_EQ_INT(fk.writes, 2); /* written although the values are the same */
    T_EQ_STR(ann_of(&fk, STATUS_FORCE_ROTATE), "2026-01-01 ticket 42");
    T_CHECK(strstr(fk.events[1].msg, "(forced)") != NULL);
    /* Handled: the same value asks for nothing more. */
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_FRESH);
    T_EQ_INT(fk.mints, 2);
    fake_free(&fk);
}

static void test_old_error_is_cleared_when_fresh(void)
{
    struct fake fk;
    struct reconcile_result res;

    fake_init(&fk, NULL);
    T_RC(run(&res, &fk, NULL, NULL), 0);
    set_ann(&fk, STATUS_LAST_ERROR, "LoginFailed: old");
    T_RC(run(&res, &fk, NULL, NULL), 0);
    T_EQ_INT(res.end, DECIDE_FRESH);
    T_CHECK(res.reset_backoff);
    T_EQ_INT(fk.status_writes, 1);
    T_CHECK(ann_of(&fk, STATUS_LAST_ERROR) == NULL);
    fake_free(&fk);
}

static void test_decide_is_pure(void)
{
    struct spec sp = SPEC_INIT;
    struct decide_facts f = { .now_ms = T0_MS, .found = true, .spec_rc = 0, .spec = &sp,
                              .spec_hash = "0123456789abcdef", .own_identity = true,
                              .allow_own_identity = true, .ns = "apps", .name = "app-db" };
    struct decide_plan a, b;

    f.status.spec_hash = f.spec_hash;
    decide_next(&a, &f);
    decide_next(&b, &f);
    T_EQ_INT(a.next, DECIDE_IDENTITY);
    T_CHECK(a.next == b.next && a.fresh == b.fresh && !strcmp(a.why, b.why));
    T_EQ_STR(a.why, "new");
    f.identity.tried = true;
    decide_next(&a, &f);
    T_EQ_INT(a.next, DECIDE_TOKEN);
    f.token.tried = true;
    f.token_issued_at_s = T0_MS / 1000;
    f.token_expires_at_s = T0_MS / 1000 + LIFE_S;
    decide_next(&a, &f);
    T_EQ_INT(a.next, DECIDE_CHECK); /* unset mode, default (zero) required */
    f.check.tried = true;
    decide_next(&a, &f);
    T_EQ_INT(a.next, DECIDE_RENDER);
    T_EQ_STR(a.status.expires_at, "2026-01-01T01:00:00Z");
    f.render.tried = true;
    decide_next(&a, &f);
    T_EQ_INT(a.next, DECIDE_WRITE);
    f.write.tried = true;
    decide_next(&a, &f);
    T_EQ_INT(a.next, DECIDE_DONE);
    T_EQ_INT(a.end, DECIDE_ROTATED);
}

int main(void)
{
    T_RUN(test_new_secret_is_filled);
    T_RUN(test_fresh_then_due);
    T_RUN(test_spec_changed_rotates);
    T_RUN(test_same_values_are_not_written_again);
    T_RUN(test_invalid_config_waits_for_the_user);
    T_RUN(test_token_failure_shares_the_identity_retry);
    T_RUN(test_login_failures_keep_the_value);
    T_RUN(test_best_effort_writes_past_an_inconclusive_check);
    T_RUN(test_conflict_decides_again_soon);
    T_RUN(test_throttled_write_waits_quietly);
    T_RUN(test_retry_after_does_not_leak);
    T_RUN(test_backoff_holds_until_the_spec_changes);
    T_RUN(test_failing_live_value_is_saved_in_time);
    T_RUN(test_write_failure_reports_and_backs_off);
    T_RUN(test_restarts_after_the_write);
    T_RUN(test_deleted_secret_is_forgotten);
    T_RUN(test_identity_choices);
    T_RUN(test_force_rotate);
    T_RUN(test_old_error_is_cleared_when_fresh);
    T_RUN(test_decide_is_pure);
    return t_done();
}
