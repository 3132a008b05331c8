#include "t.h"

#include <math.h>
#include <stdio.h>

#include "base/clock.h"
#include "rot/policy.h"

#define HASH "0123456789abcdef"
#define T0 INT64_C(1700000000) /* iat of the tokens below, epoch seconds */
#define MIN_MS (60 * INT64_C(1000))
#define HOUR_MS (60 * MIN_MS)

static const struct policy_cfg no_jitter = { 0.5, 0, 5 * MIN_MS, 1000, 5 * MIN_MS };

/* The plan for a token issued at iat_s expiring at exp_s, status in order, at now_ms. */
static struct plan decide(int64_t iat_s, int64_t exp_s, int64_t now_ms, uint64_t seed,
                          const struct policy_cfg *cfg)
{
    char iat[32], exp[32];
    struct policy_input in = { HASH, HASH, iat, exp, true, seed, NULL, NULL };
    struct plan p = PLAN_INIT;

    clock_rfc3339(iat, iat_s);
    clock_rfc3339(exp, exp_s);
    policy_decide(&p, &in, now_ms, cfg);
    return p;
}

#define T_PLAN(p, want_action, want_reason, want_next)                                     \
    do {                                                                                   \
        struct plan t_p_ = (p);                                                            \
        T_EQ_INT(t_p_.action, (want_action));                                              \
        T_EQ_STR(t_p_.reason, (want_reason));                                              \
        T_EQ_INT(t_p_.next_in_ms, (want_next));                                            \
    } while (0)

static void test_new(void)
{
    struct policy_input in = { HASH, NULL, NULL, NULL, true, 1, NULL, NULL };
    struct plan p = PLAN_INIT;
    static const char *const bad_times[] = {
        "", "yesterday", "2024-01-01", "2024-01-01T00:00:00+01:00", "2024-13-01T00:00:00Z",
        "2024-01-01T00:00:00", "1969-12-31T23:59:59Z", "2024-01-01T00:00:00Zjunk",
    };

    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "new", 0);
    /* Times without a hash, a hash without times, one time only. */
    in.status_issued_at = "2023-11-14T22:13:20Z";
    in.status_expires_at = "2023-11-14T23:13:20Z";
    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "new", 0);
    in.status_spec_hash = HASH;
    in.status_issued_at = NULL;
    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "new", 0);
    in.status_issued_at = "2023-11-14T22:13:20Z";
    in.status_expires_at = NULL;
    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "new", 0);
    for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++) {
        in.status_expires_at = bad_times[i];
        policy_decide(&p, &in, T0 * 1000, NULL);
        if (p.action != PLAN_ROTATE || strcmp(p.reason, "new"))
            t_fail(__FILE__, __LINE__, "expires-at \"%s\" gave %s", bad_times[i], p.reason);
    }
    /* The same status, readable: fresh. */
    in.status_expires_at = "2023-11-14T23:13:20Z";
    policy_decide(&p, &in, T0 * 1000, &no_jitter);
    T_PLAN(p, PLAN_NONE, "fresh", 30 * MIN_MS);
    in.status_expires_at = "2023-11-14T23:13:20.123+00:00";
    policy_decide(&p, &in, T0 * 1000, &no_jitter);
    T_PLAN(p, PLAN_NONE, "fresh", 30 * MIN_MS);
    /* issued-at not before expires-at. */
    T_PLAN(decide(T0, T0, T0 * 1000, 1, NULL), PLAN_ROTATE, "new", 0);
    T_PLAN(decide(T0 + 10, T0, T0 * 1000, 1, NULL), PLAN_ROTATE, "new", 0);
}

static void test_reason_order(void)
{
    char iat[32], exp[32];
    struct policy_input in = { HASH, "fedcba9876543210", iat, exp, false, 1, NULL, NULL };
    struct plan p = PLAN_INIT;

    clock_rfc3339(iat, T0);
    clock_rfc3339(exp, T0 + 3600);
    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "spec-changed", 0);
    in.spec_hash = NULL;
    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "spec-changed", 0);
    in.spec_hash = HASH;
    in.status_spec_hash = HASH;
    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "keys-missing", 0);
    policy_decide(&p, &in, (T0 + 7200) * 1000, NULL); /* missing keys beat expired */
    T_PLAN(p, PLAN_ROTATE, "keys-missing", 0);
    in.keys_present = true;
    policy_decide(&p, &in, (T0 + 7200) * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "expired", 0);
    in.status_spec_hash = HASH "0"; /* a longer hash is a different one */
    policy_decide(&p, &in, T0 * 1000, NULL);
    T_PLAN(p, PLAN_ROTATE, "spec-changed", 0);
}

/* pgtoken.io/force-rotate: a value not handled yet rotates a fresh Secret with plan.force;
 * the value handled (status.force-rotate) does nothing; every other ROTATE carries force while
 * one is pending, so the write that handles it records it. */
static void test_force_rotate(void)
{
    char iat[32], exp[32];
    struct policy_input in = { HASH, HASH, iat, exp, true, 1, NULL, NULL };
    struct plan p = PLAN_INIT;
    int64_t now = (T0 + 60) * 1000; /* one minute into a one-hour token: fresh */
    static const struct {
        const char *value, *status, *reason;
        bool force;
    } cases[] = {
        { NULL, NULL, "fresh", false },                              /* no annotation */
        { NULL, "2024-05-01T12:00:00Z", "fresh", false },            /* removed after use */
        { "", NULL, "fresh", false },                                /* empty: nothing asked */
        { "", "2024-05-01T12:00:00Z", "fresh", false },
        { "2024-05-01T12:00:00Z", NULL, "forced", true },            /* first one */
        { "2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z", "fresh", false }, /* handled */
        { "2024-05-01T12:05:00Z", "2024-05-01T12:00:00Z", "forced", true }, /* a new one */
        { "2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z ", "forced", true }, /* byte for byte */
        { "1", "2", "forced", true },                                /* any text: a counter */
        { "2", "2", "fresh", false },
    };

    clock_rfc3339(iat, T0);
    clock_rfc3339(exp, T0 + 3600);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        in.force_rotate = cases[i].value;
        in.status_force_rotate = cases[i].status;
        policy_decide(&p, &in, now, &no_jitter);
        if (strcmp(p.reason, cases[i].reason) || p.force != cases[i].force ||
            (p.action == PLAN_ROTATE) != !strcmp(cases[i].reason, "forced"))
            t_fail(__FILE__, __LINE__, "case %zu (%s, %s): %s force=%d", i,
                   cases[i].value ? cases[i].value : "NULL",
                   cases[i].status ? cases[i].status : "NULL", p.reason, (int)p.force);
    }
    /* Handled: the plan is the usual one, due at the ratio point. */
    in.force_rotate = in.status_force_rotate = "2024-05-01T12:00:00Z";
    policy_decide(&p, &in, now, &no_jitter);
    T_PLAN(p, PLAN_NONE, "fresh", 29 * MIN_MS);
    T_CHECK(!p.force);
    /* Pending: forced beats every reason but "new", which carries force too. */
    in.force_rotate = "2024-05-01T12:05:00Z";
    in.status_spec_hash = "fedcba9876543210";
    in.keys_present = false;
    policy_decide(&p, &in, (T0 + 7200) * 1000, &no_jitter); /* expired too */
    T_PLAN(p, PLAN_ROTATE, "forced", 0);
    T_CHECK(p.force);
    in.status_spec_hash = NULL;
    policy_decide(&p, &in, now, &no_jitter);
    T_PLAN(p, PLAN_ROTATE, "new", 0);
    T_CHECK(p.force);
    /* Handled, with other reasons to rotate: they rotate without force. */
    in.status_force_rotate = in.force_rotate;
    policy_decide(&p, &in, now, &no_jitter);
    T_PLAN(p, PLAN_ROTATE, "new", 0);
    T_CHECK(!p.force);
    in.status_spec_hash = "fedcba9876543210";
    policy_decide(&p, &in, now, &no_jitter);
    T_PLAN(p, PLAN_ROTATE, "spec-changed", 0);
    T_CHECK(!p.force);
    in.status_spec_hash = HASH;
    policy_decide(&p, &in, (T0 + 3600) * 1000, &no_jitter);
    T_PLAN(p, PLAN_ROTATE, "keys-missing", 0);
    T_CHECK(!p.force);
    in.keys_present = true;
    policy_decide(&p, &in, (T0 + 1800) * 1000, &no_jitter);
    T_PLAN(p, PLAN_ROTATE, "due", 0);
    T_CHECK(!p.force);
}

static void test_due_boundaries(void)
{
    int64_t iat_ms = T0 * 1000, due = iat_ms + 30 * MIN_MS;

    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 7, &no_jitter), due);
    T_PLAN(decide(T0, T0 + 3600, iat_ms, 7, &no_jitter), PLAN_NONE, "fresh", 30 * MIN_MS);
    T_PLAN(decide(T0, T0 + 3600, due - 5000, 7, &no_jitter), PLAN_NONE, "fresh", 5000);
    T_PLAN(decide(T0, T0 + 3600, due - 1001, 7, &no_jitter), PLAN_NONE, "fresh", 1001);
    T_PLAN(decide(T0, T0 + 3600, due - 1000, 7, &no_jitter), PLAN_NONE, "fresh", 1000);
    T_PLAN(decide(T0, T0 + 3600, due - 999, 7, &no_jitter), PLAN_NONE, "fresh", 1000);
    T_PLAN(decide(T0, T0 + 3600, due - 1, 7, &no_jitter), PLAN_NONE, "fresh", 1000);
    T_PLAN(decide(T0, T0 + 3600, due, 7, &no_jitter), PLAN_ROTATE, "due", 0);
    T_PLAN(decide(T0, T0 + 3600, due + 1, 7, &no_jitter), PLAN_ROTATE, "due", 0);
    T_PLAN(decide(T0, T0 + 3600, (T0 + 3600) * 1000 - 1, 7, &no_jitter), PLAN_ROTATE, "due", 0);
    T_PLAN(decide(T0, T0 + 3600, (T0 + 3600) * 1000, 7, &no_jitter), PLAN_ROTATE, "expired", 0);
    T_PLAN(decide(T0, T0 + 3600, (T0 + 9999) * 1000, 7, &no_jitter), PLAN_ROTATE, "expired", 0);
    /* Default config: jitter only brings the due time forward. */
    for (uint64_t seed = 0; seed < 50; seed++) {
        struct plan p = decide(T0, T0 + 3600, due, seed, NULL);
        T_PLAN(p, PLAN_ROTATE, "due", 0);
        p = decide(T0, T0 + 3600, due - 3 * MIN_MS - 1, seed, NULL);
        T_EQ_INT(p.action, PLAN_NONE);
    }
}

static void test_short_lifetime(void)
{
    /* 20 s tokens: min_remaining (5 min) is cut to half the lifetime, so the token is not due
     * the moment it is issued. */
    int64_t iat_ms = T0 * 1000;

    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + 20000, 1, &no_jitter), iat_ms + 10000);
    T_PLAN(decide(T0, T0 + 20, iat_ms, 1, &no_jitter), PLAN_NONE, "fresh", 10000);
    T_PLAN(decide(T0, T0 + 20, iat_ms + 9000, 1, &no_jitter), PLAN_NONE, "fresh", 1000);
    T_PLAN(decide(T0, T0 + 20, iat_ms + 9500, 1, &no_jitter), PLAN_NONE, "fresh", 1000);
    T_PLAN(decide(T0, T0 + 20, iat_ms + 10000, 1, &no_jitter), PLAN_ROTATE, "due", 0);
    T_PLAN(decide(T0, T0 + 20, iat_ms + 20000, 1, &no_jitter), PLAN_ROTATE, "expired", 0);
    for (uint64_t seed = 0; seed < 1000; seed++) {
        int64_t due = policy_due_at_ms(iat_ms, iat_ms + 20000, seed, NULL);
        if (due < iat_ms + 9000 || due > iat_ms + 10000)
            t_fail(__FILE__, __LINE__, "seed %llu: due %lld", (unsigned long long)seed,
                   (long long)(due - iat_ms));
    }
    /* A 1 s token: still not due at issue. */
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + 1000, 1, &no_jitter), iat_ms + 500);
    T_PLAN(decide(T0, T0 + 1, iat_ms, 1, &no_jitter), PLAN_NONE, "fresh", 1000);
}

static void test_long_lifetime_and_ratio(void)
{
    int64_t iat_ms = T0 * 1000, day = 24 * HOUR_MS;
    struct policy_cfg c = no_jitter;

    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + day, 1, &c), iat_ms + 12 * HOUR_MS);
    T_PLAN(decide(T0, T0 + 86400, iat_ms, 1, &c), PLAN_NONE, "fresh", 12 * HOUR_MS);
    c.refresh_ratio = 0.99;
    /* 24 h at 0.99 leaves 14.4 min: the ratio point holds. */
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + day, 1, &c), iat_ms + 85536000);
    /* 60 min at 0.99 leaves 36 s: min_remaining pulls it to 55 min. */
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 1, &c), iat_ms + 55 * MIN_MS);
    T_PLAN(decide(T0, T0 + 3600, iat_ms + 55 * MIN_MS - 1, 1, &c), PLAN_NONE, "fresh", 1000);
    T_PLAN(decide(T0, T0 + 3600, iat_ms + 55 * MIN_MS, 1, &c), PLAN_ROTATE, "due", 0);
    /* Entra's 60..90 min tokens at the default ratio. */
    c.refresh_ratio = 0.5;
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + 90 * MIN_MS, 1, &c), iat_ms + 45 * MIN_MS);
    c.min_remaining_ms = 0;
    c.refresh_ratio = 0.99;
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 1, &c), iat_ms + 3564000);
}

static void test_skewed_iat(void)
{
    int64_t now_ms = T0 * 1000;

    /* iat 10 min ahead of our clock: the schedule follows the token's own times. */
    T_PLAN(decide(T0 + 600, T0 + 600 + 3600, now_ms, 1, &no_jitter), PLAN_NONE, "fresh",
           40 * MIN_MS);
    /* iat ahead, exp already behind: inconsistent, so mint a new one. */
    T_PLAN(decide(T0 + 600, T0 - 1, now_ms, 1, &no_jitter), PLAN_ROTATE, "new", 0);
    /* iat far in the past (a token we issued before a long outage). */
    T_PLAN(decide(T0 - 86400, T0 - 82800, now_ms, 1, &no_jitter), PLAN_ROTATE, "expired", 0);
}

static void test_jitter_spread(void)
{
    int64_t iat_ms = T0 * 1000, lo = iat_ms + 27 * MIN_MS, hi = iat_ms + 30 * MIN_MS;
    int64_t min = INT64_MAX, max = INT64_MIN, first = 0;
    int distinct_from_first = 0, buckets[10] = { 0 };

    for (uint64_t seed = 0; seed < 1000; seed++) {
        int64_t due = policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, seed, NULL);
        if (due < lo || due > hi)
            t_fail(__FILE__, __LINE__, "seed %llu: due %lld outside the window",
                   (unsigned long long)seed, (long long)(due - iat_ms));
        if (seed == 0)
            first = due;
        distinct_from_first += due != first;
        min = due < min ? due : min;
        max = due > max ? due : max;
        buckets[(due - lo) * 10 / (hi - lo + 1)]++;
        T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, seed, NULL), due); /* stable */
    }
    T_CHECK(distinct_from_first > 990);
    T_CHECK(min < lo + 18000 && max > hi - 18000); /* spans the window */
    for (int i = 0; i < 10; i++)
        if (buckets[i] < 50 || buckets[i] > 150)
            t_fail(__FILE__, __LINE__, "bucket %d has %d of 1000", i, buckets[i]);
    /* Seeds from names. */
    T_CHECK(policy_seed("ns", "a") != policy_seed("ns", "b"));
    T_CHECK(policy_seed("ns", "a") != policy_seed("ns2", "a"));
    T_CHECK(policy_seed("ns", "a") == policy_seed("ns", "a"));
    T_CHECK(policy_seed("a", "bc") != policy_seed("ab", "c"));
    T_EQ_INT(policy_seed(NULL, NULL), policy_seed("", ""));
    T_CHECK(policy_seed("", "") == UINT64_C(0xaf63a24c860189fe)); /* FNV-1a("/") */
}

static void test_retry(void)
{
    struct policy_cfg c = POLICY_CFG_INIT;
    int64_t now = T0 * 1000, far = now + 24 * HOUR_MS;

    /* Plain backoff with a far expiry: 1 s doubling to 5 min, halved by jitter01 = 0. */
    T_EQ_INT(policy_retry_ms(0, now, far, &c, 0), 500);
    T_EQ_INT(policy_retry_ms(1, now, far, &c, 0), 1000);
    T_EQ_INT(policy_retry_ms(8, now, far, &c, 0), 128000);
    T_EQ_INT(policy_retry_ms(9, now, far, &c, 0), 150000);
    T_EQ_INT(policy_retry_ms(100, now, far, &c, 0), 150000);
    T_EQ_INT(policy_retry_ms(UINT32_MAX, now, far, &c, 0), 150000);
    T_CHECK(policy_retry_ms(0, now, far, &c, 0.999999) >= 999);
    T_CHECK(policy_retry_ms(20, now, far, &c, 0.999999) <= 300000);
    T_CHECK(policy_retry_ms(20, now, far, &c, 0.999999) >= 299000);
    /* Near expiry: at most a quarter of what is left, at least 1 s. */
    T_EQ_INT(policy_retry_ms(20, now, now + 60000, &c, 0.999999), 15000);
    T_EQ_INT(policy_retry_ms(20, now, now + 10 * MIN_MS, &c, 0.999999), 150000);
    T_EQ_INT(policy_retry_ms(20, now, now + 4000, &c, 0.999999), 1000);
    T_EQ_INT(policy_retry_ms(20, now, now + 3000, &c, 0.999999), 1000);
    T_EQ_INT(policy_retry_ms(20, now, now + 1, &c, 0.999999), 1000);
    T_EQ_INT(policy_retry_ms(0, now, now + 1, &c, 0), 500); /* below the cap already */
    T_EQ_INT(policy_retry_ms(3, now, now + 20000, &c, 0), 4000);
    T_EQ_INT(policy_retry_ms(4, now, now + 20000, &c, 0.999999), 5000);
    /* The controller's short cap (60 s) holds while a live value is to be saved; with none
     * (no value yet, or expired) the backoff goes on to 5 minutes. */
    {
        struct policy_cfg short_cap = c;
        short_cap.retry_cap_ms = 60000;
        T_EQ_INT(policy_retry_ms(20, now, far, &short_cap, 0.999999), 59999);
        T_EQ_INT(policy_retry_ms(20, now, 0, &short_cap, 0.999999), 299999);
        T_EQ_INT(policy_retry_ms(20, now, now - 1, &short_cap, 0), 150000);
        T_EQ_INT(policy_retry_ms(3, now, 0, &short_cap, 0), 4000); /* the same start */
    }
    /* Expired, at expiry, or unknown (0): plain backoff. */
    T_EQ_INT(policy_retry_ms(9, now, now, &c, 0), 150000);
    T_EQ_INT(policy_retry_ms(9, now, now - 1, &c, 0), 150000);
    T_EQ_INT(policy_retry_ms(9, now, 0, &c, 0), 150000);
    /* Over many attempts the delay never lets a valid token run out unnoticed. */
    for (unsigned a = 0; a < 40; a++)
        for (int64_t left = 1; left < 2 * HOUR_MS; left = left * 3 + 7) {
            int64_t d = policy_retry_ms(a, now, now + left, &c, 0.999999);
            if (d < 0 || (d > left / 4 && d > 1000))
                t_fail(__FILE__, __LINE__, "attempt %u, %lld ms left: %lld", a,
                       (long long)left, (long long)d);
        }
}

static void test_bad_inputs(void)
{
    struct policy_cfg c = { 0, -1, -5, 0, -1 }, d = POLICY_CFG_INIT;
    int64_t iat_ms = T0 * 1000;
    int64_t want = policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 42, &d);

    /* Out-of-range config takes the defaults. */
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 42, &c), want);
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 42, NULL), want);
    c = (struct policy_cfg){ 1.0, 1.0, 5 * MIN_MS, 1000, 300000 };
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 42, &c), want);
    c = (struct policy_cfg){ NAN, NAN, 5 * MIN_MS, 1000, 300000 };
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 42, &c), want);
    c = (struct policy_cfg){ -0.5, 2.0, 5 * MIN_MS, 1000, 300000 };
    T_EQ_INT(policy_due_at_ms(iat_ms, iat_ms + HOUR_MS, 42, &c), want);
    c = (struct policy_cfg){ 0.5, 0.1, 5 * MIN_MS, -1, INT64_MAX };
    T_EQ_INT(policy_retry_ms(100, 0, 0, &c, 0), 150000);
    c = (struct policy_cfg){ 0.5, 0.1, 5 * MIN_MS, 10 * MIN_MS, 1000 };
    T_EQ_INT(policy_retry_ms(0, 0, 0, &c, 0), 5 * MIN_MS);
    /* Zero and negative times, empty lifetimes. */
    T_EQ_INT(policy_due_at_ms(0, 0, 1, NULL), 0);
    T_EQ_INT(policy_due_at_ms(5, -5, 1, NULL), 5);
    T_EQ_INT(policy_due_at_ms(-20000, 0, 1, &no_jitter), -10000);
    T_CHECK(policy_due_at_ms(INT64_MIN, INT64_MAX, 1, NULL) > INT64_MIN);
    T_CHECK(policy_due_at_ms(INT64_MAX - 10, INT64_MAX, 1, NULL) >= INT64_MAX - 10);
    T_PLAN(decide(0, 3600, 0, 1, &no_jitter), PLAN_NONE, "fresh", 30 * MIN_MS);
    T_PLAN(decide(T0, T0 + 3600, 0, 1, &no_jitter), PLAN_NONE, "fresh",
           (T0 + 1800) * 1000);
    T_PLAN(decide(T0, T0 + 3600, -1, 1, &no_jitter), PLAN_NONE, "fresh",
           (T0 + 1800) * 1000 + 1);
    T_PLAN(decide(T0, T0 + 3600, INT64_MIN, 1, &no_jitter), PLAN_NONE, "fresh", INT64_MAX);
    T_PLAN(decide(T0, T0 + 3600, INT64_MAX, 1, &no_jitter), PLAN_ROTATE, "expired", 0);
    /* Retry with extreme inputs. */
    T_EQ_INT(policy_retry_ms(0, INT64_MIN, INT64_MAX, NULL, 0), 500);
    T_EQ_INT(policy_retry_ms(0, INT64_MAX, INT64_MIN, NULL, 0), 500);
    T_EQ_INT(policy_retry_ms(0, 0, 0, NULL, NAN), 500);
    T_EQ_INT(policy_retry_ms(0, 0, 0, NULL, -3), 500);
    T_EQ_INT(policy_retry_ms(0, 0, 0, NULL, 7), 500);
}

static void test_status(void)
{
    struct policy_status st;
    struct policy_input in = { HASH, NULL, NULL, NULL, true, 99, NULL, NULL };
    struct plan p = PLAN_INIT;
    int64_t t;

    policy_status(&st, T0, T0 + 3600, HASH, 99, &no_jitter);
    T_EQ_STR(st.issued_at, "2023-11-14T22:13:20Z");
    T_EQ_STR(st.expires_at, "2023-11-14T23:13:20Z");
    T_EQ_STR(st.rotate_at, "2023-11-14T22:43:20Z");
    T_EQ_STR(st.spec_hash, HASH);
    T_RC(clock_parse_rfc3339(&t, st.expires_at), 0);
    T_EQ_INT(t, T0 + 3600);
    /* What we write, read back, gives a fresh plan due at rotate_at. */
    in.status_spec_hash = st.spec_hash;
    in.status_issued_at = st.issued_at;
    in.status_expires_at = st.expires_at;
    policy_decide(&p, &in, T0 * 1000, &no_jitter);
    T_PLAN(p, PLAN_NONE, "fresh", 30 * MIN_MS);
    /* The default jitter puts rotate_at between 27 and 30 minutes. */
    policy_status(&st, T0, T0 + 3600, HASH, 99, NULL);
    T_RC(clock_parse_rfc3339(&t, st.rotate_at), 0);
    T_CHECK(t >= T0 + 27 * 60 && t <= T0 + 30 * 60);
    /* Out-of-range times are clamped to what RFC 3339 with four-digit years can say. */
    policy_status(&st, -5, INT64_MAX, NULL, 1, NULL);
    T_EQ_STR(st.issued_at, "1970-01-01T00:00:00Z");
    T_EQ_STR(st.expires_at, "9999-12-31T23:59:59Z");
    T_EQ_STR(st.spec_hash, "");
    policy_status(&st, 0, 0, HASH "tail", 1, NULL);
    T_EQ_STR(st.spec_hash, HASH);
    T_EQ_STR(st.rotate_at, "1970-01-01T00:00:00Z");
}

int main(void)
{
    T_RUN(test_new);
    T_RUN(test_reason_order);
    T_RUN(test_force_rotate);
    T_RUN(test_due_boundaries);
    T_RUN(test_short_lifetime);
    T_RUN(test_long_lifetime_and_ratio);
    T_RUN(test_skewed_iat);
    T_RUN(test_jitter_spread);
    T_RUN(test_retry);
    T_RUN(test_bad_inputs);
    T_RUN(test_status);
    return t_done();
}
