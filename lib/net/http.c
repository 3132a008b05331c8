#include "net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "net/proxy.h"
#include "net/tls.h"
#include "net/url.h"
#include "base/banned.h"

#define HTTP_DEFAULT_MAX_BODY (8u << 20)
#define HTTP_RBUF 16384        /* read buffer: one TLS record; a header line must fit */
#define HTTP_HEADERS_MAX 100   /* header lines in one response */
#define HTTP_STOP_CHECK_MS 1000

struct http_client {
    struct http_opts opts;
    SSL_CTX *ctx;             /* made at the first https connection */
    struct proxy https_proxy, http_proxy;
    char *no_proxy;           /* the NO_PROXY list, or NULL */
    /* The kept connection (keep-alive): fd -1 when none. */
    int fd;
    SSL *ssl;
    char conn_key[URL_HOST_MAX + 16]; /* "s|host|port" it goes to */
    bool conn_used;           /* it has carried a request (a failure on it may be its age) */
    bool conn_proxied;        /* it goes to a proxy (http:// requests then use absolute form) */
    /* Bytes read and not yet consumed: rbuf[rpos..rlen). Wiped after each request. */
    size_t rpos, rlen;
    char rbuf[HTTP_RBUF];
};

/* The state of one request's I/O. */
struct io {
    struct http_client *c;
    int64_t deadline_ms;      /* monotonic; 0: none */
    long idle_ms;             /* a stream's longest silence; 0: none */
    const atomic_bool *stop;
    bool stopped;             /* *stop was seen */
    bool timed_out;
    bool idle;                /* the silence, not the deadline */
};

static BIO_METHOD *sock_method;

/* ---- a socket BIO that never raises SIGPIPE ---- */

static int sock_write(BIO *b, const char *data, int len)
{
    ssize_t n = send(*(const int *)BIO_get_data(b), data, (size_t)len, MSG_NOSIGNAL);

    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int sock_read(BIO *b, char *data, int len)
{
    ssize_t n = recv(*(const int *)BIO_get_data(b), data, (size_t)len, 0);

    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

int http_global_init(void)
{
    if (!OPENSSL_init_ssl(0, NULL))
        return err_set(ERR_IO, "OpenSSL failed to initialise");
    if (!sock_method) {
        sock_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pgtr socket");
        if (!sock_method || !BIO_meth_set_write(sock_method, sock_write) ||
            !BIO_meth_set_read(sock_method, sock_read) ||
            !BIO_meth_set_ctrl(sock_method, sock_ctrl) ||
            !BIO_meth_set_create(sock_method, sock_create))
            return err_set(ERR_IO, "OpenSSL could not make a socket BIO");
    }
    return 0;
}

void http_global_cleanup(void)
{
    BIO_meth_free(sock_method);
    sock_method = NULL;
}

/* ---- the client ---- */

int http_client_new(struct http_client **out, const struct http_opts *opts)
{
    static const char *const https_names[] = { "https_proxy", "HTTPS_PROXY", "all_proxy",
                                               "ALL_PROXY", NULL };
    static const char *const http_names[] = { "http_proxy", "HTTP_PROXY", "all_proxy",
                                              "ALL_PROXY", NULL };
    struct http_client *c = xcalloc(1, sizeof(*c));
    const char *np;
    int rc;

    c->opts = *opts;
    c->fd = -1;
    if (!c->opts.connect_timeout_ms)
        c->opts.connect_timeout_ms = 5000;
    if (!c->opts.timeout_ms)
        c->opts.timeout_ms = 30000;
    if (!c->opts.max_body)
        c->opts.max_body = HTTP_DEFAULT_MAX_BODY;
    /* Nothing the options point to is kept but user_agent: TLS material is read
     * into the context at the first https connection, so it is read now. */
    c->opts.tls.ca_file = opts->tls.ca_file ? xstrdup(opts->tls.ca_file) : NULL;
    c->opts.tls.ca_pem = opts->tls.ca_pem ? xstrdup(opts->tls.ca_pem) : NULL;
    c->opts.tls.cert_file = opts->tls.cert_file ? xstrdup(opts->tls.cert_file) : NULL;
    c->opts.tls.cert_pem = opts->tls.cert_pem ? xstrdup(opts->tls.cert_pem) : NULL;
    c->opts.tls.key_file = opts->tls.key_file ? xstrdup(opts->tls.key_file) : NULL;
    c->opts.tls.key_pem = opts->tls.key_pem ? sbuf_dup(opts->tls.key_pem) : NULL;
    if ((rc = proxy_from_env(&c->https_proxy, https_names)) < 0 ||
        (rc = proxy_from_env(&c->http_proxy, http_names)) < 0) {
        http_client_free(c);
        return rc;
    }
    if (!(np = getenv("no_proxy")) || !*np)
        np = getenv("NO_PROXY");
    if (np && *np)
        c->no_proxy = xstrdup(np);
    *out = c;
    return 0;
}

static void conn_close(struct http_client *c)
{
    if (c->ssl) {
        SSL_free(c->ssl); /* no close_notify: the peer sees the TCP close */
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->conn_key[0] = '\0';
    c->conn_used = false;
    c->conn_proxied = false;
    OPENSSL_cleanse(c->rbuf, sizeof(c->rbuf));
    c->rpos = c->rlen = 0;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    conn_close(c);
    SSL_CTX_free(c->ctx);
    free((char *)c->opts.tls.ca_file);
    free((char *)c->opts.tls.ca_pem);
    free((char *)c->opts.tls.cert_file);
    free((char *)c->opts.tls.cert_pem);
    free((char *)c->opts.tls.key_file);
    sbuf_free((struct sbuf *)c->opts.tls.key_pem);
    free(c->no_proxy);
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

/* ---- waiting on a socket ---- */

/* Waits for fd to be ready for ev. 1: ready; 0: the deadline, the idle time or
 * *stop came first (io says which). */
static int wait_fd(struct io *io, int fd, short ev)
{
    int64_t start = clock_mono_ms();

    for (;;) {
        int64_t now = clock_mono_ms(), wait = HTTP_STOP_CHECK_MS;
        struct pollfd p = { fd, ev, 0 };
        int n;

        if (io->stop && atomic_load(io->stop)) {
            io->stopped = true;
            return 0;
        }
        if (io->deadline_ms && now >= io->deadline_ms) {
            io->timed_out = true;
            return 0;
        }
        if (io->idle_ms && now - start >= io->idle_ms) {
            io->timed_out = io->idle = true;
            return 0;
        }
        if (io->deadline_ms && io->deadline_ms - now < wait)
            wait = io->deadline_ms - now;
        if (io->idle_ms && start + io->idle_ms - now < wait)
            wait = start + io->idle_ms - now;
        n = poll(&p, 1, (int)wait);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 1; /* let the read or write report it */
    }
}

/* ---- connecting ---- */

static int tcp_connect(struct io *io, const char *host, unsigned port, const char *what)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    char svc[8];
    int rc, fd = -1, err = 0;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(svc, sizeof(svc), "%u", port);
    if ((rc = getaddrinfo(host, svc, &hints, &res)) != 0)
        return err_set(ERR_UNAVAILABLE, "cannot resolve %s (%s): %s", host, what,
                       gai_strerror(rc));
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        socklen_t len = sizeof(err);
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        err = errno;
        if (err == EINPROGRESS && wait_fd(io, fd, POLLOUT) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
            break;
        close(fd);
        fd = -1;
        if (io->timed_out || io->stopped)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (io->timed_out)
            return err_set(ERR_UNAVAILABLE, "connecting to %s:%u (%s) timed out", host, port, what);
        return err_set(ERR_UNAVAILABLE, "cannot connect to %s:%u (%s): %s", host, port, what,
                       strerror(err ? err : ECONNREFUSED));
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    return fd;
}

static int raw_write(struct io *io, const char *p, size_t n);
static int raw_fill(struct io *io);

/* Asks the proxy for a tunnel to u's host and port. */
static int proxy_connect(struct io *io, const struct url *u)
{
    struct http_client *c = io->c;
    char req[2 * URL_HOST_MAX + 96], hp[URL_HOST_MAX + 8];
    int rc, status = 0;

    snprintf(hp, sizeof(hp), strchr(u->host, ':') ? "[%s]:%u" : "%s:%u", u->host, u->port);
    snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hp, hp);
    if ((rc = raw_write(io, req, strlen(req))) < 0)
        return rc;
    for (;;) {
        if (memmem(c->rbuf, c->rlen, "\r\n\r\n", 4))
            break;
        if (c->rlen == sizeof(c->rbuf))
            return err_set(ERR_PARSE, "the proxy's answer to CONNECT is too long");
        if ((rc = raw_fill(io)) <= 0)
            return rc < 0 ? rc
                   : err_set(ERR_UNAVAILABLE, "the proxy closed the connection on CONNECT %s", hp);
    }
    if (sscanf(c->rbuf, "HTTP/1.%*d %d", &status) != 1 || status < 200 || status > 299)
        return err_set(ERR_UNAVAILABLE, "the proxy refused CONNECT %s (status %d)", hp, status);
    /* A proxy sends nothing after its answer until the tunnel carries TLS. */
    OPENSSL_cleanse(c->rbuf, c->rlen);
    c->rpos = c->rlen = 0;
    return 0;
}

static int tls_start(struct io *io, const struct url *u)
{
    struct http_client *c = io->c;
    BIO *bio;
    int rc;

    if (!sock_method)
        return err_set(ERR_IO, "http_global_init was not called");
    /* Only HTTP/1.1 is spoken: say so, so that no server picks h2. */
    if (!c->ctx && (rc = tls_client_ctx(&c->ctx, &c->opts.tls, "\x08http/1.1", 9)) < 0)
        return rc;
    if (!(c->ssl = SSL_new(c->ctx)) || !(bio = BIO_new(sock_method)))
        return err_set(ERR_IO, "OpenSSL could not make a connection");
    BIO_set_data(bio, &c->fd);
    SSL_set_bio(c->ssl, bio, bio);
    if ((rc = tls_set_peer(c->ssl, u->host, !c->opts.tls.insecure_skip_tls_verify)) < 0)
        return rc;
    for (;;) {
        int r = SSL_connect(c->ssl), e;
        if (r == 1)
            return 0;
        e = SSL_get_error(c->ssl, r);
        if ((e == SSL_ERROR_WANT_READ && wait_fd(io, c->fd, POLLIN)) ||
            (e == SSL_ERROR_WANT_WRITE && wait_fd(io, c->fd, POLLOUT)))
            continue;
        if (io->timed_out || io->stopped)
            return err_set(ERR_UNAVAILABLE, "TLS handshake with %s:%u timed out", u->host, u->port);
        return tls_handshake_failed(c->ssl, u->host, u->port);
    }
}

/* Makes sure c holds a connection to u (a kept one if it goes there). */
static int conn_open(struct io *io, const struct url *u)
{
    struct http_client *c = io->c;
    const struct proxy *px = u->tls ? &c->https_proxy : &c->http_proxy;
    char key[sizeof(c->conn_key)];
    int fd, rc;

    if (!px->set || (c->no_proxy && proxy_bypass(c->no_proxy, u->host)))
        px = NULL;
    snprintf(key, sizeof(key), "%c|%s|%u", u->tls ? 's' : 'p', u->host, u->port);
    if (c->fd >= 0 && !strcmp(key, c->conn_key)) {
        /* A kept connection with something to read between requests has been
         * closed by the server (or holds garbage): do not send on it. */
        struct pollfd p = { c->fd, POLLIN, 0 };
        if (poll(&p, 1, 0) == 0)
            return 0;
    }
    conn_close(c);
    if ((fd = px ? tcp_connect(io, px->host, px->port, "proxy")
                 : tcp_connect(io, u->host, u->port, "server")) < 0)
        return fd;
    c->fd = fd;
    if ((px && u->tls && (rc = proxy_connect(io, u)) < 0) || (u->tls && (rc = tls_start(io, u)) < 0)) {
        conn_close(c);
        return rc;
    }
    snprintf(c->conn_key, sizeof(c->conn_key), "%s", key);
    c->conn_proxied = px != NULL;
    return 0;
}

/* ---- reading and writing ---- */

/* A failed send or receive (a stop or an idle stream is named by the caller). */
static int io_error(struct io *io, const char *what)
{
    if (io->timed_out)
        return err_set(ERR_UNAVAILABLE, "%s timed out", what);
    return err_set(ERR_UNAVAILABLE, "%s failed: %s", what, strerror(errno ? errno : EPIPE));
}

static int raw_write(struct io *io, const char *p, size_t n)
{
    struct http_client *c = io->c;

    while (n) {
        ssize_t w;
        if (c->ssl) {
            size_t done = 0;
            int r = SSL_write_ex(c->ssl, p, n, &done), e;
            if (r == 1) {
                p += done, n -= done;
                continue;
            }
            e = SSL_get_error(c->ssl, r);
            if ((e == SSL_ERROR_WANT_WRITE && wait_fd(io, c->fd, POLLOUT)) ||
                (e == SSL_ERROR_WANT_READ && wait_fd(io, c->fd, POLLIN)))
                continue;
            ERR_clear_error();
            return io->stopped ? ERR_UNAVAILABLE : io_error(io, "sending the request");
        }
        w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w, n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(io, c->fd, POLLOUT))
            continue;
        return io->stopped ? ERR_UNAVAILABLE : io_error(io, "sending the request");
    }
    return 0;
}

/* Reads more bytes into rbuf (moving what is left to its start first). >0: bytes
 * read; 0: the peer closed; <0: an error (or, with io->stopped, a stop). */
static int raw_fill(struct io *io)
{
    struct http_client *c = io->c;

    if (c->rpos) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        OPENSSL_cleanse(c->rbuf + c->rlen, c->rpos);
        c->rpos = 0;
    }
    if (c->rlen == sizeof(c->rbuf))
        return err_set(ERR_TOOBIG, "a response line is over %d bytes", HTTP_RBUF);
    for (;;) {
        char *at = c->rbuf + c->rlen;
        size_t room = sizeof(c->rbuf) - c->rlen;
        if (c->ssl) {
            size_t got = 0;
            int r = SSL_read_ex(c->ssl, at, room, &got), e;
            if (r == 1) {
                c->rlen += got;
                return (int)got;
            }
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN) {
                return 0;
            }
            if ((e == SSL_ERROR_WANT_READ && wait_fd(io, c->fd, POLLIN)) ||
                (e == SSL_ERROR_WANT_WRITE && wait_fd(io, c->fd, POLLOUT)))
                continue;
            ERR_clear_error();
            if (e == SSL_ERROR_SYSCALL && !io->timed_out && !io->stopped)
                return 0; /* closed without close_notify: as most servers do */
            return io->stopped ? ERR_UNAVAILABLE : io_error(io, "reading the response");
        }
        ssize_t r = recv(c->fd, at, room, 0);
        if (r > 0) {
            c->rlen += (size_t)r;
            return (int)r;
        }
        if (r == 0 || (errno == ECONNRESET))
            return 0;
        if ((errno == EAGAIN || errno == EINTR) && wait_fd(io, c->fd, POLLIN))
            continue;
        return io->stopped ? ERR_UNAVAILABLE : io_error(io, "reading the response");
    }
}

/* The next line (CRLF or LF ended, terminator cut) in rbuf, reading as needed.
 * >0: the line is in *line and *len (rpos moved past it); 0: closed first; <0: an
 * error. */
static int read_line(struct io *io, char **line, size_t *len)
{
    struct http_client *c = io->c;

    for (;;) {
        char *s = c->rbuf + c->rpos, *nl = memchr(s, '\n', c->rlen - c->rpos);
        if (nl) {
            *len = (size_t)(nl - s);
            if (*len && s[*len - 1] == '\r')
                (*len)--;
            *line = s;
            c->rpos = (size_t)(nl - c->rbuf) + 1;
            return 1;
        }
        int r = raw_fill(io);
        if (r <= 0)
            return r;
    }
}

/* How a response body is delimited. */
enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };

struct body {
    enum body_mode mode;
    uint64_t left;   /* BODY_LENGTH: bytes left; BODY_CHUNKED: of this chunk */
    bool in_chunk;   /* BODY_CHUNKED: inside a chunk's data */
    bool done;
    bool cut;        /* the connection closed before the body's end */
};

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

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);

    if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
        return false;
    *value = line + n + 1;
    while (**value == ' ' || **value == '\t')
        (*value)++;
    return true;
}

/* Reads the status line and headers (skipping 1xx). *keep: the connection can
 * carry another request after the body. 0 with closed_early: nothing at all came. */
static int read_head(struct io *io, struct http_resp *resp, struct body *b, bool head_req,
                     bool *keep, bool *nothing)
{
    char *line;
    size_t len;
    int r, minor;

    *nothing = true;
    for (;;) {
        int status = 0, lines = 0;
        bool chunked = false, has_len = false, close_conn = false;
        uint64_t clen = 0;

        if ((r = read_line(io, &line, &len)) <= 0)
            return r < 0 ? r : err_set(ERR_UNAVAILABLE, "the server closed the connection");
        *nothing = false;
        line[len] = '\0';
        if (sscanf(line, "HTTP/1.%d %3d", &minor, &status) != 2 || status < 100 || status > 999)
            return err_set(ERR_PARSE, "the server's answer is not HTTP/1.x");
        resp->retry_after_s = 0;
        resp->content_type[0] = '\0';
        close_conn = minor == 0;
        for (;;) {
            const char *v;
            if ((r = read_line(io, &line, &len)) <= 0)
                return r < 0 ? r : err_set(ERR_UNAVAILABLE, "the server closed the connection");
            if (!len)
                break;
            if (++lines > HTTP_HEADERS_MAX)
                return err_set(ERR_TOOBIG, "the response has over %d header lines",
                               HTTP_HEADERS_MAX);
            line[len] = '\0';
            if (header_is(line, len, "Content-Length", &v)) {
                char *end;
                errno = 0;
                clen = strtoull(v, &end, 10);
                if (end == v || errno)
                    return err_set(ERR_PARSE, "the response has a bad Content-Length");
                has_len = true;
            } else if (header_is(line, len, "Transfer-Encoding", &v)) {
                chunked = strcasestr(v, "chunked") != NULL;
            } else if (header_is(line, len, "Connection", &v)) {
                if (strcasestr(v, "close"))
                    close_conn = true;
                else if (strcasestr(v, "keep-alive"))
                    close_conn = false;
            } else if (header_is(line, len, "Retry-After", &v)) {
                resp->retry_after_s = parse_retry_after(v);
            } else if (header_is(line, len, "Content-Type", &v)) {
                snprintf(resp->content_type, sizeof(resp->content_type), "%s", v);
            }
        }
        if (status < 200)
            continue; /* 100 Continue and friends: the real answer follows */
        resp->status = status;
        memset(b, 0, sizeof(*b));
        if (head_req || status == 204 || status == 304)
            b->mode = BODY_NONE;
        else if (chunked)
            b->mode = BODY_CHUNKED;
        else if (has_len)
            b->mode = BODY_LENGTH, b->left = clen;
        else
            b->mode = BODY_CLOSE, close_conn = true;
        b->done = b->mode == BODY_NONE || (b->mode == BODY_LENGTH && clen == 0);
        *keep = !close_conn;
        return 0;
    }
}

/* The next piece of the body. 1: it is in *data and *len; 0: the body is complete; <0: an
 * error (the connection is then not reusable). */
static int body_next(struct io *io, struct body *b, const char **data, size_t *len)
{
    struct http_client *c = io->c;
    char *line;
    size_t ll;
    int r;

    for (;;) {
        size_t have = c->rlen - c->rpos;
        if (b->done)
            return 0;
        if (b->mode == BODY_CHUNKED && !b->in_chunk) {
            char *end;
            if ((r = read_line(io, &line, &ll)) <= 0) {
                b->cut = r == 0;
                return r < 0 ? r : err_set(ERR_UNAVAILABLE, "the response ended inside a chunk");
            }
            if (b->left == UINT64_MAX) { /* the CRLF after a chunk's data */
                b->left = 0;
                if (ll)
                    return err_set(ERR_PARSE, "a chunk is longer than it said");
                continue;
            }
            if (!ll)
                continue;
            line[ll] = '\0';
            errno = 0;
            b->left = strtoull(line, &end, 16);
            if (end == line || errno)
                return err_set(ERR_PARSE, "a bad chunk size");
            if (b->left == 0) { /* the last chunk: skip trailers up to the empty line */
                do {
                    if ((r = read_line(io, &line, &ll)) <= 0)
                        return r < 0 ? r : err_set(ERR_UNAVAILABLE, "the response ended in its trailers");
                } while (ll);
                b->done = true;
                return 0;
            }
            b->in_chunk = true;
            continue;
        }
        if (!have) {
            if ((r = raw_fill(io)) < 0)
                return r;
            if (r == 0) {
                if (b->mode == BODY_CLOSE) {
                    b->done = true;
                    return 0;
                }
                b->cut = true;
                return err_set(ERR_UNAVAILABLE, "the response ended early");
            }
            continue;
        }
        *data = c->rbuf + c->rpos;
        *len = have;
        if (b->mode != BODY_CLOSE && *len > b->left)
            *len = (size_t)b->left;
        c->rpos += *len;
        if (b->mode != BODY_CLOSE) {
            b->left -= *len;
            if (!b->left) {
                if (b->mode == BODY_LENGTH)
                    b->done = true;
                else
                    b->in_chunk = false, b->left = UINT64_MAX; /* its CRLF comes next */
            }
        }
        return 1;
    }
}

/* The request's bytes, headers and body, in one secret buffer (a credential and a
 * token-bearing body may be in it): sent in one write. */
static struct sbuf *build_request(const struct http_client *c, const struct url *u,
                                  const struct http_req *req, bool via_proxy)
{
    size_t n = 256 + 2 * strlen(req->url) + req->body_len +
               (req->bearer ? sbuf_len(req->bearer) : 0) +
               (req->content_type ? strlen(req->content_type) : 0) +
               (req->accept ? strlen(req->accept) : 0) +
               (c->opts.user_agent ? strlen(c->opts.user_agent) : 0);
    struct sbuf *s;
    char line[URL_HOST_MAX + 256];
    bool dflt = u->port == (u->tls ? 443u : 80u), v6 = strchr(u->host, ':') != NULL;

    for (const char *const *p = req->headers; p && *p; p++)
        n += strlen(*p) + 2;
    s = sbuf_new(n);
    sbuf_addstr(s, req->method);
    sbuf_addstr(s, " ");
    if (via_proxy)
        sbuf_addstr(s, req->url); /* absolute form */
    else
        sbuf_addstr(s, *u->path == '/' ? u->path : "/");
    if (!via_proxy && *u->path == '?')
        sbuf_addstr(s, u->path);
    sbuf_addstr(s, " HTTP/1.1\r\nHost: ");
    snprintf(line, sizeof(line), v6 ? "[%s]" : "%s", u->host);
    sbuf_addstr(s, line);
    if (!dflt) {
        snprintf(line, sizeof(line), ":%u", u->port);
        sbuf_addstr(s, line);
    }
    sbuf_addstr(s, "\r\nUser-Agent: ");
    sbuf_addstr(s, c->opts.user_agent ? c->opts.user_agent : "pgtoken-rotator/" PGTR_VERSION);
    sbuf_addstr(s, "\r\nAccept: ");
    sbuf_addstr(s, req->accept ? req->accept : "application/json");
    sbuf_addstr(s, "\r\n");
    if (req->content_type) {
        sbuf_addstr(s, "Content-Type: ");
        sbuf_addstr(s, req->content_type);
        sbuf_addstr(s, "\r\n");
    }
    if (req->bearer) {
        sbuf_addstr(s, "Authorization: Bearer ");
        sbuf_addsb(s, req->bearer);
        sbuf_addstr(s, "\r\n");
    }
    for (const char *const *p = req->headers; p && *p; p++) {
        sbuf_addstr(s, *p);
        sbuf_addstr(s, "\r\n");
    }
    if (req->body || !strcmp(req->method, "POST") || !strcmp(req->method, "PUT") ||
        !strcmp(req->method, "PATCH")) {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", req->body ? req->body_len : 0);
        sbuf_addstr(s, line);
    }
    sbuf_addstr(s, "\r\n");
    if (req->body)
        sbuf_add(s, req->body, req->body_len);
    return s;
}

/* Opens (or reuses) the connection, sends req and reads the response's head. A
 * kept connection the server has closed in the meantime is detected when it
 * sends nothing back, and the request is sent once more on a new one. */
static int send_and_head(struct io *io, const struct url *u, const struct http_req *req,
                         struct http_resp *resp, struct body *b, bool *keep)
{
    struct http_client *c = io->c;
    bool head_req = !strcmp(req->method, "HEAD");
    int rc;

    for (int attempt = 0;; attempt++) {
        bool reused, nothing = true;
        struct sbuf *msg;

        if ((rc = conn_open(io, u)) < 0)
            return rc;
        reused = c->conn_used;
        c->conn_used = true;
        msg = build_request(c, u, req, !u->tls && c->conn_proxied);
        errno = 0;
        rc = raw_write(io, sbuf_expose(msg), sbuf_len(msg));
        sbuf_free(msg);
        if (rc == 0)
            rc = read_head(io, resp, b, head_req, keep, &nothing);
        if (rc == 0)
            return 0;
        conn_close(c);
        if (!(reused && nothing && attempt == 0 && !io->timed_out && !io->stopped))
            return rc;
    }
}

static int finish(struct io *io, int rc, bool keep)
{
    struct http_client *c = io->c;

    if (rc < 0 || !keep || c->rpos != c->rlen)
        conn_close(c);
    else {
        OPENSSL_cleanse(c->rbuf, c->rlen);
        c->rpos = c->rlen = 0;
    }
    return rc;
}

int http_do(struct http_resp *out, struct http_client *c, const struct http_req *req)
{
    struct io io = { c, 0, 0, NULL, false, false, false };
    long timeout = req->timeout_ms ? req->timeout_ms : c->opts.timeout_ms;
    struct url u;
    struct body b = { 0 };
    bool keep = false;
    const char *data = NULL;
    size_t len = 0;
    int rc;

    http_resp_release(out);
    buf_init(&out->body, c->opts.max_body);
    if ((rc = url_parse(&u, req->url)) < 0)
        return rc;
    io.deadline_ms = clock_mono_ms() + timeout;
    if ((rc = send_and_head(&io, &u, req, out, &b, &keep)) < 0)
        return finish(&io, err_wrap(rc, "request to %s failed", req->url), false);
    if (b.mode == BODY_LENGTH && b.left > c->opts.max_body)
        rc = ERR_TOOBIG;
    while (rc == 0 && (rc = body_next(&io, &b, &data, &len)) > 0)
        rc = buf_add(&out->body, data, len) < 0 ? ERR_TOOBIG : 0;
    if (rc == ERR_TOOBIG)
        rc = err_set(ERR_TOOBIG, "response from %s is over %zu bytes", req->url, c->opts.max_body);
    else if (rc < 0)
        rc = err_wrap(rc, "request to %s failed", req->url);
    if (rc < 0)
        out->status = 0;
    return finish(&io, rc, keep);
}

/* What a stream's failure rc becomes: 0 when asked to stop or when the
 * server cut a 2xx stream (it ended); the silence named whether it came
 * before the head or after; an over-long line as it is. */
static int stream_error(const struct io *io, int rc, const char *url, bool cut)
{
    if (io->stopped || cut)
        return 0;
    if (io->idle)
        return err_set(ERR_UNAVAILABLE, "stream from %s went quiet for %lds", url,
                       io->idle_ms / 1000);
    if (rc == ERR_TOOBIG)
        return rc;
    return err_wrap(rc, "stream from %s failed", url);
}

int http_stream(struct http_resp *resp, struct http_client *c, const struct http_req *req,
                http_line_fn on_line, void *ctx, const atomic_bool *stop, long idle_timeout_s,
                size_t max_line)
{
    struct io io = { c, 0, idle_timeout_s > 0 ? idle_timeout_s * 1000 : 0, stop, false, false, false };
    struct buf line = BUF_INIT(max_line);
    struct url u;
    struct body b = { 0 };
    bool keep = false, ok;
    const char *data = NULL;
    size_t len = 0;
    int rc, stopv = 0;

    http_resp_release(resp);
    buf_init(&resp->body, 64 * 1024);
    if ((rc = url_parse(&u, req->url)) < 0)
        return rc;
    /* Connecting and the response's head are bounded by the client's timeout,
     * the stream by the request's (0: none); both by the idle time. */
    io.deadline_ms = clock_mono_ms() + c->opts.timeout_ms;
    rc = send_and_head(&io, &u, req, resp, &b, &keep);
    io.deadline_ms = req->timeout_ms ? clock_mono_ms() + req->timeout_ms : 0;
    if (rc < 0)
        return finish(&io, stream_error(&io, rc, req->url, false), false);
    ok = resp->status >= 200 && resp->status <= 299;
    while (!stopv && (rc = body_next(&io, &b, &data, &len)) > 0) {
        size_t start = 0;
        rc = 0;
        if (!ok) {
            if (buf_add(&resp->body, data, len) < 0)
                break;
            continue;
        }
        for (size_t i = 0; i < len && !stopv && !rc; i++) {
            if (data[i] != '\n')
                continue;
            if (buf_add(&line, data + start, i - start) < 0)
                rc = err_set(ERR_TOOBIG, "watch event over %zu bytes", line.max);
            start = i + 1;
            if (!rc && line.len) {
                stopv = on_line(ctx, line.ptr, line.len);
                OPENSSL_cleanse(line.ptr, line.len); /* events carry Secret data */
                buf_reset(&line);
            }
        }
        if (!rc && !stopv && start < len && buf_add(&line, data + start, len - start) < 0)
            rc = err_set(ERR_TOOBIG, "watch event over %zu bytes", line.max);
        if (rc)
            break;
    }
    if (stopv)
        rc = stopv;
    else if (rc < 0)
        rc = stream_error(&io, rc, req->url, ok && b.cut);
    if (line.ptr)
        OPENSSL_cleanse(line.ptr, line.cap);
    buf_release(&line);
    /* A stream is left only when it ends: its connection is not kept. */
    return finish(&io, rc, false);
}
