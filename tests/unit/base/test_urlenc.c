#include "t.h"

#include "base/err.h"
#include "base/urlenc.h"

static void test_encode(void)
{
    struct buf b = BUF_INIT(256);

    T_RC(url_encode(&b, "group name@contoso.com", 22), 0);
    T_EQ_STR(buf_str(&b), "group%20name%40contoso.com");
    buf_reset(&b);
    T_RC(url_encode(&b, "a:b/c?d#e%f+g~h_i-j.k", 21), 0);
    T_EQ_STR(buf_str(&b), "a%3Ab%2Fc%3Fd%23e%25f%2Bg~h_i-j.k");
    buf_reset(&b);
    T_RC(url_encode(&b, "\xc3\xa9\x01", 3), 0);
    T_EQ_STR(buf_str(&b), "%C3%A9%01");
    buf_release(&b);
}

static void test_roundtrip_all_bytes(void)
{
    char all[256];
    struct buf e = BUF_INIT(1024), d = BUF_INIT(1024);

    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    T_RC(url_encode(&e, all, 256), 0);
    T_RC(url_decode(&d, e.ptr, e.len), 0);
    T_EQ_INT(d.len, 256);
    T_CHECK(memcmp(d.ptr, all, 256) == 0);
    buf_release(&e);
    buf_release(&d);
}

static void test_decode_errors(void)
{
    struct buf b = BUF_INIT(64);

    T_RC(url_decode(&b, "%4", 2), ERR_PARSE);
    T_RC(url_decode(&b, "%zz", 3), ERR_PARSE);
    T_RC(url_decode(&b, "abc%", 4), ERR_PARSE);
    buf_release(&b);
}

static void test_sb(void)
{
    struct sbuf *s = sbuf_new(64);

    T_RC(url_encode_sb(s, "p@ss", 4), 0);
    T_EQ_STR(sbuf_expose(s), "p%40ss");
    sbuf_free(s);
}

/* Runs of unreserved bytes are appended whole: the secret-buffer and plain encoders agree
 * byte for byte, at the start, middle and end of the input, and a cap is honoured. */
static void test_runs_and_caps(void)
{
    static const char *const cases[] = { "", "abc", "@", "@@", "abc@", "@abc", "a@b@c",
                                         "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_~/+=" };
    char all[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b = BUF_INIT(1024);
        struct sbuf *s = sbuf_new(1024);
        T_RC(url_encode(&b, cases[i], strlen(cases[i])), 0);
        T_RC(url_encode_sb(s, cases[i], strlen(cases[i])), 0);
        T_EQ_INT(sbuf_len(s), b.len);
        T_CHECK(memcmp(sbuf_expose(s), buf_str(&b), b.len) == 0);
        buf_release(&b);
        sbuf_free(s);
    }
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    {
        struct buf b = BUF_INIT(1024);
        struct sbuf *s = sbuf_new(1024);
        T_RC(url_encode(&b, all, 256), 0);
        T_RC(url_encode_sb(s, all, 256), 0);
        T_EQ_INT(sbuf_len(s), b.len);
        T_CHECK(memcmp(sbuf_expose(s), buf_str(&b), b.len) == 0);
        buf_release(&b);
        sbuf_free(s);
    }
    {
        struct buf b = BUF_INIT(8);
        struct sbuf *s = sbuf_new(8);
        T_RC(url_encode(&b, "abcdefghijkl", 12), ERR_TOOBIG);
        T_RC(url_encode_sb(s, "abcd@@", 6), ERR_TOOBIG);
        buf_release(&b);
        sbuf_free(s);
    }
}

int main(void)
{
    T_RUN(test_runs_and_caps);
    T_RUN(test_encode);
    T_RUN(test_roundtrip_all_bytes);
    T_RUN(test_decode_errors);
    T_RUN(test_sb);
    return t_done();
}
