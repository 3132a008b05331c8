/* A sink: where an encoder appends its output, a plain buffer (base/buf.h) or a
 * secret one (base/sbuf.h), so that each encoder is written once:
 *
 *   int hex_encode(struct sink k, const void *data, size_t len);
 *   hex_encode(sink_buf(&b), p, n);    hex_encode(sink_sbuf(s), p, n);
 *
 * An encoder that may see secret bytes wipes its own temporaries whatever the
 * sink: it cannot know which one it writes to. */
#ifndef PGTR_SINK_H
#define PGTR_SINK_H

#include <stddef.h>

#include "base/buf.h"
#include "base/sbuf.h"

struct sink {
    /* Appends data[0..len) to `to`: 0, or what the buffer's add returns (ERR_TOOBIG). */
    int (*add)(void *to, const void *data, size_t len);
    void *to;
};

struct sink sink_buf(struct buf *b);
struct sink sink_sbuf(struct sbuf *s);

static inline int sink_add(struct sink k, const void *data, size_t len)
{
    return k.add(k.to, data, len);
}

#endif
