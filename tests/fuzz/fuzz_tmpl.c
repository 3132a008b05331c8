/* Templates (rot/tmpl.h). The input is NUL-separated: the template text, then optionally
 * user, host, database, sslmode and port values (missing ones take sample values).
 * Invariants: compile gives 0 or ERR_INVALID with a one-line message; a compiled template
 * keeps its text, renders with the sample values and a token (0, never ERR_INVALID), renders
 * with any non-NULL values (0 or ERR_TOOBIG), renders with no values only when it has no
 * placeholder that needs one, writes the token wherever it has {password}; tmpl_check never
 * puts the token, or a value with a non-ASCII byte, into its message. */
#include "base/err.h"
#include "base/sbuf.h"
#include "rot/tmpl.h"
#include "fuzz.h"

static const char canary[] = "eyJhbGciOiJub25lIn0.ZnV6ei1jYW5hcnktcGF5bG9hZA.ZnV6ei1zaWduYXR1cmU";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static bool one_line(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
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

static int render(const struct tmpl *t, const struct tmpl_values *v, bool *has_canary)
{
    struct sbuf *out = sbuf_new(TMPL_OUT_MAX);
    int rc = tmpl_render(out, t, v);

    if (has_canary)
        *has_canary = rc == 0 && strstr(sbuf_expose(out), canary) != NULL;
    sbuf_free(out);
    return rc;
}

static void check_compiled(const struct tmpl *t, const char *text, const struct tmpl_values *fv)
{
    static const struct tmpl_values none = { NULL, NULL, NULL, 5432, NULL, NULL };
    struct sbuf *pw = sbuf_from(canary, sizeof(canary) - 1);
    struct tmpl_values sample = { "sample-user", pw, "db.example.com", 5432, "postgres",
                                  "require" };
    struct tmpl_values vals = *fv;
    bool has_canary, needs;
    int rc;

    vals.password = pw;
    FUZZ_CHECK(strcmp(tmpl_text(t), text) == 0);
    FUZZ_CHECK(render(t, &sample, &has_canary) == 0);
    FUZZ_CHECK(has_canary == tmpl_uses(t, TMPL_PASSWORD));
    rc = render(t, &vals, NULL);
    FUZZ_CHECK(rc == 0 || rc == ERR_TOOBIG);
    needs = tmpl_uses(t, TMPL_USER) || tmpl_uses(t, TMPL_PASSWORD) || tmpl_uses(t, TMPL_HOST) ||
            tmpl_uses(t, TMPL_DATABASE) || tmpl_uses(t, TMPL_SSLMODE);
    rc = render(t, &none, NULL);
    FUZZ_CHECK(needs ? rc == ERR_INVALID : rc == 0);
    /* tmpl_check with these values, with the token and with the sample token. */
    for (int i = 0; i < 2; i++) {
        const struct tmpl_values *v = i ? &vals : fv;
        rc = tmpl_check(t, v);
        FUZZ_CHECK(rc == 0 || rc == ERR_INVALID);
        if (rc == 0)
            continue;
        FUZZ_CHECK(one_line(err_msg()));
        FUZZ_CHECK(!strstr(err_msg(), canary));
        if (has_non_ascii(v->user))
            FUZZ_CHECK(!strstr(err_msg(), v->user));
        if (has_non_ascii(v->host))
            FUZZ_CHECK(!strstr(err_msg(), v->host));
        if (has_non_ascii(v->database))
            FUZZ_CHECK(!strstr(err_msg(), v->database));
    }
    sbuf_free(pw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_cstr(data, size), *parts[6] = { NULL };
    struct tmpl_values v = { "sample-user", NULL, "db.example.com", 5432, "postgres", "require" };
    struct tmpl *t = NULL;
    size_t n = 0;
    int rc;

    /* The copy keeps the input's NULs: each ends one part. */
    parts[n++] = buf;
    for (size_t i = 0; i < size && n < 6; i++)
        if (data[i] == 0)
            parts[n++] = buf + i + 1;
    if (n > 1)
        v.user = parts[1];
    if (n > 2)
        v.host = parts[2];
    if (n > 3)
        v.database = parts[3];
    if (n > 4)
        v.sslmode = parts[4];
    if (n > 5)
        v.port = (unsigned)strtoul(parts[5], NULL, 10) % 65536u;
    rc = tmpl_compile(&t, parts[0]);
    FUZZ_CHECK(rc == 0 || rc == ERR_INVALID);
    if (rc == 0)
        check_compiled(t, parts[0], &v);
    else
        FUZZ_CHECK(one_line(err_msg()) && !t);
    tmpl_free(t);
    free(buf);
    return 0;
}
