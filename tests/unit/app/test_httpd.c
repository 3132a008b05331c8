/* lib/app/httpd over loopback with the raw client of tests/unit/net/hclient.h:
 * every path and status with the texts and headers that probes and scrapers
 * get, HEAD, the server's own 405 and 400 with the same headers, and /metrics
 * streamed in chunks equal to a direct scrape. (test_metrics.c checks the
 * same endpoints through the project's client, net/http.) */
#include "t.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/httpd.h"
#include "app/metrics.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "../net/hclient.h"
#include "expo.h"

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"
#define TEXT "text/plain; charset=utf-8"

static bool ready_flag(void *ctx)
{
    return atomic_load((atomic_bool *)ctx);
}

/* One request on connection c (opened on first use); the answer in r. */
static bool get(struct hc *c, struct hc_resp *r, int port, const char *req, bool no_body)
{
    if (c->fd < 0 && hc_open(c, AF_INET, port) < 0) {
        t_fail(__FILE__, __LINE__, "connect: %s", strerror(errno));
        return false;
    }
    if (hc_send(c, req) < 0 || hc_read(c, r, no_body) < 0) {
        t_fail(__FILE__, __LINE__, "\"%.30s\": %s", req, r->why);
        return false;
    }
    return true;
}

/* status, Content-Type and body as given, and the headers every answer has. */
static void check(int line, const struct hc_resp *r, int status, const char *type,
                  const char *body)
{
    char v[128];

    if (r->status != status)
        t_fail(__FILE__, line, "status %d, want %d", r->status, status);
    else if (!hc_header(r, "Content-Type", v, sizeof(v)) || strcmp(v, type))
        t_fail(__FILE__, line, "Content-Type wrong");
    else if (!hc_header(r, "Cache-Control", v, sizeof(v)) || strcmp(v, "no-store"))
        t_fail(__FILE__, line, "Cache-Control wrong");
    else if (!hc_header(r, "X-Content-Type-Options", v, sizeof(v)) || strcmp(v, "nosniff"))
        t_fail(__FILE__, line, "X-Content-Type-Options wrong");
    else if (body && strcmp(r->body.ptr ? r->body.ptr : "", body))
        t_fail(__FILE__, line, "body \"%s\", want \"%s\"", r->body.ptr, body);
}

#define CHECK(r, status, type, body) check(__LINE__, r, status, type, body)

/* The text without its process_* samples (they change between two scrapes). */
static void drop_process_samples(struct buf *out, const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) + 1 : strlen(text);
        if (strncmp(text, "process_", 8))
            buf_add(out, text, n);
        text += n;
    }
}

static void test_paths(void)
{
    struct metrics *m = metrics_new();
    atomic_bool ready = false;
    struct httpd *h = NULL;
    struct hc c = { .fd = -1 };
    struct hc_resp r = { 0 };
    struct buf direct = BUF_INIT(PROM_RENDER_MAX), a = BUF_INIT(PROM_RENDER_MAX),
               b = BUF_INIT(PROM_RENDER_MAX);
    struct expo x = { 0 };
    char v[64], piece[4096];
    long n;
    int port;

    T_RC(metrics_register_app(m, &(struct metrics_sources){ 0 }), 0);
    for (long code = 100; code < 600; code++) /* 500 series: a scrape of many chunks */
        metrics_api_request(m, "GET", code, 5);
    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = "127.0.0.1:0", .metrics = m,
                                               .heartbeat_timeout_ms = 300, .ready = ready_flag,
                                               .ready_ctx = &ready }),
         0);
    if (!h)
        goto out;
    port = httpd_port(h);

    if (get(&c, &r, port, REQ("/metrics"), false)) {
        struct metrics_scrape *s = metrics_scrape_start(m);
        CHECK(&r, 200, METRICS_CONTENT_TYPE, NULL);
        T_CHECK(r.chunked && r.chunks > 1 && r.body.len > 32768);
        T_CHECK(!hc_header(&r, "Content-Length", v, sizeof(v)));
        if (expo_parse(&x, r.body.ptr) < 0)
            t_fail(__FILE__, __LINE__, "exposition over HTTP rejected: %s", x.why);
        T_CHECK(expo_get(&x, "pgtoken_rotator_kube_api_requests_total", "verb=get,code=404") ==
                1);
        T_CHECK(expo_get(&x, "pgtoken_rotator_kube_api_requests_total", "verb=get,code=599") ==
                1);
        expo_free(&x);
        while ((n = metrics_scrape_read(s, piece, sizeof(piece))) > 0)
            buf_add(&direct, piece, (size_t)n);
        metrics_scrape_free(s);
        drop_process_samples(&a, r.body.ptr);
        drop_process_samples(&b, buf_str(&direct));
        T_CHECK(a.len > 32768 && a.len == b.len && !memcmp(a.ptr, b.ptr, a.len));
    }
    /* on the same connection: HEAD gets the headers and no body */
    if (get(&c, &r, port, "HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n", true)) {
        CHECK(&r, 200, METRICS_CONTENT_TYPE, "");
        T_CHECK(r.chunked);
    }
    if (get(&c, &r, port, "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n", true)) {
        CHECK(&r, 200, TEXT, "");
        T_CHECK(hc_header(&r, "Content-Length", v, sizeof(v)) && !strcmp(v, "3"));
    }
    if (get(&c, &r, port, REQ("/healthz"), false))
        CHECK(&r, 200, TEXT, "ok\n");
    if (get(&c, &r, port, REQ("/readyz"), false))
        CHECK(&r, 503, TEXT, "not ready: the initial list of Secrets is not synced\n");
    atomic_store(&ready, true);
    if (get(&c, &r, port, REQ("/readyz?verbose=1"), false))
        CHECK(&r, 200, TEXT, "ok\n");
    if (get(&c, &r, port, REQ("/"), false))
        CHECK(&r, 404, TEXT, "not found\n");
    if (get(&c, &r, port, REQ("/metrics/"), false))
        CHECK(&r, 404, TEXT, "not found\n");
    if (get(&c, &r, port, REQ("/Healthz"), false))
        CHECK(&r, 404, TEXT, "not found\n");
    if (get(&c, &r, port, "POST /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false)) {
        CHECK(&r, 405, TEXT, "method not allowed\n");
        T_CHECK(hc_header(&r, "Allow", v, sizeof(v)) && !strcmp(v, "GET, HEAD"));
    }
    /* a stale heartbeat fails /healthz, naming its age; a new one heals it */
    usleep(500 * 1000);
    if (get(&c, &r, port, REQ("/healthz"), false)) {
        CHECK(&r, 500, TEXT, NULL);
        T_CHECK(!strncmp(r.body.ptr, "unhealthy: the main loop last turned ", 37) &&
                strstr(r.body.ptr, " ms ago\n"));
    }
    httpd_heartbeat(h);
    if (get(&c, &r, port, REQ("/healthz"), false))
        CHECK(&r, 200, TEXT, "ok\n");
    /* the server's own 400 carries the same headers, and closes */
    if (get(&c, &r, port, "GET /healthz HTTP/1.1\r\n\r\n", false)) {
        CHECK(&r, 400, TEXT, NULL);
        T_CHECK(hc_closed(&c));
    }
    hc_close(&c);
out:
    httpd_stop(h);
    hc_resp_release(&r);
    buf_release(&direct);
    buf_release(&a);
    buf_release(&b);
    metrics_free(m);
}

static void test_no_registry(void)
{
    struct httpd *h = NULL;
    struct hc c = { .fd = -1 };
    struct hc_resp r = { 0 };

    T_RC(httpd_start(&h, &(struct httpd_opts){ .addr = ":0" }), 0);
    if (!h)
        return;
    if (get(&c, &r, httpd_port(h), REQ("/metrics"), false))
        CHECK(&r, 404, TEXT, "no metrics\n");
    if (get(&c, &r, httpd_port(h), REQ("/readyz"), false))
        CHECK(&r, 200, TEXT, "ok\n"); /* no ready callback: ready */
    hc_close(&c);
    hc_resp_release(&r);
    httpd_stop(h);
}

int main(void)
{
    log_set_level(LOG_OFF);
    T_RUN(test_paths);
    T_RUN(test_no_registry);
    return t_done();
}
