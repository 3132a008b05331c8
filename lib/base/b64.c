#include "base/b64.h"

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sink.h"
#include "base/banned.h"

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int val(char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

int b64_decode(unsigned char *dst, size_t *dst_len, const char *src, size_t len, bool url)
{
    uint32_t acc = 0;
    size_t n = 0, bits = 0, pad = 0;

    while (pad < 2 && len > 0 && src[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad && (len + pad) % 4)
        return err_set(ERR_PARSE, "bad base64 padding");
    if (len % 4 == 1)
        return err_set(ERR_PARSE, "bad base64 length");
    for (size_t i = 0; i < len; i++) {
        int v = val(src[i], url);
        if (v < 0)
            return err_set(ERR_PARSE, "invalid base64 character at offset %zu", i);
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (unsigned char)(acc >> bits);
        }
    }
    /* Leftover bits must be zero in a canonical encoding. */
    if (bits && (acc & ((1u << bits) - 1)))
        return err_set(ERR_PARSE, "non-canonical base64 tail");
    *dst_len = n;
    return 0;
}

int b64_decode_sb(struct sbuf **out, const char *src, size_t len)
{
    size_t cap = B64_DECODED_MAX(len), n = 0;
    unsigned char *tmp = xmalloc(cap);
    int rc = b64_decode(tmp, &n, src, len, false);

    if (rc == 0)
        *out = sbuf_from(tmp, n);
    OPENSSL_cleanse(tmp, cap);
    free(tmp);
    return rc;
}

static void enc3(char out[4], const unsigned char *p, size_t n)
{
    uint32_t v = (uint32_t)p[0] << 16 | (n > 1 ? (uint32_t)p[1] << 8 : 0) | (n > 2 ? p[2] : 0);

    out[0] = std_alpha[(v >> 18) & 63];
    out[1] = std_alpha[(v >> 12) & 63];
    out[2] = n > 1 ? std_alpha[(v >> 6) & 63] : '=';
    out[3] = n > 2 ? std_alpha[v & 63] : '=';
}

/* The one encoder; the quartets may hold secret bits: wiped after each. */
static int encode(struct sink k, const void *data, size_t len)
{
    const unsigned char *p = data;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < len; i += 3) {
        char q[4];
        enc3(q, p + i, len - i);
        rc = sink_add(k, q, 4);
        OPENSSL_cleanse(q, sizeof(q));
    }
    return rc;
}

int b64_encode(struct buf *b, const void *data, size_t len)
{
    return encode(sink_buf(b), data, len);
}

int b64_encode_sb(struct sbuf *s, const void *data, size_t len)
{
    return encode(sink_sbuf(s), data, len);
}
