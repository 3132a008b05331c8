/* The login check itself: proves that a freshly minted Entra ID token logs in to PostgreSQL as
 * its role before the token is written anywhere, and says why when it does not (the classes
 * and the result are pg/classify.h's; callers usually go through the cache, pg/pgcheck.h).
 *
 *   struct pg_check_result res;
 *   if ((rc = pg_check_login(&res, &target, token, &opts)) < 0)
 *       return rc;                                  (bad arguments: ERR_INVALID)
 *   if (res.login != PG_LOGIN_OK)
 *       log_warn("login_check_failed", LOG_STR("class", pg_login_name(res.login)),
 *                LOG_STR("reason", res.message));
 *
 * How the login is made (lib/pg/login.c says why for each):
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
 * Thread-safe: each call has its own connection (libpq 15 with OpenSSL 3 is thread-safe). */
#ifndef PGTR_LOGIN_H
#define PGTR_LOGIN_H

#include <stdbool.h>

#include "pg/classify.h"

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

/* Logs in to t as t->user with token as the password, runs SELECT 1, disconnects.
 * token: the access token (not modified; it must be non-empty and contain no NUL byte).
 * o: NULL for all defaults.
 * Returns 0 when the check ran, whatever its outcome (out->login says how it went), or
 * ERR_INVALID (message names the field; *out says PG_LOGIN_ERROR) when an argument is bad or
 * the environment would redirect the login (PGHOSTADDR, a service file setting hostaddr). */
int pg_check_login(struct pg_check_result *out, const struct pg_target *t,
                   const struct sbuf *token, const struct pg_check_opts *o);

/* ---- For the cache (pg/pgcheck.h), which keys its entries the way the login is made ---- */

/* The options as libpq gets them, defaults filled in. The strings point at the caller's
 * (o's) or at constants: valid as long as o is. */
struct login_params {
    const char *sslmode;  /* "verify-full", "verify-ca", or "require" (insecure) */
    const char *ca_file;  /* the sslrootcert given to libpq (a file that cannot exist when
                           * insecure_skip_tls_verify) */
    int timeout_s;
};

/* Checks t, token and o as pg_check_login does before it connects, and resolves the
 * defaults. out must not be NULL. 0: *params filled, *out set to PG_LOGIN_ERROR with no
 * message (classify_result_init); ERR_INVALID: *out says PG_LOGIN_ERROR and holds the message
 * (the same as err_msg(), which names the field). */
int login_prepare(struct login_params *params, struct pg_check_result *out,
                  const struct pg_target *t, const struct sbuf *token,
                  const struct pg_check_opts *o);

#endif
