#include "base/sink.h"

#include "base/banned.h"

static int add_buf(void *to, const void *data, size_t len)
{
    return buf_add(to, data, len);
}

static int add_sbuf(void *to, const void *data, size_t len)
{
    return sbuf_add(to, data, len);
}

struct sink sink_buf(struct buf *b)
{
    return (struct sink){ add_buf, b };
}

struct sink sink_sbuf(struct sbuf *s)
{
    return (struct sink){ add_sbuf, s };
}
