#include "pg/pgcheck.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sbuf.h"
#include "base/banned.h"

#define PG_NAME_MAX 63          /* NAMEDATALEN - 1: the server truncates longer names */
#define PG_HOST_MAX 253         /* longest DNS name */
#define PG_MSG_SCAN_MAX 16384   /* libpq messages are short; never scan more than this */
#define PG_REDACT_MIN_PART 16   /* token parts at least this long are redacted on their own */

/* A path that can never be a file (a component of it is /dev/null, so stat fails with
 * ENOTDIR): libpq then loads no client certificate, key or root certificate from it, and
 * never falls back to ~/.postgresql/. */
static const char NO_FILE[] = "/dev/null/none";
static const char REDACTED[] = "[REDACTED]";

const char *pg_login_name(enum pg_login login)
{
    switch (login) {
    case PG_LOGIN_OK:
        return "ok";
    case PG_LOGIN_REJECTED:
        return "rejected";
    case PG_LOGIN_UNREACHABLE:
        return "unreachable";
    case PG_LOGIN_TLS:
        return "tls";
    case PG_LOGIN_ERROR:
        break;
    }
    return "error";
}

/* ---- arguments ---------------------------------------------------------------------------- */

/* The options as they will be passed to libpq. Strings point at the caller's or at constants. */
struct eff_opts {
    const char *sslmode;
    const char *rootcert;
    int timeout_s;
};

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static int check_name(const char *field, const char *v)
{
    if (!v || !*v)
        return err_set(ERR_INVALID, "%s is empty", field);
    if (strlen(v) > PG_NAME_MAX)
        return err_set(ERR_INVALID, "%s is longer than %d bytes (PostgreSQL would truncate it)",
                       field, PG_NAME_MAX);
    if (has_ctl(v))
        return err_set(ERR_INVALID, "%s contains a control character", field);
    return 0;
}

static int validate(struct eff_opts *e, const struct pg_target *t, const struct sbuf *token,
                    const struct pg_check_opts *o)
{
    static const struct pg_check_opts defaults = { 0 };
    int rc;

    e->sslmode = PG_CHECK_DEFAULT_SSLMODE;
    e->rootcert = PG_CHECK_DEFAULT_CA_FILE;
    e->timeout_s = PG_CHECK_DEFAULT_TIMEOUT_S;
    if (!o)
        o = &defaults;
    if (!t)
        return err_set(ERR_INVALID, "no login target");
    if (!t->host || !*t->host)
        return err_set(ERR_INVALID, "host is empty");
    if (strlen(t->host) > PG_HOST_MAX || has_ctl(t->host) || strpbrk(t->host, " ,"))
        return err_set(ERR_INVALID, "host is not a single host name or address");
    /* libpq reads a leading '/' or '@' as a unix socket, where TLS is never used. */
    if (t->host[0] == '/' || t->host[0] == '@')
        return err_set(ERR_INVALID, "host must be a TCP host, not a unix socket");
    if (t->port < 1 || t->port > 65535)
        return err_set(ERR_INVALID, "port %d is out of range", t->port);
    if ((rc = check_name("database", t->database)) < 0 || (rc = check_name("user", t->user)) < 0)
        return rc;
    if (!token || sbuf_len(token) == 0)
        return err_set(ERR_INVALID, "token is empty");
    /* libpq takes a C string: a NUL inside would silently cut the token short. */
    if (strlen(sbuf_expose(token)) != sbuf_len(token))
        return err_set(ERR_INVALID, "token contains a NUL byte");
    if (o->connect_timeout_s < 0 || o->connect_timeout_s > PG_CHECK_MAX_TIMEOUT_S)
        return err_set(ERR_INVALID, "connect_timeout_s %d is out of range (0..%d)",
                       o->connect_timeout_s, PG_CHECK_MAX_TIMEOUT_S);
    e->timeout_s = o->connect_timeout_s ? o->connect_timeout_s : PG_CHECK_DEFAULT_TIMEOUT_S;

    if (o->insecure_skip_tls_verify) {
        /* With any root certificate present libpq's "require" verifies the chain (verify-ca);
         * skipping verification means naming a file that cannot exist. */
        e->sslmode = "require";
        e->rootcert = NO_FILE;
        return 0;
    }
    e->sslmode = o->sslmode && *o->sslmode ? o->sslmode : PG_CHECK_DEFAULT_SSLMODE;
    if (strcmp(e->sslmode, "require") == 0)
        return err_set(ERR_INVALID, "sslmode require does not verify the server: use "
                                    "verify-full, or set insecure_skip_tls_verify to mean it");
    if (strcmp(e->sslmode, "verify-full") != 0 && strcmp(e->sslmode, "verify-ca") != 0)
        return err_set(ERR_INVALID, "sslmode '%.32s' is not allowed: the token only goes over "
                                    "verified TLS (verify-full or verify-ca)", e->sslmode);
    e->rootcert = o->ca_file && *o->ca_file ? o->ca_file : PG_CHECK_DEFAULT_CA_FILE;
    if (has_ctl(e->rootcert))
        return err_set(ERR_INVALID, "ca_file contains a control character");
    return 0;
}

/* ---- messages and classification ---------------------------------------------------------- */

static void result_init(struct pg_check_result *out)
{
    memset(out, 0, sizeof(*out));
    out->login = PG_LOGIN_ERROR;
}

/* Stores s[0..n) as the one-line message: control characters become spaces, runs of spaces
 * one space, and a message over the cap is cut at a character boundary and ends in "...". */
static void set_message(struct pg_check_result *out, const char *s, size_t n)
{
    const size_t cap = sizeof(out->message) - 1;
    size_t len = 0;
    bool truncated = false;

    while (n && (*s == ' ' || (unsigned char)*s < 0x20))
        s++, n--;
    for (size_t i = 0; i < n; i++) {
        char ch = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        if (ch == ' ' && len && out->message[len - 1] == ' ')
            continue;
        if (len == cap) {
            truncated = true;
            break;
        }
        out->message[len++] = ch;
    }
    while (len && out->message[len - 1] == ' ')
        len--;
    if (truncated) {
        len = cap - 3;
        while (len && ((unsigned char)out->message[len] & 0xc0) == 0x80)
            len--; /* do not end inside a UTF-8 sequence */
        memcpy(out->message + len, "...", 3);
        len += 3;
    }
    out->message[len] = '\0';
}

static void set_messagef(struct pg_check_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_messagef(struct pg_check_result *out, const char *fmt, ...)
{
    char tmp[PG_CHECK_MESSAGE_MAX * 2];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(tmp, sizeof(tmp), fmt, ap) < 0)
        tmp[0] = '\0';
    va_end(ap);
    set_message(out, tmp, strnlen(tmp, sizeof(tmp)));
}

/* Copies msg into b with every occurrence of the token, and of each of its dot-separated parts
 * long enough to matter (a JWT's header, payload, signature), replaced by "[REDACTED]".
 * libpq and PostgreSQL never echo a password; this makes sure a peer that does cannot get it
 * into a status, an event or a log. */
static void redact_copy(struct buf *b, const char *msg, size_t len, const struct sbuf *token)
{
    const char *tok = token ? sbuf_expose(token) : NULL;
    size_t tok_len = token ? sbuf_len(token) : 0;

    for (size_t i = 0; i < len;) {
        size_t skip = 0;
        if (tok_len) {
            if (tok_len <= len - i && memcmp(msg + i, tok, tok_len) == 0) {
                skip = tok_len;
            } else {
                for (size_t p = 0; p < tok_len && !skip;) {
                    const char *dot = memchr(tok + p, '.', tok_len - p);
                    size_t plen = (dot ? (size_t)(dot - tok) : tok_len) - p;
                    if (plen >= PG_REDACT_MIN_PART && plen <= len - i &&
                        memcmp(msg + i, tok + p, plen) == 0)
                        skip = plen;
                    p += plen + 1;
                }
            }
        }
        if (skip) {
            buf_addstr(b, REDACTED);
            i += skip;
        } else {
            buf_addch(b, msg[i++]);
        }
    }
}

static bool starts_line(const char *base, const char *p)
{
    return p == base || p[-1] == '\n';
}

/* libpq reports each address it tried as "connection to server at ... failed: ..."; the last
 * report is the outcome. */
static const char *last_attempt(const char *msg)
{
    const char *seg = msg, *p = msg;

    while ((p = strstr(p, "connection to server ")) != NULL) {
        if (starts_line(msg, p))
            seg = p;
        p++;
    }
    return seg;
}

static bool is_sqlstate_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

/* With PQERRORS_VERBOSE a server error reads "SEVERITY:  XXXXX: text" (the severity may be
 * translated, the code never is). Returns the code's offset in line, or -1. */
static long find_sqlstate(const char *line, size_t len)
{
    for (size_t i = 0; i + 10 <= len; i++) {
        if (line[i] != ':' || line[i + 1] != ' ' || line[i + 2] != ' ')
            continue;
        bool ok = true;
        for (size_t k = 0; k < 5 && ok; k++)
            ok = is_sqlstate_char(line[i + 3 + k]);
        if (ok && line[i + 8] == ':' && line[i + 9] == ' ')
            return (long)(i + 3);
    }
    return -1;
}

/* Anything between double quotes (host, role and database names as libpq and PostgreSQL quote
 * them) is dropped, so that a name can never look like one of the phrases below. */
static void mask_quoted(struct buf *b, const char *s)
{
    bool in = false;

    for (; *s; s++) {
        if (*s == '"') {
            in = !in;
            buf_addch(b, '"');
        } else if (!in) {
            buf_addch(b, *s);
        }
    }
}

static bool has_any(const char *s, const char *const *phrases)
{
    for (; *phrases; phrases++)
        if (strstr(s, *phrases))
            return true;
    return false;
}

/* The server went away mid-conversation: transient, like a refused connection. */
static const char *const LOST[] = {
    "server closed the connection unexpectedly",
    "SSL connection has been closed unexpectedly",
    NULL,
};

/* libpq 15's TLS failures (fe-secure-openssl.c, fe-connect.c), checked on the masked text. */
static const char *const TLS[] = {
    "SSL error",                                   /* certificate verify failed, alerts, ... */
    "SSL SYSCALL error",                           /* handshake cut short (EOF, reset) */
    "server does not support SSL",                 /* server answered 'N' to SSLRequest */
    "received invalid response to SSL negotiation",/* not a PostgreSQL server */
    "received unencrypted data after SSL response",
    "server sent an error response during SSL exchange",
    "could not send SSL negotiation packet",
    "could not establish SSL connection",
    "could not create SSL context",
    "server certificate for",                      /* host name mismatch */
    "root certificate file",                       /* CA file missing */
    "could not read root certificate file",
    "could not get server's host name from server certificate",
    "SSL certificate's",
    "certificate contains IP address",
    "could not convert certificate's IP address",
    "could not set minimum SSL protocol version",
    "could not set maximum SSL protocol version",
    "SSL protocol version",
    "could not set SSL Server Name Indication",
    "host name must be specified for a verified SSL connection",
    "SSL error code",
    "no SSL error reported",
    "could not determine server certificate signature algorithm",
    "could not generate peer certificate hash",
    "channel binding required, but SSL not in use",
    NULL,
};

static const char *const UNREACHABLE[] = {
    "could not translate host name",               /* DNS */
    "Is the server running on that host",          /* libpq's hint after any connect() error */
    "timeout expired",
    "Connection refused",
    "Connection timed out",
    "Connection reset by peer",
    "No route to host",
    "Network is unreachable",
    "Network is down",
    "Host is down",
    "could not connect to server",
    NULL,
};

/* Server refusals in words, for peers that send no SQLSTATE, and Azure's token messages
 * ("The access token has expired...", "...does not have a valid audience claim...", "An error
 * occurred while validating the access token...") whatever SQLSTATE they come with. */
static const char *const REFUSED_TOKEN[] = {
    "access token",
    "authentication failed for user",
    NULL,
};

static const char *const REFUSED[] = {
    "authentication failed for user",
    "access token",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "is not permitted to log in",
    "permission denied for database",
    "\" does not exist", /* role "x" does not exist (database ones carry a SQLSTATE) */
    NULL,
};

static enum pg_login classify_text(const char *masked, const char *sqlstate)
{
    if (*sqlstate) {
        if (strncmp(sqlstate, "28", 2) == 0 || strcmp(sqlstate, "42501") == 0)
            return PG_LOGIN_REJECTED;
        return has_any(masked, REFUSED_TOKEN) ? PG_LOGIN_REJECTED : PG_LOGIN_ERROR;
    }
    if (has_any(masked, LOST))
        return PG_LOGIN_UNREACHABLE;
    if (has_any(masked, TLS))
        return PG_LOGIN_TLS;
    if (has_any(masked, UNREACHABLE))
        return PG_LOGIN_UNREACHABLE;
    if (has_any(masked, REFUSED))
        return PG_LOGIN_REJECTED;
    return PG_LOGIN_ERROR;
}

void pg_check_classify(struct pg_check_result *out, const char *libpq_message,
                       const struct sbuf *token)
{
    struct buf clean = BUF_INIT(PG_MSG_SCAN_MAX * 2), masked = BUF_INIT(PG_MSG_SCAN_MAX * 2);
    struct buf shown = BUF_INIT(PG_MSG_SCAN_MAX * 2);
    const char *msg = libpq_message ? libpq_message : "";
    const char *seg, *eol, *line;
    size_t first_len;
    long code;

    result_init(out);
    redact_copy(&clean, msg, strnlen(msg, PG_MSG_SCAN_MAX), token);
    seg = last_attempt(buf_str(&clean));
    eol = strchr(seg, '\n');
    first_len = eol ? (size_t)(eol - seg) : strlen(seg);

    /* The first line without the SQLSTATE, then the server's DETAIL and HINT lines (the
     * LOCATION line and libpq's indented hints add nothing for a person). */
    code = find_sqlstate(seg, first_len);
    if (code >= 0) {
        memcpy(out->sqlstate, seg + code, 5);
        out->sqlstate[5] = '\0';
        buf_add(&shown, seg, (size_t)code);
        buf_add(&shown, seg + code + 7, first_len - (size_t)code - 7);
    } else {
        buf_add(&shown, seg, first_len);
    }
    for (line = eol ? eol + 1 : NULL; line && *line; line = eol ? eol + 1 : NULL) {
        eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (strncmp(line, "DETAIL:  ", 9) == 0 || strncmp(line, "HINT:  ", 7) == 0) {
            buf_addch(&shown, ' ');
            buf_add(&shown, line, len);
        }
    }
    if (shown.len == 0)
        buf_addstr(&shown, "no error message from libpq");
    set_message(out, buf_str(&shown), shown.len);

    mask_quoted(&masked, seg);
    out->login = classify_text(buf_str(&masked), out->sqlstate);

    buf_release(&shown);
    buf_release(&masked);
    buf_release(&clean);
}

/* ---- the login ---------------------------------------------------------------------------- */

/* Server notices during the login would go to stderr and break the one-JSON-object-per-line
 * log; nothing in them is needed. */
static void ignore_notice(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

/* Waits until the connection's socket is ready. 0: ready; 1: deadline passed; -1: poll failed
 * (errno). */
static int wait_socket(PGconn *conn, bool for_write, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - clock_mono_ms();
        struct pollfd p = { .fd = PQsocket(conn), .events = for_write ? POLLOUT : POLLIN };
        int n;

        if (left <= 0)
            return 1;
        if (p.fd < 0) {
            errno = EBADF;
            return -1;
        }
        n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n == 0)
            return 1;
        if (errno != EINTR)
            return -1;
    }
}

static const char *phase_name(PGconn *conn)
{
    switch (PQstatus(conn)) {
    case CONNECTION_STARTED:
    case CONNECTION_NEEDED:
        return "connecting";
    case CONNECTION_MADE:
    case CONNECTION_SSL_STARTUP:
        return "TLS handshake";
    case CONNECTION_AWAITING_RESPONSE:
        return "authenticating";
    case CONNECTION_OK:
        return "running SELECT 1";
    default:
        return "after authentication";
    }
}

static void set_timeout(struct pg_check_result *out, PGconn *conn, const struct pg_target *t,
                        int timeout_s)
{
    result_init(out);
    out->login = PG_LOGIN_UNREACHABLE;
    set_messagef(out, "timeout expired: no answer from %s port %d within %d s (%s)", t->host,
                 t->port, timeout_s, phase_name(conn));
}

static void set_poll_error(struct pg_check_result *out, int err)
{
    result_init(out);
    set_messagef(out, "waiting for the server failed: %s", strerror(err));
}

/* hostaddr, which a keyword cannot clear, would send the token to another address than host
 * (PGHOSTADDR or a service file). PQconninfo also hands back a copy of the token: wiped. */
static int refuse_redirect(PGconn *conn)
{
    PQconninfoOption *opts = PQconninfo(conn), *p;
    bool redirected = false;

    if (!opts)
        return err_set(ERR_INVALID, "libpq could not report its connection options");
    for (p = opts; p->keyword; p++) {
        if (strcmp(p->keyword, "hostaddr") == 0 && p->val && *p->val)
            redirected = true;
        if (strcmp(p->keyword, "password") == 0 && p->val)
            OPENSSL_cleanse(p->val, strlen(p->val));
    }
    PQconninfoFree(opts);
    if (redirected)
        return err_set(ERR_INVALID, "hostaddr is set by PGHOSTADDR or a service file "
                                    "(PGSERVICE): refusing to send the token to another "
                                    "address than host");
    return 0;
}

/* Drives PQconnectPoll to the end under the deadline. 0: finished (see PQstatus); else out
 * holds the outcome. */
static int connect_poll(struct pg_check_result *out, PGconn *conn, const struct pg_target *t,
                        const struct eff_opts *e, int64_t deadline_ms)
{
    /* libpq's documented start: as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;

    while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
        int w = wait_socket(conn, ps == PGRES_POLLING_WRITING, deadline_ms);
        if (w == 1) {
            set_timeout(out, conn, t, e->timeout_s);
            return -1;
        }
        if (w < 0) {
            set_poll_error(out, errno);
            return -1;
        }
        ps = PQconnectPoll(conn);
    }
    return 0;
}

/* SELECT 1 over the new session, under the same deadline. */
static void probe(struct pg_check_result *out, PGconn *conn, const struct pg_target *t,
                  const struct eff_opts *e, const struct sbuf *token, int64_t deadline_ms)
{
    PGresult *res;
    bool got_row = false, failed = false;
    int w, f;

    if (!PQsendQuery(conn, "SELECT 1")) {
        pg_check_classify(out, PQerrorMessage(conn), token);
        return;
    }
    while ((f = PQflush(conn)) != 0) {
        if (f < 0) {
            pg_check_classify(out, PQerrorMessage(conn), token);
            return;
        }
        if ((w = wait_socket(conn, true, deadline_ms)) != 0)
            goto wait_failed;
    }
    for (;;) {
        while (PQisBusy(conn)) {
            if ((w = wait_socket(conn, false, deadline_ms)) != 0)
                goto wait_failed;
            if (!PQconsumeInput(conn)) {
                pg_check_classify(out, PQerrorMessage(conn), token);
                return;
            }
        }
        if (!(res = PQgetResult(conn)))
            break;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
            PQnfields(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "1") == 0) {
            got_row = true;
        } else if (!failed) {
            const char *m = PQresultErrorMessage(res);
            failed = true;
            pg_check_classify(out, *m ? m : "SELECT 1 returned no row", token);
        }
        PQclear(res);
    }
    if (failed)
        return;
    result_init(out);
    if (!got_row) {
        set_messagef(out, "logged in, but SELECT 1 returned nothing");
        return;
    }
    out->login = PG_LOGIN_OK;
    set_messagef(out, "logged in over %s", PQsslAttribute(conn, "protocol") ?
                                              PQsslAttribute(conn, "protocol") : "TLS");
    return;

wait_failed:
    if (w == 1)
        set_timeout(out, conn, t, e->timeout_s);
    else
        set_poll_error(out, errno);
}

int pg_check_login(struct pg_check_result *out, const struct pg_target *t,
                   const struct sbuf *token, const struct pg_check_opts *o)
{
    struct eff_opts e;
    PGconn *conn = NULL;
    char port[8], timeout[12];
    int64_t started_ms, deadline_ms;
    int rc;

    if (!out)
        return err_set(ERR_INVALID, "no result to fill");
    result_init(out);
    if ((rc = validate(&e, t, token, o)) < 0) {
        set_message(out, err_msg(), strlen(err_msg()));
        return rc;
    }
    snprintf(port, sizeof(port), "%d", t->port);
    /* Not read by PQconnectPoll (our own deadline below covers the whole login), but set so
     * that PGCONNECT_TIMEOUT cannot stand in for it anywhere libpq would look. */
    snprintf(timeout, sizeof(timeout), "%d", e.timeout_s < 2 ? 2 : e.timeout_s);

    /* Every keyword that decides where the token goes or which server is trusted is given a
     * value: libpq fills unset ones from PG* variables and service files, and ignores empty
     * values, so "unset" is not an option. */
    const char *const keys[] = {
        "host", "port", "dbname", "user", "password",
        "passfile",                 /* never read while a password is given; belt and braces */
        "sslmode", "sslrootcert",
        "sslcert", "sslkey",        /* no client certificate: only the token may prove who we are */
        "sslsni", "ssl_min_protocol_version",
        "gssencmode",               /* Kerberos encryption would replace TLS and its checks */
        "channel_binding", "target_session_attrs",
        "application_name", "client_encoding", "connect_timeout",
        NULL,
    };
    const char *const vals[] = {
        t->host, port, t->database, t->user, sbuf_expose(token),
        "/dev/null",
        e.sslmode, e.rootcert,
        NO_FILE, NO_FILE,
        "1", "TLSv1.2",
        "disable",
        "prefer", "any",
        "pgtoken-rotator", "UTF8", timeout,
        NULL,
    };

    started_ms = clock_mono_ms();
    deadline_ms = started_ms + (int64_t)e.timeout_s * 1000;
    /* Start (not PQconnectdbParams): the options are checked before the server is spoken to,
     * and errors are made verbose so that server refusals carry their SQLSTATE. */
    conn = PQconnectStartParams(keys, vals, 0);
    if (!conn) {
        set_messagef(out, "libpq could not allocate a connection");
        rc = 0;
        goto out;
    }
    if ((rc = refuse_redirect(conn)) < 0) {
        set_message(out, err_msg(), strlen(err_msg()));
        goto out;
    }
    PQsetNoticeReceiver(conn, ignore_notice, NULL);
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);

    if (PQstatus(conn) == CONNECTION_BAD) {
        pg_check_classify(out, PQerrorMessage(conn), token);
    } else if (connect_poll(out, conn, t, &e, deadline_ms) == 0) {
        if (PQstatus(conn) != CONNECTION_OK) {
            pg_check_classify(out, PQerrorMessage(conn), token);
        } else if (!PQconnectionUsedPassword(conn)) {
            /* Trust, certificate or Kerberos let the role in: the token was never checked. */
            result_init(out);
            set_messagef(out, "the server let the role in without asking for the token: "
                              "the login proves nothing about it");
        } else if (!PQsslInUse(conn)) {
            result_init(out);
            set_messagef(out, "the session is not encrypted");
        } else {
            probe(out, conn, t, &e, token, deadline_ms);
        }
    }
    rc = 0;
    log_debug("pg_login_checked", LOG_STR("host", t->host), LOG_I64("port", t->port),
              LOG_STR("database", t->database), LOG_STR("user", t->user),
              LOG_STR("result", pg_login_name(out->login)), LOG_STR("sqlstate", out->sqlstate),
              LOG_STR("reason", out->message), LOG_I64("elapsed_ms", clock_mono_ms() - started_ms));
out:
    PQfinish(conn); /* NULL is fine; wipes libpq's copy of the password */
    return rc;
}

/* ---- the cache ---------------------------------------------------------------------------- */

struct key {
    unsigned char token_sha256[32];
    int port;
    const char *host, *database, *user, *sslmode, *ca_file;
};

struct entry {
    struct key key; /* strings owned */
    int64_t expires_at; /* kept until then: the token's expiry (OK), or the end of the
                         * failure's keep (anything else) */
    unsigned failures;  /* failed logins in a row for this key (0 for an OK) */
    uint64_t seq;       /* insertion order: the smallest is the oldest */
    struct pg_check_result result;
};

/* A login in progress, joined by identical calls. Freed by the last one out. */
struct flight {
    struct key key; /* strings owned */
    struct pg_check_result result;
    int rc;
    bool done;
    unsigned refs;
    struct flight *next;
};

struct pg_check_cache {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct entry *entries; /* grown as needed, up to max */
    size_t n, cap, max;
    uint64_t seq;
    struct flight *flights;
    struct pg_check_cache_hooks hooks;
    struct pg_check_cache_stats stats;
};

static int real_check(struct pg_check_result *out, const struct pg_target *t,
                      const struct sbuf *token, const struct pg_check_opts *o, void *arg)
{
    (void)arg;
    return pg_check_login(out, t, token, o);
}

static int64_t real_now(void *arg)
{
    (void)arg;
    return clock_wall_s();
}

/* A key that borrows the caller's strings. */
static void key_view(struct key *k, const struct pg_target *t, const struct eff_opts *e,
                     const struct sbuf *token)
{
    unsigned int md_len = 0;

    memset(k, 0, sizeof(*k));
    EVP_Digest(sbuf_expose(token), sbuf_len(token), k->token_sha256, &md_len, EVP_sha256(),
               NULL);
    k->port = t->port;
    k->host = t->host;
    k->database = t->database;
    k->user = t->user;
    k->sslmode = e->sslmode;
    k->ca_file = e->rootcert;
}

static void key_dup(struct key *dst, const struct key *src)
{
    memcpy(dst->token_sha256, src->token_sha256, sizeof(dst->token_sha256));
    dst->port = src->port;
    dst->host = xstrdup(src->host);
    dst->database = xstrdup(src->database);
    dst->user = xstrdup(src->user);
    dst->sslmode = xstrdup(src->sslmode);
    dst->ca_file = xstrdup(src->ca_file);
}

static void key_release(struct key *k)
{
    OPENSSL_cleanse(k->token_sha256, sizeof(k->token_sha256));
    free((char *)k->host);
    free((char *)k->database);
    free((char *)k->user);
    free((char *)k->sslmode);
    free((char *)k->ca_file);
    memset(k, 0, sizeof(*k));
}

static bool key_eq(const struct key *a, const struct key *b)
{
    return CRYPTO_memcmp(a->token_sha256, b->token_sha256, sizeof(a->token_sha256)) == 0 &&
           a->port == b->port && strcmp(a->host, b->host) == 0 &&
           strcmp(a->database, b->database) == 0 && strcmp(a->user, b->user) == 0 &&
           strcmp(a->sslmode, b->sslmode) == 0 && strcmp(a->ca_file, b->ca_file) == 0;
}

struct pg_check_cache *pg_check_cache_new(size_t max_entries,
                                          const struct pg_check_cache_hooks *hooks)
{
    struct pg_check_cache *c = xcalloc(1, sizeof(*c));

    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->max = max_entries ? max_entries : PG_CHECK_CACHE_DEFAULT_ENTRIES;
    if (hooks)
        c->hooks = *hooks;
    if (!c->hooks.check)
        c->hooks.check = real_check;
    if (!c->hooks.now_s)
        c->hooks.now_s = real_now;
    return c;
}

void pg_check_cache_free(struct pg_check_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        key_release(&c->entries[i].key);
    free(c->entries);
    while (c->flights) { /* only if freed during a call, which the header forbids */
        struct flight *f = c->flights;
        c->flights = f->next;
        key_release(&f->key);
        free(f);
    }
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Called with the lock held. */
static void drop_entry(struct pg_check_cache *c, size_t i)
{
    key_release(&c->entries[i].key);
    c->entries[i] = c->entries[--c->n];
    memset(&c->entries[c->n], 0, sizeof(c->entries[c->n]));
}

/* How long the n-th failed login in a row of one key is kept: PG_CHECK_FAIL_KEEP_MIN_S,
 * doubling, at most PG_CHECK_FAIL_KEEP_MAX_S. */
static int64_t fail_keep_s(unsigned n)
{
    int64_t s = PG_CHECK_FAIL_KEEP_MIN_S;

    for (unsigned i = 1; i < n && s < PG_CHECK_FAIL_KEEP_MAX_S; i++)
        s *= 2;
    return s < PG_CHECK_FAIL_KEEP_MAX_S ? s : PG_CHECK_FAIL_KEEP_MAX_S;
}

/* Keeps res for k until until (a later result of the same key replaces an earlier one). */
static void insert_result(struct pg_check_cache *c, const struct key *k, int64_t until,
                          unsigned failures, const struct pg_check_result *res, int64_t now)
{
    struct entry *en = NULL;

    for (size_t i = 0; i < c->n && !en; i++)
        if (key_eq(&c->entries[i].key, k)) /* another caller's login finished first */
            en = &c->entries[i];
    if (!en && c->n == c->max) {
        for (size_t i = c->n; i-- > 0;) {
            if (c->entries[i].expires_at <= now) {
                drop_entry(c, i);
                c->stats.evicted++;
            }
        }
    }
    if (!en && c->n == c->max) {
        size_t oldest = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->entries[i].seq < c->entries[oldest].seq)
                oldest = i;
        drop_entry(c, oldest);
        c->stats.evicted++;
    }
    if (!en) {
        /* A few distinct (user, token) pairs in practice: no room for max up front. */
        if (c->n == c->cap)
            XGROW(c->entries, c->cap, c->n + 1);
        en = &c->entries[c->n++];
        key_dup(&en->key, k);
    }
    en->expires_at = until;
    en->failures = failures;
    en->seq = ++c->seq;
    en->result = *res;
    en->result.cached = false;
}

static void flight_unref(struct pg_check_cache *c, struct flight *f)
{
    (void)c;
    if (--f->refs == 0) {
        key_release(&f->key);
        free(f);
    }
}

/* reuse: a kept OK answers; else it is dropped and a login made. */
static int check_cached(struct pg_check_result *out, struct pg_check_cache *c,
                        const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                        const struct pg_check_opts *o, bool reuse)
{
    struct pg_check_result res;
    struct eff_opts e;
    struct key k;
    struct flight *f, **pp;
    int64_t now;
    unsigned failures = 0; /* of this key before this login, when a kept failure ran out */
    int rc;

    if (!out)
        return err_set(ERR_INVALID, "no result to fill");
    result_init(out);
    if (!c)
        return err_set(ERR_INVALID, "no cache");
    if ((rc = validate(&e, t, token, o)) < 0) {
        set_message(out, err_msg(), strlen(err_msg()));
        return rc;
    }
    key_view(&k, t, &e, token);

    pthread_mutex_lock(&c->mu);
    now = c->hooks.now_s(c->hooks.arg);
    for (size_t i = 0; i < c->n; i++) {
        if (!key_eq(&c->entries[i].key, &k))
            continue;
        if (reuse && c->entries[i].expires_at > now) {
            *out = c->entries[i].result;
            out->cached = true;
            if (out->login == PG_LOGIN_OK)
                c->stats.hits++;
            else
                c->stats.failures_shared++;
            pthread_mutex_unlock(&c->mu);
            rc = 0;
            goto out;
        }
        /* the token has expired or the failure's keep ran out (a login now will tell), or
         * !reuse */
        failures = c->entries[i].failures;
        drop_entry(c, i);
        break;
    }
    for (f = c->flights; f; f = f->next)
        if (key_eq(&f->key, &k))
            break;
    if (f) {
        f->refs++;
        c->stats.shared++;
        while (!f->done)
            pthread_cond_wait(&c->cond, &c->mu);
        *out = f->result;
        out->cached = true;
        rc = f->rc;
        flight_unref(c, f);
        pthread_mutex_unlock(&c->mu);
        if (rc < 0) /* the message is per thread: give this one the leader's */
            err_set(rc, "%s", out->message);
        goto out;
    }
    f = xcalloc(1, sizeof(*f));
    key_dup(&f->key, &k);
    f->refs = 1;
    f->next = c->flights;
    c->flights = f;
    c->stats.checks++;
    pthread_mutex_unlock(&c->mu);

    result_init(&res);
    rc = c->hooks.check(&res, t, token, o, c->hooks.arg);

    pthread_mutex_lock(&c->mu);
    now = c->hooks.now_s(c->hooks.arg);
    f->rc = rc;
    f->result = res;
    f->result.cached = false;
    f->done = true;
    for (pp = &c->flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    if (rc == 0 && res.login == PG_LOGIN_OK && expires_at > now) {
        insert_result(c, &f->key, expires_at, 0, &res, now);
    } else if (rc == 0 && res.login != PG_LOGIN_OK) {
        /* Kept a while, so that the Secrets that fail for the same cause (a server down,
         * a certificate not trusted, a role missing) cost one login per while, not one
         * each. Never past the token's expiry. */
        int64_t until = now + fail_keep_s(failures + 1);
        insert_result(c, &f->key, expires_at > now && expires_at < until ? expires_at : until,
                      failures + 1, &res, now);
    }
    pthread_cond_broadcast(&c->cond);
    flight_unref(c, f);
    pthread_mutex_unlock(&c->mu);
    *out = res;
    out->cached = false;
out:
    OPENSSL_cleanse(k.token_sha256, sizeof(k.token_sha256));
    return rc;
}

int pg_check_cached(struct pg_check_result *out, struct pg_check_cache *c,
                    const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                    const struct pg_check_opts *o)
{
    return check_cached(out, c, t, token, expires_at, o, true);
}

int pg_check_fresh(struct pg_check_result *out, struct pg_check_cache *c,
                   const struct pg_target *t, const struct sbuf *token, int64_t expires_at,
                   const struct pg_check_opts *o)
{
    return check_cached(out, c, t, token, expires_at, o, false);
}

void pg_check_cache_stats(struct pg_check_cache_stats *out, struct pg_check_cache *c)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    out->entries = c->n;
    pthread_mutex_unlock(&c->mu);
}
