#include "t.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/sleep.h"

struct sleeper {
    pthread_t th;
    atomic_bool stop;
    long ms;
    bool until_woken;
    uint64_t ticket;
    bool woken;
    int64_t slept_ms;
    atomic_bool done;
};

static void *sleeper_main(void *arg)
{
    struct sleeper *s = arg;
    int64_t t0 = clock_mono_ms();

    if (s->until_woken)
        s->woken = sleep_until_woken(s->ms, &s->stop, s->ticket);
    else
        sleep_unless_stopped(s->ms, &s->stop);
    s->slept_ms = clock_mono_ms() - t0;
    atomic_store(&s->done, true);
    return NULL;
}

static void start(struct sleeper *s, long ms, bool until_woken)
{
    atomic_init(&s->stop, false);
    atomic_init(&s->done, false);
    s->ms = ms;
    s->until_woken = until_woken;
    s->ticket = sleep_ticket();
    s->woken = false;
    pthread_create(&s->th, NULL, sleeper_main, s);
}

/* It sleeps the full time when nothing happens. */
static void test_sleep_full_time(void)
{
    int64_t t0 = clock_mono_ms();

    sleep_unless_stopped(120, NULL);
    T_CHECK(clock_mono_ms() - t0 >= 120);
    t0 = clock_mono_ms();
    sleep_unless_stopped(0, NULL);
    sleep_unless_stopped(-5, NULL);
    T_CHECK(clock_mono_ms() - t0 < 50);
}

/* Setting the flag and waking: a one-minute sleeper returns at once (no 50 ms step). */
static void test_stop_wakes_sleeper_promptly(void)
{
    struct sleeper s;
    int64_t t0;

    start(&s, 60000, false);
    usleep(50 * 1000); /* let it block */
    T_CHECK(!atomic_load(&s.done));
    t0 = clock_mono_ms();
    atomic_store(&s.stop, true);
    sleep_wake_all();
    pthread_join(s.th, NULL);
    T_CHECK(clock_mono_ms() - t0 < 1000);
    T_CHECK(s.slept_ms < 5000);
}

/* A wake without the flag leaves sleep_unless_stopped asleep. */
static void test_wake_without_stop_keeps_sleeping(void)
{
    struct sleeper s;

    start(&s, 300, false);
    usleep(30 * 1000);
    sleep_wake_all();
    usleep(30 * 1000);
    T_CHECK(!atomic_load(&s.done));
    pthread_join(s.th, NULL);
    T_CHECK(s.slept_ms >= 300);
}

/* A stop flag already set: no sleep at all. */
static void test_already_stopped(void)
{
    atomic_bool stop = true;
    int64_t t0 = clock_mono_ms();

    sleep_unless_stopped(60000, &stop);
    T_CHECK(!sleep_until_woken(60000, &stop, sleep_ticket()));
    T_CHECK(clock_mono_ms() - t0 < 1000);
}

/* sleep_until_woken returns true at a wake, false when its time passes. */
static void test_until_woken(void)
{
    struct sleeper s;
    int64_t t0;

    start(&s, 60000, true);
    usleep(30 * 1000);
    t0 = clock_mono_ms();
    sleep_wake_all();
    pthread_join(s.th, NULL);
    T_CHECK(s.woken);
    T_CHECK(clock_mono_ms() - t0 < 1000);

    start(&s, 80, true);
    pthread_join(s.th, NULL);
    T_CHECK(!s.woken);
    T_CHECK(s.slept_ms >= 80);
}

/* A wake between taking the ticket and sleeping is not lost. */
static void test_wake_before_sleep_not_lost(void)
{
    uint64_t ticket = sleep_ticket();
    int64_t t0 = clock_mono_ms();

    sleep_wake_all();
    T_CHECK(sleep_until_woken(60000, NULL, ticket));
    T_CHECK(clock_mono_ms() - t0 < 1000);
}

int main(void)
{
    T_RUN(test_sleep_full_time);
    T_RUN(test_stop_wakes_sleeper_promptly);
    T_RUN(test_wake_without_stop_keeps_sleeping);
    T_RUN(test_already_stopped);
    T_RUN(test_until_woken);
    T_RUN(test_wake_before_sleep_not_lost);
    return t_done();
}
