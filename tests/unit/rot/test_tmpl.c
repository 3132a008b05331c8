#include "t.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/urlenc.h"
#include "rot/tmpl.h"

#define TOKEN "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln-_A"
#define DEFAULT_URL "postgresql://{user}:{password}@{host}:{port}/{database}?sslmode={sslmode}"

static struct sbuf *token;

static struct tmpl_values values(const char *user, const char *host)
{
    struct tmpl_values v = { user, token, host, 5432, "postgres", "require" };
    return v;
}

/* Compiles and renders text; the output, or "ERR: " and the message. */
static const char *render(const char *text, const struct tmpl_values *v)
{
    static char out[TMPL_OUT_MAX + 600];
    struct sbuf *s = sbuf_new(TMPL_OUT_MAX);
    struct tmpl *t = NULL;
    int rc;

    if ((rc = tmpl_compile(&t, text)) == 0)
        rc = tmpl_render(s, t, v);
    if (rc == 0)
        snprintf(out, sizeof(out), "%s", sbuf_expose(s));
    else
        snprintf(out, sizeof(out), "ERR: %s", err_msg());
    tmpl_free(t);
    sbuf_free(s);
    return out;
}

/* tmpl_compile's code for text, and its message in msg (when given). */
static int compile_rc(const char *text, const char **msg)
{
    struct tmpl *t = NULL;
    int rc = tmpl_compile(&t, text);

    if (rc == 0)
        T_CHECK(t != NULL);
    else
        T_CHECK(t == NULL);
    if (msg)
        *msg = err_msg();
    tmpl_free(t);
    return rc;
}

/* tmpl_check of text (which must compile) with v. */
static int check_rc(const char *text, const struct tmpl_values *v)
{
    struct tmpl *t = NULL;
    int rc;

    T_RC(tmpl_compile(&t, text), 0);
    if (!t)
        return 999;
    rc = tmpl_check(t, v);
    tmpl_free(t);
    return rc;
}

static void test_raw_template(void)
{
    struct tmpl_values v = values("group name@contoso.com", "db.example.com");

    v.port = 6432;
    v.database = "my db/1";
    v.sslmode = "verify-full";
    T_EQ_STR(render("{user}|{password}|{host}|{port}|{database}|{sslmode}", &v),
             "group name@contoso.com|" TOKEN "|db.example.com|6432|my db/1|verify-full");
    T_EQ_STR(render("PGUSER={user}\nPGPASSWORD={password}\n", &v),
             "PGUSER=group name@contoso.com\nPGPASSWORD=" TOKEN "\n");
    T_EQ_STR(render("*:*:*:{user}:{password}", &v), "*:*:*:group name@contoso.com:" TOKEN);
    T_EQ_STR(render("plain text", &v), "plain text");
}

static void test_url_template(void)
{
    struct tmpl_values v = values("group name@contoso.com", "db.example.com");

    T_EQ_STR(render(DEFAULT_URL, &v), "postgresql://group%20name%40contoso.com:" TOKEN
                                      "@db.example.com:5432/postgres?sslmode=require");
    v.user = "alice@contoso.com";
    v.database = "sales db";
    T_EQ_STR(render(DEFAULT_URL, &v), "postgresql://alice%40contoso.com:" TOKEN
                                      "@db.example.com:5432/sales%20db?sslmode=require");
    v.user = "Zo\xc3\xab";
    T_EQ_STR(render("postgres://{user}@{host}", &v), "postgres://Zo%C3%AB@db.example.com");
    /* A compound scheme, as JDBC writes it: the query values are encoded too. */
    v.user = "a@b";
    T_EQ_STR(render("jdbc:postgresql://{host}:{port}/{database}?user={user}&password={password}",
                    &v),
             "jdbc:postgresql://db.example.com:5432/sales%20db?user=a%40b&password=" TOKEN);
}

static void test_ipv6_host(void)
{
    struct tmpl_values v = values("app", "2001:db8::1");

    T_EQ_STR(render(DEFAULT_URL, &v),
             "postgresql://app:" TOKEN "@[2001:db8::1]:5432/postgres?sslmode=require");
    T_EQ_STR(render("{host}", &v), "2001:db8::1");
    T_EQ_STR(render("{host:url}", &v), "[2001:db8::1]");
    T_EQ_STR(render("postgresql://{host:raw}", &v), "postgresql://2001:db8::1");
    T_RC(check_rc("postgresql://{user}@{host:raw}:{port}/", &v), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "2001") == NULL);
    T_RC(check_rc("postgresql://{user}@{host}:{port}/", &v), 0);
    v.host = "::1";
    T_EQ_STR(render("postgresql://{host}:{port}", &v), "postgresql://[::1]:5432");
    v.host = "10.0.0.1";
    T_EQ_STR(render("postgresql://{host}:{port}", &v), "postgresql://10.0.0.1:5432");
}

static void test_modifiers(void)
{
    struct tmpl_values v = values("a b@c", "db.example.com");
    struct sbuf *pw = sbuf_from("p@ss:w/rd", 9);

    v.password = pw;
    T_EQ_STR(render("{user:url}:{password:url}", &v), "a%20b%40c:p%40ss%3Aw%2Frd");
    T_EQ_STR(render("{user:raw}|{password:raw}", &v), "a b@c|p@ss:w/rd");
    T_EQ_STR(render("{port:url}{port:raw}{sslmode:url}{sslmode:raw}", &v),
             "54325432requirerequire");
    v.user = "app";
    T_EQ_STR(render("postgresql://{user:raw}:{password:url}@{host}/{database:raw}", &v),
             "postgresql://app:p%40ss%3Aw%2Frd@db.example.com/postgres");
    v.user = "a b@c";
    v.database = "a/b";
    T_EQ_STR(render("{database:url}", &v), "a%2Fb");
    sbuf_free(pw);
}

static void test_braces(void)
{
    struct tmpl_values v = values("alice", "db.example.com");

    T_EQ_STR(render("{{user}}", &v), "{user}");
    T_EQ_STR(render("{password}{{user}}", &v), TOKEN "{user}");
    T_EQ_STR(render("{{{user}}}", &v), "{alice}");
    T_EQ_STR(render("}}{{", &v), "}{");
    T_EQ_STR(render("{{\"password\":\"{password}\"}}", &v),
             "{\"password\":\"" TOKEN "\"}");
    T_EQ_STR(render("{{{{", &v), "{{");
}

static void test_bad_placeholders(void)
{
    static const char *const bad[] = {
        "{ user }", "{user }", "{User}", "{USER}", "{pass}", "{pasword}", "{}", "{:raw}",
        "{user:}", "{user:URL}", "{user:raw:url}", "{user:enc}", "{password:base64}",
        "{user", "user}", "{us{er}}", "{{user}", "{password}}", "{user}{", "}", "{", "a}b",
        "{{{user}}", "{user}}}}", "{{user}{password}", "{password{user}}", "{\x01}", "{u\xc3\xa9}",
        "{user\n}", "{0}", "{user.name}", "{$user}", "{password}{{user}",
    };
    const char *msg;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (compile_rc(bad[i], &msg) != ERR_INVALID)
            t_fail(__FILE__, __LINE__, "compiled: %s", bad[i]);
    }
    T_RC(compile_rc("x{ user }", &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "{ user }") && strstr(msg, "offset 1"));
    T_RC(compile_rc("{pasword}", &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "unknown placeholder {pasword}") != NULL);
    T_RC(compile_rc("{user:URL}", &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "{user:URL}") != NULL);
    T_RC(compile_rc("abc{user", &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "unclosed") && strstr(msg, "offset 3"));
    T_RC(compile_rc("{us{er}}", &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "inside a placeholder") != NULL);
    T_RC(compile_rc("ab}", &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "single '}'") && strstr(msg, "offset 2"));
}

static void test_placeholder_in_message_is_tamed(void)
{
    char long_ph[200];
    const char *msg;

    T_RC(compile_rc("{a\x01\xff}", &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "{a??}") != NULL);
    memset(long_ph, 'x', sizeof(long_ph));
    long_ph[0] = '{';
    long_ph[sizeof(long_ph) - 2] = '}';
    long_ph[sizeof(long_ph) - 1] = '\0';
    T_RC(compile_rc(long_ph, &msg), ERR_INVALID);
    T_CHECK(strstr(msg, "xxx...}") != NULL);
    T_CHECK(strlen(msg) < 300);
}

static void test_url_detection(void)
{
    struct tmpl *t = NULL;
    struct tmpl_values v = values("a@b", "db.example.com");

    T_RC(tmpl_compile(&t, DEFAULT_URL), 0);
    T_CHECK(tmpl_is_url(t));
    T_CHECK(tmpl_uses(t, TMPL_PASSWORD) && tmpl_uses(t, TMPL_SSLMODE));
    T_EQ_STR(tmpl_text(t), DEFAULT_URL);
    tmpl_free(t);
    T_RC(tmpl_compile(&t, "{password}"), 0);
    T_CHECK(!tmpl_is_url(t));
    T_CHECK(tmpl_uses(t, TMPL_PASSWORD) && !tmpl_uses(t, TMPL_USER));
    tmpl_free(t);
    /* "://" after the first placeholder does not make a URL template. */
    T_EQ_STR(render("{user} postgresql://{user}", &v), "a@b postgresql://a@b");
    T_EQ_STR(render("{{://{user}", &v), "ERR: a template with :// before its first placeholder "
                                         "must render a URL starting with a scheme such as "
                                         "postgresql://");
    /* An env line holding a URL is a URL template with a bad scheme: refused, not mis-encoded. */
    T_RC(compile_rc("DATABASE_URL=postgresql://{user}@{host}", NULL), ERR_INVALID);
    T_RC(compile_rc("postgresql://db.example.com/postgres", NULL), 0);
    T_RC(compile_rc("see https://example.com", NULL), ERR_INVALID);
    T_RC(tmpl_compile(&t, "no placeholders"), 0);
    T_CHECK(!tmpl_is_url(t) && !tmpl_uses(t, TMPL_PASSWORD));
    tmpl_free(t);
}

static void test_url_validity(void)
{
    static const char *const good[] = {
        DEFAULT_URL,
        "postgresql://{host}",
        "postgresql://{host}/",
        "postgres://{user}@{host}#frag",
        "postgresql://{user}:{password:raw}@{host}:{port}/{database}",
        "postgresql://{user}@{host}:{port}/{database}?sslmode={sslmode}&application_name=x%20y",
        "postgresql+asyncpg://{user}:{password}@{host}/{database}?ssl=require",
        "jdbc:postgresql://{host}:{port}/{database}?user={user}&password={password}",
        "postgresql://{user}@[::1]:5432/x",
        "postgresql://{user}@{host}:1/x",
        "postgresql://{user}@{host}:65535/x",
        "postgresql://{user}@{host}/a!$&'()*+,;=:@b",
    };
    static const char *const bad[] = {
        "postgresql://{user}@{host}/{database} x",
        "postgresql://{user}@{host}/{{x}}",
        "postgresql://{host}:99999/",
        "postgresql://{host}:65536/",
        "postgresql://{host}:0/",
        "postgresql://{host}:/",
        "postgresql://{host}:54a/",
        "postgresql://@/{database}",
        "postgresql:///{database}",
        "postgresql://:5432/{database}",
        "Postgresql://{host}",
        "1pg://{host}",
        "://{host}",
        "post gres://{host}",
        "postgresql://{host}%zz",
        "postgresql://{host}%4",
        "postgresql://[{host}]/",
        "postgresql://[::1/",
        "postgresql://[::1]x/",
        "postgresql://[::1]:0/",
        "postgresql://{host}/a[b]",
        "postgresql://{user}@x@{host}/",
        "postgresql://a[b@{host}/",
        "postgresql://{host}\n",
        "postgresql://{host}/\"x\"",
        "postgresql://{host}/<x>",
        "postgresql://{host}/a|b",
        "postgresql://{host}/a\\b",
        "postgresql://{host}/a^b`",
        "postgresql://{host}/caf\xc3\xa9",
        "postgresql://{host}\t",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (compile_rc(good[i], NULL) != 0)
            t_fail(__FILE__, __LINE__, "refused %s: %s", good[i], err_msg());
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (compile_rc(bad[i], NULL) != ERR_INVALID)
            t_fail(__FILE__, __LINE__, "compiled %s", bad[i]);
}

static void test_check_with_values(void)
{
    struct tmpl_values v = values("alice@contoso.com", "db.example.com");
    const char *text = "postgresql://{user:raw}:{password}@{host}/{database}";

    /* Compiles (benign samples) but breaks with this role. */
    T_RC(check_rc(text, &v), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "more than one '@'") != NULL);
    T_CHECK(strstr(err_msg(), "alice") == NULL);
    v.user = "my group";
    T_RC(check_rc(text, &v), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "group") == NULL);
    v.user = "app";
    T_RC(check_rc(text, &v), 0);
    v.password = NULL; /* the sample token */
    T_RC(check_rc(text, &v), 0);
    v.user = "alice@contoso.com";
    T_RC(check_rc(DEFAULT_URL, &v), 0);
    T_RC(check_rc("{user:raw}@{host}", &v), 0); /* not a URL template: anything goes */
}

static void test_password_every_byte(void)
{
    char all[256];
    struct sbuf *pw, *out = sbuf_new(TMPL_OUT_MAX);
    struct tmpl *raw = NULL, *url = NULL;
    struct tmpl_values v = values("u", "h");
    struct buf dec = BUF_INIT(1024);

    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    pw = sbuf_from(all, sizeof(all));
    v.password = pw;
    T_RC(tmpl_compile(&raw, "{password}"), 0);
    T_RC(tmpl_compile(&url, "postgresql://u:{password}@h"), 0);
    T_RC(tmpl_render(out, raw, &v), 0);
    T_EQ_INT(sbuf_len(out), 256);
    T_CHECK(memcmp(sbuf_expose(out), all, 256) == 0);
    sbuf_clear(out);
    T_RC(tmpl_render(out, url, &v), 0);
    T_CHECK(strncmp(sbuf_expose(out), "postgresql://u:%00%01%02", 24) == 0);
    T_CHECK(strstr(sbuf_expose(out), "-.%2F0123456789%3A") != NULL);
    T_CHECK(strstr(sbuf_expose(out), "~%7F%80") != NULL);
    T_CHECK(strstr(sbuf_expose(out), "%FE%FF@h") != NULL);
    T_RC(url_decode(&dec, sbuf_expose(out) + 15, sbuf_len(out) - 15 - 2), 0);
    T_EQ_INT(dec.len, 256);
    T_CHECK(memcmp(dec.ptr, all, 256) == 0);
    /* Every byte class is harmless in a URL template once encoded... */
    T_RC(tmpl_check(url, &v), 0);
    /* ...and a raw one is caught. */
    buf_release(&dec);
    tmpl_free(url);
    url = NULL;
    T_RC(tmpl_compile(&url, "postgresql://u:{password:raw}@h"), 0);
    T_RC(tmpl_check(url, &v), ERR_INVALID);
    sbuf_free(pw);
    sbuf_free(out);
    tmpl_free(raw);
    tmpl_free(url);
}

static void test_values_are_not_expanded(void)
{
    struct tmpl_values v = values("{password}", "db.example.com");

    v.database = "{{user}}";
    T_EQ_STR(render("{user}/{database}", &v), "{password}/{{user}}");
    T_EQ_STR(render("postgresql://{user}@{host}/{database}", &v),
             "postgresql://%7Bpassword%7D@db.example.com/%7B%7Buser%7D%7D");
}

static void test_control_characters(void)
{
    struct tmpl_values v = values("a", "h");
    char c[4] = { 'a', 0, 'b', 0 };

    T_EQ_STR(render("a\n{user}\tb\r\n", &v), "a\na\tb\r\n");
    for (int i = 1; i < 0x20; i++) {
        if (i == '\t' || i == '\n' || i == '\r')
            continue;
        c[1] = (char)i;
        T_RC(compile_rc(c, NULL), ERR_INVALID);
    }
    T_RC(compile_rc("a\x7f", NULL), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "control character at offset 1") != NULL);
}

static void test_sizes(void)
{
    char *big = malloc(TMPL_TEXT_MAX + 2);
    struct buf many = BUF_INIT(1024);
    struct tmpl *t = NULL;
    struct tmpl_values v = values("a", "h");
    struct sbuf *small = sbuf_new(10);

    T_RC(compile_rc("", NULL), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "empty") != NULL);
    memset(big, 'x', TMPL_TEXT_MAX + 1);
    big[TMPL_TEXT_MAX] = '\0';
    T_RC(compile_rc(big, NULL), 0);
    big[TMPL_TEXT_MAX] = 'x';
    big[TMPL_TEXT_MAX + 1] = '\0';
    T_RC(compile_rc(big, NULL), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "over 4096") != NULL);
    /* 8 tokens of the sample size fill TMPL_OUT_MAX exactly; 9 do not fit. */
    for (int i = 0; i < 8; i++)
        buf_addstr(&many, "{password}");
    T_RC(compile_rc(many.ptr, NULL), 0);
    buf_addstr(&many, "{password}");
    T_RC(compile_rc(many.ptr, NULL), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "renders to more than") != NULL);
    /* The arithmetic matches rendering a real token of that size. */
    {
        char *jwt = malloc(TMPL_SAMPLE_PASSWORD_LEN);
        struct sbuf *pw, *out = sbuf_new(TMPL_OUT_MAX);
        memset(jwt, 'A', TMPL_SAMPLE_PASSWORD_LEN);
        jwt[100] = jwt[200] = '.';
        pw = sbuf_from(jwt, TMPL_SAMPLE_PASSWORD_LEN);
        v.password = pw;
        T_RC(tmpl_compile(&t, "postgresql://u:{password}@h/{password}{password}{password}"), 0);
        T_RC(tmpl_check(t, &v), 0);
        tmpl_free(t);
        t = NULL;
        T_RC(tmpl_compile(&t, "{password}{password}{password}{password}{password}{password}"
                              "{password}{password}"), 0);
        T_RC(tmpl_render(out, t, &v), 0);
        T_EQ_INT(sbuf_len(out), TMPL_OUT_MAX);
        T_RC(tmpl_render(out, t, &v), ERR_TOOBIG);
        tmpl_free(t);
        t = NULL;
        sbuf_free(out);
        sbuf_free(pw);
        free(jwt);
        v = values("a", "h");
    }
    T_RC(tmpl_compile(&t, "{user}{password}"), 0);
    T_RC(tmpl_render(small, t, &v), ERR_TOOBIG);
    free(big);
    buf_release(&many);
    tmpl_free(t);
    sbuf_free(small);
}

static void test_missing_values(void)
{
    struct tmpl_values v = values("a", "h");

    v.password = NULL;
    T_EQ_STR(render("{password}", &v), "ERR: no value for {password}");
    v = values(NULL, "h");
    T_EQ_STR(render("{user}", &v), "ERR: no value for {user}");
    v = values("a", NULL);
    T_EQ_STR(render("{host}", &v), "ERR: no value for {host}");
    v = values("a", "h");
    v.database = NULL;
    T_EQ_STR(render("{database}", &v), "ERR: no value for {database}");
    v.database = "d";
    v.sslmode = NULL;
    T_EQ_STR(render("{sslmode}", &v), "ERR: no value for {sslmode}");
    T_EQ_STR(render("{user}", &v), "a"); /* unused NULLs are fine */
    tmpl_free(NULL);
}

static void test_render_appends(void)
{
    struct sbuf *out = sbuf_from("x=", 2), *grown = sbuf_new(100);
    struct tmpl *t = NULL;
    struct tmpl_values v = values("a", "h");

    sbuf_addsb(grown, out);
    T_RC(tmpl_compile(&t, "{user}"), 0);
    T_RC(tmpl_render(grown, t, &v), 0);
    T_EQ_STR(sbuf_expose(grown), "x=a");
    sbuf_free(out);
    sbuf_free(grown);
    tmpl_free(t);
}

int main(void)
{
    token = sbuf_from(TOKEN, strlen(TOKEN));
    T_RUN(test_raw_template);
    T_RUN(test_url_template);
    T_RUN(test_ipv6_host);
    T_RUN(test_modifiers);
    T_RUN(test_braces);
    T_RUN(test_bad_placeholders);
    T_RUN(test_placeholder_in_message_is_tamed);
    T_RUN(test_url_detection);
    T_RUN(test_url_validity);
    T_RUN(test_check_with_values);
    T_RUN(test_password_every_byte);
    T_RUN(test_values_are_not_expanded);
    T_RUN(test_control_characters);
    T_RUN(test_sizes);
    T_RUN(test_missing_values);
    T_RUN(test_render_appends);
    sbuf_free(token);
    return t_done();
}
