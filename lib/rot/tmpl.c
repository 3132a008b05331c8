#include "rot/tmpl.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/urlenc.h"
#include "base/banned.h"

#define TMPL_VARS 6
#define SHOWN_MAX 32 /* bytes of a bad placeholder quoted in a message */

enum tmpl_enc { ENC_AUTO, ENC_RAW, ENC_URL };

struct part {
    bool is_var;
    enum tmpl_var var;
    enum tmpl_enc enc;
    size_t off, len; /* a literal: bytes of tmpl.lit */
};

struct tmpl {
    char *text;
    struct buf lit; /* the literal text, braces unescaped */
    struct part *parts;
    size_t n_parts, cap_parts;
    bool url, url_known;
};

static const char *const var_names[TMPL_VARS] = {
    "user", "password", "host", "port", "database", "sslmode",
};

static const struct tmpl_values sample_values = {
    "sample-user", NULL, "db.example.com", 5432, "postgres", "require",
};

/* Copies s[0..n) into out for a message: at most SHOWN_MAX bytes, anything but printable
 * ASCII as '?', so a message stays one readable line. */
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

static int add_literal(struct tmpl *t, char c)
{
    struct part *last = t->n_parts ? &t->parts[t->n_parts - 1] : NULL;
    int rc;

    if ((rc = buf_addch(&t->lit, c)) < 0)
        return rc;
    if (last && !last->is_var) {
        last->len++;
        return 0;
    }
    XGROW(t->parts, t->cap_parts, t->n_parts + 1);
    t->parts[t->n_parts++] = (struct part){ false, TMPL_USER, ENC_AUTO, t->lit.len - 1, 1 };
    return 0;
}

/* The URL-ness of a template is decided by the literal text before its first placeholder. */
static void decide_url(struct tmpl *t)
{
    if (t->url_known)
        return;
    t->url = t->lit.len >= 3 && memmem(t->lit.ptr, t->lit.len, "://", 3) != NULL;
    t->url_known = true;
}

static int unknown_placeholder(const char *s, size_t n, size_t off)
{
    char what[SHOWN_MAX + 4];

    shown(what, s, n);
    return err_set(ERR_INVALID,
                   "unknown placeholder {%s} at offset %zu (use {user} {password} {host} {port} "
                   "{database} {sslmode}, optionally with :raw or :url; {{ and }} for braces)",
                   what, off);
}

/* Resolves "name" or "name:modifier" (s[0..n)) into *var and *enc. */
static int lookup(enum tmpl_var *var, enum tmpl_enc *enc, const char *s, size_t n, size_t off)
{
    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    const char *mod = colon ? colon + 1 : NULL;
    size_t mod_len = colon ? n - name_len - 1 : 0;

    *enc = ENC_AUTO;
    if (mod && mod_len == 3 && !memcmp(mod, "raw", 3))
        *enc = ENC_RAW;
    else if (mod && mod_len == 3 && !memcmp(mod, "url", 3))
        *enc = ENC_URL;
    else if (mod)
        return unknown_placeholder(s, n, off);
    for (int i = 0; i < TMPL_VARS; i++) {
        if (strlen(var_names[i]) == name_len && !memcmp(var_names[i], s, name_len)) {
            *var = (enum tmpl_var)i;
            return 0;
        }
    }
    return unknown_placeholder(s, n, off);
}

/* s[*i] is a '{' that opens a placeholder; on success *i is just past its '}'. */
static int add_placeholder(struct tmpl *t, const char *s, size_t *i)
{
    size_t open = *i, end = open + 1;
    struct part p = { true, TMPL_USER, ENC_AUTO, 0, 0 };
    int rc;

    while (s[end] && s[end] != '}' && s[end] != '{')
        end++;
    if (s[end] == '{')
        return err_set(ERR_INVALID, "'{' inside a placeholder at offset %zu (nested braces; "
                       "write {{ for a literal brace)", end);
    if (!s[end])
        return err_set(ERR_INVALID, "unclosed '{' at offset %zu (write {{ for a literal brace)",
                       open);
    if ((rc = lookup(&p.var, &p.enc, s + open + 1, end - open - 1, open)) < 0)
        return rc;
    decide_url(t);
    XGROW(t->parts, t->cap_parts, t->n_parts + 1);
    t->parts[t->n_parts++] = p;
    *i = end + 1;
    return 0;
}

static int add_char(struct tmpl *t, const char *s, size_t *i)
{
    unsigned char c = (unsigned char)s[*i];

    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
        return err_set(ERR_INVALID, "control character at offset %zu", *i);
    (*i)++;
    return add_literal(t, (char)c);
}

static int parse(struct tmpl *t)
{
    const char *s = t->text;
    size_t i = 0;
    int rc = 0;

    while (rc == 0 && s[i]) {
        if ((s[i] == '{' && s[i + 1] == '{') || (s[i] == '}' && s[i + 1] == '}')) {
            rc = add_literal(t, s[i]);
            i += 2;
        } else if (s[i] == '{') {
            rc = add_placeholder(t, s, &i);
        } else if (s[i] == '}') {
            rc = err_set(ERR_INVALID, "single '}' at offset %zu (write }} for a literal brace)",
                         i);
        } else {
            rc = add_char(t, s, &i);
        }
    }
    decide_url(t);
    return rc;
}

static void resolve_encodings(struct tmpl *t)
{
    for (size_t i = 0; i < t->n_parts; i++)
        if (t->parts[i].is_var && t->parts[i].enc == ENC_AUTO)
            t->parts[i].enc = t->url ? ENC_URL : ENC_RAW;
}

int tmpl_compile(struct tmpl **out, const char *text)
{
    struct tmpl *t = NULL;
    size_t len = strlen(text);
    int rc;

    if (len == 0 || len > TMPL_TEXT_MAX) {
        rc = len ? err_set(ERR_INVALID, "template over %d bytes", TMPL_TEXT_MAX)
                 : err_set(ERR_INVALID, "template is empty");
        goto out;
    }
    t = xcalloc(1, sizeof(*t));
    t->text = xstrdup(text);
    buf_init(&t->lit, TMPL_TEXT_MAX);
    if ((rc = parse(t)) < 0)
        goto out;
    resolve_encodings(t);
    if ((rc = tmpl_check(t, &sample_values)) < 0)
        goto out;
    *out = t;
    t = NULL;
out:
    tmpl_free(t);
    return rc;
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    free(t->text);
    buf_release(&t->lit);
    free(t->parts);
    free(t);
}

static int add_value(struct sbuf *out, const char *s, size_t len, enum tmpl_enc enc)
{
    return enc == ENC_URL ? url_encode_sb(out, s, len) : sbuf_add(out, s, len);
}

static int add_host(struct sbuf *out, const char *host, enum tmpl_enc enc)
{
    int rc;

    if (enc != ENC_URL || !strchr(host, ':') || host[0] == '[')
        return sbuf_addstr(out, host);
    if ((rc = sbuf_addstr(out, "[")) < 0 || (rc = sbuf_addstr(out, host)) < 0)
        return rc;
    return sbuf_addstr(out, "]");
}

static int render_var(struct sbuf *out, const struct part *p, const struct tmpl_values *v)
{
    const char *s = NULL;
    char port[16];

    switch (p->var) {
    case TMPL_PASSWORD:
        if (!v->password)
            break;
        return add_value(out, sbuf_expose(v->password), sbuf_len(v->password), p->enc);
    case TMPL_PORT:
        snprintf(port, sizeof(port), "%u", v->port);
        return sbuf_addstr(out, port);
    case TMPL_HOST:
        if (!v->host)
            break;
        return add_host(out, v->host, p->enc);
    case TMPL_SSLMODE:
        if (!v->sslmode)
            break;
        return sbuf_addstr(out, v->sslmode);
    case TMPL_USER: s = v->user; break;
    case TMPL_DATABASE: s = v->database; break;
    }
    if (!s)
        return err_set(ERR_INVALID, "no value for {%s}", var_names[p->var]);
    return add_value(out, s, strlen(s), p->enc);
}

int tmpl_render(struct sbuf *out, const struct tmpl *t, const struct tmpl_values *v)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < t->n_parts; i++) {
        const struct part *p = &t->parts[i];
        rc = p->is_var ? render_var(out, p, v) : sbuf_add(out, t->lit.ptr + p->off, p->len);
    }
    return rc;
}

/* ---- URI checks. The messages describe the problem only: the URL holds values. ---- */

static bool in_set(unsigned char c, const char *set)
{
    return c && strchr(set, c);
}

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_uri_char(unsigned char c)
{
    return is_alnum(c) || in_set(c, "-._~" ":/?#[]@" "!$&'()*+,;=");
}

/* Index just past "scheme://" (or "scheme:scheme://", as in jdbc:postgresql://), else 0. */
static size_t scheme_end(const char *s, size_t n)
{
    size_t i = 0;

    for (;;) {
        if (i >= n || s[i] < 'a' || s[i] > 'z')
            return 0;
        while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
                         in_set((unsigned char)s[i], "+.-")))
            i++;
        if (n - i >= 3 && !memcmp(s + i, "://", 3))
            return i + 3;
        if (i >= n || s[i] != ':')
            return 0;
        i++;
    }
}

static int uri_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && (i + 2 >= n || !is_hex((unsigned char)s[i + 1]) ||
                         !is_hex((unsigned char)s[i + 2])))
            return err_set(ERR_INVALID, "the URL has a '%%' that does not start a %%XX escape");
        if (c != '%' && !is_uri_char(c))
            return err_set(ERR_INVALID, "the URL has a character that must be percent-encoded "
                           "(a space, control character, non-ASCII byte, quote or one of "
                           "\"<>\\^`{|})");
    }
    return 0;
}

static int uri_port(const char *p, size_t n)
{
    unsigned long v = 0;

    if (n == 0 || n > 5)
        return err_set(ERR_INVALID, "the URL's port is not a number from 1 to 65535");
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return err_set(ERR_INVALID, "the URL's port is not a number from 1 to 65535");
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return err_set(ERR_INVALID, "the URL's port is not a number from 1 to 65535");
    return 0;
}

static int uri_ipv6(const char *h, size_t n)
{
    char ip[64];
    unsigned char bin[16];

    if (n == 0 || n >= sizeof(ip))
        return err_set(ERR_INVALID, "the URL's host in brackets is not an IPv6 address");
    memcpy(ip, h, n);
    ip[n] = '\0';
    if (inet_pton(AF_INET6, ip, bin) != 1)
        return err_set(ERR_INVALID, "the URL's host in brackets is not an IPv6 address");
    return 0;
}

static int uri_hostport(const char *h, size_t n)
{
    const char *end = h + n, *rb, *colon;
    int rc;

    if (n && h[0] == '[') {
        if (!(rb = memchr(h, ']', n)))
            return err_set(ERR_INVALID, "the URL's host has '[' without ']'");
        if ((rc = uri_ipv6(h + 1, (size_t)(rb - h - 1))) < 0)
            return rc;
        if (rb + 1 == end)
            return 0;
        if (rb[1] != ':')
            return err_set(ERR_INVALID, "the URL has text after the IPv6 host's ']'");
        return uri_port(rb + 2, (size_t)(end - rb - 2));
    }
    colon = memchr(h, ':', n);
    if (colon == h || n == 0)
        return err_set(ERR_INVALID, "the URL has no host");
    if (memchr(h, '[', n) || memchr(h, ']', n))
        return err_set(ERR_INVALID, "the URL's authority has '[' or ']' outside an IPv6 host "
                       "(an IPv6 host written with :raw?)");
    return colon ? uri_port(colon + 1, (size_t)(end - colon - 1)) : 0;
}

/* a[0..n) is the authority: [userinfo@]host[:port]. */
static int uri_authority(const char *a, size_t n)
{
    const char *at = memchr(a, '@', n);

    if (!at)
        return uri_hostport(a, n);
    if (memchr(at + 1, '@', n - (size_t)(at + 1 - a)))
        return err_set(ERR_INVALID, "the URL's authority has more than one '@' (a user or "
                       "password written with :raw?)");
    if (memchr(a, '[', (size_t)(at - a)) || memchr(a, ']', (size_t)(at - a)))
        return err_set(ERR_INVALID, "the URL's user or password has '[' or ']'");
    return uri_hostport(at + 1, n - (size_t)(at + 1 - a));
}

static int uri_check(const char *s, size_t n)
{
    size_t start = scheme_end(s, n), alen;
    int rc;

    if (!start)
        return err_set(ERR_INVALID, "a template with :// before its first placeholder must "
                       "render a URL starting with a scheme such as postgresql://");
    if ((rc = uri_chars(s, n)) < 0)
        return rc;
    alen = strcspn(s + start, "/?#");
    if ((rc = uri_authority(s + start, alen)) < 0)
        return rc;
    if (strpbrk(s + start + alen, "[]"))
        return err_set(ERR_INVALID, "the URL's path or query has '[' or ']'");
    return 0;
}

/* A JWT-shaped sample token: base64url parts joined by dots, with every character a token can
 * have. A real one is longer, but its characters need no encoding, so each {password} adds
 * exactly its length: tmpl_check renders this short one and adds the difference. */
static const char sample_token[] =
    "eyJhbGciOiJSUzI1NiJ9.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.c2ln";

static size_t count_uses(const struct tmpl *t, enum tmpl_var var)
{
    size_t n = 0;

    for (size_t i = 0; i < t->n_parts; i++)
        n += t->parts[i].is_var && t->parts[i].var == var;
    return n;
}

int tmpl_check(const struct tmpl *t, const struct tmpl_values *v)
{
    struct tmpl_values vals = *v;
    struct sbuf *pw = NULL, *out = sbuf_new(TMPL_OUT_MAX);
    size_t extra = 0;
    int rc;

    if (!vals.password) {
        vals.password = pw = sbuf_from(sample_token, sizeof(sample_token) - 1);
        extra = count_uses(t, TMPL_PASSWORD) * (TMPL_SAMPLE_PASSWORD_LEN - sbuf_len(pw));
    }
    rc = tmpl_render(out, t, &vals);
    if (rc == ERR_TOOBIG || (rc == 0 && sbuf_len(out) + extra > TMPL_OUT_MAX))
        rc = err_set(ERR_INVALID, "renders to more than %d bytes with a %d-byte token",
                     TMPL_OUT_MAX, TMPL_SAMPLE_PASSWORD_LEN);
    else if (rc == 0 && t->url)
        rc = uri_check(sbuf_expose(out), sbuf_len(out));
    sbuf_free(out);
    sbuf_free(pw);
    return rc;
}

bool tmpl_is_url(const struct tmpl *t)
{
    return t->url;
}

bool tmpl_uses(const struct tmpl *t, enum tmpl_var var)
{
    for (size_t i = 0; i < t->n_parts; i++)
        if (t->parts[i].is_var && t->parts[i].var == var)
            return true;
    return false;
}

const char *tmpl_text(const struct tmpl *t)
{
    return t->text;
}
