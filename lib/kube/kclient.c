#include "kube/kclient.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/banned.h"

#define KUBE_DEFAULT_MAX_OBJECT (16u << 20)
#define KUBE_URL_MAX 8192
#define KUBE_WATCH_LINE_MAX (4u << 20)

struct kube_client {
    char *server;
    struct kube_client_opts opts;
    struct kube_stats stats;
};

struct kube_conn {
    struct kube_client *c;
    struct http_client *http;
};

int kube_client_new(struct kube_client **out, const struct kube_client_opts *opts)
{
    struct kube_client *c;
    size_t n;

    if (!opts->server || strncmp(opts->server, "https://", 8))
        return err_set(ERR_INVALID, "API server URL must start with https://");
    c = xcalloc(1, sizeof(*c));
    c->opts = *opts;
    c->server = xstrdup(opts->server);
    n = strlen(c->server);
    while (n && c->server[n - 1] == '/')
        c->server[--n] = '\0';
    c->opts.server = c->server;
    if (!c->opts.max_object)
        c->opts.max_object = KUBE_DEFAULT_MAX_OBJECT;
    c->opts.http.max_body = c->opts.max_object;
    *out = c;
    return 0;
}

void kube_client_free(struct kube_client *c)
{
    if (!c)
        return;
    free(c->server);
    free(c);
}

const char *kube_client_server(const struct kube_client *c)
{
    return c->server;
}

struct kube_stats *kube_client_stats(struct kube_client *c)
{
    return &c->stats;
}

int kube_conn_new(struct kube_conn **out, struct kube_client *c)
{
    struct kube_conn *k = xcalloc(1, sizeof(*k));
    int rc;

    k->c = c;
    if ((rc = http_client_new(&k->http, &c->opts.http)) < 0) {
        free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void kube_conn_free(struct kube_conn *k)
{
    if (!k)
        return;
    http_client_free(k->http);
    free(k);
}

/* The reason apimachinery gives a status code, for replies that carry no
 * Status (a 429 from priority and fairness is plain text; proxies send HTML). */
static const char *code_reason(long status)
{
    switch (status) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "RequestEntityTooLarge";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "Unknown";
    }
}

/* Maps a non-2xx reply to a code, with the Status message when there is one. */
static int status_error(const struct http_resp *r, const char *method, const char *path)
{
    const char *msg = NULL, *reason = NULL;
    cJSON *st = NULL;
    int code;

    if (r->body.len && json_parse(&st, r->body.ptr, r->body.len, r->body.max) == 0) {
        msg = json_str(st, "message");
        reason = json_str(st, "reason");
    }
    if (!reason || !*reason)
        reason = code_reason(r->status);
    switch (r->status) {
    case 400:
    case 422: code = ERR_INVALID; break;
    case 401:
    case 403: code = ERR_DENIED; break;
    case 404: code = ERR_NOTFOUND; break;
    case 409: code = ERR_CONFLICT; break;
    case 410: code = ERR_GONE; break;
    case 429: code = ERR_UNAVAILABLE; break;
    default: code = r->status >= 500 ? ERR_UNAVAILABLE : ERR_INVALID;
    }
    err_set(code, "%s %s: %ld %s%s%s", method, path, r->status, reason, msg ? ": " : "",
            msg ? msg : "");
    if (code == ERR_UNAVAILABLE)
        err_set_retry_after_s(r->retry_after_s);
    json_wipe_delete(st);
    return code;
}

static int make_url(struct buf *url, const struct kube_conn *k, const char *path)
{
    buf_init(url, KUBE_URL_MAX);
    if (buf_addstr(url, k->c->server) < 0 || buf_addstr(url, path) < 0)
        return err_set(ERR_TOOBIG, "request path over %d bytes", KUBE_URL_MAX);
    return 0;
}

static const char *const rv_path[] = { "metadata", "resourceVersion", NULL };

static int call_once(cJSON **out, char *rv, struct kube_conn *k, const char *method,
                     const char *path, const char *content_type, const char *body,
                     size_t body_len, bool *unauthorized)
{
    struct http_resp resp = HTTP_RESP_INIT;
    struct buf url;
    struct sbuf *bearer = NULL;
    uint64_t gen = 0;
    cJSON *obj = NULL;
    int64_t t0;
    int rc;

    *unauthorized = false;
    if ((rc = make_url(&url, k, path)) < 0)
        goto out;
    if (k->c->opts.bearer && (rc = k->c->opts.bearer(&bearer, &gen, k->c->opts.bearer_ctx)) < 0)
        goto out;
    struct http_req req = { .method = method, .url = url.ptr, .content_type = content_type,
                            .body = body, .body_len = body_len, .bearer = bearer };
    atomic_fetch_add(&k->c->stats.requests, 1);
    t0 = clock_mono_ms();
    rc = http_do(&resp, k->http, &req);
    if (k->c->opts.observe)
        k->c->opts.observe(k->c->opts.observe_ctx, method, rc < 0 ? 0 : resp.status,
                           clock_mono_ms() - t0);
    if (rc < 0)
        goto out;
    if (resp.status < 200 || resp.status > 299) {
        rc = status_error(&resp, method, path);
        if (rc == ERR_CONFLICT)
            atomic_fetch_add(&k->c->stats.conflicts, 1);
        if (resp.status == 429)
            atomic_fetch_add(&k->c->stats.throttled, 1);
        if (resp.status == 401 && k->c->opts.unauthorized) {
            k->c->opts.unauthorized(k->c->opts.bearer_ctx, gen);
            *unauthorized = true;
        }
        goto out;
    }
    /* No out: the caller does not read the reply (a PATCH returns the whole
     * Secret): do not parse it; at most find its resourceVersion. */
    if (rv && json_scan_string(rv, KUBE_RV_MAX, resp.body.ptr, resp.body.len, rv_path) < 0)
        rv[0] = '\0';
    if (out && resp.body.len &&
        (rc = json_parse(&obj, resp.body.ptr, resp.body.len, resp.body.max)) < 0) {
        rc = err_wrap(rc, "%s %s: response", method, path);
        goto out;
    }
    if (out)
        *out = obj;
    obj = NULL;
    rc = 0;
out:
    if (rc < 0)
        atomic_fetch_add(&k->c->stats.errors, 1);
    json_wipe_delete(obj);
    http_resp_release(&resp);
    sbuf_free(bearer);
    buf_release(&url);
    return rc;
}

/* call_once, and once more after a 401 that dropped the credential. */
static int call(cJSON **out, char *rv, struct kube_conn *k, const char *method, const char *path,
                const char *content_type, const char *body, size_t body_len)
{
    bool unauthorized;
    int rc = call_once(out, rv, k, method, path, content_type, body, body_len, &unauthorized);

    if (rc == ERR_DENIED && unauthorized)
        rc = call_once(out, rv, k, method, path, content_type, body, body_len, &unauthorized);
    return rc;
}

int kube_call(cJSON **out, struct kube_conn *k, const char *method, const char *path,
              const char *content_type, const char *body, size_t body_len)
{
    return call(out, NULL, k, method, path, content_type, body, body_len);
}

int kube_call_rv(char rv[KUBE_RV_MAX], struct kube_conn *k, const char *method,
                 const char *path, const char *content_type, const char *body, size_t body_len)
{
    rv[0] = '\0';
    return call(NULL, rv, k, method, path, content_type, body, body_len);
}

int kube_watch(struct kube_conn *k, const char *path, http_line_fn on_line, void *ctx,
               const atomic_bool *stop, long idle_timeout_s)
{
    struct http_resp resp = HTTP_RESP_INIT;
    struct buf url;
    struct sbuf *bearer = NULL;
    uint64_t gen = 0;
    int64_t t0;
    int rc;

    if ((rc = make_url(&url, k, path)) < 0)
        goto out;
    if (k->c->opts.bearer && (rc = k->c->opts.bearer(&bearer, &gen, k->c->opts.bearer_ctx)) < 0)
        goto out;
    struct http_req req = { .method = "GET", .url = url.ptr, .bearer = bearer };
    atomic_fetch_add(&k->c->stats.requests, 1);
    t0 = clock_mono_ms();
    rc = http_stream(&resp, k->http, &req, on_line, ctx, stop, idle_timeout_s, KUBE_WATCH_LINE_MAX);
    if (k->c->opts.observe)
        k->c->opts.observe(k->c->opts.observe_ctx, "WATCH", resp.status, clock_mono_ms() - t0);
    if (rc == 0 && resp.status && (resp.status < 200 || resp.status > 299)) {
        rc = status_error(&resp, "WATCH", path);
        if (resp.status == 401 && k->c->opts.unauthorized)
            k->c->opts.unauthorized(k->c->opts.bearer_ctx, gen); /* the retry gets a new one */
    }
out:
    if (rc < 0)
        atomic_fetch_add(&k->c->stats.errors, 1);
    http_resp_release(&resp);
    sbuf_free(bearer);
    buf_release(&url);
    return rc;
}
