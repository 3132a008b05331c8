/* spec_parse (rot/spec.h) of a Secret's annotations. The input is either a JSON object (it
 * starts with '{': any member types) or, easier for the fuzzer to mutate, one annotation a
 * line, "name=value", where a name without '/' gets the "pgtoken.io/" prefix.
 * Invariants: the result is ERR_INVALID or a complete spec (host, user, database, port in range,
 * outputs sorted with unique keys, one of them with {password}) whose outputs all render with
 * a token; messages are one line and never quote a value that holds a non-ASCII byte (every
 * value spec.h lets a message quote is a short ASCII keyword). */
#include <cJSON.h>

#include "base/err.h"
#include "base/json.h"
#include "base/buf.h"
#include "base/sbuf.h"
#include "base/urlenc.h"
#include "rot/spec.h"
#include "rot/tmpl.h"
#include "fuzz.h"

static const char canary[] = "eyJhbGciOiJub25lIn0.ZnV6ei1jYW5hcnktcGF5bG9hZA.ZnV6ei1zaWduYXR1cmU";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static cJSON *from_lines(const char *s, size_t n)
{
    cJSON *obj = cJSON_CreateObject();
    const char *end = s + n;

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s)), *eol = nl ? nl : end;
        const char *eq = memchr(s, '=', (size_t)(eol - s));
        if (eq) {
            size_t klen = (size_t)(eq - s);
            bool prefix = !memchr(s, '/', klen);
            char *key = malloc(klen + 12), *val = fuzz_cstr((const uint8_t *)eq + 1,
                                                          (size_t)(eol - eq - 1));
            FUZZ_CHECK(key);
            snprintf(key, klen + 12, "%s%.*s", prefix ? "pgtoken.io/" : "", (int)klen, s);
            cJSON_AddStringToObject(obj, key, val);
            free(val);
            free(key);
        }
        s = eol + 1;
    }
    return obj;
}

static bool ascii_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool has_non_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

static void check_failure(const cJSON *ann)
{
    const char *msg = err_msg();
    const cJSON *it;
    bool names_ok = true;

    cJSON_ArrayForEach(it, ann) names_ok = names_ok && it->string && ascii_printable(it->string);
    if (!names_ok)
        return; /* the API server allows no such annotation name */
    for (const char *p = msg; *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20);
    cJSON_ArrayForEach(it, ann)
    {
        if (cJSON_IsString(it) && strlen(it->valuestring) >= 2 && has_non_ascii(it->valuestring))
            FUZZ_CHECK(!strstr(msg, it->valuestring));
    }
}

/* A .pgpass line as libpq reads it: five ':'-separated fields, '\\' escaping the next byte,
 * ending in a newline; the fields must be host, port, database, user and password. */
static void check_pgpass(const struct spec *s, size_t i)
{
    static const char pw_text[] = "pa:ss\\wo:rd";
    struct sbuf *pw = sbuf_from(pw_text, sizeof(pw_text) - 1), *out = NULL;
    char fields[5][8192], port[16];
    const char *p;
    size_t f = 0, n = 0;

    FUZZ_CHECK(spec_render(&out, s, i, pw) == 0);
    p = sbuf_expose(out);
    FUZZ_CHECK(sbuf_len(out) >= 1 && p[sbuf_len(out) - 1] == '\n');
    for (; *p && *p != '\n'; p++) {
        if (*p == ':') {
            fields[f][n] = '\0';
            FUZZ_CHECK(++f < 5);
            n = 0;
            continue;
        }
        if (*p == '\\' && p[1])
            p++;
        FUZZ_CHECK(n + 1 < sizeof(fields[0]));
        fields[f][n++] = *p;
    }
    fields[f][n] = '\0';
    FUZZ_CHECK(f == 4 && p[0] == '\n' && p[1] == '\0');
    snprintf(port, sizeof(port), "%u", s->port);
    FUZZ_CHECK(!strcmp(fields[0], s->host) && !strcmp(fields[1], port) &&
               !strcmp(fields[2], s->database) && !strcmp(fields[3], s->user) &&
               !strcmp(fields[4], pw_text));
    sbuf_free(out);
    sbuf_free(pw);
}

/* url_decode of s[0..n) as a new string; NULL when it is not valid percent-encoding. */
static char *decoded(const char *s, size_t n)
{
    struct buf b = BUF_INIT(SIZE_MAX);

    if (url_decode(&b, s, n) < 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b, NULL);
}

/* A DATABASE_URL of the url or prisma preset read back as a client would, with a password that
 * needs encoding: every part decodes to the spec's value (an IPv6 host in brackets). */
static void check_url(const struct spec *s, size_t i)
{
    static const char head[] = "postgresql://{user}:{password}@{host}:{port}/{database}?sslmode=";
    static const char pw_text[] = "p@ss:w/rd?#%[] \xc3\xa9";
    const char *text = tmpl_text(s->outputs[i].tmpl), *rest;
    struct sbuf *pw = sbuf_from(pw_text, sizeof(pw_text) - 1), *out = NULL;
    const char *p, *colon, *at, *host_end, *slash, *q;
    char *user, *pass, *db, port[16];
    bool v6 = strchr(s->host, ':') != NULL;

    /* The presets' URLs (and templates written like them), not other templates: a {user:raw}
     * in a query may hold an '@' that no client would read as the userinfo's. */
    if (strncmp(text, head, sizeof(head) - 1))
        goto out;
    rest = text + sizeof(head) - 1;
    if (strchr(rest, '{') && strcmp(rest, "{sslmode}"))
        goto out;
    FUZZ_CHECK(spec_render(&out, s, i, pw) == 0);
    p = sbuf_expose(out);
    FUZZ_CHECK(!strncmp(p, "postgresql://", 13));
    p += 13;
    FUZZ_CHECK((colon = strchr(p, ':')) && (at = strchr(colon, '@')) && !strchr(at + 1, '@'));
    if (v6) {
        FUZZ_CHECK((host_end = strchr(at, ']')) != NULL);
        host_end++;
    } else {
        host_end = strchr(at + 1, ':');
    }
    FUZZ_CHECK(host_end && *host_end == ':' && (slash = strchr(host_end, '/')) &&
               (q = strchr(slash, '?')));
    user = decoded(p, (size_t)(colon - p));
    pass = decoded(colon + 1, (size_t)(at - colon - 1));
    db = decoded(slash + 1, (size_t)(q - slash - 1));
    snprintf(port, sizeof(port), "%u", s->port);
    FUZZ_CHECK(user && !strcmp(user, s->user) && pass && !strcmp(pass, sbuf_expose(pw)) && db &&
               !strcmp(db, s->database));
    if (v6)
        FUZZ_CHECK(at[1] == '[' && !strncmp(at + 2, s->host, strlen(s->host)) &&
                   at[2 + strlen(s->host)] == ']');
    else
        FUZZ_CHECK((size_t)(host_end - at - 1) == strlen(s->host) &&
                   !strncmp(at + 1, s->host, strlen(s->host)));
    FUZZ_CHECK((size_t)(slash - host_end - 1) == strlen(port) &&
               !strncmp(host_end + 1, port, strlen(port)));
    FUZZ_CHECK(!strncmp(q, "?sslmode=", 9));
    free(db);
    free(pass);
    free(user);
out:
    sbuf_free(out);
    sbuf_free(pw);
}

static void check_spec(const struct spec *s)
{
    struct sbuf *pw = sbuf_from(canary, sizeof(canary) - 1);
    char h1[17], h2[17];
    bool has_pw = false;

    FUZZ_CHECK(s->host && *s->host && s->user && *s->user && s->database && *s->database);
    FUZZ_CHECK(s->port >= 1 && s->port <= 65535);
    FUZZ_CHECK(s->n_outputs >= 1);
    FUZZ_CHECK(s->refresh_ratio >= 0 && s->refresh_ratio < 1);
    FUZZ_CHECK(s->n_restarts <= SPEC_RESTARTS_MAX);
    for (size_t i = 0; i < s->n_outputs; i++) {
        struct sbuf *out = NULL;
        if (i)
            FUZZ_CHECK(strcmp(s->outputs[i - 1].key, s->outputs[i].key) < 0);
        FUZZ_CHECK(spec_render(&out, s, i, pw) == 0);
        FUZZ_CHECK(sbuf_len(out) <= TMPL_OUT_MAX);
        has_pw = has_pw || tmpl_uses(s->outputs[i].tmpl, TMPL_PASSWORD);
        sbuf_free(out);
        if (s->outputs[i].escape == SPEC_ESCAPE_PGPASS)
            check_pgpass(s, i);
        check_url(s, i);
    }
    FUZZ_CHECK(has_pw);
    spec_hash(h1, s);
    spec_hash(h2, s);
    FUZZ_CHECK(strlen(h1) == 16 && strcmp(h1, h2) == 0);
    sbuf_free(pw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spec s = SPEC_INIT;
    cJSON *ann = NULL;
    int rc;

    if (size && data[0] == '{') {
        if (json_parse(&ann, (const char *)data, size, 1u << 20) < 0)
            return 0;
    } else {
        ann = from_lines((const char *)data, size);
    }
    rc = spec_parse(&s, ann);
    FUZZ_CHECK(rc == 0 || rc == ERR_INVALID);
    if (rc == 0)
        check_spec(&s);
    else
        check_failure(ann);
    spec_release(&s);
    cJSON_Delete(ann);
    return 0;
}
