#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sbuf.h"

/* The link wraps free() (-Wl,--wrap=free, see the Makefile): when the watched pointer is
 * freed, its first watch_len bytes must already be zero. */
void __real_free(void *p);
void __wrap_free(void *p);

static const void *volatile watch;
static volatile size_t watch_len;
static volatile int watch_freed, watch_dirty; /* volatile: free() is assumed not to touch them */

void __wrap_free(void *p)
{
    if (p && p == watch) {
        const unsigned char *b = p;
        watch_freed++;
        for (size_t i = 0; i < watch_len; i++)
            watch_dirty += b[i] != 0;
        watch = NULL;
    }
    __real_free(p);
}

static void watch_ptr(const void *p, size_t len)
{
    watch = p;
    watch_len = len;
    watch_freed = watch_dirty = 0;
}

static void test_wiped_when_freed(void)
{
    struct sbuf *s = sbuf_from("eyJhbGciOi.not-a-real-token.sig", 31);

    watch_ptr(sbuf_expose(s), sbuf_len(s) + 1);
    sbuf_free(s);
    T_EQ_INT(watch_freed, 1);
    T_EQ_INT(watch_dirty, 0);
}

static void test_wiped_when_grown_and_cleared(void)
{
    struct sbuf *s = sbuf_new(4096);
    char part[60];

    memset(part, 'x', sizeof(part));
    T_RC(sbuf_add(s, part, sizeof(part)), 0);
    /* Growing copies to a new block: the old one is wiped before it is freed. */
    watch_ptr(sbuf_expose(s), sizeof(part));
    T_RC(sbuf_add(s, part, sizeof(part)), 0);
    T_EQ_INT(watch_freed, 1);
    T_EQ_INT(watch_dirty, 0);
    /* Clearing wipes in place. */
    sbuf_clear(s);
    for (size_t i = 0; i < 2 * sizeof(part); i++)
        T_EQ_INT(sbuf_expose(s)[i], 0);
    sbuf_free(s);
}

/* The watch itself sees bytes left behind: a plain buffer freed unwiped is caught. */
static void test_watch_sees_unwiped(void)
{
    char *p = xmalloc(32);

    memset(p, 'k', 32);
    T_EQ_INT(p[31], 'k'); /* read back, so the stores are not dropped as dead */
    watch_ptr(p, 32);
    free(p);
    T_EQ_INT(watch_freed, 1);
    /* The compiler may drop part of a memset before free() as dead (why OPENSSL_cleanse
     * exists): some bytes, not necessarily all 32, are still there. */
    T_CHECK(watch_dirty > 0);
}

static void test_grow_and_cap(void)
{
    struct sbuf *s = sbuf_new(200);
    char big[150];

    memset(big, 'a', sizeof(big));
    T_RC(sbuf_add(s, big, sizeof(big)), 0);
    T_EQ_INT(sbuf_len(s), 150);
    T_RC(sbuf_add(s, big, 51), ERR_TOOBIG);
    T_RC(sbuf_add(s, big, 50), 0);
    T_EQ_INT(sbuf_len(s), 200);
    T_EQ_INT(sbuf_expose(s)[200], '\0');
    sbuf_free(s);
}

static void test_eq(void)
{
    struct sbuf *a = sbuf_from("token", 5), *b = sbuf_from("token", 5), *c = sbuf_from("tokem", 5);
    struct sbuf *d = sbuf_from("tok", 3);

    T_CHECK(sbuf_eq(a, b));
    T_CHECK(!sbuf_eq(a, c));
    T_CHECK(!sbuf_eq(a, d));
    T_CHECK(!sbuf_eq(a, NULL));
    T_CHECK(sbuf_eq(NULL, NULL));
    sbuf_free(a);
    sbuf_free(b);
    sbuf_free(c);
    sbuf_free(d);
}

static void test_read_file(void)
{
    char path[] = "/tmp/pgtr-sbuf-XXXXXX";
    int fd = mkstemp(path);
    struct sbuf *s = NULL;

    T_CHECK(fd >= 0);
    T_CHECK(write(fd, "abc.def.ghi\n", 12) == 12);
    close(fd);
    T_RC(sbuf_read_file(&s, path, 100), 0);
    T_EQ_INT(sbuf_len(s), 12);
    sbuf_rtrim(s);
    T_EQ_STR(sbuf_expose(s), "abc.def.ghi");
    sbuf_free(s);
    s = NULL;
    T_RC(sbuf_read_file(&s, path, 5), ERR_TOOBIG);
    T_CHECK(s == NULL);
    T_CHECK(strstr(err_msg(), path) != NULL);
    unlink(path);
    T_RC(sbuf_read_file(&s, path, 100), ERR_IO);
}


int main(void)
{
    T_RUN(test_wiped_when_freed);
    T_RUN(test_wiped_when_grown_and_cleared);
    T_RUN(test_watch_sees_unwiped);
    T_RUN(test_grow_and_cap);
    T_RUN(test_eq);
    T_RUN(test_read_file);
    return t_done();
}
