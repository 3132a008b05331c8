#include "base/clock.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/banned.h"

int64_t clock_wall_s(void)
{
    return (int64_t)time(NULL);
}

int64_t clock_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec clock_mono_in(long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void clock_rfc3339(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "1970-01-01T00:00:00Z"); /* out of range: never a real token time */
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic
     * Gregorian date; no timegm() (not standard) and no TZ games. */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Fixed-width digits and separators, no sign, no spaces. Stops at the first mismatch, so
 * never reads past a short s. */
static bool rfc3339_shaped(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";

    for (size_t i = 0; i < sizeof(pat) - 1; i++)
        if (pat[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != pat[i])
            return false;
    return true;
}

/* The n digits at s (checked by rfc3339_shaped) as a number. */
static int digits(const char *s, int n)
{
    int v = 0;

    while (n--)
        v = v * 10 + (*s++ - '0');
    return v;
}

static int days_in_month(int y, int mo)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return days[mo - 1] + (mo == 2 && leap);
}

int clock_parse_rfc3339(int64_t *out, const char *s)
{
    int y, mo, d, h, mi, sec;
    const char *p;

    /* By hand: sscanf costs more than all the rest of a reconcile's decision. */
    if (!rfc3339_shaped(s))
        return err_set(ERR_PARSE, "not an RFC 3339 time");
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60 || y < 1970)
        return err_set(ERR_PARSE, "RFC 3339 time out of range");
    p = s + 19;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    if (strcmp(p, "Z") && strcmp(p, "+00:00"))
        return err_set(ERR_PARSE, "RFC 3339 time not in UTC");
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
    return 0;
}

static bool digits2(const char *s)
{
    return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9';
}

int clock_parse_rfc3339_any(int64_t *out, const char *s)
{
    size_t n = strlen(s);
    char utc[64];
    int64_t t, off;

    if (clock_parse_rfc3339(out, s) == 0)
        return 0;
    if (n < 25 || n >= sizeof(utc) || (s[n - 6] != '+' && s[n - 6] != '-') ||
        !digits2(s + n - 5) || s[n - 3] != ':' || !digits2(s + n - 2))
        return err_set(ERR_PARSE, "not an RFC 3339 time");
    memcpy(utc, s, n - 6);
    utc[n - 6] = 'Z';
    utc[n - 5] = '\0';
    if (clock_parse_rfc3339(&t, utc) < 0)
        return ERR_PARSE;
    off = ((s[n - 5] - '0') * 10 + (s[n - 4] - '0')) * 3600 +
          ((s[n - 2] - '0') * 10 + (s[n - 1] - '0')) * 60;
    *out = s[n - 6] == '+' ? t - off : t + off;
    return 0;
}
