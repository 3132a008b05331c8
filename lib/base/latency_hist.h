/* A latency histogram that any thread updates without a lock: an atomic count
 * per bucket and an atomic sum, over one fixed set of bucket bounds shared by
 * every latency the controller measures (5 ms ... 60 s, client-go's request
 * buckets trimmed to what one request of ours can take). Modules embed one in
 * their stats struct; the metrics collector reads it (latency_hist_read) into
 * a Prometheus histogram. Zero-initialised memory is an empty histogram.
 *
 *   struct latency_hist h = { 0 };
 *   int64_t start = clock_mono_ms();
 *   ...
 *   latency_hist_observe_ms(&h, clock_mono_ms() - start);
 */
#ifndef PGTR_LATENCY_HIST_H
#define PGTR_LATENCY_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LATENCY_HIST_NBOUNDS 12

/* The buckets' upper bounds in seconds, increasing; a last bucket (+Inf) holds
 * what is over the largest. */
extern const double latency_hist_bounds_s[LATENCY_HIST_NBOUNDS];

struct latency_hist {
    /* Observations per bucket (not cumulative); [LATENCY_HIST_NBOUNDS] is +Inf.
     * There is no separate count: it is their total, so that a reader never
     * sees a count that disagrees with the buckets. */
    atomic_ulong buckets[LATENCY_HIST_NBOUNDS + 1];
    atomic_long sum_ms;
};

/* One observation of ms milliseconds (a negative one counts as 0) in the
 * first bucket whose bound it does not exceed. */
void latency_hist_observe_ms(struct latency_hist *h, int64_t ms);

struct latency_hist_snapshot {
    uint64_t buckets[LATENCY_HIST_NBOUNDS + 1]; /* as struct latency_hist, not cumulative */
    uint64_t count;                             /* their total */
    double sum_s;                               /* sum of the observations, seconds */
};

/* Copies h into *out. Concurrent observations may show in the buckets and not
 * yet in the sum (or the reverse); the buckets and the count always agree. */
void latency_hist_read(struct latency_hist_snapshot *out, const struct latency_hist *h);

#endif
