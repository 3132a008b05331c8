/* The operations listener: /metrics, /healthz and /readyz over plain HTTP,
 * served by net/hsrv on one thread of its own.
 *
 *   GET /metrics  200, the registry in the Prometheus text format 0.0.4,
 *                 rendered a piece at a time as the client reads it (chunked,
 *                 no Content-Length); 404 when no registry was given
 *   GET /healthz  200 "ok" while the controller's main loop turns: the last
 *                 httpd_heartbeat() is at most heartbeat_timeout_ms old
 *                 (the start counts as one); else 500 naming its age
 *   GET /readyz   200 "ok" once ready() says so (the initial list is synced;
 *                 a standby replica in leader election is ready too); else 503
 *   HEAD works like GET; other methods are 405, other paths 404. A query
 *   string is ignored.
 *
 * Nothing secret is reachable: the bodies are the metrics (names, counts,
 * times) and fixed texts. Requests are capped as net/hsrv caps them: a 32 KiB
 * head and no body, HTTPD_MAX_CONNECTIONS connections and an idle timeout of
 * HTTPD_IDLE_TIMEOUT_S. Thread-safe: httpd_heartbeat may be called from any
 * thread. */
#ifndef PGTR_HTTPD_H
#define PGTR_HTTPD_H

#include <stdbool.h>

#include "app/metrics.h"

#define HTTPD_DEFAULT_HEARTBEAT_TIMEOUT_MS 30000
#define HTTPD_MAX_CONNECTIONS 32
#define HTTPD_IDLE_TIMEOUT_S 10

struct httpd_opts {
    /* "host:port", ":port" (every address, IPv6 and IPv4), "[v6addr]:port";
     * port 0 picks a free one (httpd_port tells which). NULL, "" or "0": off. */
    const char *addr;
    struct metrics *metrics;          /* what /metrics serves; NULL: 404 */
    long heartbeat_timeout_ms;        /* 0: HTTPD_DEFAULT_HEARTBEAT_TIMEOUT_MS */
    bool (*ready)(void *ctx);         /* /readyz; NULL: always ready */
    void *ready_ctx;
};

struct httpd;

/* True when addr means "no listener". */
bool httpd_addr_off(const char *addr);

/* Binds and starts serving. 0: *out is running, or NULL when the address says
 * off (every function below accepts NULL). ERR_INVALID for a malformed
 * address (message names it); ERR_IO when it cannot be bound (in use, not
 * local, no permission) or the server cannot start. o->metrics and the ready
 * context must outlive the server. */
int httpd_start(struct httpd **out, const struct httpd_opts *o);

/* Stops serving (waits for requests in progress), closes the socket, frees h. */
void httpd_stop(struct httpd *h);

/* The bound port (the chosen one when the address said 0); 0 for NULL. */
int httpd_port(const struct httpd *h);

/* Records that the main loop turned (now). */
void httpd_heartbeat(struct httpd *h);

#endif
