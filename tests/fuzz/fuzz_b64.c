/* base64 (base/b64.h). The input is decoded with both alphabets into a buffer of exactly
 * B64_DECODED_MAX bytes (ASan catches an overrun), and checked:
 *   - encode then decode gives the input back (also through the secret-buffer variants);
 *   - a standard string that decodes is canonical: re-encoding it gives it back, padding aside;
 *   - the URL alphabet decodes what the standard one does, with -_ for +/. */
#include "base/b64.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/sbuf.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static size_t unpadded(const char *s, size_t n)
{
    while (n && s[n - 1] == '=')
        n--;
    return n;
}

static void decode_checks(const char *s, size_t n)
{
    size_t cap = B64_DECODED_MAX(n), got = 0, got_url = 0;
    unsigned char *dst = malloc(cap), *dst_url = malloc(cap);
    char *url = malloc(n + 1);
    struct sbuf *sb = NULL;
    int rc, rc_url, rc_sb;

    FUZZ_CHECK(dst && dst_url && url);
    rc = b64_decode(dst, &got, s, n, false);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    rc_sb = b64_decode_sb(&sb, s, n);
    FUZZ_CHECK(rc_sb == rc);
    if (rc == 0) {
        struct buf re = BUF_INIT(SIZE_MAX);
        FUZZ_CHECK(got <= cap);
        FUZZ_CHECK(sbuf_len(sb) == got && memcmp(sbuf_expose(sb), dst, got) == 0);
        FUZZ_CHECK(b64_encode(&re, dst, got) == 0);
        FUZZ_CHECK(unpadded(buf_str(&re), re.len) == unpadded(s, n));
        FUZZ_CHECK(memcmp(buf_str(&re), s, unpadded(s, n)) == 0);
        buf_release(&re);
        sbuf_free(sb);
    }
    /* The same text in the URL alphabet decodes to the same bytes. */
    for (size_t i = 0; i < n; i++) {
        static const char from[] = "+-/_", to[] = "-+_/";
        const char *at = s[i] ? strchr(from, s[i]) : NULL;
        url[i] = at ? to[at - from] : s[i];
    }
    rc_url = b64_decode(dst_url, &got_url, url, n, true);
    FUZZ_CHECK(rc_url == rc);
    if (rc == 0)
        FUZZ_CHECK(got_url == got && memcmp(dst_url, dst, got) == 0);
    free(url);
    free(dst_url);
    free(dst);
}

static void encode_checks(const unsigned char *p, size_t n)
{
    struct buf enc = BUF_INIT(SIZE_MAX);
    struct sbuf *enc_sb = sbuf_new(SIZE_MAX);
    size_t cap, got = 0;
    unsigned char *back;

    FUZZ_CHECK(b64_encode(&enc, p, n) == 0);
    FUZZ_CHECK(b64_encode_sb(enc_sb, p, n) == 0);
    FUZZ_CHECK(enc.len == (n + 2) / 3 * 4);
    FUZZ_CHECK(sbuf_len(enc_sb) == enc.len &&
               memcmp(sbuf_expose(enc_sb), buf_str(&enc), enc.len) == 0);
    cap = B64_DECODED_MAX(enc.len);
    back = malloc(cap);
    FUZZ_CHECK(back);
    FUZZ_CHECK(b64_decode(back, &got, buf_str(&enc), enc.len, false) == 0);
    FUZZ_CHECK(got == n && memcmp(back, p, n) == 0);
    /* Unpadded, as a JWT carries it. */
    FUZZ_CHECK(b64_decode(back, &got, buf_str(&enc), unpadded(buf_str(&enc), enc.len), false) == 0);
    FUZZ_CHECK(got == n && memcmp(back, p, n) == 0);
    free(back);
    sbuf_free(enc_sb);
    buf_release(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_checks((const char *)data, size);
    encode_checks(data, size);
    return 0;
}
