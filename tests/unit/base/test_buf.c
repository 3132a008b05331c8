#include "t.h"

#include <stdlib.h>

#include "base/buf.h"
#include "base/err.h"

static void test_add_and_cap(void)
{
    struct buf b = BUF_INIT(8);

    T_RC(buf_addstr(&b, "abcd"), 0);
    T_RC(buf_addf(&b, "%d", 123), 0);
    T_EQ_STR(buf_str(&b), "abcd123");
    T_RC(buf_addstr(&b, "xy"), ERR_TOOBIG);
    T_EQ_STR(buf_str(&b), "abcd123"); /* unchanged on failure */
    T_RC(buf_addch(&b, 'z'), 0);
    T_EQ_INT(b.len, 8);
    T_RC(buf_addch(&b, 'z'), ERR_TOOBIG);
    buf_release(&b);
    T_EQ_STR(buf_str(&b), "");
}

static void test_consume_detach(void)
{
    struct buf b = BUF_INIT(100);
    size_t len;
    char *p;

    buf_addstr(&b, "line1\nline2\n");
    buf_consume(&b, 6);
    T_EQ_STR(buf_str(&b), "line2\n");
    buf_consume(&b, 100);
    T_EQ_INT(b.len, 0);
    buf_addstr(&b, "kept");
    p = buf_detach(&b, &len);
    T_EQ_STR(p, "kept");
    T_EQ_INT(len, 4);
    T_EQ_INT(b.len, 0);
    free(p);
}

static void test_overflow_sizes(void)
{
    struct buf b = BUF_INIT(4);

    T_RC(buf_add(&b, "x", (size_t)-1), ERR_TOOBIG);
    T_RC(buf_addf(&b, "%s", "12345"), ERR_TOOBIG);
    T_EQ_INT(b.len, 0);
    buf_release(&b);
}

int main(void)
{
    T_RUN(test_add_and_cap);
    T_RUN(test_consume_detach);
    T_RUN(test_overflow_sizes);
    return t_done();
}
