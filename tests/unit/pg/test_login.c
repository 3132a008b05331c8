/* lib/pg/login: argument checks (no I/O), then every login outcome against real
 * token-validating PostgreSQL servers (tests/unit/pg/with-pg.sh starts them; see pgtest.h). */
#include "pgtest.h"

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
#include "base/sbuf.h"
#include "pg/login.h"

/* ---- helpers -------------------------------------------------------------------------- */

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

/* What the cache keys on: the options as libpq gets them, defaults filled in. */
static void test_prepare_resolves_defaults(void)
{
    struct sbuf *tok = sbuf_from("header.payload.signature", 24);
    struct pg_target t = { "localhost", 5432, "postgres", "app1" }, bad = t;
    struct pg_check_opts o = { 0 };
    struct login_params p = { "untouched", "untouched", -1 };
    struct pg_check_result res;

    T_RC(login_prepare(&p, &res, &t, tok, NULL), 0);
    T_EQ_STR(p.sslmode, PG_CHECK_DEFAULT_SSLMODE);
    T_EQ_STR(p.ca_file, PG_CHECK_DEFAULT_CA_FILE);
    T_EQ_INT(p.timeout_s, PG_CHECK_DEFAULT_TIMEOUT_S);
    T_EQ_INT(res.login, PG_LOGIN_ERROR);
    T_EQ_STR(res.message, "");
    o.sslmode = "", o.ca_file = "";
    T_RC(login_prepare(&p, &res, &t, tok, &o), 0);
    T_EQ_STR(p.sslmode, PG_CHECK_DEFAULT_SSLMODE);
    T_EQ_STR(p.ca_file, PG_CHECK_DEFAULT_CA_FILE);
    o.sslmode = "verify-ca", o.ca_file = "/etc/db-ca.pem", o.connect_timeout_s = 3;
    T_RC(login_prepare(&p, &res, &t, tok, &o), 0);
    T_EQ_STR(p.sslmode, "verify-ca");
    T_EQ_STR(p.ca_file, "/etc/db-ca.pem");
    T_EQ_INT(p.timeout_s, 3);
    /* Insecure: sslmode and ca_file are ignored, the root certificate is a file that cannot
     * exist (with one, libpq's "require" would verify the chain). */
    o.insecure_skip_tls_verify = true;
    T_RC(login_prepare(&p, &res, &t, tok, &o), 0);
    T_EQ_STR(p.sslmode, "require");
    T_CHECK(strncmp(p.ca_file, "/dev/null/", 10) == 0);
    /* A failure leaves *params alone and says why in the result, as pg_check_login does. */
    bad.port = 0;
    p.timeout_s = -1;
    T_RC(login_prepare(&p, &res, &bad, tok, &o), ERR_INVALID);
    T_EQ_INT(p.timeout_s, -1);
    T_LOGIN(res, PG_LOGIN_ERROR, "port 0 is out of range");
    T_EQ_STR(res.message, err_msg());
    sbuf_free(tok);
}

/* ---- against the real servers ------------------------------------------------------------ */

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

static void test_environment_cannot_change_the_login(void)
{
    char home[] = "/tmp/pgtr-login-home.XXXXXX", sub[600], svc[700];
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

    unset_pg_vars();
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

int main(void)
{
    /* The environment test sets PG* variables; none may leak in from the caller either. */
    unset_pg_vars();

    T_RUN(test_invalid_arguments);
    T_RUN(test_prepare_resolves_defaults);

    T_RUN(test_server_environment);
    T_RUN(test_valid_token_logs_in);
    T_RUN(test_refused_credentials);
    T_RUN(test_unreachable);
    T_RUN(test_not_postgres_listeners);
    T_RUN(test_tls_failures);
    T_RUN(test_insecure_skips_verification);
    T_RUN(test_trust_login_proves_nothing);
    T_RUN(test_environment_cannot_change_the_login);
    T_RUN(test_server_without_tls); /* last: turns TLS off on s2 for a moment */
    release_env();
    return t_done();
}
