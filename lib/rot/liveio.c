#include "rot/liveio.h"

#include "base/backoff.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "kube/kpath.h"
#include "base/banned.h"

/* The Retry-After of the call that just returned rc, read before anything else
 * can set an error: from here on it travels in the call's result. */
static int64_t retry_after_of(int rc)
{
    return rc == ERR_UNAVAILABLE ? err_retry_after_s() * 1000 : 0;
}

static int64_t now_ms(void *ctx)
{
    (void)ctx;
    return clock_wall_ms();
}

static double jitter(void *ctx)
{
    (void)ctx;
    return backoff_rand();
}

static int get(struct kube_secret **out, void *ctx, const char *key)
{
    struct liveio *l = ctx;

    return store_get(out, l->d->store, key);
}

static int identity(struct idp **out, int64_t *retry_after_ms, void *ctx, const char *ns,
                    const char *sa)
{
    struct liveio *l = ctx;
    int rc;

    *retry_after_ms = 0;
    if (!sa) {
        *out = l->d->idp;
        return 0;
    }
    rc = sareg_get(out, l->d->sas, l->k, ns, sa);
    *retry_after_ms = retry_after_of(rc);
    return rc;
}

static int mint(struct idp_token *out, int64_t *retry_after_ms, void *ctx, struct idp *who,
                bool fresh, double max_age_ratio)
{
    struct liveio *l = ctx;
    int rc = fresh ? tokcache_refresh(out, l->d->tokens, who, l->d->scope)
                   : tokcache_get(out, l->d->tokens, who, l->d->scope, max_age_ratio);

    /* After any failure the cache says when it asks this identity again. */
    *retry_after_ms = rc < 0 ? err_retry_after_s() * 1000 : 0;
    return rc;
}

static int check(struct pg_check_result *out, void *ctx, const struct pg_target *t,
                 const struct idp_token *tok, bool fresh)
{
    struct liveio *l = ctx;
    int64_t start = clock_mono_ms();
    int rc;

    /* A forced rotation proves its token with a login of its own. */
    rc = (fresh ? pg_check_fresh : pg_check_cached)(out, l->d->pg, t, tok->token, tok->expires_at,
                                                    &l->d->pg_opts);
    if (rc == 0 && !out->cached) {
        atomic_fetch_add(&l->d->stats->login[out->login], 1);
        latency_hist_observe_ms(&l->d->stats->login_latency, clock_mono_ms() - start);
    }
    return rc;
}

static int patch(int64_t *retry_after_ms, void *ctx, const struct kube_secret *s,
                 const struct sbuf *body)
{
    struct liveio *l = ctx;
    struct buf path = BUF_INIT(2048);
    int rc;

    *retry_after_ms = 0;
    if ((rc = kpath_add(&path, KPATH_CORE_V1, s->ns, "secrets", s->name, NULL)) == 0) {
        char rv[KUBE_RV_MAX], key[KPATH_KEY_SIZE];
        rc = kube_call_rv(rv, l->k, "PATCH", path.ptr, "application/merge-patch+json",
                          sbuf_expose(body), sbuf_len(body));
        *retry_after_ms = retry_after_of(rc);
        /* This reconcile made the new version: its watch event needs no other. */
        if (rc == 0 && kpath_key_join(key, s->ns, s->name) == 0)
            store_expect(l->d->store, key, rv);
    }
    buf_release(&path);
    return rc;
}

/* The pod-template annotation patch `kubectl rollout restart` sends. */
static int restart(void *ctx, const struct kube_secret *s, const struct spec_restart *r,
                   const char *at)
{
    struct liveio *l = ctx;
    struct buf path = BUF_INIT(2048), body = BUF_INIT(512);
    int rc;

    buf_addf(&body, "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{"
                    "\"kubectl.kubernetes.io/restartedAt\":\"%s\"}}}}}", at);
    if ((rc = kpath_add(&path, KPATH_APPS_V1, s->ns,
                        r->kind == SPEC_RESTART_DEPLOYMENT ? "deployments" : "statefulsets",
                        r->name, NULL)) == 0)
        rc = kube_call(NULL, l->k, "PATCH", path.ptr, "application/strategic-merge-patch+json",
                       body.ptr, body.len);
    buf_release(&path);
    buf_release(&body);
    return rc;
}

static void event(void *ctx, const struct kube_secret *s, enum event_type type, const char *reason,
                  const char *msg)
{
    struct liveio *l = ctx;

    event_record(l->d->events, l->k, s, type, reason, msg);
}

void liveio_forget(const struct liveio_deps *d, const char *key)
{
    struct kpath_key k;

    if (kpath_key_split(&k, key) == 0)
        event_forget(d->events, k.ns, k.name);
}

static void forget(void *ctx, const char *key)
{
    struct liveio *l = ctx;

    liveio_forget(l->d, key);
}

void liveio_init(struct reconcile_io *out, struct liveio *l, const struct liveio_deps *d,
                 struct kube_conn *k)
{
    l->d = d;
    l->k = k;
    *out = (struct reconcile_io){ .ctx = l, .now_ms = now_ms, .jitter = jitter, .get = get,
                                  .identity = identity, .mint = mint, .check = check,
                                  .patch = patch, .restart = restart, .event = event,
                                  .forget = forget };
}
