#include "base/sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/banned.h"

struct sbuf {
    char *ptr;
    size_t len, cap, max;
};

struct sbuf *sbuf_new(size_t max)
{
    struct sbuf *s = xcalloc(1, sizeof(*s));

    s->max = max;
    s->cap = 64;
    s->ptr = xcalloc(1, s->cap);
    return s;
}

struct sbuf *sbuf_from(const void *data, size_t len)
{
    struct sbuf *s = sbuf_new(len);

    sbuf_add(s, data, len); /* cannot fail: max == len */
    return s;
}

void sbuf_free(struct sbuf *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->ptr, s->cap);
    free(s->ptr);
    free(s);
}

void sbuf_clear(struct sbuf *s)
{
    OPENSSL_cleanse(s->ptr, s->cap);
    s->len = 0;
}

int sbuf_add(struct sbuf *s, const void *data, size_t len)
{
    if (len > s->max || s->len > s->max - len)
        return err_set(ERR_TOOBIG, "secret over its %zu-byte limit", s->max);
    if (s->len + len + 1 > s->cap) {
        /* Grow by copying so that no stale copy is left behind by realloc. */
        size_t cap = s->cap;
        char *p;
        while (cap < s->len + len + 1)
            cap *= 2;
        p = xcalloc(1, cap);
        memcpy(p, s->ptr, s->len);
        OPENSSL_cleanse(s->ptr, s->cap);
        free(s->ptr);
        s->ptr = p;
        s->cap = cap;
    }
    if (len)
        memcpy(s->ptr + s->len, data, len);
    s->len += len;
    s->ptr[s->len] = '\0';
    return 0;
}

int sbuf_addstr(struct sbuf *s, const char *str)
{
    return sbuf_add(s, str, strlen(str));
}

int sbuf_addsb(struct sbuf *s, const struct sbuf *other)
{
    return sbuf_add(s, other->ptr, other->len);
}

const char *sbuf_expose(const struct sbuf *s)
{
    return s->ptr;
}

size_t sbuf_len(const struct sbuf *s)
{
    return s->len;
}

bool sbuf_eq(const struct sbuf *a, const struct sbuf *b)
{
    if (!a || !b)
        return a == b;
    if (a->len != b->len)
        return false;
    return CRYPTO_memcmp(a->ptr, b->ptr, a->len) == 0;
}

struct sbuf *sbuf_dup(const struct sbuf *s)
{
    struct sbuf *d = sbuf_new(s->max);

    sbuf_add(d, s->ptr, s->len);
    return d;
}

int sbuf_read_file(struct sbuf **out, const char *path, size_t max)
{
    struct sbuf *s;
    char chunk[4096];
    ssize_t n;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    s = sbuf_new(max);
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = err_set(ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if ((rc = sbuf_add(s, chunk, (size_t)n)) < 0) {
            rc = err_set(ERR_TOOBIG, "%s is larger than %zu bytes", path, max);
            break;
        }
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    close(fd);
    if (rc < 0) {
        sbuf_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sbuf_rtrim(struct sbuf *s)
{
    while (s->len && (s->ptr[s->len - 1] == '\n' || s->ptr[s->len - 1] == '\r' ||
                      s->ptr[s->len - 1] == ' ' || s->ptr[s->len - 1] == '\t'))
        s->ptr[--s->len] = '\0';
}
