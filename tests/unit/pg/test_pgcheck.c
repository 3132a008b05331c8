/* lib/pg/pgcheck: argument checks, classification of libpq messages, the cache (pure, with
 * hooks), and every login outcome against real token-validating PostgreSQL servers.
 *
 * The server tests need tests/unit/pg/with-pg.sh, which starts the servers, mints the tokens
 * and sets PGTR_TEST_PG_ENV, PGTR_TEST_PG2_ENV and PGTR_TEST_PG_TOKENS. Without them those
 * tests fail (they are never skipped). */
#include "t.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/jwt.h"
#include "base/sbuf.h"
#include "pg/pgcheck.h"

/* ---- helpers -------------------------------------------------------------------------- */

#define T_LOGIN(res, want, substr)                                                           \
    do {                                                                                     \
        const struct pg_check_result *r_ = &(res);                                           \
        const char *s_ = (substr);                                                           \
        if (r_->login != (want) || (s_ && !strstr(r_->message, s_)))                         \
            t_fail(__FILE__, __LINE__, "got %s \"%s\" (sqlstate '%s'), want %s with \"%s\"", \
                   pg_login_name(r_->login), r_->message, r_->sqlstate,                      \
                   pg_login_name(want), s_ ? s_ : "");                                       \
    } while (0)

struct stack {
    char port[16];
    char host[64];
    char ca[512];
    char dir[512];
    char socket[512];
};

static struct {
    bool loaded, ok;
    char why[512];
    struct stack s1, s2;
    struct sbuf *valid, *valid2, *valid3, *expired, *nologin, *ghost, *foreign;
} env;

static int read_env_file(struct stack *s, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *eq = strchr(line, '='), *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (!eq)
            continue;
        *eq++ = '\0';
        if (!strcmp(line, "PGSTACK_PORT"))
            snprintf(s->port, sizeof(s->port), "%s", eq);
        else if (!strcmp(line, "PGSTACK_HOST"))
            snprintf(s->host, sizeof(s->host), "%s", eq);
        else if (!strcmp(line, "PGSTACK_CA"))
            snprintf(s->ca, sizeof(s->ca), "%s", eq);
        else if (!strcmp(line, "PGSTACK_DIR"))
            snprintf(s->dir, sizeof(s->dir), "%s", eq);
        else if (!strcmp(line, "PGSTACK_SOCKET"))
            snprintf(s->socket, sizeof(s->socket), "%s", eq);
    }
    fclose(f);
    return s->port[0] && s->ca[0] && s->dir[0] && s->socket[0] ? 0 : -1;
}

static int read_token(struct sbuf **out, const char *dir, const char *name)
{
    char path[1024];
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((rc = sbuf_read_file(out, path, 64 * 1024)) < 0)
        return rc;
    sbuf_rtrim(*out);
    return 0;
}

static void load_env(void)
{
    const char *e1 = getenv("PGTR_TEST_PG_ENV"), *e2 = getenv("PGTR_TEST_PG2_ENV");
    const char *tok = getenv("PGTR_TEST_PG_TOKENS");

    if (env.loaded)
        return;
    env.loaded = true;
    if (!e1 || !e2 || !tok) {
        snprintf(env.why, sizeof(env.why),
                 "PGTR_TEST_PG_ENV, PGTR_TEST_PG2_ENV and PGTR_TEST_PG_TOKENS are not set: run "
                 "this binary through tests/unit/pg/with-pg.sh, which starts the servers");
        return;
    }
    if (read_env_file(&env.s1, e1) < 0 || read_env_file(&env.s2, e2) < 0) {
        snprintf(env.why, sizeof(env.why), "cannot read %s or %s", e1, e2);
        return;
    }
    if (read_token(&env.valid, tok, "valid") < 0 || read_token(&env.valid2, tok, "valid2") < 0 ||
        read_token(&env.valid3, tok, "valid3") < 0 ||
        read_token(&env.expired, tok, "expired") < 0 ||
        read_token(&env.nologin, tok, "nologin") < 0 ||
        read_token(&env.ghost, tok, "ghost") < 0 ||
        read_token(&env.foreign, tok, "foreign") < 0) {
        snprintf(env.why, sizeof(env.why), "cannot read the tokens: %s", err_msg());
        return;
    }
    env.ok = true;
}

#define NEED_PG()                                                                    \
    do {                                                                             \
        load_env();                                                                  \
        if (!env.ok) {                                                               \
            t_fail(__FILE__, __LINE__, "no PostgreSQL to test against (see "       \
                                       "test_server_environment)");                 \
            return;                                                                  \
        }                                                                            \
    } while (0)

static struct pg_target target(const struct stack *s, const char *host, const char *db,
                               const char *user)
{
    struct pg_target t = { host ? host : "localhost", (int)strtol(s->port, NULL, 10), db, user };
    return t;
}

static struct pg_check_opts verified(const struct stack *s)
{
    struct pg_check_opts o = { .sslmode = "verify-full", .ca_file = s->ca };
    return o;
}

/* pg_check_login, which must run (0) and must not echo the token. */
static struct pg_check_result login(const struct pg_target *t, const struct sbuf *tok,
                                    const struct pg_check_opts *o, int line)
{
    struct pg_check_result res;
    int rc = pg_check_login(&res, t, tok, o);

    if (rc != 0)
        t_fail(__FILE__, line, "pg_check_login returned %d (%s)", rc, err_msg());
    if (strstr(res.message, sbuf_expose(tok)))
        t_fail(__FILE__, line, "the message holds the token");
    if (res.cached)
        t_fail(__FILE__, line, "pg_check_login said cached");
    return res;
}
#define LOGIN(t, tok, o) login((t), (tok), (o), __LINE__)

/* Lines of a stack's server log holding all of the given strings. */
static int count_log(const struct stack *s, const char *a, const char *b, const char *c)
{
    char path[600], line[4096];
    FILE *f;
    int n = 0;

    snprintf(path, sizeof(path), "%s/postgres.log", s->dir);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c)))
            n++;
    fclose(f);
    return n;
}

static int app1_logins(void)
{
    return count_log(&env.s1, "connection authorized: user=app1 database=postgres",
                     "application_name=pgtoken-rotator", "SSL enabled");
}

/* An admin session over the stack's unix socket (pg_hba: local postgres trust). */
static int admin_exec(const struct stack *s, const char *sql)
{
    const char *const k[] = { "host", "port", "user", "dbname", NULL };
    const char *const v[] = { s->socket, s->port, "postgres", "postgres", NULL };
    PGconn *c = PQconnectdbParams(k, v, 0);
    int rc = -1;

    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK ? 0
                                                                                        : -1;
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/* ---- loopback listeners that are not PostgreSQL ------------------------------------------ */

struct listener {
    int fd;
    int port;
    const char *reply; /* sent after reading the SSLRequest; NULL: hang up at once */
    bool read_after;   /* then read what comes (a TLS ClientHello) before hanging up */
    pthread_t th;
    bool started;
};

static int listen_loopback(int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    int c = accept(l->fd, NULL, NULL);

    if (c >= 0) {
        if (l->reply) {
            char req[8];
            size_t got = 0;
            while (got < sizeof(req)) {
                ssize_t n = read(c, req + got, sizeof(req) - got);
                if (n <= 0)
                    break;
                got += (size_t)n;
            }
            if (write(c, l->reply, strlen(l->reply)) < 0) {
                /* the client may be gone: nothing to do */
            }
            if (l->read_after) {
                char hello[512];
                if (read(c, hello, sizeof(hello)) < 0) {
                    /* as above */
                }
            }
        }
        close(c);
    }
    return NULL;
}

/* Accepts one connection in a thread: reply == NULL hangs up at once. */
static int listener_start(struct listener *l, const char *reply, bool read_after)
{
    memset(l, 0, sizeof(*l));
    l->reply = reply;
    l->read_after = read_after;
    if ((l->fd = listen_loopback(&l->port)) < 0)
        return -1;
    if (pthread_create(&l->th, NULL, listener_main, l) != 0) {
        close(l->fd);
        return -1;
    }
    l->started = true;
    return 0;
}

static void listener_stop(struct listener *l)
{
    if (!l->started)
        return;
    shutdown(l->fd, SHUT_RDWR); /* wakes accept() if nobody came */
    pthread_join(l->th, NULL);
    close(l->fd);
}

/* ---- arguments (no I/O) ------------------------------------------------------------------ */

static void expect_invalid(const struct pg_target *t, const struct sbuf *tok,
                           const struct pg_check_opts *o, const char *want, int line)
{
    struct pg_check_result res;
    int rc = pg_check_login(&res, t, tok, o);

    if (rc != ERR_INVALID)
        t_fail(__FILE__, line, "rc %d, want ERR_INVALID (%s)", rc, want);
    else if (res.login != PG_LOGIN_ERROR || !strstr(res.message, want) || !strstr(err_msg(), want))
        t_fail(__FILE__, line, "message \"%s\" / \"%s\", want \"%s\"", res.message, err_msg(),
               want);
}
#define EXPECT_INVALID(t, tok, o, want) expect_invalid((t), (tok), (o), (want), __LINE__)

static void test_invalid_arguments(void)
{
    struct sbuf *tok = sbuf_from("header.payload.signature", 24);
    struct sbuf *empty = sbuf_new(10), *nul = sbuf_from("ab\0cd", 5);
    char long_name[80];
    struct pg_target t = { "localhost", 5432, "postgres", "app1" }, bad;
    struct pg_check_opts o = { 0 };

    memset(long_name, 'r', 64);
    long_name[64] = '\0';
    T_RC(pg_check_login(NULL, &t, tok, NULL), ERR_INVALID);
    EXPECT_INVALID(NULL, tok, NULL, "no login target");
    bad = t, bad.host = "";
    EXPECT_INVALID(&bad, tok, NULL, "host is empty");
    bad = t, bad.host = NULL;
    EXPECT_INVALID(&bad, tok, NULL, "host is empty");
    bad = t, bad.host = "/var/run/postgresql";
    EXPECT_INVALID(&bad, tok, NULL, "unix socket");
    bad = t, bad.host = "@abstract";
    EXPECT_INVALID(&bad, tok, NULL, "unix socket");
    bad = t, bad.host = "a.example,b.example";
    EXPECT_INVALID(&bad, tok, NULL, "single host");
    bad = t, bad.host = "a.example\n";
    EXPECT_INVALID(&bad, tok, NULL, "single host");
    bad = t, bad.port = 0;
    EXPECT_INVALID(&bad, tok, NULL, "port 0 is out of range");
    bad = t, bad.port = 65536;
    EXPECT_INVALID(&bad, tok, NULL, "port 65536 is out of range");
    bad = t, bad.database = "";
    EXPECT_INVALID(&bad, tok, NULL, "database is empty");
    bad = t, bad.user = NULL;
    EXPECT_INVALID(&bad, tok, NULL, "user is empty");
    bad = t, bad.user = long_name;
    EXPECT_INVALID(&bad, tok, NULL, "user is longer than 63 bytes");
    bad = t, bad.database = long_name;
    EXPECT_INVALID(&bad, tok, NULL, "database is longer than 63 bytes");
    bad = t, bad.user = "app\t1";
    EXPECT_INVALID(&bad, tok, NULL, "user contains a control character");
    EXPECT_INVALID(&t, NULL, NULL, "token is empty");
    EXPECT_INVALID(&t, empty, NULL, "token is empty");
    EXPECT_INVALID(&t, nul, NULL, "token contains a NUL byte");
    o.sslmode = "require";
    EXPECT_INVALID(&t, tok, &o, "sslmode require does not verify the server");
    o.sslmode = "disable";
    EXPECT_INVALID(&t, tok, &o, "sslmode 'disable' is not allowed");
    o.sslmode = "prefer";
    EXPECT_INVALID(&t, tok, &o, "sslmode 'prefer' is not allowed");
    o.sslmode = NULL;
    o.connect_timeout_s = -1;
    EXPECT_INVALID(&t, tok, &o, "connect_timeout_s -1 is out of range");
    o.connect_timeout_s = PG_CHECK_MAX_TIMEOUT_S + 1;
    EXPECT_INVALID(&t, tok, &o, "connect_timeout_s");
    sbuf_free(tok);
    sbuf_free(empty);
    sbuf_free(nul);
}

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

/* ---- the cache with hooks (no I/O) ------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    int calls;
    enum pg_login answer;
    int64_t now;
    int delay_ms;
} fake = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int fake_check(struct pg_check_result *out, const struct pg_target *t,
                      const struct sbuf *token, const struct pg_check_opts *o, void *arg)
{
    (void)t, (void)token, (void)o;
    T_CHECK(arg == &fake);
    pthread_mutex_lock(&fake.mu);
    fake.calls++;
    pthread_mutex_unlock(&fake.mu);
    if (fake.delay_ms)
        usleep((useconds_t)fake.delay_ms * 1000);
    memset(out, 0, sizeof(*out));
    out->login = fake.answer;
    snprintf(out->message, sizeof(out->message), "fake %s", pg_login_name(fake.answer));
    return 0;
}

static int64_t fake_now(void *arg)
{
    (void)arg;
    return fake.now;
}

static const struct pg_check_cache_hooks FAKE_HOOKS = { fake_check, fake_now, &fake };

static void fake_reset(void)
{
    fake.calls = 0;
    fake.answer = PG_LOGIN_OK;
    fake.now = 1000;
    fake.delay_ms = 0;
}

static void test_cache_keeps_ok_until_expiry(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token-one", 9), *tok2 = sbuf_from("token-two", 9);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(!res.cached);
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 1);
    /* Another token for the same target is another login. */
    T_RC(pg_check_cached(&res, c, &t, tok2, 1100, NULL), 0);
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, 2);
    /* At the token's expiry the entry no longer answers. */
    fake.now = 1100;
    T_RC(pg_check_cached(&res, c, &t, tok, 1200, NULL), 0);
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, 3);
    /* A token already expired is checked but not kept. */
    T_RC(pg_check_cached(&res, c, &t, tok2, 1100, NULL), 0);
    T_RC(pg_check_cached(&res, c, &t, tok2, 1100, NULL), 0);
    T_EQ_INT(fake.calls, 5);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.hits, 1);
    T_EQ_INT(st.checks, 5);
    T_EQ_INT(st.entries, 1);
    pg_check_cache_free(c);
    sbuf_free(tok);
    sbuf_free(tok2);
}

/* pg_check_fresh: a kept OK does not answer; the login made replaces it, and a failure
 * replaces it too (the token's kept OK must not outlive a refusal that was seen). */
static void test_cache_fresh_logs_in_again(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token-one", 9);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_RC(pg_check_fresh(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, 2);
    /* Its OK is kept for everyone else. */
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 2);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.entries, 1);
    T_EQ_INT(st.hits, 1);
    T_EQ_INT(st.checks, 2);
    /* A refusal is what the caller gets, and it replaces the kept OK. */
    fake.answer = PG_LOGIN_REJECTED;
    T_RC(pg_check_fresh(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_REJECTED, "fake rejected");
    T_CHECK(!res.cached);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.entries, 1);
    T_RC(pg_check_cached(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_REJECTED, "fake rejected");
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 3);
    /* A kept failure does not answer pg_check_fresh either. */
    fake.answer = PG_LOGIN_OK;
    T_RC(pg_check_fresh(&res, c, &t, tok, 1100, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_EQ_INT(fake.calls, 4);
    T_RC(pg_check_fresh(&res, c, NULL, tok, 1100, NULL), ERR_INVALID);
    T_RC(pg_check_fresh(&res, NULL, &t, tok, 1100, NULL), ERR_INVALID);
    pg_check_cache_free(c);
    sbuf_free(tok);
}

/* A failure is kept a short while, doubling while the same key keeps failing (5, 10, 20 s,
 * ... at most 300 s) and never past the token's expiry: Secrets failing for one cause cost
 * one login per while. Every kind of failure is kept; a success after it is kept as usual. */
static void test_cache_keeps_failures_a_while(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token", 5), *tok2 = sbuf_from("token-2", 7);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;
    const enum pg_login fails[] = { PG_LOGIN_REJECTED, PG_LOGIN_UNREACHABLE, PG_LOGIN_TLS,
                                    PG_LOGIN_ERROR };
    const int64_t keep[] = { 5, 10, 20, 40, 80, 160, 300, 300 };
    int64_t t0;
    long calls;

    fake_reset();
    for (size_t i = 0; i < 4; i++) {
        struct pg_target ti = t;
        ti.port = 5432 + (int)i; /* a key of its own for each kind */
        fake.answer = fails[i];
        T_RC(pg_check_cached(&res, c, &ti, tok, 100000, NULL), 0);
        T_EQ_INT(res.login, fails[i]);
        T_CHECK(!res.cached);
        T_RC(pg_check_cached(&res, c, &ti, tok, 100000, NULL), 0);
        T_EQ_INT(res.login, fails[i]);
        T_CHECK(res.cached);
    }
    T_EQ_INT(fake.calls, 4);
    /* The keep doubles with each failure in a row of one key, up to 300 s. */
    fake.answer = PG_LOGIN_TLS;
    t0 = fake.now;
    for (size_t n = 0; n < sizeof(keep) / sizeof(keep[0]); n++) {
        calls = fake.calls;
        T_RC(pg_check_cached(&res, c, &t, tok2, 100000, NULL), 0);
        T_CHECK(!res.cached);
        T_EQ_INT(fake.calls, calls + 1);
        fake.now = t0 + keep[n] - 1; /* still kept a second before the end */
        T_RC(pg_check_cached(&res, c, &t, tok2, 100000, NULL), 0);
        T_CHECK(res.cached);
        T_EQ_INT(fake.calls, calls + 1);
        t0 += keep[n];
        fake.now = t0; /* at the end: a login again */
    }
    /* Never past the token's expiry. */
    fake.answer = PG_LOGIN_REJECTED;
    t.user = "app2";
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 2, NULL), 0);
    fake.now += 2;
    calls = fake.calls;
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 100, NULL), 0);
    T_CHECK(!res.cached);
    T_EQ_INT(fake.calls, calls + 1);
    /* Once the DBA grants the role, the first call after the keep (10 s: the second
     * failure in a row) logs in and keeps it. */
    fake.answer = PG_LOGIN_OK;
    fake.now += 10;
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 1000, NULL), 0);
    T_LOGIN(res, PG_LOGIN_OK, "fake ok");
    T_CHECK(!res.cached);
    T_RC(pg_check_cached(&res, c, &t, tok, fake.now + 1000, NULL), 0);
    T_CHECK(res.cached);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.failures_shared, 4 + 8);
    pg_check_cache_free(c);
    sbuf_free(tok);
    sbuf_free(tok2);
}

static void test_cache_key_fields(void)
{
    struct pg_check_cache *c = pg_check_cache_new(32, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token", 5);
    const struct pg_target base = { "db.example", 5432, "postgres", "app1" };
    struct pg_target t;
    struct pg_check_opts o = { 0 };
    struct pg_check_result res;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, NULL), 0);
    t = base, t.host = "db2.example";
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    t = base, t.port = 6432;
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    t = base, t.database = "other";
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    t = base, t.user = "app2";
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), 0);
    o.sslmode = "verify-ca";
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    o.sslmode = NULL, o.ca_file = "/etc/other-ca.pem";
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    o.ca_file = NULL, o.insecure_skip_tls_verify = true;
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    T_EQ_INT(fake.calls, 8);
    /* The defaults spelled out are the same key; the timeout is not part of it. */
    o.insecure_skip_tls_verify = false;
    o.sslmode = "verify-full", o.ca_file = PG_CHECK_DEFAULT_CA_FILE, o.connect_timeout_s = 3;
    T_RC(pg_check_cached(&res, c, &base, tok, 5000, &o), 0);
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 8);
    /* Bad arguments never reach the login. */
    t = base, t.port = 0;
    T_RC(pg_check_cached(&res, c, &t, tok, 5000, NULL), ERR_INVALID);
    T_RC(pg_check_cached(&res, NULL, &base, tok, 5000, NULL), ERR_INVALID);
    T_EQ_INT(fake.calls, 8);
    pg_check_cache_free(c);
    sbuf_free(tok);
}

static void test_cache_bounded(void)
{
    struct pg_check_cache *c = pg_check_cache_new(2, &FAKE_HOOKS);
    struct sbuf *a = sbuf_from("token-a", 7), *b = sbuf_from("token-b", 7);
    struct sbuf *d = sbuf_from("token-d", 7), *e = sbuf_from("token-e", 7);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct pg_check_result res;
    struct pg_check_cache_stats st;

    fake_reset();
    T_RC(pg_check_cached(&res, c, &t, a, 1500, NULL), 0); /* oldest, expires first */
    T_RC(pg_check_cached(&res, c, &t, b, 3000, NULL), 0);
    fake.now = 2000;                                       /* a has expired */
    T_RC(pg_check_cached(&res, c, &t, d, 3000, NULL), 0); /* evicts a, the expired one */
    T_RC(pg_check_cached(&res, c, &t, b, 3000, NULL), 0);
    T_CHECK(res.cached);
    T_RC(pg_check_cached(&res, c, &t, e, 3000, NULL), 0); /* full, none expired: evicts b */
    T_RC(pg_check_cached(&res, c, &t, d, 3000, NULL), 0);
    T_CHECK(res.cached);
    T_RC(pg_check_cached(&res, c, &t, e, 3000, NULL), 0);
    T_CHECK(res.cached);
    T_EQ_INT(fake.calls, 4);
    T_RC(pg_check_cached(&res, c, &t, b, 3000, NULL), 0);
    T_CHECK(!res.cached);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.entries, 2);
    T_EQ_INT(st.evicted, 3);
    pg_check_cache_free(c);
    sbuf_free(a);
    sbuf_free(b);
    sbuf_free(d);
    sbuf_free(e);
}

struct racer {
    struct pg_check_cache *c;
    const struct pg_target *t;
    const struct sbuf *tok;
    const struct pg_check_opts *o;
    int64_t expires_at;
    int rc;
    struct pg_check_result res;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;

    r->rc = pg_check_cached(&r->res, r->c, r->t, r->tok, r->expires_at, r->o);
    return NULL;
}

/* n threads check the same target and token at once; returns how many said cached. */
static int race(struct racer *r, int n)
{
    pthread_t th[16];
    int cached = 0;

    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, racer_main, &r[i]);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        cached += r[i].res.cached;
    }
    return cached;
}

static void test_cache_concurrent_calls_share_one_login(void)
{
    struct pg_check_cache *c = pg_check_cache_new(8, &FAKE_HOOKS);
    struct sbuf *tok = sbuf_from("token", 5);
    struct pg_target t = { "db.example", 5432, "postgres", "app1" };
    struct racer r[8];

    fake_reset();
    fake.delay_ms = 200;
    fake.answer = PG_LOGIN_REJECTED; /* shared while in flight, then kept a while */
    for (int i = 0; i < 8; i++)
        r[i] = (struct racer){ c, &t, tok, NULL, 5000, -99, { 0 } };
    T_EQ_INT(race(r, 8), 7);
    T_EQ_INT(fake.calls, 1);
    for (int i = 0; i < 8; i++) {
        T_RC(r[i].rc, 0);
        T_LOGIN(r[i].res, PG_LOGIN_REJECTED, "fake rejected");
    }
    fake.answer = PG_LOGIN_OK;
    fake.now += PG_CHECK_FAIL_KEEP_MIN_S; /* the kept refusal has run out */
    T_EQ_INT(race(r, 8), 7);
    T_EQ_INT(fake.calls, 2);
    T_EQ_INT(race(r, 8), 8);
    T_EQ_INT(fake.calls, 2);
    pg_check_cache_free(c);
    sbuf_free(tok);
}

/* ---- against the real servers ------------------------------------------------------------ */

static void test_server_environment(void)
{
    load_env();
    if (!env.ok)
        t_fail(__FILE__, __LINE__, "%s", env.why);
}

static void test_valid_token_logs_in(void)
{
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;
    int before;

    NEED_PG();
    t = target(&env.s1, NULL, "postgres", "app1");
    o = verified(&env.s1);
    before = app1_logins();
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_OK, "logged in over TLSv1.");
    T_EQ_STR(res.sqlstate, "");
    /* The server saw one TLS login as app1, named pgtoken-rotator. */
    T_EQ_INT(app1_logins(), before + 1);
    /* By IP address too (the certificate names 127.0.0.1). */
    t.host = "127.0.0.1";
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
}

static void test_refused_credentials(void)
{
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;

    NEED_PG();
    o = verified(&env.s1);
    t = target(&env.s1, NULL, "postgres", "app1");
    res = LOGIN(&t, env.expired, &o);
    T_LOGIN(res, PG_LOGIN_REJECTED, "PAM authentication failed for user \"app1\"");
    T_EQ_STR(res.sqlstate, "28000");
    res = LOGIN(&t, env.foreign, &o); /* signed by a key the server does not trust */
    T_LOGIN(res, PG_LOGIN_REJECTED, "PAM authentication failed");
    t.user = "nosuchrole"; /* no role, no mapping */
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_REJECTED, "PAM authentication failed for user \"nosuchrole\"");
    t.user = "ghost"; /* the token is good, the role does not exist */
    res = LOGIN(&t, env.ghost, &o);
    T_LOGIN(res, PG_LOGIN_REJECTED, "role \"ghost\" does not exist");
    T_EQ_STR(res.sqlstate, "28000");
    t.user = "nologin";
    res = LOGIN(&t, env.nologin, &o);
    T_LOGIN(res, PG_LOGIN_REJECTED, "role \"nologin\" is not permitted to log in");
    t.user = "app1", t.database = "lockeddb"; /* no CONNECT privilege */
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_REJECTED, "permission denied for database \"lockeddb\" DETAIL: User "
                                    "does not have CONNECT privilege.");
    T_EQ_STR(res.sqlstate, "42501");
    t.database = "nosuchdb"; /* logged in, but the database is wrong: not the credential */
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_ERROR, "database \"nosuchdb\" does not exist");
    T_EQ_STR(res.sqlstate, "3D000");
}

static void test_unreachable(void)
{
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;
    int port, fd;
    int64_t started;

    NEED_PG();
    o = verified(&env.s1);
    /* A port nothing listens on (bound for a moment to get a free one). */
    fd = listen_loopback(&port);
    T_CHECK(fd >= 0);
    close(fd);
    t = target(&env.s1, "127.0.0.1", "postgres", "app1");
    t.port = port;
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_UNREACHABLE, "Connection refused");
    t.host = "nonexistent.invalid";
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_UNREACHABLE, "could not translate host name \"nonexistent.invalid\"");
    /* Something that accepts and never answers: the deadline. */
    fd = listen_loopback(&port);
    T_CHECK(fd >= 0);
    t.host = "127.0.0.1", t.port = port;
    o.connect_timeout_s = 1;
    started = clock_mono_ms();
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_UNREACHABLE, "timeout expired: no answer from 127.0.0.1 port");
    T_LOGIN(res, PG_LOGIN_UNREACHABLE, "within 1 s (TLS handshake)");
    T_CHECK(clock_mono_ms() - started < 3000);
    close(fd);
}

static void test_not_postgres_listeners(void)
{
    struct listener l;
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;

    NEED_PG();
    o = verified(&env.s1);
    t = target(&env.s1, "127.0.0.1", "postgres", "app1");
    /* Accepts and hangs up: like a proxy with no backend. */
    T_RC(listener_start(&l, NULL, false), 0);
    t.port = l.port;
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_UNREACHABLE, "server closed the connection unexpectedly");
    listener_stop(&l);
    /* Agrees to TLS, reads the ClientHello, hangs up: the handshake is cut short. (Hanging up
     * before the ClientHello races libpq's write: EPIPE reads "server closed the connection
     * unexpectedly", unreachable, and is covered above.) */
    T_RC(listener_start(&l, "S", true), 0);
    t.port = l.port;
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS, "SSL SYSCALL error: EOF detected");
    listener_stop(&l);
    /* An HTTP server. */
    T_RC(listener_start(&l, "HTTP/1.1 400 Bad Request\r\n\r\n", false), 0);
    t.port = l.port;
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS, "received invalid response to SSL negotiation: H");
    listener_stop(&l);
}

static void test_tls_failures(void)
{
    char wrong_ca[600];
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;

    NEED_PG();
    snprintf(wrong_ca, sizeof(wrong_ca), "%s/pki/wrong-ca.crt", env.s1.dir);
    t = target(&env.s1, NULL, "postgres", "app1");
    o = verified(&env.s1);
    o.ca_file = wrong_ca;
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS, "SSL error: certificate verify failed");
    o.sslmode = "verify-ca";
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS, "SSL error: certificate verify failed");
    o.ca_file = "/nonexistent/ca.crt";
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS, "root certificate file \"/nonexistent/ca.crt\" does not exist");
    /* The system bundle (the default) does not know the test CA (or is not installed). */
    o.ca_file = NULL, o.sslmode = NULL;
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS, NULL);
    /* s2's certificate is from the right CA, for another name. */
    t = target(&env.s2, NULL, "postgres", "app1");
    o = verified(&env.s2);
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS,
            "server certificate for \"db.example.test\" does not match host name \"localhost\"");
    o.sslmode = "verify-ca"; /* which verify-ca does not check */
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
}

static void test_insecure_skips_verification(void)
{
    char wrong_ca[600];
    struct pg_target t;
    struct pg_check_opts o = { 0 };
    struct pg_check_result res;

    NEED_PG();
    snprintf(wrong_ca, sizeof(wrong_ca), "%s/pki/wrong-ca.crt", env.s1.dir);
    t = target(&env.s1, NULL, "postgres", "app1");
    o.insecure_skip_tls_verify = true;
    o.ca_file = wrong_ca; /* ignored: with a root certificate libpq would verify the chain */
    o.sslmode = "verify-full";
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_OK, "logged in over TLS");
    t = target(&env.s2, NULL, "postgres", "app1");
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    /* Still a real login. */
    res = LOGIN(&t, env.expired, &o);
    T_LOGIN(res, PG_LOGIN_REJECTED, "PAM authentication failed");
}

static void test_trust_login_proves_nothing(void)
{
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;

    NEED_PG();
    t = target(&env.s2, NULL, "postgres", "trustme");
    o = verified(&env.s2);
    o.sslmode = "verify-ca";
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_ERROR, "without asking for the token");
}

static void test_server_without_tls(void)
{
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res = { 0 };

    NEED_PG();
    /* s2 reloaded with ssl = off: a real PostgreSQL that answers 'N' to SSLRequest. */
    T_RC(admin_exec(&env.s2, "ALTER SYSTEM SET ssl = off"), 0);
    T_RC(admin_exec(&env.s2, "SELECT pg_reload_conf()"), 0);
    t = target(&env.s2, NULL, "postgres", "app1");
    o = verified(&env.s2);
    o.sslmode = "verify-ca";
    for (int i = 0; i < 50; i++) { /* the reload is asynchronous */
        res = LOGIN(&t, env.valid, &o);
        if (res.login != PG_LOGIN_OK)
            break;
        usleep(100 * 1000);
    }
    T_LOGIN(res, PG_LOGIN_TLS, "server does not support SSL, but SSL was required");
    o.insecure_skip_tls_verify = true; /* no plaintext fallback, even then */
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_TLS, "server does not support SSL");

    /* Put TLS back, so that the next binary run against these servers finds them as set up. */
    T_RC(admin_exec(&env.s2, "ALTER SYSTEM RESET ssl"), 0);
    T_RC(admin_exec(&env.s2, "SELECT pg_reload_conf()"), 0);
    for (int i = 0; i < 50; i++) {
        res = LOGIN(&t, env.valid, &o);
        if (res.login == PG_LOGIN_OK)
            break;
        usleep(100 * 1000);
    }
    T_LOGIN(res, PG_LOGIN_OK, NULL);
}

/* Writes a file for the environment test. */
static void put_file(const char *dir, const char *name, const char *text)
{
    char path[700];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(f = fopen(path, "w"))) {
        t_fail(__FILE__, __LINE__, "cannot write %s", path);
        return;
    }
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

static const char *const PG_VARS[] = {
    "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGSSLMODE",
    "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGAPPNAME", "PGTARGETSESSIONATTRS",
    "PGGSSENCMODE", "PGCHANNELBINDING", "PGCONNECT_TIMEOUT", "PGSSLMINPROTOCOLVERSION",
    "PGSSLSNI", "PGCLIENTENCODING", "PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", NULL,
};

static void test_environment_cannot_change_the_login(void)
{
    char home[] = "/tmp/pgtr-pgcheck-home.XXXXXX", sub[600], svc[700];
    const char *old_home = getenv("HOME");
    char *saved_home = old_home ? strdup(old_home) : NULL;
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;
    int before, rc;

    NEED_PG();
    T_CHECK(mkdtemp(home) != NULL);
    snprintf(sub, sizeof(sub), "%s/.postgresql", home);
    mkdir(sub, 0700);
    /* ~/.postgresql files libpq would load by default, and a ~/.pgpass: all garbage. */
    put_file(sub, "postgresql.crt", "not a certificate\n");
    put_file(sub, "postgresql.key", "not a key\n");
    put_file(sub, "root.crt", "not a certificate\n");
    put_file(home, ".pgpass", "*:*:*:*:not-the-token\n");
    setenv("HOME", home, 1);
    setenv("PGHOST", "nonexistent.invalid", 1);
    setenv("PGPORT", "1", 1);
    setenv("PGDATABASE", "nosuchdb", 1);
    setenv("PGUSER", "nobody", 1);
    setenv("PGPASSWORD", "not-the-token", 1);
    setenv("PGSSLMODE", "disable", 1);
    setenv("PGSSLROOTCERT", "/nonexistent/root.crt", 1);
    setenv("PGSSLCERT", "/etc/passwd", 1);
    setenv("PGAPPNAME", "someone-else", 1);
    setenv("PGTARGETSESSIONATTRS", "read-only", 1);
    setenv("PGGSSENCMODE", "require", 1);
    setenv("PGCHANNELBINDING", "require", 1);
    setenv("PGSSLMINPROTOCOLVERSION", "TLSv1", 1);

    t = target(&env.s1, NULL, "postgres", "app1");
    o = verified(&env.s1);
    before = app1_logins();
    res = LOGIN(&t, env.valid, &o);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    T_EQ_INT(app1_logins(), before + 1); /* application_name=pgtoken-rotator, over TLS */

    /* hostaddr cannot be overridden by a keyword: refused before anything is sent. */
    setenv("PGHOSTADDR", "127.0.0.1", 1);
    rc = pg_check_login(&res, &t, env.valid, &o);
    T_RC(rc, ERR_INVALID);
    T_LOGIN(res, PG_LOGIN_ERROR, "hostaddr is set by PGHOSTADDR");
    unsetenv("PGHOSTADDR");
    snprintf(svc, sizeof(svc), "%s/pg_service.conf", home);
    put_file(home, "pg_service.conf", "[evil]\nhostaddr=127.0.0.1\n");
    setenv("PGSERVICEFILE", svc, 1);
    setenv("PGSERVICE", "evil", 1);
    rc = pg_check_login(&res, &t, env.valid, &o);
    T_RC(rc, ERR_INVALID);
    T_LOGIN(res, PG_LOGIN_ERROR, "hostaddr is set by PGHOSTADDR or a service file");
    T_EQ_INT(app1_logins(), before + 1);

    for (const char *const *v = PG_VARS; *v; v++)
        unsetenv(*v);
    if (saved_home)
        setenv("HOME", saved_home, 1);
    free(saved_home);
    for (const char *const *f = (const char *const[]){ ".postgresql/postgresql.crt",
                                                       ".postgresql/postgresql.key",
                                                       ".postgresql/root.crt", ".pgpass",
                                                       "pg_service.conf", NULL };
         *f; f++) {
        char p[700];
        snprintf(p, sizeof(p), "%s/%s", home, *f);
        unlink(p);
    }
    rmdir(sub);
    rmdir(home);
}

static int64_t token_exp(const struct sbuf *tok)
{
    struct jwt_times jt;

    if (jwt_read_times(&jt, sbuf_expose(tok), sbuf_len(tok)) < 0)
        return 0;
    return jt.exp;
}

static void test_cache_against_server(void)
{
    struct pg_check_cache *c;
    struct pg_check_cache_stats st;
    struct pg_target t;
    struct pg_check_opts o;
    struct pg_check_result res;
    struct racer r[8];
    int before, refused_before;

    NEED_PG();
    c = pg_check_cache_new(0, NULL);
    t = target(&env.s1, NULL, "postgres", "app1");
    o = verified(&env.s1);
    before = app1_logins();
    T_RC(pg_check_cached(&res, c, &t, env.valid, token_exp(env.valid), &o), 0);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    T_CHECK(!res.cached);
    T_EQ_INT(app1_logins(), before + 1);
    /* The same token again: answered from the cache, no new login on the server. */
    T_RC(pg_check_cached(&res, c, &t, env.valid, token_exp(env.valid), &o), 0);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    T_CHECK(res.cached);
    T_EQ_INT(app1_logins(), before + 1);
    /* A different token: a new login. */
    T_RC(pg_check_cached(&res, c, &t, env.valid2, token_exp(env.valid2), &o), 0);
    T_LOGIN(res, PG_LOGIN_OK, NULL);
    T_CHECK(!res.cached);
    T_EQ_INT(app1_logins(), before + 2);
    /* A failure is kept a while: the expired token is refused by the server once, and the
     * second call is answered with that refusal. */
    refused_before = count_log(&env.s1, "pam_pgtoken: refused role app1: token expired", NULL,
                               NULL);
    for (int i = 0; i < 2; i++) {
        T_RC(pg_check_cached(&res, c, &t, env.expired, clock_wall_s() + 600, &o), 0);
        T_LOGIN(res, PG_LOGIN_REJECTED, NULL);
        T_CHECK(res.cached == (i == 1));
    }
    T_EQ_INT(count_log(&env.s1, "pam_pgtoken: refused role app1: token expired", NULL, NULL),
             refused_before + 1);
    /* Eight workers with a new token at once: one login. */
    for (int i = 0; i < 8; i++)
        r[i] = (struct racer){ c, &t, env.valid3, &o, token_exp(env.valid3), -99, { 0 } };
    T_EQ_INT(race(r, 8), 7);
    for (int i = 0; i < 8; i++) {
        T_RC(r[i].rc, 0);
        T_LOGIN(r[i].res, PG_LOGIN_OK, NULL);
    }
    T_EQ_INT(app1_logins(), before + 3);
    pg_check_cache_stats(&st, c);
    T_EQ_INT(st.checks, 4);
    T_EQ_INT(st.hits + st.shared, 8);
    T_EQ_INT(st.failures_shared, 1);
    T_EQ_INT(st.entries, 4);
    pg_check_cache_free(c);
}

static void release_env(void)
{
    sbuf_free(env.valid);
    sbuf_free(env.valid2);
    sbuf_free(env.valid3);
    sbuf_free(env.expired);
    sbuf_free(env.nologin);
    sbuf_free(env.ghost);
    sbuf_free(env.foreign);
}

int main(void)
{
    /* The environment test sets PG* variables; none may leak in from the caller either. */
    for (const char *const *v = PG_VARS; *v; v++)
        unsetenv(*v);

    T_RUN(test_invalid_arguments);
    T_RUN(test_login_names);
    T_RUN(test_classify_canned);
    T_RUN(test_classify_redacts_and_caps);
    T_RUN(test_cache_keeps_ok_until_expiry);
    T_RUN(test_cache_fresh_logs_in_again);
    T_RUN(test_cache_keeps_failures_a_while);
    T_RUN(test_cache_key_fields);
    T_RUN(test_cache_bounded);
    T_RUN(test_cache_concurrent_calls_share_one_login);

    T_RUN(test_server_environment);
    T_RUN(test_valid_token_logs_in);
    T_RUN(test_refused_credentials);
    T_RUN(test_unreachable);
    T_RUN(test_not_postgres_listeners);
    T_RUN(test_tls_failures);
    T_RUN(test_insecure_skips_verification);
    T_RUN(test_trust_login_proves_nothing);
    T_RUN(test_environment_cannot_change_the_login);
    T_RUN(test_cache_against_server);
    T_RUN(test_server_without_tls); /* last: turns TLS off on s2 for a moment */
    release_env();
    return t_done();
}
