/* Login check: proves that a freshly minted Entra ID token logs in to PostgreSQL as its role
 * before the token is written anywhere, and says why when it does not.
 *
 *   struct pg_check_result res;
 *   if ((rc = pg_check_login(&res, &target, token, &opts)) < 0)
 *       return rc;                                  (bad arguments: ERR_INVALID)
 *   if (res.login != PG_LOGIN_OK)
 *       log_warn("login_check_failed", LOG_STR("class", pg_login_name(res.login)),
 *                LOG_STR("reason", res.message));
 *
 * How the login is made (lib/pg/pgcheck.c says why for each):
 *   - libpq keyword arrays (PQconnectStartParams, expand_dbname 0); the token is only ever the
 *     `password` keyword, never part of a conninfo string.
 *   - Every keyword that decides where the token goes or how the server is trusted is set
 *     explicitly, so no PG* environment variable, service file (PGSERVICE, pg_service.conf),
 *     ~/.pgpass or ~/.postgresql file can change it: host, port, dbname, user, sslmode,
 *     sslrootcert, sslcert/sslkey (none: no client certificate is ever sent), passfile
 *     (/dev/null), gssencmode=disable, channel_binding=prefer, ssl_min_protocol_version=TLSv1.2,
 *     sslsni=1, application_name=pgtoken-rotator, client_encoding=UTF8. The one redirection
 *     that cannot be overridden by a keyword, `hostaddr` (PGHOSTADDR or a service file), is
 *     detected before anything is sent and refused with ERR_INVALID.
 *   - After the login, `SELECT 1` (so a pooler that accepts logins lazily is also proven).
 *     The login counts only if the server asked for the token (PQconnectionUsedPassword): a
 *     server that lets the role in by trust or certificate proves nothing (PG_LOGIN_ERROR).
 *   - One deadline (connect_timeout_s) covers TCP, TLS, authentication and SELECT 1. Name
 *     resolution happens before it and is bounded by the resolver (libpq 15 resolves
 *     synchronously).
 * libpq keeps its own copies of the token: PQfinish wipes its connection copy; its option
 * arrays are freed without wiping (out of our reach). This module makes no copy of its own
 * beyond the one PQconninfo hands back, which it wipes.
 *
 * libpq's messages are English as long as the process never calls setlocale(LC_MESSAGES);
 * classification relies on that for client-side failures (server failures carry a SQLSTATE).
 * Thread-safe: each call has its own connection (libpq 15 with OpenSSL 3 is thread-safe). */
#ifndef PGTR_PGCHECK_H
#define PGTR_PGCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf;

/* Where to log in. All fields are required: nothing falls back to the environment. */
struct pg_target {
    const char *host;     /* DNS name or IP literal; no unix socket path, no host list */
    int port;             /* 1..65535 */
    const char *database; /* at most 63 bytes (PostgreSQL would truncate a longer name) */
    const char *user;     /* the Postgres role; at most 63 bytes */
};

#define PG_CHECK_DEFAULT_SSLMODE "verify-full"
/* libpq 15 has no sslrootcert=system: the system bundle is named explicitly. */
#define PG_CHECK_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define PG_CHECK_DEFAULT_TIMEOUT_S 10
#define PG_CHECK_MAX_TIMEOUT_S 3600

struct pg_check_opts {
    const char *sslmode;  /* "verify-full" (NULL or "": default) or "verify-ca"; "require"
                           * only together with insecure_skip_tls_verify; others ERR_INVALID */
    const char *ca_file;  /* trust anchors (PEM); NULL or "": PG_CHECK_DEFAULT_CA_FILE */
    bool insecure_skip_tls_verify; /* TLS without any verification of the server (libpq
                           * sslmode=require with no root certificate at all): the token goes
                           * to whoever answers. sslmode and ca_file are then ignored. */
    int connect_timeout_s; /* whole login; 0: PG_CHECK_DEFAULT_TIMEOUT_S; at most
                           * PG_CHECK_MAX_TIMEOUT_S */
};

enum pg_login {
    PG_LOGIN_OK,          /* the server asked for the token, accepted it, and ran SELECT 1 */
    PG_LOGIN_REJECTED,    /* the server refused the credential: authentication failed (bad,
                           * expired or foreign token), role missing or not allowed to log
                           * in, no pg_hba entry, no CONNECT privilege on the database */
    PG_LOGIN_UNREACHABLE, /* name resolution failed, connection refused or reset, no route,
                           * timeout, the server closed the connection unexpectedly */
    PG_LOGIN_TLS,         /* TLS handshake or certificate verification failed, the server
                           * does not speak TLS, the CA file is missing or unreadable */
    PG_LOGIN_ERROR,       /* anything else: database missing, server starting up or full,
                           * protocol errors, a server that never asked for the token */
};

#define PG_CHECK_MESSAGE_MAX 256

struct pg_check_result {
    enum pg_login login;
    char sqlstate[6];   /* the server's SQLSTATE when it sent one ("28000"), else "" */
    bool cached;        /* true when this call made no login itself (pg_check_cached) */
    /* One line for people: the last libpq/server message (plus its DETAIL/HINT), no
     * newlines, at most PG_CHECK_MESSAGE_MAX - 1 bytes, never the token (any occurrence of
     * it or of a part of it is replaced by "[REDACTED]" before anything is kept). */
    char message[PG_CHECK_MESSAGE_MAX];
};

/* "ok", "rejected", "unreachable", "tls", "error": stable, for logs, events and metrics. */
const char *pg_login_name(enum pg_login login);

/* Logs in to t as t->user with token as the password, runs SELECT 1, disconnects.
 * token: the access token (not modified; it must be non-empty and contain no NUL byte).
 * o: NULL for all defaults.
 * Returns 0 when the check ran, whatever its outcome (out->login says how it went), or
 * ERR_INVALID (message names the field; *out says PG_LOGIN_ERROR) when an argument is bad or
 * the environment would redirect the login (PGHOSTADDR, a service file setting hostaddr). */
int pg_check_login(struct pg_check_result *out, const struct pg_target *t,
                   const struct sbuf *token, const struct pg_check_opts *o);

/* Fills out (login, sqlstate, message; cached = false) from a libpq error message as libpq 15
 * formats it with PQERRORS_VERBOSE. Pure: used by pg_check_login, exposed for tests. token
 * (may be NULL) is redacted from the message. The rules, in order:
 *   1. A server SQLSTATE (the "SEVERITY:  XXXXX: " of verbose messages): class 28 (invalid
 *      authorization: bad token, PAM/password failure, no pg_hba entry, role missing or
 *      NOLOGIN) and 42501 (no CONNECT privilege) are PG_LOGIN_REJECTED; any other code is
 *      PG_LOGIN_REJECTED if the text names the token ("access token", "authentication failed
 *      for user", as Azure's own messages do) and PG_LOGIN_ERROR otherwise.
 *   2. Without a SQLSTATE, libpq's own wording (quoted names masked first, so a host or role
 *      name cannot match): connection lost ("... closed the connection unexpectedly") is
 *      PG_LOGIN_UNREACHABLE; TLS phrases ("SSL error", "SSL SYSCALL error", "server does not
 *      support SSL", "server certificate for", "root certificate file", ...) PG_LOGIN_TLS;
 *      connect/resolve failures ("could not translate host name", "Is the server running on
 *      that host", "Connection refused", "timeout expired", ...) PG_LOGIN_UNREACHABLE; a
 *      server refusal worded without a code PG_LOGIN_REJECTED; anything else PG_LOGIN_ERROR. */
void pg_check_classify(struct pg_check_result *out, const char *libpq_message,
                       const struct sbuf *token);

/* ---- A cache of checks --------------------------------------------------------------------
 * Each distinct (host, port, database, user, effective sslmode and CA file, SHA-256 of the
 * token) is checked once: an OK result is kept until the token's expiry (expires_at, epoch
 * seconds, from the token). A failed login (rejected, unreachable, TLS, error) is kept a short
 * while, PG_CHECK_FAIL_KEEP_MIN_S doubling with each failure of the same key in a row up to
 * PG_CHECK_FAIL_KEEP_MAX_S (never past the token's expiry), so that many Secrets failing for
 * one cause cost one login per while, not one each; a login refused for want of a grant is
 * tried again at most that late once the DBA grants it. Concurrent identical calls share one
 * login and its result, whatever it is. Bounded: when full, expired entries go first, then the
 * oldest. Thread-safe; no lock is held during a login. The token itself is never stored. */
#define PG_CHECK_FAIL_KEEP_MIN_S 5
#define PG_CHECK_FAIL_KEEP_MAX_S 300
struct pg_check_cache;

/* The login function, replaceable for tests (arg is the hooks' arg). */
typedef int pg_check_fn(struct pg_check_result *out, const struct pg_target *t,
                        const struct sbuf *token, const struct pg_check_opts *o, void *arg);

struct pg_check_cache_hooks {
    pg_check_fn *check;         /* NULL: pg_check_login */
    int64_t (*now_s)(void *arg); /* NULL: clock_wall_s */
    void *arg;
};

#define PG_CHECK_CACHE_DEFAULT_ENTRIES 1024

/* max_entries 0: PG_CHECK_CACHE_DEFAULT_ENTRIES. hooks: NULL for the real login and clock
 * (copied). Never NULL. Free with pg_check_cache_free (no call may be in progress). */
struct pg_check_cache *pg_check_cache_new(size_t max_entries,
                                          const struct pg_check_cache_hooks *hooks);
void pg_check_cache_free(struct pg_check_cache *c);

/* The kept result for this target and token (out->cached true: an OK, or a failure still in
 * its keep), or the result of a new pg_check_login (kept as above). Returns as
 * pg_check_login. */
int pg_check_cached(struct pg_check_result *out, struct pg_check_cache *c,
                    const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                    const struct pg_check_opts *o);

/* As pg_check_cached, but a kept result (OK or failure) does not count: a login is made now
 * (or an identical one in progress is joined), and its result replaces what was kept. For a forced rotation, which
 * must prove its token with a login of its own. */
int pg_check_fresh(struct pg_check_result *out, struct pg_check_cache *c,
                   const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                   const struct pg_check_opts *o);

struct pg_check_cache_stats {
    uint64_t hits;     /* answered from a kept OK */
    uint64_t failures_shared; /* answered from a kept failure, with no login */
    uint64_t shared;   /* waited for an identical login already in progress */
    uint64_t checks;   /* logins made */
    uint64_t evicted;  /* entries dropped to make room */
    size_t entries;    /* kept now (expired ones included until they are dropped) */
};

void pg_check_cache_stats(struct pg_check_cache_stats *out, struct pg_check_cache *c);

#endif
