#include "idp/tokcache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strmap.h"
#include "base/banned.h"

#define ERRMSG_MAX 512

struct entry {
    pthread_mutex_t mu;
    struct idp_token tok;
    int err;                 /* last failure, 0 if none */
    char errmsg[ERRMSG_MAX];
    int64_t retry_at_ms;     /* wall ms before which the failure is replayed */
    unsigned failures;
};

struct tokcache {
    pthread_mutex_t mu;      /* the map */
    pthread_mutex_t http_mu; /* the one HTTP connection */
    struct strmap entries;
    struct http_client *http;
    double serve_ratio;
    struct tokcache_stats stats;
};

static void entry_free(void *p)
{
    struct entry *e = p;

    idp_token_release(&e->tok);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

int tokcache_new(struct tokcache **out, const struct http_opts *http_opts, double serve_ratio)
{
    struct tokcache *c = xcalloc(1, sizeof(*c));
    int rc;

    if ((rc = http_client_new(&c->http, http_opts)) < 0) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->http_mu, NULL);
    c->serve_ratio = serve_ratio > 0 && serve_ratio < 1 ? serve_ratio : 0.25;
    *out = c;
    return 0;
}

void tokcache_free(struct tokcache *c)
{
    if (!c)
        return;
    strmap_clear(&c->entries, entry_free);
    http_client_free(c->http);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->http_mu);
    free(c);
}

struct tokcache_stats *tokcache_stats(struct tokcache *c)
{
    return &c->stats;
}

static struct entry *entry_for(struct tokcache *c, const struct idp *p, const char *scope)
{
    struct buf key = BUF_INIT(2048);
    struct entry *e;

    buf_addf(&key, "%s|%s", p->id, scope);
    pthread_mutex_lock(&c->mu);
    e = strmap_get(&c->entries, key.ptr);
    if (!e) {
        e = xcalloc(1, sizeof(*e));
        pthread_mutex_init(&e->mu, NULL);
        strmap_put(&c->entries, key.ptr, e);
    }
    pthread_mutex_unlock(&c->mu);
    buf_release(&key);
    return e;
}

static bool fresh(const struct idp_token *t, int64_t now, double ratio)
{
    int64_t life = t->expires_at - t->issued_at;

    if (!t->token || life <= 0 || now >= t->expires_at)
        return false;
    return (double)(now - t->issued_at) < (double)life * ratio;
}

static void copy_out(struct idp_token *out, const struct idp_token *t)
{
    out->token = sbuf_dup(t->token);
    out->issued_at = t->issued_at;
    out->expires_at = t->expires_at;
}

/* refresh: mint even when the cached token is fresh. */
static int get(struct idp_token *out, struct tokcache *c, struct idp *p, const char *scope,
               double max_age_ratio, bool refresh)
{
    double ratio = max_age_ratio > 0 && max_age_ratio < c->serve_ratio ? max_age_ratio
                                                                        : c->serve_ratio;
    struct entry *e = entry_for(c, p, scope);
    struct idp_token t = { NULL, 0, 0 };
    int64_t start;
    int rc;

    pthread_mutex_lock(&e->mu);
    if (!refresh && fresh(&e->tok, clock_wall_s(), ratio)) {
        copy_out(out, &e->tok);
        atomic_fetch_add(&c->stats.hits, 1);
        rc = 0;
        goto out;
    }
    if (e->err && clock_wall_ms() < e->retry_at_ms) {
        rc = err_set(e->err, "%s", e->errmsg);
        err_set_retry_after_s((e->retry_at_ms - clock_wall_ms() + 999) / 1000);
        goto out;
    }
    start = clock_mono_ms();
    pthread_mutex_lock(&c->http_mu);
    rc = idp_mint(&t, p, c->http, scope);
    pthread_mutex_unlock(&c->http_mu);
    atomic_fetch_add(&c->stats.requests, 1);
    latency_hist_observe_ms(&c->stats.latency, clock_mono_ms() - start);
    if (rc < 0) {
        int64_t delay = backoff_ms(e->failures++, 1000, 60000, backoff_rand());
        if (rc == ERR_UNAVAILABLE && err_retry_after_s() * 1000 > delay)
            delay = err_retry_after_s() * 1000;
        e->err = rc;
        snprintf(e->errmsg, sizeof(e->errmsg), "%s", err_msg());
        e->retry_at_ms = clock_wall_ms() + delay;
        atomic_fetch_add(&c->stats.failures, 1);
        log_warn("token_request_failed", LOG_STR("identity", p->id), LOG_ERR(rc),
                 LOG_I64("retry_in_ms", delay));
        err_set_retry_after_s((delay + 999) / 1000); /* when this identity is tried again */
        goto out;
    }
    idp_token_release(&e->tok);
    e->tok = t;
    e->err = 0;
    e->failures = 0;
    log_info("token_minted", LOG_STR("identity", p->id), LOG_I64("expires_at", t.expires_at),
             LOG_I64("lifetime_s", t.expires_at - t.issued_at));
    copy_out(out, &e->tok);
out:
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int tokcache_get(struct idp_token *out, struct tokcache *c, struct idp *p, const char *scope,
                 double max_age_ratio)
{
    return get(out, c, p, scope, max_age_ratio, false);
}

int tokcache_refresh(struct idp_token *out, struct tokcache *c, struct idp *p,
                     const char *scope)
{
    return get(out, c, p, scope, 0, true);
}
