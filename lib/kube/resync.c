#include "kube/resync.h"

#include "base/banned.h"

struct run {
    struct queue *q;
    size_t lost;
    void (*on_lost)(void *ctx, const char *key);
    void *ctx;
};

static void ensure(void *ctx, const char *key)
{
    struct run *r = ctx;

    if (!queue_ensure(r->q, key))
        return; /* ready, in progress or about to fire: a backlog, not a loss */
    r->lost++;
    if (r->on_lost)
        r->on_lost(r->ctx, key);
}

void resync_run(struct resync_result *out, struct store *st, struct queue *q, int64_t now_ms,
                void (*on_lost)(void *ctx, const char *key), void *ctx)
{
    struct run r = { q, 0, on_lost, ctx };

    out->due = store_each_due(st, now_ms, ensure, &r);
    out->lost = r.lost;
}
