/* The resync: every cached Secret whose planned time has passed (the store keeps one
 * beside each entry, kube/store.h) is made sure to be in the work queue. Informers
 * resync their whole cache for the same reason, so that a key lost on the way (a bug in
 * a queue, a watch, a handler) is looked at again; here only the keys past their time
 * are, so an idle controller pays one scan of the table per period. */
#ifndef PGTR_RESYNC_H
#define PGTR_RESYNC_H

#include <stddef.h>
#include <stdint.h>

#include "kube/queue.h"
#include "kube/store.h"

struct resync_result {
    size_t due;  /* entries planned at or before now */
    size_t lost; /* of them, in no queue (queue_ensure said so): queued again */
};

/* Calls queue_ensure for every entry of st planned at or before now_ms, and on_lost
 * (may be NULL) for each one the queue did not hold. on_lost runs under the store's
 * lock: it must not call the store (logging is fine). */
void resync_run(struct resync_result *out, struct store *st, struct queue *q, int64_t now_ms,
                void (*on_lost)(void *ctx, const char *key), void *ctx);

#endif
