#include "net/hsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/hreq.h"
#include "base/banned.h"

#define HSRV_ADDR_MAX 300
#define HSRV_BACKLOG 64
/* How long a closing connection's input is drained after the answer. */
#define HSRV_LINGER_MS 2000
/* A response head without opts.headers: status line, Date, Content-Type, framing. */
#define HSRV_RESP_HEAD_MAX 1024
#define HSRV_OUT_MAX (HSRV_BODY_MAX + HSRV_RESP_HEAD_MAX + HSRV_HEADERS_MAX)
#define HSRV_ACCEPT_BATCH 16
/* Pieces produced for one connection before the others get a turn. */
#define HSRV_PIECES_PER_TURN 4
/* After accept fails for want of descriptors or memory, it waits this long. */
#define HSRV_ACCEPT_PAUSE_MS 100
#define HSRV_TEXT "text/plain; charset=utf-8"

enum conn_state { CONN_FREE, CONN_READ, CONN_WRITE, CONN_LINGER };

struct conn {
    int fd;
    enum conn_state state;
    int64_t deadline_ms;      /* monotonic: closed when reached */
    struct buf in;            /* bytes read and not yet answered (HREQ_HEAD_MAX) */
    struct hreq_scan scan;    /* how far the head at the start of in was looked for */
    size_t head_len;          /* of the request being answered: dropped from in when done */
    struct buf out;           /* bytes to send: a response head and fixed body, or a piece */
    size_t out_off;           /* how many of them went */
    bool producing;           /* the body's producer has more to give */
    long (*read)(void *ctx, char *out, size_t max);
    void (*done)(void *ctx);
    void *pctx;
    bool chunked;             /* the producer's pieces are framed as chunks */
    bool close_after;         /* close once this response is sent */
    bool peer_eof;            /* the client sent all it will */
};

struct hsrv {
    int lfd;
    int wake[2]; /* hsrv_stop writes a byte to wake[1] */
    int port;
    pthread_t thread;
    hsrv_handler_fn handler;
    void *ctx;
    char *headers;
    size_t max_conns;
    long idle_ms;
    int64_t accept_paused_until_ms;
    struct conn *conns;   /* max_conns slots */
    struct pollfd *pfd;   /* the wake pipe, the listener, then one per slot */
    struct buf body;      /* the handler's fixed body */
    char piece[HSRV_PIECE_MAX]; /* a producer's piece, or bytes read */
};

/* ---- Binding ------------------------------------------------------------------- */

/* Splits "host:port", ":port" or "[v6]:port". host is "" for every address. */
static int split_addr(char host[HSRV_ADDR_MAX], char port[8], const char *addr)
{
    const char *colon, *h = addr, *he;
    size_t hl;

    if (*addr == '[') {
        he = strchr(addr, ']');
        if (!he || he[1] != ':')
            goto bad;
        h = addr + 1;
        colon = he + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
            goto bad; /* an IPv6 address needs brackets */
        he = colon;
    }
    hl = (size_t)(he - h);
    if (hl >= HSRV_ADDR_MAX || strlen(colon + 1) < 1 || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || strtol(colon + 1, NULL, 10) > 65535)
        goto bad;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, 8, "%s", colon + 1);
    return 0;
bad:
    return err_set(ERR_INVALID, "listen address \"%s\": want host:port, :port or [ipv6]:port",
                   addr);
}

static int bind_one(int *out, const struct sockaddr *sa, socklen_t len, bool dual)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1,
        zero = 0;

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (dual)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, len) < 0 || listen(fd, HSRV_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

/* A listening socket for addr, and its port. */
static int listen_on(int *out, int *port, const char *addr)
{
    char host[HSRV_ADDR_MAX] = "", portstr[8] = "";
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } bound = { 0 };
    socklen_t sl = sizeof(bound);
    int rc, e, fd = -1;

    if ((rc = split_addr(host, portstr, addr)) != 0)
        return rc;
    if (!*host) {
        /* Every address: one IPv6 socket that also takes IPv4, or IPv4 alone
         * where the kernel has no IPv6. */
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
                                   .sin6_port = htons((uint16_t)strtol(portstr, NULL, 10)) };
        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
                                  .sin_port = a6.sin6_port };
        e = bind_one(&fd, (struct sockaddr *)&a6, sizeof(a6), true);
        if (e == -EAFNOSUPPORT)
            e = bind_one(&fd, (struct sockaddr *)&a4, sizeof(a4), false);
    } else {
        if ((e = getaddrinfo(host, portstr, &hints, &res)) != 0)
            return err_set(ERR_INVALID, "listen address \"%s\": %s", addr, gai_strerror(e));
        e = bind_one(&fd, res->ai_addr, res->ai_addrlen, false);
        freeaddrinfo(res);
    }
    if (e < 0)
        return err_set(ERR_IO, "listen on %s: %s", addr, strerror(-e));
    if (getsockname(fd, &bound.sa, &sl) < 0) {
        e = errno;
        close(fd);
        return err_set(ERR_IO, "listen on %s: %s", addr, strerror(e));
    }
    *port = ntohs(bound.sa.sa_family == AF_INET6 ? bound.in6.sin6_port : bound.in.sin_port);
    *out = fd;
    return 0;
}

/* opts.headers: NULL, or lines "Name: value\r\n" within HSRV_HEADERS_MAX. */
static int headers_ok(const char *h)
{
    const char *p = h;

    if (!h)
        return 0;
    if (strlen(h) > HSRV_HEADERS_MAX)
        goto bad;
    while (*p) {
        const char *crlf = strstr(p, "\r\n"), *colon = strchr(p, ':');
        if (!crlf || !colon || colon == p || colon > crlf)
            goto bad;
        for (; p < crlf; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                goto bad;
        p = crlf + 2;
    }
    return 0;
bad:
    return err_set(ERR_INVALID, "HTTP server: extra headers are not \"Name: value\\r\\n\" lines "
                                "within %u bytes", HSRV_HEADERS_MAX);
}

/* ---- Responses ----------------------------------------------------------------- */

static const char *reason(int status)
{
    static const struct {
        int status;
        const char *text;
    } reasons[] = {
        { 200, "OK" },
        { 400, "Bad Request" },
        { 403, "Forbidden" },
        { 404, "Not Found" },
        { 405, "Method Not Allowed" },
        { 413, "Content Too Large" },
        { 431, "Request Header Fields Too Large" },
        { 500, "Internal Server Error" },
        { 501, "Not Implemented" },
        { 503, "Service Unavailable" },
    };

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return ""; /* the reason phrase may be empty (RFC 9112 4) */
}

/* IMF-fixdate (RFC 9110 5.6.7) of epoch seconds t, locale-free. */
static void http_date(char out[32], int64_t t)
{
    static const char days[][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11) {
        snprintf(out, 32, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The producer is finished with, sent or not. */
static void conn_end_producer(struct conn *c)
{
    if (c->producing && c->done)
        c->done(c->pctx);
    c->producing = false;
    c->read = NULL;
    c->done = NULL;
    c->pctx = NULL;
}

static void conn_close(struct conn *c)
{
    conn_end_producer(c);
    close(c->fd);
    buf_release(&c->in);
    buf_release(&c->out);
    c->fd = -1;
    c->state = CONN_FREE;
}

/* Queues the answer r to the request rq (NULL: a head that could not be
 * parsed) and switches c to writing. A producer that will not be read (HEAD,
 * an invalid status) is done with at once. 0, or ERR_TOOBIG when the head and
 * body do not fit (the connection is then to be closed). */
static int conn_queue(struct hsrv *s, struct conn *c, const struct hreq *rq, struct hsrv_resp *r)
{
    int minor = rq ? rq->minor : 1, rc = 0;
    bool head = rq && !strcmp(rq->method, "HEAD"), stream = r->read != NULL;
    char date[32];

    c->producing = stream;
    c->read = r->read;
    c->done = r->done;
    c->pctx = r->ctx;
    if (r->status < 200 || r->status > 599 || r->status == 204 || r->status == 304) {
        log_error("http_handler_bad_status", LOG_I64("status", r->status));
        conn_end_producer(c);
        stream = false;
        r->status = 500;
        r->content_type = HSRV_TEXT;
        buf_reset(r->body);
        buf_addstr(r->body, "internal error\n");
    }
    if (stream && minor == 0)
        c->close_after = true; /* the close ends the body */
    http_date(date, clock_wall_s());
    buf_reset(&c->out);
    c->out_off = 0;
    rc |= buf_addf(&c->out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", r->status, reason(r->status), date);
    if (r->content_type)
        rc |= buf_addf(&c->out, "Content-Type: %s\r\n", r->content_type);
    if (s->headers)
        rc |= buf_addstr(&c->out, s->headers);
    if (r->status == 405)
        rc |= buf_addstr(&c->out, "Allow: GET, HEAD\r\n");
    if (!stream)
        rc |= buf_addf(&c->out, "Content-Length: %zu\r\n", r->body->len);
    else if (minor >= 1)
        rc |= buf_addstr(&c->out, "Transfer-Encoding: chunked\r\n");
    if (c->close_after)
        rc |= buf_addstr(&c->out, "Connection: close\r\n");
    rc |= buf_addstr(&c->out, "\r\n");
    if (!stream && !head)
        rc |= buf_add(&c->out, r->body->ptr, r->body->len);
    if (head)
        conn_end_producer(c);
    c->chunked = stream && minor >= 1;
    c->state = CONN_WRITE;
    return rc ? ERR_TOOBIG : 0;
}

/* Answers the request at the start of c->in if its head is complete. 1 when
 * an answer was queued, 0 when more bytes are needed, ERR_TOOBIG when the
 * answer did not fit. */
static int conn_request(struct hsrv *s, struct conn *c)
{
    struct hsrv_resp r = { .status = 0, .body = &s->body, .content_type = HSRV_TEXT };
    struct hreq rq;
    long n = hreq_head_len(&c->scan, c->in.ptr, c->in.len, HREQ_HEAD_MAX);
    bool head;

    if (n == 0)
        return 0;
    buf_reset(&s->body);
    if (n < 0) {
        c->head_len = c->in.len;
        c->close_after = true;
        r.status = 431;
        buf_addf(r.body, "request head over %u bytes\n", HREQ_HEAD_MAX);
        return conn_queue(s, c, NULL, &r) < 0 ? ERR_TOOBIG : 1;
    }
    c->head_len = (size_t)n;
    if (hreq_parse(&rq, c->in.ptr, (size_t)n) < 0) {
        /* The message names what is wrong without quoting the request. */
        c->close_after = true;
        r.status = 400;
        buf_addf(r.body, "bad request: %s\n", err_msg());
        return conn_queue(s, c, NULL, &r) < 0 ? ERR_TOOBIG : 1;
    }
    /* A body is never read: the bytes after the head would be taken for the
     * next request, so such a connection ends with its answer. */
    c->close_after = !rq.keep_alive || rq.has_body;
    head = !strcmp(rq.method, "HEAD");
    if (!head && strcmp(rq.method, "GET")) {
        r.status = 405;
        buf_addstr(r.body, "method not allowed\n");
    } else if (rq.has_body) {
        r.status = 413;
        buf_addstr(r.body, "request bodies are not accepted\n");
    } else {
        struct hsrv_req req = { .method = rq.method, .path = rq.path, .query = rq.query,
                                .head = head };
        r.content_type = NULL;
        s->handler(&r, s->ctx, &req);
    }
    return conn_queue(s, c, &rq, &r) < 0 ? ERR_TOOBIG : 1;
}

/* ---- Moving bytes -------------------------------------------------------------- */

/* Sends what c->out holds. 1 when all of it went, 0 when the socket is full,
 * -1 when the connection is broken. */
static int conn_flush(struct hsrv *s, struct conn *c, int64_t now)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.ptr + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->deadline_ms = now + s->idle_ms;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    buf_reset(&c->out);
    c->out_off = 0;
    return 1;
}

/* Puts the producer's next piece in c->out (the last chunk at its end). 0, or
 * -1 when it failed: the body cannot be completed. */
static int conn_next_piece(struct hsrv *s, struct conn *c)
{
    long n = c->read(c->pctx, s->piece, sizeof(s->piece));
    int rc = 0;

    if (n < 0 || n > (long)sizeof(s->piece))
        return -1;
    if (n == 0) {
        conn_end_producer(c);
        return c->chunked && buf_addstr(&c->out, "0\r\n\r\n") < 0 ? -1 : 0;
    }
    if (c->chunked)
        rc |= buf_addf(&c->out, "%lx\r\n", n);
    rc |= buf_add(&c->out, s->piece, (size_t)n);
    if (c->chunked)
        rc |= buf_addstr(&c->out, "\r\n");
    return rc ? -1 : 0;
}

/* The response went out in full: on to the next request, or close. */
static void conn_finish(struct hsrv *s, struct conn *c, int64_t now)
{
    buf_consume(&c->in, c->head_len);
    c->head_len = 0;
    c->scan = (struct hreq_scan)HREQ_SCAN_INIT;
    /* An idle keep-alive connection (a scraper's, between scrapes) holds no buffers. */
    buf_release(&c->out);
    if (!c->in.len)
        buf_release(&c->in);
    c->deadline_ms = now + s->idle_ms;
    if (!c->close_after) {
        c->state = CONN_READ;
    } else if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(c);
    } else {
        /* Closing with unread input would send a reset that can destroy the
         * answer before the client reads it: drain for a moment first. */
        c->state = CONN_LINGER;
        c->deadline_ms = now + (s->idle_ms < HSRV_LINGER_MS ? s->idle_ms : HSRV_LINGER_MS);
    }
}

/* Takes c as far as it goes without waiting: writes, produces, answers
 * buffered requests. */
static void conn_advance(struct hsrv *s, struct conn *c, int64_t now)
{
    int pieces = 0, r;

    for (;;) {
        if (c->state == CONN_WRITE) {
            if ((r = conn_flush(s, c, now)) < 0) {
                conn_close(c);
                return;
            }
            if (r == 0)
                return;
            if (c->producing) {
                /* The socket is still writable, so poll comes straight back. */
                if (pieces++ == HSRV_PIECES_PER_TURN)
                    return;
                if (conn_next_piece(s, c) < 0) {
                    conn_close(c);
                    return;
                }
                continue;
            }
            conn_finish(s, c, now);
        } else if (c->state == CONN_READ) {
            if ((r = conn_request(s, c)) < 0) {
                log_error("http_response_too_big");
                conn_close(c);
                return;
            }
            if (r == 0) {
                if (c->peer_eof)
                    conn_close(c);
                return;
            }
        } else {
            return;
        }
    }
}

static void conn_event(struct hsrv *s, struct conn *c, short revents, int64_t now)
{
    size_t room;
    ssize_t n;

    if (c->state == CONN_WRITE) {
        conn_advance(s, c, now); /* a send reports an error or hang-up */
        return;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    room = c->state == CONN_READ ? HREQ_HEAD_MAX - c->in.len : sizeof(s->piece);
    if (room > sizeof(s->piece))
        room = sizeof(s->piece);
    n = recv(c->fd, s->piece, room, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n < 0 || (n == 0 && c->state == CONN_LINGER)) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGER)
        return; /* drained and dropped */
    if (n == 0) {
        c->peer_eof = true;
    } else {
        buf_add(&c->in, s->piece, (size_t)n); /* fits: room */
        c->deadline_ms = now + s->idle_ms;
    }
    conn_advance(s, c, now);
}

static void hsrv_accept(struct hsrv *s, int64_t now)
{
    for (int k = 0; k < HSRV_ACCEPT_BATCH; k++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
        struct conn *c = NULL;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* Out of descriptors or memory: the listener stays readable,
                 * so poll would spin; wait a little. */
                log_warn("http_accept_failed", LOG_STR("detail", strerror(errno)));
                s->accept_paused_until_ms = now + HSRV_ACCEPT_PAUSE_MS;
            }
            return;
        }
        for (size_t i = 0; i < s->max_conns && !c; i++)
            if (s->conns[i].state == CONN_FREE)
                c = &s->conns[i];
        if (!c) {
            log_warn("http_connection_refused", LOG_I64("limit", (int64_t)s->max_conns));
            close(fd);
            continue;
        }
        /* Pieces of a streamed body go as soon as they are written. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        c->state = CONN_READ;
        c->deadline_ms = now + s->idle_ms;
        c->scan = (struct hreq_scan)HREQ_SCAN_INIT;
        c->head_len = 0;
        c->out_off = 0;
        c->close_after = c->peer_eof = c->chunked = false;
    }
}

static int poll_timeout(int64_t next, int64_t now)
{
    if (next == INT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

static void *hsrv_main(void *arg)
{
    struct hsrv *s = arg;

    for (;;) {
        int64_t now = clock_mono_ms(), next = INT64_MAX;
        bool paused = now < s->accept_paused_until_ms;

        s->pfd[0] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
        s->pfd[1] = (struct pollfd){ .fd = paused ? -1 : s->lfd, .events = POLLIN };
        if (paused)
            next = s->accept_paused_until_ms;
        for (size_t i = 0; i < s->max_conns; i++) {
            struct conn *c = &s->conns[i];
            s->pfd[2 + i] = (struct pollfd){ .fd = c->state == CONN_FREE ? -1 : c->fd,
                                             .events = c->state == CONN_WRITE ? POLLOUT : POLLIN };
            if (c->state != CONN_FREE && c->deadline_ms < next)
                next = c->deadline_ms;
        }
        if (poll(s->pfd, 2 + s->max_conns, poll_timeout(next, now)) < 0) {
            if (errno != EINTR) {
                log_warn("http_poll_failed", LOG_STR("detail", strerror(errno)));
                poll(NULL, 0, HSRV_ACCEPT_PAUSE_MS);
            }
            continue;
        }
        if (s->pfd[0].revents)
            break;
        now = clock_mono_ms();
        for (size_t i = 0; i < s->max_conns; i++)
            if (s->pfd[2 + i].revents && s->conns[i].state != CONN_FREE)
                conn_event(s, &s->conns[i], s->pfd[2 + i].revents, now);
        for (size_t i = 0; i < s->max_conns; i++)
            if (s->conns[i].state != CONN_FREE && now >= s->conns[i].deadline_ms)
                conn_close(&s->conns[i]); /* idle, or done lingering */
        if (s->pfd[1].revents)
            hsrv_accept(s, now);
    }
    for (size_t i = 0; i < s->max_conns; i++)
        if (s->conns[i].state != CONN_FREE)
            conn_close(&s->conns[i]);
    return NULL;
}

/* ---- The server ---------------------------------------------------------------- */

static void hsrv_free(struct hsrv *s)
{
    if (s->lfd >= 0)
        close(s->lfd);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    buf_release(&s->body);
    free(s->headers);
    free(s->conns);
    free(s->pfd);
    free(s);
}

int hsrv_start(struct hsrv **out, const struct hsrv_opts *o)
{
    struct hsrv *s;
    sigset_t all, old;
    int fd = -1, port = 0, rc, e;

    if (!o->handler || o->max_conns < 0 || o->idle_timeout_ms < 0)
        return err_set(ERR_INVALID, "HTTP server: no handler, or a negative limit or timeout");
    if ((rc = headers_ok(o->headers)) < 0 || (rc = listen_on(&fd, &port, o->addr)) < 0)
        return rc;
    s = xcalloc(1, sizeof(*s));
    s->lfd = fd;
    s->wake[0] = s->wake[1] = -1;
    s->port = port;
    s->handler = o->handler;
    s->ctx = o->ctx;
    s->headers = o->headers && *o->headers ? xstrdup(o->headers) : NULL;
    s->max_conns = o->max_conns ? (size_t)o->max_conns : HSRV_DEFAULT_MAX_CONNS;
    s->idle_ms = o->idle_timeout_ms ? o->idle_timeout_ms : HSRV_DEFAULT_IDLE_TIMEOUT_MS;
    s->conns = xcalloc(s->max_conns, sizeof(*s->conns));
    s->pfd = xcalloc(s->max_conns + 2, sizeof(*s->pfd));
    buf_init(&s->body, HSRV_BODY_MAX);
    for (size_t i = 0; i < s->max_conns; i++) {
        s->conns[i].fd = -1;
        buf_init(&s->conns[i].in, HREQ_HEAD_MAX);
        buf_init(&s->conns[i].out, HSRV_OUT_MAX);
    }
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = err_set(ERR_IO, "the HTTP server on %s did not start: %s", o->addr, strerror(errno));
        goto fail;
    }
    /* The thread takes every signal blocked: a process-directed signal goes
     * to a thread that waits for it, never here. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = pthread_create(&s->thread, NULL, hsrv_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        rc = err_set(ERR_IO, "the HTTP server on %s did not start: %s", o->addr, strerror(e));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    hsrv_free(s);
    return rc;
}

void hsrv_stop(struct hsrv *s)
{
    if (!s)
        return;
    while (write(s->wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(s->thread, NULL);
    hsrv_free(s);
}

int hsrv_port(const struct hsrv *s)
{
    return s->port;
}
