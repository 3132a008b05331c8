#include "net/hreq.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/banned.h"

/* Content-Length digits: more would not fit in 63 bits, and no request here
 * has a body anyway. */
#define HREQ_LENGTH_DIGITS_MAX 18

long hreq_head_len(struct hreq_scan *sc, const char *data, size_t len, size_t max)
{
    size_t end = len < max ? len : max;

    for (; sc->pos < end; sc->pos++) {
        size_t n;
        bool empty;

        if (data[sc->pos] != '\n')
            continue;
        n = sc->pos - sc->line;
        empty = n == 0 || (n == 1 && data[sc->line] == '\r');
        sc->line = sc->pos + 1;
        if (!empty)
            sc->started = true;
        else if (sc->started)
            return (long)++sc->pos;
    }
    return len >= max ? ERR_TOOBIG : 0;
}

/* tchar of RFC 9110 5.6.2 */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A byte of a field value: visible ASCII, obs-text, SP or HTAB. */
static bool is_vbyte(unsigned char c)
{
    return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f);
}

/* The next line of [*p, end): its bytes without the line end, NUL-terminated
 * in place. 0, or ERR_PARSE for a line without LF or a CR anywhere but before
 * the LF. */
static int next_line(char **line, size_t *n, char **p, char *end)
{
    char *lf = memchr(*p, '\n', (size_t)(end - *p));
    size_t len;

    if (!lf)
        return err_set(ERR_PARSE, "request head: a line without its end");
    len = (size_t)(lf - *p);
    if (len && (*p)[len - 1] == '\r')
        len--;
    if (memchr(*p, '\r', len))
        return err_set(ERR_PARSE, "request head: a CR inside a line");
    *line = *p;
    *n = len;
    (*p)[len] = '\0';
    *p = lf + 1;
    return 0;
}

/* The target: origin-form or absolute-form (RFC 9112 3.2). */
static int parse_target(struct hreq *out, char *t, size_t n)
{
    static const char *const schemes[] = { "http://", "https://" };
    char *q;

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f || t[i] == '#')
            return err_set(ERR_PARSE, "request target: a byte that is not allowed there");
    if (*t != '/') {
        size_t sl = 0, auth;

        for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !sl; i++)
            if (n > strlen(schemes[i]) && !strncasecmp(t, schemes[i], strlen(schemes[i])))
                sl = strlen(schemes[i]);
        if (!sl)
            return err_set(ERR_PARSE, "request target: neither \"/path\" nor \"http://host/path\"");
        auth = strcspn(t + sl, "/?");
        if (!auth)
            return err_set(ERR_PARSE, "request target: no host after the scheme");
        t += sl + auth;
        n -= sl + auth;
        if (*t != '/') {
            out->path = "/";
            out->query = *t == '?' ? t + 1 : "";
            return 0;
        }
    }
    out->path = t;
    out->query = "";
    if ((q = memchr(t, '?', n))) {
        *q = '\0';
        out->query = q + 1;
    }
    return 0;
}

static int parse_request_line(struct hreq *out, char *line, size_t n)
{
    char *sp1, *sp2;
    size_t ml;

    ml = 0;
    while (ml < n && is_tchar((unsigned char)line[ml]))
        ml++;
    if (!ml || ml == n || line[ml] != ' ')
        return err_set(ERR_PARSE, "request line: the method is not a token followed by a space");
    sp1 = line + ml;
    sp2 = memchr(sp1 + 1, ' ', n - ml - 1);
    if (!sp2 || sp2 == sp1 + 1)
        return err_set(ERR_PARSE,
                       "request line: want method, target and version apart by one space");
    if ((size_t)(line + n - (sp2 + 1)) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) ||
        sp2[8] < '0' || sp2[8] > '9')
        return err_set(ERR_PARSE, "request line: the version is not HTTP/1.x");
    out->minor = sp2[8] - '0';
    *sp1 = '\0';
    *sp2 = '\0';
    out->method = line;
    return parse_target(out, sp1 + 1, (size_t)(sp2 - sp1 - 1));
}

static bool name_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && !strncasecmp(name, want, n);
}

/* A comma-separated list holds the token want (case-insensitive). */
static bool list_has(const char *v, const char *want)
{
    size_t wl = strlen(want);

    while (*v) {
        size_t n;

        v += strspn(v, " \t,");
        n = strcspn(v, ",");
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n == wl && !strncasecmp(v, want, n))
            return true;
        v += strcspn(v, ",");
    }
    return false;
}

/* reg-name, IP-literal and port characters (RFC 3986), for the Host value. */
static bool host_ok(const char *v)
{
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("-._~!$&'()*+,;=:%[]", *c)))
            return false;
    return true;
}

struct fields {
    int hosts;
    bool close;
    bool chunked_or_te;
    bool have_length;
    uint64_t length;
};

static int parse_field(struct fields *f, char *line, size_t n)
{
    size_t nl = 0;
    char *v, *e;
    uint64_t len = 0;

    if (*line == ' ' || *line == '\t')
        return err_set(ERR_PARSE, "header: a folded line (obs-fold)");
    while (nl < n && is_tchar((unsigned char)line[nl]))
        nl++;
    if (!nl || nl == n || line[nl] != ':')
        return err_set(ERR_PARSE, "header: a line that is not a name and a colon");
    v = line + nl + 1;
    e = line + n;
    for (char *c = v; c < e; c++)
        if (!is_vbyte((unsigned char)*c))
            return err_set(ERR_PARSE, "header: a control character in a value");
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *e = '\0';
    if (name_is(line, nl, "host")) {
        if (++f->hosts > 1)
            return err_set(ERR_PARSE, "header: Host given twice");
        if (!host_ok(v))
            return err_set(ERR_PARSE, "header: Host is not a host and port");
    } else if (name_is(line, nl, "connection")) {
        if (list_has(v, "close"))
            f->close = true;
    } else if (name_is(line, nl, "transfer-encoding")) {
        f->chunked_or_te = true;
    } else if (name_is(line, nl, "content-length")) {
        size_t digits = strspn(v, "0123456789");
        if (!digits || v[digits] || digits > HREQ_LENGTH_DIGITS_MAX)
            return err_set(ERR_PARSE, "header: Content-Length is not a number");
        for (size_t i = 0; i < digits; i++)
            len = len * 10 + (uint64_t)(v[i] - '0');
        if (f->have_length && len != f->length)
            return err_set(ERR_PARSE, "header: two different Content-Length values");
        f->have_length = true;
        f->length = len;
    }
    return 0;
}

int hreq_parse(struct hreq *out, char *head, size_t len)
{
    struct fields f = { 0 };
    char *p = head, *end = head + len, *line = NULL;
    size_t n = 0;
    int rc;

    /* RFC 9112 2.2: a server should ignore empty lines before the request line. */
    do {
        if ((rc = next_line(&line, &n, &p, end)) < 0)
            return rc;
    } while (!n);
    if ((rc = parse_request_line(out, line, n)) < 0)
        return rc;
    for (;;) {
        if ((rc = next_line(&line, &n, &p, end)) < 0)
            return rc;
        if (!n)
            break;
        if ((rc = parse_field(&f, line, n)) < 0)
            return rc;
    }
    if (p != end)
        return err_set(ERR_PARSE, "request head: bytes after its blank line");
    if (out->minor >= 1 && f.hosts != 1)
        return err_set(ERR_PARSE, "header: an HTTP/1.1 request without Host");
    out->keep_alive = out->minor >= 1 && !f.close;
    out->has_body = f.chunked_or_te || (f.have_length && f.length > 0);
    return 0;
}
