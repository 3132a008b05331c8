/* The token and addresses a login needs, kept fresh by one thread (proxy/keeper.h). */
#include "proxy/keeper.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/banned.h"

#define RETRY_BASE_MS 1000
#define RETRY_CAP_MS 30000

struct keeper {
    struct keeper_opts o;
    char *host;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool stop, kicked;
    /* under mu */
    struct idp_token tok;
    int64_t refresh_at;            /* epoch seconds */
    int64_t next_mint_ms;          /* monotonic: not before (after a failure) */
    unsigned mint_fails;
    char mint_error[256];
    struct keeper_addr addrs[KEEPER_ADDRS_MAX];
    int naddrs;
    int64_t next_resolve_ms;
    unsigned resolve_fails;
    char resolve_error[256];
    struct keeper_stats stats;
};

/* Mints once (mu not held); records the outcome under mu. */
static void mint(struct keeper *k)
{
    struct idp_token t = { 0 };
    int rc = k->o.mint(k->o.mint_ctx, &t);

    pthread_mutex_lock(&k->mu);
    if (rc == 0) {
        idp_token_release(&k->tok);
        k->tok = t;
        k->refresh_at = t.issued_at + (int64_t)((double)(t.expires_at - t.issued_at) *
                                                k->o.refresh_ratio);
        k->mint_fails = 0;
        k->next_mint_ms = 0;
        atomic_fetch_add(&k->stats.mints, 1);
        atomic_store(&k->stats.token_expires_at, (long long)t.expires_at);
    } else {
        snprintf(k->mint_error, sizeof(k->mint_error), "%s", err_msg());
        k->next_mint_ms = clock_mono_ms() +
                          backoff_ms(k->mint_fails++, RETRY_BASE_MS, RETRY_CAP_MS, backoff_rand());
        atomic_fetch_add(&k->stats.mint_failures, 1);
    }
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->mu);
    if (rc == 0)
        log_info("proxy_token_minted", LOG_I64("expires_at", t.expires_at),
                 LOG_I64("lifetime_s", t.expires_at - t.issued_at));
    else
        log_warn("proxy_token_failed", LOG_ERR(rc));
}

static void resolve(struct keeper *k)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    struct keeper_addr got[KEEPER_ADDRS_MAX];
    char port[8];
    int n = 0, rc;

    snprintf(port, sizeof(port), "%u", k->o.port);
    rc = getaddrinfo(k->host, port, &hints, &res);
    for (struct addrinfo *a = res; a && n < KEEPER_ADDRS_MAX; a = a->ai_next)
        if (a->ai_addrlen <= sizeof(got[n].sa)) {
            memcpy(&got[n].sa, a->ai_addr, a->ai_addrlen);
            got[n].len = a->ai_addrlen;
            n++;
        }
    if (res)
        freeaddrinfo(res);
    pthread_mutex_lock(&k->mu);
    atomic_fetch_add(&k->stats.resolves, 1);
    if (n > 0) {
        memcpy(k->addrs, got, sizeof(got[0]) * (size_t)n);
        k->naddrs = n;
        k->resolve_fails = 0;
        k->next_resolve_ms = clock_mono_ms() + k->o.resolve_every_ms;
    } else {
        snprintf(k->resolve_error, sizeof(k->resolve_error), "cannot resolve %s: %s", k->host,
                 rc ? gai_strerror(rc) : "no address");
        atomic_fetch_add(&k->stats.resolve_failures, 1);
        k->next_resolve_ms = clock_mono_ms() + backoff_ms(k->resolve_fails++, RETRY_BASE_MS,
                                                          RETRY_CAP_MS, backoff_rand());
    }
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->mu);
    if (n == 0)
        log_warn("proxy_resolve_failed", LOG_STR("host", k->host),
                 LOG_STR("detail", rc ? gai_strerror(rc) : "no address"));
}

static void *keeper_main(void *arg)
{
    struct keeper *k = arg;

    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        int64_t mono = clock_mono_ms(), wall = clock_wall_s(), wait_ms;
        bool want_mint = (!k->tok.token || wall >= k->refresh_at) && mono >= k->next_mint_ms;
        bool want_resolve = k->kicked || mono >= k->next_resolve_ms;
        struct timespec ts;

        if (want_mint || want_resolve) {
            k->kicked = false;
            pthread_mutex_unlock(&k->mu);
            if (want_mint)
                mint(k);
            if (want_resolve)
                resolve(k);
            pthread_mutex_lock(&k->mu);
            continue;
        }
        wait_ms = k->next_resolve_ms - mono;
        if (k->tok.token && (k->refresh_at - wall) * 1000 < wait_ms)
            wait_ms = (k->refresh_at - wall) * 1000;
        if (k->next_mint_ms && k->next_mint_ms - mono < wait_ms)
            wait_ms = k->next_mint_ms - mono;
        if (wait_ms < 10)
            wait_ms = 10;
        ts = clock_mono_in((long)wait_ms);
        pthread_cond_timedwait(&k->cond, &k->mu, &ts);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int keeper_start(struct keeper **out, const struct keeper_opts *o)
{
    struct keeper *k = xcalloc(1, sizeof(*k));
    pthread_condattr_t ca;
    int rc;

    k->o = *o;
    if (k->o.refresh_ratio <= 0 || k->o.refresh_ratio >= 1)
        k->o.refresh_ratio = 0.5;
    if (k->o.resolve_every_ms <= 0)
        k->o.resolve_every_ms = 30000;
    k->host = xstrdup(o->host);
    snprintf(k->mint_error, sizeof(k->mint_error), "no token yet");
    snprintf(k->resolve_error, sizeof(k->resolve_error), "%s is not resolved yet", k->host);
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cond, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = pthread_create(&k->th, NULL, keeper_main, k)) != 0) {
        pthread_cond_destroy(&k->cond);
        pthread_mutex_destroy(&k->mu);
        free(k->host);
        free(k);
        return err_set(ERR_IO, "cannot start the token thread: %s", strerror(rc));
    }
    *out = k;
    return 0;
}

void keeper_stop(struct keeper *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->th, NULL);
    idp_token_release(&k->tok);
    pthread_cond_destroy(&k->cond);
    pthread_mutex_destroy(&k->mu);
    free(k->host);
    free(k);
}

struct keeper_stats *keeper_stats(struct keeper *k)
{
    return &k->stats;
}

int keeper_token(struct keeper *k, struct sbuf **out)
{
    int64_t now = clock_wall_s(), margin;
    int rc = 0;

    pthread_mutex_lock(&k->mu);
    margin = k->tok.token ? (k->tok.expires_at - k->tok.issued_at) / 6 : 0;
    if (margin > 10)
        margin = 10;
    if (k->tok.token && now < k->tok.expires_at - margin)
        *out = sbuf_dup(k->tok.token);
    else
        rc = err_set(ERR_UNAVAILABLE, "%s%s",
                     k->tok.token ? "the token expired and no new one could be minted: " : "",
                     k->mint_error);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int keeper_addrs(struct keeper *k, struct keeper_addr *out, int max)
{
    int n;

    pthread_mutex_lock(&k->mu);
    n = k->naddrs < max ? k->naddrs : max;
    memcpy(out, k->addrs, sizeof(out[0]) * (size_t)n);
    if (!n)
        n = err_set(ERR_UNAVAILABLE, "%s", k->resolve_error);
    pthread_mutex_unlock(&k->mu);
    return n;
}

void keeper_kick(struct keeper *k)
{
    pthread_mutex_lock(&k->mu);
    k->kicked = true;
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->mu);
}

bool keeper_wait_ready(struct keeper *k, long ms)
{
    int64_t end = clock_mono_ms() + ms;
    bool ready;

    pthread_mutex_lock(&k->mu);
    while (!(ready = k->tok.token && k->naddrs > 0) && clock_mono_ms() < end) {
        struct timespec ts = clock_mono_in(50);
        pthread_cond_timedwait(&k->cond, &k->mu, &ts);
    }
    pthread_mutex_unlock(&k->mu);
    return ready;
}
