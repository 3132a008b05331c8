/* A small HTTP/1.1 server for GET and HEAD over plain TCP: one thread, poll(),
 * non-blocking sockets, no TLS, no request bodies. It answers what it can
 * decide alone and hands every other request to one handler:
 *
 *   a malformed head (net/hreq.h)         400, then close
 *   a head over HREQ_HEAD_MAX             431, then close
 *   a method other than GET or HEAD       405 with "Allow: GET, HEAD" (then
 *                                         close if the request has a body)
 *   a GET or HEAD with a body (Content-Length above 0, Transfer-Encoding)
 *                                         413, then close
 *
 * A response body is fixed bytes, sent with Content-Length, or made by a
 * producer a piece at a time as the client reads it: chunked for HTTP/1.1, up
 * to the close for HTTP/1.0. HEAD gets the headers GET would get and no body.
 * HTTP/1.1 connections stay open for the next request (pipelined requests are
 * answered in order) unless the request says "Connection: close"; HTTP/1.0
 * ones close after one response. A connection that makes no progress for the
 * idle timeout is closed; connections beyond the limit are accepted and closed
 * at once. Writes never block, so a slow client delays no other. A connection
 * that closes after an error answer is half-closed and its unread input
 * drained for a moment (a lingering close), so that the client reads the
 * answer instead of a reset. */
#ifndef PGTR_HSRV_H
#define PGTR_HSRV_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

#define HSRV_DEFAULT_MAX_CONNS 32
#define HSRV_DEFAULT_IDLE_TIMEOUT_MS 10000
/* The most a producer is asked for at once: the largest piece held per connection. */
#define HSRV_PIECE_MAX (16u << 10)
/* The cap on a fixed body. */
#define HSRV_BODY_MAX (1u << 20)
/* The cap on hsrv_opts.headers. */
#define HSRV_HEADERS_MAX 1024

struct hsrv_req {
    const char *method; /* "GET" or "HEAD" */
    const char *path;   /* "/..." without the query; not decoded */
    const char *query;  /* after '?', "" when none; not decoded */
    bool head;          /* HEAD: the body is not sent (a producer is never read) */
};

/* What the handler fills in. Zeroed before each call except body, which is
 * the server's empty buffer (capped at HSRV_BODY_MAX). */
struct hsrv_resp {
    int status;               /* 200..599 but 204 and 304; anything else answers 500 */
    const char *content_type; /* static text or the handler's; NULL: no Content-Type */
    struct buf *body;         /* append a fixed body here (ignored when read is set) */
    /* A producer: read copies the next bytes to out (at most max, at least 1
     * while any remain) and returns how many, 0 at the end, or a negative code
     * (the connection is then closed without the last chunk, so the client
     * sees an incomplete body). done(ctx), when set, is called exactly once
     * when the response ends, is abandoned (the client went away, the server
     * stops) or is not sent (HEAD). Both run on the server's thread. */
    long (*read)(void *ctx, char *out, size_t max);
    void (*done)(void *ctx);
    void *ctx;
};

/* Runs on the server's thread, one request at a time. */
typedef void (*hsrv_handler_fn)(struct hsrv_resp *out, void *ctx, const struct hsrv_req *req);

struct hsrv_opts {
    /* "host:port", ":port" (every address: IPv6 and IPv4 on one socket, IPv4
     * alone without IPv6), "[v6addr]:port"; port 0 picks a free one. */
    const char *addr;
    hsrv_handler_fn handler;
    void *ctx;
    int max_conns;        /* 0: HSRV_DEFAULT_MAX_CONNS */
    long idle_timeout_ms; /* 0: HSRV_DEFAULT_IDLE_TIMEOUT_MS */
    /* Header lines added to every response, the server's own included, each
     * ending in CRLF ("Cache-Control: no-store\r\n"); copied; NULL: none. */
    const char *headers;
};

struct hsrv;

/* Binds, listens and starts the server's thread. 0: *out is serving.
 * ERR_INVALID for a malformed address (the message names it), no handler, a
 * negative limit or headers that are not CRLF-ended lines within
 * HSRV_HEADERS_MAX; ERR_IO when the address cannot be bound (in use, not
 * local, no permission) or the thread does not start. */
int hsrv_start(struct hsrv **out, const struct hsrv_opts *o);

/* Stops the thread (a response in progress is cut short: its done runs),
 * closes every socket, frees s (NULL is fine). Returns once the thread is gone. */
void hsrv_stop(struct hsrv *s);

/* The bound port (the chosen one when the address said 0). */
int hsrv_port(const struct hsrv *s);

#endif
