#include "pg/login.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "base/banned.h"

#define PG_NAME_MAX 63          /* NAMEDATALEN - 1: the server truncates longer names */
#define PG_HOST_MAX 253         /* longest DNS name */

/* A path that can never be a file (a component of it is /dev/null, so stat fails with
 * ENOTDIR): libpq then loads no client certificate, key or root certificate from it, and
 * never falls back to ~/.postgresql/. */
static const char NO_FILE[] = "/dev/null/none";

/* ---- arguments ---------------------------------------------------------------------------- */

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

static int validate(struct login_params *e, const struct pg_target *t, const struct sbuf *token,
                    const struct pg_check_opts *o)
{
    static const struct pg_check_opts defaults = { 0 };
    int rc;

    e->sslmode = PG_CHECK_DEFAULT_SSLMODE;
    e->ca_file = PG_CHECK_DEFAULT_CA_FILE;
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
        e->ca_file = NO_FILE;
        return 0;
    }
    e->sslmode = o->sslmode && *o->sslmode ? o->sslmode : PG_CHECK_DEFAULT_SSLMODE;
    if (strcmp(e->sslmode, "require") == 0)
        return err_set(ERR_INVALID, "sslmode require does not verify the server: use "
                                    "verify-full, or set insecure_skip_tls_verify to mean it");
    if (strcmp(e->sslmode, "verify-full") != 0 && strcmp(e->sslmode, "verify-ca") != 0)
        return err_set(ERR_INVALID, "sslmode '%.32s' is not allowed: the token only goes over "
                                    "verified TLS (verify-full or verify-ca)", e->sslmode);
    e->ca_file = o->ca_file && *o->ca_file ? o->ca_file : PG_CHECK_DEFAULT_CA_FILE;
    if (has_ctl(e->ca_file))
        return err_set(ERR_INVALID, "ca_file contains a control character");
    return 0;
}

int login_prepare(struct login_params *params, struct pg_check_result *out,
                  const struct pg_target *t, const struct sbuf *token,
                  const struct pg_check_opts *o)
{
    struct login_params e;
    int rc;

    classify_result_init(out);
    if ((rc = validate(&e, t, token, o)) < 0) {
        classify_set_message(out, err_msg(), strlen(err_msg()));
        return rc;
    }
    *params = e;
    return 0;
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
    classify_result_init(out);
    out->login = PG_LOGIN_UNREACHABLE;
    classify_set_messagef(out, "timeout expired: no answer from %s port %d within %d s (%s)", t->host,
                 t->port, timeout_s, phase_name(conn));
}

static void set_poll_error(struct pg_check_result *out, int err)
{
    classify_result_init(out);
    classify_set_messagef(out, "waiting for the server failed: %s", strerror(err));
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
                        const struct login_params *e, int64_t deadline_ms)
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
                  const struct login_params *e, const struct sbuf *token, int64_t deadline_ms)
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
    classify_result_init(out);
    if (!got_row) {
        classify_set_messagef(out, "logged in, but SELECT 1 returned nothing");
        return;
    }
    out->login = PG_LOGIN_OK;
    classify_set_messagef(out, "logged in over %s", PQsslAttribute(conn, "protocol") ?
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
    struct login_params e;
    PGconn *conn = NULL;
    char port[8], timeout[12];
    int64_t started_ms, deadline_ms;
    int rc;

    if (!out)
        return err_set(ERR_INVALID, "no result to fill");
    if ((rc = login_prepare(&e, out, t, token, o)) < 0)
        return rc;
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
        e.sslmode, e.ca_file,
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
        classify_set_messagef(out, "libpq could not allocate a connection");
        rc = 0;
        goto out;
    }
    if ((rc = refuse_redirect(conn)) < 0) {
        classify_set_message(out, err_msg(), strlen(err_msg()));
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
            classify_result_init(out);
            classify_set_messagef(out, "the server let the role in without asking for the token: "
                              "the login proves nothing about it");
        } else if (!PQsslInUse(conn)) {
            classify_result_init(out);
            classify_set_messagef(out, "the session is not encrypted");
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
