/* lib/base/latency_hist: bucket placement on and around every bound, the sum,
 * and many threads observing while another reads. */
#include "t.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/latency_hist.h"

static void test_bounds(void)
{
    T_EQ_INT(LATENCY_HIST_NBOUNDS, 12);
    T_CHECK(latency_hist_bounds_s[0] == 0.005);
    T_CHECK(latency_hist_bounds_s[LATENCY_HIST_NBOUNDS - 1] == 60);
    for (size_t i = 1; i < LATENCY_HIST_NBOUNDS; i++)
        T_CHECK(latency_hist_bounds_s[i] > latency_hist_bounds_s[i - 1]);
}

static void test_placement(void)
{
    struct latency_hist h = { 0 };
    struct latency_hist_snapshot snap;
    int64_t sum_ms = 0;

    latency_hist_read(&snap, &h);
    T_EQ_INT(snap.count, 0);
    T_CHECK(snap.sum_s == 0);
    /* each bound in ms: on it, into its bucket; one ms over, into the next */
    for (size_t i = 0; i < LATENCY_HIST_NBOUNDS; i++) {
        int64_t ms = (int64_t)(latency_hist_bounds_s[i] * 1000 + 0.5);
        struct latency_hist one = { 0 };
        latency_hist_observe_ms(&one, ms);
        latency_hist_read(&snap, &one);
        if (snap.buckets[i] != 1 || snap.count != 1)
            t_fail(__FILE__, __LINE__, "%lld ms is not in bucket %zu", (long long)ms, i);
        latency_hist_observe_ms(&one, ms + 1);
        latency_hist_read(&snap, &one);
        if (snap.buckets[i + 1] != 1 || snap.count != 2)
            t_fail(__FILE__, __LINE__, "%lld ms is not in bucket %zu", (long long)ms + 1, i + 1);
        latency_hist_observe_ms(&h, ms);
        sum_ms += ms;
    }
    latency_hist_observe_ms(&h, 0);
    latency_hist_observe_ms(&h, -20); /* counts as 0 */
    latency_hist_observe_ms(&h, 3600 * 1000);
    sum_ms += 3600 * 1000;
    latency_hist_read(&snap, &h);
    T_EQ_INT(snap.count, LATENCY_HIST_NBOUNDS + 3);
    T_EQ_INT(snap.buckets[0], 3);
    for (size_t i = 1; i < LATENCY_HIST_NBOUNDS; i++)
        T_EQ_INT(snap.buckets[i], 1);
    T_EQ_INT(snap.buckets[LATENCY_HIST_NBOUNDS], 1);
    T_CHECK(snap.sum_s == (double)sum_ms / 1000.0);
}

#define THREADS 4
#define PER_THREAD 50000

static struct latency_hist shared;

static void *observer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++)
        latency_hist_observe_ms(&shared, i); /* 0 .. 49.999 s */
    return NULL;
}

static void test_concurrent(void)
{
    pthread_t th[THREADS];
    struct latency_hist_snapshot snap;
    uint64_t last = 0;
    bool ok = true;
    int started = 0;

    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, observer, NULL) == 0)
            started++;
    T_EQ_INT(started, THREADS);
    /* what a scrape sees while they run: a count that only grows and always
     * equals the buckets' total (the renderer's +Inf) */
    for (int i = 0; i < 2000 && ok; i++) {
        uint64_t total = 0;
        latency_hist_read(&snap, &shared);
        for (size_t j = 0; j <= LATENCY_HIST_NBOUNDS; j++)
            total += snap.buckets[j];
        ok = total == snap.count && snap.count >= last;
        last = snap.count;
    }
    T_CHECK(ok);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    latency_hist_read(&snap, &shared);
    T_EQ_INT(snap.count, (uint64_t)started * PER_THREAD);
    /* every thread observed 0 .. 49999 ms once: 5 ms and under is 6 of them */
    T_EQ_INT(snap.buckets[0], (uint64_t)started * 6);
    T_CHECK(snap.sum_s == (double)started * (49999.0 * 50000.0 / 2) / 1000.0);
}

int main(void)
{
    T_RUN(test_bounds);
    T_RUN(test_placement);
    T_RUN(test_concurrent);
    return t_done();
}
