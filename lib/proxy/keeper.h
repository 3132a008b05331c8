/* What a new upstream login needs, kept ready so that the proxy's event loop
 * never waits for it: a fresh token and the server's addresses. One thread
 * mints a token when the current one passes its refresh point (refresh_ratio
 * of its lifetime, default 0.5) and resolves the server's name every
 * resolve_every_ms (30 s) and when asked (keeper_kick, after a failed
 * connect). A failure keeps what still works (a token not yet expired, the
 * last addresses) and is retried with backoff (1 s doubling to 30 s); it is
 * what the loop reports to clients when nothing is left. Thread-safe. */
#ifndef PGTR_KEEPER_H
#define PGTR_KEEPER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/sbuf.h"
#include "idp/idp.h"

#define KEEPER_ADDRS_MAX 8

struct keeper_opts {
    const char *host;
    unsigned port;
    /* Mints a token (blocking; called on the keeper's thread only). Errors as
     * idp_mint. */
    int (*mint)(void *ctx, struct idp_token *out);
    void *mint_ctx;
    double refresh_ratio;  /* 0: 0.5 */
    long resolve_every_ms; /* 0: 30000 */
};

struct keeper_stats {
    atomic_long mints, mint_failures, resolves, resolve_failures;
    atomic_llong token_expires_at; /* epoch seconds; 0: none */
};

struct keeper_addr {
    struct sockaddr_storage sa;
    socklen_t len;
};

struct keeper;

/* Starts the thread, which mints and resolves at once. 0, or ERR_IO when the
 * thread cannot start. */
int keeper_start(struct keeper **out, const struct keeper_opts *o);
/* Stops the thread and frees everything (the token wiped). */
void keeper_stop(struct keeper *k);
struct keeper_stats *keeper_stats(struct keeper *k);

/* A copy of the token (caller frees) while it has at least a sixth of its
 * life, at most 10 s, left: 0; else ERR_UNAVAILABLE with why there is none
 * (the last failure). Never blocks on the network. */
int keeper_token(struct keeper *k, struct sbuf **out);
/* The server's addresses (up to max) into out: how many (> 0); or
 * ERR_UNAVAILABLE with the resolver's last error. */
int keeper_addrs(struct keeper *k, struct keeper_addr *out, int max);
/* Resolve again now (a connect to every address failed). */
void keeper_kick(struct keeper *k);
/* Waits up to ms for the first token and addresses: true when both are there. */
bool keeper_wait_ready(struct keeper *k, long ms);

#endif
