/* A raw HTTP/1.1 client for the tests of net/hsrv and app/httpd: plain
 * blocking sockets on loopback, so that what goes over the wire is exactly
 * what a test wrote, and responses read back strictly (status line, header
 * lines, Content-Length, chunked or until-close bodies). Every read has a
 * deadline (HC_TIMEOUT_MS) so that a server that does not answer fails the
 * test instead of hanging it.
 *
 * Header only (static functions), as a unit test is built from one .c file
 * and the harness; included as "../net/hclient.h" from other folders.
 *
 *      struct hc c;
 *      struct hc_resp r;
 *      hc_open(&c, AF_INET, port);
 *      hc_send(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
 *      if (hc_read(&c, &r, false) < 0) ... r.why says what was wrong
 *      hc_resp_release(&r); hc_close(&c);
 */
#ifndef PGTR_TEST_HCLIENT_H
#define PGTR_TEST_HCLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"

#define HC_TIMEOUT_MS 5000
#define HC_BODY_MAX (64u << 20)

struct hc {
    int fd;
    struct buf in; /* read and not yet taken */
    bool eof;
};

struct hc_resp {
    int status;
    struct buf head; /* the status line and header lines, as sent */
    struct buf body; /* decoded (chunks joined) */
    bool chunked;
    long chunks;     /* how many chunks the body came in */
    char why[160];   /* what was wrong when hc_read failed */
};

/* Connects to loopback (AF_INET: 127.0.0.1, AF_INET6: ::1) at port; rcvbuf,
 * when > 0, is the socket's receive buffer (set before connecting, so that
 * the window stays small: a slow reader). 0, or -1 (errno kept). */
static inline int hc_open_buf(struct hc *c, int family, int port, int rcvbuf)
{
    struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int e;

    memset(c, 0, sizeof(*c));
    buf_init(&c->in, HC_BODY_MAX);
    c->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (family == AF_INET ? connect(c->fd, (struct sockaddr *)&a4, sizeof(a4))
                          : connect(c->fd, (struct sockaddr *)&a6, sizeof(a6))) {
        e = errno;
        close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

static inline int hc_open(struct hc *c, int family, int port)
{
    return hc_open_buf(c, family, port, 0);
}

static inline void hc_close(struct hc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_release(&c->in);
}

/* Writes n bytes. 0, or -1 when the connection refused them. */
static inline int hc_send_n(struct hc *c, const void *p, size_t n)
{
    const char *s = p;

    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static inline int hc_send(struct hc *c, const char *s)
{
    return hc_send_n(c, s, strlen(s));
}

/* Reads more into c->in. 1: bytes came; 0: the server closed (a reset counts);
 * -1: nothing within HC_TIMEOUT_MS, or an error. */
static inline int hc_fill(struct hc *c)
{
    char tmp[65536];
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    ssize_t n;

    if (c->eof)
        return 0;
    if (poll(&p, 1, HC_TIMEOUT_MS) <= 0)
        return -1;
    n = recv(c->fd, tmp, sizeof(tmp), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        c->eof = true;
        return 0;
    }
    if (n < 0 || buf_add(&c->in, tmp, (size_t)n) < 0)
        return -1;
    return 1;
}

/* The length of the line at the start of c->in through its CRLF, reading as
 * needed; 0 when the stream ended or timed out first. */
static inline size_t hc_line(struct hc *c)
{
    for (;;) {
        const char *nl = c->in.len ? memchr(c->in.ptr, '\n', c->in.len) : NULL;
        if (nl)
            return (size_t)(nl - c->in.ptr) + 1;
        if (hc_fill(c) <= 0)
            return 0;
    }
}

/* n bytes at the start of c->in, reading as needed: true when they are there. */
static inline bool hc_need(struct hc *c, size_t n)
{
    while (c->in.len < n)
        if (hc_fill(c) <= 0)
            return false;
    return true;
}

/* The value of header name in r->head (the first one) into out; false when absent. */
static inline bool hc_header(const struct hc_resp *r, const char *name, char *out, size_t out_size)
{
    const char *p = r->head.ptr ? strstr(r->head.ptr, "\r\n") : NULL;
    size_t nl = strlen(name);

    while (p && p[2] && p[2] != '\r') {
        const char *line = p + 2, *end = strstr(line, "\r\n");
        if (!end)
            break;
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            size_t vl;
            while (*v == ' ')
                v++;
            vl = (size_t)(end - v);
            snprintf(out, out_size, "%.*s", (int)vl, v);
            return true;
        }
        p = end;
    }
    return false;
}

static inline void hc_resp_release(struct hc_resp *r)
{
    buf_release(&r->head);
    buf_release(&r->body);
}

__attribute__((format(printf, 2, 3))) static inline int hc_fail(struct hc_resp *r,
                                                                const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads one response from c. no_body: the answer to a HEAD (headers only).
 * The body is framed by Transfer-Encoding: chunked (strictly: hex size, CRLF,
 * data, CRLF, a last chunk of 0 and an empty trailer), else by Content-Length,
 * else runs to the close. r is released and filled. 0, or -1 with r->why. */
static inline int hc_read(struct hc *c, struct hc_resp *r, bool no_body)
{
    char v[64];
    size_t n;

    hc_resp_release(r);
    memset(r, 0, sizeof(*r));
    buf_init(&r->head, 1u << 16);
    buf_init(&r->body, HC_BODY_MAX);
    for (bool first = true;; first = false) {
        if (!(n = hc_line(c)))
            return hc_fail(r, "the stream ended inside a response head (%zu bytes)", r->head.len);
        if (n < 2 || c->in.ptr[n - 2] != '\r')
            return hc_fail(r, "a header line not ending in CRLF");
        buf_add(&r->head, c->in.ptr, n);
        buf_consume(&c->in, n);
        if (first && (r->head.len < 13 || sscanf(r->head.ptr, "HTTP/1.1 %3d ", &r->status) != 1 ||
                      r->head.ptr[8] != ' ' || r->head.ptr[12] != ' '))
            return hc_fail(r, "status line \"%.40s\"", r->head.ptr);
        if (n == 2)
            break;
    }
    r->chunked = hc_header(r, "Transfer-Encoding", v, sizeof(v));
    if (r->chunked && strcmp(v, "chunked"))
        return hc_fail(r, "Transfer-Encoding: %s", v);
    if (no_body)
        return 0;
    if (r->chunked) {
        for (;;) {
            char *end;
            unsigned long len;
            if (!(n = hc_line(c)))
                return hc_fail(r, "the stream ended before a chunk size (%ld chunks)", r->chunks);
            len = strtoul(c->in.ptr, &end, 16);
            if (end == c->in.ptr || end != c->in.ptr + n - 2 || c->in.ptr[n - 2] != '\r')
                return hc_fail(r, "chunk size line \"%.*s\"", (int)(n < 20 ? n : 20), c->in.ptr);
            buf_consume(&c->in, n);
            if (!len)
                break;
            if (!hc_need(c, len + 2) || memcmp(c->in.ptr + len, "\r\n", 2))
                return hc_fail(r, "chunk %ld of %lu bytes incomplete or not followed by CRLF",
                               r->chunks, len);
            if (buf_add(&r->body, c->in.ptr, len) < 0)
                return hc_fail(r, "body over %u bytes", HC_BODY_MAX);
            buf_consume(&c->in, len + 2);
            r->chunks++;
        }
        if (!(n = hc_line(c)) || n != 2 || c->in.ptr[0] != '\r')
            return hc_fail(r, "no empty line after the last chunk");
        buf_consume(&c->in, n);
    } else if (hc_header(r, "Content-Length", v, sizeof(v))) {
        size_t len = strtoul(v, NULL, 10);
        if (!hc_need(c, len))
            return hc_fail(r, "body shorter than its Content-Length %zu", len);
        buf_add(&r->body, c->in.ptr, len);
        buf_consume(&c->in, len);
    } else {
        int f;
        while ((f = hc_fill(c)) > 0)
            ;
        if (f < 0)
            return hc_fail(r, "a body without length that did not end with the connection");
        buf_add(&r->body, c->in.ptr, c->in.len);
        buf_consume(&c->in, c->in.len);
    }
    return 0;
}

/* True when the server closes the connection (EOF or reset) with nothing more
 * sent, within HC_TIMEOUT_MS. */
static inline bool hc_closed(struct hc *c)
{
    return !c->in.len && hc_fill(c) == 0;
}

#endif
