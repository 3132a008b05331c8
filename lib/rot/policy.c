#include "rot/policy.h"

#include <stdio.h>
#include <string.h>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/banned.h"

#define LIFE_MAX_MS (INT64_C(1) << 53)       /* exact in a double; 285,000 years */
#define RETRY_CAP_MAX_MS (INT64_C(24) * 3600 * 1000)
#define RFC3339_MAX_S INT64_C(253402300799)  /* 9999-12-31T23:59:59Z: four-digit years */

static struct policy_cfg sane(const struct policy_cfg *cfg)
{
    const struct policy_cfg d = POLICY_CFG_INIT;
    struct policy_cfg c = cfg ? *cfg : d;

    /* Written as !(in range) so that NaN takes the default too. */
    if (!(c.refresh_ratio > 0 && c.refresh_ratio < 1))
        c.refresh_ratio = d.refresh_ratio;
    if (!(c.jitter >= 0 && c.jitter < 1))
        c.jitter = d.jitter;
    if (c.min_remaining_ms < 0)
        c.min_remaining_ms = d.min_remaining_ms;
    if (c.retry_base_ms <= 0 || c.retry_base_ms > RETRY_CAP_MAX_MS)
        c.retry_base_ms = d.retry_base_ms;
    if (c.retry_cap_ms < c.retry_base_ms || c.retry_cap_ms > RETRY_CAP_MAX_MS)
        c.retry_cap_ms = c.retry_base_ms > d.retry_cap_ms ? c.retry_base_ms : d.retry_cap_ms;
    return c;
}

/* a - b, saturated to the int64_t range. */
static int64_t sat_sub(int64_t a, int64_t b)
{
    if (b < 0 && a > INT64_MAX + b)
        return INT64_MAX;
    if (b > 0 && a < INT64_MIN + b)
        return INT64_MIN;
    return a - b;
}

/* A uniform value in [0, 1) from a seed (splitmix64's finaliser spreads nearby seeds). */
static double seed_unit(uint64_t seed)
{
    uint64_t z = seed + UINT64_C(0x9e3779b97f4a7c15);

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0; /* 2^53 */
}

int64_t policy_due_at_ms(int64_t issued_at_ms, int64_t expires_at_ms, uint64_t seed,
                         const struct policy_cfg *cfg)
{
    struct policy_cfg c = sane(cfg);
    uint64_t span = (uint64_t)expires_at_ms - (uint64_t)issued_at_ms;
    int64_t life, ratio_ms, jitter_ms, min_rem, due, latest;

    if (expires_at_ms <= issued_at_ms)
        return issued_at_ms;
    life = span > (uint64_t)LIFE_MAX_MS ? LIFE_MAX_MS : (int64_t)span;
    ratio_ms = (int64_t)(c.refresh_ratio * (double)life + 0.5); /* nearest ms */
    jitter_ms = (int64_t)(seed_unit(seed) * c.jitter * (double)ratio_ms);
    min_rem = c.min_remaining_ms < life / 2 ? c.min_remaining_ms : life / 2;
    due = issued_at_ms + (ratio_ms - jitter_ms); /* <= expires_at_ms: cannot overflow */
    latest = expires_at_ms - min_rem;
    return due < latest ? due : latest;
}

/* Both times present, RFC 3339 UTC, issued before expiry. */
static bool read_times(int64_t *issued_ms, int64_t *expires_ms, const struct policy_input *in)
{
    int64_t iat, exp;

    if (!in->status_issued_at || !in->status_expires_at ||
        clock_parse_rfc3339(&iat, in->status_issued_at) < 0 ||
        clock_parse_rfc3339(&exp, in->status_expires_at) < 0 || iat >= exp)
        return false;
    *issued_ms = iat * 1000; /* four-digit years: no overflow */
    *expires_ms = exp * 1000;
    return true;
}

void policy_decide(struct plan *out, const struct policy_input *in, int64_t now_ms,
                   const struct policy_cfg *cfg)
{
    int64_t issued = 0, expires = 0, due = 0;
    bool force = in->force_rotate && *in->force_rotate &&
                 (!in->status_force_rotate || strcmp(in->force_rotate, in->status_force_rotate));
    struct plan p = { PLAN_ROTATE, 0, "", force };

    if (!in->status_spec_hash || !read_times(&issued, &expires, in))
        p.reason = "new";
    else if (force)
        p.reason = "forced";
    else if (!in->spec_hash || strcmp(in->spec_hash, in->status_spec_hash))
        p.reason = "spec-changed";
    else if (!in->keys_present)
        p.reason = "keys-missing";
    else if (now_ms >= expires)
        p.reason = "expired";
    else if (now_ms >= (due = policy_due_at_ms(issued, expires, in->seed, cfg)))
        p.reason = "due";
    else {
        p.action = PLAN_NONE;
        p.reason = "fresh";
        p.next_in_ms = sat_sub(due, now_ms);
        if (p.next_in_ms < POLICY_MIN_DELAY_MS)
            p.next_in_ms = POLICY_MIN_DELAY_MS;
    }
    *out = p;
}

int64_t policy_retry_ms(unsigned attempt, int64_t now_ms, int64_t expires_at_ms,
                        const struct policy_cfg *cfg, double jitter01)
{
    struct policy_cfg c = sane(cfg);
    int64_t delay, cap;

    if (!(jitter01 >= 0 && jitter01 < 1))
        jitter01 = 0; /* NaN too: backoff_ms would convert it to an integer */
    if (expires_at_ms <= now_ms) /* no live value to save: back off to minutes */
        return backoff_ms(attempt, c.retry_base_ms,
                          c.retry_cap_ms > POLICY_NO_VALUE_RETRY_CAP_MS ? c.retry_cap_ms
                                                                        : POLICY_NO_VALUE_RETRY_CAP_MS,
                          jitter01);
    delay = backoff_ms(attempt, c.retry_base_ms, c.retry_cap_ms, jitter01);
    cap = sat_sub(expires_at_ms, now_ms) / 4;
    if (cap < POLICY_MIN_DELAY_MS)
        cap = POLICY_MIN_DELAY_MS;
    return delay < cap ? delay : cap;
}

uint64_t policy_seed(const char *ns, const char *name)
{
    return fnv1a_str(fnv1a_str(fnv1a_str(FNV1A_INIT, ns), "/"), name);
}

static int64_t clamp_s(int64_t s)
{
    return s < 0 ? 0 : s > RFC3339_MAX_S ? RFC3339_MAX_S : s;
}

void policy_status(struct policy_status *out, int64_t issued_at_s, int64_t expires_at_s,
                   const char *spec_hash, uint64_t seed, const struct policy_cfg *cfg)
{
    int64_t iat = clamp_s(issued_at_s), exp = clamp_s(expires_at_s), due_ms;

    due_ms = policy_due_at_ms(iat * 1000, exp * 1000, seed, cfg);
    clock_rfc3339(out->issued_at, iat);
    clock_rfc3339(out->expires_at, exp);
    clock_rfc3339(out->rotate_at, due_ms / 1000); /* due_ms >= 0: division rounds down */
    snprintf(out->spec_hash, sizeof(out->spec_hash), "%s", spec_hash ? spec_hash : "");
}
