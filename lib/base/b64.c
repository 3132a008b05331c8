#include "base/b64.h"

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sink.h"
#include "base/banned.h"

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Each letter and digit's value + 1 (0: not one); the two last symbols differ between
 * the standard alphabet (+ /) and the URL-safe one (- _). A table: the decoder's inner
 * loop, run over every data value of every Secret the watch delivers. */
static const unsigned char alnum_val[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62,
};

static int val(char c, bool url)
{
    unsigned char u = (unsigned char)c;

    if (alnum_val[u])
        return alnum_val[u] - 1;
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

bool b64_canonical(const char *src, size_t len)
{
    size_t pad = 0;
    int last;

    while (pad < 2 && len > 0 && src[len - 1] == '=')
        len--, pad++;
    if ((len + pad) % 4)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!alnum_val[(unsigned char)src[i]] && src[i] != '+' && src[i] != '/')
            return false;
    /* the bits past the last whole byte are zero */
    last = len ? val(src[len - 1], false) : 0;
    return !(pad == 1 && (last & 3)) && !(pad == 2 && (last & 15));
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

/* The one encoder. Its output goes to the sink a chunk at a time (one call per
 * quartet cost more than the encoding); the chunk may hold secret bits: wiped once,
 * at the end. */
static int encode(struct sink k, const void *data, size_t len)
{
    const unsigned char *p = data;
    char chunk[512]; /* a multiple of 4 */
    size_t n = 0;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < len; i += 3) {
        enc3(chunk + n, p + i, len - i);
        if ((n += 4) == sizeof(chunk)) {
            rc = sink_add(k, chunk, n);
            n = 0;
        }
    }
    if (rc == 0 && n)
        rc = sink_add(k, chunk, n);
    OPENSSL_cleanse(chunk, sizeof(chunk));
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
