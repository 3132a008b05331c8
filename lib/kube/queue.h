/* The work queue: it holds only "namespace/name" keys, as controller-runtime's
 * does. A key is never handed to two workers at once; a key added while it is
 * being worked on is handed out again after queue_done. A key waiting in the
 * queue is not added twice. Delayed adds keep the earliest due time.
 * Times are monotonic milliseconds. Thread-safe. */
#ifndef PGTR_QUEUE_H
#define PGTR_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct queue;

struct queue *queue_new(void);
/* Frees the queue; call after every worker has returned. */
void queue_free(struct queue *q);

void queue_add(struct queue *q, const char *key);
/* Adds key after delay_ms (negative counts as 0). */
void queue_add_after(struct queue *q, const char *key, int64_t delay_ms);
/* Adds key at due_ms (clock_mono_ms; a time passed counts as now): for a caller that
 * records the same time elsewhere (the store's planned time) and wants both to agree. */
void queue_add_at(struct queue *q, const char *key, int64_t due_ms);
/* Makes sure key will be handed out: a key ready or in progress is left as it
 * is, a scheduled one whose time has come too; a key scheduled later is made
 * ready now, and one the queue does not hold at all is added. true in those
 * last two cases: whoever planned the key for now had lost track of it. For a
 * resync that re-examines keys past their planned time. */
bool queue_ensure(struct queue *q, const char *key);
/* Forgets a key entirely (a deleted Secret): drops pending and delayed adds
 * and its backoff. */
void queue_forget(struct queue *q, const char *key);

/* Per-key backoff, as controller-runtime's rate-limited queue keeps it
 * (AddRateLimited, NumRequeues, Forget). The caller picks the delay (it knows
 * how long the Secret's current value lasts); the queue remembers how many
 * failures in a row the key has had, until when it backs off, and a tag naming
 * what failed (the spec's hash), so that a wake-up during the backoff (our own
 * status write, an unrelated change) can be told from a change that deserves a
 * new attempt at once. */
#define QUEUE_TAG_MAX 17
struct queue_backoff {
    unsigned failures;        /* in a row; 0: none */
    int64_t not_before_ms;    /* monotonic: no new attempt planned before this */
    char tag[QUEUE_TAG_MAX];  /* what failed; "" when none was given */
};

/* Counts a failure of key and adds it back at due_ms (clock_mono_ms, as
 * queue_add_at); tag (may be NULL; cut at QUEUE_TAG_MAX - 1) names what failed. */
void queue_add_rate_limited(struct queue *q, const char *key, int64_t due_ms, const char *tag);
/* key's backoff into *out (zeroed when it has none); true when it has one. */
bool queue_backoff(struct queue *q, const char *key, struct queue_backoff *out);
/* Ends key's backoff (a success, or a state no retry can fix). */
void queue_backoff_reset(struct queue *q, const char *key);

/* Blocks until a key is ready; *out is a new string (free it) and the key is
 * marked in progress. Returns false once the queue is shut down. */
bool queue_get(struct queue *q, char **out);
/* Marks key finished; if it was added meanwhile it becomes ready again. */
void queue_done(struct queue *q, const char *key);

/* Wakes every waiter; queue_get returns false from now on. */
void queue_shutdown(struct queue *q);

/* Keys ready now plus keys delayed (for metrics and tests). */
size_t queue_len(struct queue *q);
size_t queue_delayed(struct queue *q);

#endif
