#include "rot/reconcile.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/backoff.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strmap.h"
#include "base/banned.h"

#define PATCH_MAX (1u << 20)
#define STATUS_MSG_MAX 512

struct failure {
    unsigned attempts;
    int64_t not_before_ms; /* wall ms: no new attempt before this */
    char spec_hash[17];    /* the spec that failed; a changed spec retries at once */
};

struct rot_failures {
    pthread_mutex_t mu;
    struct strmap entries; /* key -> struct failure */
};

/* A ServiceAccount's identity annotations are read again after this long:
 * a changed client id takes effect within it, and a thousand Secrets naming
 * one ServiceAccount cost one GET per period, not one per rotation. */
#define SA_CACHE_MS 60000
#define SA_CACHE_MAX 1024 /* ServiceAccounts remembered; past it, start over */

struct sa_entry {
    int64_t fetched_ms; /* monotonic */
    char *client_id;
    char *tenant_id;    /* NULL: the annotation is absent */
};

struct idp_registry {
    pthread_mutex_t mu;
    struct strmap idps; /* "sa:ns/name:client:tenant" -> struct idp */
    struct strmap sa;   /* "ns/name" -> struct sa_entry: successful look-ups only */
};

static void sa_entry_free(void *p)
{
    struct sa_entry *e = p;

    free(e->client_id);
    free(e->tenant_id);
    free(e);
}

static void idp_free_v(void *p)
{
    idp_free(p);
}

struct idp_registry *idp_registry_new(void)
{
    struct idp_registry *r = xcalloc(1, sizeof(*r));

    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void idp_registry_free(struct idp_registry *r)
{
    if (!r)
        return;
    strmap_clear(&r->idps, idp_free_v);
    strmap_clear(&r->sa, sa_entry_free);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* The identity for ServiceAccount ns/name with this client and tenant. */
static int registry_get(struct idp **out, const struct reconcile_ctx *ctx, const char *ns,
                        const char *name, const char *client_id, const char *tenant_id)
{
    struct buf key = BUF_INIT(2048);
    struct idp *p;
    int rc = 0;

    buf_addf(&key, "%s/%s|%s|%s", ns, name, client_id, tenant_id ? tenant_id : "");
    pthread_mutex_lock(&ctx->idps->mu);
    p = strmap_get(&ctx->idps->idps, key.ptr);
    if (!p) {
        struct idp_sa_opts o = { .kube = ctx->kube, .ns = ns, .name = name,
                                 .client_id = client_id, .tenant_id = tenant_id,
                                 .authority_host = ctx->authority_host,
                                 .allow_http_authority = ctx->allow_http_authority };
        if ((rc = idp_sa_new(&p, &o)) == 0)
            strmap_put(&ctx->idps->idps, key.ptr, p);
    }
    pthread_mutex_unlock(&ctx->idps->mu);
    buf_release(&key);
    if (rc == 0)
        *out = p;
    return rc;
}

/* idp_sa_lookup through a short cache (SA_CACHE_MS). Errors are not cached:
 * a ServiceAccount created after an InvalidConfig is seen at the next retry. */
static int sa_lookup(char **client_id, char **tenant_id, struct idp_registry *r,
                     struct kube_conn *k, const char *ns, const char *name)
{
    struct buf key = BUF_INIT(1024);
    struct sa_entry *e;
    int64_t now = clock_mono_ms();
    int rc = 1;

    buf_addf(&key, "%s/%s", ns, name);
    pthread_mutex_lock(&r->mu);
    e = strmap_get(&r->sa, key.ptr);
    if (e && now - e->fetched_ms < SA_CACHE_MS) {
        *client_id = xstrdup(e->client_id);
        *tenant_id = e->tenant_id ? xstrdup(e->tenant_id) : NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&r->mu);
    if (rc == 0 || (rc = idp_sa_lookup(client_id, tenant_id, k, ns, name)) < 0)
        goto out;
    e = xcalloc(1, sizeof(*e));
    e->fetched_ms = now;
    e->client_id = xstrdup(*client_id);
    e->tenant_id = *tenant_id ? xstrdup(*tenant_id) : NULL;
    pthread_mutex_lock(&r->mu);
    if (r->sa.len >= SA_CACHE_MAX && !strmap_has(&r->sa, key.ptr))
        strmap_clear(&r->sa, sa_entry_free);
    e = strmap_put(&r->sa, key.ptr, e); /* the previous entry, if any */
    pthread_mutex_unlock(&r->mu);
    if (e)
        sa_entry_free(e);
out:
    buf_release(&key);
    return rc;
}

struct rot_failures *rot_failures_new(void)
{
    struct rot_failures *f = xcalloc(1, sizeof(*f));

    pthread_mutex_init(&f->mu, NULL);
    return f;
}

void rot_failures_free(struct rot_failures *f)
{
    if (!f)
        return;
    strmap_clear(&f->entries, free);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Returns the number of failures before this one and counts this one. */
static unsigned failure_inc(struct rot_failures *f, const char *key)
{
    struct failure *e;
    unsigned prev;

    pthread_mutex_lock(&f->mu);
    e = strmap_get(&f->entries, key);
    if (!e) {
        e = xcalloc(1, sizeof(*e));
        strmap_put(&f->entries, key, e);
    }
    prev = e->attempts++;
    pthread_mutex_unlock(&f->mu);
    return prev;
}

/* Records when the next attempt may start and for which spec. */
static void failure_hold(struct rot_failures *f, const char *key, int64_t not_before_ms,
                         const char *hash)
{
    struct failure *e;

    pthread_mutex_lock(&f->mu);
    e = strmap_get(&f->entries, key);
    if (e) {
        e->not_before_ms = not_before_ms;
        snprintf(e->spec_hash, sizeof(e->spec_hash), "%s", hash);
    }
    pthread_mutex_unlock(&f->mu);
}

/* How long a retry must still wait: our own status write (or any other
 * change that leaves the spec as it was) wakes the Secret up, but must not
 * cut its backoff short. 0 when it may go now. */
static int64_t failure_wait_ms(struct rot_failures *f, const char *key, const char *hash)
{
    struct failure *e;
    int64_t wait = 0;

    pthread_mutex_lock(&f->mu);
    e = strmap_get(&f->entries, key);
    if (e && !strcmp(e->spec_hash, hash))
        wait = e->not_before_ms - clock_wall_ms();
    pthread_mutex_unlock(&f->mu);
    return wait > 0 ? wait : 0;
}

static void failure_reset(struct rot_failures *f, const char *key)
{
    pthread_mutex_lock(&f->mu);
    free(strmap_del(&f->entries, key));
    pthread_mutex_unlock(&f->mu);
}

void reconcile_forget(const struct reconcile_ctx *ctx, const char *key)
{
    const char *slash = strchr(key, '/');
    char ns[256];

    failure_reset(ctx->failures, key);
    if (slash && (size_t)(slash - key) < sizeof(ns)) {
        memcpy(ns, key, (size_t)(slash - key));
        ns[slash - key] = '\0';
        event_forget(ctx->events, ns, slash + 1);
    }
}

static int secret_path(struct buf *b, const struct kube_secret *s)
{
    buf_init(b, 2048);
    buf_addstr(b, "/api/v1/namespaces/");
    kube_query_escape(b, s->ns);
    buf_addstr(b, "/secrets/");
    return kube_query_escape(b, s->name);
}

/* Sends a merge patch. The cache is not touched: only the watch writes it,
 * in the server's order. (Putting the PATCH reply in the cache could
 * overwrite a newer version the watch had already delivered, and the change
 * that version carried would then be missed.) */
static int patch_secret(struct kube_conn *k, const struct kube_secret *s, const struct sbuf *body)
{
    struct buf path;
    int rc;

    secret_path(&path, s);
    /* The reply (the whole Secret, values included) is not read: not parsed. */
    rc = kube_call(NULL, k, "PATCH", path.ptr, "application/merge-patch+json", sbuf_expose(body),
                   sbuf_len(body));
    buf_release(&path);
    return rc;
}

static int sb_quote(struct sbuf *sb, const char *s)
{
    struct buf b = BUF_INIT(64 * 1024);
    int rc;

    if ((rc = json_quote(&b, s)) == 0)
        rc = sbuf_add(sb, b.ptr, b.len);
    buf_release(&b);
    return rc;
}

static int sb_annotation(struct sbuf *sb, bool *first, const char *name, const char *value)
{
    int rc = 0;

    if (!*first)
        rc = sbuf_addstr(sb, ",");
    *first = false;
    if (rc == 0)
        rc = sb_quote(sb, name);
    if (rc == 0)
        rc = sbuf_addstr(sb, ":");
    if (rc == 0)
        rc = value ? sb_quote(sb, value) : sbuf_addstr(sb, "null");
    return rc;
}

/* Writes only the error status: no data, no precondition (the patch touches
 * only our own annotations, so nothing of anyone else's can be lost). Skipped
 * when the Secret already says the same. */
static void set_error_status(struct kube_conn *k, const struct kube_secret *s, const char *reason,
                             const char *msg)
{
    char text[STATUS_MSG_MAX], when[32];
    const char *cur = kube_secret_annotation(s, STATUS_LAST_ERROR);
    struct sbuf *body;
    bool first = true;
    int rc;

    snprintf(text, sizeof(text), "%s: %s", reason, msg);
    if (cur && !strcmp(cur, text))
        return;
    clock_rfc3339(when, clock_wall_s());
    body = sbuf_new(PATCH_MAX);
    /* A few hundred bytes into a 1 MiB buffer: the appends cannot fail. */
    (void)sbuf_addstr(body, "{\"metadata\":{\"annotations\":{");
    (void)sb_annotation(body, &first, STATUS_LAST_ERROR, text);
    (void)sb_annotation(body, &first, STATUS_LAST_ERROR_AT, when);
    (void)sbuf_addstr(body, "}}}");
    if ((rc = patch_secret(k, s, body)) < 0)
        log_warn("status_not_written", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_ERR(rc));
    sbuf_free(body);
}

static void clear_error_status(struct kube_conn *k, const struct kube_secret *s)
{
    struct sbuf *body = sbuf_new(4096);
    bool first = true;
    int rc;

    (void)sbuf_addstr(body, "{\"metadata\":{\"annotations\":{");
    (void)sb_annotation(body, &first, STATUS_LAST_ERROR, NULL);
    (void)sb_annotation(body, &first, STATUS_LAST_ERROR_AT, NULL);
    (void)sbuf_addstr(body, "}}}");
    if ((rc = patch_secret(k, s, body)) < 0)
        log_warn("status_not_written", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_ERR(rc));
    else
        log_info("error_cleared", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name));
    sbuf_free(body);
}

/* Reports a failed attempt: log, Event, status; returns the retry delay.
 * A failure of the shared identity (shared_retry) is retried when the token
 * cache will ask the identity provider again, not on this Secret's own
 * backoff, which would grow with every replay of the same outage. */
static int64_t fail(const struct reconcile_ctx *ctx, struct kube_conn *k, const struct kube_secret *s,
                    const char *key, const char *reason, const char *msg, int64_t expires_at_ms,
                    bool shared_retry)
{
    unsigned attempt = failure_inc(ctx->failures, key);
    int64_t now = clock_wall_ms(), retry_after_ms = err_retry_after_s() * 1000;
    int64_t delay = policy_retry_ms(attempt, now, expires_at_ms, &ctx->policy, backoff_rand());

    if (shared_retry)
        delay = (retry_after_ms > 0 ? retry_after_ms : 1000) + (int64_t)(backoff_rand() * 250);
    else if (retry_after_ms > delay)
        delay = retry_after_ms;
    atomic_fetch_add(&ctx->stats->rotation_failures, 1);
    if (ctx->on_failure)
        ctx->on_failure(ctx->hook_ctx, reason);
    log_warn("rotation_failed", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
             LOG_STR("reason", reason), LOG_STR("detail", msg), LOG_I64("attempt", attempt + 1),
             LOG_I64("retry_in_ms", delay));
    /* The API server refused the write with Retry-After (429, or 503 while it restarts):
     * an Event and a status patch now would be more requests it asked us not to send. The
     * log says it; the retry after the wait reports on the Secret if it fails again. */
    if (retry_after_ms > 0 && !strcmp(reason, "WriteFailed"))
        return delay;
    event_record(ctx->events, k, s, EVENT_WARNING, reason, msg);
    set_error_status(k, s, reason, msg);
    return delay;
}

static int64_t status_expiry_ms(const struct kube_secret *s)
{
    const char *v = kube_secret_annotation(s, STATUS_EXPIRES_AT);
    int64_t t;

    return v && clock_parse_rfc3339(&t, v) == 0 ? t * 1000 : 0;
}

static bool keys_present(const struct spec *spec, const struct kube_secret *s)
{
    for (size_t i = 0; i < spec->n_outputs; i++)
        if (!kube_secret_key_fp(s, spec->outputs[i].key))
            return false;
    return true;
}

/* The login check, as the Secret's mode asks. 0: go on and write; else the
 * failure has been reported and *retry_ms is set. */
static int check_login(const struct reconcile_ctx *ctx, struct kube_conn *k,
                       const struct kube_secret *s, const char *key, const struct spec *spec,
                       const struct idp_token *tok, bool fresh, int64_t *retry_ms)
{
    enum spec_login_check mode = spec->login_check != SPEC_LOGIN_UNSET ? spec->login_check
                                                                        : ctx->login_check;
    struct pg_target t = { spec->host, (int)spec->port, spec->database, spec->user };
    struct pg_check_result res;
    char msg[STATUS_MSG_MAX];
    int64_t start = clock_mono_ms();
    int rc;

    if (mode == SPEC_LOGIN_OFF)
        return 0;
    if (fresh) /* a forced rotation proves its token with a login of its own */
        rc = pg_check_fresh(&res, ctx->pg, &t, tok->token, tok->expires_at, &ctx->pg_opts);
    else
        rc = pg_check_cached(&res, ctx->pg, &t, tok->token, tok->expires_at, &ctx->pg_opts);
    if (rc < 0) {
        *retry_ms = fail(ctx, k, s, key, "LoginFailed", err_msg(), status_expiry_ms(s), false);
        return rc;
    }
    if (!res.cached) {
        atomic_fetch_add(&ctx->stats->login[res.login], 1);
        latency_hist_observe_ms(&ctx->stats->login_latency, clock_mono_ms() - start);
    }
    if (res.login == PG_LOGIN_OK)
        return 0;
    if (mode == SPEC_LOGIN_BEST_EFFORT && res.login != PG_LOGIN_REJECTED) {
        log_warn("login_check_inconclusive_writing", LOG_STR("namespace", s->ns),
                 LOG_STR("secret", s->name), LOG_STR("class", pg_login_name(res.login)),
                 LOG_STR("detail", res.message));
        return 0;
    }
    snprintf(msg, sizeof(msg), "new token did not log in as %s to %s:%u/%s (%s): %s; the "
             "current value was kept", spec->user, spec->host, spec->port, spec->database,
             pg_login_name(res.login), res.message);
    *retry_ms = fail(ctx, k, s, key, "LoginFailed", msg, status_expiry_ms(s), false);
    return ERR_REJECTED;
}

/* Builds the one merge patch that writes the new values and their status,
 * with the resourceVersion we read as a precondition. Every append is
 * checked: a patch cut short by the size cap must never be sent. */
static int build_patch(struct sbuf **out, const struct kube_secret *s, const struct spec *spec,
                       struct sbuf *const *values, const struct policy_status *ps,
                       const char *identity, const char *force)
{
    struct sbuf *b = sbuf_new(PATCH_MAX);
    char now[32];
    bool first = true, bad = false;

    clock_rfc3339(now, clock_wall_s());
    bad |= sbuf_addstr(b, "{\"metadata\":{\"resourceVersion\":") < 0;
    bad |= sb_quote(b, s->rv) < 0;
    bad |= sbuf_addstr(b, ",\"annotations\":{") < 0;
    bad |= sb_annotation(b, &first, STATUS_ISSUED_AT, ps->issued_at) < 0;
    bad |= sb_annotation(b, &first, STATUS_EXPIRES_AT, ps->expires_at) < 0;
    bad |= sb_annotation(b, &first, STATUS_ROTATE_AT, ps->rotate_at) < 0;
    bad |= sb_annotation(b, &first, STATUS_ROTATED_AT, now) < 0;
    bad |= sb_annotation(b, &first, STATUS_SPEC_HASH, ps->spec_hash) < 0;
    bad |= sb_annotation(b, &first, STATUS_IDENTITY, identity) < 0;
    if (force) /* recorded by the write that handles it: until then it stays pending */
        bad |= sb_annotation(b, &first, STATUS_FORCE_ROTATE, force) < 0;
    bad |= sb_annotation(b, &first, STATUS_LAST_ERROR, NULL) < 0;
    bad |= sb_annotation(b, &first, STATUS_LAST_ERROR_AT, NULL) < 0;
    bad |= sbuf_addstr(b, "}},\"data\":{") < 0;
    for (size_t i = 0; i < spec->n_outputs && !bad; i++) {
        if (i)
            bad |= sbuf_addstr(b, ",") < 0;
        bad |= sb_quote(b, spec->outputs[i].key) < 0;
        bad |= sbuf_addstr(b, ":\"") < 0;
        bad |= b64_encode_sb(b, sbuf_expose(values[i]), sbuf_len(values[i])) < 0;
        bad |= sbuf_addstr(b, "\"") < 0;
    }
    bad |= sbuf_addstr(b, "}}") < 0;
    if (bad) {
        sbuf_free(b);
        return err_set(ERR_TOOBIG, "the Secret's new values are over %u bytes", PATCH_MAX);
    }
    *out = b;
    return 0;
}

/* True when the Secret already holds exactly these values and status. */
static bool unchanged(const struct kube_secret *s, const struct spec *spec, struct sbuf *const *values,
                      const struct policy_status *ps)
{
    const char *exp = kube_secret_annotation(s, STATUS_EXPIRES_AT);
    const char *hash = kube_secret_annotation(s, STATUS_SPEC_HASH);
    char fp[17];

    if (!exp || strcmp(exp, ps->expires_at) || !hash || strcmp(hash, ps->spec_hash) ||
        kube_secret_annotation(s, STATUS_LAST_ERROR))
        return false;
    for (size_t i = 0; i < spec->n_outputs; i++) {
        const char *cur = kube_secret_key_fp(s, spec->outputs[i].key);
        sbuf_fingerprint(fp, values[i]);
        if (!cur || strcmp(cur, fp))
            return false;
    }
    return true;
}

/* After a write, roll the workloads that read the Secret into environment
 * variables: the same pod-template annotation patch `kubectl rollout restart`
 * sends. A failure is reported and not retried: the next rotation restarts
 * them again, and the values they have are still valid until then. */
static void restart_workloads(const struct reconcile_ctx *ctx, struct kube_conn *k,
                              const struct kube_secret *s, const struct spec *spec)
{
    char now[32], msg[STATUS_MSG_MAX];

    if (!spec->n_restarts)
        return;
    clock_rfc3339(now, clock_wall_s());
    for (size_t i = 0; i < spec->n_restarts; i++) {
        const struct spec_restart *r = &spec->restarts[i];
        const char *kind = r->kind == SPEC_RESTART_DEPLOYMENT ? "deployments" : "statefulsets";
        struct buf path = BUF_INIT(2048), body = BUF_INIT(512);
        int rc;

        buf_addstr(&path, "/apis/apps/v1/namespaces/");
        kube_query_escape(&path, s->ns);
        buf_addf(&path, "/%s/", kind);
        kube_query_escape(&path, r->name);
        buf_addf(&body, "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{"
                        "\"kubectl.kubernetes.io/restartedAt\":\"%s\"}}}}}", now);
        rc = kube_call(NULL, k, "PATCH", path.ptr, "application/strategic-merge-patch+json",
                       body.ptr, body.len);
        if (rc == 0) {
            atomic_fetch_add(&ctx->stats->restarts, 1);
            log_info("workload_restarted", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                     LOG_STR("kind", spec_restart_kind_name(r->kind)), LOG_STR("name", r->name));
            snprintf(msg, sizeof(msg), "restarted %s/%s after writing the Secret",
                     spec_restart_kind_name(r->kind), r->name);
            event_record(ctx->events, k, s, EVENT_NORMAL, "Restarted", msg);
        } else {
            snprintf(msg, sizeof(msg), "could not restart %s/%s after writing the Secret: %s%s",
                     spec_restart_kind_name(r->kind), r->name, err_msg(),
                     rc == ERR_DENIED ? " (does the controller's RBAC allow patching it?)" : "");
            log_warn("restart_failed", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                     LOG_STR("detail", msg));
            event_record(ctx->events, k, s, EVENT_WARNING, "RestartFailed", msg);
        }
        buf_release(&path);
        buf_release(&body);
    }
}

/* Which identity mints this Secret's token: the ServiceAccount it names (in
 * its own namespace: the spec allows a bare name only), or the controller's
 * own when that is allowed. A problem the user must fix is InvalidConfig. */
static int pick_identity(struct idp **out, struct reconcile_result *res,
                         const struct reconcile_ctx *ctx, struct kube_conn *k,
                         const struct kube_secret *s, const char *key, const struct spec *spec)
{
    char *cid = NULL, *tid = NULL, msg[STATUS_MSG_MAX];
    int rc;

    if (!spec->service_account) {
        if (ctx->idp && ctx->allow_controller_identity) {
            *out = ctx->idp;
            return 0;
        }
        snprintf(msg, sizeof(msg), "this controller mints tokens only for a ServiceAccount the "
                 "Secret names with pgtoken.io/service-account%s",
                 ctx->idp ? " (identity.allowControllerIdentity is false)"
                          : " (it has no identity of its own)");
        res->requeue_after_ms = fail(ctx, k, s, key, "InvalidConfig", msg, 0, false);
        return ERR_INVALID;
    }
    rc = sa_lookup(&cid, &tid, ctx->idps, k, s->ns, spec->service_account);
    if (rc == 0)
        rc = registry_get(out, ctx, s->ns, spec->service_account, cid,
                          tid ? tid : ctx->tenant_id);
    if (rc == ERR_NOTFOUND || rc == ERR_INVALID) {
        snprintf(msg, sizeof(msg), "pgtoken.io/service-account: %s", err_msg());
        res->requeue_after_ms = fail(ctx, k, s, key, "InvalidConfig", msg, 0, false);
    } else if (rc < 0) {
        snprintf(msg, sizeof(msg), "reading ServiceAccount %s/%s failed: %s", s->ns,
                 spec->service_account, err_msg());
        res->requeue_after_ms = fail(ctx, k, s, key, "TokenFailed", msg, status_expiry_ms(s), false);
    }
    free(cid);
    free(tid);
    return rc;
}

/* force: a force-rotate value not handled yet (spec->force_rotate): a token of
 * its own, proven by a login of its own, written with that value recorded. */
static int rotate(struct reconcile_result *out, const struct reconcile_ctx *ctx,
                  struct kube_conn *k, const struct kube_secret *s, const char *key,
                  const struct spec *spec, const char *hash, const char *why, bool force)
{
    struct idp_token tok = { NULL, 0, 0 };
    struct idp *who = NULL;
    struct sbuf **values = xcalloc(spec->n_outputs, sizeof(struct sbuf *)), *body = NULL;
    struct policy_status ps;
    uint64_t seed = policy_seed(s->ns, s->name);
    char msg[STATUS_MSG_MAX];
    int rc;

    if ((rc = pick_identity(&who, out, ctx, k, s, key, spec)) < 0 || !who)
        goto out;
    rc = force ? tokcache_refresh(&tok, ctx->tokens, who, ctx->scope)
               : tokcache_get(&tok, ctx->tokens, who, ctx->scope, ctx->policy.refresh_ratio / 2);
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "token request for %s failed: %s", who->id, err_msg());
        out->requeue_after_ms = fail(ctx, k, s, key, "TokenFailed", msg, status_expiry_ms(s), true);
        goto out;
    }
    if ((rc = check_login(ctx, k, s, key, spec, &tok, force, &out->requeue_after_ms)) < 0)
        goto out;
    for (size_t i = 0; i < spec->n_outputs; i++)
        if ((rc = spec_render(&values[i], spec, i, tok.token)) < 0) {
            out->requeue_after_ms = fail(ctx, k, s, key, "InvalidConfig", err_msg(), 0, false);
            goto out;
        }
    policy_status(&ps, tok.issued_at, tok.expires_at, hash, seed, &ctx->policy);
    if (!force && unchanged(s, spec, values, &ps)) {
        atomic_fetch_add(&ctx->stats->noop, 1);
        out->requeue_after_ms = policy_due_at_ms(tok.issued_at * 1000, tok.expires_at * 1000, seed,
                                                 &ctx->policy) - clock_wall_ms();
        if (out->requeue_after_ms < POLICY_MIN_DELAY_MS)
            out->requeue_after_ms = POLICY_MIN_DELAY_MS; /* never a busy loop */
        goto out;
    }
    if ((rc = build_patch(&body, s, spec, values, &ps, who->id,
                          force ? spec->force_rotate : NULL)) < 0) {
        out->requeue_after_ms = fail(ctx, k, s, key, "InvalidConfig", err_msg(), 0, false);
        goto out;
    }
    rc = patch_secret(k, s, body);
    if (rc == ERR_CONFLICT) {
        /* Someone else wrote first: their version is on its way through the
         * watch; decide again with it. Their event wakes the Secret up; the
         * short delay covers a watch that is slow to deliver it. */
        atomic_fetch_add(&ctx->stats->conflicts, 1);
        log_info("write_conflict_rereading", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name));
        out->requeue_after_ms = 250;
        goto out;
    }
    if (rc == ERR_NOTFOUND) {
        rc = 0; /* deleted meanwhile: the watch will tell us */
        goto out;
    }
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "writing the Secret failed: %s", err_msg());
        out->requeue_after_ms = fail(ctx, k, s, key, "WriteFailed", msg, status_expiry_ms(s), false);
        goto out;
    }
    failure_reset(ctx->failures, key);
    atomic_fetch_add(&ctx->stats->rotations, 1);
    /* No expiry in the message (it is in the status annotations): the same message
     * next time lets the recorder bump one Event instead of creating another. */
    snprintf(msg, sizeof(msg), "wrote a new token for role %s on %s:%u/%s (%s)", spec->user,
             spec->host, spec->port, spec->database, why);
    event_record(ctx->events, k, s, EVENT_NORMAL, "Rotated", msg);
    restart_workloads(ctx, k, s, spec);
    log_info("rotated", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
             LOG_STR("why", why), LOG_STR("identity", who->id),
             LOG_STR("expires_at", ps.expires_at), LOG_STR("rotate_at", ps.rotate_at));
    out->requeue_after_ms = policy_due_at_ms(tok.issued_at * 1000, tok.expires_at * 1000, seed,
                                             &ctx->policy) - clock_wall_ms();
out:
    for (size_t i = 0; i < spec->n_outputs; i++)
        sbuf_free(values[i]);
    free(values);
    sbuf_free(body);
    idp_token_release(&tok);
    return rc;
}

int reconcile_secret(struct reconcile_result *out, const struct reconcile_ctx *ctx,
                     struct kube_conn *k, const char *key)
{
    struct kube_secret *s = NULL;
    struct spec spec = SPEC_INIT;
    struct plan plan = PLAN_INIT;
    cJSON *ann;
    char hash[17];
    int rc;

    out->requeue_after_ms = 0;
    if ((rc = store_get(&s, ctx->store, key)) < 0) {
        reconcile_forget(ctx, key); /* gone: nothing to do */
        rc = 0;
        goto out;
    }
    if (s->deleting)
        goto out;
    ann = kube_secret_annotations_json(s); /* the cache keeps them packed */
    rc = spec_parse(&spec, ann);
    cJSON_Delete(ann);
    if (rc < 0) {
        char msg[STATUS_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s; nothing was written", err_msg());
        atomic_fetch_add(&ctx->stats->invalid, 1);
        if (ctx->on_failure)
            ctx->on_failure(ctx->hook_ctx, "InvalidConfig");
        failure_reset(ctx->failures, key);
        log_warn("invalid_config", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_STR("detail", msg));
        event_record(ctx->events, k, s, EVENT_WARNING, "InvalidConfig", msg);
        set_error_status(k, s, "InvalidConfig", msg);
        rc = 0; /* wait for the user to change the annotations */
        goto out;
    }
    spec_hash(hash, &spec);
    struct policy_input in = {
        .spec_hash = hash,
        .status_spec_hash = kube_secret_annotation(s, STATUS_SPEC_HASH),
        .status_issued_at = kube_secret_annotation(s, STATUS_ISSUED_AT),
        .status_expires_at = kube_secret_annotation(s, STATUS_EXPIRES_AT),
        .keys_present = keys_present(&spec, s),
        .seed = policy_seed(s->ns, s->name),
        .force_rotate = spec.force_rotate,
        .status_force_rotate = kube_secret_annotation(s, STATUS_FORCE_ROTATE),
    };
    struct policy_cfg cfg = ctx->policy;
    if (spec.refresh_ratio > 0)
        cfg.refresh_ratio = spec.refresh_ratio;
    policy_decide(&plan, &in, clock_wall_ms(), &cfg);
    if (plan.action == PLAN_NONE) {
        /* The values match the spec and are fresh: an error recorded for
         * another spec (since changed back) no longer applies. */
        if (kube_secret_annotation(s, STATUS_LAST_ERROR)) {
            failure_reset(ctx->failures, key);
            clear_error_status(k, s);
        }
        out->requeue_after_ms = plan.next_in_ms;
        goto out;
    }
    if ((out->requeue_after_ms = failure_wait_ms(ctx->failures, key, hash)) > 0)
        goto out; /* still backing off from the last failure */
    log_debug("rotating", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
              LOG_STR("why", plan.reason));
    struct reconcile_ctx c2 = *ctx;
    c2.policy = cfg;
    rc = rotate(out, &c2, k, s, key, &spec, hash, plan.reason, plan.force);
    if (rc < 0)
        failure_hold(ctx->failures, key, clock_wall_ms() + out->requeue_after_ms, hash);
out:
    if (out->requeue_after_ms < 0)
        out->requeue_after_ms = 0;
    spec_release(&spec);
    kube_secret_free(s);
    return rc;
}
