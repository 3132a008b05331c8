#include "base/urlenc.h"

#include <stdbool.h>

#include <openssl/crypto.h>

#include "base/err.h"
#include "base/sink.h"
#include "base/banned.h"

static const char hex[] = "0123456789ABCDEF";

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Length of the run of unreserved bytes at s (at most len): appended in one call. */
static size_t run_len(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && unreserved((unsigned char)s[n]))
        n++;
    return n;
}

/* The one encoder; an escape may hold a secret byte: wiped after each. */
static int encode(struct sink k, const char *s, size_t len)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < len;) {
        size_t n = run_len(s + i, len - i);
        if (n) {
            rc = sink_add(k, s + i, n);
            i += n;
        } else {
            unsigned char c = (unsigned char)s[i++];
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            rc = sink_add(k, e, 3);
            OPENSSL_cleanse(e, sizeof(e));
        }
    }
    return rc;
}

int url_encode(struct buf *b, const char *s, size_t len)
{
    return encode(sink_buf(b), s, len);
}

int url_encode_sb(struct sbuf *out, const char *s, size_t len)
{
    return encode(sink_sbuf(out), s, len);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int url_decode(struct buf *b, const char *s, size_t len)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < len; i++) {
        if (s[i] != '%') {
            rc = buf_addch(b, s[i]);
            continue;
        }
        if (i + 2 >= len)
            return err_set(ERR_PARSE, "truncated %%-escape at offset %zu", i);
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        if (hi < 0 || lo < 0)
            return err_set(ERR_PARSE, "bad %%-escape at offset %zu", i);
        rc = buf_addch(b, (char)(hi << 4 | lo));
        i += 2;
    }
    return rc;
}
