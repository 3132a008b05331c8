#include "app/httpd.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/hsrv.h"
#include "base/banned.h"

#define HTTPD_TEXT "text/plain; charset=utf-8"
/* On every response, the server's own answers (400, 405, ...) included. */
#define HTTPD_HEADERS "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"

struct httpd {
    struct hsrv *srv;
    struct metrics *metrics;
    long heartbeat_timeout_ms;
    bool (*ready)(void *ctx);
    void *ready_ctx;
    _Atomic int64_t heartbeat_ms; /* monotonic */
};

bool httpd_addr_off(const char *addr)
{
    return !addr || !*addr || !strcmp(addr, "0");
}

static void text(struct hsrv_resp *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void text(struct hsrv_resp *out, int status, const char *fmt, ...)
{
    va_list ap;

    out->status = status;
    out->content_type = HTTPD_TEXT;
    va_start(ap, fmt);
    buf_vaddf(out->body, fmt, ap); /* short texts, far below the body's cap */
    va_end(ap);
}

/* The server asks for the body a piece at a time (HSRV_PIECE_MAX at most):
 * the exposition of 10,000 Secrets (2 MB) is never held whole. */
static long metrics_read(void *ctx, char *out, size_t max)
{
    long n = metrics_scrape_read(ctx, out, max);

    if (n < 0) {
        /* Too late for a 500: closing without the last chunk tells the
         * client the body is incomplete. */
        log_error("metrics_render_failed", LOG_ERR((int)n));
    }
    return n;
}

static void metrics_done(void *ctx)
{
    metrics_scrape_free(ctx);
}

static void handle(struct hsrv_resp *out, void *ctx, const struct hsrv_req *req)
{
    struct httpd *h = ctx;

    if (!strcmp(req->path, "/metrics")) {
        if (!h->metrics) {
            text(out, 404, "no metrics\n");
            return;
        }
        out->status = 200;
        out->content_type = METRICS_CONTENT_TYPE;
        out->read = metrics_read;
        out->done = metrics_done;
        out->ctx = metrics_scrape_start(h->metrics);
    } else if (!strcmp(req->path, "/healthz")) {
        int64_t age = clock_mono_ms() - atomic_load(&h->heartbeat_ms);
        if (age > h->heartbeat_timeout_ms)
            text(out, 500, "unhealthy: the main loop last turned %lld ms ago\n", (long long)age);
        else
            text(out, 200, "ok\n");
    } else if (!strcmp(req->path, "/readyz")) {
        if (h->ready && !h->ready(h->ready_ctx))
            text(out, 503, "not ready: the initial list of Secrets is not synced\n");
        else
            text(out, 200, "ok\n");
    } else {
        text(out, 404, "not found\n");
    }
}

int httpd_start(struct httpd **out, const struct httpd_opts *o)
{
    struct hsrv_opts so = { .addr = o->addr, .handler = handle,
                            .max_conns = HTTPD_MAX_CONNECTIONS,
                            .idle_timeout_ms = HTTPD_IDLE_TIMEOUT_S * 1000L,
                            .headers = HTTPD_HEADERS };
    struct httpd *h;
    int rc;

    *out = NULL;
    if (httpd_addr_off(o->addr))
        return 0;
    h = xcalloc(1, sizeof(*h));
    h->metrics = o->metrics;
    h->heartbeat_timeout_ms = o->heartbeat_timeout_ms > 0 ? o->heartbeat_timeout_ms
                                                          : HTTPD_DEFAULT_HEARTBEAT_TIMEOUT_MS;
    h->ready = o->ready;
    h->ready_ctx = o->ready_ctx;
    atomic_store(&h->heartbeat_ms, clock_mono_ms());
    so.ctx = h;
    if ((rc = hsrv_start(&h->srv, &so)) < 0) {
        free(h);
        return rc;
    }
    log_info("http_listening", LOG_STR("address", o->addr), LOG_I64("port", hsrv_port(h->srv)));
    *out = h;
    return 0;
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    hsrv_stop(h->srv); /* waits for its thread: no handler runs after this */
    free(h);
}

int httpd_port(const struct httpd *h)
{
    return h ? hsrv_port(h->srv) : 0;
}

void httpd_heartbeat(struct httpd *h)
{
    if (h)
        atomic_store(&h->heartbeat_ms, clock_mono_ms());
}
