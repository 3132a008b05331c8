#include "net/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/banned.h"

#define HTTP_DEFAULT_MAX_BODY (8u << 20)

struct http_client {
    CURL *curl;
    struct http_opts opts;
};

int http_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(ERR_IO, "libcurl failed to initialise");
    return 0;
}

void http_global_cleanup(void)
{
    curl_global_cleanup();
}

static int set_tls(CURL *h, const struct http_tls *t)
{
    CURLcode rc = CURLE_OK;

    if (t->ca_pem) {
        struct curl_blob blob = { (void *)t->ca_pem, strlen(t->ca_pem), CURL_BLOB_COPY };
        rc = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    } else if (t->ca_file) {
        rc = curl_easy_setopt(h, CURLOPT_CAINFO, t->ca_file);
    }
    if (rc == CURLE_OK && t->cert_pem) {
        struct curl_blob blob = { (void *)t->cert_pem, strlen(t->cert_pem), CURL_BLOB_COPY };
        rc = curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (rc == CURLE_OK && t->cert_file) {
        rc = curl_easy_setopt(h, CURLOPT_SSLCERT, t->cert_file);
    }
    if (rc == CURLE_OK && t->key_pem) {
        struct curl_blob blob = { (void *)sbuf_expose(t->key_pem), sbuf_len(t->key_pem),
                                  CURL_BLOB_COPY };
        rc = curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
    } else if (rc == CURLE_OK && t->key_file) {
        rc = curl_easy_setopt(h, CURLOPT_SSLKEY, t->key_file);
    }
    if (rc == CURLE_OK && t->insecure_skip_tls_verify) {
        rc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (rc != CURLE_OK)
        return err_set(ERR_INVALID, "TLS options not accepted by libcurl: %s",
                       curl_easy_strerror(rc));
    return 0;
}

int http_client_new(struct http_client **out, const struct http_opts *opts)
{
    struct http_client *c = xcalloc(1, sizeof(*c));
    int rc;

    c->opts = *opts;
    if (!c->opts.connect_timeout_ms)
        c->opts.connect_timeout_ms = 5000;
    if (!c->opts.timeout_ms)
        c->opts.timeout_ms = 30000;
    if (!c->opts.max_body)
        c->opts.max_body = HTTP_DEFAULT_MAX_BODY;
    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        return err_set(ERR_IO, "libcurl could not create a handle");
    }
    if ((rc = set_tls(c->curl, &c->opts.tls)) < 0) {
        http_client_free(c);
        return rc;
    }
    /* Request bodies are small (patches, Events, token forms): the smallest
     * upload buffer libcurl allows (16 KB) instead of its 64 KB, per handle. */
    curl_easy_setopt(c->curl, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    *out = c;
    return 0;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

void http_resp_release(struct http_resp *r)
{
    if (r->body.ptr)
        OPENSSL_cleanse(r->body.ptr, r->body.cap);
    buf_release(&r->body);
    r->status = 0;
    r->retry_after_s = 0;
    r->content_type[0] = '\0';
}

/* Retry-After is either delta-seconds or an HTTP-date (RFC 9110 10.2.3). */
static int64_t parse_retry_after(const char *v)
{
    struct tm tm;
    char *end;
    long long n;

    while (*v == ' ')
        v++;
    n = strtoll(v, &end, 10);
    if (end != v && n >= 0)
        return n > 86400 ? 86400 : n;
    memset(&tm, 0, sizeof(tm));
    if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
        int64_t when = (int64_t)timegm(&tm) - clock_wall_s();
        return when > 0 ? (when > 86400 ? 86400 : when) : 0;
    }
    return 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    struct http_resp *r = userp;
    size_t len = size * n;
    char line[256];

    if (len >= sizeof(line))
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (!strncasecmp(line, "HTTP/", 5)) {
        /* a new response (after a redirect or 100-continue) */
        r->retry_after_s = 0;
        r->content_type[0] = '\0';
    } else if (!strncasecmp(line, "Retry-After:", 12)) {
        r->retry_after_s = parse_retry_after(line + 12);
    } else if (!strncasecmp(line, "Content-Type:", 13)) {
        const char *v = line + 13;
        while (*v == ' ')
            v++;
        snprintf(r->content_type, sizeof(r->content_type), "%s", v);
    }
    return len;
}

struct body_ctx {
    struct http_resp *resp;
    int rc;
};

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct body_ctx *b = userp;

    if (buf_add(&b->resp->body, data, size * n) < 0) {
        b->rc = ERR_TOOBIG;
        return 0;
    }
    return size * n;
}

static struct curl_slist *wiping_append(struct curl_slist *l, const char *s)
{
    struct curl_slist *n = curl_slist_append(l, s);

    if (!n)
        abort(); /* out of memory, as everywhere else */
    return n;
}

/* Frees a header list after wiping each line: one of them is a credential. */
static void wipe_slist(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

static struct curl_slist *build_headers(const struct http_req *req)
{
    struct curl_slist *h = NULL;
    char line[160];

    snprintf(line, sizeof(line), "Accept: %s", req->accept ? req->accept : "application/json");
    h = wiping_append(h, line);
    if (req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        h = wiping_append(h, line);
    }
    h = wiping_append(h, "Expect:"); /* no 100-continue round trip */
    if (req->bearer) {
        struct sbuf *auth = sbuf_new(sbuf_len(req->bearer) + 32);
        sbuf_addstr(auth, "Authorization: Bearer ");
        sbuf_addsb(auth, req->bearer);
        h = wiping_append(h, sbuf_expose(auth));
        sbuf_free(auth);
    }
    for (const char *const *p = req->headers; p && *p; p++)
        h = wiping_append(h, *p);
    return h;
}

static int map_curl_error(CURLcode cc, const char *url, const char *detail)
{
    /* The URL never holds a secret here: tokens travel in headers and bodies. */
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
        return err_set(ERR_TLS, "TLS with %s failed: %s", url, *detail ? detail : curl_easy_strerror(cc));
    default:
        return err_set(ERR_UNAVAILABLE, "request to %s failed: %s", url,
                       *detail ? detail : curl_easy_strerror(cc));
    }
}

static void setup(CURL *h, const struct http_client *c, const struct http_req *req,
                  struct curl_slist *hdrs, struct http_resp *resp, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT,
                     c->opts.user_agent ? c->opts.user_agent : "pgtoken-rotator/" PGTR_VERSION);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL);
    if (req->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(h, CURLOPT_HTTPGET, !strcmp(req->method, "GET") ? 1L : 0L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        if (!strcmp(req->method, "POST") || !strcmp(req->method, "PUT") ||
            !strcmp(req->method, "PATCH")) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
    }
    curl_easy_setopt(h, CURLOPT_NOBODY, !strcmp(req->method, "HEAD") ? 1L : 0L);
}

static void reset_for_next(CURL *h)
{
    /* Drop per-request options that point at our stack; keep TLS and the
     * connection cache. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, NULL);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 0L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 0L);
}

int http_do(struct http_resp *out, struct http_client *c, const struct http_req *req)
{
    struct curl_slist *hdrs = build_headers(req);
    struct body_ctx bctx = { out, 0 };
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode cc;
    int rc = 0;

    http_resp_release(out);
    buf_init(&out->body, c->opts.max_body);
    setup(c->curl, c, req, hdrs, out, errbuf);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : c->opts.timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &bctx);
    cc = curl_easy_perform(c->curl);
    if (bctx.rc)
        rc = err_set(ERR_TOOBIG, "response from %s is over %zu bytes", req->url, c->opts.max_body);
    else if (cc != CURLE_OK)
        rc = map_curl_error(cc, req->url, errbuf);
    else
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &out->status);
    reset_for_next(c->curl);
    wipe_slist(hdrs);
    return rc;
}

struct stream_ctx {
    struct http_resp *resp;
    struct buf line;
    http_line_fn on_line;
    void *ctx;
    const atomic_bool *stop;
    int rc;      /* the callback's stop value, or ERR_TOOBIG */
    bool status_read;
    CURL *curl;
};

static size_t on_stream(char *data, size_t size, size_t n, void *userp)
{
    struct stream_ctx *s = userp;
    size_t len = size * n, start = 0;

    if (!s->status_read) {
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->resp->status);
        s->status_read = true;
    }
    if (s->resp->status < 200 || s->resp->status > 299)
        return buf_add(&s->resp->body, data, len) < 0 ? 0 : len;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (buf_add(&s->line, data + start, i - start) < 0) {
            s->rc = err_set(ERR_TOOBIG, "watch event over %zu bytes", s->line.max);
            return 0;
        }
        start = i + 1;
        if (s->line.len) {
            int r = s->on_line(s->ctx, s->line.ptr, s->line.len);
            OPENSSL_cleanse(s->line.ptr, s->line.len); /* events carry Secret data */
            buf_reset(&s->line);
            if (r) {
                s->rc = r;
                return 0;
            }
        }
    }
    if (start < len && buf_add(&s->line, data + start, len - start) < 0) {
        s->rc = err_set(ERR_TOOBIG, "watch event over %zu bytes", s->line.max);
        return 0;
    }
    return len;
}

static int on_progress(void *userp, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const struct stream_ctx *s = userp;

    (void)dt, (void)dn, (void)ut, (void)un;
    return s->stop && atomic_load(s->stop) ? 1 : 0;
}

int http_stream(struct http_resp *resp, struct http_client *c, const struct http_req *req,
                http_line_fn on_line, void *ctx, const atomic_bool *stop, long idle_timeout_s,
                size_t max_line)
{
    struct curl_slist *hdrs = build_headers(req);
    struct stream_ctx s = { resp, BUF_INIT(max_line), on_line, ctx, stop, 0, false, c->curl };
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode cc;
    int rc = 0;

    http_resp_release(resp);
    buf_init(&resp->body, 64 * 1024);
    setup(c->curl, c, req, hdrs, resp, errbuf);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &s);
    if (idle_timeout_s > 0) {
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, idle_timeout_s);
    }
    cc = curl_easy_perform(c->curl);
    if (!s.status_read)
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (s.rc)
        rc = s.rc;
    else if (cc == CURLE_ABORTED_BY_CALLBACK)
        rc = 0; /* asked to stop */
    else if (cc == CURLE_OPERATION_TIMEDOUT && resp->status >= 200 && resp->status < 300)
        rc = err_set(ERR_UNAVAILABLE, "stream from %s went quiet for %lds", req->url, idle_timeout_s);
    else if (cc != CURLE_OK && !(resp->status >= 200 && resp->status < 300 && cc == CURLE_PARTIAL_FILE))
        rc = map_curl_error(cc, req->url, errbuf);
    reset_for_next(c->curl);
    if (s.line.ptr)
        OPENSSL_cleanse(s.line.ptr, s.line.cap);
    buf_release(&s.line);
    wipe_slist(hdrs);
    return rc;
}
