/* The auth proxy's event loop (proxy/server.h).
 *
 * Each connection has two sides, the client's and the upstream's. A side
 * remembers whether its last read or write would have blocked, and the epoll
 * interest follows from that: a side is read when it may have bytes (epoll
 * said so, or OpenSSL holds some) and, in the relay, only while the other
 * side has sent everything it was given. Every event runs the connection's
 * pump, which repeats connect, handshake, write and read steps until none
 * makes progress. Level-triggered epoll: a missed edge costs a wake-up, never
 * a stall. */
#include "proxy/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/tls.h"
#include "pg/wire.h"
#include "base/banned.h"

#define SCRATCH (64u << 10)      /* one read */
#define CLOSE_LINGER_MS 5000     /* to send a last error before closing */
#define TICK_MS 200
#define PUMP_ROUNDS 64           /* steps per event before others get a turn */

enum { CX_NONE, CX_CONNECT, CX_SSL, CX_TLS, CX_SENT }; /* a cancel's steps */

struct side {
    struct conn *conn;
    int fd;
    SSL *ssl;
    bool hs;           /* a TLS handshake is under way */
    bool server;       /* the handshake is ours as the server (the client's side) */
    bool connecting;   /* a non-blocking connect is under way */
    bool rd_blocked, wr_blocked;
    uint32_t rd_wants, wr_wants, hs_wants; /* epoll events the last step waits for */
    uint32_t mask;     /* the events asked of epoll */
    bool registered;   /* the fd is in the epoll set (with mask, which may be 0) */
    bool eof;
    struct buf out;    /* to send on this side */
    bool out_secret;   /* out held a password: wipe it when drained */
};

struct conn {
    struct proxy_server *srv;
    struct session s;
    bool login;        /* the session drives it; after it, the relay */
    bool closing;      /* send c.out, then close */
    int cancel_step;   /* CX_*: a cancel's upstream connection, no client */
    struct buf cancel_pkt;
    struct side c, u;
    uint32_t slot, pid;
    int64_t started_ms, deadline_ms;
    struct keeper_addr addrs[KEEPER_ADDRS_MAX];
    int naddrs, addr_i;
    uint32_t up_pid, up_key, key;
    /* where the upstream's stream is in its messages (the relay) */
    size_t msg_left;
    unsigned hdr_have;
    unsigned char hdr[5];
    bool counted;      /* its result is in the stats */
    bool dead;         /* closed: freed after the current batch of events */
    struct conn *prev, *next, *next_dead;
};

struct proxy_server {
    struct proxy_server_opts o;
    char upstream[300];
    struct session_cfg scfg;
    int lfd, ep;
    unsigned port;
    struct conn *conns;      /* every connection, cancels included */
    struct conn *dead;       /* closed in this batch of events (which may still name them) */
    struct conn **slots;     /* by slot: client connections */
    uint32_t *free_slots;
    int nfree;
    uint32_t gen;
    char *scratch;
    void (*on_tick)(void *ctx);
    void *tick_ctx;
    struct proxy_server_stats stats;
};

static int token_cb(void *ctx, struct sbuf **out)
{
    return keeper_token(ctx, out);
}

static void random_cb(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1)
        abort(); /* no randomness: nothing safe is left to do */
}

/* ---- sides ---- */

static void side_init(struct side *sd, struct conn *k, int fd)
{
    memset(sd, 0, sizeof(*sd));
    sd->conn = k;
    sd->fd = fd;
    sd->rd_wants = EPOLLIN;
    sd->wr_wants = EPOLLOUT;
    buf_init(&sd->out, SCRATCH + SESSION_WELCOME_MAX + SESSION_MSG_MAX);
}

static void side_close(struct proxy_server *srv, struct side *sd)
{
    if (sd->ssl) {
        if (!sd->hs && !sd->eof)
            (void)SSL_shutdown(sd->ssl); /* close_notify, best effort */
        SSL_free(sd->ssl);
        sd->ssl = NULL;
    }
    if (sd->fd >= 0) {
        epoll_ctl(srv->ep, EPOLL_CTL_DEL, sd->fd, NULL);
        close(sd->fd);
        sd->fd = -1;
    }
    sd->registered = false;
    if (sd->out.ptr)
        OPENSSL_cleanse(sd->out.ptr, sd->out.cap);
    buf_release(&sd->out);
    sd->mask = 0;
}

/* A failed SSL_read or SSL_write (r <= 0): 0 when it would block (*blocked set,
 * *wants the epoll event it waits for), -1 the peer closed, -2 an error. */
static long ssl_failed(struct side *sd, int r, bool *blocked, uint32_t *wants)
{
    switch (SSL_get_error(sd->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *blocked = true, *wants = EPOLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *blocked = true, *wants = EPOLLOUT;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return -1;
    default:
        ERR_clear_error();
        return -2;
    }
}

/* >0 bytes read; 0 would block; -1 the peer closed; -2 an error. */
static long side_read(struct side *sd, char *p, size_t n)
{
    if (sd->ssl) {
        int r = SSL_read(sd->ssl, p, (int)n);
        return r > 0 ? r : ssl_failed(sd, r, &sd->rd_blocked, &sd->rd_wants);
    }
    ssize_t r = recv(sd->fd, p, n, 0);
    if (r > 0)
        return r;
    if (r == 0)
        return -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        sd->rd_blocked = true;
        return 0;
    }
    return -2;
}

/* >=0 bytes written (0: would block); -2 an error. */
static long side_write(struct side *sd, const char *p, size_t n)
{
    if (!n)
        return 0;
    if (sd->ssl) {
        int r = SSL_write(sd->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
        long f;

        if (r > 0)
            return r;
        f = ssl_failed(sd, r, &sd->wr_blocked, &sd->wr_wants);
        return f == -1 ? -2 : f; /* a close while writing is a failed write */
    }
    ssize_t r = send(sd->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0)
        return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        sd->wr_blocked = true;
        return 0;
    }
    return -2;
}

/* Sends what out holds: >0 progress, 0 none, -2 an error. */
static long side_flush(struct side *sd)
{
    long w;

    if (!sd->out.len || sd->wr_blocked || sd->hs || sd->connecting || sd->fd < 0)
        return 0;
    if ((w = side_write(sd, sd->out.ptr, sd->out.len)) <= 0)
        return w;
    if (sd->out_secret)
        OPENSSL_cleanse(sd->out.ptr, (size_t)w);
    buf_consume(&sd->out, (size_t)w);
    if (!sd->out.len) {
        /* an idle connection holds no buffer */
        if (sd->out_secret)
            OPENSSL_cleanse(sd->out.ptr, sd->out.cap);
        sd->out_secret = false;
        buf_release(&sd->out);
    }
    return w;
}

static bool readable(const struct side *sd)
{
    return sd->fd >= 0 && !sd->eof && !sd->hs && !sd->connecting &&
           (!sd->rd_blocked || (sd->ssl && SSL_has_pending(sd->ssl)));
}

static void set_mask(struct proxy_server *srv, struct side *sd, uint32_t mask)
{
    struct epoll_event ev = { .events = mask, .data.ptr = sd };

    if (sd->fd < 0 || (sd->registered && mask == sd->mask))
        return;
    if (epoll_ctl(srv->ep, sd->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sd->fd, &ev) == 0) {
        sd->mask = mask;
        sd->registered = true;
    }
}

/* ---- connections ---- */

static void count(struct conn *k)
{
    struct proxy_server *srv = k->srv;
    enum session_result r = k->s.result;

    if (k->counted || k->cancel_step)
        return;
    k->counted = true;
    atomic_fetch_add(&srv->stats.results[r], 1);
    if (r == SES_R_OK)
        latency_hist_observe_ms(&srv->stats.login, clock_mono_ms() - k->started_ms);
    else if (r != SES_R_CANCEL && r != SES_R_NONE)
        log_warn("proxy_login_failed", LOG_STR("result", session_result_name(r)),
                 LOG_STR("detail", k->s.reason));
}

/* Ends k: closes both sides and counts it; the memory goes at the end of the batch (reap). */
static void conn_end(struct conn *k)
{
    struct proxy_server *srv = k->srv;

    if (k->login && !k->counted && k->s.result == SES_R_NONE && !k->cancel_step)
        k->s.result = SES_R_CLIENT; /* it left before the end of its login */
    count(k);
    side_close(srv, &k->c);
    side_close(srv, &k->u);
    if (k->login)
        session_release(&k->s);
    buf_release(&k->cancel_pkt);
    if (k->prev)
        k->prev->next = k->next;
    else
        srv->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    if (!k->cancel_step) {
        srv->slots[k->slot] = NULL;
        srv->free_slots[srv->nfree++] = k->slot;
        atomic_fetch_sub(&srv->stats.active, 1);
    }
    k->dead = true;
    k->next_dead = srv->dead;
    srv->dead = k;
}

static void reap(struct proxy_server *srv)
{
    while (srv->dead) {
        struct conn *k = srv->dead;
        srv->dead = k->next_dead;
        free(k);
    }
}

static struct conn *conn_new(struct proxy_server *srv)
{
    struct conn *k = xcalloc(1, sizeof(*k));

    k->srv = srv;
    k->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = k;
    srv->conns = k;
    k->started_ms = clock_mono_ms();
    side_init(&k->c, k, -1);
    side_init(&k->u, k, -1);
    return k;
}

/* Moves what the session wants sent into the sides' outboxes. */
static void take_outboxes(struct conn *k)
{
    struct session *s = &k->s;

    if (s->client_out.len) {
        (void)buf_add(&k->c.out, s->client_out.ptr, s->client_out.len);
        buf_reset(&s->client_out);
    }
    if (s->upstream_out.len) {
        (void)buf_add(&k->u.out, s->upstream_out.ptr, s->upstream_out.len);
        if (s->upstream_secret)
            k->u.out_secret = true;
        OPENSSL_cleanse(s->upstream_out.ptr, s->upstream_out.len);
        buf_reset(&s->upstream_out);
    }
}

static void start_close(struct conn *k)
{
    side_close(k->srv, &k->u);
    k->closing = true;
    k->deadline_ms = clock_mono_ms() + CLOSE_LINGER_MS;
}

static int start_tls(struct conn *k, struct side *sd, SSL_CTX *ctx, bool server)
{
    if (!(sd->ssl = SSL_new(ctx)) || !SSL_set_fd(sd->ssl, sd->fd))
        return err_set(ERR_TLS, "OpenSSL could not make a connection");
    SSL_set_mode(sd->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (server) {
        SSL_set_accept_state(sd->ssl);
    } else {
        int rc = tls_set_peer(sd->ssl, k->srv->o.upstream_host, k->srv->o.upstream_verify);
        if (rc < 0)
            return rc;
        SSL_set_connect_state(sd->ssl);
    }
    sd->server = server;
    sd->hs = true;
    sd->hs_wants = EPOLLIN | EPOLLOUT;
    sd->rd_blocked = sd->wr_blocked = false;
    return 0;
}

static void act(struct conn *k, enum session_do d);
static void pump(struct conn *k);

/* Connects u to the next address: 0 under way; <0 none left (message set). */
static int connect_next(struct conn *k)
{
    struct side *u = &k->u;

    while (k->addr_i < k->naddrs) {
        const struct keeper_addr *a = &k->addrs[k->addr_i++];
        int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* a pooled connection idles for hours: notice a server that is gone */
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        int rc = connect(fd, (const struct sockaddr *)&a->sa, a->len);
        if (rc == 0 || errno == EINPROGRESS) {
            if (u->fd >= 0)
                side_close(k->srv, u);
            side_init(u, k, fd);
            u->connecting = true;
            u->wr_blocked = rc != 0; /* writable once connected */
            return 0;
        }
        close(fd);
    }
    keeper_kick(k->srv->o.keeper);
    return err_set(ERR_UNAVAILABLE, "cannot connect to %s: %s", k->srv->upstream,
                   strerror(errno ? errno : ECONNREFUSED));
}

static int start_connect(struct conn *k)
{
    int n = keeper_addrs(k->srv->o.keeper, k->addrs, KEEPER_ADDRS_MAX);

    if (n < 0)
        return n;
    k->naddrs = n;
    k->addr_i = 0;
    return connect_next(k);
}

/* A cancel for k's query: a short connection of its own. */
static void send_cancel(struct proxy_server *srv, const struct conn *target)
{
    struct conn *x = conn_new(srv);

    x->cancel_step = CX_CONNECT;
    x->deadline_ms = clock_mono_ms() + srv->o.login_timeout_ms;
    buf_init(&x->cancel_pkt, 16);
    (void)pgw_put_cancel(&x->cancel_pkt, target->up_pid, target->up_key);
    if (start_connect(x) < 0) {
        log_warn("proxy_cancel_failed", LOG_STR("detail", err_msg()));
        conn_end(x);
        return;
    }
    pump(x);
}

static void handle_cancel(struct conn *k)
{
    struct proxy_server *srv = k->srv;
    uint32_t pid = k->s.cancel_pid, key = k->s.cancel_key, slot = pid & 0xffff;
    struct conn *t = slot < (uint32_t)srv->o.max_conns ? srv->slots[slot] : NULL;

    /* as the server: a wrong key is ignored, without a word */
    if (t && t->pid == pid && !t->login && !CRYPTO_memcmp(&t->key, &key, sizeof(key)))
        send_cancel(srv, t);
    start_close(k);
}

static void enter_relay(struct conn *k)
{
    k->up_pid = k->s.up_pid;
    k->up_key = k->s.up_key;
    k->key = k->s.key;
    take_outboxes(k);
    count(k);
    session_release(&k->s);
    k->login = false;
    k->deadline_ms = 0;
}

static void act(struct conn *k, enum session_do d)
{
    int rc = 0;

    take_outboxes(k);
    switch (d) {
    case SES_READ:
        return;
    case SES_CLIENT_TLS:
        /* the 'S' first, in the clear; the handshake starts when it is out */
        (void)side_flush(&k->c);
        if (k->c.out.len || !k->srv->o.client_tls ||
            start_tls(k, &k->c, k->srv->o.client_tls, true) < 0) {
            k->s.result = SES_R_CLIENT;
            snprintf(k->s.reason, sizeof(k->s.reason), "could not start TLS with the client");
            start_close(k);
            k->c.out.len = 0;
        }
        return;
    case SES_CONNECT:
        if ((rc = start_connect(k)) < 0)
            act(k, session_upstream_failed(&k->s, rc));
        return;
    case SES_UPSTREAM_TLS:
        if ((rc = start_tls(k, &k->u, k->srv->o.upstream_tls, false)) < 0)
            act(k, session_upstream_failed(&k->s, rc));
        return;
    case SES_CANCEL:
        handle_cancel(k);
        return;
    case SES_RELAY:
        enter_relay(k);
        return;
    case SES_CLOSE:
        start_close(k);
        return;
    }
}

/* The upstream's bytes on their way to the client: where its messages end. */
static void track(struct conn *k, const unsigned char *p, size_t n)
{
    while (n) {
        size_t m;

        if (k->msg_left) {
            m = n < k->msg_left ? n : k->msg_left;
            k->msg_left -= m;
            p += m, n -= m;
            continue;
        }
        m = 5 - k->hdr_have;
        if (m > n)
            m = n;
        memcpy(k->hdr + k->hdr_have, p, m);
        k->hdr_have += (unsigned)m;
        p += m, n -= m;
        if (k->hdr_have == 5) {
            uint32_t len = (uint32_t)k->hdr[1] << 24 | (uint32_t)k->hdr[2] << 16 |
                           (uint32_t)k->hdr[3] << 8 | k->hdr[4];
            k->msg_left = len >= 4 ? len - 4 : 0;
            k->hdr_have = 0;
        }
    }
}

/* A side ended (-1) or failed (-2). */
static void side_gone(struct conn *k, struct side *sd, long why)
{
    sd->eof = true;
    if (k->cancel_step) {
        k->closing = true, k->deadline_ms = 0; /* the server closes after a cancel */
        return;
    }
    if (k->login) {
        if (sd == &k->c) {
            k->s.result = SES_R_CLIENT;
            snprintf(k->s.reason, sizeof(k->s.reason), "the client left during its login");
            k->closing = true, k->deadline_ms = 0;
        } else {
            err_set(ERR_UNAVAILABLE, "the server closed the connection during the login");
            act(k, session_upstream_failed(&k->s, ERR_UNAVAILABLE));
        }
        return;
    }
    if (sd == &k->u && !k->msg_left && !k->hdr_have) {
        struct buf e = BUF_INIT(512);
        (void)pgw_put_error(&e, "FATAL", "08006",
                            why == -1 ? "the server closed the connection"
                                      : "the connection to the server failed",
                            NULL);
        (void)buf_add(&k->c.out, e.ptr, e.len);
        buf_release(&e);
    }
    start_close(k);
    if (sd == &k->c)
        k->deadline_ms = 0;
}

/* One step of a cancel connection after its connect. */
static void cancel_step(struct conn *k, const char *data, long n)
{
    if (k->cancel_step == CX_SSL && n > 0) {
        if (data[0] != 'S' || start_tls(k, &k->u, k->srv->o.upstream_tls, false) < 0) {
            log_warn("proxy_cancel_failed", LOG_STR("detail", "the server refused TLS"));
            k->closing = true, k->deadline_ms = 0;
            return;
        }
        k->cancel_step = CX_TLS;
    }
}

/* Reads from sd and hands the bytes on. true when something was read. */
static bool pump_read(struct conn *k, struct side *sd)
{
    struct side *other = sd == &k->c ? &k->u : &k->c;
    char *p = k->srv->scratch;
    long n;

    if (!readable(sd) || k->closing)
        return false;
    if (!k->login && !k->cancel_step && (other->out.len || other->fd < 0))
        return false; /* the other side has not taken the last read */
    if (k->cancel_step && k->cancel_step != CX_SSL && k->cancel_step != CX_SENT)
        return false;
    n = side_read(sd, p, k->cancel_step == CX_SSL ? 1 : SCRATCH);
    if (n == 0)
        return false;
    if (n < 0) {
        side_gone(k, sd, n);
        return true;
    }
    if (k->cancel_step) {
        cancel_step(k, p, n);
        return true;
    }
    if (k->login) {
        act(k, sd == &k->c ? session_client_in(&k->s, p, (size_t)n)
                           : session_upstream_in(&k->s, p, (size_t)n));
        OPENSSL_cleanse(p, (size_t)n); /* a SCRAM proof, a server's reply */
        return true;
    }
    if (sd == &k->u) {
        track(k, (const unsigned char *)p, (size_t)n);
        atomic_fetch_add(&k->srv->stats.bytes_down, n);
    } else {
        atomic_fetch_add(&k->srv->stats.bytes_up, n);
    }
    /* straight to the other side; only what it does not take now is kept */
    long w = side_write(other, p, (size_t)n);
    if (w < 0) {
        side_gone(k, other, -2);
        return true;
    }
    if (w < n)
        (void)buf_add(&other->out, p + w, (size_t)(n - w));
    return true;
}

/* A handshake step on sd: true on progress. */
static bool pump_handshake(struct conn *k, struct side *sd)
{
    int r, e;

    if (!sd->hs || sd->fd < 0)
        return false;
    r = SSL_do_handshake(sd->ssl);
    if (r == 1) {
        sd->hs = false;
        if (k->cancel_step) {
            (void)buf_add(&sd->out, k->cancel_pkt.ptr, k->cancel_pkt.len);
            k->cancel_step = CX_SENT;
        } else if (sd == &k->c) {
            act(k, session_client_tls(&k->s));
        } else {
            act(k, session_upstream_tls(&k->s));
        }
        return true;
    }
    e = SSL_get_error(sd->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        sd->hs_wants = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        return false;
    }
    if (sd == &k->c) {
        ERR_clear_error();
        sd->hs = false;
        side_gone(k, sd, -2);
        return true;
    }
    r = tls_handshake_failed(sd->ssl, k->srv->o.upstream_host, k->srv->o.upstream_port);
    sd->hs = false;
    if (k->cancel_step) {
        log_warn("proxy_cancel_failed", LOG_STR("detail", err_msg()));
        k->closing = true, k->deadline_ms = 0;
    } else {
        act(k, session_upstream_failed(&k->s, r));
    }
    return true;
}

/* The upstream's connect finished (or failed): true on progress. */
static bool pump_connect(struct conn *k)
{
    struct side *u = &k->u;
    int err = 0;
    socklen_t len = sizeof(err);

    if (!u->connecting || u->wr_blocked)
        return false;
    if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY) {
        u->wr_blocked = true;
        return false;
    }
    if (err) {
        errno = err;
        if (connect_next(k) == 0)
            return true;
        if (k->cancel_step) {
            log_warn("proxy_cancel_failed", LOG_STR("detail", err_msg()));
            k->closing = true, k->deadline_ms = 0;
        } else {
            act(k, session_upstream_failed(&k->s, ERR_UNAVAILABLE));
        }
        return true;
    }
    u->connecting = false;
    if (k->cancel_step) {
        (void)pgw_put_ssl_request(&u->out);
        k->cancel_step = CX_SSL;
    } else {
        act(k, session_upstream_connected(&k->s));
    }
    return true;
}

static void update_masks(struct conn *k)
{
    struct side *sides[2] = { &k->c, &k->u };

    for (int i = 0; i < 2; i++) {
        struct side *sd = sides[i], *other = sides[1 - i];
        uint32_t m = 0;

        if (sd->fd < 0)
            continue;
        if (sd->connecting)
            m = EPOLLOUT;
        else if (sd->hs)
            m = sd->hs_wants;
        else {
            bool may_read = !sd->eof && !k->closing &&
                            (k->login || k->cancel_step || !other->out.len);
            if (may_read)
                m |= sd->rd_wants;
            if (sd->out.len)
                m |= sd->wr_wants;
        }
        if (k->closing && sd == &k->c && sd->out.len)
            m = sd->wr_wants;
        set_mask(k->srv, sd, m);
    }
}

/* Runs steps until none makes progress; frees k when it is done. */
static void pump(struct conn *k)
{
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        long w;

        progress |= pump_connect(k);
        progress |= pump_handshake(k, &k->c);
        progress |= pump_handshake(k, &k->u);
        if ((w = side_flush(&k->c)) < 0)
            side_gone(k, &k->c, -2);
        progress |= w != 0;
        if ((w = side_flush(&k->u)) < 0)
            side_gone(k, &k->u, -2);
        progress |= w != 0;
        progress |= pump_read(k, &k->c);
        progress |= pump_read(k, &k->u);
        if (k->cancel_step == CX_SENT && !k->u.out.len) {
            atomic_fetch_add(&k->srv->stats.cancels_sent, 1);
            conn_end(k); /* the request is out: the server needs nothing more */
            return;
        }
        if (k->closing && (k->c.fd < 0 || k->c.eof || !k->c.out.len)) {
            conn_end(k);
            return;
        }
        if (!progress)
            break;
    }
    update_masks(k);
}

static void on_event(struct side *sd, uint32_t ev)
{
    struct conn *k = sd->conn;

    if (k->dead)
        return;
    if (ev & (sd->rd_wants | EPOLLERR | EPOLLHUP))
        sd->rd_blocked = false;
    if (ev & (sd->wr_wants | EPOLLERR | EPOLLHUP))
        sd->wr_blocked = false;
    pump(k);
}

static void accept_all(struct proxy_server *srv)
{
    for (;;) {
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
        struct conn *k;
        uint32_t slot;

        if (fd < 0)
            return;
        atomic_fetch_add(&srv->stats.accepted, 1);
        if (!srv->nfree) {
            atomic_fetch_add(&srv->stats.over_limit, 1);
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        k = conn_new(srv);
        slot = srv->free_slots[--srv->nfree];
        srv->gen = (srv->gen + 1) & 0x7fff;
        if (!srv->gen)
            srv->gen = 1;
        k->slot = slot;
        k->pid = srv->gen << 16 | slot;
        srv->slots[slot] = k;
        atomic_fetch_add(&srv->stats.active, 1);
        side_init(&k->c, k, fd);
        session_init(&k->s, &srv->scfg, k->pid);
        k->login = true;
        k->deadline_ms = k->started_ms + srv->o.login_timeout_ms;
        pump(k);
    }
}

/* Login deadlines and closing connections' linger. */
static void tick(struct proxy_server *srv)
{
    int64_t now = clock_mono_ms();
    struct conn *k = srv->conns, *next;

    for (; k; k = next) {
        next = k->next;
        if (!k->deadline_ms || now < k->deadline_ms)
            continue;
        if (k->closing || k->cancel_step) {
            conn_end(k);
            continue;
        }
        if (k->login) {
            act(k, session_timeout(&k->s));
            pump(k);
        }
    }
}

/* At the end of a drain: a relayed client between two messages is told why it is cut off,
 * as the server tells it at a shutdown (57P01), if its socket takes it now. */
static void goodbye(struct conn *k)
{
    struct buf e = BUF_INIT(256);

    if (k->login || k->cancel_step || k->closing || k->msg_left || k->hdr_have ||
        k->c.fd < 0 || k->c.out.len)
        return;
    if (pgw_put_error(&e, "FATAL", "57P01",
                      "terminating connection because the proxy is shutting down", NULL) == 0)
        (void)side_write(&k->c, e.ptr, e.len);
    buf_release(&e);
}

int proxy_server_new(struct proxy_server **out, const struct proxy_server_opts *o)
{
    struct proxy_server *srv;
    struct sockaddr_storage ss = { 0 };
    socklen_t sl;
    int one = 1, n;
    const char *host = o->listen_host ? o->listen_host : "127.0.0.1";

    if (!o->role || !o->database || !o->upstream_host || !o->upstream_tls || !o->keeper)
        return err_set(ERR_INVALID, "the proxy needs a role, a database, an upstream and TLS");
    srv = xcalloc(1, sizeof(*srv));
    srv->o = *o;
    if (srv->o.login_timeout_ms <= 0)
        srv->o.login_timeout_ms = PROXY_DEFAULT_LOGIN_TIMEOUT_MS;
    if (srv->o.max_conns <= 0)
        srv->o.max_conns = PROXY_DEFAULT_MAX_CONNS;
    if (srv->o.max_conns > PROXY_MAX_CONNS_MAX)
        srv->o.max_conns = PROXY_MAX_CONNS_MAX;
    snprintf(srv->upstream, sizeof(srv->upstream), "%s:%u", o->upstream_host, o->upstream_port);
    srv->scfg = (struct session_cfg){ .role = o->role, .database = o->database,
                                      .password = o->password, .client_tls = o->client_tls != NULL,
                                      .upstream = srv->upstream, .token = token_cb,
                                      .token_ctx = o->keeper, .random = random_cb };
    srv->lfd = srv->ep = -1;
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)o->listen_port);
        sl = sizeof(*a);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)o->listen_port);
        sl = sizeof(*a);
    } else {
        free(srv);
        return err_set(ERR_INVALID, "listen address %s is not an IP address", host);
    }
    if ((srv->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(srv->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(srv->lfd, 512) < 0 ||
        getsockname(srv->lfd, (struct sockaddr *)&ss, &sl) < 0 ||
        (srv->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        int e = errno;
        if (srv->lfd >= 0)
            close(srv->lfd);
        free(srv);
        return err_set(ERR_IO, "cannot listen on %s:%u: %s", host, o->listen_port, strerror(e));
    }
    srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    n = srv->o.max_conns;
    srv->slots = xcalloc((size_t)n, sizeof(struct conn *));
    srv->free_slots = xcalloc((size_t)n, sizeof(*srv->free_slots));
    for (int i = 0; i < n; i++)
        srv->free_slots[i] = (uint32_t)(n - 1 - i);
    srv->nfree = n;
    srv->scratch = xmalloc(SCRATCH);
    {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
        epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->lfd, &ev);
    }
    *out = srv;
    return 0;
}

unsigned proxy_server_port(const struct proxy_server *s)
{
    return s->port;
}

struct proxy_server_stats *proxy_server_stats(struct proxy_server *s)
{
    return &s->stats;
}

void proxy_server_on_tick(struct proxy_server *s, void (*fn)(void *ctx), void *ctx)
{
    s->on_tick = fn;
    s->tick_ctx = ctx;
}

int proxy_server_run(struct proxy_server *srv, const atomic_bool *stop, long drain_ms)
{
    struct epoll_event evs[128];
    int64_t last_tick = clock_mono_ms(), drain_end = 0;

    for (;;) {
        int n = epoll_wait(srv->ep, evs, 128, TICK_MS);
        int64_t now;

        if (n < 0 && errno != EINTR)
            return err_set(ERR_IO, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr)
                accept_all(srv);
            else
                on_event(evs[i].data.ptr, evs[i].events);
        }
        reap(srv);
        now = clock_mono_ms();
        if (now - last_tick >= TICK_MS) {
            tick(srv);
            reap(srv);
            if (srv->on_tick)
                srv->on_tick(srv->tick_ctx);
            last_tick = now;
        }
        if (!drain_end && atomic_load(stop)) {
            drain_end = now + drain_ms;
            epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->lfd, NULL);
            close(srv->lfd);
            srv->lfd = -1;
            log_info("proxy_draining", LOG_I64("open", atomic_load(&srv->stats.active)),
                     LOG_I64("drain_ms", drain_ms));
        }
        if (drain_end && (!srv->conns || now >= drain_end)) {
            for (struct conn *k = srv->conns; k; k = k->next)
                goodbye(k);
            return 0;
        }
    }
}

void proxy_server_free(struct proxy_server *srv)
{
    if (!srv)
        return;
    while (srv->conns)
        conn_end(srv->conns);
    reap(srv);
    if (srv->lfd >= 0)
        close(srv->lfd);
    if (srv->ep >= 0)
        close(srv->ep);
    free(srv->slots);
    free(srv->free_slots);
    free(srv->scratch);
    free(srv);
}
