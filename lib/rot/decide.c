#include "rot/decide.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/banned.h"

int64_t decide_status_expiry_ms(const struct decide_facts *f)
{
    const char *v = f->status.status_expires_at;
    int64_t t;

    return v && clock_parse_rfc3339(&t, v) == 0 ? t * 1000 : 0;
}

static void set_msg(struct decide_plan *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_msg(struct decide_plan *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(p->msg, sizeof(p->msg), fmt, ap); /* cut to fit */
    va_end(ap);
}

/* A failed step: retry with the key's backoff, which never waits past a quarter of
 * what the live value has left (policy_retry_ms), and never sooner than the peer
 * asked (retry_after_ms). A failure of the shared identity (shared) is retried when
 * the token cache asks the identity provider again, not on the Secret's own backoff,
 * which would grow with every replay of one outage. The message is in p->msg. */
static void fail(struct decide_plan *p, const struct decide_facts *f, const struct policy_cfg *cfg,
                 const char *reason, int rc, int64_t expires_at_ms, bool shared,
                 int64_t retry_after_ms)
{
    int64_t delay = policy_retry_ms(f->failures, f->now_ms, expires_at_ms, cfg, f->jitter01);

    if (shared)
        delay = (retry_after_ms > 0 ? retry_after_ms : 1000) + (int64_t)(f->jitter01 * 250);
    else if (retry_after_ms > delay)
        delay = retry_after_ms;
    p->next = DECIDE_DONE;
    p->end = DECIDE_FAILED;
    p->reason = reason;
    p->rc = rc < 0 ? rc : ERR_INVALID;
    p->backoff = true;
    /* The API server refused the write with Retry-After (429, or 503 while it
     * restarts): an Event and a status patch now would be more requests it asked
     * us not to send. The log says it; the retry reports if it fails again. */
    p->report = !(retry_after_ms > 0 && !strcmp(reason, "WriteFailed"));
    p->requeue_after_ms = delay;
}

static enum spec_login_check login_mode(const struct decide_facts *f)
{
    return f->spec->login_check != SPEC_LOGIN_UNSET ? f->spec->login_check : f->login_check;
}

/* Identity, token, login check: false when one of them ended the plan. */
static bool decide_token(struct decide_plan *p, const struct decide_facts *f,
                         const struct policy_cfg *cfg)
{
    const struct spec *sp = f->spec;
    int64_t expiry = decide_status_expiry_ms(f);

    if (!sp->service_account && !(f->own_identity && f->allow_own_identity)) {
        set_msg(p, "this controller mints tokens only for a ServiceAccount the Secret names "
                   "with pgtoken.io/service-account%s",
                f->own_identity ? " (identity.allowControllerIdentity is false)"
                                : " (it has no identity of its own)");
        fail(p, f, cfg, "InvalidConfig", ERR_INVALID, 0, false, 0);
        return false;
    }
    if (!f->identity.tried) {
        p->next = DECIDE_IDENTITY;
        p->service_account = sp->service_account;
        return false;
    }
    if (f->identity.rc == ERR_NOTFOUND || f->identity.rc == ERR_INVALID) {
        set_msg(p, "pgtoken.io/service-account: %s", f->identity.msg);
        fail(p, f, cfg, "InvalidConfig", f->identity.rc, 0, false, 0);
        return false;
    }
    if (f->identity.rc < 0) {
        set_msg(p, "reading ServiceAccount %s/%s failed: %s", f->ns, sp->service_account,
                f->identity.msg);
        fail(p, f, cfg, "TokenFailed", f->identity.rc, expiry, false,
             f->identity.retry_after_ms);
        return false;
    }
    if (!f->token.tried) {
        p->next = DECIDE_TOKEN;
        return false;
    }
    if (f->token.rc < 0) {
        set_msg(p, "token request for %s failed: %s", f->identity_id, f->token.msg);
        fail(p, f, cfg, "TokenFailed", f->token.rc, expiry, true, f->token.retry_after_ms);
        return false;
    }
    if (login_mode(f) == SPEC_LOGIN_OFF)
        return true;
    if (!f->check.tried) {
        p->next = DECIDE_CHECK;
        return false;
    }
    if (f->check.rc < 0) {
        set_msg(p, "%s", f->check.msg);
        fail(p, f, cfg, "LoginFailed", f->check.rc, expiry, false, 0);
        return false;
    }
    if (f->login == PG_LOGIN_OK)
        return true;
    if (login_mode(f) == SPEC_LOGIN_BEST_EFFORT && f->login != PG_LOGIN_REJECTED) {
        p->login_inconclusive = true;
        return true;
    }
    set_msg(p, "new token did not log in as %s to %s:%u/%s (%s): %s; the current value was kept",
            sp->user, sp->host, sp->port, sp->database, pg_login_name(f->login),
            f->login_message ? f->login_message : "");
    fail(p, f, cfg, "LoginFailed", ERR_REJECTED, expiry, false, 0);
    return false;
}

/* Render, compare, write. */
static void decide_write(struct decide_plan *p, const struct decide_facts *f,
                         const struct policy_cfg *cfg)
{
    const struct spec *sp = f->spec;
    int64_t due;

    policy_status(&p->status, f->token_issued_at_s, f->token_expires_at_s, f->spec_hash,
                  f->status.seed, cfg);
    p->force_rotate = p->fresh ? sp->force_rotate : NULL;
    if (!f->render.tried) {
        p->next = DECIDE_RENDER;
        return;
    }
    if (f->render.rc < 0) {
        set_msg(p, "%s", f->render.msg);
        fail(p, f, cfg, "InvalidConfig", f->render.rc, 0, false, 0);
        return;
    }
    due = policy_due_at_ms(f->token_issued_at_s * 1000, f->token_expires_at_s * 1000,
                           f->status.seed, cfg) - f->now_ms;
    if (due < POLICY_MIN_DELAY_MS)
        due = POLICY_MIN_DELAY_MS; /* never a busy loop */
    if (!p->fresh && f->unchanged) {
        p->end = DECIDE_NOOP;
        p->reset_backoff = true;
        p->requeue_after_ms = due;
        return;
    }
    if (!f->write.tried) {
        p->next = DECIDE_WRITE;
        return;
    }
    if (f->write.rc == ERR_CONFLICT) {
        /* Their version is on its way through the watch, and their event wakes the
         * Secret up; the short delay covers a watch that is slow to deliver it. */
        p->end = DECIDE_CONFLICT;
        p->rc = ERR_CONFLICT;
        p->requeue_after_ms = DECIDE_CONFLICT_MS;
        return;
    }
    if (f->write.rc == ERR_NOTFOUND) {
        p->end = DECIDE_GONE; /* deleted meanwhile: the watch tells us */
        return;
    }
    if (f->write.rc < 0) {
        set_msg(p, "writing the Secret failed: %s", f->write.msg);
        fail(p, f, cfg, "WriteFailed", f->write.rc, decide_status_expiry_ms(f), false,
             f->write.retry_after_ms);
        return;
    }
    /* No expiry in the message (it is in the status annotations): the same message
     * next time lets the recorder bump one Event instead of creating another. */
    set_msg(p, "wrote a new token for role %s on %s:%u/%s (%s)", sp->user, sp->host, sp->port,
            sp->database, p->why);
    p->end = DECIDE_ROTATED;
    p->reset_backoff = true;
    p->restart = sp->n_restarts > 0;
    p->requeue_after_ms = due;
}

void decide_next(struct decide_plan *out, const struct decide_facts *f)
{
    const struct policy_cfg defaults = POLICY_CFG_INIT;
    struct decide_plan p = { .next = DECIDE_DONE, .end = DECIDE_FRESH, .why = "" };
    struct policy_cfg cfg = f->policy ? *f->policy : defaults;
    struct plan pol;

    if (!f->found) {
        p.end = DECIDE_GONE;
        goto out;
    }
    if (f->deleting) {
        p.end = DECIDE_DELETING;
        goto out;
    }
    if (f->spec_rc < 0) {
        p.end = DECIDE_INVALID;
        p.reason = "InvalidConfig";
        set_msg(&p, "%s; nothing was written", f->spec_err ? f->spec_err : "invalid");
        p.report = true;
        p.reset_backoff = true; /* only the user's change can help: no retry */
        goto out;
    }
    p.spec = f->spec;
    if (f->spec->refresh_ratio > 0)
        cfg.refresh_ratio = f->spec->refresh_ratio;
    policy_decide(&pol, &f->status, f->now_ms, &cfg);
    p.why = pol.reason;
    if (pol.action == PLAN_NONE) {
        /* The values match the spec and are fresh: an error recorded for another
         * spec (since changed back) no longer applies. */
        p.requeue_after_ms = pol.next_in_ms;
        p.clear_error = p.reset_backoff = f->last_error != NULL;
        goto out;
    }
    p.fresh = pol.force;
    p.max_age_ratio = cfg.refresh_ratio / 2;
    /* Our own status write (or any change that leaves the spec as it was) wakes the
     * Secret up, but must not cut its backoff short; a changed spec goes at once. */
    if (f->backoff_wait_ms > 0 && f->backoff_tag && !strcmp(f->backoff_tag, f->spec_hash)) {
        p.end = DECIDE_BACKING_OFF;
        p.requeue_after_ms = f->backoff_wait_ms;
        goto out;
    }
    if (decide_token(&p, f, &cfg))
        decide_write(&p, f, &cfg);
out:
    *out = p;
}
