/* SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) on the server's side, as
 * PostgreSQL speaks it: a client that logs in to the proxy with a local
 * password proves it without sending it. Only the mechanism without channel
 * binding is offered ("SCRAM-SHA-256"); a client that could bind but was not
 * offered it ("y" in its header) is accepted, one that asks to bind ("p") is
 * not. The user name in the exchange is ignored (libpq sends it empty: the
 * StartupMessage names the user).
 *
 *   scram_secret_make(&sec, password, 4096, salt, 16)       once, at start
 *   scram_server_first(&ex, &reply, &sec, client_first, n, nonce)
 *       -> AuthenticationSASLContinue(reply)
 *   scram_server_final(&ex, &reply, client_final, n)
 *       -> 0: AuthenticationSASLFinal(reply); ERR_REJECTED: wrong password
 *   scram_exchange_release(&ex)
 *
 * Passwords are printable ASCII: libpq normalises others (SASLprep, NFKC),
 * which is not repeated here, so scram_secret_make refuses them. */
#ifndef PGTR_SCRAM_H
#define PGTR_SCRAM_H

#include <stddef.h>

#include "base/buf.h"
#include "base/sbuf.h"
#include "base/sha256.h"

#define SCRAM_MECH "SCRAM-SHA-256"
#define SCRAM_SALT_MAX 64
/* The iterations PostgreSQL uses by default (scram_iterations). */
#define SCRAM_ITERATIONS 4096
/* Bytes of randomness in a server nonce (PostgreSQL's SCRAM_RAW_NONCE_LEN). */
#define SCRAM_NONCE_RAW 18

/* What the server keeps of a password. */
struct scram_secret {
    int iterations;
    size_t salt_len;
    unsigned char salt[SCRAM_SALT_MAX];
    unsigned char stored_key[SHA256_LEN], server_key[SHA256_LEN];
};

/* Derives the keys of password (1..1024 printable ASCII bytes) with salt and
 * iterations (1..1,000,000). 0, or ERR_INVALID naming the problem (never the
 * password). */
int scram_secret_make(struct scram_secret *out, const struct sbuf *password, int iterations,
                      const unsigned char *salt, size_t salt_len);
/* Parses PostgreSQL's stored form,
 * "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (base64 parts),
 * as pg_authid.rolpassword holds it. 0 or ERR_INVALID. */
int scram_secret_parse(struct scram_secret *out, const char *text);
/* Wipes the keys. */
void scram_secret_clear(struct scram_secret *s);

/* One exchange in progress. */
struct scram_exchange {
    const struct scram_secret *secret;
    struct buf client_first_bare; /* "n=...,r=..." as sent */
    struct buf server_first;      /* "r=...,s=...,i=..." as sent */
    char gs2[8];                  /* the client's header, "n,," or "y,," */
    struct buf nonce;             /* client nonce + server nonce */
};
#define SCRAM_EXCHANGE_INIT { NULL, BUF_INIT(1024), BUF_INIT(1024), "", BUF_INIT(512) }

/* Reads the client's first message and appends the server's first message to
 * reply. server_nonce: printable characters other than ',' (the caller's
 * random bytes in base64). 0; ERR_PARSE (malformed, or a channel binding or
 * extension asked for: the message says which). */
int scram_server_first(struct scram_exchange *ex, struct buf *reply,
                       const struct scram_secret *secret, const void *client_first, size_t len,
                       const char *server_nonce);
/* Reads the client's final message and, when its proof holds, appends the
 * server's final message ("v=...") to reply. 0; ERR_REJECTED: a wrong proof
 * (a wrong password); ERR_PARSE: malformed, or a nonce or channel binding that
 * is not this exchange's. */
int scram_server_final(struct scram_exchange *ex, struct buf *reply, const void *client_final,
                       size_t len);
void scram_exchange_release(struct scram_exchange *ex);

#endif
