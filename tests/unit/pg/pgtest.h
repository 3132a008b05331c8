/* tests/unit/pg/pgtest.h: what the lib/pg unit tests share: T_LOGIN, and the real
 * token-validating PostgreSQL servers that tests/unit/pg/with-pg.sh starts (their addresses,
 * CA, logs, and the tokens it mints), for the tests that log in. Header-only (the unit-test
 * rule links one test file with the harness): everything is static, so a test file that
 * needs no server (test_classify) includes it for T_LOGIN alone.
 *
 * The server tests need with-pg.sh, which sets PGTR_TEST_PG_ENV, PGTR_TEST_PG2_ENV and
 * PGTR_TEST_PG_TOKENS. Without them those tests fail (they are never skipped). */
#ifndef PGTR_TEST_PGTEST_H
#define PGTR_TEST_PGTEST_H

#include "t.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/err.h"
#include "base/sbuf.h"
#include "pg/login.h"

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
} env __attribute__((unused));

static inline int read_env_file(struct stack *s, const char *path)
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

static inline int read_token(struct sbuf **out, const char *dir, const char *name)
{
    char path[1024];
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((rc = sbuf_read_file(out, path, 64 * 1024)) < 0)
        return rc;
    sbuf_rtrim(*out);
    return 0;
}

static inline void load_env(void)
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

static inline struct pg_target target(const struct stack *s, const char *host, const char *db,
                               const char *user)
{
    struct pg_target t = { host ? host : "localhost", (int)strtol(s->port, NULL, 10), db, user };
    return t;
}

static inline struct pg_check_opts verified(const struct stack *s)
{
    struct pg_check_opts o = { .sslmode = "verify-full", .ca_file = s->ca };
    return o;
}

/* Lines of a stack's server log holding all of the given strings. */
static inline int count_log(const struct stack *s, const char *a, const char *b, const char *c)
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

static inline int app1_logins(void)
{
    return count_log(&env.s1, "connection authorized: user=app1 database=postgres",
                     "application_name=pgtoken-rotator", "SSL enabled");
}

/* First in a binary that logs in: says once why the server tests cannot run. */
static inline void test_server_environment(void)
{
    load_env();
    if (!env.ok)
        t_fail(__FILE__, __LINE__, "%s", env.why);
}

static inline void release_env(void)
{
    sbuf_free(env.valid);
    sbuf_free(env.valid2);
    sbuf_free(env.valid3);
    sbuf_free(env.expired);
    sbuf_free(env.nologin);
    sbuf_free(env.ghost);
    sbuf_free(env.foreign);
}

/* The variables libpq reads (tests/unit/pg/test_login sets them on purpose). */
static const char *const PG_VARS[] __attribute__((unused)) = {
    "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGSSLMODE",
    "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGAPPNAME", "PGTARGETSESSIONATTRS",
    "PGGSSENCMODE", "PGCHANNELBINDING", "PGCONNECT_TIMEOUT", "PGSSLMINPROTOCOLVERSION",
    "PGSSLSNI", "PGCLIENTENCODING", "PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", NULL,
};

/* None of PG_VARS may leak in from the caller. */
static inline void unset_pg_vars(void)
{
    for (const char *const *v = PG_VARS; *v; v++)
        unsetenv(*v);
}

#endif
