/* lib/pg/pgcheck: the cache of login checks, with hooks for the login and the clock (no I/O),
 * then against the real servers that tests/unit/pg/with-pg.sh starts (see pgtest.h). */
#include "pgtest.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/jwt.h"
#include "base/sbuf.h"
#include "pg/pgcheck.h"

/* ---- the cache with hooks (no I/O) ------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    int calls;
    enum pg_login answer;
    int64_t now;
    int delay_ms;
} fake = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int fake_check(struct pg_check_result *out, const struct pg_target *t,
                      const struct sbuf *token, const struct pg_check_opts *o, void *arg)
{
    (void)t, (void)token, (void)o;
    T_CHECK(arg == &fake);
    pthread_mutex_lock(&fake.mu);
    fake.calls++;
    pthread_mutex_unlock(&fake.mu);
    if (fake.delay_ms)
        usleep((useconds_t)fake.delay_ms * 1000);
    memset(out, 0, sizeof(*out));
    out->login = fake.answer;
    snprintf(out->message, sizeof(out->message), "fake %s", pg_login_name(fake.answer));
    return 0;
}

static int64_t fake_now(void *arg)
{
    (void)arg;
    return fake.now;
}

static const struct pg_check_cache_hooks FAKE_HOOKS = { fake_check, fake_now, &fake };

static void fake_reset(void)
{
    fake.calls = 0;
    fake.answer = PG_LOGIN_OK;
    fake.now = 1000;
    fake.delay_ms = 0;
}

static void test_cache_keeps_ok_until_expiry(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token-one", 9), *tok2 = sbuf_from("token-two", 9);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(!res.cached);
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 1);
    /* Another token for the same target is another login. */
    T_RC(pg_check_cached(&res, c, &t, tok2, 1100, NULL), 0);
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, 2);
    /* At the token's expiry the entry no longer answers. */
    fake.now = 1100;
    T_RC(pg_check_cached(&res, c, &t, tok, 1200, NULL), 0);
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, 3);
    /* A token already expired is checked but not kept. */
    T_RC(pg_check_cached(&res, c, &t, tok2, 1100, NULL), 0);
    T_RC(pg_check_cached(&res, c, &t, tok2, 1100, NULL), 0);
    T_EQ_INT(fake.calls, 5);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.hits, 1);
    T_EQ_INT(st.checks, 5);
    T_EQ_INT(st.entries, 1);
    pg_check_cache_free(c);
    sbuf_free(tok);
    sbuf_free(tok2);
}

/* pg_check_fresh: a kept OK does not answer; the login made replaces it, and a failure
 * replaces it too (the token's kept OK must not outlive a refusal that was seen). */
static void test_cache_fresh_logs_in_again(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token-one", 9);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_RC(pg_check_fresh(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, 2);
    /* Its OK is kept for everyone else. */
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 2);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.entries, 1);
    T_EQ_INT(st.hits, 1);
    T_EQ_INT(st.checks, 2);
    /* A refusal is what the caller gets, and it replaces the kept OK. */
    fake.answer = PG_LOGIN_REJECTED;
    T_RC(pg_check_fresh(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_REJECTED, "fake rejected");
    T_CHECK(!res.cached);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.entries, 1);
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_REJECTED, "fake rejected");
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 3);
    /* A kept failure does not answer pg_check_fresh either. */
    fake.answer = PG_LOGIN_OK;
    T_RC(pg_check_fresh(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_EQ_INT(fake.calls, 4);
    T_RC(pg_check_fresh(&res, c, NULL, tok, 1100, NULL), ERR_INVALID);
    T_RC(pg_check_fresh(&res, NULL, &t, tok, 1100, NULL), ERR_INVALID);
    pg_check_cache_free(c);
    sbuf_free(tok);
}

/* A failure is kept a short while, doubling while the same key keeps failing (5, 10, 20 s,
 * ... at most 300 s) and never past the token's expiry: Secrets failing for one cause cost
 * one login per while. Every kind of failure is kept; a success after it is kept as usual. */
static void test_cache_keeps_failures_a_while(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token", 5), *tok2 = sbuf_from("token-2", 7);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;
    const enum pg_login fails[] = { PG_LOGIN_REJECTED, PG_LOGIN_UNREACHABLE, PG_LOGIN_TLS,
                                    PG_LOGIN_ERROR };
    const int64_t keep[] = { 5, 10, 20, 40, 80, 160, 300, 300 };
    int64_t t0;
    long calls;

    fake_reset();
    for (size_t i = 0; i < 4; i++) {
        struct pg_target ti = t;
        ti.port = 5432 + (int)i; /* a key of its own for each kind */
        fake.answer = fails[i];
        T_RC(pg_check_cached(&res, c, &ti, tok, 100000, NULL), 0);
        T_EQ_INT(res.login, fails[i]);
        T_CHECK(!res.cached);
        T_RC(pg_check_cached(&res, c, &ti, tok, 100000, NULL), 0);
        T_EQ_INT(res.login, fails[i]);
        T_CHECK(res.cached);
    }
    T_EQ_INT(fake.calls, 4);
    /* The keep doubles with each failure in a row of one key, up to 300 s. */
    fake.answer = PG_LOGIN_TLS;
    t0 = fake.now;
    for (size_t n = 0; n < sizeof(keep) / sizeof(keep[0]); n++) {
        calls = fake.calls;
        T_RC(pg_check_cached(&res, c, &t, tok2, 100000, NULL), 0);
        T_CHECK(!res.cached);
        T_EQ_INT(fake.calls, calls + 1);
        fake.now = t0 + keep[n] - 1; /* still kept a second before the end */
        T_RC(pg_check_cached(&res, c, &t, tok2, 100000, NULL), 0);
        T_CHECK(res.cached);
        T_EQ_INT(fake.calls, calls + 1);
        t0 += keep[n];
        fake.now = t0; /* at the end: a login again */
    }
    /* Never past the token's expiry. */
    fake.answer = PG_LOGIN_REJECTED;
    t.user = "app2";
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 2, NULL), 0);
    fake.now += 2;
    calls = fake.calls;
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 100, NULL), 0);
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, calls + 1);
    /* Once the DBA grants the role, the first call after the keep (10 s: the second
     * failure in a row) logs in and keeps it. */
    fake.answer = PG_LOGIN_OK;
    fake.now += 10;
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 1000, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(!res.cached);
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 1000, NULL), 0);
    T_CHECK(res.cached);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.failures_shared, 4 + 8);
    pg_check_cache_free(c);
    sbuf_free(tok);
    sbuf_free(tok2);
}

static void test_cache_key_fields(void)
{
    struct pg_check_cache *c = pg_check_cache_new(32, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token", 5);
    const struct pg_target base = { "db.example", 5432, "postgres", "app1" };
    struct pg_target t;
    struct pg_check_opts o = { 0 };
    struct pg_check_result res;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, NULL), 0);
    t = base, t.host = "db2.example";
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    t = base, t.port = 6432;
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    t = base, t.database = "other";
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    t = base, t.user = "app2";
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    o.sslmode = "verify-ca";
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    o.sslmode = NULL, o.ca_file = "/etc/other-ca.pem";
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    o.ca_file = NULL, o.insecure_skip_tls_verify = true;
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    T_EQ_INT(fake.calls, 8);
    /* The defaults spelled out are the same key; the timeout is not part of it. */
    o.insecure_skip_tls_verify = false;
    o.sslmode = "verify-full", o.ca_file = PG_CHECK_DEFAULT_CA_FILE, o.connect_timeout_s = 3;
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 8);
    /* Bad arguments never reach the login. */
    t = base, t.port = 0;
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), ERR_INVALID);
    T_RC(pg_check_cached(&res, NULL, &base, tok, 5000, NULL), ERR_INVALID);
    T_EQ_INT(fake.calls, 8);
    pg_check_cache_free(c);
    sbuf_free(tok);
}

static void test_cache_bounded(void)
{
    struct pg_check_cache *c = pg_check_cache_new(2, &FAKE_HOOKS);
    struct sbuf *a = sbuf_from("token-a", 7), *b = sbuf_from("token-b", 7);
    struct sbuf *d = sbuf_from("token-d", 7), *e = sbuf_from("token-e", 7);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &t, a, 1500, NULL), 0); /* oldest, expires first */
    T_RC(pg_check_cached(&res, c, &t, b, 3000, NULL), 0);
    fake.now = 2000;                                       /* a has expired */
    T_RC(pg_check_cached(&res, c, &t, d, 3000, NULL), 0); /* evicts a, the expired one */
    T_RC(pg_check_cached(&res, c, &t, b, 3000, NULL), 0);
    T_CHECK(res.cached);
    T_RC(pg_check_cached(&res, c, &t, e, 3000, NULL), 0); /* full, none expired: evicts b */
    T_RC(pg_check_cached(&res, c, &t, d, 3000, NULL), 0);
    T_CHECK(res.cached);
    T_RC(pg_check_cached(&res, c, &t, e, 3000, NULL), 0);
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 4);
    T_RC(pg_check_cached(&res, c, &t, b, 3000, NULL), 0);
    T_CHECK(!res.cached);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.entries, 2);
    T_EQ_INT(st.evicted, 3);
    pg_check_cache_free(c);
    sbuf_free(a);
    sbuf_free(b);
    sbuf_free(d);
    sbuf_free(e);
}

struct racer {
    struct pg_check_cache *c;
    const struct pg_target *t;
    const struct sbuf *tok;
    const struct pg_check_opts *o;
    int64_t expires_at;
    int rc;
    struct pg_check_result res;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;

    r->rc = pg_check_cached(&r->res, r->c, r->t, r->tok, r->expires_at, r->o);
    return NULL;
}

/* n threads check the same target and token at once; returns how many said cached. */
static int race(struct racer *r, int n)
{
    pthread_t th[16];
    int cached = 0;

    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, racer_main, &r[i]);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        cached += r[i].res.cached;
    }
    return cached;
}

static void test_cache_concurrent_calls_share_one_login(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token", 5);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct racer r[8];

    fake_reset();
    fake.delay_ms = 200;
    fake.answer = PG_LOGIN_REJECTED; /* shared while in flight, then kept a while */
    for (int i = 0; i < 8; i++)
        r[i] = (struct racer){ c, &t, tok, NULL, 5000, -99, { 0 } };
    T_EQ_INT(race(r, 8), 7);
    T_EQ_INT(fake.calls, 1);
    for (int i = 0; i < 8; i++) {
        T_RC(r[i].rc, 0);
        T_LOGIN(r[i].res, PG_LOGIN_REJECTED, "fake rejected");
    }
    fake.answer = PG_LOGIN_OK;
    fake.now += PG_CHECK_FAIL_KEEP_MIN_S; /* the kept refusal has run out */
    T_EQ_INT(race(r, 8), 7);
    T_EQ_INT(fake.calls, 2);
    T_EQ_INT(race(r, 8), 8);
    T_EQ_INT(fake.calls, 2);
    pg_check_cache_free(c);
    sbuf_free(tok);
}

/* ---- against the real servers ------------------------------------------------------------ */

static int64_t token_exp(const struct sbuf *tok)
{
    struct jwt_times jt;

    if (jwt_read_times(&jt, sbuf_expose(tok), sbuf_len(tok)) < 0)
        return 0;
    return jt.exp;
}

static void test_cache_against_server(void)
{
    struct pg_check_cache *c;
    struct pg_check_cache_stats st;
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;
    struct racer r[8];
    int before, refused_before;

    NEED_PG();
    c = pg_check_cache_new(0, NULL);
    t = target(&env.s1, NULL, "postgres", "app1");
    o = verified(&env.s1);
    before = app1_logins();
    T_RC(pg_check_cached(&res, c, &t, env.valid, token_exp(env.valid), &o), 0);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    T_CHECK(!res.cached);
    T_EQ_INT(app1_logins(), before + 1);
    /* The same token again: answered from the cache, no new login on the server. */
    T_RC(pg_check_cached(&res, c, &t, env.valid, token_exp(env.valid), &o), 0);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    T_CHECK(res.cached);
    T_EQ_INT(app1_logins(), before + 1);
    /* A different token: a new login. */
    T_RC(pg_check_cached(&res, c, &t, env.valid2, token_exp(env.valid2), &o), 0);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    T_CHECK(!res.cached);
    T_EQ_INT(app1_logins(), before + 2);
    /* A failure is kept a while: the expired token is refused by the server once, and the
     * second call is answered with that refusal. */
    refused_before = count_log(&env.s1, "pam_pgtoken: refused role app1: token expired", NULL,
                               NULL);
    for (int i = 0; i < 2; i++) {
        T_RC(pg_check_cached(&res, c, &t, env.expired, clock_wall_s() + 600, &o), 0);
        T_LOGIN(res, PG_LOGIN_REJECTED, NULL);
        T_CHECK(res.cached == (i == 1));
    }
    T_EQ_INT(count_log(&env.s1, "pam_pgtoken: refused role app1: token expired", NULL, NULL),
             refused_before + 1);
    /* Eight workers with a new token at once: one login. */
    for (int i = 0; i < 8; i++)
        r[i] = (struct racer){ c, &t, env.valid3, &o, token_exp(env.valid3), -99, { 0 } };
    T_EQ_INT(race(r, 8), 7);
    for (int i = 0; i < 8; i++) {
        T_RC(r[i].rc, 0);
        T_LOGIN(r[i].res, PG_LOGIN_OK, NULL);
    }
    T_EQ_INT(app1_logins(), before + 3);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.checks, 4);
    T_EQ_INT(st.hits + st.shared, 8);
    T_EQ_INT(st.failures_shared, 1);
    T_EQ_INT(st.entries, 4);
    pg_check_cache_free(c);
}

int main(void)
{
    unset_pg_vars();

    T_RUN(test_cache_keeps_ok_until_expiry);
    T_RUN(test_cache_fresh_logs_in_again);
    T_RUN(test_cache_keeps_failures_a_while);
    T_RUN(test_cache_key_fields);
    T_RUN(test_cache_bounded);
    T_RUN(test_cache_concurrent_calls_share_one_login);

    T_RUN(test_server_environment);
    T_RUN(test_cache_against_server);
    release_env();
    return t_done();
}
