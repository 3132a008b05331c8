/* One client connection of the auth proxy, as a state machine over plaintext
 * bytes: the event loop owns the sockets and TLS, hands the session what each
 * side sent, sends what the session put in its two outboxes, and does what
 * each call returns. No I/O, no clock, no threads: everything a login needs
 * from outside (a token, random bytes) comes through session_cfg's callbacks.
 *
 * A connection goes through:
 *   the client's first packets   SSLRequest ('S' with a server certificate,
 *                                else 'N'), GSSENCRequest ('N'), then a
 *                                StartupMessage checked against the role and
 *                                database served (or a CancelRequest);
 *   the client's login           trust, or SCRAM-SHA-256 with a local password;
 *   the upstream login           SSLRequest, TLS, StartupMessage as the role,
 *                                the token as the cleartext password, then
 *                                the server's ParameterStatus and notices up
 *                                to ReadyForQuery;
 *   the welcome                  AuthenticationOk, the server's parameters,
 *                                this session's own BackendKeyData (so that a
 *                                cancel comes back here) and ReadyForQuery;
 *   relay                        bytes both ways, untouched.
 * Every refusal is a FATAL ErrorResponse to the client with a SQLSTATE it
 * understands: 08001 no token / upstream unreachable or TLS failed, 28000 a
 * role or database not served, 28P01 a wrong local password, 08P01 a
 * protocol violation, 0A000 what is not proxied (replication), or the
 * server's own ErrorResponse, forwarded as it came (a rejected token: 28000
 * or 28P01 with the server's message). Tokens never reach an error text. */
#ifndef PGTR_SESSION_H
#define PGTR_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/sbuf.h"
#include "pg/scram.h"

/* The most a client or the server may send in one message before the relay
 * (startup and SASL messages, ParameterStatus, notices). */
#define SESSION_MSG_MAX (64u << 10)
/* The most the upstream login may buffer for the welcome. */
#define SESSION_WELCOME_MAX (256u << 10)

struct session_cfg {
    const char *role;     /* the only user clients may ask for; the upstream login's */
    const char *database; /* the only database */
    const struct scram_secret *password; /* clients prove it with SCRAM; NULL: trust */
    bool client_tls;      /* a server certificate is set: SSLRequest gets 'S' */
    const char *upstream; /* "host:port", for messages */
    /* A copy of the current token in *out (the caller frees it): 0, or a
     * negative code with err_msg() saying why there is none. Must not block. */
    int (*token)(void *ctx, struct sbuf **out);
    void *token_ctx;
    /* n random bytes (a nonce, a cancel key). */
    void (*random)(void *out, size_t n);
};

/* What the loop does next (after sending what the outboxes hold, in order:
 * the client's first, the upstream's). */
enum session_do {
    SES_READ,         /* wait for more bytes from either side */
    SES_CLIENT_TLS,   /* send client_out, then TLS as the server with the client */
    SES_CONNECT,      /* connect to the upstream, then session_upstream_connected */
    SES_UPSTREAM_TLS, /* TLS as the client with the upstream, then session_upstream_tls */
    SES_CANCEL,       /* the client asks to cancel session cancel_pid's query (check
                       * cancel_key); then close this connection without a word */
    SES_RELAY,        /* logged in both ways: send the outboxes, then copy bytes */
    SES_CLOSE,        /* send client_out, then close both sides */
};

/* Why a connection ended or was refused: a metric's label. */
enum session_result {
    SES_R_NONE,        /* not yet */
    SES_R_OK,          /* relayed */
    SES_R_CLIENT,      /* the client left, or broke the protocol, before the welcome */
    SES_R_REFUSED,     /* a role, database or option not served, or a wrong local password */
    SES_R_NO_TOKEN,    /* no token to log in with */
    SES_R_UNREACHABLE, /* the upstream could not be reached (or timed out) */
    SES_R_TLS,         /* TLS with the upstream failed */
    SES_R_REJECTED,    /* the server refused the login (its ErrorResponse forwarded) */
    SES_R_ERROR,       /* anything else the server said or did wrong */
    SES_R_CANCEL,      /* a cancel request */
};
const char *session_result_name(enum session_result r);

struct session {
    const struct session_cfg *cfg;
    int state;                 /* file-private */
    enum session_result result;
    uint32_t pid, key;         /* this session's BackendKeyData, given to the client */
    uint32_t up_pid, up_key;   /* the server's, for a cancel */
    uint32_t cancel_pid, cancel_key; /* SES_CANCEL: what the client sent */
    struct buf client_out;     /* to the client */
    struct buf upstream_out;   /* to the upstream; holds the password message once:
                                * upstream_secret says it must be wiped once sent */
    bool upstream_secret;
    struct buf client_in, upstream_in; /* received and not yet consumed */
    struct buf params;         /* the upstream's startup parameters, built from the client's */
    struct buf welcome;        /* the server's ParameterStatus and notices, until Z */
    struct scram_exchange scram;
    bool client_tls_done;
    char reason[256];          /* why it was refused, for the log (no secret) */
};

/* pid: the session's own process id for BackendKeyData (unique among open
 * sessions: the loop looks cancels up by it); the key is random. */
void session_init(struct session *s, const struct session_cfg *cfg, uint32_t pid);
/* Releases the buffers, wiping those that held a token or SCRAM messages. */
void session_release(struct session *s);

/* Bytes from the client (before the relay). */
enum session_do session_client_in(struct session *s, const void *data, size_t len);
/* The client's TLS is up (after SES_CLIENT_TLS). */
enum session_do session_client_tls(struct session *s);
/* Bytes from the upstream (before the relay). */
enum session_do session_upstream_in(struct session *s, const void *data, size_t len);
/* The TCP connection to the upstream is open (after SES_CONNECT). */
enum session_do session_upstream_connected(struct session *s);
/* TLS with the upstream is up and verified (after SES_UPSTREAM_TLS). */
enum session_do session_upstream_tls(struct session *s);
/* The upstream could not be reached, TLS failed or it closed: rc (ERR_TLS for
 * TLS) and err_msg() say why. Always SES_CLOSE, with a FATAL for the client. */
enum session_do session_upstream_failed(struct session *s, int rc);
/* The login took too long (the loop's deadline). SES_CLOSE. */
enum session_do session_timeout(struct session *s);

#endif
