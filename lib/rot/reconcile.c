#include "rot/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/banned.h"

#define PATCH_MAX RECONCILE_PATCH_MAX

/* One reconcile: the facts decide reads, and what the steps made. */
struct run {
    const struct reconcile_cfg *cfg;
    const struct reconcile_io *io;
    const char *key;
    struct kube_secret *s;  /* NULL: not in the cache */
    struct spec spec;
    char hash[17];
    char spec_err[DECIDE_MSG_MAX];
    char now[32];           /* f.now_ms in RFC 3339, for the times we write */
    struct decide_facts f;
    struct idp *who;
    struct idp_token tok;
    struct pg_check_result login;
    struct sbuf *body;      /* the rotation's patch */
};

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

/* A merge patch of the error status alone: no data, no precondition (it touches
 * only our own annotations, so nothing of anyone else's can be lost). text NULL
 * clears it. */
static void write_error_status(struct run *r, const char *text)
{
    struct sbuf *body = sbuf_new(PATCH_MAX);
    bool first = true;
    int64_t retry_after_ms = 0;
    int rc;

    /* A few hundred bytes into a 1 MiB buffer: the appends cannot fail. */
    (void)sbuf_addstr(body, "{\"metadata\":{\"annotations\":{");
    (void)sb_annotation(body, &first, STATUS_LAST_ERROR, text);
    (void)sb_annotation(body, &first, STATUS_LAST_ERROR_AT, text ? r->now : NULL);
    (void)sbuf_addstr(body, "}}}");
    if ((rc = r->io->patch(&retry_after_ms, r->io->ctx, r->s, body)) < 0)
        log_warn("status_not_written", LOG_STR("namespace", r->s->ns),
                 LOG_STR("secret", r->s->name), LOG_ERR(rc));
    else if (!text)
        log_info("error_cleared", LOG_STR("namespace", r->s->ns), LOG_STR("secret", r->s->name));
    sbuf_free(body);
}

/* The Warning Event and the error status, the latter only when the Secret does
 * not already say the same. */
static void report(struct run *r, const char *reason, const char *msg)
{
    char text[DECIDE_MSG_MAX + 32];

    r->io->event(r->io->ctx, r->s, EVENT_WARNING, reason, msg);
    snprintf(text, sizeof(text), "%s: %s", reason, msg);
    if (!r->f.last_error || strcmp(r->f.last_error, text))
        write_error_status(r, text);
}

static bool keys_present(const struct spec *spec, const struct kube_secret *s)
{
    for (size_t i = 0; i < spec->n_outputs; i++)
        if (!kube_secret_key_fp(s, spec->outputs[i].key))
            return false;
    return true;
}

/* Builds the one merge patch that writes the new values and their status,
 * with the resourceVersion we read as a precondition. Every append is
 * checked: a patch cut short by the size cap must never be sent. */
static int build_patch(struct sbuf **out, const struct kube_secret *s, const struct spec *spec,
                       struct sbuf *const *values, const struct policy_status *ps,
                       const char *identity, const char *force, const char *now)
{
    struct sbuf *b = sbuf_new(PATCH_MAX);
    bool first = true, bad = false;

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
        kube_secret_value_fp(fp, values[i]);
        if (!cur || strcmp(cur, fp))
            return false;
    }
    return true;
}

/* Roll the workloads that read the Secret into environment variables. A
 * failure is reported and not retried: the next rotation restarts them again,
 * and the values they have are still valid until then. */
static void restart_workloads(struct run *r)
{
    const struct kube_secret *s = r->s;
    char msg[DECIDE_MSG_MAX];

    for (size_t i = 0; i < r->spec.n_restarts; i++) {
        const struct spec_restart *w = &r->spec.restarts[i];
        const char *kind = spec_restart_kind_name(w->kind);
        int rc = r->io->restart(r->io->ctx, s, w, r->now);

        if (rc == 0) {
            atomic_fetch_add(&r->cfg->stats->restarts, 1);
            log_info("workload_restarted", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                     LOG_STR("kind", kind), LOG_STR("name", w->name));
            snprintf(msg, sizeof(msg), "restarted %s/%s after writing the Secret", kind, w->name);
            r->io->event(r->io->ctx, s, EVENT_NORMAL, "Restarted", msg);
        } else {
            snprintf(msg, sizeof(msg), "could not restart %s/%s after writing the Secret: %s%s",
                     kind, w->name, err_msg(),
                     rc == ERR_DENIED ? " (does the controller's RBAC allow patching it?)" : "");
            log_warn("restart_failed", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                     LOG_STR("detail", msg));
            r->io->event(r->io->ctx, s, EVENT_WARNING, "RestartFailed", msg);
        }
    }
}

/* Records a step's outcome. */
static void done(struct decide_step *st, int rc, int64_t retry_after_ms)
{
    st->tried = true;
    st->rc = rc;
    st->retry_after_ms = retry_after_ms;
    if (rc < 0)
        snprintf(st->msg, sizeof(st->msg), "%s", err_msg());
}

/* Renders the values and the patch; f.unchanged says whether the Secret
 * already holds them. */
static int render(struct run *r, const struct decide_plan *p)
{
    struct sbuf **values = xcalloc(r->spec.n_outputs, sizeof(struct sbuf *));
    int rc = 0;

    for (size_t i = 0; i < r->spec.n_outputs && rc == 0; i++)
        rc = spec_render(&values[i], &r->spec, i, r->tok.token);
    if (rc == 0) {
        r->f.unchanged = unchanged(r->s, &r->spec, values, &p->status);
        rc = build_patch(&r->body, r->s, &r->spec, values, &p->status, r->who->id,
                         p->force_rotate, r->now);
    }
    for (size_t i = 0; i < r->spec.n_outputs; i++)
        sbuf_free(values[i]);
    free(values);
    return rc;
}

/* Carries out one step the plan asks for. */
static void step(struct run *r, const struct decide_plan *p)
{
    const struct reconcile_io *io = r->io;
    struct decide_facts *f = &r->f;
    int64_t ra = 0;
    int rc;

    switch (p->next) {
    case DECIDE_IDENTITY:
        log_debug("rotating", LOG_STR("namespace", r->s->ns), LOG_STR("secret", r->s->name),
                  LOG_STR("why", p->why));
        rc = io->identity(&r->who, &ra, io->ctx, r->s->ns, p->service_account);
        if (rc == 0 && !r->who)
            rc = err_set(ERR_INVALID, "no identity to mint tokens with");
        done(&f->identity, rc, ra);
        f->identity_id = rc == 0 && r->who ? r->who->id : NULL;
        break;
    case DECIDE_TOKEN:
        rc = io->mint(&r->tok, &ra, io->ctx, r->who, p->fresh, p->max_age_ratio);
        done(&f->token, rc, ra);
        if (rc == 0) {
            f->token_issued_at_s = r->tok.issued_at;
            f->token_expires_at_s = r->tok.expires_at;
        }
        break;
    case DECIDE_CHECK: {
        struct pg_target t = { r->spec.host, (int)r->spec.port, r->spec.database, r->spec.user };
        rc = io->check(&r->login, io->ctx, &t, &r->tok, p->fresh);
        done(&f->check, rc, 0);
        f->login = r->login.login;
        f->login_message = r->login.message;
        break;
    }
    case DECIDE_RENDER:
        done(&f->render, render(r, p), 0);
        break;
    case DECIDE_WRITE:
        /* The reply (the whole Secret, values included) is not read: not parsed. The
         * cache is not touched either: only the watch writes it, in the server's
         * order. */
        rc = io->patch(&ra, io->ctx, r->s, r->body);
        done(&f->write, rc, ra);
        break;
    case DECIDE_DONE:
        break;
    }
}

/* Carries out the end of the plan: log, counters, Event, status, restarts. */
static void finish(struct run *r, const struct decide_plan *p)
{
    const struct reconcile_cfg *cfg = r->cfg;
    const struct kube_secret *s = r->s;

    if (p->login_inconclusive)
        log_warn("login_check_inconclusive_writing", LOG_STR("namespace", s->ns),
                 LOG_STR("secret", s->name), LOG_STR("class", pg_login_name(r->login.login)),
                 LOG_STR("detail", r->login.message));
    switch (p->end) {
    case DECIDE_GONE:
        if (!s)
            r->io->forget(r->io->ctx, r->key);
        break;
    case DECIDE_DELETING:
    case DECIDE_BACKING_OFF:
        break;
    case DECIDE_INVALID:
        atomic_fetch_add(&cfg->stats->invalid, 1);
        if (cfg->on_failure)
            cfg->on_failure(cfg->hook_ctx, p->reason);
        log_warn("invalid_config", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_STR("detail", p->msg));
        report(r, p->reason, p->msg);
        break;
    case DECIDE_FRESH:
        if (p->clear_error)
            write_error_status(r, NULL);
        break;
    case DECIDE_FAILED:
        atomic_fetch_add(&cfg->stats->rotation_failures, 1);
        if (cfg->on_failure)
            cfg->on_failure(cfg->hook_ctx, p->reason);
        log_warn("rotation_failed", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_STR("reason", p->reason), LOG_STR("detail", p->msg),
                 LOG_I64("attempt", (int64_t)r->f.failures + 1),
                 LOG_I64("retry_in_ms", p->requeue_after_ms));
        if (p->report)
            report(r, p->reason, p->msg);
        break;
    case DECIDE_NOOP:
        atomic_fetch_add(&cfg->stats->noop, 1);
        break;
    case DECIDE_CONFLICT:
        atomic_fetch_add(&cfg->stats->conflicts, 1);
        log_info("write_conflict_rereading", LOG_STR("namespace", s->ns),
                 LOG_STR("secret", s->name));
        break;
    case DECIDE_ROTATED:
        atomic_fetch_add(&cfg->stats->rotations, 1);
        r->io->event(r->io->ctx, s, EVENT_NORMAL, "Rotated", p->msg);
        if (p->restart)
            restart_workloads(r);
        log_info("rotated", LOG_STR("namespace", s->ns), LOG_STR("secret", s->name),
                 LOG_STR("why", p->why), LOG_STR("identity", r->who->id),
                 LOG_STR("expires_at", p->status.expires_at),
                 LOG_STR("rotate_at", p->status.rotate_at));
        break;
    }
}

/* Reads the Secret and its spec into the facts. */
static void read_secret(struct run *r)
{
    struct decide_facts *f = &r->f;
    const struct kube_secret *s;

    if (r->io->get(&r->s, r->io->ctx, r->key) < 0)
        return;
    s = r->s;
    f->found = true;
    f->deleting = s->deleting;
    f->ns = s->ns;
    f->name = s->name;
    f->last_error = kube_secret_annotation(s, STATUS_LAST_ERROR);
    if (s->deleting)
        return;
    if ((f->spec_rc = spec_parse_secret(&r->spec, s)) < 0) {
        snprintf(r->spec_err, sizeof(r->spec_err), "%s", err_msg());
        f->spec_err = r->spec_err;
        return;
    }
    spec_hash(r->hash, &r->spec);
    f->spec = &r->spec;
    f->spec_hash = r->hash;
    f->status = (struct policy_input){
        .spec_hash = r->hash,
        .status_spec_hash = kube_secret_annotation(s, STATUS_SPEC_HASH),
        .status_issued_at = kube_secret_annotation(s, STATUS_ISSUED_AT),
        .status_expires_at = kube_secret_annotation(s, STATUS_EXPIRES_AT),
        .keys_present = keys_present(&r->spec, s),
        .seed = policy_seed(s->ns, s->name),
        .force_rotate = r->spec.force_rotate,
        .status_force_rotate = kube_secret_annotation(s, STATUS_FORCE_ROTATE),
    };
}

int reconcile_secret(struct reconcile_result *out, const struct reconcile_cfg *cfg,
                     const struct reconcile_io *io, const char *key,
                     const struct reconcile_backoff *b)
{
    struct run r = { .cfg = cfg, .io = io, .key = key, .spec = SPEC_INIT };
    struct decide_facts *f = &r.f;
    struct decide_plan p;

    f->now_ms = io->now_ms(io->ctx);
    f->jitter01 = io->jitter(io->ctx);
    f->policy = &cfg->policy;
    f->login_check = cfg->login_check;
    f->own_identity = cfg->own_identity;
    f->allow_own_identity = cfg->allow_own_identity;
    if (b) {
        f->failures = b->failures;
        f->backoff_wait_ms = b->wait_ms;
        f->backoff_tag = b->tag;
    }
    clock_rfc3339(r.now, f->now_ms / 1000);
    read_secret(&r);
    /* Each step is tried once: decide_next reaches DECIDE_DONE within six. */
    for (decide_next(&p, f); p.next != DECIDE_DONE; decide_next(&p, f))
        step(&r, &p);
    finish(&r, &p);
    *out = (struct reconcile_result){
        .end = p.end,
        .requeue_after_ms = p.requeue_after_ms > 0 ? p.requeue_after_ms : 0,
        .backoff = p.backoff,
        .reset_backoff = p.reset_backoff,
    };
    snprintf(out->spec_hash, sizeof(out->spec_hash), "%s", r.hash);
    sbuf_free(r.body);
    idp_token_release(&r.tok);
    spec_release(&r.spec);
    kube_secret_free(r.s);
    return p.rc;
}
