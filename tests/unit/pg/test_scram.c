/* lib/pg/scram: RFC 7677's SCRAM-SHA-256 example exchange, byte for byte; the refusals; the
 * stored form as libpq itself writes it (PQencryptPasswordConn); and libpq logging in with a
 * password to a scripted server whose SASL side is this module. Needs no PostgreSQL server. */
#include "pgscript.h"

#include <stdio.h>
#include <string.h>

#include "base/b64.h"
#include "base/err.h"
#include "pg/scram.h"

/* RFC 7677 section 3: user "user", password "pencil". */
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_FINAL "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* The keys of "pencil" with that salt (hashlib.pbkdf2_hmac and hmac agree). */
#define RFC_STORED "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define RFC_SERVER_KEY "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static void rfc_secret(struct scram_secret *sec)
{
    unsigned char salt[32];
    size_t n = 0;
    struct sbuf *pw = sbuf_from("pencil", 6);

    T_RC(b64_decode(salt, &n, RFC_SALT, strlen(RFC_SALT), false), 0);
    T_RC(scram_secret_make(sec, pw, 4096, salt, n), 0);
    sbuf_free(pw);
}

static void test_secret_keys(void)
{
    struct scram_secret made, parsed;
    struct buf b = BUF_INIT(256);

    rfc_secret(&made);
    T_RC(b64_encode(&b, made.stored_key, SHA256_LEN), 0);
    T_EQ_STR(buf_str(&b), RFC_STORED);
    buf_reset(&b);
    T_RC(b64_encode(&b, made.server_key, SHA256_LEN), 0);
    T_EQ_STR(buf_str(&b), RFC_SERVER_KEY);
    T_RC(scram_secret_parse(&parsed, "SCRAM-SHA-256$4096:" RFC_SALT "$" RFC_STORED
                                     ":" RFC_SERVER_KEY),
         0);
    T_CHECK(!memcmp(&made, &parsed, sizeof(made)));
    scram_secret_clear(&made);
    T_EQ_INT(made.iterations, 0);
    buf_release(&b);
}

static void test_secret_refused(void)
{
    static const char *const texts[] = {
        "SCRAM-SHA-1$4096:" RFC_SALT "$" RFC_STORED ":" RFC_SERVER_KEY,
        "SCRAM-SHA-256$0:" RFC_SALT "$" RFC_STORED ":" RFC_SERVER_KEY,
        "SCRAM-SHA-256$4096x:" RFC_SALT "$" RFC_STORED ":" RFC_SERVER_KEY,
        "SCRAM-SHA-256$4096:" RFC_SALT "$" RFC_STORED,
        "SCRAM-SHA-256$4096:$" RFC_STORED ":" RFC_SERVER_KEY,
        "SCRAM-SHA-256$4096:" RFC_SALT "$" RFC_SALT ":" RFC_SERVER_KEY, /* 16-byte key */
        "SCRAM-SHA-256$4096:" RFC_SALT "$" RFC_STORED ":" RFC_SERVER_KEY "AAAA",
        "md5c4f2d0d2a3e0e8cc7d0b6a5c3b6f4a21",
    };
    unsigned char salt[4] = { 1, 2, 3, 4 };
    struct scram_secret sec;
    struct sbuf *pw;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (scram_secret_parse(&sec, texts[i]) != ERR_INVALID)
            t_fail(__FILE__, __LINE__, "verifier %zu accepted", i);
    pw = sbuf_from("p\xc3\xa4zq", 5);
    T_RC(scram_secret_make(&sec, pw, 4096, salt, 4), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "printable ASCII (character 2"));
    T_CHECK(!strstr(err_msg(), "zq"));
    sbuf_free(pw);
    pw = sbuf_from("", 0);
    T_RC(scram_secret_make(&sec, pw, 4096, salt, 4), ERR_INVALID);
    sbuf_free(pw);
    pw = sbuf_from("pass", 4);
    T_RC(scram_secret_make(&sec, pw, 0, salt, 4), ERR_INVALID);
    T_RC(scram_secret_make(&sec, pw, 4096, salt, 0), ERR_INVALID);
    sbuf_free(pw);
}

/* The whole exchange as the RFC prints it. */
static void test_rfc_exchange(void)
{
    struct scram_exchange ex = SCRAM_EXCHANGE_INIT;
    struct buf reply = BUF_INIT(1024);
    struct scram_secret sec;

    rfc_secret(&sec);
    T_RC(scram_server_first(&ex, &reply, &sec, RFC_FIRST, strlen(RFC_FIRST), RFC_SNONCE), 0);
    T_EQ_STR(buf_str(&reply), RFC_SERVER_FIRST);
    buf_reset(&reply);
    T_RC(scram_server_final(&ex, &reply, RFC_FINAL, strlen(RFC_FINAL)), 0);
    T_EQ_STR(buf_str(&reply), RFC_SERVER_FINAL);
    scram_exchange_release(&ex);
    buf_release(&reply);
}

/* A client that supports binding but was not offered it says "y"; its c= is "eSws". The
 * proof was computed with Python's hmac and hashlib for these messages. */
static void test_y_flag(void)
{
    static const char first[] = "y,,n=user,r=" RFC_CNONCE;
    static const char final[] = "c=eSws,r=" RFC_CNONCE RFC_SNONCE
                                ",p=FoqiHTtQEDE8lz1CdaEe3tK4mS+iMDTl77SPyDS53DY=";
    struct scram_exchange ex = SCRAM_EXCHANGE_INIT;
    struct buf reply = BUF_INIT(1024);
    struct scram_secret sec;

    rfc_secret(&sec);
    T_RC(scram_server_first(&ex, &reply, &sec, first, strlen(first), RFC_SNONCE), 0);
    buf_reset(&reply);
    T_RC(scram_server_final(&ex, &reply, final, strlen(final)), 0);
    T_EQ_STR(buf_str(&reply), "v=dI4KpiQJwBr1+V+K6U1dA6l6I4I9DUNXWND4pcpRU3U=");
    scram_exchange_release(&ex);
    buf_release(&reply);
}

struct bad {
    const char *first, *final; /* final NULL: the first must fail */
    int rc;
    const char *msg;
};

static void test_refusals(void)
{
    static const struct bad cases[] = {
        { "p=tls-server-end-point,,n=,r=abc", NULL, ERR_PARSE, "channel binding" },
        { "n,a=someone,n=,r=abc", NULL, ERR_PARSE, "authorization identity" },
        { "x,,n=,r=abc", NULL, ERR_PARSE, "GS2 header" },
        { "n,,m=ext,n=,r=abc", NULL, ERR_PARSE, "extension" },
        { "n,,n=,r=", NULL, ERR_PARSE, "lacks its user or nonce" },
        { "n,,r=abc", NULL, ERR_PARSE, "lacks its user or nonce" },
        /* the RFC's first message, then finals that must fail */
        { RFC_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
          ERR_REJECTED, "wrong password" },
        { RFC_FIRST, "c=eSws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
          ERR_PARSE, "binding does not match" },
        { RFC_FIRST, "c=biws,r=" RFC_CNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
          ERR_PARSE, "not this exchange's" },
        { RFC_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE, ERR_PARSE, "no proof" },
        { RFC_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
          ERR_PARSE, "not the last" },
        { RFC_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzb", ERR_PARSE, "32 bytes" },
        { RFC_FIRST, "r=" RFC_CNONCE RFC_SNONCE ",p=x", ERR_PARSE, "binding or nonce" },
    };
    struct scram_secret sec;

    rfc_secret(&sec);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct scram_exchange ex = SCRAM_EXCHANGE_INIT;
        struct buf reply = BUF_INIT(1024);
        const struct bad *c = &cases[i];
        int rc = scram_server_first(&ex, &reply, &sec, c->first, strlen(c->first), RFC_SNONCE);

        if (c->final && rc == 0)
            rc = scram_server_final(&ex, &reply, c->final, strlen(c->final));
        else if (c->final)
            t_fail(__FILE__, __LINE__, "case %zu: the first message failed: %s", i, err_msg());
        if (rc != c->rc || !strstr(err_msg(), c->msg))
            t_fail(__FILE__, __LINE__, "case %zu: rc %d \"%s\", want %d \"%s\"", i, rc,
                   err_msg(), c->rc, c->msg);
        scram_exchange_release(&ex);
        buf_release(&reply);
    }
}

static void test_order_and_nul(void)
{
    struct scram_exchange ex = SCRAM_EXCHANGE_INIT;
    struct buf reply = BUF_INIT(1024);
    struct scram_secret sec;

    rfc_secret(&sec);
    T_RC(scram_server_final(&ex, &reply, RFC_FINAL, strlen(RFC_FINAL)), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "before the first"));
    T_RC(scram_server_first(&ex, &reply, &sec, "n,,n=\0,r=abc", 12, RFC_SNONCE), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "holds a NUL"));
    T_RC(scram_server_first(&ex, &reply, &sec, RFC_FIRST, strlen(RFC_FIRST), "a,b"), ERR_PARSE);
    T_EQ_INT(reply.len, 0);
    scram_exchange_release(&ex);
    buf_release(&reply);
}

/* ---- against libpq ------------------------------------------------------------------------ */

/* libpq's own stored form of a password (random salt, its iterations) parses, and proves the
 * same password in an exchange below. */
static void libpq_secret(struct scram_secret *sec, const char *password)
{
    PGconn *conn = PQconnectdb("host=/nonexistent-dir port=1 connect_timeout=1");
    char *v = PQencryptPasswordConn(conn, password, "app", "scram-sha-256");

    T_CHECK(v && !strncmp(v, "SCRAM-SHA-256$", 14));
    T_RC(scram_secret_parse(sec, v ? v : ""), 0);
    PQfreemem(v);
    PQfinish(conn);
}

/* The server's side of a SASL login with this module; a wrong proof gets 28P01. */
static void serve_sasl(struct pgscript *s, int fd)
{
    const struct scram_secret *sec = s->ctx;
    struct scram_exchange ex = SCRAM_EXCHANGE_INIT;
    struct buf out = BUF_INIT(4096), reply = BUF_INIT(1024);
    unsigned char in[2048];
    const unsigned char *data;
    const char *mech;
    struct pgw_msg m;
    size_t n, dlen;

    if (!pgs_read(fd, in, sizeof(in), false) ||
        pgw_put_auth(&out, PGW_AUTH_SASL, SCRAM_MECH "\0", sizeof(SCRAM_MECH) + 1) < 0 ||
        !pgs_write(fd, out.ptr, out.len) || !(n = pgs_read(fd, in, sizeof(in), true)))
        goto out;
    pgw_msg_split(&m, in, n);
    if (pgw_read_sasl_initial(&mech, &data, &dlen, &m) < 0 || strcmp(mech, SCRAM_MECH) ||
        scram_server_first(&ex, &reply, sec, data, dlen, "server-nonce-1234") < 0)
        goto out;
    buf_reset(&out);
    if (pgw_put_auth(&out, PGW_AUTH_SASL_CONTINUE, reply.ptr, reply.len) < 0 ||
        !pgs_write(fd, out.ptr, out.len) || !(n = pgs_read(fd, in, sizeof(in), true)))
        goto out;
    pgw_msg_split(&m, in, n);
    buf_reset(&out);
    buf_reset(&reply);
    if (m.type == 'p' && scram_server_final(&ex, &reply, m.body, m.len) == 0) {
        T_RC(pgw_put_auth(&out, PGW_AUTH_SASL_FINAL, reply.ptr, reply.len), 0);
        pgs_welcome(&out);
    } else {
        T_RC(pgw_put_error(&out, "FATAL", "28P01", "password authentication failed for user \"app\"",
                           NULL),
             0);
    }
    (void)pgs_write(fd, out.ptr, out.len);
out:
    scram_exchange_release(&ex);
    buf_release(&out);
    buf_release(&reply);
}

static void test_libpq_login(void)
{
    static const char *const tries[] = { "s3cret pass", "wrong" };
    struct scram_secret sec;

    libpq_secret(&sec, "s3cret pass");
    for (int i = 0; i < 2; i++) {
        struct pgscript s = { .serve = serve_sasl, .ctx = &sec };
        PGconn *conn;

        if (!pgs_start(&s))
            return;
        conn = pgs_connect(&s, tries[i]);
        if (i == 0) {
            T_EQ_INT(PQstatus(conn), CONNECTION_OK);
            T_CHECK(PQconnectionUsedPassword(conn));
        } else {
            T_EQ_INT(PQstatus(conn), CONNECTION_BAD);
            T_CHECK(strstr(PQerrorMessage(conn), "password authentication failed"));
        }
        PQfinish(conn);
        pgs_stop(&s);
        T_CHECK(s.served);
    }
    scram_secret_clear(&sec);
}

int main(void)
{
    T_RUN(test_secret_keys);
    T_RUN(test_secret_refused);
    T_RUN(test_rfc_exchange);
    T_RUN(test_y_flag);
    T_RUN(test_refusals);
    T_RUN(test_order_and_nul);
    T_RUN(test_libpq_login);
    return t_done();
}
