/* The auth proxy's event loop: one thread, epoll, non-blocking sockets,
 * OpenSSL on either side. It accepts clients on the listen address, lets a
 * proxy/session log each in (to the client, then upstream with the keeper's
 * token), then copies bytes both ways with at most one read's worth held per
 * direction (a side is not read while the other has not taken the last read),
 * so a slow or stuck client delays no other. CancelRequests are matched to
 * their session by its BackendKeyData and sent upstream over TLS with the
 * server's key. When the upstream closes a relayed connection between two
 * messages, the client gets a FATAL 08006 before the close. On stop: the
 * listener closes, open connections are left to finish for drain_ms, then
 * closed. */
#ifndef PGTR_SERVER_H
#define PGTR_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include <openssl/ssl.h>

#include "base/latency_hist.h"
#include "pg/scram.h"
#include "proxy/keeper.h"
#include "proxy/session.h"

#define PROXY_DEFAULT_MAX_CONNS 1000
#define PROXY_MAX_CONNS_MAX 32768
#define PROXY_DEFAULT_LOGIN_TIMEOUT_MS 30000

struct proxy_server_opts {
    const char *listen_host; /* an IP address; "127.0.0.1" by default */
    unsigned listen_port;    /* 0: any free port (tests) */
    const char *upstream_host;
    unsigned upstream_port;
    const char *role, *database;
    const struct scram_secret *password; /* clients prove it; NULL: trust */
    SSL_CTX *client_tls;   /* a server context for clients that ask; NULL: none */
    SSL_CTX *upstream_tls; /* a client context for the upstream (required) */
    bool upstream_verify;  /* false only with the loudly named insecure flag */
    struct keeper *keeper; /* the token and the upstream's addresses */
    long login_timeout_ms; /* both logins together; 0: the default */
    int max_conns;         /* clients at once; 0: the default */
};

struct proxy_server_stats {
    atomic_long accepted;      /* client connections accepted */
    atomic_long over_limit;    /* refused at once: max_conns were open */
    atomic_long active;        /* open client connections */
    atomic_long results[SES_R_CANCEL + 1]; /* logins by how they ended (session_result) */
    atomic_long cancels_sent;  /* CancelRequests sent upstream */
    atomic_llong bytes_up, bytes_down; /* relayed to the upstream, to clients */
    struct latency_hist login; /* from a client's first byte to its welcome */
};

struct proxy_server;

/* Binds and listens. 0; ERR_INVALID (a bad address, options missing); ERR_IO
 * (the address is in use: the message says which). */
int proxy_server_new(struct proxy_server **out, const struct proxy_server_opts *o);
unsigned proxy_server_port(const struct proxy_server *s);
struct proxy_server_stats *proxy_server_stats(struct proxy_server *s);
/* fn(ctx) is called every 200 ms from the loop (a heartbeat for /healthz). */
void proxy_server_on_tick(struct proxy_server *s, void (*fn)(void *ctx), void *ctx);
/* Runs until *stop (looked at every 200 ms), then drains (see above). 0, or
 * ERR_IO when epoll fails. */
int proxy_server_run(struct proxy_server *s, const atomic_bool *stop, long drain_ms);
/* Closes everything left (wiping what held a token). */
void proxy_server_free(struct proxy_server *s);

#endif
