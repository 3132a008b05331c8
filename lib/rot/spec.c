#include "rot/spec.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/sha256.h"
#include "kube/secret.h"
#include "base/banned.h"

#define PREFIX_LEN (sizeof(SPEC_PREFIX) - 1)
#define SHOWN_MAX 64
#define DEFAULT_PORT 5432u
#define DEFAULT_DATABASE "postgres"
#define RATIO_DIGITS_MAX 9

enum {
    FMT_URL = 1u << 0,
    FMT_PRISMA = 1u << 1,
    FMT_PREFECT = 1u << 2,
    FMT_PGENV = 1u << 3,
    FMT_PGPASS = 1u << 4,
    FMT_JDBC = 1u << 5,
};

/* State of one spec_parse: the spec being built and what has been seen. */
struct ctx {
    struct spec *s;
    unsigned seen;    /* bit i: fields[i] was given */
    unsigned formats; /* FMT_* bits */
    bool has_format;
    size_t n_templates;
};

typedef int (*field_fn)(struct ctx *c, const char *name, const char *v);

/* One key of a preset. Its text may depend on the sslmode, because some clients spell TLS
 * their own way: text[m] is the text for enum spec_sslmode m. A key whose text does not
 * depend on it gives text[0] only; one that does gives all three. */
struct preset_out {
    const char *key;
    const char *text[3];
    enum spec_escape escape;
};

struct preset {
    const char *name;
    unsigned bit;
    const struct preset_out *outs;
    size_t n_outs;
};

#define PG_URL "postgresql://{user}:{password}@{host}:{port}/{database}"
#define ASYNCPG_URL "postgresql+asyncpg://{user}:{password}@{host}:{port}/{database}"
#define PREFECT_TLS "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_"

static const struct preset_out url_outs[] = {
    { "DATABASE_URL", { PG_URL "?sslmode={sslmode}" }, SPEC_ESCAPE_NONE },
    { "password", { "{password}" }, SPEC_ESCAPE_NONE },
};

/* node-postgres 8 (under @prisma/adapter-pg) takes require and verify-ca as verify-full and
 * warns that pg 9 will switch to libpq's meaning. So the value says what it means in both:
 * require as libpq's (TLS, no verification) with uselibpqcompat=true; verify-ca as
 * verify-full, because node-postgres can check a chain without the host name only against
 * a CA file named in the URL (sslrootcert), which the preset cannot know. verify-full
 * checks against Node's CA store (plus NODE_EXTRA_CA_CERTS). */
static const struct preset_out prisma_outs[] = {
    { "DATABASE_URL",
      { PG_URL "?sslmode=require&uselibpqcompat=true", PG_URL "?sslmode=verify-full",
        PG_URL "?sslmode=verify-full" },
      SPEC_ESCAPE_NONE },
};

/* Prefect 3 (SQLAlchemy 2 + asyncpg) hands URL query parameters to asyncpg.connect as
 * keyword arguments, so sslmode= breaks it. Verification goes through Prefect's TLS
 * settings, which build a context from the system CA store (or ..._TLS_CA_FILE) that always
 * checks the chain; require, which checks nothing, is asyncpg's own ssl=require. All the
 * keys are always written, so changing the sslmode never leaves a stale one behind.
 * connection-string is the same URL under the key Prefect's own Helm chart (prefect-server)
 * reads from an existing Secret into PREFECT_SERVER_DATABASE_CONNECTION_URL; with envFrom
 * it is one more variable, a name Kubernetes accepts and Prefect ignores. */
static const struct preset_out prefect_outs[] = {
    { "PREFECT_SERVER_DATABASE_CONNECTION_URL",
      { ASYNCPG_URL "?ssl=require", ASYNCPG_URL, ASYNCPG_URL }, SPEC_ESCAPE_NONE },
    { PREFECT_TLS "CHECK_HOSTNAME", { "false", "false", "true" }, SPEC_ESCAPE_NONE },
    { PREFECT_TLS "ENABLED", { "false", "true", "true" }, SPEC_ESCAPE_NONE },
    { "connection-string", { ASYNCPG_URL "?ssl=require", ASYNCPG_URL, ASYNCPG_URL },
      SPEC_ESCAPE_NONE },
};

static const struct preset_out pgenv_outs[] = {
    { "PGDATABASE", { "{database}" }, SPEC_ESCAPE_NONE },
    { "PGHOST", { "{host}" }, SPEC_ESCAPE_NONE },
    { "PGPASSWORD", { "{password}" }, SPEC_ESCAPE_NONE },
    { "PGPORT", { "{port}" }, SPEC_ESCAPE_NONE },
    { "PGSSLMODE", { "{sslmode}" }, SPEC_ESCAPE_NONE },
    { "PGUSER", { "{user}" }, SPEC_ESCAPE_NONE },
};

static const struct preset_out pgpass_outs[] = {
    { "pgpass", { "{host}:{port}:{database}:{user}:{password}\n" }, SPEC_ESCAPE_PGPASS },
};

/* pgJDBC decodes the percent-encoded database name; user and password go separately. */
static const struct preset_out jdbc_outs[] = {
    { "JDBC_PASSWORD", { "{password}" }, SPEC_ESCAPE_NONE },
    { "JDBC_URL", { "jdbc:postgresql://{host}:{port}/{database}?sslmode={sslmode}" },
      SPEC_ESCAPE_NONE },
    { "JDBC_USER", { "{user}" }, SPEC_ESCAPE_NONE },
};

#define OUTS(a) (a), sizeof(a) / sizeof((a)[0])
static const struct preset presets[] = {
    { "url", FMT_URL, OUTS(url_outs) },
    { "prisma", FMT_PRISMA, OUTS(prisma_outs) },
    { "prefect", FMT_PREFECT, OUTS(prefect_outs) },
    { "pgenv", FMT_PGENV, OUTS(pgenv_outs) },
    { "pgpass", FMT_PGPASS, OUTS(pgpass_outs) },
    { "jdbc", FMT_JDBC, OUTS(jdbc_outs) },
};
#define N_PRESETS (sizeof(presets) / sizeof(presets[0]))

/* ---- text helpers ---- */

/* s[0..n) for a message: at most SHOWN_MAX bytes, non-printable bytes as '?'. Used only for
 * annotation names, never for values. */
static void shown(char out[SHOWN_MAX + 4], const char *s, size_t n)
{
    size_t i, k = n > SHOWN_MAX ? SHOWN_MAX : n;

    for (i = 0; i < k; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > k) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* " \"word\"" when s[0..n) is a short keyword (letters, digits, '-', '.', '_'), else "": only
 * such values are quoted in messages, so a mistyped keyword is shown and nothing else is. */
static const char *quoted_word(char out[SHOWN_MAX + 4], const char *s, size_t n)
{
    static const char word[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._";
    size_t k = 0;

    while (k < n && s[k] && strchr(word, s[k]))
        k++;
    out[0] = '\0';
    if (n && k == n && n <= SHOWN_MAX - 3)
        snprintf(out, SHOWN_MAX + 4, " \"%.*s\"", (int)n, s);
    return out;
}

/* Length of the UTF-8 sequence at s[0..n), or 0 when it is not valid (overlong forms,
 * surrogates and code points past U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t len;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    cp = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_seq((const unsigned char *)s + i, n - i)))
            return false;
    return true;
}

/* C0, DEL and C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F) control characters. */
static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            return true;
    return false;
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* A Kubernetes object name: a DNS-1123 subdomain. */
static bool dns1123_subdomain(const char *s, size_t n)
{
    if (n == 0 || n > 253 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && (!is_lower_alnum(s[i - 1]) || !is_lower_alnum(s[i + 1])))
            return false;
        if (!is_lower_alnum(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
    }
    return true;
}

/* A host name (RFC 1123): labels of 1..63 letters, digits and '-', not at a label's ends. */
static bool host_name(const char *s, size_t n)
{
    size_t label = 0;

    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return false;
            label = 0;
        } else if (is_alnum(s[i]) || s[i] == '-') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* Splits off the next comma-separated item of *p with spaces trimmed; false past the end. */
static bool next_item(const char **p, const char **item, size_t *len)
{
    const char *s = *p, *comma;
    size_t n;

    if (!s)
        return false;
    while (*s == ' ')
        s++;
    comma = strchr(s, ',');
    n = comma ? (size_t)(comma - s) : strlen(s);
    while (n && s[n - 1] == ' ')
        n--;
    *item = s;
    *len = n;
    *p = comma ? comma + 1 : NULL;
    return true;
}

static bool word_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && !memcmp(s, word, n);
}

/* ---- one function per annotation ---- */

static int parse_name(char **out, const char *name, const char *v)
{
    size_t n = strlen(v);

    if (n == 0)
        return err_set(ERR_INVALID, "%s: must not be empty", name);
    if (n > SPEC_NAME_MAX)
        return err_set(ERR_INVALID, "%s: longer than %d bytes (PostgreSQL's limit for a name)",
                       name, SPEC_NAME_MAX);
    if (has_control(v))
        return err_set(ERR_INVALID, "%s: has a control character", name);
    if (v[0] == ' ' || v[n - 1] == ' ')
        return err_set(ERR_INVALID, "%s: begins or ends with a space", name);
    *out = xstrdup(v);
    return 0;
}

static int field_user(struct ctx *c, const char *name, const char *v)
{
    return parse_name(&c->s->user, name, v);
}

static int field_database(struct ctx *c, const char *name, const char *v)
{
    return parse_name(&c->s->database, name, v);
}

static int host_ip(char **out, const char *name, const char *v, size_t n, int af)
{
    char ip[64];
    unsigned char bin[16];

    if (n >= sizeof(ip))
        n = sizeof(ip) - 1; /* too long for an address: inet_pton refuses the prefix too */
    memcpy(ip, v, n);
    ip[n] = '\0';
    if (inet_pton(af, ip, bin) == 1) {
        *out = xstrdup(ip);
        return 0;
    }
    if (af == AF_INET)
        return err_set(ERR_INVALID, "%s: not an IPv4 address", name);
    return err_set(ERR_INVALID, "%s: not an IPv6 address (':' is allowed only in one; the port "
                   "goes in pgtoken.io/port)", name);
}

static const char *host_hint(const char *v)
{
    if (strstr(v, "://") || strchr(v, '/'))
        return " (the host only, not a URL or path)";
    if (strchr(v, '@'))
        return " (the user goes in pgtoken.io/user)";
    if (strchr(v, ' ') || has_control(v))
        return " (no spaces or control characters)";
    return "";
}

static int field_host(struct ctx *c, const char *name, const char *v)
{
    size_t n = strlen(v);

    if (n >= 2 && v[0] == '[' && v[n - 1] == ']')
        return host_ip(&c->s->host, name, v + 1, n - 2, AF_INET6);
    if (strchr(v, ':') && !strpbrk(v, "/@[] "))
        return host_ip(&c->s->host, name, v, n, AF_INET6);
    if (n && strspn(v, "0123456789.") == n)
        return host_ip(&c->s->host, name, v, n, AF_INET);
    if (!host_name(v, n))
        return err_set(ERR_INVALID, "%s: not a host name, IPv4 or IPv6 address: labels of "
                       "letters, digits and '-' joined by '.'%s", name, host_hint(v));
    c->s->host = xstrdup(v);
    return 0;
}

static int field_port(struct ctx *c, const char *name, const char *v)
{
    size_t n = strlen(v);
    unsigned long p = 0;

    if (n >= 1 && n <= 5 && strspn(v, "0123456789") == n)
        for (size_t i = 0; i < n; i++)
            p = p * 10 + (unsigned long)(v[i] - '0');
    if (p < 1 || p > 65535)
        return err_set(ERR_INVALID, "%s: must be a number from 1 to 65535 (digits only)", name);
    c->s->port = (unsigned)p;
    return 0;
}

static int field_sslmode(struct ctx *c, const char *name, const char *v)
{
    char what[SHOWN_MAX + 4];

    for (int m = SPEC_SSL_REQUIRE; m <= SPEC_SSL_VERIFY_FULL; m++) {
        if (!strcmp(v, spec_sslmode_name((enum spec_sslmode)m))) {
            c->s->sslmode = (enum spec_sslmode)m;
            return 0;
        }
    }
    if (!strcmp(v, "disable") || !strcmp(v, "allow") || !strcmp(v, "prefer"))
        return err_set(ERR_INVALID, "%s: %s is refused: Azure Database for PostgreSQL requires "
                       "TLS and the token is a password that must not travel in clear; use "
                       "require, verify-ca or verify-full", name, v);
    return err_set(ERR_INVALID, "%s: unknown sslmode%s (use require, verify-ca or verify-full)",
                   name, quoted_word(what, v, strlen(v)));
}

static int field_login_check(struct ctx *c, const char *name, const char *v)
{
    char what[SHOWN_MAX + 4];

    for (int m = SPEC_LOGIN_REQUIRED; m <= SPEC_LOGIN_OFF; m++) {
        if (!strcmp(v, spec_login_check_name((enum spec_login_check)m))) {
            c->s->login_check = (enum spec_login_check)m;
            return 0;
        }
    }
    return err_set(ERR_INVALID, "%s: unknown value%s (use required, best-effort or off)", name,
                   quoted_word(what, v, strlen(v)));
}

/* "0.5", ".25": a decimal fraction strictly between 0 and 1, parsed without the locale. */
static int field_refresh_ratio(struct ctx *c, const char *name, const char *v)
{
    const char *p = v + (v[0] == '0');
    uint64_t num = 0, den = 1;
    size_t digits = 0;

    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9' && digits < RATIO_DIGITS_MAX; p++, digits++) {
            num = num * 10 + (uint64_t)(*p - '0');
            den *= 10;
        }
    if (*p || digits == 0 || num == 0)
        return err_set(ERR_INVALID, "%s: must be a decimal between 0 and 1 such as 0.5 "
                       "(at most %d digits after the point)", name, RATIO_DIGITS_MAX);
    c->s->refresh_ratio = (double)num / (double)den;
    return 0;
}

static int add_restart(struct spec *s, enum spec_restart_kind kind, const char *n, size_t len)
{
    for (size_t i = 0; i < s->n_restarts; i++)
        if (s->restarts[i].kind == kind && word_is(n, len, s->restarts[i].name))
            return 0;
    if (s->n_restarts == SPEC_RESTARTS_MAX)
        return err_set(ERR_INVALID, "more than %d entries", SPEC_RESTARTS_MAX);
    s->restarts = xrealloc(s->restarts, (s->n_restarts + 1) * sizeof(*s->restarts));
    s->restarts[s->n_restarts++] = (struct spec_restart){ kind, xstrndup(n, len) };
    return 0;
}

static int restart_item(struct spec *s, const char *it, size_t n)
{
    const char *slash = memchr(it, '/', n);
    size_t kind_len = slash ? (size_t)(slash - it) : 0, name_len = n - kind_len - 1;
    enum spec_restart_kind kind;

    if (slash && word_is(it, kind_len, "deployment"))
        kind = SPEC_RESTART_DEPLOYMENT;
    else if (slash && word_is(it, kind_len, "statefulset"))
        kind = SPEC_RESTART_STATEFULSET;
    else
        return err_set(ERR_INVALID, "entries are deployment/NAME or statefulset/NAME");
    if (!dns1123_subdomain(slash + 1, name_len))
        return err_set(ERR_INVALID, "%s name is not a DNS-1123 name (lower-case letters, "
                       "digits, '-' and '.'; at most 253)", spec_restart_kind_name(kind));
    return add_restart(s, kind, slash + 1, name_len);
}

static int field_restart(struct ctx *c, const char *name, const char *v)
{
    const char *p = v, *it;
    size_t n;
    int rc = 0;

    while (rc == 0 && next_item(&p, &it, &n))
        rc = n ? restart_item(c->s, it, n) : err_set(ERR_INVALID, "empty entry");
    return rc < 0 ? err_wrap(rc, "%s", name) : 0;
}

static int field_service_account(struct ctx *c, const char *name, const char *v)
{
    if (!dns1123_subdomain(v, strlen(v)))
        return err_set(ERR_INVALID, "%s: must be a ServiceAccount name in the Secret's "
                       "namespace (a DNS-1123 name: lower-case letters, digits, '-' and '.'; "
                       "no namespace, '/' or ':')", name);
    c->s->service_account = xstrdup(v);
    return 0;
}

/* Only compared with the value last handled, never shown: any short text without control
 * characters, so that `date -u +%Y-%m-%dT%H:%M:%SZ` or a counter both work. */
static int field_force_rotate(struct ctx *c, const char *name, const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > SPEC_FORCE_MAX || has_control(v))
        return err_set(ERR_INVALID, "%s: must be 1 to %d bytes without control characters, "
                       "such as a time stamp", name, SPEC_FORCE_MAX);
    c->s->force_rotate = xstrdup(v);
    return 0;
}

static int format_item(struct ctx *c, const char *name, const char *it, size_t n)
{
    char what[SHOWN_MAX + 4];

    for (size_t i = 0; i < N_PRESETS; i++) {
        if (word_is(it, n, presets[i].name)) {
            c->formats |= presets[i].bit;
            return 0;
        }
    }
    if (n == 0)
        return err_set(ERR_INVALID, "%s: empty entry", name);
    return err_set(ERR_INVALID, "%s: unknown format%s (supported: " SPEC_FORMATS ")", name,
                   quoted_word(what, it, n));
}

static int field_format(struct ctx *c, const char *name, const char *v)
{
    const char *p = v, *it;
    size_t n;
    int rc = 0;

    c->has_format = true;
    while (rc == 0 && next_item(&p, &it, &n))
        rc = format_item(c, name, it, n);
    return rc;
}

static const struct {
    const char *name;
    field_fn fn;
} fields[] = {
    { "host", field_host },
    { "user", field_user },
    { "database", field_database },
    { "port", field_port },
    { "sslmode", field_sslmode },
    { "format", field_format },
    { "login-check", field_login_check },
    { "refresh-ratio", field_refresh_ratio },
    { "restart", field_restart },
    { "service-account", field_service_account },
    { "force-rotate", field_force_rotate },
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

/* ---- templates and outputs ---- */

/* A Secret data key (as Kubernetes checks it), not in our own "pgtoken" namespace. */
static bool key_valid(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > SPEC_KEY_MAX || strspn(k, "-._abcdefghijklmnopqrstuvwxyz"
                                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n)
        return false;
    return strcmp(k, ".") && strncmp(k, "..", 2) && strncasecmp(k, "pgtoken", 7);
}

static struct spec_output *find_output(const struct spec *s, const char *key)
{
    for (size_t i = 0; i < s->n_outputs; i++)
        if (!strcmp(s->outputs[i].key, key))
            return &s->outputs[i];
    return NULL;
}

/* Compiles text into a new output key; name is the annotation to blame. */
static int add_output(struct spec *s, const char *name, const char *key, const char *text,
                      enum spec_escape escape)
{
    struct tmpl *t = NULL;
    int rc;

    if ((rc = tmpl_compile(&t, text)) < 0)
        return err_wrap(rc, "%s", name);
    s->outputs = xrealloc(s->outputs, (s->n_outputs + 1) * sizeof(*s->outputs));
    s->outputs[s->n_outputs++] = (struct spec_output){ xstrdup(key), t, escape };
    return 0;
}

static int add_template(struct ctx *c, const char *name, const char *key, const char *v)
{
    char what[SHOWN_MAX + 4];

    if (!key_valid(key)) {
        shown(what, name, strlen(name));
        return err_set(ERR_INVALID, "%s: the key after template. must be 1..%d of "
                       "[-._a-zA-Z0-9], not \".\" or start with \"..\" or \"pgtoken\"", what,
                       SPEC_KEY_MAX);
    }
    if (c->n_templates == SPEC_OUTPUTS_MAX)
        return err_set(ERR_INVALID, "%s: more than %d template annotations", name,
                       SPEC_OUTPUTS_MAX);
    if (find_output(c->s, key))
        return err_set(ERR_INVALID, "%s: given twice", name);
    c->n_templates++;
    return add_output(c->s, name, key, v, SPEC_ESCAPE_NONE);
}

static const char *preset_text(const struct preset_out *o, enum spec_sslmode m)
{
    return o->text[1] ? o->text[m] : o->text[0];
}

/* The preset before preset p (in table order) that is enabled and writes key, or NULL. */
static const struct preset *earlier_writer(unsigned formats, size_t p, const char *key)
{
    for (size_t i = 0; i < p; i++) {
        if (!(presets[i].bit & formats))
            continue;
        for (size_t k = 0; k < presets[i].n_outs; k++)
            if (!strcmp(presets[i].outs[k].key, key))
                return &presets[i];
    }
    return NULL;
}

/* Adds the keys of every enabled preset that no template gave. Two presets that both write a
 * key (url and prisma: DATABASE_URL) must be settled by a template for that key. */
static int add_presets(struct ctx *c)
{
    size_t n_templates = c->s->n_outputs; /* before this, only templates were added */
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < N_PRESETS; i++) {
        if (!(presets[i].bit & c->formats))
            continue;
        for (size_t k = 0; rc == 0 && k < presets[i].n_outs; k++) {
            const struct preset_out *o = &presets[i].outs[k];
            const struct preset *other = earlier_writer(c->formats, i, o->key);
            bool templated = false;

            for (size_t t = 0; t < n_templates; t++)
                templated = templated || !strcmp(c->s->outputs[t].key, o->key);
            if (templated)
                continue;
            if (other)
                rc = err_set(ERR_INVALID, SPEC_PREFIX "format: %s and %s both write %s; keep "
                             "one, or set " SPEC_PREFIX "template.%s", other->name,
                             presets[i].name, o->key, o->key);
            else
                rc = add_output(c->s, SPEC_PREFIX "format", o->key,
                                preset_text(o, c->s->sslmode), o->escape);
        }
    }
    return rc;
}

/* Renders each output with this spec's values and a sample token: catches a {user:raw} with
 * an '@' in a URL, an IPv6 host written raw, an output too large for a Secret. */
static int check_outputs(const struct spec *s)
{
    struct tmpl_values v;
    int rc = 0;
    bool has_password = false;

    spec_values(&v, s, NULL);
    for (size_t i = 0; rc == 0 && i < s->n_outputs; i++) {
        if ((rc = tmpl_check(s->outputs[i].tmpl, &v)) < 0)
            rc = err_wrap(rc, SPEC_PREFIX "template.%s", s->outputs[i].key);
        has_password = has_password || tmpl_uses(s->outputs[i].tmpl, TMPL_PASSWORD);
    }
    if (rc == 0 && !has_password)
        rc = err_set(ERR_INVALID, SPEC_PREFIX "template.*: no template has {password}, so the "
                     "token would not be written");
    return rc;
}

static int cmp_outputs(const void *a, const void *b)
{
    return strcmp(((const struct spec_output *)a)->key, ((const struct spec_output *)b)->key);
}

static int finish(struct ctx *c)
{
    struct spec *s = c->s;
    int rc;

    if (!s->host)
        return err_set(ERR_INVALID, SPEC_PREFIX "host: required");
    if (!s->user)
        return err_set(ERR_INVALID, SPEC_PREFIX "user: required");
    if (!s->database)
        s->database = xstrdup(DEFAULT_DATABASE);
    if (!s->port)
        s->port = DEFAULT_PORT;
    if (!c->has_format && c->n_templates == 0)
        c->formats = FMT_URL;
    if ((rc = add_presets(c)) < 0)
        return rc;
    qsort(s->outputs, s->n_outputs, sizeof(*s->outputs), cmp_outputs);
    return check_outputs(s);
}

/* ---- the loop over annotations ---- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[SHOWN_MAX + 1];

    if (la > SHOWN_MAX || lb > SHOWN_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int unknown_annotation(const char *name, const char *rest)
{
    char what[SHOWN_MAX + 4], head[SHOWN_MAX + 1];
    const char *dot = strchr(rest, '.'), *best = NULL;
    size_t best_d = 3;

    shown(what, name, strlen(name));
    if (!strcmp(rest, "managed"))
        return err_set(ERR_INVALID, "unknown annotation %s (pgtoken.io/managed is a label)", what);
    for (size_t i = 0; i < N_FIELDS; i++) {
        size_t d = edit_distance(rest, fields[i].name);
        if (d < best_d) {
            best_d = d;
            best = fields[i].name;
        }
    }
    if (dot && (size_t)(dot - rest) <= SHOWN_MAX) {
        memcpy(head, rest, (size_t)(dot - rest));
        head[dot - rest] = '\0';
        if (edit_distance(head, "template") < best_d)
            best = "template.KEY";
    }
    if (best)
        return err_set(ERR_INVALID, "unknown annotation %s; did you mean " SPEC_PREFIX "%s?",
                       what, best);
    return err_set(ERR_INVALID, "unknown annotation %s", what);
}

/* v: the annotation's value, NULL when it is not a string. */
static int value_of(const char **out, const char *v, const char *name)
{
    size_t n;

    if (!v)
        return err_set(ERR_INVALID, "%s: must be a string", name);
    n = strlen(v);
    if (n > SPEC_VALUE_MAX)
        return err_set(ERR_INVALID, "%s: longer than %d bytes", name, SPEC_VALUE_MAX);
    if (!utf8_valid(v, n))
        return err_set(ERR_INVALID, "%s: not valid UTF-8", name);
    *out = v;
    return 0;
}

static int field(struct ctx *c, const char *name, const char *rest, const char *value)
{
    const char *v = NULL;
    int rc;

    for (size_t i = 0; i < N_FIELDS; i++) {
        if (strcmp(rest, fields[i].name))
            continue;
        if (c->seen & (1u << i))
            return err_set(ERR_INVALID, "%s: given twice", name);
        c->seen |= 1u << i;
        if ((rc = value_of(&v, value, name)) < 0)
            return rc;
        return fields[i].fn(c, name, v);
    }
    return unknown_annotation(name, rest);
}

/* One annotation (value NULL: not a string). */
static int annotation(struct ctx *c, const char *name, const char *value)
{
    const char *rest, *v = NULL;
    int rc;

    if (!name || strncmp(name, SPEC_PREFIX, PREFIX_LEN))
        return 0;
    rest = name + PREFIX_LEN;
    if (!strncmp(rest, "status.", 7))
        return 0;
    if (strncmp(rest, "template.", 9))
        return field(c, name, rest, value);
    if ((rc = value_of(&v, value, name)) < 0)
        return rc;
    return add_template(c, name, rest + 9, v);
}

void spec_init(struct spec *s)
{
    *s = (struct spec)SPEC_INIT;
}

/* After every annotation went through annotation(): checks the whole and hands it over. */
static int parsed(struct spec *out, struct ctx *c, int rc)
{
    if (rc == 0 && (rc = finish(c)) == 0) {
        *out = *c->s;
        *c->s = (struct spec)SPEC_INIT;
    }
    spec_release(c->s);
    return rc;
}

int spec_parse(struct spec *out, const cJSON *annotations)
{
    struct spec s = SPEC_INIT;
    struct ctx c = { &s, 0, 0, false, 0 };
    const cJSON *item;
    int rc = 0;

    if (annotations && !cJSON_IsObject(annotations))
        rc = err_set(ERR_INVALID, "metadata.annotations is not an object");
    for (item = annotations ? annotations->child : NULL; rc == 0 && item; item = item->next)
        rc = annotation(&c, item->string, cJSON_IsString(item) ? item->valuestring : NULL);
    return parsed(out, &c, rc);
}

struct each_ctx {
    struct ctx *c;
    int rc; /* the first error; the annotations after it are not read */
};

static void each_annotation(void *arg, const char *name, const char *value)
{
    struct each_ctx *e = arg;

    if (e->rc == 0)
        e->rc = annotation(e->c, name, value);
}

int spec_parse_secret(struct spec *out, const struct kube_secret *secret)
{
    struct spec s = SPEC_INIT;
    struct ctx c = { &s, 0, 0, false, 0 };
    struct each_ctx e = { &c, 0 };

    kube_secret_each_annotation(secret, each_annotation, &e);
    return parsed(out, &c, e.rc);
}

void spec_release(struct spec *s)
{
    free(s->host);
    free(s->user);
    free(s->database);
    free(s->service_account);
    free(s->force_rotate);
    for (size_t i = 0; i < s->n_outputs; i++) {
        free(s->outputs[i].key);
        tmpl_free(s->outputs[i].tmpl);
    }
    free(s->outputs);
    for (size_t i = 0; i < s->n_restarts; i++)
        free(s->restarts[i].name);
    free(s->restarts);
    spec_init(s);
}

static void hash_field(struct buf *b, const char *s)
{
    buf_addf(b, "%zu:", strlen(s)); /* length-prefixed: no two specs serialise alike */
    buf_addstr(b, s);
}

void spec_hash(char out[17], const struct spec *s)
{
    struct buf b = BUF_INIT(SIZE_MAX);

    hash_field(&b, "pgtoken-spec-v1");
    hash_field(&b, s->host ? s->host : "");
    buf_addf(&b, "%u;", s->port);
    hash_field(&b, s->database ? s->database : "");
    hash_field(&b, s->user ? s->user : "");
    hash_field(&b, spec_sslmode_name(s->sslmode));
    hash_field(&b, s->service_account ? s->service_account : "");
    buf_addf(&b, "%zu;", s->n_outputs);
    for (size_t i = 0; i < s->n_outputs; i++) {
        hash_field(&b, s->outputs[i].key);
        hash_field(&b, tmpl_text(s->outputs[i].tmpl));
        if (s->outputs[i].escape != SPEC_ESCAPE_NONE) /* absent when none: older hashes hold */
            buf_addf(&b, "e%d;", (int)s->outputs[i].escape);
    }
    sha256_fp(out, b.ptr, b.len);
    buf_release(&b);
}

void spec_values(struct tmpl_values *out, const struct spec *s, const struct sbuf *password)
{
    out->user = s->user;
    out->password = password;
    out->host = s->host;
    out->port = s->port;
    out->database = s->database;
    out->sslmode = spec_sslmode_name(s->sslmode);
}

/* s with each ':' and backslash escaped by a backslash, as libpq reads a .pgpass field. */
static char *pgpass_field(const char *s)
{
    char *out = xmalloc(2 * strlen(s) + 1), *o = out;

    for (; *s; s++) {
        if (*s == ':' || *s == '\\')
            *o++ = '\\';
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

static struct sbuf *pgpass_secret(const struct sbuf *password)
{
    const char *p = sbuf_expose(password);
    size_t n = sbuf_len(password);
    struct sbuf *out = sbuf_new(2 * n + 1);

    /* The cap is twice the input: the appends cannot fail. */
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ':' || p[i] == '\\')
            (void)sbuf_add(out, "\\", 1);
        (void)sbuf_add(out, p + i, 1);
    }
    return out;
}

int spec_render(struct sbuf **out, const struct spec *s, size_t i, const struct sbuf *password)
{
    struct sbuf *b = sbuf_new(TMPL_OUT_MAX), *pw = NULL;
    char *user = NULL, *host = NULL, *database = NULL;
    struct tmpl_values v;
    int rc;

    if (i >= s->n_outputs) {
        rc = err_set(ERR_INVALID, "no output %zu", i);
        goto out;
    }
    spec_values(&v, s, password);
    if (s->outputs[i].escape == SPEC_ESCAPE_PGPASS) {
        v.user = user = pgpass_field(s->user);
        v.host = host = pgpass_field(s->host);
        v.database = database = pgpass_field(s->database);
        if (password)
            v.password = pw = pgpass_secret(password);
    }
    if ((rc = tmpl_render(b, s->outputs[i].tmpl, &v)) < 0)
        goto out;
    *out = b;
    b = NULL;
out:
    free(user);
    free(host);
    free(database);
    sbuf_free(pw);
    sbuf_free(b);
    return rc;
}

const char *spec_sslmode_name(enum spec_sslmode m)
{
    switch (m) {
    case SPEC_SSL_REQUIRE: return "require";
    case SPEC_SSL_VERIFY_CA: return "verify-ca";
    case SPEC_SSL_VERIFY_FULL: return "verify-full";
    }
    return "require";
}

const char *spec_login_check_name(enum spec_login_check c)
{
    switch (c) {
    case SPEC_LOGIN_UNSET: return "";
    case SPEC_LOGIN_REQUIRED: return "required";
    case SPEC_LOGIN_BEST_EFFORT: return "best-effort";
    case SPEC_LOGIN_OFF: return "off";
    }
    return "";
}

const char *spec_restart_kind_name(enum spec_restart_kind k)
{
    return k == SPEC_RESTART_STATEFULSET ? "statefulset" : "deployment";
}
