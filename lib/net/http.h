/* HTTP/1.1 client over OpenSSL. One struct http_client keeps one connection
 * (keep-alive, reused across calls while it goes to the same host and port):
 * use one per thread. TLS is verified as net/tls.h says (TLS 1.2 or later, the
 * CA, the server's name or IP address) unless the loudly named insecure flag
 * is set; ALPN offers only http/1.1.
 *
 * Proxies come from the environment when the client is made, as curl and Go
 * read them: https:// URLs go through a CONNECT tunnel to https_proxy (or
 * HTTPS_PROXY, all_proxy, ALL_PROXY), http:// URLs to http_proxy (or
 * HTTP_PROXY, all_proxy, ALL_PROXY) in absolute form, except for hosts that
 * no_proxy (or NO_PROXY) covers: "*", names and their subdomains (".svc" or
 * "svc"), IP addresses and CIDR blocks. Only http:// proxies without
 * credentials are supported (ERR_INVALID from http_client_new otherwise).
 *
 * Bodies of responses are kept in a capped buffer and wiped on release, since
 * token endpoints put tokens in them. Bearer credentials are given as a
 * struct sbuf and never copied into memory that is not wiped. */
#ifndef PGTR_HTTP_H
#define PGTR_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/sbuf.h"
#include "net/tls.h"

struct http_opts {
    struct tls_opts tls;
    long connect_timeout_ms; /* default 5000 */
    long timeout_ms;         /* whole request; default 30000; 0 in a stream means none */
    size_t max_body;         /* response cap; default 8 MiB */
    const char *user_agent;
};

struct http_client;

/* 0: *out is ready; ERR_INVALID for a proxy setting that cannot be used. The
 * TLS material is copied; it is read at the first https request (a CA,
 * certificate or key that cannot be used is then that request's ERR_TLS). */
int http_client_new(struct http_client **out, const struct http_opts *opts);
void http_client_free(struct http_client *c);

struct http_req {
    const char *method;      /* "GET", "POST", "PATCH", ... */
    const char *url;
    const char *content_type; /* for a body; NULL if none */
    const char *accept;       /* NULL: application/json */
    const char *body;         /* may point into a secret buffer: it is not copied */
    size_t body_len;
    const struct sbuf *bearer; /* Authorization: Bearer <bearer>; NULL for none */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
    long timeout_ms;          /* 0: the client's default */
};

struct http_resp {
    long status;
    struct buf body;
    int64_t retry_after_s; /* from Retry-After, 0 if absent */
    char content_type[128];
};

#define HTTP_RESP_INIT { 0, BUF_INIT(0), 0, { 0 } }

/* Wipes and frees the body. */
void http_resp_release(struct http_resp *r);

/* Sends req and reads the whole response. 0: *out holds any status (the
 * caller decides what a status means); ERR_UNAVAILABLE when the server could
 * not be reached or timed out; ERR_TLS when TLS failed (certificate not
 * trusted, handshake); ERR_TOOBIG when the body passed max_body. */
int http_do(struct http_resp *out, struct http_client *c, const struct http_req *req);

/* Streams a response line by line (Kubernetes watch). on_line gets each line
 * without its newline; returning non-zero stops the stream (that value is
 * returned). Before the first line, status and headers are in *resp (its
 * body collects the response when status is not 2xx, for the error). The
 * stream also ends when *stop becomes true (checked at least every second),
 * when no byte arrives for idle_timeout_s (the wait for the status line
 * included), or on a line over max_line. Returns 0 when the server ended the
 * stream, cleanly or by closing the connection inside it. */
typedef int (*http_line_fn)(void *ctx, const char *line, size_t len);
int http_stream(struct http_resp *resp, struct http_client *c, const struct http_req *req,
                http_line_fn on_line, void *ctx, const atomic_bool *stop, long idle_timeout_s,
                size_t max_line);

/* Once per process, before threads start. */
int http_global_init(void);
void http_global_cleanup(void);

#endif
