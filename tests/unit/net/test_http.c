/* lib/net/http through its header, against servers in this file: threads on
 * 127.0.0.1 (port 0) that read each request whole, record it and answer with
 * canned bytes, over TCP or over TLS with keys and certificates made here, and
 * a CONNECT proxy. What is checked is the contract of http.h, not the way one
 * implementation meets it: statuses and bodies, response framing, keep-alive
 * and closed connections, Retry-After, the request on the wire, timeouts, TLS
 * verification and client certificates, streams, proxies from the
 * environment. Every wait has a deadline: a client that hangs fails its test
 * after a few seconds instead of hanging the run. */
#include "t.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/sbuf.h"
#include "base/sleep.h"
#include "net/http.h"
#include "testpki.h"

/* In a canned reply: what came before goes out as its own write (its own TLS
 * record), then a pause, so that the client reads it apart from what follows. */
#define SPLIT "\x01"
/* In a canned reply: the server closes the connection here. */
#define CLOSE "\x02"

/* The longest a server waits for a byte: longer than any client takes to give
 * up (idle streams: 5 s at most), so that in a passing run no server does. */
#define IO_MS 6000
#define MAX_REQS 8
#define OK2 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define EMPTY200 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
#define STREAM_HEAD                                                                            \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
/* Every client's bounds: no call may outlast them by much. */
#define OPTS { .connect_timeout_ms = 2000, .timeout_ms = 3000 }
/* In a step: any rc < 0. */
#define ANY_ERROR INT_MIN

/* ---- servers ----------------------------------------------------------------------------- */

struct srv {
    const char *const *replies; /* the answer to each request in turn, across connections:
                                   "" answers nothing; at the NULL the connection is closed */
    SSL_CTX *tls;               /* NULL: plain TCP */
    bool proxy;                 /* relays a CONNECT to 127.0.0.1 at the port it names */
    bool running;
    int fd, port;
    pthread_t th;
    /* read by the test after srv_stop */
    int accepts, nreq;
    char req[MAX_REQS][4096]; /* each request as it came (its first 4 KiB): head and body */
    size_t len[MAX_REQS];     /* and its whole length */
    char peer[256];           /* the subject of the client's certificate */
};

/* The number of header lines called name in the head of a request or
 * response; the first one's value into out. */
static int header(char *out, size_t size, const char *msg, const char *name)
{
    size_t nl = strlen(name);
    int n = 0;

    for (const char *p = strstr(msg, "\r\n"); p && p[2] && p[2] != '\r';
         p = strstr(p + 2, "\r\n")) {
        const char *v;
        if (strncasecmp(p + 2, name, nl) || p[2 + nl] != ':')
            continue;
        v = p + 3 + nl + strspn(p + 3 + nl, " ");
        if (!n++)
            snprintf(out, size, "%.*s", (int)strcspn(v, "\r"), v);
    }
    return n;
}

static const char *body_of(const char *msg)
{
    const char *end = strstr(msg, "\r\n\r\n");

    return end ? end + 4 : "";
}

/* Reads one request (its head and a Content-Length body) to the front of *in;
 * its length in *len. false when the connection ended or went quiet. */
static bool next_request(int fd, SSL *ssl, struct buf *in, size_t *len)
{
    for (;;) {
        const char *end = strstr(buf_str(in), "\r\n\r\n");
        char v[32], tmp[4096];
        int n;

        if (end) {
            *len = (size_t)(end + 4 - in->ptr);
            if (header(v, sizeof(v), in->ptr, "Content-Length"))
                *len += strtoul(v, NULL, 10);
            if (in->len >= *len)
                return true;
        }
        n = ssl ? SSL_read(ssl, tmp, sizeof(tmp)) : (int)recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0 || buf_add(in, tmp, (size_t)n) < 0)
            return false;
    }
}

/* Writes reply, cut at each SPLIT; false at a CLOSE or when the client is gone. */
static bool answer(int fd, SSL *ssl, const char *reply)
{
    for (;;) {
        size_t n = strcspn(reply, SPLIT CLOSE);
        if (n && (ssl ? SSL_write(ssl, reply, (int)n) != (int)n
                      : send(fd, reply, n, MSG_NOSIGNAL) != (ssize_t)n))
            return false;
        reply += n;
        if (!*reply)
            return true;
        if (*reply++ == CLOSE[0])
            return false;
        sleep_unless_stopped(20, NULL);
    }
}

/* The tunnel of a CONNECT to target ("host:port HTTP/1.1..."), to 127.0.0.1:
 * bytes copied both ways until either side closes or goes quiet. */
static void relay(int fd, const char *target)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    const char *colon = strchr(target, ':');
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = up, .events = POLLIN } };
    char tmp[16384];

    if (!colon || up < 0)
        goto out;
    a.sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10));
    if (connect(up, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL) < 0)
        goto out;
    while (poll(p, 2, IO_MS) > 0) {
        for (int i = 0; i < 2; i++) {
            ssize_t n = p[i].revents ? recv(p[i].fd, tmp, sizeof(tmp), 0) : 1;
            if (n <= 0 || (p[i].revents && send(p[1 - i].fd, tmp, (size_t)n, MSG_NOSIGNAL) != n))
                goto out;
        }
    }
out:
    if (up >= 0)
        close(up);
}

static void serve(struct srv *s, int fd)
{
    /* every read and write, OpenSSL's included, has a deadline */
    struct timeval tv = { .tv_sec = IO_MS / 1000 };
    struct buf in = BUF_INIT(4u << 20);
    SSL *ssl = NULL;
    size_t len;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (s->tls) {
        X509 *peer;
        if (!(ssl = SSL_new(s->tls)) || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1)
            goto out;
        if ((peer = SSL_get1_peer_certificate(ssl))) {
            X509_NAME_oneline(X509_get_subject_name(peer), s->peer, sizeof(s->peer));
            X509_free(peer);
        }
    }
    while (next_request(fd, ssl, &in, &len)) {
        const char *reply;
        if (s->nreq < MAX_REQS) {
            snprintf(s->req[s->nreq], sizeof(s->req[0]), "%.*s", (int)len, in.ptr);
            s->len[s->nreq] = len;
        }
        s->nreq++;
        if (s->proxy && !strncmp(in.ptr, "CONNECT ", 8)) {
            relay(fd, in.ptr + 8);
            break;
        }
        buf_consume(&in, len);
        reply = s->replies && *s->replies ? *s->replies++ : NULL;
        if (!reply || !answer(fd, ssl, reply))
            break;
    }
out:
    SSL_free(ssl);
    close(fd);
    buf_release(&in);
}

/* One connection at a time, until srv_stop shuts the listener (accept fails). */
static void *srv_main(void *arg)
{
    struct srv *s = arg;
    int c;

    while ((c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        s->accepts++;
        serve(s, c);
    }
    return NULL;
}

/* Starts s (its replies, tls and proxy set by the caller) on 127.0.0.1 and a
 * port the kernel chooses; false (the test failed) when it could not. */
static bool srv_start(struct srv *s)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);

    if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 8) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) < 0)
        goto fail;
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->th, NULL, srv_main, s) == 0)
        return s->running = true;
fail:
    t_fail(__FILE__, __LINE__, "server: %s", strerror(errno));
    if (s->fd >= 0)
        close(s->fd);
    return false;
}

/* Stops accepting and waits for the connection being served to end (the
 * client closes it, else a read times out). */
static void srv_stop(struct srv *s)
{
    if (!s->running)
        return;
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
    s->running = false;
}

/* ---- keys and certificates ----------------------------------------------------------------- */

static struct {
    char dir[32], ca_file[64], cert_file[64], key_file[64];
    char *ca_pem, *client_pem;
    struct sbuf *client_key;
    /* server sides: a leaf for IP:127.0.0.1 and DNS:localhost from the CA; the
     * same from a CA nobody trusts; a leaf from the CA for DNS:other.example
     * only; the first, requiring a client certificate from the CA */
    SSL_CTX *good, *untrusted, *other_name, *mtls;
} pki;

/* A server side with leaf and key; client_ca: require a client certificate from it. */
static SSL_CTX *server_ctx(X509 *leaf, EVP_PKEY *key, X509 *client_ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx || SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        (client_ca && X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), client_ca) != 1)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (client_ca)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return ctx;
}

/* Makes what pki holds (its files in a new temporary directory); false on failure. */
static bool pki_make(void)
{
    static const char both[] = "IP:127.0.0.1,DNS:localhost";
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *ca2_key = EVP_EC_gen("P-256");
    EVP_PKEY *srv_key = EVP_EC_gen("P-256"), *cli_key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *ca2 = NULL, *good = NULL, *bad = NULL, *other = NULL, *cli = NULL;
    char *key = NULL;
    bool ok = false;

    if (!ca_key || !ca2_key || !srv_key || !cli_key)
        goto out;
    ca = make_cert(ca_key, "pgtr test CA", NULL, NULL, NULL);
    ca2 = make_cert(ca2_key, "pgtr untrusted CA", NULL, NULL, NULL);
    good = make_cert(srv_key, "pgtr test server", both, ca, ca_key);
    bad = make_cert(srv_key, "pgtr test server", both, ca2, ca2_key);
    other = make_cert(srv_key, "other.example", "DNS:other.example", ca, ca_key);
    cli = make_cert(cli_key, "pgtr test client", NULL, ca, ca_key);
    snprintf(pki.dir, sizeof(pki.dir), "/tmp/test_http.XXXXXX");
    if (!ca || !ca2 || !good || !bad || !other || !cli || !mkdtemp(pki.dir)) {
        pki.dir[0] = '\0';
        goto out;
    }
    snprintf(pki.ca_file, sizeof(pki.ca_file), "%s/ca.pem", pki.dir);
    snprintf(pki.cert_file, sizeof(pki.cert_file), "%s/client.pem", pki.dir);
    snprintf(pki.key_file, sizeof(pki.key_file), "%s/client.key", pki.dir);
    pki.ca_pem = pem(ca, NULL, pki.ca_file);
    pki.client_pem = pem(cli, NULL, pki.cert_file);
    if ((key = pem(NULL, cli_key, pki.key_file)))
        pki.client_key = sbuf_from(key, strlen(key));
    ok = pki.ca_pem && pki.client_pem && key &&
         (pki.good = server_ctx(good, srv_key, NULL)) &&
         (pki.untrusted = server_ctx(bad, srv_key, NULL)) &&
         (pki.other_name = server_ctx(other, srv_key, NULL)) &&
         (pki.mtls = server_ctx(good, srv_key, ca));
out:
    X509_free(ca), X509_free(ca2), X509_free(good);
    X509_free(bad), X509_free(other), X509_free(cli);
    EVP_PKEY_free(ca_key), EVP_PKEY_free(ca2_key), EVP_PKEY_free(srv_key), EVP_PKEY_free(cli_key);
    free(key);
    return ok;
}

static void pki_free(void)
{
    if (pki.dir[0]) {
        unlink(pki.ca_file), unlink(pki.cert_file), unlink(pki.key_file);
        rmdir(pki.dir);
    }
    free(pki.ca_pem);
    free(pki.client_pem);
    sbuf_free(pki.client_key);
    SSL_CTX_free(pki.good), SSL_CTX_free(pki.untrusted);
    SSL_CTX_free(pki.other_name), SSL_CTX_free(pki.mtls);
}

/* ---- client helpers ---------------------------------------------------------------------- */

/* http(s)://127.0.0.1:<s's port><path>. */
static const char *url(char out[static 128], const struct srv *s, const char *path)
{
    snprintf(out, 128, "%s://127.0.0.1:%d%s", s->tls ? "https" : "http", s->port, path);
    return out;
}

/* Starts s and a client with o; NULL (the test failed, s stopped) when either did not. */
static struct http_client *start(struct srv *s, const struct http_opts *o)
{
    struct http_client *c = NULL;
    int rc;

    if (!srv_start(s))
        return NULL;
    if ((rc = http_client_new(&c, o)) < 0) {
        t_fail(__FILE__, __LINE__, "http_client_new: %d %s", rc, err_msg());
        srv_stop(s);
    }
    return c;
}

/* Frees c and stops s, whose records the test may read then. */
static void finish(struct srv *s, struct http_client *c)
{
    http_client_free(c);
    srv_stop(s);
}

/* One exchange of a script: the server's answer, the request, and what must come of it. */
struct step {
    const char *reply;
    const char *method, *host, *path; /* NULL: GET, 127.0.0.1, / */
    const char *body;                 /* sent as application/merge-patch+json; NULL: none */
    int rc;
    long status;
    const char *want;             /* the response body, when rc is 0 */
    const char *content_type;     /* NULL: not checked */
    int64_t retry_min, retry_max; /* bounds of retry_after_s */
    long timeout_ms;
};

/* Runs n (up to MAX_REQS) steps against s, a new server, with one client
 * (opts o, NULL: OPTS) and one response, checking each outcome. false when
 * they could not start; s is stopped after, for the caller to read what it
 * recorded. */
static bool script(int line, struct srv *s, const struct http_opts *o, const struct step *steps,
                   size_t n)
{
    static const struct http_opts dflt = OPTS;
    const char *replies[MAX_REQS + 1] = { NULL };
    struct http_resp r = HTTP_RESP_INIT;
    struct http_client *c;

    for (size_t i = 0; i < n; i++)
        replies[i] = steps[i].reply;
    s->replies = replies; /* only while this runs */
    if (!(c = start(s, o ? o : &dflt))) {
        s->replies = NULL;
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct step *st = &steps[i];
        char u[128];
        struct http_req req = { .method = st->method ? st->method : "GET", .url = u,
                                .content_type = st->body ? "application/merge-patch+json" : NULL,
                                .body = st->body, .body_len = st->body ? strlen(st->body) : 0,
                                .timeout_ms = st->timeout_ms };
        int rc;

        snprintf(u, sizeof(u), "%s://%s:%d%s", s->tls ? "https" : "http",
                 st->host ? st->host : "127.0.0.1", s->port, st->path ? st->path : "/");
        if ((rc = http_do(&r, c, &req)) != st->rc && (st->rc != ANY_ERROR || rc >= 0))
            t_fail(__FILE__, line, "step %zu: rc %d (%s), want %d", i, rc, err_msg(), st->rc);
        else if (!rc && (r.status != st->status || strcmp(buf_str(&r.body), st->want) ||
                         (st->content_type && strcmp(r.content_type, st->content_type)) ||
                         r.retry_after_s < st->retry_min || r.retry_after_s > st->retry_max))
            t_fail(__FILE__, line, "step %zu: %ld \"%s\" (%s, retry %lld), want %ld \"%s\"", i,
                   r.status, buf_str(&r.body), r.content_type, (long long)r.retry_after_s,
                   st->status, st->want);
    }
    http_resp_release(&r);
    finish(s, c);
    s->replies = NULL;
    return true;
}
#define SCRIPT(s, o, steps) script(__LINE__, (s), (o), (steps), sizeof(steps) / sizeof((steps)[0]))

/* Checks that the header name occurs once in msg with the value want, or not
 * at all when want is NULL. */
static void check_header(int line, const char *msg, const char *name, const char *want)
{
    char v[256] = "";
    int n = header(v, sizeof(v), msg, name);

    if (want ? n != 1 || strcmp(v, want) : n != 0)
        t_fail(__FILE__, line, "%s: %d times, \"%s\"; want \"%s\"", name, n, v,
               want ? want : "(absent)");
}
#define T_HEADER(msg, name, want) check_header(__LINE__, (msg), (name), (want))

#define T_STARTS(s, prefix)                                                                    \
    do {                                                                                       \
        if (strncmp((s), (prefix), strlen(prefix)))                                            \
            t_fail(__FILE__, __LINE__, "\"%.60s\" does not start with \"%s\"", (s), (prefix)); \
    } while (0)

/* ---- http_do ----------------------------------------------------------------------------- */

static void test_get_content_length(void)
{
    static const struct step steps[] = {
        { .reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: 13\r\n\r\nhello\r\n" SPLIT "world\n",
          .path = "/x", .status = 200, .want = "hello\r\nworld\n",
          .content_type = "text/plain; charset=utf-8" },
    };
    struct srv s = { 0 };

    if (SCRIPT(&s, NULL, steps))
        T_STARTS(s.req[0], "GET /x HTTP/1.1\r\n");
}

/* Chunks of several sizes (hex in lower case, a size line and a chunk cut
 * across writes), lower-case header names; then the next answer on the same
 * connection, which shows the chunked body was read to its very end. */
static void test_chunked(void)
{
    static const struct step steps[] = {
        { .reply = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                   "content-type: application/json\r\n\r\n5\r\nhello\r\n" SPLIT "7\r\n, wor" SPLIT
                   "ld\r\n" SPLIT "1" SPLIT "a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                   "1\r\n!\r\n0\r\n\r\n",
          .status = 200, .want = "hello, worldabcdefghijklmnopqrstuvwxyz!",
          .content_type = "application/json" },
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext", .status = 200,
          .want = "next" },
    };
    struct srv s = { 0 };

    if (SCRIPT(&s, NULL, steps))
        T_EQ_INT(s.accepts, 1);
}

/* max_body 10: a body of 10 bytes fits; 11 by Content-Length, or 12 in
 * chunks, do not; the client works after that. */
static void test_max_body(void)
{
    static const struct step steps[] = {
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", .status = 200,
          .want = "0123456789" },
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789x", .rc = ERR_TOOBIG },
        { .reply = STREAM_HEAD "4\r\n1234\r\n4\r\n5678\r\n" SPLIT "4\r\n9abc\r\n0\r\n\r\n",
          .rc = ERR_TOOBIG },
        { .reply = OK2, .status = 200, .want = "ok" },
    };
    struct srv s = { 0 };
    struct http_opts o = OPTS;

    o.max_body = 10;
    SCRIPT(&s, &o, steps);
}

static void test_keep_alive(void)
{
    static const struct step steps[] = {
        { .reply = OK2, .status = 200, .want = "ok" },
        { .reply = OK2, .status = 200, .want = "ok" },
    };
    struct srv s = { 0 };

    if (SCRIPT(&s, NULL, steps)) {
        T_EQ_INT(s.accepts, 1);
        T_EQ_INT(s.nreq, 2);
    }
}

/* The server closes each kept-alive connection after one answer, without
 * saying so: the next GET, and then a PATCH, go on new connections, and the
 * PATCH body reaches the server once. */
static void test_server_closes_idle(void)
{
    static const char patch[] = "{\"data\":{\"token\":\"dG9rZW4=\"}}";
    static const struct step steps[] = {
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none" CLOSE, .status = 200,
          .want = "one" },
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo" CLOSE, .status = 200,
          .want = "two" },
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree" CLOSE, .method = "PATCH",
          .path = "/3", .body = patch, .status = 200, .want = "three" },
    };
    struct srv s = { 0 };

    if (!SCRIPT(&s, NULL, steps))
        return;
    T_EQ_INT(s.accepts, 3);
    T_EQ_INT(s.nreq, 3);
    T_STARTS(s.req[2], "PATCH /3 HTTP/1.1\r\n");
    T_EQ_STR(body_of(s.req[2]), patch);
}

/* Connection: close and a body that ends with the connection (no length). */
static void test_connection_close(void)
{
    static const struct step steps[] = {
        { .reply = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil" SPLIT " the close" CLOSE,
          .status = 200, .want = "until the close" },
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext", .status = 200,
          .want = "next" },
    };
    struct srv s = { 0 };

    if (SCRIPT(&s, NULL, steps))
        T_EQ_INT(s.accepts, 2);
}

/* An HTTP-date 120 s ahead, delta seconds, none (into the response that held
 * 7, from the client that got it). */
static void test_retry_after(void)
{
    char date[64], dated[160];
    const struct step steps[] = {
        { .reply = dated, .status = 503, .want = "", .retry_min = 115, .retry_max = 121 },
        { .reply = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
          .status = 429, .want = "", .retry_min = 7, .retry_max = 7 },
        { .reply = EMPTY200, .status = 200, .want = "" },
    };
    struct srv s = { 0 };
    time_t at = (time_t)clock_wall_s() + 120;
    struct tm tm;

    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&at, &tm));
    snprintf(dated, sizeof(dated),
             "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\nContent-Length: 0\r\n\r\n",
             date);
    SCRIPT(&s, NULL, steps);
}

static void test_error_statuses(void)
{
    static const struct step steps[] = {
        { .reply = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                   "Content-Length: 28\r\n\r\n{\"kind\":\"Status\",\"code\":404}",
          .status = 404, .want = "{\"kind\":\"Status\",\"code\":404}",
          .content_type = "application/json" },
        { .reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\n\r\nbusy now",
          .status = 503, .want = "busy now" },
    };
    struct srv s = { 0 };

    SCRIPT(&s, NULL, steps);
}

/* HEAD (a Content-Length, no body) and a 204 with no length, on a connection
 * the server keeps open: neither waits for a body, and the next answer on the
 * connection is read in step. */
static void test_head_and_204(void)
{
    static const struct step steps[] = {
        { .reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n",
          .method = "HEAD", .path = "/h", .status = 200, .want = "", .content_type = "text/plain" },
        { .reply = "HTTP/1.1 204 No Content\r\n\r\n", .status = 204, .want = "",
          .content_type = "" },
        { .reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter", .status = 200,
          .want = "after" },
    };
    struct srv s = { 0 };
    int64_t t0 = clock_mono_ms();

    if (!SCRIPT(&s, NULL, steps))
        return;
    T_CHECK(clock_mono_ms() - t0 < 2000);
    T_EQ_INT(s.accepts, 1);
    T_STARTS(s.req[0], "HEAD /h HTTP/1.1\r\n");
}

/* The exact requests: methods, targets, Host, User-Agent, Accept (default and
 * given), Content-Type, bearer, extra headers, body bytes and length, and no
 * Expect, also for a body over 1 MiB (libcurl's threshold for 100-continue). */
static void test_request_wire_format(void)
{
    static const char *const replies[] = { EMPTY200, EMPTY200, EMPTY200, EMPTY200, EMPTY200, NULL };
    static const char *const extra[] = { "X-Request-Id: 42", "X-Other: a b", NULL };
    static const char patch[] = "{\"metadata\":{\"annotations\":{\"a\":\"b\"}}}";
    static char big[(1u << 20) + 1000];
    struct srv s = { .replies = replies };
    struct http_opts o = OPTS;
    struct http_resp r = HTTP_RESP_INIT;
    struct sbuf *tok = sbuf_from("tok-123.abc", 11);
    char form[1600], u[5][128], host[32];
    const char *body;
    struct http_client *c;

    /* the body is the first 1500 bytes: the bytes after them are not sent */
    memset(form, 'a', sizeof(form) - 1);
    form[sizeof(form) - 1] = '\0';
    memcpy(form, "grant_type=x&assertion=", 23);
    memset(big, 'b', sizeof(big));
    o.user_agent = "pgtr-test/1";
    if (!(c = start(&s, &o))) {
        sbuf_free(tok);
        return;
    }
    const struct http_req reqs[] = {
        { .method = "POST", .url = url(u[0], &s, "/token"),
          .content_type = "application/x-www-form-urlencoded", .body = form, .body_len = 1500,
          .bearer = tok, .headers = extra },
        { .method = "PATCH", .url = url(u[1], &s, "/api/v1/namespaces/ns/secrets/s"),
          .content_type = "application/merge-patch+json", .body = patch,
          .body_len = strlen(patch), .bearer = tok },
        { .method = "GET", .url = url(u[2], &s, "/api/v1/secrets?labelSelector=a%3Db&limit=5"),
          .accept = "application/yaml", .bearer = tok },
        { .method = "GET", .url = url(u[3], &s, "/open") },
        { .method = "PUT", .url = url(u[4], &s, "/big"), .content_type = "application/octet-stream",
          .body = big, .body_len = sizeof(big) },
    };
    for (size_t i = 0; i < 5; i++) {
        T_RC(http_do(&r, c, &reqs[i]), 0);
        T_EQ_INT(r.status, 200);
    }
    http_resp_release(&r);
    finish(&s, c);
    sbuf_free(tok);
    T_EQ_INT(s.nreq, 5);
    snprintf(host, sizeof(host), "127.0.0.1:%d", s.port);
    for (int i = 0; i < 5; i++) {
        T_HEADER(s.req[i], "Host", host);
        T_HEADER(s.req[i], "User-Agent", "pgtr-test/1");
        T_HEADER(s.req[i], "Expect", NULL);
        T_HEADER(s.req[i], "Transfer-Encoding", NULL);
        T_HEADER(s.req[i], "Authorization", i < 3 ? "Bearer tok-123.abc" : NULL);
        T_HEADER(s.req[i], "Accept", i == 2 ? "application/yaml" : "application/json");
    }
    T_STARTS(s.req[0], "POST /token HTTP/1.1\r\n");
    T_HEADER(s.req[0], "Content-Type", "application/x-www-form-urlencoded");
    T_HEADER(s.req[0], "Content-Length", "1500");
    T_HEADER(s.req[0], "X-Request-Id", "42");
    T_HEADER(s.req[0], "X-Other", "a b");
    T_CHECK(strlen(body_of(s.req[0])) == 1500 && !strncmp(body_of(s.req[0]), form, 1500));
    T_STARTS(s.req[1], "PATCH /api/v1/namespaces/ns/secrets/s HTTP/1.1\r\n");
    T_HEADER(s.req[1], "Content-Type", "application/merge-patch+json");
    T_HEADER(s.req[1], "Content-Length", "38");
    T_EQ_STR(body_of(s.req[1]), patch);
    T_HEADER(s.req[1], "X-Request-Id", NULL);
    T_STARTS(s.req[2], "GET /api/v1/secrets?labelSelector=a%3Db&limit=5 HTTP/1.1\r\n");
    T_STARTS(s.req[3], "GET /open HTTP/1.1\r\n");
    for (int i = 2; i < 4; i++) {
        T_HEADER(s.req[i], "Content-Type", NULL);
        T_EQ_STR(body_of(s.req[i]), "");
    }
    T_STARTS(s.req[4], "PUT /big HTTP/1.1\r\n");
    T_HEADER(s.req[4], "Content-Length", "1049576");
    body = body_of(s.req[4]);
    T_CHECK(s.len[4] == (size_t)(body - s.req[4]) + sizeof(big));
    T_CHECK(strspn(body, "b") == strlen(body));
}

/* A port that was listening a moment ago (nobody there now), and a server
 * that takes the request and never answers (the request's 300 ms). */
static void test_unreachable(void)
{
    static const struct step steps[] = {
        { .reply = "", .rc = ERR_UNAVAILABLE, .timeout_ms = 300 },
    };
    struct srv s = { 0 }, gone = { 0 };
    struct http_opts o = OPTS;
    struct http_resp r = HTTP_RESP_INIT;
    struct http_client *c = start(&gone, &o);
    int64_t ms;
    char u[128];

    if (c) {
        srv_stop(&gone);
        struct http_req req = { .method = "GET", .url = url(u, &gone, "/") };
        T_RC(http_do(&r, c, &req), ERR_UNAVAILABLE);
        http_resp_release(&r);
        http_client_free(c);
    }
    ms = clock_mono_ms();
    if (!SCRIPT(&s, NULL, steps))
        return;
    ms = clock_mono_ms() - ms;
    T_CHECK(ms >= 250 && ms < 3000);
    T_EQ_INT(s.nreq, 1);
}

/* ---- TLS --------------------------------------------------------------------------------- */

/* A GET of https://host:<port>/ by a client with tls from a new server with
 * ctx, which must end in rc (0: with 200 "ok"); peer (256 bytes, or NULL)
 * gets the subject of the client certificate as the server saw it. */
static void tls_check(int line, SSL_CTX *ctx, const struct tls_opts *tls, const char *host, int rc,
                      char *peer)
{
    const struct step st[] = {
        { .reply = OK2, .host = host, .rc = rc, .status = 200, .want = "ok" },
    };
    struct srv s = { .tls = ctx };
    struct http_opts o = OPTS;

    o.tls = *tls;
    script(line, &s, &o, st, 1);
    if (peer)
        snprintf(peer, 256, "%s", s.peer);
}
#define TLS_CHECK(ctx, tls, host, rc, peer) tls_check(__LINE__, (ctx), (tls), (host), (rc), (peer))

static void test_tls_verification(void)
{
    const struct tls_opts pem = { .ca_pem = pki.ca_pem }, file = { .ca_file = pki.ca_file };
    const struct tls_opts system = { 0 };
    const struct tls_opts insecure = { .ca_pem = pki.ca_pem, .insecure_skip_tls_verify = true };

    TLS_CHECK(pki.good, &pem, "127.0.0.1", 0, NULL);
    TLS_CHECK(pki.good, &file, "127.0.0.1", 0, NULL);
    TLS_CHECK(pki.good, &pem, "localhost", 0, NULL);
    /* the system bundle does not hold a CA made a moment ago */
    TLS_CHECK(pki.good, &system, "127.0.0.1", ERR_TLS, NULL);
    TLS_CHECK(pki.untrusted, &pem, "127.0.0.1", ERR_TLS, NULL);
    TLS_CHECK(pki.other_name, &pem, "127.0.0.1", ERR_TLS, NULL);
    TLS_CHECK(pki.other_name, &insecure, "127.0.0.1", 0, NULL);
    TLS_CHECK(pki.untrusted, &insecure, "127.0.0.1", 0, NULL);
}

static void test_tls_client_certificate(void)
{
    const struct tls_opts pem = { .ca_pem = pki.ca_pem, .cert_pem = pki.client_pem,
                                  .key_pem = pki.client_key };
    const struct tls_opts files = { .ca_pem = pki.ca_pem, .cert_file = pki.cert_file,
                                    .key_file = pki.key_file };
    const struct tls_opts none = { .ca_pem = pki.ca_pem };
    char peer[256];

    TLS_CHECK(pki.mtls, &pem, "127.0.0.1", 0, peer);
    T_EQ_STR(peer, "/CN=pgtr test client");
    TLS_CHECK(pki.mtls, &files, "127.0.0.1", 0, peer);
    T_EQ_STR(peer, "/CN=pgtr test client");
    TLS_CHECK(pki.mtls, &none, "127.0.0.1", ANY_ERROR, peer);
    T_EQ_STR(peer, "");
}

/* ---- http_stream ------------------------------------------------------------------------- */

/* A stream: what the server sends, how http_stream is called, what must come of it. */
struct sc {
    const char *reply;
    bool tls;
    long stop_ms;    /* another thread sets *stop this long in; 0: stop is NULL */
    long idle_s;
    size_t max_line; /* 0: 1 KiB */
    int stop_at;     /* on_line returns 42 for this line (from 1); 0: never */
    int rc;
    long status;
    const char *lines;      /* what on_line got, each line followed by '|' */
    const char *body;       /* resp->body; NULL: not checked */
    const char *msg;        /* in err_msg() when rc < 0; NULL: not checked */
    int64_t min_ms, max_ms; /* how long it may take; max_ms 0: 3 s */
};

/* What one stream got, and a stop flag set stop_ms in (by stop_later). */
struct got {
    struct buf lines;
    int n, stop_at;
    atomic_bool stop;
    long stop_ms;
};

static int on_line(void *ctx, const char *line, size_t len)
{
    struct got *g = ctx;

    buf_add(&g->lines, line, len);
    buf_addch(&g->lines, '|');
    return ++g->n == g->stop_at ? 42 : 0;
}

static void *stop_later(void *arg)
{
    struct got *g = arg;

    sleep_unless_stopped(g->stop_ms, NULL);
    atomic_store(&g->stop, true);
    return NULL;
}

/* Runs x against a new server and client, with a whole-request timeout of
 * 6 s so that nothing hangs, and checks what came of it. */
static void stream_check(int line, const struct sc *x)
{
    const char *replies[] = { x->reply, NULL };
    struct srv s = { .replies = replies, .tls = x->tls ? pki.good : NULL };
    struct http_opts o = OPTS;
    struct http_resp r = HTTP_RESP_INIT;
    struct got g = { BUF_INIT(4096), 0, x->stop_at, false, x->stop_ms };
    struct http_client *c;
    pthread_t th;
    char u[128];
    int64_t ms;
    int rc;

    o.tls.ca_pem = pki.ca_pem;
    if (!(c = start(&s, &o)))
        return;
    if (x->stop_ms && pthread_create(&th, NULL, stop_later, &g) != 0) {
        t_fail(__FILE__, line, "pthread_create failed");
        finish(&s, c);
        return;
    }
    struct http_req req = { .method = "GET", .url = url(u, &s, "/watch"), .timeout_ms = 6000 };
    ms = clock_mono_ms();
    rc = http_stream(&r, c, &req, on_line, &g, x->stop_ms ? &g.stop : NULL, x->idle_s,
                     x->max_line ? x->max_line : 1024);
    ms = clock_mono_ms() - ms;
    if (x->stop_ms)
        pthread_join(th, NULL);
    finish(&s, c);
    if (rc != x->rc || r.status != x->status || strcmp(buf_str(&g.lines), x->lines) ||
        (x->body && strcmp(buf_str(&r.body), x->body)) ||
        (x->msg && !strstr(err_msg(), x->msg)) || ms < x->min_ms ||
        ms >= (x->max_ms ? x->max_ms : 3000))
        t_fail(__FILE__, line, "rc %d (%s), status %ld, lines \"%s\", body \"%s\", %lld ms", rc,
               err_msg(), r.status, buf_str(&g.lines), buf_str(&r.body), (long long)ms);
    buf_release(&g.lines);
    http_resp_release(&r);
}

/* Over TLS, lines cut across chunks and records (one chunk in two writes),
 * then the last chunk: whole lines in order, and 0 for the clean end. */
static void test_stream_lines(void)
{
    static const struct sc x = {
        .reply = STREAM_HEAD "c\r\n{\"n\":1}\n{\"n\"\r\n" SPLIT "12\r\n:2}\n{\"n\":3," SPLIT
                             "\"x\":\"y\"\r\n" SPLIT "2\r\n}\n\r\n8\r\n{\"n\":4}\n\r\n0\r\n\r\n",
        .tls = true, .status = 200, .lines = "{\"n\":1}|{\"n\":2}|{\"n\":3,\"x\":\"y\"}|{\"n\":4}|"
    };

    stream_check(__LINE__, &x);
}

/* Three lines, then the server goes quiet: on_line's 42 on the second ends it. */
static void test_stream_callback_stops(void)
{
    static const struct sc x = { .reply = STREAM_HEAD "6\r\na\nb\nc\n\r\n", .stop_at = 2,
                                 .rc = 42, .status = 200, .lines = "a|b|" };

    stream_check(__LINE__, &x);
}

/* One line, then silence; *stop is set 300 ms in. */
static void test_stream_stop_flag(void)
{
    static const struct sc x = { .reply = STREAM_HEAD "2\r\na\n\r\n", .stop_ms = 300,
                                 .status = 200, .lines = "a|", .min_ms = 250 };

    stream_check(__LINE__, &x);
}

/* Two lines, then the server closes the connection inside the chunked body (as
 * an API server does when it ends a watch abruptly): the stream has ended, 0. */
static void test_stream_cut(void)
{
    static const struct sc x = { .reply = STREAM_HEAD "4\r\na\nb\n\r\n" CLOSE, .status = 200,
                                 .lines = "a|b|" };

    stream_check(__LINE__, &x);
}

/* Nothing at all after the request, not even the status line: idle_timeout_s
 * bounds the wait for the head too. */
static void test_stream_silent_head(void)
{
    static const struct sc x = { .reply = "", .idle_s = 1, .rc = ERR_UNAVAILABLE, .lines = "",
                                 .msg = "went quiet for 1s", .min_ms = 900, .max_ms = 2500 };

    stream_check(__LINE__, &x);
}

/* One line, then silence, with idle_timeout_s 1 (and 6 s for the whole
 * request): the silence is timed itself, so it ends after about 1 s. */
static void test_stream_idle_timeout(void)
{
    static const struct sc x = { .reply = STREAM_HEAD "2\r\na\n\r\n", .idle_s = 1,
                                 .rc = ERR_UNAVAILABLE, .status = 200, .lines = "a|",
                                 .msg = "went quiet for 1s", .min_ms = 900, .max_ms = 2500 };

    stream_check(__LINE__, &x);
}

/* A 403 whose body has a newline: no line, the status and the body kept. */
static void test_stream_error_status(void)
{
    static const struct sc x = {
        .reply = "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                 "Content-Length: 29\r\n\r\n{\"kind\":\"Status\",\"code\":403}\n",
        .status = 403, .lines = "", .body = "{\"kind\":\"Status\",\"code\":403}\n"
    };

    stream_check(__LINE__, &x);
}

/* max_line 16: a line of 20 bytes after a short one. */
static void test_stream_line_too_long(void)
{
    static const struct sc x = {
        .reply = STREAM_HEAD "6\r\nshort\n\r\n" SPLIT "14\r\nxxxxxxxxxxxxxxxxxxxx\r\n" SPLIT
                             "1\r\n\n\r\n0\r\n\r\n",
        .max_line = 16, .rc = ERR_TOOBIG, .status = 200, .lines = "short|"
    };

    stream_check(__LINE__, &x);
}

/* ---- proxies ----------------------------------------------------------------------------- */

static void unset_proxies(void)
{
    static const char *const names[] = { "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                         "NO_PROXY",    "no_proxy",    "ALL_PROXY",  "all_proxy" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
}

/* Clients made while HTTPS_PROXY names the proxy: a CONNECT to the name and
 * port of the URL, and the TLS inside the tunnel verified as without a proxy;
 * with NO_PROXY=localhost too, straight to the server. With http_proxy, for
 * an http:// URL: the absolute form to the proxy, which answers itself. */
static void test_proxies(void)
{
    static const char *const replies[] = { "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied",
                                           NULL };
    static const struct step tls[] = {
        { .reply = OK2, .host = "localhost", .status = 200, .want = "ok" },
    };
    static const struct step plain[] = {
        { .reply = "", .host = "localhost", .path = "/path", .status = 200, .want = "proxied" },
    };
    struct srv proxy = { .replies = replies, .proxy = true }, tunnelled = { .tls = pki.good };
    struct srv direct = { .tls = pki.good }, server = { 0 };
    struct http_opts o = OPTS;
    char purl[64], want[128];

    o.tls.ca_pem = pki.ca_pem;
    if (!srv_start(&proxy))
        return;
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", proxy.port);
    setenv("HTTPS_PROXY", purl, 1);
    SCRIPT(&tunnelled, &o, tls);
    setenv("NO_PROXY", "localhost", 1);
    SCRIPT(&direct, &o, tls);
    unset_proxies();
    setenv("http_proxy", purl, 1);
    SCRIPT(&server, &o, plain);
    unset_proxies();
    srv_stop(&proxy);
    T_EQ_INT(proxy.nreq, 2);
    snprintf(want, sizeof(want), "CONNECT localhost:%d HTTP/1.1\r\n", tunnelled.port);
    T_STARTS(proxy.req[0], want);
    snprintf(want, sizeof(want), "GET http://localhost:%d/path HTTP/1.1\r\n", server.port);
    T_STARTS(proxy.req[1], want);
    T_EQ_INT(tunnelled.nreq, 1);
    T_EQ_INT(direct.nreq, 1);
    T_EQ_INT(server.accepts, 0);
}

int main(void)
{
    /* a client that hangs up while a server writes must not end the run */
    signal(SIGPIPE, SIG_IGN);
    unset_proxies();
    if (http_global_init() < 0 || !pki_make()) {
        printf("not ok - test_http.c: setup: %s\n", err_msg());
        pki_free();
        return 1;
    }
    T_RUN(test_get_content_length);
    T_RUN(test_chunked);
    T_RUN(test_max_body);
    T_RUN(test_keep_alive);
    T_RUN(test_server_closes_idle);
    T_RUN(test_connection_close);
    T_RUN(test_retry_after);
    T_RUN(test_error_statuses);
    T_RUN(test_head_and_204);
    T_RUN(test_request_wire_format);
    T_RUN(test_unreachable);
    T_RUN(test_tls_verification);
    T_RUN(test_tls_client_certificate);
    T_RUN(test_stream_lines);
    T_RUN(test_stream_callback_stops);
    T_RUN(test_stream_stop_flag);
    T_RUN(test_stream_idle_timeout);
    T_RUN(test_stream_cut);
    T_RUN(test_stream_silent_head);
    T_RUN(test_stream_error_status);
    T_RUN(test_stream_line_too_long);
    T_RUN(test_proxies);
    pki_free();
    http_global_cleanup();
    return t_done();
}
