/* clock_parse_rfc3339 (base/clock.h) on any string, and these invariants:
 *   - an accepted time is "YYYY-MM-DDTHH:MM:SS" then an optional fraction then "Z" or
 *     "+00:00", with every field in range for its month, and is at or after the epoch;
 *   - formatting it again (clock_rfc3339) gives the same first 19 characters (a leap second,
 *     :60, reads as the next minute);
 *   - any second from 1970 to 9999 formats and parses back to itself. */
#include "base/clock.h"
#include "base/err.h"
#include "fuzz.h"

#define Y10K 253402300800LL /* 10000-01-01T00:00:00Z */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool shaped(const char *s)
{
    return digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' && digits(s + 8, 2) &&
           s[10] == 'T' && digits(s + 11, 2) && s[13] == ':' && digits(s + 14, 2) &&
           s[16] == ':' && digits(s + 17, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char out[32];
    int64_t t = 0, back = 0;
    int rc = clock_parse_rfc3339(&t, s);

    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (rc == 0) {
        FUZZ_CHECK(strlen(s) >= 20 && shaped(s));
        FUZZ_CHECK(t >= 0);
        clock_rfc3339(out, t);
        if (strncmp(s + 17, "60", 2) != 0)
            FUZZ_CHECK(strncmp(out, s, 19) == 0);
    }
    /* Generation: 8 bytes of input as a second in [1970, 10000). */
    if (size >= 8) {
        uint64_t v;
        memcpy(&v, data, 8);
        t = (int64_t)(v % (uint64_t)Y10K);
        clock_rfc3339(out, t);
        FUZZ_CHECK(clock_parse_rfc3339(&back, out) == 0 && back == t);
    }
    free(s);
    return 0;
}
