#include "app/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/banned.h"

#define HTTPD_ADDR_MAX 300
#define HTTPD_CONN_MEMORY (32u << 10)
/* The most MHD asks the metrics reader for at once. */
#define HTTPD_METRICS_BLOCK (16u << 10)

struct httpd {
    struct MHD_Daemon *d;
    struct metrics *metrics;
    long heartbeat_timeout_ms;
    bool (*ready)(void *ctx);
    void *ready_ctx;
    int port;
    _Atomic int64_t heartbeat_ms; /* monotonic */
};

bool httpd_addr_off(const char *addr)
{
    return !addr || !*addr || !strcmp(addr, "0");
}

/* Splits "host:port", ":port" or "[v6]:port". host is "" for every address. */
static int split_addr(char host[HTTPD_ADDR_MAX], char port[8], const char *addr)
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
    if (hl >= HTTPD_ADDR_MAX || strlen(colon + 1) < 1 || strlen(colon + 1) > 5 ||
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
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (dual)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, len) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

/* A listening socket for addr. */
static int listen_on(int *out, int *port, const char *addr)
{
    char host[HTTPD_ADDR_MAX] = "", portstr[8] = "";
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
        close(fd);
        return err_set(ERR_IO, "listen on %s: %s", addr, strerror(errno));
    }
    *port = ntohs(bound.sa.sa_family == AF_INET6 ? bound.in6.sin6_port : bound.in.sin_port);
    *out = fd;
    return 0;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http_server_error", LOG_STR("detail", msg));
}

/* Adds the common headers to r, queues it and drops our reference. */
static enum MHD_Result send_response(struct MHD_Connection *conn, unsigned status, const char *type,
                                     struct MHD_Response *r)
{
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* body is copied. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len)
{
    return send_response(conn, status, type,
                         MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY));
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result text(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
{
    char body[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    return reply(conn, status, "text/plain; charset=utf-8", body, (size_t)n);
}

/* MHD asks for the body piece by piece (at most its write buffer, a few KB):
 * the exposition of 10,000 Secrets (2 MB) is never held whole. */
static ssize_t metrics_read(void *cls, uint64_t pos, char *out, size_t max)
{
    long n = metrics_scrape_read(cls, out, max);

    (void)pos;
    if (n < 0) {
        /* Too late for a 500: closing without the last chunk tells the
         * client the body is incomplete. */
        log_error("metrics_render_failed", LOG_ERR((int)n));
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void metrics_done(void *cls)
{
    metrics_scrape_free(cls);
}

static enum MHD_Result serve_metrics(struct httpd *h, struct MHD_Connection *conn)
{
    struct metrics_scrape *s;
    struct MHD_Response *r;

    if (!h->metrics)
        return text(conn, MHD_HTTP_NOT_FOUND, "no metrics\n");
    s = metrics_scrape_start(h->metrics);
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTPD_METRICS_BLOCK, metrics_read, s,
                                          metrics_done);
    if (!r) {
        metrics_scrape_free(s);
        return MHD_NO;
    }
    return send_response(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, r);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct httpd *h = cls;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (!strcmp(url, "/metrics"))
        return serve_metrics(h, conn);
    if (!strcmp(url, "/healthz")) {
        int64_t age = clock_mono_ms() - atomic_load(&h->heartbeat_ms);
        if (age > h->heartbeat_timeout_ms)
            return text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                        "unhealthy: the main loop last turned %lld ms ago\n", (long long)age);
        return text(conn, MHD_HTTP_OK, "ok\n");
    }
    if (!strcmp(url, "/readyz")) {
        if (h->ready && !h->ready(h->ready_ctx))
            return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "not ready: the initial list of Secrets is not synced\n");
        return text(conn, MHD_HTTP_OK, "ok\n");
    }
    return text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

int httpd_start(struct httpd **out, const struct httpd_opts *o)
{
    struct httpd *h;
    int fd = -1, port = 0, rc;

    *out = NULL;
    if (httpd_addr_off(o->addr))
        return 0;
    if ((rc = listen_on(&fd, &port, o->addr)) < 0)
        return rc;
    h = xcalloc(1, sizeof(*h));
    h->metrics = o->metrics;
    h->heartbeat_timeout_ms = o->heartbeat_timeout_ms > 0 ? o->heartbeat_timeout_ms
                                                          : HTTPD_DEFAULT_HEARTBEAT_TIMEOUT_MS;
    h->ready = o->ready;
    h->ready_ctx = o->ready_ctx;
    h->port = port;
    atomic_store(&h->heartbeat_ms, clock_mono_ms());
    h->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_MAX_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY,
                            MHD_OPTION_END);
    if (!h->d) {
        close(fd);
        free(h);
        return err_set(ERR_IO, "the HTTP server on %s did not start", o->addr);
    }
    log_info("http_listening", LOG_STR("address", o->addr), LOG_I64("port", port));
    *out = h;
    return 0;
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d); /* closes the listening socket too */
    free(h);
}

int httpd_port(const struct httpd *h)
{
    return h ? h->port : 0;
}

void httpd_heartbeat(struct httpd *h)
{
    if (h)
        atomic_store(&h->heartbeat_ms, clock_mono_ms());
}
