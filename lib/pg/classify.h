/* What a login check concluded, and how libpq's and the server's words are read into it:
 * the outcome classes (enum pg_login), the result a check fills (struct pg_check_result, with
 * its one-line message), and the tables that map a libpq error message to a class.
 *
 *   struct pg_check_result res;
 *   pg_check_classify(&res, PQerrorMessage(conn), token);
 *   log_warn("login_check_failed", LOG_STR("class", pg_login_name(res.login)),
 *            LOG_STR("reason", res.message));
 *
 * libpq's messages are English as long as the process never calls setlocale(LC_MESSAGES);
 * classification relies on that for client-side failures (server failures carry a SQLSTATE).
 * Pure: no I/O, no shared state; thread-safe. */
#ifndef PGTR_CLASSIFY_H
#define PGTR_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf;

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

/* Fills out (login, sqlstate, message; cached = false) from a libpq error message as libpq 15
 * formats it with PQERRORS_VERBOSE. Used by pg_check_login (pg/login.h), exposed for tests.
 * token (may be NULL) is redacted from the message. The rules, in order:
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

/* For the other pg modules, which word their own outcomes (a timeout, a trust login). */

/* *out = PG_LOGIN_ERROR, no SQLSTATE, not cached, empty message. */
void classify_result_init(struct pg_check_result *out);

/* Sets out->message to s[0..n) made one line: control characters become spaces, runs of
 * spaces one space, leading and trailing spaces go; over the cap it is cut on a UTF-8
 * character boundary and ends in "...". Not redacted: s must not hold the token. */
void classify_set_message(struct pg_check_result *out, const char *s, size_t n);

/* classify_set_message of a printf-style text (formatted into at most twice the cap). */
void classify_set_messagef(struct pg_check_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
