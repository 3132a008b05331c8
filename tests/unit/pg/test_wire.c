/* lib/pg/wire: framing, the first packets, the readers and builders; then both held against
 * libpq 15, the real client: a scripted server on loopback written with the builders parses
 * what libpq sends (its StartupMessage, its password, its CancelRequest) and libpq accepts
 * what it is sent (or reports the ErrorResponse). Needs no PostgreSQL server. */
#include "pgscript.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "pg/wire.h"

/* ---- framing ------------------------------------------------------------------------------ */

static void test_frame(void)
{
    static const unsigned char first[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
    static const unsigned char typed[] = { 'Z', 0, 0, 0, 5, 'I', 'x' };
    static const unsigned char short_first[] = { 0, 0, 0, 7 };
    static const unsigned char short_typed[] = { 'Z', 0, 0, 0, 3 };
    static const unsigned char huge[] = { 'D', 0x7f, 0xff, 0xff, 0xff };
    size_t n = 99;

    T_RC(pgw_frame(&n, first, 3, false, PGW_FIRST_MAX), 0);
    T_EQ_INT(n, 0);
    T_RC(pgw_frame(&n, first, 5, false, PGW_FIRST_MAX), 0);
    T_EQ_INT(n, 8); /* the length is known: 8 bytes will make it */
    T_RC(pgw_frame(&n, first, sizeof(first), false, PGW_FIRST_MAX), 1);
    T_EQ_INT(n, 8);
    T_RC(pgw_frame(&n, typed, 4, true, 1024), 0);
    T_RC(pgw_frame(&n, typed, 5, true, 1024), 0);
    T_EQ_INT(n, 6);
    T_RC(pgw_frame(&n, typed, sizeof(typed), true, 1024), 1); /* a byte of the next one */
    T_EQ_INT(n, 6);
    T_RC(pgw_frame(&n, short_first, 4, false, PGW_FIRST_MAX), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "length of 7 bytes"));
    T_RC(pgw_frame(&n, short_typed, 5, true, 1024), ERR_PARSE);
    T_RC(pgw_frame(&n, huge, 5, true, 1u << 20), ERR_TOOBIG);
    T_CHECK(strstr(err_msg(), "2147483648 bytes"));
}

/* ---- first packets ------------------------------------------------------------------------ */

/* A StartupMessage of protocol version ver with the given bytes after it (params). */
static size_t startup(unsigned char *out, uint32_t ver, const char *params, size_t plen)
{
    size_t n = 8 + plen;

    out[0] = (unsigned char)(n >> 24), out[1] = (unsigned char)(n >> 16);
    out[2] = (unsigned char)(n >> 8), out[3] = (unsigned char)n;
    out[4] = (unsigned char)(ver >> 24), out[5] = (unsigned char)(ver >> 16);
    out[6] = (unsigned char)(ver >> 8), out[7] = (unsigned char)ver;
    memcpy(out + 8, params, plen);
    return n;
}

#define P(s) s, sizeof(s) - 1 /* a literal with its embedded NULs, without the last */

static void test_first_startup(void)
{
    unsigned char pkt[256];
    struct pgw_first f;
    size_t n = startup(pkt, PGW_PROTO_3_0, P("user\0app\0database\0db\0options\0\0\0"));

    T_RC(pgw_first_parse(&f, pkt, n), 0);
    T_EQ_INT(f.kind, PGW_STARTUP);
    T_EQ_INT(f.version, 0x30000);
    T_EQ_INT(f.nparams, 3);
    T_EQ_STR(pgw_first_param(&f, "user"), "app");
    T_EQ_STR(pgw_first_param(&f, "database"), "db");
    T_EQ_STR(pgw_first_param(&f, "options"), "");
    T_CHECK(!pgw_first_param(&f, "application_name"));
    /* 3.2 is parsed (the proxy answers it with NegotiateProtocolVersion) */
    n = startup(pkt, 0x30002, P("user\0app\0\0"));
    T_RC(pgw_first_parse(&f, pkt, n), 0);
    T_EQ_INT(f.version, 0x30002);
    /* no parameter at all */
    n = startup(pkt, PGW_PROTO_3_0, P("\0"));
    T_RC(pgw_first_parse(&f, pkt, n), 0);
    T_EQ_INT(f.nparams, 0);
}

static void test_first_requests(void)
{
    static const unsigned char ssl[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
    static const unsigned char gss[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
    static const unsigned char cancel[] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e,
                                            0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef };
    static const unsigned char ssl_long[] = { 0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0 };
    struct pgw_first f;

    T_RC(pgw_first_parse(&f, ssl, sizeof(ssl)), 0);
    T_EQ_INT(f.kind, PGW_SSL);
    T_RC(pgw_first_parse(&f, gss, sizeof(gss)), 0);
    T_EQ_INT(f.kind, PGW_GSSENC);
    T_RC(pgw_first_parse(&f, cancel, sizeof(cancel)), 0);
    T_EQ_INT(f.kind, PGW_CANCEL);
    T_EQ_INT(f.pid, 12345);
    T_EQ_INT(f.key, 0xdeadbeef);
    T_RC(pgw_first_parse(&f, ssl_long, sizeof(ssl_long)), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "encryption request of 12 bytes"));
    T_RC(pgw_first_parse(&f, cancel, 12), ERR_PARSE); /* the length says 16 */
}

struct bad_first {
    uint32_t ver;
    const char *params;
    size_t len;
    const char *msg;
};

static void test_first_bad(void)
{
    static const struct bad_first cases[] = {
        { 0x20000, P("user\0app\0\0"), "unsupported frontend protocol 2.0" },
        { 0x40000, P("user\0app\0\0"), "unsupported frontend protocol 4.0" },
        { PGW_PROTO_3_0, P("user\0app\0"), "does not end with a NUL" },
        { PGW_PROTO_3_0, P("user\0app"), "not NUL-terminated" },
        { PGW_PROTO_3_0, P("user"), "not NUL-terminated" },
        { PGW_PROTO_3_0, P(""), "does not end with a NUL" },
        { PGW_PROTO_3_0, P("user\0app\0\0x"), "1 bytes after its end" },
        { PGW_PROTO_3_0, P("user\0a\0user\0b\0\0"), "\"user\" is given twice" },
    };
    unsigned char pkt[256];
    struct pgw_first f;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = startup(pkt, cases[i].ver, cases[i].params, cases[i].len);
        int rc = pgw_first_parse(&f, pkt, n);

        if (rc != ERR_PARSE || !strstr(err_msg(), cases[i].msg))
            t_fail(__FILE__, __LINE__, "case %zu: rc %d \"%s\", want \"%s\"", i, rc, err_msg(),
                   cases[i].msg);
    }
}

static void test_first_too_many(void)
{
    struct buf b = BUF_INIT(PGW_FIRST_MAX);
    struct pgw_param ps[PGW_PARAMS_MAX + 1];
    char names[PGW_PARAMS_MAX + 1][8];
    struct pgw_first f;

    for (int i = 0; i <= PGW_PARAMS_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "p%d", i);
        ps[i].name = names[i];
        ps[i].value = "v";
    }
    T_RC(pgw_put_startup(&b, ps, PGW_PARAMS_MAX), 0);
    T_RC(pgw_first_parse(&f, b.ptr, b.len), 0);
    T_EQ_INT(f.nparams, PGW_PARAMS_MAX);
    T_EQ_STR(pgw_first_param(&f, "p47"), "v");
    buf_reset(&b);
    T_RC(pgw_put_startup(&b, ps, PGW_PARAMS_MAX + 1), 0);
    T_RC(pgw_first_parse(&f, b.ptr, b.len), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "more than 48 parameters"));
    buf_release(&b);
}

/* ---- typed messages: builders, then readers on what they built ---------------------------- */

/* The one whole typed message at b's start. */
static void split_one(struct pgw_msg *m, const struct buf *b)
{
    size_t n = 0;

    T_RC(pgw_frame(&n, b->ptr, b->len, true, 1u << 16), 1);
    T_EQ_INT(n, b->len);
    pgw_msg_split(m, b->ptr, n);
}

static void test_build_and_read(void)
{
    struct buf b = BUF_INIT(4096);
    struct pgw_msg m;
    const unsigned char *data;
    const char *name, *value;
    uint32_t code, pid, key;
    size_t dlen;
    char st;

    T_RC(pgw_put_auth(&b, PGW_AUTH_SASL, "SCRAM-SHA-256\0", 15), 0);
    T_EQ_INT(b.len, 1 + 4 + 4 + 15);
    split_one(&m, &b);
    T_RC(pgw_read_auth(&code, &data, &dlen, &m), 0);
    T_EQ_INT(code, 10);
    T_EQ_INT(dlen, 15);
    T_CHECK(!memcmp(data, "SCRAM-SHA-256", 14));

    buf_reset(&b);
    T_RC(pgw_put_backend_key(&b, 77, 0x80000001u), 0);
    split_one(&m, &b);
    T_RC(pgw_read_backend_key(&pid, &key, &m), 0);
    T_EQ_INT(pid, 77);
    T_EQ_INT(key, 0x80000001u);
    T_RC(pgw_read_ready(&st, &m), ERR_PARSE);

    buf_reset(&b);
    T_RC(pgw_put_ready(&b, 'T'), 0);
    split_one(&m, &b);
    T_RC(pgw_read_ready(&st, &m), 0);
    T_EQ_INT(st, 'T');

    buf_reset(&b);
    T_RC(pgw_put_param_status(&b, "server_version", "15.8"), 0);
    split_one(&m, &b);
    T_RC(pgw_read_param_status(&name, &value, &m), 0);
    T_EQ_STR(name, "server_version");
    T_EQ_STR(value, "15.8");

    buf_reset(&b);
    T_RC(pgw_put_error(&b, "FATAL", "08001", "no token", "the identity endpoint said 500"), 0);
    split_one(&m, &b);
    T_RC(pgw_read_fields(&m), 0);
    T_EQ_STR(pgw_field(&m, 'S'), "FATAL");
    T_EQ_STR(pgw_field(&m, 'V'), "FATAL");
    T_EQ_STR(pgw_field(&m, 'C'), "08001");
    T_EQ_STR(pgw_field(&m, 'M'), "no token");
    T_EQ_STR(pgw_field(&m, 'D'), "the identity endpoint said 500");
    T_CHECK(!pgw_field(&m, 'H'));

    buf_reset(&b);
    {
        const char *opts[] = { "_pq_.foo" };
        T_RC(pgw_put_negotiate(&b, 0, opts, 1), 0);
        T_EQ_INT(b.len, 1 + 4 + 4 + 4 + 9);
        T_EQ_INT(b.ptr[0], 'v');
    }
    buf_release(&b);
}

static void test_error_texts_cut(void)
{
    struct buf b = BUF_INIT(8192);
    char long_msg[3000];
    struct pgw_msg m;

    memset(long_msg, 'x', sizeof(long_msg) - 1);
    long_msg[sizeof(long_msg) - 1] = '\0';
    T_RC(pgw_put_error(&b, "FATAL", "28000", long_msg, NULL), 0);
    split_one(&m, &b);
    T_RC(pgw_read_fields(&m), 0);
    T_EQ_INT(strlen(pgw_field(&m, 'M')), 1024);
    T_CHECK(!pgw_field(&m, 'D'));
    buf_release(&b);
}

/* A builder that does not fit leaves the buffer as it was: whole messages only. */
static void test_build_undone(void)
{
    struct buf b = BUF_INIT(12);

    T_RC(pgw_put_ready(&b, 'I'), 0);
    T_EQ_INT(b.len, 6);
    T_RC(pgw_put_param_status(&b, "a", "b"), ERR_TOOBIG);
    T_EQ_INT(b.len, 6);
    T_RC(pgw_put_ready(&b, 'E'), 0);
    T_EQ_INT(b.len, 12);
    T_EQ_INT(b.ptr[6], 'Z');
    buf_release(&b);
}

struct bad_msg {
    char type;
    const char *body;
    size_t len;
};

static void test_readers_refuse(void)
{
    static const struct bad_msg fields[] = {
        { 'E', P("SFATAL") },            /* no NUL after the value */
        { 'E', P("SFATAL\0") },          /* no final NUL */
        { 'E', P("SFATAL\0\0x") },       /* bytes after it */
        { 'D', P("SFATAL\0\0") },        /* not an E or N */
        { 'N', P("") },                  /* empty */
    };
    static const struct bad_msg others[] = {
        { 'S', P("a\0b") }, { 'S', P("a\0b\0c") }, { 'K', P("1234567") }, { 'Z', P("X") },
        { 'R', P("123") },  { 'p', P("SCRAM\0\0\0\0\x09xx") }, { 'p', P("SCRAM\0\0\0") },
    };
    struct pgw_msg m;
    const unsigned char *data;
    const char *a, *b;
    uint32_t u, v;
    size_t n;
    char c;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        m = (struct pgw_msg){ fields[i].type, (const unsigned char *)fields[i].body, fields[i].len };
        if (pgw_read_fields(&m) != ERR_PARSE)
            t_fail(__FILE__, __LINE__, "fields case %zu accepted", i);
    }
    m = (struct pgw_msg){ 'E', (const unsigned char *)"\0", 1 };
    T_RC(pgw_read_fields(&m), 0); /* no field at all is well-formed */
    T_CHECK(!pgw_field(&m, 'M'));
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        int rc;

        m = (struct pgw_msg){ others[i].type, (const unsigned char *)others[i].body, others[i].len };
        switch (m.type) {
        case 'S': rc = pgw_read_param_status(&a, &b, &m); break;
        case 'K': rc = pgw_read_backend_key(&u, &v, &m); break;
        case 'Z': rc = pgw_read_ready(&c, &m); break;
        case 'R': rc = pgw_read_auth(&u, &data, &n, &m); break;
        default: rc = pgw_read_sasl_initial(&a, &data, &n, &m); break;
        }
        if (rc != ERR_PARSE)
            t_fail(__FILE__, __LINE__, "case %zu ('%c') accepted", i, m.type);
    }
}

static void test_sasl_initial(void)
{
    struct pgw_msg m = { 'p', (const unsigned char *)"SCRAM-SHA-256\0\0\0\0\x03n,,", 21 };
    const unsigned char *data;
    const char *mech;
    size_t n;

    T_RC(pgw_read_sasl_initial(&mech, &data, &n, &m), 0);
    T_EQ_STR(mech, "SCRAM-SHA-256");
    T_EQ_INT(n, 3);
    T_CHECK(!memcmp(data, "n,,", 3));
    m = (struct pgw_msg){ 'p', (const unsigned char *)"X\0\xff\xff\xff\xff", 6 };
    T_RC(pgw_read_sasl_initial(&mech, &data, &n, &m), 0);
    T_CHECK(data == NULL);
    T_EQ_INT(n, 0);
}

static void test_password_message(void)
{
    struct sbuf *pw = sbuf_from("eyJ0.token", 10), *msg = NULL;
    struct pgw_msg m;
    size_t n;

    T_RC(pgw_put_password(&msg, pw), 0);
    T_EQ_INT(sbuf_len(msg), 1 + 4 + 11);
    T_RC(pgw_frame(&n, sbuf_expose(msg), sbuf_len(msg), true, 64), 1);
    pgw_msg_split(&m, sbuf_expose(msg), n);
    T_EQ_INT(m.type, 'p');
    T_EQ_STR((const char *)m.body, "eyJ0.token");
    sbuf_free(msg);
    sbuf_free(pw);
}

/* ---- against libpq ------------------------------------------------------------------------ */

/* What a script got and what it sends. */
struct wire_case {
    struct buf reply1, reply2; /* after the first packet; after the next message (when set) */
    bool want_msg, want_cancel;
    unsigned char first[PGW_FIRST_MAX], msg[4096], cancel[64];
    size_t first_len, msg_len, cancel_len;
};

static void serve_case(struct pgscript *s, int fd)
{
    struct wire_case *c = s->ctx;

    if (!(c->first_len = pgs_read(fd, c->first, sizeof(c->first), false)) ||
        !pgs_write(fd, c->reply1.ptr, c->reply1.len))
        return;
    if (c->want_msg && (!(c->msg_len = pgs_read(fd, c->msg, sizeof(c->msg), true)) ||
                        !pgs_write(fd, c->reply2.ptr, c->reply2.len)))
        return;
    if (c->want_cancel) {
        int cfd = accept(s->lfd, NULL, NULL);
        if (cfd < 0)
            return;
        c->cancel_len = pgs_read(cfd, c->cancel, sizeof(c->cancel), false);
        close(cfd);
    }
}

/* libpq's StartupMessage parses; libpq takes the welcome; its CancelRequest carries the key. */
static void test_libpq_startup_and_cancel(void)
{
    static struct wire_case c = { .reply1 = BUF_INIT(4096), .reply2 = BUF_INIT(16),
                                  .want_cancel = true };
    struct pgscript s = { .serve = serve_case, .ctx = &c };
    struct pgw_first f;
    PGconn *conn;
    PGcancel *cn;
    char err[256];

    pgs_welcome(&c.reply1);
    if (!pgs_start(&s))
        return;
    conn = pgs_connect(&s, NULL);
    T_EQ_INT(PQstatus(conn), CONNECTION_OK);
    T_EQ_INT(PQbackendPID(conn), 4242);
    T_EQ_STR(PQparameterStatus(conn, "server_version"), "15.8");
    T_EQ_INT(PQserverVersion(conn), 150008);
    T_EQ_INT(PQtransactionStatus(conn), PQTRANS_IDLE);
    cn = PQgetCancel(conn);
    T_CHECK(cn && PQcancel(cn, err, sizeof(err)));
    PQfreeCancel(cn);
    PQfinish(conn);
    pgs_stop(&s);
    T_CHECK(s.served);
    T_RC(pgw_first_parse(&f, c.first, c.first_len), 0);
    T_EQ_INT(f.kind, PGW_STARTUP);
    T_EQ_INT(f.version, PGW_PROTO_3_0);
    T_EQ_STR(pgw_first_param(&f, "user"), "app");
    T_EQ_STR(pgw_first_param(&f, "database"), "appdb");
    T_EQ_STR(pgw_first_param(&f, "application_name"), "wire-test");
    T_RC(pgw_first_parse(&f, c.cancel, c.cancel_len), 0);
    T_EQ_INT(f.kind, PGW_CANCEL);
    T_EQ_INT(f.pid, 4242);
    T_EQ_INT(f.key, 0x5eed1234u);
    buf_release(&c.reply1);
}

/* Asked for a cleartext password, libpq sends a 'p' as pgw_put_password builds it. */
static void test_libpq_password(void)
{
    static struct wire_case c = { .reply1 = BUF_INIT(64), .reply2 = BUF_INIT(4096),
                                  .want_msg = true };
    struct pgscript s = { .serve = serve_case, .ctx = &c };
    struct sbuf *pw = sbuf_from("tok.en", 6), *mine = NULL;
    PGconn *conn;

    T_RC(pgw_put_auth(&c.reply1, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
    pgs_welcome(&c.reply2);
    if (!pgs_start(&s))
        return;
    conn = pgs_connect(&s, "tok.en");
    T_EQ_INT(PQstatus(conn), CONNECTION_OK);
    T_CHECK(PQconnectionUsedPassword(conn));
    PQfinish(conn);
    pgs_stop(&s);
    T_RC(pgw_put_password(&mine, pw), 0);
    T_EQ_INT(c.msg_len, sbuf_len(mine));
    T_CHECK(c.msg_len == sbuf_len(mine) && !memcmp(c.msg, sbuf_expose(mine), c.msg_len));
    sbuf_free(mine);
    sbuf_free(pw);
    buf_release(&c.reply1);
    buf_release(&c.reply2);
}

/* An ErrorResponse instead of a login: libpq fails with its severity and message. */
static void test_libpq_error(void)
{
    static struct wire_case c = { .reply1 = BUF_INIT(1024), .reply2 = BUF_INIT(16) };
    struct pgscript s = { .serve = serve_case, .ctx = &c };
    PGconn *conn;

    T_RC(pgw_put_error(&c.reply1, "FATAL", "28000", "the token was refused", NULL), 0);
    if (!pgs_start(&s))
        return;
    conn = pgs_connect(&s, NULL);
    T_EQ_INT(PQstatus(conn), CONNECTION_BAD);
    T_CHECK(strstr(PQerrorMessage(conn), "FATAL:  the token was refused"));
    PQfinish(conn);
    pgs_stop(&s);
    buf_release(&c.reply1);
}

int main(void)
{
    T_RUN(test_frame);
    T_RUN(test_first_startup);
    T_RUN(test_first_requests);
    T_RUN(test_first_bad);
    T_RUN(test_first_too_many);
    T_RUN(test_build_and_read);
    T_RUN(test_error_texts_cut);
    T_RUN(test_build_undone);
    T_RUN(test_readers_refuse);
    T_RUN(test_sasl_initial);
    T_RUN(test_password_message);
    T_RUN(test_libpq_startup_and_cancel);
    T_RUN(test_libpq_password);
    T_RUN(test_libpq_error);
    return t_done();
}
