#include "t.h"

#include "base/backoff.h"
#include "base/clock.h"
#include "base/err.h"

static void test_rfc3339(void)
{
    char s[32];
    int64_t t;

    clock_rfc3339(s, 1795450451);
    T_EQ_STR(s, "2026-11-23T16:14:11Z");
    T_RC(clock_parse_rfc3339(&t, "2026-11-23T16:14:11Z"), 0);
    T_EQ_INT(t, 1795450451);
    T_RC(clock_parse_rfc3339(&t, "1970-01-01T00:00:00.123Z"), 0);
    T_EQ_INT(t, 0);
    T_RC(clock_parse_rfc3339(&t, "2024-02-29T00:00:00+00:00"), 0);
    T_EQ_INT(t, 1709164800);
    T_RC(clock_parse_rfc3339(&t, "2024-02-29T00:00:00+01:00"), ERR_PARSE);
    T_RC(clock_parse_rfc3339(&t, "2024-13-01T00:00:00Z"), ERR_PARSE);
    T_RC(clock_parse_rfc3339(&t, "yesterday"), ERR_PARSE);
}

/* Any offset, converted to UTC; what is not RFC 3339 stays refused. */
static void test_rfc3339_any(void)
{
    int64_t t;

    T_RC(clock_parse_rfc3339_any(&t, "2024-02-29T01:00:00+01:00"), 0);
    T_EQ_INT(t, 1709164800);
    T_RC(clock_parse_rfc3339_any(&t, "2024-02-28T18:30:00-05:30"), 0);
    T_EQ_INT(t, 1709164800);
    T_RC(clock_parse_rfc3339_any(&t, "2024-02-29T00:00:00Z"), 0);
    T_EQ_INT(t, 1709164800);
    T_RC(clock_parse_rfc3339_any(&t, "2024-02-29T00:00:00+0100"), ERR_PARSE);
    T_RC(clock_parse_rfc3339_any(&t, "2024-02-29T00:00:00+1x:00"), ERR_PARSE);
    T_RC(clock_parse_rfc3339_any(&t, "+01:00"), ERR_PARSE);
}

static void test_backoff(void)
{
    T_EQ_INT(backoff_ms(0, 1000, 60000, 0.999999), 999);
    T_EQ_INT(backoff_ms(0, 1000, 60000, 0), 500);
    T_EQ_INT(backoff_ms(3, 1000, 60000, 0), 4000);
    T_EQ_INT(backoff_ms(10, 1000, 60000, 0), 30000);
    T_EQ_INT(backoff_ms(200, 1000, 60000, 0.999999), 59999);
    T_CHECK(backoff_ms(5, 0, 10, -3) >= 0);
    for (int i = 0; i < 1000; i++) {
        double r = backoff_rand();
        T_CHECK(r >= 0 && r < 1);
    }
}

int main(void)
{
    T_RUN(test_rfc3339);
    T_RUN(test_rfc3339_any);
    T_RUN(test_backoff);
    return t_done();
}
