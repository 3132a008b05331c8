/* lib/proxy/keeper: with a fake mint, the keeper has a token and the server's addresses at
 * once, mints again once a token passes its refresh point, keeps serving the old token while
 * minting fails, and reports the failure once the old one is too old to use. Tokens here
 * live 2 to 3 s (the clock's unit is the second), so the test takes a few seconds. */
#include "t.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "proxy/keeper.h"

struct fake {
    pthread_mutex_t mu;
    int calls;
    bool fail;
    int lifetime_s;
};

static int fake_mint(void *ctx, struct idp_token *out)
{
    struct fake *f = ctx;
    char tok[32];
    int n;

    pthread_mutex_lock(&f->mu);
    n = ++f->calls;
    if (f->fail) {
        pthread_mutex_unlock(&f->mu);
        return err_set(ERR_UNAVAILABLE, "the identity endpoint answered 503");
    }
    snprintf(tok, sizeof(tok), "token-%d", n);
    out->token = sbuf_from(tok, strlen(tok));
    out->issued_at = clock_wall_s();
    out->expires_at = out->issued_at + f->lifetime_s;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int calls(struct fake *f)
{
    int n;

    pthread_mutex_lock(&f->mu);
    n = f->calls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* The token keeper_token gives now, as text ("" when none). */
static const char *current(struct keeper *k)
{
    static char s[64];
    struct sbuf *t = NULL;

    s[0] = '\0';
    if (keeper_token(k, &t) == 0) {
        snprintf(s, sizeof(s), "%s", sbuf_expose(t));
        sbuf_free(t);
    }
    return s;
}

static void test_ready_and_refresh(void)
{
    struct fake f = { PTHREAD_MUTEX_INITIALIZER, 0, false, 3 };
    struct keeper_opts o = { .host = "127.0.0.1", .port = 5432, .mint = fake_mint, .mint_ctx = &f };
    struct keeper_addr a[KEEPER_ADDRS_MAX];
    struct keeper *k = NULL;
    int64_t end;

    T_RC(keeper_start(&k, &o), 0);
    T_CHECK(keeper_wait_ready(k, 5000));
    T_EQ_STR(current(k), "token-1");
    T_EQ_INT(keeper_addrs(k, a, KEEPER_ADDRS_MAX), 1);
    T_EQ_INT(a[0].sa.ss_family, AF_INET);
    T_EQ_INT(ntohs(((struct sockaddr_in *)&a[0].sa)->sin_port), 5432);
    /* a 3 s token is refreshed half way (after 1 or 2 s on a clock of seconds) */
    end = clock_mono_ms() + 4000;
    while (calls(&f) < 2 && clock_mono_ms() < end)
        usleep(50 * 1000);
    T_EQ_INT(calls(&f), 2);
    T_EQ_STR(current(k), "token-2");
    T_EQ_INT(atomic_load(&keeper_stats(k)->mints), 2);
    keeper_stop(k);
}

static void test_failure_keeps_then_reports(void)
{
    struct fake f = { PTHREAD_MUTEX_INITIALIZER, 0, false, 3 };
    struct keeper_opts o = { .host = "127.0.0.1", .port = 5432, .mint = fake_mint, .mint_ctx = &f };
    struct keeper *k = NULL;
    struct sbuf *t = NULL;
    int64_t end;

    T_RC(keeper_start(&k, &o), 0);
    T_CHECK(keeper_wait_ready(k, 5000));
    pthread_mutex_lock(&f.mu);
    f.fail = true;
    pthread_mutex_unlock(&f.mu);
    /* the first token stays in use while minting fails, until it is too old */
    T_EQ_STR(current(k), "token-1");
    end = clock_mono_ms() + 5000;
    while (current(k)[0] && clock_mono_ms() < end)
        usleep(50 * 1000);
    T_RC(keeper_token(k, &t), ERR_UNAVAILABLE);
    T_CHECK(strstr(err_msg(), "the token expired and no new one could be minted: the identity "
                              "endpoint answered 503"));
    T_CHECK(atomic_load(&keeper_stats(k)->mint_failures) >= 1);
    /* minting works again: a token soon (the retry backs off from 1 s) */
    pthread_mutex_lock(&f.mu);
    f.fail = false;
    pthread_mutex_unlock(&f.mu);
    end = clock_mono_ms() + 5000;
    while (!current(k)[0] && clock_mono_ms() < end)
        usleep(50 * 1000);
    T_CHECK(!strncmp(current(k), "token-", 6));
    keeper_stop(k);
}

static void test_never_minted(void)
{
    struct fake f = { PTHREAD_MUTEX_INITIALIZER, 0, true, 3 };
    struct keeper_opts o = { .host = "127.0.0.1", .port = 5432, .mint = fake_mint, .mint_ctx = &f };
    struct keeper *k = NULL;
    struct sbuf *t = NULL;

    T_RC(keeper_start(&k, &o), 0);
    T_CHECK(!keeper_wait_ready(k, 300));
    T_RC(keeper_token(k, &t), ERR_UNAVAILABLE);
    T_CHECK(strstr(err_msg(), "the identity endpoint answered 503") ||
            strstr(err_msg(), "no token yet"));
    keeper_stop(k);
}

int main(void)
{
    log_set_level(LOG_OFF);
    T_RUN(test_ready_and_refresh);
    T_RUN(test_failure_keeps_then_reports);
    T_RUN(test_never_minted);
    return t_done();
}
