/* lib/pg/classify: the names of the classes, the classification of libpq messages (the
 * tables, on canned messages as libpq 15 and Azure word them), redaction of the token, and
 * the one-line message rules. No I/O: needs no server (tests/unit/run.sh still starts
 * with-pg.sh's servers for every binary under unit/pg). */
#include "pgtest.h"

#include <stdio.h>
#include <string.h>

#include "base/sbuf.h"
#include "pg/classify.h"

static void test_login_names(void)
{
    T_EQ_STR(pg_login_name(PG_LOGIN_OK), "ok");
    T_EQ_STR(pg_login_name(PG_LOGIN_REJECTED), "rejected");
    T_EQ_STR(pg_login_name(PG_LOGIN_UNREACHABLE), "unreachable");
    T_EQ_STR(pg_login_name(PG_LOGIN_TLS), "tls");
    T_EQ_STR(pg_login_name(PG_LOGIN_ERROR), "error");
}

/* ---- classification of libpq messages (no I/O) ------------------------------------------ */

struct canned {
    const char *msg;
    enum pg_login want;
    const char *sqlstate;
    const char *shown; /* the whole expected message */
};

#define AT "connection to server at \"localhost\" (127.0.0.1), port 5432 failed: "
#define AZ                                                                    \
    "connection to server at \"srv.postgres.database.azure.com\" (20.1.2.3), port 5432 failed: "

static const struct canned CANNED[] = {
    /* Seen with libpq 15.20 against tests/pg/pgstack (PQERRORS_VERBOSE). */
    { AT "FATAL:  28000: PAM authentication failed for user \"app1\"\nLOCATION:  auth_failed, "
         "auth.c:334\n",
      PG_LOGIN_REJECTED, "28000", AT "FATAL: PAM authentication failed for user \"app1\"" },
    { AT "FATAL:  28000: role \"ghost\" does not exist\nLOCATION:  InitializeSessionUserId, "
         "miscinit.c:694\n",
      PG_LOGIN_REJECTED, "28000", NULL },
    { AT "FATAL:  28000: role \"nologin\" is not permitted to log in\n", PG_LOGIN_REJECTED,
      "28000", NULL },
    { AT "FATAL:  42501: permission denied for database \"lockeddb\"\nDETAIL:  User does not "
         "have CONNECT privilege.\nLOCATION:  CheckMyDatabase, postinit.c:371\n",
      PG_LOGIN_REJECTED, "42501",
      AT "FATAL: permission denied for database \"lockeddb\" DETAIL: User does not have CONNECT "
         "privilege." },
    { AT "FATAL:  3D000: database \"nosuchdb\" does not exist\n", PG_LOGIN_ERROR, "3D000", NULL },
    { AT "FATAL:  28000: no pg_hba.conf entry for host \"127.0.0.1\", user \"x\", database "
         "\"y\", SSL encryption\n",
      PG_LOGIN_REJECTED, "28000", NULL },
    { AT "FATAL:  28P01: password authentication failed for user \"app1\"\n", PG_LOGIN_REJECTED,
      "28P01", NULL },
    { AT "FATAL:  57P03: the database system is starting up\n", PG_LOGIN_ERROR, "57P03", NULL },
    { AT "FATAL:  53300: sorry, too many clients already\n", PG_LOGIN_ERROR, "53300", NULL },
    { AT "SSL error: certificate verify failed\n", PG_LOGIN_TLS, "",
      AT "SSL error: certificate verify failed" },
    { AT "server certificate for \"db.example.test\" does not match host name \"localhost\"\n",
      PG_LOGIN_TLS, "", NULL },
    { AT "server does not support SSL, but SSL was required\n", PG_LOGIN_TLS, "", NULL },
    { AT "root certificate file \"/nope/ca.crt\" does not exist\nEither provide the file or "
         "change sslmode to disable server certificate verification.\n",
      PG_LOGIN_TLS, "", AT "root certificate file \"/nope/ca.crt\" does not exist" },
    { AT "SSL SYSCALL error: EOF detected\n", PG_LOGIN_TLS, "", NULL },
    { "connection to server at \"127.0.0.1\", port 1 failed: received invalid response to SSL "
      "negotiation: H\n",
      PG_LOGIN_TLS, "", NULL },
    { "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server "
      "running on that host and accepting TCP/IP connections?\n",
      PG_LOGIN_UNREACHABLE, "", "connection to server at \"127.0.0.1\", port 1 failed: Connection "
                                "refused" },
    { "connection to server at \"10.0.0.1\", port 5432 failed: No route to host\n\tIs the "
      "server running on that host and accepting TCP/IP connections?\n",
      PG_LOGIN_UNREACHABLE, "", NULL },
    { "could not translate host name \"nonexistent.invalid\" to address: Name or service not "
      "known\n",
      PG_LOGIN_UNREACHABLE, "", NULL },
    { "could not translate host name \"ssl-error.example\" to address: Temporary failure in "
      "name resolution\n",
      PG_LOGIN_UNREACHABLE, "", NULL }, /* a host name is never read as a phrase */
    { AT "server closed the connection unexpectedly\n\tThis probably means the server terminated "
         "abnormally\n\tbefore or while processing the request.\n",
      PG_LOGIN_UNREACHABLE, "", AT "server closed the connection unexpectedly" },
    { AT "timeout expired\n", PG_LOGIN_UNREACHABLE, "", NULL },
    /* Two addresses tried: the last one decides. */
    { "connection to server at \"localhost\" (::1), port 5432 failed: Connection refused\n\tIs "
      "the server running on that host and accepting TCP/IP connections?\n" AT
      "FATAL:  28000: PAM authentication failed for user \"app1\"\n",
      PG_LOGIN_REJECTED, "28000", NULL },
    /* Azure Database for PostgreSQL's token refusals, as quoted in public reports (libpq's
     * prefix added; their SQLSTATE is not documented, so both with and without one). */
    { AZ "FATAL:  28000: The access token has expired. Please acquire a new token and retry.\n",
      PG_LOGIN_REJECTED, "28000", NULL },
    { AZ "FATAL:  XX000: The access token has expired. Please acquire a new token and retry.\n",
      PG_LOGIN_REJECTED, "XX000", NULL },
    { AZ "FATAL:  The access token does not have a valid audience claim. Please acquire a new "
         "token for the resource \"https://ossrdbms-aad.database.windows.net\".\n",
      PG_LOGIN_REJECTED, "", NULL },
    { AZ "FATAL:  The access token has invalid format. Please ensure the token is passed exactly "
         "as returned by the authentication endpoint and retry.\n",
      PG_LOGIN_REJECTED, "", NULL },
    { AZ "FATAL:  An error occurred while validating the access token. Please acquire a new "
         "token and retry\n",
      PG_LOGIN_REJECTED, "", NULL },
    { AZ "FATAL:  password authentication failed for user \"app@contoso.com\"\n",
      PG_LOGIN_REJECTED, "", NULL },
    /* PgBouncer (Azure port 6432) with an oversized token: not a refusal of the credential. */
    { AZ "FATAL:  08P01: client sent partial pkt in startup phase\n", PG_LOGIN_ERROR, "08P01",
      NULL },
    /* A name that looks like a phrase does not change the class. */
    { AT "FATAL:  3D000: database \"access token\" does not exist\n", PG_LOGIN_ERROR, "3D000",
      NULL },
    { "invalid connection option \"foo\"\n", PG_LOGIN_ERROR, "", NULL },
    { "", PG_LOGIN_ERROR, "", "no error message from libpq" },
};

static void test_classify_canned(void)
{
    for (size_t i = 0; i < sizeof(CANNED) / sizeof(CANNED[0]); i++) {
        struct pg_check_result res;
        const struct canned *c = &CANNED[i];

        pg_check_classify(&res, c->msg, NULL);
        if (res.login != c->want || strcmp(res.sqlstate, c->sqlstate) != 0 ||
            (c->shown && strcmp(res.message, c->shown) != 0) || strchr(res.message, '\n') ||
            res.cached) {
            t_fail(__FILE__, __LINE__, "case %zu: got %s '%s' \"%s\", want %s '%s' \"%s\"", i,
                   pg_login_name(res.login), res.sqlstate, res.message, pg_login_name(c->want),
                   c->sqlstate, c->shown ? c->shown : "...");
            return;
        }
    }
}

static void test_classify_redacts_and_caps(void)
{
    static const char jwt[] = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJvaWQiOiIxMjM0NTY3ODkwIn0."
                              "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";
    struct sbuf *tok = sbuf_from(jwt, strlen(jwt));
    struct pg_check_result res;
    char msg[4096];

    /* A peer that echoes the whole token, and one that echoes only its signature. */
    snprintf(msg, sizeof(msg), AT "FATAL:  28000: bad password \"%s\" for user \"app1\"\n", jwt);
    pg_check_classify(&res, msg, tok);
    T_LOGIN(res, PG_LOGIN_REJECTED, "bad password \"[REDACTED]\" for user");
    snprintf(msg, sizeof(msg), AT "FATAL:  28000: signature %s is wrong\n", strrchr(jwt, '.') + 1);
    pg_check_classify(&res, msg, tok);
    T_LOGIN(res, PG_LOGIN_REJECTED, "signature [REDACTED] is wrong");
    T_CHECK(!strstr(res.message, "c2lnbmF0dXJl"));

    /* Long messages are cut to the cap, on a character boundary, marked with "...". */
    memset(msg, 0, sizeof(msg));
    snprintf(msg, sizeof(msg), AT "FATAL:  28000: ");
    for (size_t n = strlen(msg); n + 2 < 1000; n += 2)
        memcpy(msg + n, "\xc3\xa9", 2); /* é */
    pg_check_classify(&res, msg, tok);
    T_EQ_INT(res.login, PG_LOGIN_REJECTED);
    T_CHECK(strlen(res.message) <= PG_CHECK_MESSAGE_MAX - 1);
    T_CHECK(strlen(res.message) >= PG_CHECK_MESSAGE_MAX - 6);
    T_CHECK(strcmp(res.message + strlen(res.message) - 3, "...") == 0);
    T_CHECK(((unsigned char)res.message[strlen(res.message) - 4] & 0xc0) != 0xc0);
    pg_check_classify(&res, NULL, NULL);
    T_LOGIN(res, PG_LOGIN_ERROR, "no error message from libpq");
    sbuf_free(tok);
}

/* The one-line rules for the messages the other modules word themselves. */
static void test_set_message(void)
{
    static const char two_lines[] = " \n\tfirst line\n\tsecond   line \r\n";
    struct pg_check_result res;
    char long_text[600];

    classify_result_init(&res);
    T_EQ_INT(res.login, PG_LOGIN_ERROR);
    T_EQ_STR(res.sqlstate, "");
    T_EQ_STR(res.message, "");
    T_CHECK(!res.cached);
    classify_set_message(&res, two_lines, strlen(two_lines));
    T_EQ_STR(res.message, "first line second line");
    classify_set_message(&res, "cut here, not there", 8);
    T_EQ_STR(res.message, "cut here");
    classify_set_message(&res, "del\x7f char", 9);
    T_EQ_STR(res.message, "del char");
    classify_set_messagef(&res, "timeout expired: no answer from %s port %d", "db.example", 5432);
    T_EQ_STR(res.message, "timeout expired: no answer from db.example port 5432");
    T_EQ_INT(res.login, PG_LOGIN_ERROR); /* only the message changes */
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    classify_set_messagef(&res, "%s", long_text);
    T_EQ_INT(strlen(res.message), PG_CHECK_MESSAGE_MAX - 1);
    T_CHECK(strcmp(res.message + strlen(res.message) - 3, "...") == 0);
}

int main(void)
{
    T_RUN(test_login_names);
    T_RUN(test_classify_canned);
    T_RUN(test_classify_redacts_and_caps);
    T_RUN(test_set_message);
    return t_done();
}
