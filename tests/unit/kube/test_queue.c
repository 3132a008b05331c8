#include "t.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "kube/queue.h"

static void test_dedup_and_order(void)
{
    struct queue *q = queue_new();
    char *k;

    queue_add(q, "a/1");
    queue_add(q, "a/2");
    queue_add(q, "a/1");
    T_EQ_INT(queue_len(q), 2);
    T_CHECK(queue_get(q, &k));
    T_EQ_STR(k, "a/1");
    /* added while in progress: not handed out again until done */
    queue_add(q, "a/1");
    T_EQ_INT(queue_len(q), 1);
    queue_done(q, "a/1");
    T_EQ_INT(queue_len(q), 2);
    free(k);
    T_CHECK(queue_get(q, &k));
    T_EQ_STR(k, "a/2");
    queue_done(q, k);
    free(k);
    T_CHECK(queue_get(q, &k));
    T_EQ_STR(k, "a/1");
    queue_done(q, k);
    free(k);
    T_EQ_INT(queue_len(q), 0);
    queue_free(q);
}

static void test_delay_earliest_wins(void)
{
    struct queue *q = queue_new();
    int64_t t0 = clock_mono_ms();
    char *k;

    queue_add_after(q, "b/1", 5000);
    queue_add_after(q, "b/1", 50);   /* earlier: replaces */
    queue_add_after(q, "b/1", 9000); /* later: ignored */
    T_EQ_INT(queue_delayed(q), 1);
    T_EQ_INT(queue_len(q), 0);
    T_CHECK(queue_get(q, &k));
    T_EQ_STR(k, "b/1");
    T_CHECK(clock_mono_ms() - t0 >= 50);
    T_CHECK(clock_mono_ms() - t0 < 4000);
    T_EQ_INT(queue_delayed(q), 0);
    queue_done(q, k);
    free(k);
    queue_free(q);
}

static void test_forget(void)
{
    struct queue *q = queue_new();
    char *k;

    queue_add(q, "c/1");
    queue_add(q, "c/2");
    queue_add_after(q, "c/3", 10);
    queue_forget(q, "c/1");
    queue_forget(q, "c/3");
    T_CHECK(queue_get(q, &k));
    T_EQ_STR(k, "c/2");
    queue_done(q, k);
    free(k);
    usleep(30000);
    T_EQ_INT(queue_len(q), 0);
    queue_free(q);
}

static void *stopper(void *arg)
{
    usleep(50000);
    queue_shutdown(arg);
    return NULL;
}

static void test_shutdown_wakes(void)
{
    struct queue *q = queue_new();
    pthread_t th;
    char *k = NULL;

    queue_add_after(q, "d/1", 60000);
    pthread_create(&th, NULL, stopper, q);
    T_CHECK(!queue_get(q, &k));
    pthread_join(th, NULL);
    queue_add(q, "d/2");
    T_EQ_INT(queue_len(q), 0);
    queue_free(q);
}

/* A worker in queue_get, recording what it got and when. */
struct getter {
    struct queue *q;
    char *key;
    int64_t at_ms;
    atomic_bool done;
};

static void *get_one(void *arg)
{
    struct getter *g = arg;

    if (queue_get(g->q, &g->key))
        g->at_ms = clock_mono_ms();
    atomic_store(&g->done, true);
    return NULL;
}

/* Waits up to 2 s for both getters (b may be NULL), then shuts q down so that a
 * worker that was never woken returns (and the test fails instead of hanging). */
static void join_within(struct queue *q, pthread_t ta, struct getter *a, pthread_t tb,
                        struct getter *b)
{
    int64_t until = clock_mono_ms() + 2000;

    while (clock_mono_ms() < until && !(atomic_load(&a->done) && (!b || atomic_load(&b->done))))
        usleep(10 * 1000);
    queue_shutdown(q);
    pthread_join(ta, NULL);
    if (b)
        pthread_join(tb, NULL);
}

/* The only idle worker waits for a timer an hour away: a key added for now
 * still wakes it at once (it is the timer waiter, not one of cond's). */
static void test_ready_wakes_timer_waiter(void)
{
    struct queue *q = queue_new();
    struct getter g = { q, NULL, 0, false };
    pthread_t th;
    int64_t t0;

    queue_add_after(q, "t/later", 3600 * 1000);
    pthread_create(&th, NULL, get_one, &g);
    usleep(100 * 1000); /* it is waiting for the timer now */
    t0 = clock_mono_ms();
    queue_add(q, "t/now");
    join_within(q, th, &g, th, NULL);
    T_EQ_STR(g.key, "t/now");
    T_CHECK(g.key && g.at_ms - t0 < 1000);
    free(g.key);
    queue_free(q);
}

/* Two idle workers, two timers: the one that times the first takes its key
 * and keeps it; the other must then time the second and get it when due. */
static void test_timer_role_passes(void)
{
    struct queue *q = queue_new();
    struct getter a = { q, NULL, 0, false }, b = { q, NULL, 0, false };
    pthread_t ta, tb;
    int64_t t0 = clock_mono_ms();

    queue_add_after(q, "t/1", 100);
    queue_add_after(q, "t/2", 300);
    pthread_create(&ta, NULL, get_one, &a);
    pthread_create(&tb, NULL, get_one, &b);
    join_within(q, ta, &a, tb, &b);
    T_CHECK(a.key && b.key && strcmp(a.key, b.key));
    T_CHECK(a.at_ms - t0 >= 100 && b.at_ms - t0 >= 100);
    T_CHECK(a.at_ms - t0 < 1500 && b.at_ms - t0 < 1500); /* the second at about 300 */
    free(a.key);
    free(b.key);
    queue_free(q);
}

/* Many waiting keys, re-timed earlier, re-timed later, forgotten: each comes
 * out once, in due order, and the forgotten never. */
static void test_many_timers(void)
{
    struct queue *q = queue_new();
    enum { N = 3000 };
    char key[32], *k;
    int seen[N] = { 0 }, got = 0, last_due = -1;
    bool ok = true;

    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "m/%d", i);
        queue_add_after(q, key, 100000 + (i * 7919) % N);
    }
    T_EQ_INT(queue_delayed(q), N);
    for (int i = 0; i < N; i += 3) { /* every third: earlier, in reverse order of i */
        snprintf(key, sizeof(key), "m/%d", i);
        queue_add_after(q, key, 20 + 20 * ((N - i) / 300)); /* 10 steps, 20 ms apart */
        queue_add_after(q, key, 90000); /* later: ignored */
    }
    for (int i = 1; i < N; i += 3) { /* and the next ones forgotten */
        snprintf(key, sizeof(key), "m/%d", i);
        queue_forget(q, key);
    }
    T_EQ_INT(queue_delayed(q), N - (N + 1) / 3);
    while (got < N / 3 && queue_get(q, &k)) {
        int i = atoi(k + 2), due = 20 + 20 * ((N - i) / 300);
        ok = ok && i % 3 == 0 && !seen[i] && due >= last_due;
        seen[i] = 1;
        last_due = due;
        got++;
        queue_done(q, k);
        free(k);
    }
    T_CHECK(ok);
    T_EQ_INT(got, N / 3);
    T_EQ_INT(queue_delayed(q), N / 3); /* the i % 3 == 2 ones, still far off */
    T_EQ_INT(queue_len(q), 0);
    queue_free(q);
}

/* Waiting keys of every length a Secret's key can have (a short one is kept in its
 * timer, a longer one in a slab slot of its size): forgotten, made ready, or left for
 * queue_free, each released once and with the size it was made with (a wrong size
 * aborts; under ASan, a leak fails). */
static void test_timer_key_sizes(void)
{
    struct queue *q = queue_new();
    enum { N = 317 }; /* "ns/name" lengths 1 .. 316 */
    char key[N + 1], *k;
    int ready = 0;

    for (int round = 0; round < 2; round++) {
        for (int len = 1; len < N; len++) {
            memset(key, 'a' + len % 26, (size_t)len);
            key[len] = '\0';
            queue_add_after(q, key, 3600000);
        }
        T_EQ_INT(queue_delayed(q), N - 1);
        for (int len = 1; len < N; len++) {
            memset(key, 'a' + len % 26, (size_t)len);
            key[len] = '\0';
            if (len % 3 == 0)
                queue_forget(q, key);
            else if (len % 3 == 1 && queue_ensure(q, key))
                ready++;
        }
        T_EQ_INT(queue_delayed(q), N - 1 - (N - 1) / 3 - (N + 1) / 3);
        while (queue_len(q) && queue_get(q, &k)) {
            queue_done(q, k);
            free(k);
        }
    }
    T_EQ_INT(ready, 2 * ((N + 1) / 3));
    queue_free(q); /* the ones still waiting */
}

/* queue_ensure: what a resync does with a key past its planned time. */
static void test_ensure(void)
{
    struct queue *q = queue_new();
    char *k;

    T_CHECK(queue_ensure(q, "c/lost")); /* held nowhere: added, and said so */
    T_EQ_INT(queue_len(q), 1);
    T_CHECK(!queue_ensure(q, "c/lost")); /* ready: left alone */
    T_EQ_INT(queue_len(q), 1);
    T_CHECK(queue_get(q, &k));
    T_CHECK(!queue_ensure(q, "c/lost")); /* in progress: left alone, not marked again */
    queue_done(q, k);
    T_EQ_INT(queue_len(q), 0);
    free(k);
    queue_add_after(q, "c/later", 3600000);
    T_CHECK(queue_ensure(q, "c/later")); /* scheduled past its planned time: made ready */
    T_EQ_INT(queue_delayed(q), 0);
    T_EQ_INT(queue_len(q), 1);
    T_CHECK(queue_get(q, &k));
    T_EQ_STR(k, "c/later");
    queue_done(q, k);
    free(k);
    queue_add_after(q, "c/soon", 1);
    usleep(5000);
    T_CHECK(!queue_ensure(q, "c/soon")); /* its time has come: the next get fires it */
    T_CHECK(queue_get(q, &k));
    T_EQ_STR(k, "c/soon");
    queue_done(q, k);
    free(k);
    queue_shutdown(q);
    T_CHECK(!queue_ensure(q, "c/after"));
    queue_free(q);
}

/* Per-key backoff: counted per failure, kept until reset or forgotten, and the
 * key comes back at the time given. */
static void test_rate_limited(void)
{
    struct queue *q = queue_new();
    struct queue_backoff b;
    int64_t now = clock_mono_ms();
    char *k;

    T_CHECK(!queue_backoff(q, "a/1", &b));
    T_EQ_INT(b.failures, 0);
    T_EQ_STR(b.tag, "");
    queue_add_rate_limited(q, "a/1", now + 60000, "0123456789abcdef-cut");
    queue_add_rate_limited(q, "a/1", now + 50, "fedcba9876543210");
    T_CHECK(queue_backoff(q, "a/1", &b));
    T_EQ_INT(b.failures, 2);
    T_EQ_INT(b.not_before_ms, now + 50);
    T_EQ_STR(b.tag, "fedcba9876543210");
    T_CHECK(!queue_backoff(q, "a/2", &b)); /* one key's backoff, not the queue's */
    T_CHECK(queue_backoff(q, "a/1", &b));
    T_EQ_INT(queue_delayed(q), 1); /* one timer, the earlier time */
    T_CHECK(queue_get(q, &k));     /* after about 50 ms */
    T_EQ_STR(k, "a/1");
    T_CHECK(clock_mono_ms() >= now + 50);
    queue_done(q, k);
    free(k);
    T_CHECK(queue_backoff(q, "a/1", &b)); /* handing it out does not end the backoff */
    queue_backoff_reset(q, "a/1");
    T_CHECK(!queue_backoff(q, "a/1", &b));
    T_EQ_INT(b.failures, 0); /* zeroed when there is none */
    queue_add_rate_limited(q, "a/2", now, NULL);
    T_CHECK(queue_backoff(q, "a/2", &b));
    T_EQ_STR(b.tag, "");
    queue_forget(q, "a/2"); /* a deleted Secret: its backoff goes too */
    T_CHECK(!queue_backoff(q, "a/2", &b));
    T_EQ_INT(queue_len(q) + queue_delayed(q), 0);
    queue_free(q);
}

int main(void)
{
    T_RUN(test_dedup_and_order);
    T_RUN(test_delay_earliest_wins);
    T_RUN(test_forget);
    T_RUN(test_shutdown_wakes);
    T_RUN(test_ready_wakes_timer_waiter);
    T_RUN(test_timer_role_passes);
    T_RUN(test_many_timers);
    T_RUN(test_timer_key_sizes);
    T_RUN(test_ensure);
    T_RUN(test_rate_limited);
    return t_done();
}
