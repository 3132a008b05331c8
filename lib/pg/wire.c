/* The protocol's framing and the messages a login needs (pg/wire.h). The
 * limits are the server's: a first packet of at most 10,000 bytes, a length
 * that counts itself, strings that end in NUL inside their message. */
#include "pg/wire.h"

#include <string.h>

#include "base/err.h"

#define TEXT_MAX 1024 /* of each text in an ErrorResponse we write */

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

int pgw_frame(size_t *total, const void *data, size_t len, bool typed, size_t max)
{
    const unsigned char *p = data;
    size_t head = typed ? 5 : 4, n;
    uint32_t l;

    *total = 0;
    if (len < head)
        return 0;
    l = get32(p + head - 4);
    if (l < (typed ? 4u : 8u))
        return err_set(ERR_PARSE, "a %s message declares a length of %u bytes",
                       typed ? "typed" : "first", l);
    n = (size_t)l + (typed ? 1 : 0);
    if (n > max)
        return err_set(ERR_TOOBIG, "a %s message of %zu bytes is over the %zu allowed",
                       typed ? "typed" : "first", n, max);
    *total = n;
    return len >= n ? 1 : 0;
}

/* The NUL-terminated string at p[*off..end): its start, *off moved past its
 * NUL; NULL when no NUL ends it before end. */
static const char *take_str(const unsigned char *p, size_t *off, size_t end)
{
    const unsigned char *s = p + *off, *nul;

    if (*off >= end || !(nul = memchr(s, '\0', end - *off)))
        return NULL;
    *off = (size_t)(nul - p) + 1;
    return (const char *)s;
}

static int parse_params(struct pgw_first *out, const unsigned char *p, size_t len)
{
    size_t off = 8;

    for (;;) {
        const char *name, *value;

        if (off >= len)
            return err_set(ERR_PARSE, "the startup packet does not end with a NUL");
        if (p[off] == '\0') {
            if (off + 1 != len)
                return err_set(ERR_PARSE, "the startup packet has %zu bytes after its end",
                               len - off - 1);
            return 0;
        }
        if (!(name = take_str(p, &off, len)) || !(value = take_str(p, &off, len)))
            return err_set(ERR_PARSE, "a startup parameter is not NUL-terminated");
        if (pgw_first_param(out, name))
            return err_set(ERR_PARSE, "the startup parameter \"%.64s\" is given twice", name);
        if (out->nparams == PGW_PARAMS_MAX)
            return err_set(ERR_PARSE, "the startup packet has more than %d parameters",
                           PGW_PARAMS_MAX);
        out->params[out->nparams].name = name;
        out->params[out->nparams].value = value;
        out->nparams++;
    }
}

int pgw_first_parse(struct pgw_first *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t code;

    memset(out, 0, sizeof(*out));
    if (len < 8 || get32(p) != len)
        return err_set(ERR_PARSE, "the first packet's length does not match its %zu bytes", len);
    code = get32(p + 4);
    switch (code) {
    case PGW_CODE_SSL:
    case PGW_CODE_GSSENC:
        if (len != 8)
            return err_set(ERR_PARSE, "an encryption request of %zu bytes (8 expected)", len);
        out->kind = code == PGW_CODE_SSL ? PGW_SSL : PGW_GSSENC;
        return 0;
    case PGW_CODE_CANCEL:
        if (len != 16)
            return err_set(ERR_PARSE, "a cancel request of %zu bytes (16 expected)", len);
        out->kind = PGW_CANCEL;
        out->pid = get32(p + 8);
        out->key = get32(p + 12);
        return 0;
    default:
        break;
    }
    if (code >> 16 != 3)
        return err_set(ERR_PARSE, "unsupported frontend protocol %u.%u (3.x is spoken)",
                       code >> 16, code & 0xffff);
    out->kind = PGW_STARTUP;
    out->version = code;
    return parse_params(out, p, len);
}

const char *pgw_first_param(const struct pgw_first *f, const char *name)
{
    for (size_t i = 0; i < f->nparams; i++)
        if (!strcmp(f->params[i].name, name))
            return f->params[i].value;
    return NULL;
}

void pgw_msg_split(struct pgw_msg *m, const void *data, size_t total)
{
    const unsigned char *p = data;

    m->type = (char)p[0];
    m->body = p + 5;
    m->len = total - 5;
}

static int bad(const struct pgw_msg *m, const char *why)
{
    return err_set(ERR_PARSE, "a '%c' message %s", m->type, why);
}

int pgw_read_auth(uint32_t *code, const unsigned char **data, size_t *data_len,
                  const struct pgw_msg *m)
{
    if (m->type != 'R' || m->len < 4)
        return bad(m, "is not an authentication request");
    *code = get32(m->body);
    *data = m->body + 4;
    *data_len = m->len - 4;
    return 0;
}

int pgw_read_backend_key(uint32_t *pid, uint32_t *key, const struct pgw_msg *m)
{
    if (m->type != 'K' || m->len != 8)
        return bad(m, "is not a BackendKeyData of 8 bytes");
    *pid = get32(m->body);
    *key = get32(m->body + 4);
    return 0;
}

int pgw_read_ready(char *status, const struct pgw_msg *m)
{
    if (m->type != 'Z' || m->len != 1 || !m->body[0] || !strchr("ITE", m->body[0]))
        return bad(m, "is not a ReadyForQuery");
    *status = (char)m->body[0];
    return 0;
}

int pgw_read_param_status(const char **name, const char **value, const struct pgw_msg *m)
{
    size_t off = 0;

    if (m->type != 'S' || !(*name = take_str(m->body, &off, m->len)) ||
        !(*value = take_str(m->body, &off, m->len)) || off != m->len)
        return bad(m, "is not a ParameterStatus of two strings");
    return 0;
}

int pgw_read_fields(const struct pgw_msg *m)
{
    size_t off = 0;

    if (m->type != 'E' && m->type != 'N')
        return bad(m, "is not an ErrorResponse or NoticeResponse");
    while (off < m->len && m->body[off]) {
        off++;
        if (!take_str(m->body, &off, m->len))
            return bad(m, "has a field that is not NUL-terminated");
    }
    if (off + 1 != m->len)
        return bad(m, "does not end with one NUL after its fields");
    return 0;
}

const char *pgw_field(const struct pgw_msg *m, char code)
{
    size_t off = 0;

    while (off < m->len && m->body[off]) {
        bool hit = m->body[off] == (unsigned char)code;
        const char *v;

        off++;
        if (!(v = take_str(m->body, &off, m->len)))
            return NULL;
        if (hit)
            return v;
    }
    return NULL;
}

int pgw_read_sasl_initial(const char **mech, const unsigned char **data, size_t *data_len,
                          const struct pgw_msg *m)
{
    size_t off = 0;
    uint32_t n;

    if (m->type != 'p' || !(*mech = take_str(m->body, &off, m->len)) || m->len - off < 4)
        return bad(m, "is not a SASLInitialResponse");
    n = get32(m->body + off);
    off += 4;
    if (n == UINT32_MAX && off == m->len) {
        *data = NULL;
        *data_len = 0;
        return 0;
    }
    if (n != m->len - off)
        return bad(m, "has a SASL payload whose length does not match");
    *data = m->body + off;
    *data_len = n;
    return 0;
}

/* ---- builders ---- */

/* Appends type (when not 0) and a length to be filled by end_msg. */
static int begin_msg(struct buf *out, char type, size_t *at)
{
    static const char zero[4];
    int rc;

    if (type && (rc = buf_addch(out, type)) < 0)
        return rc;
    *at = out->len;
    return buf_add(out, zero, 4);
}

/* Fills in the length begun at `at`: it counts itself and what follows. */
static int end_msg(struct buf *out, size_t at)
{
    put32((unsigned char *)out->ptr + at, (uint32_t)(out->len - at));
    return 0;
}

static int add32(struct buf *out, uint32_t v)
{
    unsigned char b[4];

    put32(b, v);
    return buf_add(out, b, 4);
}

/* A string and its NUL, cut at max bytes. */
static int add_cstr(struct buf *out, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    int rc;

    if ((rc = buf_add(out, s, n)) < 0)
        return rc;
    return buf_addch(out, '\0');
}

/* Builds one message: its head, body (an expression appending to out), its
 * length; a failed append is undone, so out holds only whole messages. */
#define BUILD(out, type, body)                                                                    \
    do {                                                                                          \
        size_t start_ = (out)->len, at_;                                                          \
        int rc_ = begin_msg((out), (type), &at_);                                                 \
        if (!rc_)                                                                                 \
            rc_ = (body);                                                                         \
        if (rc_ < 0) {                                                                            \
            (out)->len = start_;                                                                  \
            if ((out)->ptr)                                                                       \
                (out)->ptr[start_] = '\0';                                                        \
            return rc_;                                                                           \
        }                                                                                         \
        return end_msg((out), at_);                                                            \
    } while (0)

static int startup_body(struct buf *out, const struct pgw_param *params, size_t n)
{
    int rc = add32(out, PGW_PROTO_3_0);

    for (size_t i = 0; !rc && i < n; i++)
        if (!(rc = add_cstr(out, params[i].name, PGW_FIRST_MAX)))
            rc = add_cstr(out, params[i].value, PGW_FIRST_MAX);
    return rc ? rc : buf_addch(out, '\0');
}

int pgw_put_startup(struct buf *out, const struct pgw_param *params, size_t n)
{
    BUILD(out, 0, startup_body(out, params, n));
}

int pgw_put_ssl_request(struct buf *out)
{
    BUILD(out, 0, add32(out, PGW_CODE_SSL));
}

static int cancel_body(struct buf *out, uint32_t pid, uint32_t key)
{
    int rc = add32(out, PGW_CODE_CANCEL);

    if (!rc)
        rc = add32(out, pid);
    return rc ? rc : add32(out, key);
}

int pgw_put_cancel(struct buf *out, uint32_t pid, uint32_t key)
{
    BUILD(out, 0, cancel_body(out, pid, key));
}

static int field(struct buf *out, char code, const char *s)
{
    int rc = buf_addch(out, code);

    return rc ? rc : add_cstr(out, s, TEXT_MAX);
}

static int error_body(struct buf *out, const char *severity, const char *sqlstate,
                      const char *msg, const char *detail)
{
    int rc;

    if ((rc = field(out, 'S', severity)) < 0 || (rc = field(out, 'V', severity)) < 0 ||
        (rc = field(out, 'C', sqlstate)) < 0 || (rc = field(out, 'M', msg)) < 0 ||
        (detail && (rc = field(out, 'D', detail)) < 0))
        return rc;
    return buf_addch(out, '\0');
}

int pgw_put_error(struct buf *out, const char *severity, const char *sqlstate, const char *msg,
                  const char *detail)
{
    BUILD(out, 'E', error_body(out, severity, sqlstate, msg, detail));
}

static int auth_body(struct buf *out, uint32_t code, const void *data, size_t len)
{
    int rc = add32(out, code);

    return rc ? rc : buf_add(out, data, len);
}

int pgw_put_auth(struct buf *out, uint32_t code, const void *data, size_t len)
{
    BUILD(out, 'R', auth_body(out, code, data, len));
}

static int two_strings(struct buf *out, const char *a, const char *b)
{
    int rc = add_cstr(out, a, PGW_FIRST_MAX);

    return rc ? rc : add_cstr(out, b, PGW_FIRST_MAX);
}

int pgw_put_param_status(struct buf *out, const char *name, const char *value)
{
    BUILD(out, 'S', two_strings(out, name, value));
}

static int key_body(struct buf *out, uint32_t pid, uint32_t key)
{
    int rc = add32(out, pid);

    return rc ? rc : add32(out, key);
}

int pgw_put_backend_key(struct buf *out, uint32_t pid, uint32_t key)
{
    BUILD(out, 'K', key_body(out, pid, key));
}

int pgw_put_ready(struct buf *out, char status)
{
    BUILD(out, 'Z', buf_addch(out, status));
}

static int negotiate_body(struct buf *out, uint32_t minor, const char *const *options, size_t n)
{
    int rc = add32(out, minor);

    if (!rc)
        rc = add32(out, (uint32_t)n);
    for (size_t i = 0; !rc && i < n; i++)
        rc = add_cstr(out, options[i], PGW_FIRST_MAX);
    return rc;
}

int pgw_put_negotiate(struct buf *out, uint32_t minor, const char *const *options, size_t n)
{
    BUILD(out, 'v', negotiate_body(out, minor, options, n));
}

int pgw_put_password(struct sbuf **out, const struct sbuf *password)
{
    size_t n = sbuf_len(password) + 1 + 4;
    unsigned char head[5] = { 'p' };
    struct sbuf *s;
    int rc;

    if (n > UINT32_MAX)
        return err_set(ERR_TOOBIG, "a password of %zu bytes", sbuf_len(password));
    put32(head + 1, (uint32_t)n);
    s = sbuf_new(n + 1);
    if ((rc = sbuf_add(s, head, sizeof(head))) < 0 || (rc = sbuf_addsb(s, password)) < 0 ||
        (rc = sbuf_add(s, "", 1)) < 0) {
        sbuf_free(s);
        return rc;
    }
    *out = s;
    return 0;
}
