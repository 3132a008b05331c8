#include "base/backoff.h"

#include <openssl/rand.h>

#include "base/banned.h"

int64_t backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, double jitter01)
{
    int64_t d = base_ms > 0 ? base_ms : 1;

    if (cap_ms < d)
        cap_ms = d;
    for (unsigned i = 0; i < attempt && d < cap_ms; i++)
        d = d > cap_ms / 2 ? cap_ms : d * 2;
    if (!(jitter01 >= 0)) /* also NaN */
        jitter01 = 0;
    if (jitter01 >= 1)
        jitter01 = 0.999999;
    d = (int64_t)((double)d * (0.5 + jitter01 / 2));
    return d < 0 ? 0 : d;
}

double backoff_rand(void)
{
    static _Thread_local uint64_t state;

    if (!state && RAND_bytes((unsigned char *)&state, sizeof(state)) != 1)
        state = 0x9e3779b97f4a7c15ULL;
    state |= 1;
    /* xorshift64*: jitter needs spread, not secrecy. */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 0x2545F4914F6CDD1DULL) >> 11) / (double)(1ULL << 53);
}
