#include "kube/queue.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/mem.h"
#include "base/oatab.h"
#include "base/slab.h"
#include "base/strmap.h"
#include "base/banned.h"

/* A waiting key lives as long as its timer (until the next rotation: most of the
 * time, for every Secret), so it is not malloc'd, where it would pin the pages of the
 * short-lived garbage allocated around it: a short key is kept in the timer itself
 * (in the heap array: no allocation of its own), a longer one in a slab (whose
 * smallest slot, 128 bytes, would be most of the cost of a short key). The ready
 * ring's keys stay malloc'd: they are short-lived and queue_get hands them to the
 * caller, who frees them. */
#define TIMER_KEY_SHORT 32 /* bytes, the NUL included: a timer is 48 bytes */

struct timer {
    int64_t due_ms;
    char *long_key;                 /* from timer_keys, or NULL: the key is short_key */
    char short_key[TIMER_KEY_SHORT];
};

static struct slab timer_keys = SLAB_INIT;

static const char *timer_key(const struct timer *t)
{
    return t->long_key ? t->long_key : t->short_key;
}

static void timer_set_key(struct timer *t, const char *key)
{
    size_t size = strlen(key) + 1;

    t->long_key = NULL;
    if (size <= sizeof(t->short_key))
        memcpy(t->short_key, key, size);
    else
        t->long_key = memcpy(slab_alloc(&timer_keys, size), key, size);
}

static void timer_release(struct timer *t)
{
    if (t->long_key)
        slab_free(&timer_keys, t->long_key, strlen(t->long_key) + 1);
    t->long_key = NULL;
}

struct queue {
    pthread_mutex_t mu;
    /* Idle workers wait on cond for ready keys; one of them at most (the timer
     * waiter) waits on timer_cond until the earliest timer is due, so that a
     * timer wakes one thread, not every idle worker. */
    pthread_cond_t cond;
    pthread_cond_t timer_cond;
    bool timer_waiter;      /* a worker waits on timer_cond */
    size_t sleepers;        /* workers waiting on cond */
    char **ready;           /* ring buffer */
    size_t head, count, cap;
    struct strmap queued;   /* keys in ready */
    struct strmap active;   /* keys being worked on */
    struct strmap dirty;    /* active keys added again */
    struct timer *heap;     /* min-heap by due_ms: the waiting keys, each once */
    size_t nheap, capheap;
    /* Where each waiting key is in the heap: a table (base/oatab.h) of heap
     * positions + 1, read through the heap's own copy of the key, so a waiting
     * Secret costs one timer (with its key, when short) and a slot of table. */
    struct oatab pos;
    struct strmap backoff;  /* key -> struct queue_backoff: keys failing in a row */
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
    pthread_cond_init(&q->timer_cond, &ca);
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
        timer_release(&q->heap[i]);
    free(q->heap);
    oatab_release(&q->pos);
    strmap_clear(&q->queued, NULL);
    strmap_clear(&q->active, NULL);
    strmap_clear(&q->dirty, NULL);
    strmap_clear(&q->backoff, free);
    pthread_cond_destroy(&q->cond);
    pthread_cond_destroy(&q->timer_cond);
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
    /* An idle worker takes it; the timer waiter when it is the only one. */
    pthread_cond_signal(q->sleepers || !q->timer_waiter ? &q->cond : &q->timer_cond);
}

void queue_add(struct queue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    if (!q->shutdown)
        push_ready(q, key);
    pthread_mutex_unlock(&q->mu);
}

static uint64_t key_hash(const void *key, void *ctx)
{
    (void)ctx;
    return hash_fold(fnv1a_str(FNV1A_INIT, key));
}

/* An entry is a heap position + 1; its key is the heap's. */
static const char *pos_key(const void *e, void *ctx)
{
    const struct queue *q = ctx;

    return timer_key(&q->heap[(uintptr_t)e - 1]);
}

static uint64_t pos_hash(const void *e, void *ctx)
{
    return key_hash(pos_key(e, ctx), ctx);
}

static bool pos_matches(const void *e, const void *key, void *ctx)
{
    return !strcmp(pos_key(e, ctx), key);
}

static const struct oatab_type pos_type = { key_hash, pos_hash, pos_matches };

/* The table entry of heap position i: i + 1 as a pointer-sized value (never NULL, never
 * dereferenced: the table only hands it back to pos_key). */
static void *pos_entry(size_t i)
{
    /* NOLINTNEXTLINE(performance-no-int-to-ptr): a position, not an address */
    return (void *)(uintptr_t)(i + 1);
}

/* key's position in the heap, or -1 when it is not waiting. */
static long pos_of(struct queue *q, const char *key)
{
    uintptr_t p = (uintptr_t)oatab_get(&q->pos, &pos_type, q, key);

    return p ? (long)p - 1 : -1;
}

/* The table slot of heap[i]'s key (which is in the table). */
static size_t pos_slot(struct queue *q, size_t i)
{
    return oatab_slot(&q->pos, &pos_type, q, timer_key(&q->heap[i]));
}

static void heap_swap(struct queue *q, size_t i, size_t j)
{
    /* The table finds keys through the heap: look both up before moving them. */
    size_t si = pos_slot(q, i), sj = pos_slot(q, j);
    struct timer t = q->heap[i];

    q->heap[i] = q->heap[j];
    q->heap[j] = t;
    q->pos.slots[si] = pos_entry(j);
    q->pos.slots[sj] = pos_entry(i);
}

static void heap_up(struct queue *q, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q->heap[p].due_ms <= q->heap[i].due_ms)
            break;
        heap_swap(q, p, i);
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
        heap_swap(q, m, i);
        i = m;
    }
}

/* Takes heap[i] out of the heap and the table into *out (the caller's: release it
 * with timer_release). */
static void heap_remove(struct timer *out, struct queue *q, size_t i)
{
    size_t last = q->nheap - 1;

    (void)oatab_del(&q->pos, &pos_type, q, timer_key(&q->heap[i]));
    *out = q->heap[i];
    if (i != last) {
        /* heap[last]'s entry (last + 1) is found through heap[last], still in place */
        size_t slot = pos_slot(q, last);
        q->heap[i] = q->heap[last];
        q->pos.slots[slot] = pos_entry(i);
    }
    q->nheap--;
    if (i != last) {
        heap_down(q, i);
        heap_up(q, i);
    }
}

/* Takes heap[i] out and releases it. */
static void heap_drop(struct queue *q, size_t i)
{
    struct timer t;

    heap_remove(&t, q, i);
    timer_release(&t);
}

void queue_add_after(struct queue *q, const char *key, int64_t delay_ms)
{
    if (delay_ms <= 0)
        queue_add(q, key);
    else
        queue_add_at(q, key, clock_mono_ms() + delay_ms);
}

void queue_add_at(struct queue *q, const char *key, int64_t due)
{
    long at;

    if (due <= clock_mono_ms()) {
        queue_add(q, key);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (q->shutdown)
        goto out;
    if ((at = pos_of(q, key)) >= 0) {
        if (q->heap[at].due_ms <= due)
            goto out; /* an earlier wake-up is already set */
        q->heap[at].due_ms = due;
        heap_up(q, (size_t)at);
    } else {
        XGROW(q->heap, q->capheap, q->nheap + 1);
        q->heap[q->nheap].due_ms = due;
        timer_set_key(&q->heap[q->nheap], key);
        oatab_put(&q->pos, &pos_type, q, pos_entry(q->nheap));
        heap_up(q, q->nheap++);
    }
    if (q->heap[0].due_ms == due) /* the earliest timer changed: whoever times it */
        pthread_cond_signal(q->timer_waiter ? &q->timer_cond : &q->cond);
out:
    pthread_mutex_unlock(&q->mu);
}

/* Moves due timers to ready. */
static void fire_timers(struct queue *q, int64_t now)
{
    while (q->nheap && q->heap[0].due_ms <= now) {
        struct timer t;

        heap_remove(&t, q, 0);
        push_ready(q, timer_key(&t));
        timer_release(&t);
    }
}

bool queue_ensure(struct queue *q, const char *key)
{
    bool lost = false;
    long at;

    pthread_mutex_lock(&q->mu);
    if (q->shutdown || strmap_has(&q->queued, key) || strmap_has(&q->active, key))
        goto out;
    if ((at = pos_of(q, key)) >= 0) {
        if (q->heap[at].due_ms <= clock_mono_ms())
            goto out; /* the next queue_get fires it */
        heap_drop(q, (size_t)at);
    }
    lost = true;
    push_ready(q, key);
out:
    pthread_mutex_unlock(&q->mu);
    return lost;
}

void queue_forget(struct queue *q, const char *key)
{
    long at;

    pthread_mutex_lock(&q->mu);
    if ((at = pos_of(q, key)) >= 0)
        heap_drop(q, (size_t)at);
    strmap_del(&q->dirty, key);
    strmap_del(&q->queued, key);
    free(strmap_del(&q->backoff, key));
    for (size_t i = 0; i < q->count; i++) {
        char **slot = &q->ready[(q->head + i) % q->cap];
        if (*slot && !strcmp(*slot, key)) {
            free(*slot);
            *slot = NULL; /* skipped by queue_get */
        }
    }
    pthread_mutex_unlock(&q->mu);
}

void queue_add_rate_limited(struct queue *q, const char *key, int64_t due, const char *tag)
{
    struct queue_backoff *b;

    pthread_mutex_lock(&q->mu);
    if (q->shutdown) {
        pthread_mutex_unlock(&q->mu);
        return;
    }
    if (!(b = strmap_get(&q->backoff, key))) {
        b = xcalloc(1, sizeof(*b));
        strmap_put(&q->backoff, key, b);
    }
    b->failures++;
    b->not_before_ms = due;
    snprintf(b->tag, sizeof(b->tag), "%s", tag ? tag : "");
    pthread_mutex_unlock(&q->mu);
    queue_add_at(q, key, due);
}

bool queue_backoff(struct queue *q, const char *key, struct queue_backoff *out)
{
    const struct queue_backoff *b;

    pthread_mutex_lock(&q->mu);
    b = strmap_get(&q->backoff, key);
    if (b)
        *out = *b;
    else
        memset(out, 0, sizeof(*out));
    pthread_mutex_unlock(&q->mu);
    return b != NULL;
}

void queue_backoff_reset(struct queue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    free(strmap_del(&q->backoff, key));
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
            if (q->nheap && !q->timer_waiter && q->sleepers)
                pthread_cond_signal(&q->cond); /* someone has to time the timers */
            pthread_mutex_unlock(&q->mu);
            *out = key;
            return true;
        }
        if (q->nheap && !q->timer_waiter) {
            int64_t due = q->heap[0].due_ms;
            struct timespec ts = { (time_t)(due / 1000), (long)(due % 1000) * 1000000 };
            q->timer_waiter = true;
            pthread_cond_timedwait(&q->timer_cond, &q->mu, &ts);
            q->timer_waiter = false;
        } else {
            q->sleepers++;
            pthread_cond_wait(&q->cond, &q->mu);
            q->sleepers--;
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
    pthread_cond_broadcast(&q->timer_cond);
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
    n = q->nheap;
    pthread_mutex_unlock(&q->mu);
    return n;
}
