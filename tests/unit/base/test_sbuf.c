#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/err.h"
#include "base/sbuf.h"

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

static void test_fingerprint(void)
{
    struct sbuf *s = sbuf_from("abc", 3);
    char fp[17];

    sbuf_fingerprint(fp, s);
    T_EQ_STR(fp, "ba7816bf8f01cfea"); /* SHA-256("abc") starts so */
    sbuf_free(s);
}

int main(void)
{
    T_RUN(test_grow_and_cap);
    T_RUN(test_eq);
    T_RUN(test_read_file);
    T_RUN(test_fingerprint);
    return t_done();
}
