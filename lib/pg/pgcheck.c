#include "pg/pgcheck.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/sbuf.h"
#include "base/sha256.h"
#include "base/banned.h"

struct key {
    unsigned char token_sha256[SHA256_LEN];
    int port;
    const char *host, *database, *user, *sslmode, *ca_file;
};

struct entry {
    struct key key; /* strings owned */
    int64_t expires_at; /* kept until then: the token's expiry (OK), or the end of the
                         * failure's keep (anything else) */
    unsigned failures;  /* failed logins in a row for this key (0 for an OK) */
    uint64_t seq;       /* insertion order: the smallest is the oldest */
    struct pg_check_result result;
};

/* A login in progress, joined by identical calls. Freed by the last one out. */
struct flight {
    struct key key; /* strings owned */
    struct pg_check_result result;
    int rc;
    bool done;
    unsigned refs;
    struct flight *next;
};

struct pg_check_cache {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct entry *entries; /* grown as needed, up to max */
    size_t n, cap, max;
    uint64_t seq;
    struct flight *flights;
    struct pg_check_cache_hooks hooks;
    struct pg_check_cache_stats stats;
};

static int real_check(struct pg_check_result *out, const struct pg_target *t,
                      const struct sbuf *token, const struct pg_check_opts *o, void *arg)
{
    (void)arg;
    return pg_check_login(out, t, token, o);
}

static int64_t real_now(void *arg)
{
    (void)arg;
    return clock_wall_s();
}

/* A key that borrows the caller's strings. */
static void key_view(struct key *k, const struct pg_target *t, const struct login_params *e,
                     const struct sbuf *token)
{
    memset(k, 0, sizeof(*k));
    sha256(k->token_sha256, sbuf_expose(token), sbuf_len(token));
    k->port = t->port;
    k->host = t->host;
    k->database = t->database;
    k->user = t->user;
    k->sslmode = e->sslmode;
    k->ca_file = e->ca_file;
}

static void key_dup(struct key *dst, const struct key *src)
{
    memcpy(dst->token_sha256, src->token_sha256, sizeof(dst->token_sha256));
    dst->port = src->port;
    dst->host = xstrdup(src->host);
    dst->database = xstrdup(src->database);
    dst->user = xstrdup(src->user);
    dst->sslmode = xstrdup(src->sslmode);
    dst->ca_file = xstrdup(src->ca_file);
}

static void key_release(struct key *k)
{
    OPENSSL_cleanse(k->token_sha256, sizeof(k->token_sha256));
    free((char *)k->host);
    free((char *)k->database);
    free((char *)k->user);
    free((char *)k->sslmode);
    free((char *)k->ca_file);
    memset(k, 0, sizeof(*k));
}

static bool key_eq(const struct key *a, const struct key *b)
{
    return CRYPTO_memcmp(a->token_sha256, b->token_sha256, sizeof(a->token_sha256)) == 0 &&
           a->port == b->port && strcmp(a->host, b->host) == 0 &&
           strcmp(a->database, b->database) == 0 && strcmp(a->user, b->user) == 0 &&
           strcmp(a->sslmode, b->sslmode) == 0 && strcmp(a->ca_file, b->ca_file) == 0;
}

struct pg_check_cache *pg_check_cache_new(size_t max_entries,
                                          const struct pg_check_cache_hooks *hooks)
{
    struct pg_check_cache *c = xcalloc(1, sizeof(*c));

    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->max = max_entries ? max_entries : PG_CHECK_CACHE_DEFAULT_ENTRIES;
    if (hooks)
        c->hooks = *hooks;
    if (!c->hooks.check)
        c->hooks.check = real_check;
    if (!c->hooks.now_s)
        c->hooks.now_s = real_now;
    return c;
}

void pg_check_cache_free(struct pg_check_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        key_release(&c->entries[i].key);
    free(c->entries);
    while (c->flights) { /* only if freed during a call, which the header forbids */
        struct flight *f = c->flights;
        c->flights = f->next;
        key_release(&f->key);
        free(f);
    }
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Called with the lock held. */
static void drop_entry(struct pg_check_cache *c, size_t i)
{
    key_release(&c->entries[i].key);
    c->entries[i] = c->entries[--c->n];
    memset(&c->entries[c->n], 0, sizeof(c->entries[c->n]));
}

/* How long the n-th failed login in a row of one key is kept: PG_CHECK_FAIL_KEEP_MIN_S,
 * doubling, at most PG_CHECK_FAIL_KEEP_MAX_S. */
static int64_t fail_keep_s(unsigned n)
{
    int64_t s = PG_CHECK_FAIL_KEEP_MIN_S;

    for (unsigned i = 1; i < n && s < PG_CHECK_FAIL_KEEP_MAX_S; i++)
        s *= 2;
    return s < PG_CHECK_FAIL_KEEP_MAX_S ? s : PG_CHECK_FAIL_KEEP_MAX_S;
}

/* Keeps res for k until until (a later result of the same key replaces an earlier one). */
static void insert_result(struct pg_check_cache *c, const struct key *k, int64_t until,
                          unsigned failures, const struct pg_check_result *res, int64_t now)
{
    struct entry *en = NULL;

    for (size_t i = 0; i < c->n && !en; i++)
        if (key_eq(&c->entries[i].key, k)) /* another caller's login finished first */
            en = &c->entries[i];
    if (!en && c->n == c->max) {
        for (size_t i = c->n; i-- > 0;) {
            if (c->entries[i].expires_at <= now) {
                drop_entry(c, i);
                c->stats.evicted++;
            }
        }
    }
    if (!en && c->n == c->max) {
        size_t oldest = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->entries[i].seq < c->entries[oldest].seq)
                oldest = i;
        drop_entry(c, oldest);
        c->stats.evicted++;
    }
    if (!en) {
        /* A few distinct (user, token) pairs in practice: no room for max up front. */
        if (c->n == c->cap)
            XGROW(c->entries, c->cap, c->n + 1);
        en = &c->entries[c->n++];
        key_dup(&en->key, k);
    }
    en->expires_at = until;
    en->failures = failures;
    en->seq = ++c->seq;
    en->result = *res;
    en->result.cached = false;
}

static void flight_unref(struct pg_check_cache *c, struct flight *f)
{
    (void)c;
    if (--f->refs == 0) {
        key_release(&f->key);
        free(f);
    }
}

/* reuse: a kept OK answers; else it is dropped and a login made. */
static int check_cached(struct pg_check_result *out, struct pg_check_cache *c,
                        const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                        const struct pg_check_opts *o, bool reuse)
{
    struct pg_check_result res;
    struct login_params e;
    struct key k;
    struct flight *f, **pp;
    int64_t now;
    unsigned failures = 0; /* of this key before this login, when a kept failure ran out */
    int rc;

    if (!out)
        return err_set(ERR_INVALID, "no result to fill");
    if (!c) {
        classify_result_init(out);
        return err_set(ERR_INVALID, "no cache");
    }
    if ((rc = login_prepare(&e, out, t, token, o)) < 0)
        return rc;
    key_view(&k, t, &e, token);

    pthread_mutex_lock(&c->mu);
    now = c->hooks.now_s(c->hooks.arg);
    for (size_t i = 0; i < c->n; i++) {
        if (!key_eq(&c->entries[i].key, &k))
            continue;
        if (reuse && c->entries[i].expires_at > now) {
            *out = c->entries[i].result;
            out->cached = true;
            if (out->login == PG_LOGIN_OK)
                c->stats.hits++;
            else
                c->stats.failures_shared++;
            pthread_mutex_unlock(&c->mu);
            rc = 0;
            goto out;
        }
        /* the token has expired or the failure's keep ran out (a login now will tell), or
         * !reuse */
        failures = c->entries[i].failures;
        drop_entry(c, i);
        break;
    }
    for (f = c->flights; f; f = f->next)
        if (key_eq(&f->key, &k))
            break;
    if (f) {
        f->refs++;
        c->stats.shared++;
        while (!f->done)
            pthread_cond_wait(&c->cond, &c->mu);
        *out = f->result;
        out->cached = true;
        rc = f->rc;
        flight_unref(c, f);
        pthread_mutex_unlock(&c->mu);
        if (rc < 0) /* the message is per thread: give this one the leader's */
            err_set(rc, "%s", out->message);
        goto out;
    }
    f = xcalloc(1, sizeof(*f));
    key_dup(&f->key, &k);
    f->refs = 1;
    f->next = c->flights;
    c->flights = f;
    c->stats.checks++;
    pthread_mutex_unlock(&c->mu);

    classify_result_init(&res);
    rc = c->hooks.check(&res, t, token, o, c->hooks.arg);

    pthread_mutex_lock(&c->mu);
    now = c->hooks.now_s(c->hooks.arg);
    f->rc = rc;
    f->result = res;
    f->result.cached = false;
    f->done = true;
    for (pp = &c->flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    if (rc == 0 && res.login == PG_LOGIN_OK && expires_at > now) {
        insert_result(c, &f->key, expires_at, 0, &res, now);
    } else if (rc == 0 && res.login != PG_LOGIN_OK) {
        /* Kept a while, so that the Secrets that fail for the same cause (a server down,
         * a certificate not trusted, a role missing) cost one login per while, not one
         * each. Never past the token's expiry. */
        int64_t until = now + fail_keep_s(failures + 1);
        insert_result(c, &f->key, expires_at > now && expires_at < until ? expires_at : until,
                      failures + 1, &res, now);
    }
    pthread_cond_broadcast(&c->cond);
    flight_unref(c, f);
    pthread_mutex_unlock(&c->mu);
    *out = res;
    out->cached = false;
out:
    OPENSSL_cleanse(k.token_sha256, sizeof(k.token_sha256));
    return rc;
}

int pg_check_cached(struct pg_check_result *out, struct pg_check_cache *c,
                    const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                    const struct pg_check_opts *o)
{
    return check_cached(out, c, t, token, expires_at, o, true);
}

int pg_check_fresh(struct pg_check_result *out, struct pg_check_cache *c,
                   const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                   const struct pg_check_opts *o)
{
    return check_cached(out, c, t, token, expires_at, o, false);
}

void pg_check_cache_stats(struct pg_check_cache_stats *out, struct pg_check_cache *c)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    out->entries = c->n;
    pthread_mutex_unlock(&c->mu);
}
