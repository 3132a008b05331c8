/* lib/net/hsrv over loopback, with the raw client of hclient.h: statuses and
 * framing, HEAD, the server's own answers (400, 405, 413, 431), keep-alive and
 * pipelining, HTTP/1.0, a large streamed body read back byte for byte, a slow
 * reader that must not stall another client, the idle timeout, the connection
 * limit, addresses and port 0, stopping mid-stream, and random bytes. */
#include "t.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/proc.h"
#include "base/log.h"
#include "net/hreq.h"
#include "net/hsrv.h"
#include "hclient.h"
#include "seeded.h"

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"
#define EXTRA "Cache-Control: no-store\r\nX-Test: 1\r\n"

/* What the handler saw and what the producers did, read by the test after the
 * answers came back. */
static struct {
    atomic_int requests, reads, dones;
    char path[128], query[128], method[16];
} seen;

struct stream {
    size_t pos, total;
    long fail_at; /* return an error once pos passes it; -1: never */
};

/* The byte at offset i of every streamed body: not periodic over a piece. */
static char stream_byte(size_t i)
{
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ULL;
    return (char)(x >> 56);
}

static long stream_read(void *ctx, char *out, size_t max)
{
    struct stream *st = ctx;
    size_t n = st->total - st->pos, odd;

    atomic_fetch_add(&seen.reads, 1);
    if (st->fail_at >= 0 && st->pos > (size_t)st->fail_at)
        return ERR_TOOBIG;
    /* pieces of varying sizes, some of 1 byte, some the whole max */
    odd = 1 + (st->pos * 7919 + 13) % (max + max / 2);
    if (odd > max)
        odd = max;
    if (n > odd)
        n = odd;
    for (size_t i = 0; i < n; i++)
        out[i] = stream_byte(st->pos + i);
    st->pos += n;
    return (long)n;
}

static void stream_done(void *ctx)
{
    atomic_fetch_add(&seen.dones, 1);
    free(ctx);
}

/* /ok fixed text, /status?N that status, /stream?N N streamed bytes,
 * /fail?N a stream that fails after N bytes, /echo the query. */
static void handler(struct hsrv_resp *out, void *ctx, const struct hsrv_req *req)
{
    (void)ctx;
    atomic_fetch_add(&seen.requests, 1);
    snprintf(seen.path, sizeof(seen.path), "%s", req->path);
    snprintf(seen.query, sizeof(seen.query), "%s", req->query);
    snprintf(seen.method, sizeof(seen.method), "%s", req->method);
    if (!strcmp(req->path, "/ok")) {
        out->status = 200;
        out->content_type = "text/plain";
        buf_addstr(out->body, "hello\n");
    } else if (!strcmp(req->path, "/status")) {
        out->status = (int)strtol(req->query, NULL, 10);
        buf_addf(out->body, "status %s\n", req->query);
    } else if (!strcmp(req->path, "/stream") || !strcmp(req->path, "/fail")) {
        struct stream *st = calloc(1, sizeof(*st));
        long n = strtol(req->query, NULL, 10);
        st->total = !strcmp(req->path, "/stream") ? (size_t)n : (size_t)n * 4;
        st->fail_at = !strcmp(req->path, "/stream") ? -1 : n;
        out->status = 200;
        out->content_type = "application/octet-stream";
        out->read = stream_read;
        out->done = stream_done;
        out->ctx = st;
    } else if (!strcmp(req->path, "/echo")) {
        out->status = 200;
        buf_addf(out->body, "%s %s ? %s", req->method, req->path, req->query);
    } else {
        out->status = 404;
        buf_addstr(out->body, "not found\n");
    }
}

static bool stream_ok(const struct buf *b, size_t total)
{
    if (b->len != total)
        return false;
    for (size_t i = 0; i < total; i++)
        if (b->ptr[i] != stream_byte(i))
            return false;
    return true;
}

/* A server, and a client connection with its last answer. */
struct fx {
    struct hsrv *s;
    int port;
    struct hc c;
    struct hc_resp r;
};

/* Starts a server on 127.0.0.1:0 (max_conns, idle_ms: 0 for the defaults).
 * false (the test failed) when it did not start. */
static bool fx_start(struct fx *f, int max_conns, long idle_ms)
{
    struct hsrv_opts o = { .addr = "127.0.0.1:0", .handler = handler, .max_conns = max_conns,
                           .idle_timeout_ms = idle_ms, .headers = EXTRA };
    int rc;

    memset(f, 0, sizeof(*f));
    f->c.fd = -1;
    if ((rc = hsrv_start(&f->s, &o)) < 0) {
        t_fail(__FILE__, __LINE__, "hsrv_start: %d %s", rc, err_msg());
        return false;
    }
    f->port = hsrv_port(f->s);
    return true;
}

static void fx_end(struct fx *f)
{
    hc_close(&f->c);
    hc_resp_release(&f->r);
    hsrv_stop(f->s);
}

/* Sends req on a new connection f->c (the last one is closed) and reads the
 * answer into f->r; false (the test failed) when none came. */
static bool ask(struct fx *f, const char *req, bool no_body)
{
    hc_close(&f->c);
    if (hc_open(&f->c, AF_INET, f->port) < 0 || hc_send(&f->c, req) < 0) {
        t_fail(__FILE__, __LINE__, "connect/send: %s", strerror(errno));
        return false;
    }
    if (hc_read(&f->c, &f->r, no_body) < 0) {
        t_fail(__FILE__, __LINE__, "\"%.30s\": %s", req, f->r.why);
        return false;
    }
    return true;
}

/* The next answer on f->c, after sending req when not NULL; false (the test
 * failed) when none came. */
static bool again(struct fx *f, const char *req, bool no_body)
{
    if ((req && hc_send(&f->c, req) < 0) || hc_read(&f->c, &f->r, no_body) < 0) {
        t_fail(__FILE__, __LINE__, "\"%.30s\": %s", req ? req : "(next)", f->r.why);
        return false;
    }
    return true;
}

static void test_statuses_and_headers(void)
{
    static const struct {
        const char *query;
        int want;
        const char *line;
    } st[] = {
        { "200", 200, "HTTP/1.1 200 OK\r\n" },
        { "404", 404, "HTTP/1.1 404 Not Found\r\n" },
        { "500", 500, "HTTP/1.1 500 Internal Server Error\r\n" },
        { "503", 503, "HTTP/1.1 503 Service Unavailable\r\n" },
        { "299", 299, "HTTP/1.1 299 \r\n" },
        { "0", 500, "HTTP/1.1 500 Internal Server Error\r\n" },   /* not a status */
        { "700", 500, "HTTP/1.1 500 Internal Server Error\r\n" },
        { "204", 500, "HTTP/1.1 500 Internal Server Error\r\n" }, /* cannot carry a body */
    };
    struct fx f;
    char v[128], req[128];

    if (!fx_start(&f, 0, 0))
        return;
    T_CHECK(f.port > 0 && f.port < 65536);
    if (ask(&f, REQ("/ok"), false)) {
        T_EQ_INT(f.r.status, 200);
        T_CHECK(!strncmp(f.r.head.ptr, "HTTP/1.1 200 OK\r\n", 17));
        T_CHECK(hc_header(&f.r, "Content-Type", v, sizeof(v)) && !strcmp(v, "text/plain"));
        T_CHECK(hc_header(&f.r, "Content-Length", v, sizeof(v)) && !strcmp(v, "6"));
        T_CHECK(hc_header(&f.r, "Cache-Control", v, sizeof(v)) && !strcmp(v, "no-store"));
        T_CHECK(hc_header(&f.r, "X-Test", v, sizeof(v)) && !strcmp(v, "1"));
        T_CHECK(hc_header(&f.r, "Date", v, sizeof(v)) && strlen(v) == 29 &&
                !strcmp(v + 25, " GMT") && v[3] == ',');
        T_CHECK(!hc_header(&f.r, "Connection", v, sizeof(v))); /* kept alive */
        T_CHECK(!hc_header(&f.r, "Allow", v, sizeof(v)));
        T_EQ_STR(f.r.body.ptr, "hello\n");
    }
    hc_close(&f.c);
    /* the path and query as the handler sees them */
    if (ask(&f, REQ("/echo?a=%20b&c"), false))
        T_EQ_STR(f.r.body.ptr, "GET /echo ? a=%20b&c");
    hc_close(&f.c);
    if (ask(&f, "GET http://t:1/echo?q HTTP/1.1\r\nHost: t\r\n\r\n", false))
        T_EQ_STR(f.r.body.ptr, "GET /echo ? q");
    hc_close(&f.c);
    if (ask(&f, REQ("/nowhere"), false)) {
        T_EQ_INT(f.r.status, 404);
        T_EQ_STR(f.r.body.ptr, "not found\n");
    }
    hc_close(&f.c);
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        snprintf(req, sizeof(req), "GET /status?%s HTTP/1.1\r\nHost: t\r\n\r\n", st[i].query);
        if (ask(&f, req, false)) {
            if (f.r.status != st[i].want || strncmp(f.r.head.ptr, st[i].line, strlen(st[i].line)))
                t_fail(__FILE__, __LINE__, "status %s: \"%.40s\", want \"%s\"", st[i].query,
                       f.r.head.ptr, st[i].line);
            T_CHECK(hc_header(&f.r, "Content-Length", v, sizeof(v)) &&
                    strtoul(v, NULL, 10) == f.r.body.len);
        }
    }
    fx_end(&f);
}

static void test_head(void)
{
    struct fx f;
    char v[64];
    int reads, dones;

    if (!fx_start(&f, 0, 0))
        return;
    /* HEAD then GET on one connection: the length GET would have, no body
     * bytes in between */
    if (ask(&f, "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n", true)) {
        T_EQ_INT(f.r.status, 200);
        T_CHECK(hc_header(&f.r, "Content-Length", v, sizeof(v)) && !strcmp(v, "13")); /* HEAD */
        T_EQ_INT(f.r.body.len, 0);
        T_EQ_STR(seen.method, "HEAD");
        if (again(&f, REQ("/echo"), false))
            T_EQ_STR(f.r.body.ptr, "GET /echo ? ");
    }
    /* a streamed body is never produced for HEAD, and its producer is done with */
    reads = atomic_load(&seen.reads);
    dones = atomic_load(&seen.dones);
    if (ask(&f, "HEAD /stream?100000 HTTP/1.1\r\nHost: t\r\n\r\n" REQ("/ok"), true)) {
        T_EQ_INT(f.r.status, 200);
        T_CHECK(f.r.chunked);
        T_CHECK(!hc_header(&f.r, "Content-Length", v, sizeof(v)));
        if (again(&f, NULL, false))
            T_EQ_STR(f.r.body.ptr, "hello\n");
        T_EQ_INT(atomic_load(&seen.reads), reads);
        T_EQ_INT(atomic_load(&seen.dones), dones + 1);
    }
    fx_end(&f);
}

/* The server's own answers: each with its status, body, the extra headers,
 * and the connection kept or closed as it should be. */
static void test_own_answers(void)
{
    static const struct {
        const char *req;
        int status;
        bool closes;
        const char *body;
    } cases[] = {
        { "POST /ok HTTP/1.1\r\nHost: t\r\n\r\n", 405, false, "method not allowed\n" },
        { "DELETE /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405, false,
          "method not allowed\n" },
        { "POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nx=1", 405, true,
          "method not allowed\n" },
        { "PUT /ok HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
          405, true, "method not allowed\n" },
        { "GET /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 413, true,
          "request bodies are not accepted\n" },
        { "GET /ok HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413, true,
          "request bodies are not accepted\n" },
        { "GET /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 200, false, "hello\n" },
        { "GET /ok HTTP/1.1\r\n\r\n", 400, true, NULL },        /* no Host */
        { "GET /ok  HTTP/1.1\r\nHost: t\r\n\r\n", 400, true, NULL },
        { "GET ok HTTP/1.1\r\nHost: t\r\n\r\n", 400, true, NULL },
        { "GET /ok HTTP/2.0\r\nHost: t\r\n\r\n", 400, true, NULL },
        { "GET /ok\r\n\r\n", 400, true, NULL },                   /* HTTP/0.9 */
        { "\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\r\n\r\n", 400, true, NULL },
        { "GET /ok HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n", 400, true, NULL },
        { "GET /ok HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400, true, NULL },
    };
    struct fx f;
    char v[64];

    if (!fx_start(&f, 0, 0))
        return;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int before = atomic_load(&seen.requests);
        if (!ask(&f, cases[i].req, false))
            continue;
        if (f.r.status != cases[i].status)
            t_fail(__FILE__, __LINE__, "case %zu: %d, want %d", i, f.r.status, cases[i].status);
        if (cases[i].body && strcmp(f.r.body.ptr, cases[i].body))
            t_fail(__FILE__, __LINE__, "case %zu: body \"%s\"", i, f.r.body.ptr);
        if (f.r.status == 400 && strncmp(f.r.body.ptr, "bad request: ", 13))
            t_fail(__FILE__, __LINE__, "case %zu: body \"%s\"", i, f.r.body.ptr);
        if ((f.r.status == 405) !=
            (hc_header(&f.r, "Allow", v, sizeof(v)) && !strcmp(v, "GET, HEAD")))
            t_fail(__FILE__, __LINE__, "case %zu: Allow wrong", i);
        if (!hc_header(&f.r, "X-Test", v, sizeof(v)))
            t_fail(__FILE__, __LINE__, "case %zu: no extra headers", i);
        if (cases[i].status != 200 && atomic_load(&seen.requests) != before)
            t_fail(__FILE__, __LINE__, "case %zu: the handler was called", i);
        if (cases[i].closes) {
            if (!hc_header(&f.r, "Connection", v, sizeof(v)) || strcmp(v, "close") ||
                !hc_closed(&f.c))
                t_fail(__FILE__, __LINE__, "case %zu: the connection was not closed", i);
        } else {
            /* still open: the next request is answered */
            if (!again(&f, REQ("/ok"), false) || f.r.status != 200)
                t_fail(__FILE__, __LINE__, "case %zu: not kept alive", i);
        }
    }
    fx_end(&f);
}

static void test_oversize_head(void)
{
    struct fx f;
    char *big;
    size_t n;

    if (!fx_start(&f, 0, 0))
        return;
    big = malloc(HREQ_HEAD_MAX + 100);
    /* just under the cap: answered */
    n = (size_t)snprintf(big, HREQ_HEAD_MAX, "GET /ok HTTP/1.1\r\nHost: t\r\nX-Pad: ");
    memset(big + n, 'a', HREQ_HEAD_MAX - n - 4);
    memcpy(big + HREQ_HEAD_MAX - 4, "\r\n\r\n", 5);
    if (ask(&f, big, false))
        T_EQ_INT(f.r.status, 200);
    /* one byte over: 431 and closed, without waiting for the rest */
    n = (size_t)snprintf(big, HREQ_HEAD_MAX, "GET /ok HTTP/1.1\r\nHost: t\r\nX-Pad: ");
    memset(big + n, 'a', HREQ_HEAD_MAX + 1 - n - 4);
    memcpy(big + HREQ_HEAD_MAX + 1 - 4, "\r\n\r\n", 5);
    if (ask(&f, big, false)) {
        T_EQ_INT(f.r.status, 431);
        T_CHECK(hc_closed(&f.c));
    }
    /* no line end at all */
    memset(big, 'G', HREQ_HEAD_MAX + 100);
    big[HREQ_HEAD_MAX + 99] = '\0';
    if (ask(&f, big, false)) {
        T_EQ_INT(f.r.status, 431);
        T_CHECK(hc_closed(&f.c));
    }
    free(big);
    fx_end(&f);
}

/* A large body sent after a head that is refused: the answer is read whole,
 * then the close, while the client is still sending (the server drains what
 * it does not read instead of resetting the connection under the answer). */
static void test_refused_body_drained(void)
{
    static const char head[] = "PUT /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 4000000\r\n\r\n";
    struct fx f;
    char *body;

    if (!fx_start(&f, 0, 0))
        return;
    body = malloc(4000000);
    memset(body, 'b', 4000000);
    if (hc_open(&f.c, AF_INET, f.port) < 0 || hc_send(&f.c, head) < 0 ||
        hc_send_n(&f.c, body, 4000000) < 0) {
        t_fail(__FILE__, __LINE__, "sending the body: %s", strerror(errno));
    } else if (hc_read(&f.c, &f.r, false) < 0) {
        t_fail(__FILE__, __LINE__, "%s", f.r.why);
    } else {
        T_EQ_INT(f.r.status, 405);
        T_CHECK(hc_closed(&f.c));
    }
    free(body);
    fx_end(&f);
}

/* Requests sent together are answered in order on one connection; the last
 * says Connection: close and is the last answered. */
static void test_pipelined(void)
{
    static const char reqs[] = REQ("/ok") "HEAD /ok HTTP/1.1\r\nHost: t\r\n\r\n" REQ(
        "/stream?70000") "\r\n" REQ("/echo?2") "GET /echo?last HTTP/1.1\r\nHost: t\r\n"
                                           "Connection: close\r\n\r\n" REQ("/echo?never");
    struct fx f;
    char v[64];
    int before;

    if (!fx_start(&f, 0, 0))
        return;
    before = atomic_load(&seen.requests);
    if (!ask(&f, reqs, false))
        goto out;
    T_EQ_STR(f.r.body.ptr, "hello\n");
    if (!again(&f, NULL, true))
        goto out;
    T_CHECK(f.r.status == 200 && !f.r.body.len);
    if (!again(&f, NULL, false))
        goto out;
    T_CHECK(f.r.chunked && stream_ok(&f.r.body, 70000));
    if (!again(&f, NULL, false))
        goto out;
    T_EQ_STR(f.r.body.ptr, "GET /echo ? 2");
    if (!again(&f, NULL, false))
        goto out;
    T_EQ_STR(f.r.body.ptr, "GET /echo ? last");
    T_CHECK(hc_header(&f.r, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
    T_CHECK(hc_closed(&f.c));
    T_EQ_INT(atomic_load(&seen.requests) - before, 5);
out:
    fx_end(&f);
}

static void test_http10(void)
{
    struct fx f;
    char v[64];

    if (!fx_start(&f, 0, 0))
        return;
    if (ask(&f, "GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false)) {
        T_EQ_INT(f.r.status, 200);
        T_CHECK(!strncmp(f.r.head.ptr, "HTTP/1.1 200 OK\r\n", 17));
        T_CHECK(hc_header(&f.r, "Content-Length", v, sizeof(v)) && !strcmp(v, "6"));
        T_CHECK(hc_header(&f.r, "Connection", v, sizeof(v)) && !strcmp(v, "close"));
        T_EQ_STR(f.r.body.ptr, "hello\n");
        T_CHECK(hc_closed(&f.c));
    }
    /* a streamed body: not chunked, it ends with the connection */
    if (ask(&f, "GET /stream?300001 HTTP/1.0\r\n\r\n", false)) {
        T_CHECK(!f.r.chunked);
        T_CHECK(!hc_header(&f.r, "Content-Length", v, sizeof(v)));
        T_CHECK(stream_ok(&f.r.body, 300001));
    }
    fx_end(&f);
}

/* A 5 MB body made a piece at a time, read back chunk by chunk, byte for byte;
 * its producer is done with exactly once. */
static void test_stream_large(void)
{
    struct fx f;
    int dones;

    if (!fx_start(&f, 0, 0))
        return;
    dones = atomic_load(&seen.dones);
    if (ask(&f, REQ("/stream?5000003"), false)) {
        T_EQ_INT(f.r.status, 200);
        T_CHECK(f.r.chunked);
        T_CHECK(f.r.chunks > 5000003 / HSRV_PIECE_MAX);
        if (!stream_ok(&f.r.body, 5000003))
            t_fail(__FILE__, __LINE__, "body of %zu bytes differs", f.r.body.len);
        T_EQ_INT(atomic_load(&seen.dones), dones + 1);
        /* the connection is still good */
        if (again(&f, REQ("/stream?0"), false))
            T_CHECK(f.r.chunked && !f.r.body.len);
    }
    fx_end(&f);
}

/* A producer that fails: the body ends without its last chunk (the client
 * can tell it is incomplete), the producer is done with once. */
static void test_stream_error(void)
{
    struct fx f;
    int dones;

    if (!fx_start(&f, 0, 0))
        return;
    dones = atomic_load(&seen.dones);
    if (hc_open(&f.c, AF_INET, f.port) == 0 && hc_send(&f.c, REQ("/fail?50000")) == 0) {
        T_CHECK(hc_read(&f.c, &f.r, false) < 0);
        T_CHECK(strstr(f.r.why, "chunk") != NULL);
        T_CHECK(f.r.status == 200 && f.r.body.len > 50000 && f.r.body.len < 200000);
        T_CHECK(hc_closed(&f.c));
    } else {
        t_fail(__FILE__, __LINE__, "connect: %s", strerror(errno));
    }
    T_EQ_INT(atomic_load(&seen.dones), dones + 1);
    fx_end(&f);
}

/* A client that asked for 64 MB and reads nothing (a small receive window)
 * holds its connection, not the server: another client is answered. */
static void test_slow_reader(void)
{
    struct hc slow = { .fd = -1 };
    struct fx f;
    int dones;

    if (!fx_start(&f, 0, 0))
        return;
    dones = atomic_load(&seen.dones);
    if (hc_open_buf(&slow, AF_INET, f.port, 4096) < 0 ||
        hc_send(&slow, REQ("/stream?67108864")) < 0) {
        t_fail(__FILE__, __LINE__, "connect: %s", strerror(errno));
        goto out;
    }
    usleep(100 * 1000); /* the server fills the socket and has to wait */
    for (int i = 0; i < 3; i++)
        if (ask(&f, REQ("/ok"), false))
            T_EQ_INT(f.r.status, 200);
    T_EQ_INT(atomic_load(&seen.dones), dones); /* the stream is still going */
    hc_close(&slow);
    /* its producer is done with once the server sees it gone */
    for (int i = 0; i < 200 && atomic_load(&seen.dones) == dones; i++)
        usleep(10 * 1000);
    T_EQ_INT(atomic_load(&seen.dones), dones + 1);
out:
    hc_close(&slow);
    fx_end(&f);
}

/* An idle connection (fresh, between requests, or mid-head) is closed after
 * the idle timeout; one making progress is not. */
static void test_idle_timeout(void)
{
    struct fx f;

    if (!fx_start(&f, 0, 300))
        return;
    if (hc_open(&f.c, AF_INET, f.port) == 0)
        T_CHECK(hc_closed(&f.c)); /* said nothing */
    hc_close(&f.c);
    if (ask(&f, REQ("/ok"), false))
        T_CHECK(hc_closed(&f.c)); /* nothing after the answer */
    hc_close(&f.c);
    if (hc_open(&f.c, AF_INET, f.port) == 0) {
        /* a head sent slowly, each piece well inside the timeout, is answered */
        static const char *const parts[] = { "GET /ok HT", "TP/1.1\r\nHo", "st: t\r\n", "\r\n" };
        for (size_t i = 0; i < 4; i++) {
            usleep(100 * 1000);
            T_RC(hc_send(&f.c, parts[i]), 0);
        }
        if (again(&f, NULL, false))
            T_EQ_INT(f.r.status, 200);
        T_RC(hc_send(&f.c, "GET /ok HT"), 0); /* then stops mid-head */
        T_CHECK(hc_closed(&f.c));
    }
    fx_end(&f);
}

/* With a limit of 3, a 4th connection is closed at once; once one of the 3
 * goes, a new one is served. */
static void test_connection_limit(void)
{
    struct hc kept[3] = { { .fd = -1 }, { .fd = -1 }, { .fd = -1 } };
    struct fx f;
    bool served = false;

    if (!fx_start(&f, 3, 0))
        return;
    for (int i = 0; i < 3; i++) { /* accepted and kept */
        if (ask(&f, REQ("/ok"), false))
            T_EQ_INT(f.r.status, 200);
        kept[i] = f.c;
        f.c = (struct hc){ .fd = -1 };
    }
    if (hc_open(&f.c, AF_INET, f.port) == 0) {
        hc_send(&f.c, REQ("/ok"));
        T_CHECK(hc_closed(&f.c));
    }
    for (int i = 0; i < 3; i++) /* the three still work */
        if (hc_send(&kept[i], REQ("/ok")) < 0 || hc_read(&kept[i], &f.r, false) < 0 ||
            f.r.status != 200)
            t_fail(__FILE__, __LINE__, "connection %d: %s", i, f.r.why);
    hc_close(&kept[0]);
    /* the server frees the slot when it sees the close: retry until then */
    for (int i = 0; i < 100 && !served; i++) {
        hc_close(&f.c);
        served = hc_open(&f.c, AF_INET, f.port) == 0 && hc_send(&f.c, REQ("/ok")) == 0 &&
                 hc_read(&f.c, &f.r, false) == 0 && f.r.status == 200;
        if (!served)
            usleep(20 * 1000);
    }
    T_CHECK(served);
    for (int i = 0; i < 3; i++)
        hc_close(&kept[i]);
    fx_end(&f);
}

/* Open descriptors, as the process metrics count them (base/proc.h); -1 when unreadable. */
static int count_fds(void)
{
    struct proc_stats ps;

    return proc_stats_read(&ps) == 0 ? (int)ps.open_fds : -1;
}

static void nop_handler(struct hsrv_resp *out, void *ctx, const struct hsrv_req *req)
{
    (void)ctx, (void)req;
    out->status = 200;
}

static void test_addresses(void)
{
    static const char *const bad[] = { "9090", "localhost", ":", ":99999", ":90a", "::1:80",
                                       "[::1]80", "[::1", "host:-1", "a b:80" };
    static const char *const bad_headers[] = { "X: 1", "X: 1\n", "NoColon\r\n", ": v\r\n",
                                               "X: 1\r\n\r\n", "X: a\x01\r\n" };
    struct hsrv *s = NULL;
    struct hc c = { .fd = -1 };
    struct hc_resp r = { 0 };
    int fds = count_fds(), port;
    char addr[64];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = hsrv_start(&s, &(struct hsrv_opts){ .addr = bad[i], .handler = nop_handler });
        if (rc != ERR_INVALID)
            t_fail(__FILE__, __LINE__, "address \"%s\": %d, want ERR_INVALID", bad[i], rc);
        T_CHECK(s == NULL);
    }
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++)
        T_RC(hsrv_start(&s, &(struct hsrv_opts){ .addr = ":0", .handler = nop_handler,
                                                 .headers = bad_headers[i] }),
             ERR_INVALID);
    T_RC(hsrv_start(&s, &(struct hsrv_opts){ .addr = ":0" }), ERR_INVALID); /* no handler */
    T_RC(hsrv_start(&s, &(struct hsrv_opts){ .addr = ":0", .handler = nop_handler,
                                             .max_conns = -1 }),
         ERR_INVALID);
    T_RC(hsrv_start(&s, &(struct hsrv_opts){ .addr = "192.0.2.1:0", .handler = nop_handler }),
         ERR_IO); /* not a local address */
    T_CHECK(s == NULL);

    /* every address: one socket for IPv6 and IPv4 */
    T_RC(hsrv_start(&s, &(struct hsrv_opts){ .addr = ":0", .handler = nop_handler }), 0);
    if (s) {
        port = hsrv_port(s);
        T_CHECK(port > 0);
        for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
            if (hc_open(&c, family, port) < 0) {
                T_CHECK(family == AF_INET6); /* a host without IPv6 loopback */
                continue;
            }
            T_RC(hc_send(&c, REQ("/")), 0);
            T_RC(hc_read(&c, &r, false), 0);
            T_EQ_INT(r.status, 200);
            hc_close(&c);
        }
        /* the port is taken while it runs */
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        {
            struct hsrv *s2 = NULL;
            T_RC(hsrv_start(&s2, &(struct hsrv_opts){ .addr = addr, .handler = nop_handler }),
                 ERR_IO);
            T_CHECK(s2 == NULL);
        }
        hsrv_stop(s);
        s = NULL;
        /* and free once it stopped */
        T_CHECK(hc_open(&c, AF_INET, port) < 0);
        hc_close(&c);
    }
    if (hc_open(&c, AF_INET6, 1) < 0 && errno != ECONNREFUSED) {
        /* no IPv6 loopback here: nothing more to try */
    } else {
        hc_close(&c);
        T_RC(hsrv_start(&s, &(struct hsrv_opts){ .addr = "[::1]:0", .handler = nop_handler }), 0);
        if (s) {
            T_CHECK(hc_open(&c, AF_INET6, hsrv_port(s)) == 0);
            hc_close(&c);
            T_CHECK(hc_open(&c, AF_INET, hsrv_port(s)) < 0); /* IPv6 only */
            hsrv_stop(s);
            s = NULL;
        }
    }
    hc_close(&c);
    T_RC(hsrv_start(&s, &(struct hsrv_opts){ .addr = "localhost:0", .handler = nop_handler }), 0);
    hsrv_stop(s);
    hsrv_stop(NULL);
    hc_resp_release(&r);
    T_EQ_INT(count_fds(), fds);
}

/* hsrv_stop with a stream in progress and idle connections open: it returns,
 * the producer is done with, every descriptor is closed. */
static void test_stop_mid_stream(void)
{
    int fds = count_fds(), dones = atomic_load(&seen.dones);
    struct hc idle = { .fd = -1 };
    struct fx f;

    if (!fx_start(&f, 0, 0))
        return;
    if (hc_open_buf(&f.c, AF_INET, f.port, 4096) < 0 ||
        hc_send(&f.c, REQ("/stream?67108864")) < 0 || hc_open(&idle, AF_INET, f.port) < 0)
        t_fail(__FILE__, __LINE__, "connect: %s", strerror(errno));
    /* the stream has begun once the first bytes arrive */
    T_CHECK(hc_fill(&f.c) > 0);
    hsrv_stop(f.s);
    f.s = NULL;
    T_EQ_INT(atomic_load(&seen.dones), dones + 1);
    T_CHECK(hc_closed(&idle));
    hc_close(&idle);
    fx_end(&f);
    T_EQ_INT(count_fds(), fds);
}

static uint64_t rnd_state;

static uint32_t rnd(void)
{
    return seeded_next(&rnd_state);
}

/* Random bytes, and real requests with random bytes changed, on many
 * connections that then half-close: every answer is a well-formed HTTP/1.1
 * response, the server outlives it all and still answers. Deterministic. */
static void test_random_bytes(void)
{
    static const char *const seeds[] = {
        REQ("/ok") REQ("/stream?3000"),
        "HEAD /echo?x HTTP/1.0\r\n\r\n",
        "GET /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab",
    };
    struct fx f;
    int answered = 0;

    if (!fx_start(&f, 4, 2000))
        return;
    rnd_state = 0x2545F4914F6CDD1DULL;
    for (int it = 0; it < 300; it++) {
        char tmp[512];
        size_t n;

        if (it % 3 == 0) {
            n = rnd() % sizeof(tmp);
            for (size_t i = 0; i < n; i++)
                tmp[i] = (char)(rnd() & 0xff);
        } else {
            const char *seed = seeds[rnd() % 3];
            n = strlen(seed);
            memcpy(tmp, seed, n);
            for (int k = (int)(rnd() % 3); k >= 0; k--)
                tmp[rnd() % n] = (char)(rnd() & 0xff);
        }
        if (hc_open(&f.c, AF_INET, f.port) < 0 || hc_send_n(&f.c, tmp, n) < 0) {
            hc_close(&f.c);
            continue; /* the server may close first: fine */
        }
        shutdown(f.c.fd, SHUT_WR);
        /* whatever comes back must be responses, then the close */
        while (!hc_closed(&f.c)) {
            if (hc_read(&f.c, &f.r, !strncmp(tmp, "HEAD ", 5)) < 0) {
                if (strncmp(f.r.why, "the stream ended inside a response head (0", 42) &&
                    !strstr(f.r.why, "chunk"))
                    t_fail(__FILE__, __LINE__, "iteration %d: %s", it, f.r.why);
                break;
            }
            answered++;
            if (f.r.status == 400)
                break; /* a HEAD it could not parse gets a body: the stream is done */
        }
        hc_close(&f.c);
    }
    T_CHECK(answered > 50);
    if (ask(&f, REQ("/ok"), false))
        T_EQ_INT(f.r.status, 200);
    fx_end(&f);
}

int main(void)
{
    log_set_level(LOG_OFF);
    T_RUN(test_statuses_and_headers);
    T_RUN(test_head);
    T_RUN(test_own_answers);
    T_RUN(test_oversize_head);
    T_RUN(test_refused_body_drained);
    T_RUN(test_pipelined);
    T_RUN(test_http10);
    T_RUN(test_stream_large);
    T_RUN(test_stream_error);
    T_RUN(test_slow_reader);
    T_RUN(test_idle_timeout);
    T_RUN(test_connection_limit);
    T_RUN(test_addresses);
    T_RUN(test_stop_mid_stream);
    T_RUN(test_random_bytes);
    return t_done();
}
