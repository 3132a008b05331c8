#include "kube/queue.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/strmap.h"
#include "base/banned.h"

struct timer {
    int64_t due_ms;
    char *key;
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char **ready;           /* ring buffer */
    size_t head, count, cap;
    struct strmap queued;   /* keys in ready */
    struct strmap active;   /* keys being worked on */
    struct strmap dirty;    /* active keys added again */
    struct timer *heap;     /* min-heap by due_ms */
    size_t nheap, capheap;
    struct strmap waiting;  /* key -> earliest due, in the pointer itself (see due_of) */
    bool shutdown;
};

struct queue *queue_new(void)
{
    struct queue *q = xcalloc(1, sizeof(*q));
    pthread_condattr_t ca;

    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    return q;
}

void queue_free(struct queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->count; i++)
        free(q->ready[(q->head + i) % q->cap]);
    free(q->ready);
    for (size_t i = 0; i < q->nheap; i++)
        free(q->heap[i].key);
    free(q->heap);
    strmap_clear(&q->queued, NULL);
    strmap_clear(&q->active, NULL);
    strmap_clear(&q->dirty, NULL);
    strmap_clear(&q->waiting, NULL);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static void push_ready(struct queue *q, const char *key)
{
    if (strmap_has(&q->queued, key))
        return;
    if (strmap_has(&q->active, key)) {
        strmap_put(&q->dirty, key, NULL);
        return;
    }
    if (q->count == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        char **n = xcalloc(ncap, sizeof(*n));
        for (size_t i = 0; i < q->count; i++)
            n[i] = q->ready[(q->head + i) % q->cap];
        free(q->ready);
        q->ready = n;
        q->cap = ncap;
        q->head = 0;
    }
    q->ready[(q->head + q->count) % q->cap] = xstrdup(key);
    q->count++;
    strmap_put(&q->queued, key, NULL);
    pthread_cond_signal(&q->cond);
}

void queue_add(struct queue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    if (!q->shutdown)
        push_ready(q, key);
    pthread_mutex_unlock(&q->mu);
}

static void heap_up(struct queue *q, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q->heap[p].due_ms <= q->heap[i].due_ms)
            break;
        struct timer t = q->heap[p];
        q->heap[p] = q->heap[i];
        q->heap[i] = t;
        i = p;
    }
}

static void heap_down(struct queue *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->nheap && q->heap[l].due_ms < q->heap[m].due_ms)
            m = l;
        if (r < q->nheap && q->heap[r].due_ms < q->heap[m].due_ms)
            m = r;
        if (m == i)
            return;
        struct timer t = q->heap[m];
        q->heap[m] = q->heap[i];
        q->heap[i] = t;
        i = m;
    }
}

/* A due time kept in the map's value pointer, not in an allocation of its own
 * (one per waiting Secret); a monotonic time in ms fits any 64-bit pointer. */
static void *as_value(int64_t due)
{
    /* NOLINTNEXTLINE(performance-no-int-to-ptr): never dereferenced, only read back */
    return (void *)(uintptr_t)due;
}

/* true and *due when key is waiting. */
static bool due_of(const struct queue *q, const char *key, int64_t *due)
{
    if (!strmap_has(&q->waiting, key))
        return false;
    *due = (int64_t)(uintptr_t)strmap_get(&q->waiting, key);
    return true;
}

void queue_add_after(struct queue *q, const char *key, int64_t delay_ms)
{
    int64_t due = clock_mono_ms() + (delay_ms > 0 ? delay_ms : 0), cur;

    if (delay_ms <= 0) {
        queue_add(q, key);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (q->shutdown)
        goto out;
    if (due_of(q, key, &cur) && cur <= due)
        goto out; /* an earlier wake-up is already set */
    strmap_put(&q->waiting, key, as_value(due));
    if (q->nheap == q->capheap)
        XGROW(q->heap, q->capheap, q->nheap + 1);
    q->heap[q->nheap].due_ms = due;
    q->heap[q->nheap].key = xstrdup(key);
    heap_up(q, q->nheap++);
    pthread_cond_broadcast(&q->cond); /* the earliest timer may have changed */
out:
    pthread_mutex_unlock(&q->mu);
}

/* Moves due timers to ready. Stale heap entries (a key re-timed earlier or
 * forgotten) are recognised by their due time not matching "waiting". */
static void fire_timers(struct queue *q, int64_t now)
{
    while (q->nheap && q->heap[0].due_ms <= now) {
        struct timer t = q->heap[0];
        int64_t cur;
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): t.key is live; only popped keys are freed */
        bool waiting = due_of(q, t.key, &cur);
        q->heap[0] = q->heap[--q->nheap];
        heap_down(q, 0);
        if (waiting && cur == t.due_ms) {
            strmap_del(&q->waiting, t.key);
            push_ready(q, t.key);
        }
        free(t.key);
    }
}

void queue_forget(struct queue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    strmap_del(&q->waiting, key);
    strmap_del(&q->dirty, key);
    strmap_del(&q->queued, key);
    for (size_t i = 0; i < q->count; i++) {
        char **slot = &q->ready[(q->head + i) % q->cap];
        if (*slot && !strcmp(*slot, key)) {
            free(*slot);
            *slot = NULL; /* skipped by queue_get */
        }
    }
    pthread_mutex_unlock(&q->mu);
}

bool queue_get(struct queue *q, char **out)
{
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->shutdown) {
            pthread_mutex_unlock(&q->mu);
            return false;
        }
        fire_timers(q, clock_mono_ms());
        while (q->count) {
            char *key = q->ready[q->head];
            q->head = (q->head + 1) % q->cap;
            q->count--;
            if (!key)
                continue; /* forgotten */
            strmap_del(&q->queued, key);
            strmap_put(&q->active, key, NULL);
            pthread_mutex_unlock(&q->mu);
            *out = key;
            return true;
        }
        if (q->nheap) {
            int64_t due = q->heap[0].due_ms;
            struct timespec ts = { (time_t)(due / 1000), (long)(due % 1000) * 1000000 };
            pthread_cond_timedwait(&q->cond, &q->mu, &ts);
        } else {
            pthread_cond_wait(&q->cond, &q->mu);
        }
    }
}

void queue_done(struct queue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    strmap_del(&q->active, key);
    if (strmap_has(&q->dirty, key)) {
        strmap_del(&q->dirty, key);
        if (!q->shutdown)
            push_ready(q, key);
    }
    pthread_mutex_unlock(&q->mu);
}

void queue_shutdown(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

size_t queue_len(struct queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->queued.len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t queue_delayed(struct queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->waiting.len;
    pthread_mutex_unlock(&q->mu);
    return n;
}
