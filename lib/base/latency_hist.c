#include "base/latency_hist.h"

#include "base/banned.h"

const double latency_hist_bounds_s[LATENCY_HIST_NBOUNDS] = { 0.005, 0.025, 0.1, 0.25, 0.5, 1,
                                                             2,     4,     8,   15,   30,  60 };

void latency_hist_observe_ms(struct latency_hist *h, int64_t ms)
{
    /* ms / 1000.0 is the double nearest the exact quotient, as the bounds are
     * the doubles nearest theirs: an observation on a bound falls in its bucket. */
    double s;
    size_t i = 0;

    if (ms < 0)
        ms = 0;
    s = (double)ms / 1000.0;
    while (i < LATENCY_HIST_NBOUNDS && s > latency_hist_bounds_s[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ms, (long)ms, memory_order_relaxed);
}

void latency_hist_read(struct latency_hist_snapshot *out, const struct latency_hist *h)
{
    out->count = 0;
    for (size_t i = 0; i <= LATENCY_HIST_NBOUNDS; i++) {
        out->buckets[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        out->count += out->buckets[i];
    }
    out->sum_s = (double)atomic_load_explicit(&h->sum_ms, memory_order_relaxed) / 1000.0;
}
