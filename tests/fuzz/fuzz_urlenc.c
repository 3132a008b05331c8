/* Percent-encoding (base/urlenc.h): url_decode of any bytes, and the roundtrips
 * url_decode(url_encode(x)) == x (also through url_encode_sb) and, for a string that decodes,
 * url_decode(url_encode(url_decode(s))) == url_decode(s). */
#include "base/buf.h"
#include "base/err.h"
#include "base/sbuf.h"
#include "base/urlenc.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static void roundtrip(const char *s, size_t n)
{
    struct buf enc = BUF_INIT(SIZE_MAX), dec = BUF_INIT(SIZE_MAX);
    struct sbuf *enc_sb = sbuf_new(SIZE_MAX);

    FUZZ_CHECK(url_encode(&enc, s, n) == 0);
    FUZZ_CHECK(url_encode_sb(enc_sb, s, n) == 0);
    FUZZ_CHECK(sbuf_len(enc_sb) == enc.len &&
               memcmp(sbuf_expose(enc_sb), buf_str(&enc), enc.len) == 0);
    /* Only unreserved characters and %XX come out. */
    for (size_t i = 0; i < enc.len; i++)
        FUZZ_CHECK(unreserved((unsigned char)enc.ptr[i]) || enc.ptr[i] == '%' ||
                   (i >= 1 && enc.ptr[i - 1] == '%') || (i >= 2 && enc.ptr[i - 2] == '%'));
    FUZZ_CHECK(url_decode(&dec, buf_str(&enc), enc.len) == 0);
    FUZZ_CHECK(dec.len == n && memcmp(buf_str(&dec), s, n) == 0);
    sbuf_free(enc_sb);
    buf_release(&dec);
    buf_release(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct buf dec = BUF_INIT(SIZE_MAX), small = BUF_INIT(size / 2);
    int rc = url_decode(&dec, s, size);

    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (rc == 0) {
        FUZZ_CHECK(dec.len <= size);
        roundtrip(buf_str(&dec), dec.len);
    }
    /* A capped buffer: ERR_TOOBIG, never an overrun. */
    rc = url_decode(&small, s, size);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE || rc == ERR_TOOBIG);
    FUZZ_CHECK(small.len <= small.max);
    roundtrip(s, size);
    buf_release(&small);
    buf_release(&dec);
    return 0;
}
