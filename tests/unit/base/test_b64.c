#include "t.h"

#include "base/b64.h"
#include "base/err.h"

static void test_vectors(void)
{
    static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };

    for (int i = 0; i < 7; i++) {
        struct buf b = BUF_INIT(64);
        unsigned char out[16];
        size_t n = 0;
        T_RC(b64_encode(&b, plain[i], strlen(plain[i])), 0);
        T_EQ_STR(buf_str(&b), enc[i]);
        T_RC(b64_decode(out, &n, enc[i], strlen(enc[i]), false), 0);
        T_EQ_INT(n, strlen(plain[i]));
        T_CHECK(memcmp(out, plain[i], n) == 0);
        buf_release(&b);
    }
}

static void test_url_and_errors(void)
{
    unsigned char out[16];
    size_t n;

    T_RC(b64_decode(out, &n, "-_8", 3, true), 0); /* 0xfb 0xff */
    T_EQ_INT(n, 2);
    T_EQ_INT(out[0], 0xfb);
    T_EQ_INT(out[1], 0xff);
    T_RC(b64_decode(out, &n, "-_8", 3, false), ERR_PARSE);
    T_RC(b64_decode(out, &n, "Zg=", 3, false), ERR_PARSE);
    T_RC(b64_decode(out, &n, "Z", 1, false), ERR_PARSE);
    T_RC(b64_decode(out, &n, "Zh==", 4, false), ERR_PARSE); /* non-canonical */
    T_RC(b64_decode(out, &n, "Zm 9v", 5, false), ERR_PARSE);
}

static void test_sb(void)
{
    struct sbuf *s = NULL, *e = sbuf_new(100);

    T_RC(b64_decode_sb(&s, "c2VjcmV0", 8), 0);
    T_EQ_STR(sbuf_expose(s), "secret");
    T_RC(b64_encode_sb(e, sbuf_expose(s), sbuf_len(s)), 0);
    T_EQ_STR(sbuf_expose(e), "c2VjcmV0");
    sbuf_free(s);
    sbuf_free(e);
}

/* b64_canonical agrees with the encoder on every length, and refuses what a
 * decoder would (or would take only without its padding). */
static void test_canonical(void)
{
    unsigned char bytes[64];
    const char *bad[] = { "YQ", "YWI", "Y===", "YQ=", "YR==", "YWJ=", "Y-==", "Y_==", "YQ==\n",
                          " YQ==", "YQ=a", "=YQ=", NULL };

    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(bytes); n++) {
        struct buf b = BUF_INIT(1024);
        T_RC(b64_encode(&b, bytes, n), 0);
        T_CHECK(b64_canonical(b.ptr ? b.ptr : "", b.len));
        buf_release(&b);
    }
    for (const char **p = bad; *p; p++)
        if (b64_canonical(*p, strlen(*p)))
            t_fail(__FILE__, __LINE__, "b64_canonical(\"%s\") is true", *p);
}

int main(void)
{
    T_RUN(test_vectors);
    T_RUN(test_url_and_errors);
    T_RUN(test_sb);
    T_RUN(test_canonical);
    return t_done();
}
