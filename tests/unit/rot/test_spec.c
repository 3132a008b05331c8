#include "t.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/buf.h"
#include "base/err.h"
#include "rot/spec.h"

#define TOKEN "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln-_A"
#define END ((const char *)NULL) /* ends ann()'s pairs */
#define MARK "MARKER-9f2c" /* put in values to show that no message quotes them */

/* Annotations from "name", "value" pairs ending with END; a name without '/' gets the
 * pgtoken.io/ prefix. */
static cJSON *ann(const char *name, ...)
{
    cJSON *a = cJSON_CreateObject();
    char key[1024];
    va_list ap;

    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        snprintf(key, sizeof(key), "%s%s", strchr(n, '/') ? "" : SPEC_PREFIX, n);
        cJSON_AddItemToObject(a, key, cJSON_CreateString(v));
    }
    va_end(ap);
    return a;
}

/* Parses a (and deletes it) into *s. */
static int parse(struct spec *s, cJSON *a)
{
    int rc = spec_parse(s, a);

    cJSON_Delete(a);
    return rc;
}

/* The code for host and user plus name=value (name replaces host or user when it is one). */
static int with(const char *name, const char *value)
{
    struct spec s = SPEC_INIT;
    cJSON *a = ann(name, value, END);
    int rc;

    if (!cJSON_GetObjectItem(a, SPEC_PREFIX "host"))
        cJSON_AddItemToObject(a, SPEC_PREFIX "host", cJSON_CreateString("db.example.com"));
    if (!cJSON_GetObjectItem(a, SPEC_PREFIX "user"))
        cJSON_AddItemToObject(a, SPEC_PREFIX "user", cJSON_CreateString("alice@contoso.com"));
    rc = parse(&s, a);
    spec_release(&s);
    return rc;
}

#define T_OK(name, value)                                                                  \
    do {                                                                                   \
        if (with((name), (value)) != 0)                                                    \
            t_fail(__FILE__, __LINE__, "refused %s=\"%s\": %s", (name), (value), err_msg()); \
    } while (0)

#define T_BAD(name, value)                                                                 \
    do {                                                                                   \
        if (with((name), (value)) != ERR_INVALID)                                          \
            t_fail(__FILE__, __LINE__, "accepted %s=\"%s\"", (name), (value));             \
        else if (!strstr(err_msg(), "pgtoken.io/"))                                        \
            t_fail(__FILE__, __LINE__, "message names no annotation: %s", err_msg());      \
    } while (0)

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static const char *render(const struct spec *s, const char *key, const char *password)
{
    static char out[TMPL_OUT_MAX + 1];
    struct sbuf *pw = sbuf_from(password, strlen(password)), *r = NULL;

    snprintf(out, sizeof(out), "(no key %s)", key);
    for (size_t i = 0; i < s->n_outputs; i++) {
        if (strcmp(s->outputs[i].key, key))
            continue;
        if (spec_render(&r, s, i, pw) == 0)
            snprintf(out, sizeof(out), "%s", sbuf_expose(r));
        else
            snprintf(out, sizeof(out), "ERR: %s", err_msg());
    }
    sbuf_free(r);
    sbuf_free(pw);
    return out;
}

static void test_defaults(void)
{
    struct spec s = SPEC_INIT;

    T_RC(parse(&s, ann("host", "db.example.com", "user", "alice@contoso.com", END)), 0);
    T_EQ_STR(s.host, "db.example.com");
    T_EQ_STR(s.user, "alice@contoso.com");
    T_EQ_STR(s.database, "postgres");
    T_EQ_INT(s.port, 5432);
    T_EQ_INT(s.sslmode, SPEC_SSL_REQUIRE);
    T_EQ_INT(s.login_check, SPEC_LOGIN_UNSET);
    T_CHECK(s.refresh_ratio == 0);
    T_EQ_INT(s.n_restarts, 0);
    T_CHECK(s.service_account == NULL);
    T_EQ_INT(s.n_outputs, 2);
    T_EQ_STR(s.outputs[0].key, "DATABASE_URL");
    T_EQ_STR(s.outputs[1].key, "password");
    T_EQ_STR(tmpl_text(s.outputs[0].tmpl),
             "postgresql://{user}:{password}@{host}:{port}/{database}?sslmode={sslmode}");
    T_EQ_STR(render(&s, "password", TOKEN), TOKEN);
    T_EQ_STR(render(&s, "DATABASE_URL", TOKEN), "postgresql://alice%40contoso.com:" TOKEN
                                                "@db.example.com:5432/postgres?sslmode=require");
    spec_release(&s);
    T_CHECK(s.host == NULL && s.outputs == NULL && s.n_outputs == 0);
    spec_release(&s); /* twice is fine */
}

static void test_all_annotations(void)
{
    struct spec s = SPEC_INIT;

    T_RC(parse(&s, ann("host", "[2001:db8::1]", "user", "group name@contoso.com",
                       "database", "sales db", "port", "6432", "sslmode", "verify-full",
                       "login-check", "best-effort", "refresh-ratio", "0.75",
                       "restart", "deployment/web, statefulset/db,deployment/web",
                       "service-account", "app-reader", "format", "url",
                       "template.PGPASSWORD", "{password}",
                       "status.expires-at", "whatever", "example.com/other", "x", END)), 0);
    T_EQ_STR(s.host, "2001:db8::1");
    T_EQ_STR(s.database, "sales db");
    T_EQ_INT(s.port, 6432);
    T_EQ_INT(s.sslmode, SPEC_SSL_VERIFY_FULL);
    T_EQ_INT(s.login_check, SPEC_LOGIN_BEST_EFFORT);
    T_CHECK(s.refresh_ratio == 0.75);
    T_EQ_INT(s.n_restarts, 2);
    T_EQ_INT(s.restarts[0].kind, SPEC_RESTART_DEPLOYMENT);
    T_EQ_STR(s.restarts[0].name, "web");
    T_EQ_INT(s.restarts[1].kind, SPEC_RESTART_STATEFULSET);
    T_EQ_STR(s.restarts[1].name, "db");
    T_EQ_STR(s.service_account, "app-reader");
    T_EQ_INT(s.n_outputs, 3);
    T_EQ_STR(s.outputs[0].key, "DATABASE_URL");
    T_EQ_STR(s.outputs[1].key, "PGPASSWORD");
    T_EQ_STR(s.outputs[2].key, "password");
    T_EQ_STR(render(&s, "DATABASE_URL", TOKEN),
             "postgresql://group%20name%40contoso.com:" TOKEN
             "@[2001:db8::1]:6432/sales%20db?sslmode=verify-full");
    spec_release(&s);
}

static void test_not_an_object(void)
{
    struct spec s = SPEC_INIT;

    T_RC(spec_parse(&s, NULL), ERR_INVALID);
    T_EQ_STR(err_msg(), "pgtoken.io/host: required");
    T_RC(parse(&s, cJSON_CreateArray()), ERR_INVALID);
    T_RC(parse(&s, cJSON_CreateObject()), ERR_INVALID);
    T_RC(parse(&s, ann("host", "db", END)), ERR_INVALID);
    T_EQ_STR(err_msg(), "pgtoken.io/user: required");
    T_RC(parse(&s, ann("user", "u", END)), ERR_INVALID);
    T_EQ_STR(err_msg(), "pgtoken.io/host: required");
    T_CHECK(s.host == NULL && s.user == NULL && s.outputs == NULL); /* untouched on error */
}

static void test_host(void)
{
    static const char *const good[] = {
        "db.example.com", "localhost", "a", "x-1.y-2.z", "DB.Example.COM", "10.0.0.1",
        "255.255.255.255", "::1", "[::1]", "2001:db8::1", "[2001:db8::1]", "::ffff:10.0.0.1",
        "myserver.postgres.database.azure.com", "0a.example", "1x", "a--b.example",
    };
    static const char *const bad[] = {
        "", " ", "db.example.com/", "http://db.example.com", "postgresql://db", "user@db",
        "db example.com", "db\texample", "db\n", "db:5432", "10.0.0.1:5432", "256.1.1.1",
        "1.2.3", "1.2.3.4.5", "-db.example.com", "db-.example", "db..example",
        "db.example.com.", ".db", "db_1.example", "[::1", "::1]", "[db.example.com]",
        "[::1]:5432", "fe80::1%eth0", "::1/128", "d\xc3\xa9.example", "\x01", "db;rm",
        "[]", "[ ::1]", ":::", "1::2::3", "db%2e", "db\\x", "*.example.com", "db\xff",
        "[::1]/x", "a@[::1]", " db.example.com", "db.example.com ",
    };
    char *l63 = repeat('a', 63), *l64 = repeat('a', 64), *l61 = repeat('b', 61);
    char *huge = repeat('a', 5000), name[300];
    struct spec s = SPEC_INIT;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        T_OK("host", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        T_BAD("host", bad[i]);
    T_OK("host", l63);
    T_BAD("host", l64);
    snprintf(name, sizeof(name), "%s.%s.%s.%s", l63, l63, l63, l61); /* 253 bytes */
    T_EQ_INT(strlen(name), 253);
    T_OK("host", name);
    snprintf(name, sizeof(name), "%s.%s.%s.%sb", l63, l63, l63, l61);
    T_BAD("host", name);
    T_BAD("host", huge);
    T_BAD("host", "db.example.com/" MARK);
    T_CHECK(strstr(err_msg(), "not a URL") && !strstr(err_msg(), MARK));
    T_BAD("host", MARK "@db.example.com");
    T_CHECK(strstr(err_msg(), "pgtoken.io/user") && !strstr(err_msg(), MARK));
    T_BAD("host", "db.example.com:5432");
    T_CHECK(strstr(err_msg(), "pgtoken.io/port") != NULL);
    T_RC(parse(&s, ann("host", "[::1]", "user", "u", END)), 0);
    T_EQ_STR(s.host, "::1");
    spec_release(&s);
    free(l63);
    free(l64);
    free(l61);
    free(huge);
}

static void check_names(const char *name)
{
    static const char *const good[] = {
        "alice@contoso.com", "group name@contoso.com", "My Managed Identity", "a",
        "Zo\xc3\xab \xc3\x9cnicode", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x90\x98",
        "{password}", "o'brien", "a\"b", "100%", "a/b", "x:y",
    };
    static const char *const bad[] = {
        "", "\xff", "a\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
        "\xf8\x88\x80\x80\x80", "\x80", "a\nb", "a\tb", "a\rb", "a\x1b[31m", "a\x7f",
        "a\xc2\x85", "a\xc2\x9f", " alice", "alice ",
    };
    char *n63 = repeat('n', 63), *n64 = repeat('n', 64), *huge = repeat('n', 5000);
    char utf63[64] = "";

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        T_OK(name, good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        T_BAD(name, bad[i]);
    T_OK(name, n63);
    T_BAD(name, n64);
    T_CHECK(strstr(err_msg(), "63 bytes") != NULL);
    T_BAD(name, huge);
    T_CHECK(strstr(err_msg(), "4096") != NULL);
    for (int i = 0; i < 21; i++)
        memcpy(utf63 + 3 * i, "\xe2\x82\xac", 3); /* 21 euro signs: 63 bytes */
    T_OK(name, utf63);
    T_BAD(name, "\xc2\x85" MARK);
    T_CHECK(strstr(err_msg(), "control character") && !strstr(err_msg(), MARK));
    free(n63);
    free(n64);
    free(huge);
}

static void test_user(void)
{
    check_names("user");
}

static void test_database(void)
{
    check_names("database");
}

static void test_port(void)
{
    static const char *const bad[] = {
        "0", "00000", "65536", "99999", "123456", " 5432", "5432 ", "5432x", "x5432", "+5432",
        "-1", "", "0x10", "5432.0", "5,432", "\xd9\xa5", "5432\n", "4294967297",
    };
    struct spec s = SPEC_INIT;

    T_OK("port", "1");
    T_OK("port", "65535");
    T_OK("port", "6432");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        T_BAD("port", bad[i]);
    T_EQ_STR(err_msg(), "pgtoken.io/port: must be a number from 1 to 65535 (digits only)");
    T_RC(parse(&s, ann("host", "h", "user", "u", "port", "05432", END)), 0);
    T_EQ_INT(s.port, 5432);
    spec_release(&s);
}

static void test_sslmode(void)
{
    static const char *const names[] = { "require", "verify-ca", "verify-full" };
    struct spec s = SPEC_INIT;

    for (int i = 0; i < 3; i++) {
        T_RC(parse(&s, ann("host", "h", "user", "u", "sslmode", names[i], END)), 0);
        T_EQ_INT(s.sslmode, i);
        T_EQ_STR(spec_sslmode_name(s.sslmode), names[i]);
        spec_release(&s);
    }
    T_BAD("sslmode", "disable");
    T_CHECK(strstr(err_msg(), "requires TLS") != NULL);
    T_BAD("sslmode", "allow");
    T_BAD("sslmode", "prefer");
    T_CHECK(strstr(err_msg(), "prefer is refused") != NULL);
    T_BAD("sslmode", "REQUIRE");
    T_CHECK(strstr(err_msg(), "unknown sslmode \"REQUIRE\"") != NULL);
    T_BAD("sslmode", "");
    T_BAD("sslmode", "require ");
    T_BAD("sslmode", "verify_full");
    T_BAD("sslmode", "require\x01");
    T_EQ_STR(err_msg(), "pgtoken.io/sslmode: unknown sslmode (use require, verify-ca or "
                        "verify-full)");
}

static void test_format(void)
{
    static const char *const all[] = { "url", "prisma", "prefect", "pgenv", "pgpass", "jdbc" };
    struct spec s = SPEC_INIT;

    T_OK("format", "url");
    T_OK("format", " url ");
    T_OK("format", "url,url");
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        T_OK("format", all[i]);
    T_OK("format", "prefect, pgenv ,pgpass,jdbc");
    T_OK("format", "prisma,pgenv,pgpass,jdbc,prefect");
    T_BAD("format", "dotenv");
    T_EQ_STR(err_msg(), "pgtoken.io/format: unknown format \"dotenv\" (supported: url, prisma, "
                        "prefect, pgenv, pgpass, jdbc)");
    T_BAD("format", "url,pgpas");
    T_CHECK(strstr(err_msg(), "\"pgpas\"") != NULL);
    T_BAD("format", "URL");
    T_BAD("format", "Prisma");
    T_BAD("format", "");
    T_BAD("format", "url,");
    T_CHECK(strstr(err_msg(), "empty entry") != NULL);
    T_BAD("format", ",url");
    T_BAD("format", "url,,url");
    T_BAD("format", "url;jdbc");
    T_BAD("format", "url jdbc");
    T_RC(parse(&s, ann("host", "h", "user", "u", "format", "url", END)), 0);
    T_EQ_INT(s.n_outputs, 2);
    spec_release(&s);
}

/* The keys of s, comma-joined (they are sorted). */
static const char *keys(const struct spec *s)
{
    static char out[1024];

    out[0] = '\0';
    for (size_t i = 0; i < s->n_outputs; i++)
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? "," : "",
                 s->outputs[i].key);
    return out;
}

/* Parses host/user/database plus format and sslmode; fails the test on an error. */
static int preset(struct spec *s, const char *user, const char *format, const char *sslmode)
{
    int rc = parse(s, ann("host", "db.example.com", "user", user, "database", "app db",
                          "port", "6432", "format", format, "sslmode", sslmode, END));

    if (rc)
        t_fail(__FILE__, __LINE__, "format %s, sslmode %s: %s", format, sslmode, err_msg());
    return rc;
}

static void hash_of(char out[17], cJSON *a);

#define ROLE "db team@contoso.com"
#define ROLE_URL "db%20team%40contoso.com"

static void test_preset_url(void)
{
    struct spec s = SPEC_INIT;

    if (preset(&s, ROLE, "url", "verify-full"))
        return;
    T_EQ_STR(keys(&s), "DATABASE_URL,password");
    T_EQ_STR(render(&s, "DATABASE_URL", TOKEN),
             "postgresql://" ROLE_URL ":" TOKEN
             "@db.example.com:6432/app%20db?sslmode=verify-full");
    T_EQ_STR(render(&s, "password", TOKEN), TOKEN);
    spec_release(&s);
}

static void test_preset_prisma(void)
{
    static const char *const want[][2] = {
        { "require", "?sslmode=require&uselibpqcompat=true" },
        { "verify-ca", "?sslmode=verify-full" },
        { "verify-full", "?sslmode=verify-full" },
    };
    struct spec s = SPEC_INIT;
    char url[512];

    for (size_t i = 0; i < 3; i++) {
        if (preset(&s, ROLE, "prisma", want[i][0]))
            return;
        T_EQ_STR(keys(&s), "DATABASE_URL");
        snprintf(url, sizeof(url), "postgresql://%s:%s@db.example.com:6432/app%%20db%s",
                 ROLE_URL, TOKEN, want[i][1]);
        T_EQ_STR(render(&s, "DATABASE_URL", TOKEN), url);
        spec_release(&s);
    }
    /* A password that needs encoding (never a JWT, but the template is a URL template). */
    if (preset(&s, "a:b/c?d", "prisma", "verify-full"))
        return;
    T_EQ_STR(render(&s, "DATABASE_URL", "p@ss:w/rd%"),
             "postgresql://a%3Ab%2Fc%3Fd:p%40ss%3Aw%2Frd%25@db.example.com:6432/app%20db"
             "?sslmode=verify-full");
    spec_release(&s);
}

static void test_preset_prefect(void)
{
    static const char *const want[][4] = {
        /* sslmode, URL suffix, TLS_ENABLED, TLS_CHECK_HOSTNAME */
        { "require", "?ssl=require", "false", "false" },
        { "verify-ca", "", "true", "false" },
        { "verify-full", "", "true", "true" },
    };
    struct spec s = SPEC_INIT;
    char url[512];

    for (size_t i = 0; i < 3; i++) {
        if (preset(&s, ROLE, "prefect", want[i][0]))
            return;
        T_EQ_STR(keys(&s), "PREFECT_SERVER_DATABASE_CONNECTION_URL,"
                           "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CHECK_HOSTNAME,"
                           "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED,"
                           "connection-string");
        snprintf(url, sizeof(url), "postgresql+asyncpg://%s:%s@db.example.com:6432/app%%20db%s",
                 ROLE_URL, TOKEN, want[i][1]);
        T_EQ_STR(render(&s, "PREFECT_SERVER_DATABASE_CONNECTION_URL", TOKEN), url);
        /* The prefect-server Helm chart's key: the same URL, for every sslmode. */
        T_EQ_STR(render(&s, "connection-string", TOKEN), url);
        T_EQ_STR(render(&s, "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED", TOKEN),
                 want[i][2]);
        T_EQ_STR(render(&s, "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CHECK_HOSTNAME",
                        TOKEN), want[i][3]);
        /* Every key is a name Kubernetes takes from envFrom as a variable (its IsEnvVarName:
         * [-._a-zA-Z][-._a-zA-Z0-9]*), so envFrom skips none; only connection-string is not
         * a shell name. */
        for (size_t k = 0; k < s.n_outputs; k++) {
            const char *key = s.outputs[k].key;
            T_CHECK(strchr("-._abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", key[0]));
            T_EQ_INT(strspn(key, "-._abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789"), strlen(key));
            if (strcmp(key, "connection-string"))
                T_EQ_INT(strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_"), strlen(key));
        }
        spec_release(&s);
    }
    /* Never sslmode= in a Prefect URL: asyncpg.connect has no such argument. */
    if (preset(&s, "u", "prefect", "verify-full"))
        return;
    T_CHECK(strstr(render(&s, "PREFECT_SERVER_DATABASE_CONNECTION_URL", TOKEN), "sslmode") == NULL);
    T_CHECK(strstr(render(&s, "connection-string", TOKEN), "sslmode") == NULL);
    spec_release(&s);
}

static void test_preset_pgenv(void)
{
    struct spec s = SPEC_INIT;

    if (preset(&s, ROLE, "pgenv", "verify-ca"))
        return;
    T_EQ_STR(keys(&s), "PGDATABASE,PGHOST,PGPASSWORD,PGPORT,PGSSLMODE,PGUSER");
    T_EQ_STR(render(&s, "PGHOST", TOKEN), "db.example.com");
    T_EQ_STR(render(&s, "PGPORT", TOKEN), "6432");
    T_EQ_STR(render(&s, "PGDATABASE", TOKEN), "app db");
    T_EQ_STR(render(&s, "PGUSER", TOKEN), ROLE);
    T_EQ_STR(render(&s, "PGPASSWORD", TOKEN), TOKEN);
    T_EQ_STR(render(&s, "PGSSLMODE", TOKEN), "verify-ca");
    spec_release(&s);
    /* An IPv6 host is written as libpq's host= takes it: no brackets. */
    T_RC(parse(&s, ann("host", "[2001:db8::1]", "user", "u", "format", "pgenv", END)), 0);
    T_EQ_STR(render(&s, "PGHOST", TOKEN), "2001:db8::1");
    spec_release(&s);
}

static void test_preset_pgpass(void)
{
    struct spec s = SPEC_INIT;

    if (preset(&s, ROLE, "pgpass", "require"))
        return;
    T_EQ_STR(keys(&s), "pgpass");
    T_EQ_INT(s.outputs[0].escape, SPEC_ESCAPE_PGPASS);
    T_EQ_STR(render(&s, "pgpass", TOKEN), "db.example.com:6432:app db:" ROLE ":" TOKEN "\n");
    spec_release(&s);
    /* ':' and '\\' are escaped in every field, the password too; nothing else is. */
    T_RC(parse(&s, ann("host", "::1", "user", "dom\\user:x", "database", "a:b\\c",
                       "format", "pgpass", END)), 0);
    T_EQ_STR(render(&s, "pgpass", "to:k\\en*"),
             "\\:\\:1:5432:a\\:b\\\\c:dom\\\\user\\:x:to\\:k\\\\en*\n");
    spec_release(&s);
    /* A template for the key replaces the preset's, and its escape: the text is the user's. */
    T_RC(parse(&s, ann("host", "h", "user", "a:b", "format", "pgpass",
                       "template.pgpass", "*:*:*:{user}:{password}", END)), 0);
    T_EQ_INT(s.outputs[0].escape, SPEC_ESCAPE_NONE);
    T_EQ_STR(render(&s, "pgpass", TOKEN), "*:*:*:a:b:" TOKEN);
    spec_release(&s);
}

static void test_preset_jdbc(void)
{
    struct spec s = SPEC_INIT;

    if (preset(&s, ROLE, "jdbc", "verify-full"))
        return;
    T_EQ_STR(keys(&s), "JDBC_PASSWORD,JDBC_URL,JDBC_USER");
    T_EQ_STR(render(&s, "JDBC_URL", TOKEN),
             "jdbc:postgresql://db.example.com:6432/app%20db?sslmode=verify-full");
    T_EQ_STR(render(&s, "JDBC_USER", TOKEN), ROLE);
    T_EQ_STR(render(&s, "JDBC_PASSWORD", TOKEN), TOKEN);
    spec_release(&s);
    T_RC(parse(&s, ann("host", "2001:db8::1", "user", "u", "format", "jdbc", END)), 0);
    T_EQ_STR(render(&s, "JDBC_URL", TOKEN),
             "jdbc:postgresql://[2001:db8::1]:5432/postgres?sslmode=require");
    spec_release(&s);
}

static void test_preset_combinations(void)
{
    struct spec s = SPEC_INIT;

    /* Presets add up; the order in the annotation does not matter. */
    if (preset(&s, ROLE, "jdbc,pgenv,pgpass,prefect,url", "verify-full"))
        return;
    T_EQ_STR(keys(&s), "DATABASE_URL,JDBC_PASSWORD,JDBC_URL,JDBC_USER,PGDATABASE,PGHOST,"
                       "PGPASSWORD,PGPORT,PGSSLMODE,PGUSER,"
                       "PREFECT_SERVER_DATABASE_CONNECTION_URL,"
                       "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CHECK_HOSTNAME,"
                       "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED,"
                       "connection-string,password,pgpass");
    T_EQ_STR(render(&s, "pgpass", TOKEN), "db.example.com:6432:app db:" ROLE ":" TOKEN "\n");
    T_EQ_STR(render(&s, "DATABASE_URL", TOKEN),
             "postgresql://" ROLE_URL ":" TOKEN
             "@db.example.com:6432/app%20db?sslmode=verify-full");
    spec_release(&s);
    /* url and prisma both write DATABASE_URL: refused, unless a template settles it. */
    T_RC(parse(&s, ann("host", "h", "user", "u", "format", "prisma,url", END)), ERR_INVALID);
    T_EQ_STR(err_msg(), "pgtoken.io/format: url and prisma both write DATABASE_URL; keep one, "
                        "or set pgtoken.io/template.DATABASE_URL");
    T_RC(parse(&s, ann("host", "h", "user", "u", "format", "url,prisma",
                       "template.DATABASE_URL", "postgres://{user}:{password}@{host}/{database}",
                       END)), 0);
    T_EQ_STR(keys(&s), "DATABASE_URL,password");
    T_EQ_STR(tmpl_text(s.outputs[0].tmpl), "postgres://{user}:{password}@{host}/{database}");
    spec_release(&s);
    /* A template overrides a preset key and adds its own; the preset's other keys stay. */
    T_RC(parse(&s, ann("host", "h", "user", "u", "format", "prefect,pgenv",
                       "template.PGSSLMODE", "verify-full",
                       "template.PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CA_FILE",
                       "/etc/ssl/private-ca.crt", END)), 0);
    T_EQ_INT(s.n_outputs, 11);
    T_EQ_STR(render(&s, "PGSSLMODE", TOKEN), "verify-full");
    T_EQ_STR(render(&s, "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CA_FILE", TOKEN),
             "/etc/ssl/private-ca.crt");
    T_EQ_STR(render(&s, "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED", TOKEN),
             "false");
    spec_release(&s);
    /* A template for a key that a preset writes, for a preset not asked for, is only a
     * template. */
    T_RC(parse(&s, ann("host", "h", "user", "u", "format", "pgenv",
                       "template.DATABASE_URL", "postgresql://{user}@{host}", END)), 0);
    T_EQ_INT(s.n_outputs, 7);
    spec_release(&s);
    /* Every preset alone writes the token somewhere: prefect in two keys, and a template
     * for one leaves the other as the preset writes it. */
    T_RC(parse(&s, ann("host", "h", "user", "u", "format", "prefect",
                       "template.PREFECT_SERVER_DATABASE_CONNECTION_URL", "x", END)), 0);
    T_EQ_STR(render(&s, "connection-string", TOKEN),
             "postgresql+asyncpg://u:" TOKEN "@h:5432/postgres?ssl=require");
    spec_release(&s);
    T_RC(parse(&s, ann("host", "h", "user", "u", "format", "prefect",
                       "template.PREFECT_SERVER_DATABASE_CONNECTION_URL", "x",
                       "template.connection-string", "x", END)),
         ERR_INVALID);
    T_CHECK(strstr(err_msg(), "no template has {password}") != NULL);
}

static void test_preset_hash(void)
{
    static const char *const formats[] = { "url", "prisma", "prefect", "pgenv", "pgpass", "jdbc",
                                           "url,jdbc", "pgenv,pgpass" };
    char h[8][17], again[17], a[17], b[17];

    for (size_t i = 0; i < 8; i++) {
        hash_of(h[i], ann("host", "h", "user", "u", "format", formats[i], END));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(h[i], h[j]))
                t_fail(__FILE__, __LINE__, "formats %s and %s hash alike", formats[i],
                       formats[j]);
    }
    hash_of(again, ann("host", "h", "user", "u", "format", "jdbc , url", END));
    T_EQ_STR(again, h[6]);
    /* The sslmode changes what prisma and prefect write, and the hash. */
    hash_of(a, ann("host", "h", "user", "u", "format", "prefect", "sslmode", "verify-ca", END));
    hash_of(b, ann("host", "h", "user", "u", "format", "prefect", "sslmode", "verify-full", END));
    T_CHECK(strcmp(a, b) != 0);
    /* The same text with and without the pgpass escape are different outputs. */
    hash_of(a, ann("host", "h", "user", "u", "format", "pgpass", END));
    hash_of(b, ann("host", "h", "user", "u", "template.pgpass",
                   "{host}:{port}:{database}:{user}:{password}\n", END));
    T_CHECK(strcmp(a, b) != 0);
}

static void test_templates(void)
{
    struct spec s = SPEC_INIT;

    /* Templates alone replace the default outputs. */
    T_RC(parse(&s, ann("host", "h", "user", "u", "template.PGPASSWORD", "{password}", END)), 0);
    T_EQ_INT(s.n_outputs, 1);
    T_EQ_STR(s.outputs[0].key, "PGPASSWORD");
    spec_release(&s);
    /* With format, presets and templates combine; a template wins over a preset key. */
    T_RC(parse(&s, ann("host", "h", "user", "a@b", "format", "url",
                       "template.DATABASE_URL", "postgres://{user}:{password}@{host}/{database}",
                       "template.zz", "{user}", "template.PGHOST", "{host}", END)), 0);
    T_EQ_INT(s.n_outputs, 4);
    T_EQ_STR(s.outputs[0].key, "DATABASE_URL");
    T_EQ_STR(s.outputs[1].key, "PGHOST");
    T_EQ_STR(s.outputs[2].key, "password");
    T_EQ_STR(s.outputs[3].key, "zz");
    T_EQ_STR(render(&s, "DATABASE_URL", "t"), "postgres://a%40b:t@h/postgres");
    spec_release(&s);
    /* Injection attempts are literal text. */
    T_RC(parse(&s, ann("host", "h", "user", "{password}", "template.X", "{password}{{user}}",
                       END)), 0);
    T_EQ_STR(render(&s, "X", TOKEN), TOKEN "{user}");
    spec_release(&s);
    T_RC(parse(&s, ann("host", "h", "user", "{password}", "template.X",
                       "{user}:{password}", END)), 0);
    T_EQ_STR(render(&s, "X", "tok"), "{password}:tok");
    spec_release(&s);
}

static void test_template_keys(void)
{
    char *k253 = repeat('k', 253), *k254 = repeat('k', 254), name[300];
    static const char *const good[] = {
        "template.a", "template.-x", "template._", "template.x.y", "template.a-b_c.D9",
        "template.PG", "template.pgtoke", "template.my-pgtoken", "template..x",
        "template..x.",
    };
    static const char *const bad[] = {
        "template.", "template.a b", "template..", "template...",
        "template...x", "template.pgtoken", "template.pgtoken-x", "template.PGTOKEN_URL",
        "template.PgToken", "template.a:b", "template.\xc3\xa9", "template.a@b",
        SPEC_PREFIX "template.a/b", SPEC_PREFIX "template./",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        T_OK(good[i], "{password}");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        T_BAD(bad[i], "{password}");
    T_BAD("template.pgtoken", "{password}");
    T_CHECK(strstr(err_msg(), "the key after template.") != NULL);
    snprintf(name, sizeof(name), "template.%s", k253);
    T_OK(name, "{password}");
    snprintf(name, sizeof(name), "template.%s", k254);
    T_BAD(name, "{password}");
    T_CHECK(strlen(err_msg()) < 400);
    free(k253);
    free(k254);
}

static void test_template_errors(void)
{
    char *big = repeat('x', 4097), *ok = repeat('x', 4096);

    T_BAD("template.URL", "postgresql://{user}:{pasword}@{host}");
    T_CHECK(strstr(err_msg(), "pgtoken.io/template.URL: unknown placeholder {pasword}") != NULL);
    T_BAD("template.URL", "{ password }");
    T_CHECK(strstr(err_msg(), "{ password }") != NULL);
    T_BAD("template.URL", "{password");
    T_CHECK(strstr(err_msg(), "pgtoken.io/template.URL: unclosed") != NULL);
    T_BAD("template.URL", "{password{user}}");
    T_BAD("template.URL", "");
    T_BAD("template.URL", "\xff{password}");
    T_CHECK(strstr(err_msg(), "UTF-8") != NULL);
    T_BAD("template.URL", "{password}\x01");
    T_BAD("template.URL", big);
    memcpy(ok, "{password}", 10);
    T_OK("template.URL", ok);
    /* No output with the token is refused: rotating would write nothing useful. */
    T_BAD("template.PGHOST", "{host}");
    T_CHECK(strstr(err_msg(), "no template has {password}") != NULL);
    /* A URL template that only breaks with this spec's role or host. */
    T_BAD("template.URL", "postgresql://{user:raw}:{password}@{host}/x");
    T_CHECK(strstr(err_msg(), "pgtoken.io/template.URL:") && strstr(err_msg(), "'@'") &&
            !strstr(err_msg(), "alice"));
    free(big);
    free(ok);
}

static void test_template_url_with_values(void)
{
    struct spec s = SPEC_INIT;
    const char *raw_user = "postgresql://{user:raw}:{password}@{host}/x";

    T_RC(parse(&s, ann("host", "h", "user", "app", "template.U", raw_user, END)), 0);
    spec_release(&s);
    T_RC(parse(&s, ann("host", "h", "user", "my " MARK, "template.U", raw_user, END)),
         ERR_INVALID);
    T_CHECK(!strstr(err_msg(), MARK));
    T_RC(parse(&s, ann("host", "::1", "user", "app", "template.U",
                       "postgresql://{user}:{password}@{host:raw}:5432/x", END)), ERR_INVALID);
    T_RC(parse(&s, ann("host", "::1", "user", "app", "template.U",
                       "postgresql://{user}:{password}@{host}:5432/x", END)), 0);
    T_EQ_STR(render(&s, "U", "t"), "postgresql://app:t@[::1]:5432/x");
    spec_release(&s);
}

static void test_template_count(void)
{
    cJSON *a = ann("host", "h", "user", "u", END);
    struct spec s = SPEC_INIT;
    char key[64];

    for (int i = 0; i < SPEC_OUTPUTS_MAX; i++) {
        snprintf(key, sizeof(key), SPEC_PREFIX "template.K%02d", i);
        cJSON_AddItemToObject(a, key, cJSON_CreateString("{password}"));
    }
    T_RC(spec_parse(&s, a), 0);
    T_EQ_INT(s.n_outputs, SPEC_OUTPUTS_MAX);
    spec_release(&s);
    cJSON_AddItemToObject(a, SPEC_PREFIX "template.K99", cJSON_CreateString("{password}"));
    T_RC(spec_parse(&s, a), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "more than 32") != NULL);
    cJSON_Delete(a);
}

static void test_login_check(void)
{
    static const char *const names[] = { "required", "best-effort", "off" };
    struct spec s = SPEC_INIT;

    for (int i = 0; i < 3; i++) {
        T_RC(parse(&s, ann("host", "h", "user", "u", "login-check", names[i], END)), 0);
        T_EQ_INT(s.login_check, SPEC_LOGIN_REQUIRED + i);
        T_EQ_STR(spec_login_check_name(s.login_check), names[i]);
        spec_release(&s);
    }
    T_BAD("login-check", "");
    T_BAD("login-check", "on");
    T_BAD("login-check", "Required");
    T_BAD("login-check", "best_effort");
    T_CHECK(strstr(err_msg(), "required, best-effort or off") != NULL);
}

static void test_refresh_ratio(void)
{
    static const struct {
        const char *text;
        double want;
    } good[] = {
        { "0.5", 0.5 }, { ".25", 0.25 }, { "0.99", 0.99 }, { "0.000000001", 1e-9 },
        { "0.999999999", 0.999999999 }, { "0.10", 0.1 },
    };
    static const char *const bad[] = {
        "0", "1", "1.0", "0.0", "0.", ".", "", "-0.5", "0.5x", "0,5", " 0.5", "0.5 ", "1e-1",
        "nan", "inf", "0.1234567891", "00.5", "+0.5", "0.000", "5", "0x0.8", "1.5",
    };
    struct spec s = SPEC_INIT;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        T_RC(parse(&s, ann("host", "h", "user", "u", "refresh-ratio", good[i].text, END)), 0);
        T_CHECK(s.refresh_ratio > good[i].want - 1e-12 && s.refresh_ratio < good[i].want + 1e-12);
        spec_release(&s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        T_BAD("refresh-ratio", bad[i]);
}

static void test_restart(void)
{
    static const char *const bad[] = {
        "", " ", "web", "deploy/web", "Deployment/web", "daemonset/x", "deployment/",
        "deployment/Web", "deployment/a/b", "deployment/-web", "deployment/web-",
        "deployment/web_1", "deployment/web,", ",deployment/web", "deployment/web,,sts/x",
        "deployment/ web", "statefulset/db.", "deployment/a..b", "deployment/web;x",
    };
    char *long_name = repeat('a', 254), buf[400];
    cJSON *a;
    struct spec s = SPEC_INIT;
    struct buf list = BUF_INIT(4096);

    T_OK("restart", "deployment/web");
    T_OK("restart", "statefulset/db-0.x");
    T_OK("restart", "deployment/web , statefulset/db");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        T_BAD("restart", bad[i]);
    snprintf(buf, sizeof(buf), "deployment/%s", long_name);
    T_BAD("restart", buf);
    T_BAD("restart", buf + 1); /* "eployment/..." */
    for (int i = 0; i < SPEC_RESTARTS_MAX; i++)
        buf_addf(&list, "%sdeployment/w%d", i ? "," : "", i);
    a = ann("host", "h", "user", "u", "restart", list.ptr, END);
    T_RC(parse(&s, a), 0);
    T_EQ_INT(s.n_restarts, SPEC_RESTARTS_MAX);
    T_EQ_STR(spec_restart_kind_name(s.restarts[0].kind), "deployment");
    spec_release(&s);
    buf_addstr(&list, ",statefulset/one-more");
    T_BAD("restart", list.ptr);
    T_CHECK(strstr(err_msg(), "pgtoken.io/restart: more than 16") != NULL);
    buf_release(&list);
    free(long_name);
}

static void test_service_account(void)
{
    static const char *const bad[] = {
        "", "ns/app", "system:serviceaccount:ns:app", "App", "-app", "app-", "app_1", "a b",
        "app.", ".app", "\xc3\xa9",
    };
    char *n253 = repeat('a', 253), *n254 = repeat('a', 254);

    T_OK("service-account", "app");
    T_OK("service-account", "app.v1");
    T_OK("service-account", "0");
    T_OK("service-account", n253);
    T_BAD("service-account", n254);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        T_BAD("service-account", bad[i]);
    T_CHECK(strstr(err_msg(), "in the Secret's namespace") != NULL);
    free(n253);
    free(n254);
}

/* Any short text without control characters; only compared, so never quoted in a message. */
static void test_force_rotate(void)
{
    static const char *const good[] = {
        "2024-05-01T12:00:00Z", "1", "x", "2024-05-01 12:00:00 +02:00", "r\xc3\xb4le", "a=b\"c",
    };
    static const char *const bad[] = { "", "2024\n05", "\t1", "a\x7f", "a\xc2\x85", MARK "\x01" };
    char *n128 = repeat('7', SPEC_FORCE_MAX), *n129 = repeat('7', SPEC_FORCE_MAX + 1);
    struct spec s = SPEC_INIT;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        T_OK("force-rotate", good[i]);
    T_OK("force-rotate", n128);
    T_BAD("force-rotate", n129);
    T_EQ_STR(err_msg(), "pgtoken.io/force-rotate: must be 1 to 128 bytes without control "
                        "characters, such as a time stamp");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        T_BAD("force-rotate", bad[i]);
        T_CHECK(!strstr(err_msg(), MARK));
    }
    T_RC(parse(&s, ann("host", "h", "user", "u", "force-rotate", "2024-05-01T12:00:00Z",
                       "status.force-rotate", "2024-04-01T00:00:00Z", END)), 0);
    T_EQ_STR(s.force_rotate, "2024-05-01T12:00:00Z");
    spec_release(&s);
    T_CHECK(s.force_rotate == NULL);
    T_RC(parse(&s, ann("host", "h", "user", "u", END)), 0);
    T_CHECK(s.force_rotate == NULL);
    spec_release(&s);
    T_BAD("force_rotate", "1");
    T_CHECK(strstr(err_msg(), "did you mean pgtoken.io/force-rotate?") != NULL);
    T_BAD("forcerotate", "1");
    T_CHECK(strstr(err_msg(), "did you mean pgtoken.io/force-rotate?") != NULL);
    free(n128);
    free(n129);
}

static void test_unknown(void)
{
    T_BAD("hots", "x");
    T_EQ_STR(err_msg(), "unknown annotation pgtoken.io/hots; did you mean pgtoken.io/host?");
    T_BAD("databse", "x");
    T_CHECK(strstr(err_msg(), "did you mean pgtoken.io/database?") != NULL);
    T_BAD("refresh_ratio", "0.5");
    T_CHECK(strstr(err_msg(), "did you mean pgtoken.io/refresh-ratio?") != NULL);
    T_BAD("templates.URL", "{password}");
    T_CHECK(strstr(err_msg(), "did you mean pgtoken.io/template.KEY?") != NULL);
    T_BAD("Host", "x");
    T_BAD("foo", "x");
    T_EQ_STR(err_msg(), "unknown annotation pgtoken.io/foo");
    T_BAD("managed", "true");
    T_CHECK(strstr(err_msg(), "is a label") != NULL);
    T_BAD("status", "x");
    T_BAD("template", "{password}");
    T_BAD("\x01\xff", "x");
    T_CHECK(strstr(err_msg(), "pgtoken.io/??") != NULL);
    /* Ignored: the controller's own status, other prefixes, look-alike prefixes. */
    T_OK("status.expires-at", "not even a time");
    T_OK("status.anything", "\xff");
    T_OK("example.com/host", "x");
    T_OK("x.pgtoken.io/host", "x");
    T_OK("pgtoken.io.evil/host", "x");
    T_OK("kubectl.kubernetes.io/last-applied-configuration", "{\"big\": true}");
}

static void test_values_must_be_strings(void)
{
    cJSON *a = ann("host", "h", "user", "u", END);
    struct spec s = SPEC_INIT;

    cJSON_AddNumberToObject(a, SPEC_PREFIX "port", 5432);
    T_RC(spec_parse(&s, a), ERR_INVALID);
    T_EQ_STR(err_msg(), "pgtoken.io/port: must be a string");
    cJSON_Delete(a);
    a = ann("host", "h", "user", "u", END);
    cJSON_AddNullToObject(a, SPEC_PREFIX "template.X");
    T_RC(spec_parse(&s, a), ERR_INVALID);
    cJSON_Delete(a);
    a = ann("host", "h", "user", "u", END);
    cJSON_AddNumberToObject(a, "example.com/n", 1); /* not ours: ignored */
    T_RC(spec_parse(&s, a), 0);
    spec_release(&s);
    cJSON_Delete(a);
}

static void test_duplicates(void)
{
    cJSON *a = ann("host", "h", "user", "u", "host", "h2", END);
    struct spec s = SPEC_INIT;

    T_RC(spec_parse(&s, a), ERR_INVALID);
    T_EQ_STR(err_msg(), "pgtoken.io/host: given twice");
    cJSON_Delete(a);
    a = ann("host", "h", "user", "u", "template.X", "{password}", "template.X", "{user}", END);
    T_RC(spec_parse(&s, a), ERR_INVALID);
    T_EQ_STR(err_msg(), "pgtoken.io/template.X: given twice");
    cJSON_Delete(a);
}

static void hash_of(char out[17], cJSON *a)
{
    struct spec s = SPEC_INIT;

    out[0] = '\0';
    if (parse(&s, a) == 0)
        spec_hash(out, &s);
    else
        t_fail(__FILE__, __LINE__, "parse: %s", err_msg());
    spec_release(&s);
}

static void test_hash(void)
{
    char base[17], h[17];
    static const char *const changes[][2] = {
        { "host", "db2.example.com" }, { "port", "6432" }, { "database", "other" },
        { "sslmode", "verify-full" }, { "service-account", "app" },
        { "template.DATABASE_URL", "postgres://{user}:{password}@{host}/{database}" },
        { "template.EXTRA", "{user}" },
    };
    static const char *const same[][2] = {
        { "login-check", "off" }, { "refresh-ratio", "0.7" }, { "restart", "deployment/w" },
        { "format", "url" }, { "port", "5432" }, { "database", "postgres" },
        { "sslmode", "require" }, { "status.spec-hash", "0123456789abcdef" },
        { "template.password", "{password}" }, { "force-rotate", "2024-05-01T12:00:00Z" },
    };

    hash_of(base, ann("host", "db.example.com", "user", "alice", END));
    T_EQ_INT(strlen(base), 16);
    T_EQ_INT(strspn(base, "0123456789abcdef"), 16);
    hash_of(h, ann("user", "alice", "host", "db.example.com", END));
    T_EQ_STR(h, base);
    hash_of(h, ann("host", "db.example.com", "user", "alice2", END));
    T_CHECK(strcmp(h, base) != 0);
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        cJSON *a = ann(changes[i][0], changes[i][1], "format", "url", "user", "alice", END);
        if (!cJSON_GetObjectItem(a, SPEC_PREFIX "host"))
            cJSON_AddItemToObject(a, SPEC_PREFIX "host", cJSON_CreateString("db.example.com"));
        hash_of(h, a);
        if (!strcmp(h, base))
            t_fail(__FILE__, __LINE__, "%s does not change the hash", changes[i][0]);
    }
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        cJSON *a = ann("user", "alice", same[i][0], same[i][1], END);
        cJSON_AddItemToObject(a, SPEC_PREFIX "host", cJSON_CreateString("db.example.com"));
        if (!strcmp(same[i][0], "template.password"))
            cJSON_AddItemToObject(a, SPEC_PREFIX "format", cJSON_CreateString("url"));
        hash_of(h, a);
        if (strcmp(h, base))
            t_fail(__FILE__, __LINE__, "%s changes the hash", same[i][0]);
    }
    /* Length-prefixed fields: moving bytes between user and database changes the hash. */
    hash_of(base, ann("host", "h", "user", "ab", "database", "c", END));
    hash_of(h, ann("host", "h", "user", "a", "database", "bc", END));
    T_CHECK(strcmp(h, base) != 0);
}

static void test_render_roles_and_passwords(void)
{
    struct spec s = SPEC_INIT;
    char all[256];
    struct sbuf *pw, *out = NULL;

    for (int i = 0; i < 256; i++)
        all[i] = (char)(255 - i);
    pw = sbuf_from(all, sizeof(all));
    T_RC(parse(&s, ann("host", "db.example.com", "user", "group name@contoso.com", END)), 0);
    T_RC(spec_render(&out, &s, 0, pw), 0); /* DATABASE_URL */
    T_CHECK(strncmp(sbuf_expose(out), "postgresql://group%20name%40contoso.com:%FF%FE", 46) == 0);
    T_CHECK(strstr(sbuf_expose(out), "%01%00@db.example.com:5432/postgres?sslmode=require"));
    sbuf_free(out);
    out = NULL;
    T_RC(spec_render(&out, &s, 1, pw), 0); /* password: raw */
    T_EQ_INT(sbuf_len(out), 256);
    T_CHECK(memcmp(sbuf_expose(out), all, 256) == 0);
    sbuf_free(out);
    out = NULL;
    T_RC(spec_render(&out, &s, 2, pw), ERR_INVALID);
    T_CHECK(out == NULL);
    spec_release(&s);
    sbuf_free(pw);
}

static void test_values_helper(void)
{
    struct spec s = SPEC_INIT;
    struct tmpl_values v;
    struct sbuf *pw = sbuf_from("t", 1);

    T_RC(parse(&s, ann("host", "h", "user", "u", "database", "d", "port", "7",
                       "sslmode", "verify-ca", END)), 0);
    spec_values(&v, &s, pw);
    T_EQ_STR(v.user, "u");
    T_EQ_STR(v.host, "h");
    T_EQ_STR(v.database, "d");
    T_EQ_STR(v.sslmode, "verify-ca");
    T_EQ_INT(v.port, 7);
    T_CHECK(v.password == pw);
    spec_release(&s);
    sbuf_free(pw);
    spec_init(&s);
    T_CHECK(s.host == NULL);
}

static void test_every_annotation_caps(void)
{
    static const char *const names[] = {
        "host", "user", "database", "port", "sslmode", "format", "template.K", "login-check",
        "refresh-ratio", "restart", "service-account", "force-rotate",
    };
    char *huge = repeat('a', SPEC_VALUE_MAX + 1);
    char msg[600];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        T_BAD(names[i], huge);
        snprintf(msg, sizeof(msg), "pgtoken.io/%s: longer than 4096 bytes", names[i]);
        T_EQ_STR(err_msg(), msg);
        T_BAD(names[i], "a\xff");
        snprintf(msg, sizeof(msg), "pgtoken.io/%s: not valid UTF-8", names[i]);
        T_EQ_STR(err_msg(), msg);
        T_BAD(names[i], "\xed\xbf\xbf"); /* a surrogate */
        T_BAD(names[i], "a\x01" MARK);
        T_CHECK(!strstr(err_msg(), MARK));
        T_BAD(names[i], "");
    }
    free(huge);
}

int main(void)
{
    T_RUN(test_defaults);
    T_RUN(test_all_annotations);
    T_RUN(test_not_an_object);
    T_RUN(test_host);
    T_RUN(test_user);
    T_RUN(test_database);
    T_RUN(test_port);
    T_RUN(test_sslmode);
    T_RUN(test_format);
    T_RUN(test_preset_url);
    T_RUN(test_preset_prisma);
    T_RUN(test_preset_prefect);
    T_RUN(test_preset_pgenv);
    T_RUN(test_preset_pgpass);
    T_RUN(test_preset_jdbc);
    T_RUN(test_preset_combinations);
    T_RUN(test_preset_hash);
    T_RUN(test_templates);
    T_RUN(test_template_keys);
    T_RUN(test_template_errors);
    T_RUN(test_template_url_with_values);
    T_RUN(test_template_count);
    T_RUN(test_login_check);
    T_RUN(test_refresh_ratio);
    T_RUN(test_restart);
    T_RUN(test_service_account);
    T_RUN(test_force_rotate);
    T_RUN(test_unknown);
    T_RUN(test_values_must_be_strings);
    T_RUN(test_duplicates);
    T_RUN(test_hash);
    T_RUN(test_render_roles_and_passwords);
    T_RUN(test_values_helper);
    T_RUN(test_every_annotation_caps);
    return t_done();
}
