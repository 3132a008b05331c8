/* Kubernetes API requests: one call in, a parsed object or a mapped error out.
 *
 * struct kube_client is shared by all threads (server URL, TLS options, the
 * credential source); struct kube_conn is one thread's connection to it.
 * Statuses map to lib/base/err.h codes so that callers act on one code:
 *   2xx -> 0; 400/422 -> ERR_INVALID; 401/403 -> ERR_DENIED; 404 -> ERR_NOTFOUND;
 *   409 -> ERR_CONFLICT; 410 -> ERR_GONE; 429, 5xx -> ERR_UNAVAILABLE (with
 *   err_retry_after_s() from Retry-After); 415 and others -> ERR_INVALID.
 * The message is the server's Status message when it sent one. */
#ifndef PGTR_KCLIENT_H
#define PGTR_KCLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "base/sbuf.h"
#include "net/http.h"

/* Gives the current bearer token (*out NULL when the client authenticates by
 * certificate) and its generation. Called before every request; must be
 * thread-safe. */
typedef int (*kube_bearer_fn)(struct sbuf **out, uint64_t *generation, void *ctx);
/* The server answered 401 to the credential of this generation: drop it so
 * the next kube_bearer_fn call fetches a new one (exec plugin, token file). */
typedef void (*kube_unauthorized_fn)(void *ctx, uint64_t generation);
/* After every HTTP exchange with the server (any thread): verb is the method,
 * or "WATCH"; status 0 when no response came; latency_ms how long it took
 * (a watch: how long the stream lasted). For metrics. */
typedef void (*kube_observe_fn)(void *ctx, const char *verb, long status, int64_t latency_ms);

struct kube_client_opts {
    const char *server;       /* https://host:port, no trailing slash needed */
    struct http_opts http;    /* TLS to the API server */
    kube_bearer_fn bearer;
    kube_unauthorized_fn unauthorized; /* may be NULL */
    void *bearer_ctx;
    kube_observe_fn observe;  /* may be NULL */
    void *observe_ctx;
    size_t max_object;        /* cap on one response; default 16 MiB */
};

struct kube_client;
struct kube_conn;

/* Counters for metrics: requests by verb and status class. */
struct kube_stats {
    atomic_long requests;
    atomic_long errors;
    atomic_long conflicts;
    atomic_long throttled;
};

int kube_client_new(struct kube_client **out, const struct kube_client_opts *opts);
void kube_client_free(struct kube_client *c);
const char *kube_client_server(const struct kube_client *c);
struct kube_stats *kube_client_stats(struct kube_client *c);

/* A connection for the calling thread. */
int kube_conn_new(struct kube_conn **out, struct kube_client *c);
void kube_conn_free(struct kube_conn *k);

/* Sends method to path (which starts with "/", query included). body may be
 * NULL. 0: *out is the parsed response object, NULL for an empty body (free
 * with json_wipe_delete: responses may carry Secret data); out may be NULL
 * when the reply is not wanted, which is then not parsed (and wiped unread). A 401 drops the
 * credential and the request is sent once more with a fresh one, as
 * client-go does for exec plugins and rotated token files. */
int kube_call(cJSON **out, struct kube_conn *k, const char *method, const char *path,
              const char *content_type, const char *body, size_t body_len);

/* The same with the reply not parsed: rv gets the object's
 * metadata.resourceVersion from it ("" when it has none that can be read). */
#define KUBE_RV_MAX 64
int kube_call_rv(char rv[KUBE_RV_MAX], struct kube_conn *k, const char *method,
                 const char *path, const char *content_type, const char *body, size_t body_len);

/* Streams a watch: on_line receives each event line. See http_stream. A
 * non-2xx reply maps to an error code as above (a 410 at the start is
 * ERR_GONE). Returns 0 when the server closed the stream normally. */
int kube_watch(struct kube_conn *k, const char *path, http_line_fn on_line, void *ctx,
               const atomic_bool *stop, long idle_timeout_s);

#endif
