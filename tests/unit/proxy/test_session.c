/* lib/proxy/session: the login state machine driven as the event loop drives it, with a fake
 * token source and fixed random bytes; the outboxes are drained after every call, as the
 * loop sends them. Every branch: trust and SCRAM logins, the first packets (SSL, GSSENC,
 * cancel, 3.2 and protocol options), refusals (role, database, replication, no user, a wrong
 * password), no token, the upstream's refusals (no TLS, its ErrorResponse, another auth
 * method, no password asked), failures and timeouts, bytes one at a time. */
#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/err.h"
#include "base/sha256.h"
#include "pg/scram.h"
#include "pg/wire.h"
#include "proxy/session.h"

#define TOKEN "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"

static bool no_token;
static int token_calls;

static int fake_token(void *ctx, struct sbuf **out)
{
    (void)ctx;
    token_calls++;
    if (no_token)
        return err_set(ERR_UNAVAILABLE, "the identity endpoint answered 503");
    *out = sbuf_from(TOKEN, strlen(TOKEN));
    return 0;
}

static void fixed_random(void *out, size_t n)
{
    memset(out, 0x5a, n);
}

static struct session_cfg cfg = {
    .role = "app-mi", .database = "appdb", .upstream = "db.example.test:5432",
    .token = fake_token, .random = fixed_random,
};

/* What the loop has sent each way so far. */
static struct buf to_client = BUF_INIT(1 << 20), to_upstream = BUF_INIT(1 << 20);

static void drain(struct session *s)
{
    T_RC(buf_add(&to_client, s->client_out.ptr, s->client_out.len), 0);
    T_RC(buf_add(&to_upstream, s->upstream_out.ptr, s->upstream_out.len), 0);
    buf_reset(&s->client_out);
    buf_reset(&s->upstream_out);
}

static void fresh(struct session *s, const struct session_cfg *c)
{
    buf_reset(&to_client);
    buf_reset(&to_upstream);
    no_token = false;
    token_calls = 0;
    session_init(s, c, 1001);
}

static enum session_do cin(struct session *s, const struct buf *b)
{
    enum session_do d = session_client_in(s, b->ptr, b->len);
    drain(s);
    return d;
}

static enum session_do uin(struct session *s, const struct buf *b)
{
    enum session_do d = session_upstream_in(s, b->ptr, b->len);
    drain(s);
    return d;
}

static void startup_msg(struct buf *b, const char *user, const char *db, uint32_t version)
{
    struct pgw_param p[3];
    size_t n = 0;

    if (user)
        p[n++] = (struct pgw_param){ "user", user };
    if (db)
        p[n++] = (struct pgw_param){ "database", db };
    p[n++] = (struct pgw_param){ "application_name", "psql" };
    size_t at = b->len;
    T_RC(pgw_put_startup(b, p, n), 0);
    b->ptr[at + 4] = (char)(version >> 24);
    b->ptr[at + 5] = (char)(version >> 16);
    b->ptr[at + 6] = (char)(version >> 8);
    b->ptr[at + 7] = (char)version;
}

/* The server's side up to ReadyForQuery, after the SSLRequest and TLS. */
static void server_welcome(struct buf *b)
{
    T_RC(pgw_put_auth(b, PGW_AUTH_OK, NULL, 0), 0);
    T_RC(pgw_put_param_status(b, "server_version", "15.8"), 0);
    T_RC(pgw_put_param_status(b, "TimeZone", "UTC"), 0);
    T_RC(pgw_put_backend_key(b, 77, 88), 0);
    size_t at = b->len;
    T_RC(pgw_put_error(b, "NOTICE", "00000", "hello", NULL), 0);
    b->ptr[at] = 'N'; /* the same fields as a NoticeResponse */
    T_RC(pgw_put_ready(b, 'I'), 0);
}

/* The next typed message of b at *off (moving past it). */
static bool next_msg(struct pgw_msg *m, const struct buf *b, size_t *off)
{
    size_t n = 0;

    if (pgw_frame(&n, b->ptr + *off, b->len - *off, true, 1 << 20) != 1)
        return false;
    pgw_msg_split(m, b->ptr + *off, n);
    *off += n;
    return true;
}

/* The types of the messages in b from off, as a string. */
static const char *types(const struct buf *b, size_t off)
{
    static char t[64];
    struct pgw_msg m;
    size_t i = 0;

    while (i < sizeof(t) - 1 && next_msg(&m, b, &off))
        t[i++] = m.type;
    t[i] = '\0';
    return t;
}

/* The FATAL the client got: its SQLSTATE, and its message in *msg. */
static const char *fatal(const char **msg)
{
    static char code[8];
    struct pgw_msg m;
    size_t off = 0;

    code[0] = '\0';
    *msg = "";
    while (next_msg(&m, &to_client, &off))
        if (m.type == 'E' && pgw_read_fields(&m) == 0) {
            snprintf(code, sizeof(code), "%s", pgw_field(&m, 'C'));
            *msg = pgw_field(&m, 'M');
        }
    return code;
}

/* Up to the upstream's TLS: startup in, connected, 'S'. */
static void to_upstream_tls(struct session *s)
{
    struct buf b = BUF_INIT(4096);

    startup_msg(&b, "app-mi", "appdb", PGW_PROTO_3_0);
    T_EQ_INT(cin(s, &b), SES_CONNECT);
    T_EQ_INT(session_upstream_connected(s), SES_READ);
    drain(s);
    T_EQ_INT(to_upstream.len, 8); /* the SSLRequest */
    buf_reset(&b);
    T_RC(buf_addch(&b, 'S'), 0);
    T_EQ_INT(uin(s, &b), SES_UPSTREAM_TLS);
    T_EQ_INT(session_upstream_tls(s), SES_READ);
    drain(s);
    buf_release(&b);
}

static void test_trust_login(void)
{
    struct session s;
    struct buf b = BUF_INIT(4096);
    struct pgw_first f;
    struct pgw_msg m;
    size_t n = 0, off = 0;
    uint32_t pid, key;

    fresh(&s, &cfg);
    to_upstream_tls(&s);
    /* the upstream got SSLRequest, then the StartupMessage as the role */
    T_RC(pgw_frame(&n, to_upstream.ptr + 8, to_upstream.len - 8, false, PGW_FIRST_MAX), 1);
    T_RC(pgw_first_parse(&f, to_upstream.ptr + 8, n), 0);
    T_EQ_STR(pgw_first_param(&f, "user"), "app-mi");
    T_EQ_STR(pgw_first_param(&f, "database"), "appdb");
    T_EQ_STR(pgw_first_param(&f, "application_name"), "psql");
    T_EQ_INT(f.nparams, 3);
    buf_reset(&to_upstream);
    T_EQ_INT(to_client.len, 0); /* nothing to the client until the server is ready */
    T_RC(pgw_put_auth(&b, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
    T_EQ_INT(uin(&s, &b), SES_READ);
    T_EQ_INT(to_upstream.ptr[0], 'p');
    T_CHECK(to_upstream.len == 5 + strlen(TOKEN) + 1 && !memcmp(to_upstream.ptr + 5, TOKEN, strlen(TOKEN)));
    T_CHECK(s.upstream_secret);
    buf_reset(&b);
    server_welcome(&b);
    T_EQ_INT(uin(&s, &b), SES_RELAY);
    T_EQ_INT(s.result, SES_R_OK);
    T_EQ_STR(types(&to_client, 0), "RSSNKZ");
    /* the client's key is the session's own, not the server's */
    off = 0;
    for (int i = 0; i < 5; i++)
        T_CHECK(next_msg(&m, &to_client, &off));
    T_RC(pgw_read_backend_key(&pid, &key, &m), 0);
    T_EQ_INT(pid, 1001);
    T_EQ_INT(key, 0x5a5a5a5a);
    /* the server's key is kept for a cancel */
    T_EQ_INT(s.up_pid, 77);
    T_EQ_INT(s.up_key, 88);
    T_EQ_INT(token_calls, 2); /* checked before connecting, then sent */
    session_release(&s);
    buf_release(&b);
}

/* The same login with every byte in its own call, both ways, and a query sent ahead. */
static void test_bytes_one_by_one(void)
{
    struct session s;
    struct buf c = BUF_INIT(4096), u = BUF_INIT(4096);
    enum session_do d = SES_READ;

    fresh(&s, &cfg);
    startup_msg(&c, "app-mi", "appdb", PGW_PROTO_3_0);
    T_RC(buf_add(&c, "Q\0\0\0\x0dSELECT 1\0", 14), 0);
    for (size_t i = 0; i < c.len; i++) {
        enum session_do e = session_client_in(&s, c.ptr + i, 1);
        if (d == SES_READ)
            d = e; /* the first thing to do; later bytes wait in the session */
        else
            T_EQ_INT(e, SES_READ);
        drain(&s);
    }
    T_EQ_INT(d, SES_CONNECT);
    session_upstream_connected(&s);
    T_EQ_INT(session_upstream_in(&s, "S", 1), SES_UPSTREAM_TLS);
    session_upstream_tls(&s);
    drain(&s);
    buf_reset(&to_upstream);
    T_RC(pgw_put_auth(&u, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
    server_welcome(&u);
    T_RC(buf_add(&u, "X", 1), 0); /* a byte the server sends after Z: passed on */
    d = SES_READ;
    for (size_t i = 0; i < u.len && d == SES_READ; i++) {
        d = session_upstream_in(&s, u.ptr + i, 1);
        drain(&s);
    }
    T_EQ_INT(d, SES_RELAY);
    T_EQ_STR(types(&to_client, 0), "RSSNKZ");
    T_EQ_INT(to_client.ptr[to_client.len - 1], 'I'); /* the last whole message: Z */
    /* the query went up after the password */
    T_EQ_INT(to_upstream.len, 5 + strlen(TOKEN) + 1 + 14);
    T_CHECK(!memcmp(to_upstream.ptr + to_upstream.len - 14, "Q\0\0\0\x0dSELECT 1\0", 14));
    session_release(&s);
    buf_release(&c);
    buf_release(&u);
}

static void test_first_packets(void)
{
    static const unsigned char ssl[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
    static const unsigned char gss[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
    static const unsigned char cancel[] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 3, 0xe9,
                                            1, 2, 3, 4 };
    struct session_cfg tls = cfg;
    struct session s;
    struct buf b = BUF_INIT(4096);

    /* no certificate: 'N', then GSSENC 'N', then the startup, in one read */
    fresh(&s, &cfg);
    T_RC(buf_add(&b, ssl, 8), 0);
    T_RC(buf_add(&b, gss, 8), 0);
    startup_msg(&b, "app-mi", "appdb", PGW_PROTO_3_0);
    T_EQ_INT(cin(&s, &b), SES_CONNECT);
    T_CHECK(to_client.len == 2 && !memcmp(to_client.ptr, "NN", 2));
    session_release(&s);
    /* a certificate: 'S' and TLS; then a second SSLRequest is refused */
    tls.client_tls = true;
    fresh(&s, &tls);
    buf_reset(&b);
    T_RC(buf_add(&b, ssl, 8), 0);
    T_EQ_INT(cin(&s, &b), SES_CLIENT_TLS);
    T_CHECK(to_client.len == 1 && to_client.ptr[0] == 'S');
    T_EQ_INT(session_client_tls(&s), SES_READ);
    T_EQ_INT(cin(&s, &b), SES_CLOSE);
    session_release(&s);
    /* bytes behind the SSLRequest are refused: they would pass as encrypted */
    fresh(&s, &tls);
    buf_reset(&b);
    T_RC(buf_add(&b, ssl, 8), 0);
    startup_msg(&b, "app-mi", "appdb", PGW_PROTO_3_0);
    T_EQ_INT(cin(&s, &b), SES_CLOSE);
    {
        const char *msg = "";
        T_EQ_STR(fatal(&msg), "08P01");
        T_CHECK(strstr(msg, "after SSLRequest"));
    }
    session_release(&s);
    /* a cancel request */
    fresh(&s, &cfg);
    buf_reset(&b);
    T_RC(buf_add(&b, cancel, 16), 0);
    T_EQ_INT(cin(&s, &b), SES_CANCEL);
    T_EQ_INT(s.cancel_pid, 1001);
    T_EQ_INT(s.cancel_key, 0x01020304);
    T_EQ_INT(s.result, SES_R_CANCEL);
    T_EQ_INT(to_client.len, 0);
    session_release(&s);
    buf_release(&b);
}

/* 3.2 with a protocol option: NegotiateProtocolVersion says 3.0 and names the option. */
static void test_negotiate(void)
{
    struct pgw_param p[] = { { "user", "app-mi" }, { "_pq_.wild", "1" } };
    struct buf b = BUF_INIT(4096);
    struct session s;
    struct pgw_first f;
    size_t n = 0;

    fresh(&s, &cfg);
    T_RC(pgw_put_startup(&b, p, 2), 0);
    b.ptr[7] = 2; /* 3.2 */
    T_EQ_INT(cin(&s, &b), SES_CLOSE); /* the database defaults to the user: not served */
    T_EQ_STR(types(&to_client, 0), "vE");
    T_CHECK(!memcmp(to_client.ptr + 5, "\0\0\0\0\0\0\0\1_pq_.wild", 18));
    session_release(&s);
    /* and the option is not sent upstream */
    struct session_cfg same = cfg;
    same.database = "app-mi";
    fresh(&s, &same);
    T_EQ_INT(cin(&s, &b), SES_CONNECT);
    session_upstream_connected(&s);
    session_upstream_in(&s, "S", 1);
    session_upstream_tls(&s);
    drain(&s);
    T_RC(pgw_frame(&n, to_upstream.ptr + 8, to_upstream.len - 8, false, PGW_FIRST_MAX), 1);
    T_RC(pgw_first_parse(&f, to_upstream.ptr + 8, n), 0);
    T_EQ_INT(f.version, PGW_PROTO_3_0);
    T_EQ_INT(f.nparams, 2);
    T_EQ_STR(pgw_first_param(&f, "database"), "app-mi");
    session_release(&s);
    buf_release(&b);
}

struct refusal {
    const char *user, *db;
    const char *extra; /* another parameter "name=value" */
    const char *code, *msg;
};

static void test_refusals(void)
{
    static const struct refusal cases[] = {
        { "someone", "appdb", NULL, "28000", "role \"someone\" is not served here: this proxy logs in as \"app-mi\"" },
        { "app-mi", "otherdb", NULL, "3D000", "database \"otherdb\" is not served here" },
        { NULL, "appdb", NULL, "28000", "no PostgreSQL user name" },
        { "app-mi", "appdb", "replication=database", "0A000", "replication connections" },
    };
    struct buf b = BUF_INIT(4096);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pgw_param p[3];
        struct session s;
        const char *msg = "";
        char name[32];
        size_t n = 0;

        if (cases[i].user)
            p[n++] = (struct pgw_param){ "user", cases[i].user };
        p[n++] = (struct pgw_param){ "database", cases[i].db };
        if (cases[i].extra) {
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(cases[i].extra, "="), cases[i].extra);
            p[n++] = (struct pgw_param){ name, strchr(cases[i].extra, '=') + 1 };
        }
        fresh(&s, &cfg);
        buf_reset(&b);
        T_RC(pgw_put_startup(&b, p, n), 0);
        if (cin(&s, &b) != SES_CLOSE || strcmp(fatal(&msg), cases[i].code) ||
            !strstr(msg, cases[i].msg) || s.result != SES_R_REFUSED)
            t_fail(__FILE__, __LINE__, "case %zu: %s \"%s\"", i, fatal(&msg), msg);
        T_EQ_INT(token_calls, 0);
        session_release(&s);
    }
    buf_release(&b);
}

static void test_no_token(void)
{
    struct buf b = BUF_INIT(4096);
    struct session s;
    const char *msg;

    fresh(&s, &cfg);
    no_token = true;
    startup_msg(&b, "app-mi", "appdb", PGW_PROTO_3_0);
    T_EQ_INT(cin(&s, &b), SES_CLOSE);
    T_EQ_STR(fatal(&msg), "08001");
    T_CHECK(strstr(msg, "could not get a token to log in to db.example.test:5432: the identity "
                        "endpoint answered 503"));
    T_EQ_INT(s.result, SES_R_NO_TOKEN);
    T_EQ_INT(to_upstream.len, 0);
    session_release(&s);
    /* the token goes away between the check and the server's request */
    fresh(&s, &cfg);
    to_upstream_tls(&s);
    no_token = true;
    buf_reset(&b);
    T_RC(pgw_put_auth(&b, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
    T_EQ_INT(uin(&s, &b), SES_CLOSE);
    T_EQ_STR(fatal(&msg), "08001");
    T_EQ_INT(s.result, SES_R_NO_TOKEN);
    session_release(&s);
    buf_release(&b);
}

struct up_case {
    const char *name;
    void (*server)(struct buf *b);
    enum session_result result;
    const char *code, *msg;
};

static void up_rejects(struct buf *b)
{
    T_RC(pgw_put_auth(b, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
    T_RC(pgw_put_error(b, "FATAL", "28000", "PAM authentication failed for user \"app-mi\"", NULL), 0);
}
static void up_md5(struct buf *b) { T_RC(pgw_put_auth(b, PGW_AUTH_MD5, "salt", 4), 0); }
static void up_trust(struct buf *b) { T_RC(pgw_put_auth(b, PGW_AUTH_OK, NULL, 0), 0); }
static void up_odd(struct buf *b) { T_RC(pgw_put_ready(b, 'I'), 0); }
static void up_too_many(struct buf *b)
{
    T_RC(pgw_put_auth(b, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
    T_RC(pgw_put_auth(b, PGW_AUTH_OK, NULL, 0), 0);
    T_RC(pgw_put_error(b, "FATAL", "53300", "sorry, too many clients already", NULL), 0);
}
static void up_twice(struct buf *b)
{
    T_RC(pgw_put_auth(b, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
    T_RC(pgw_put_auth(b, PGW_AUTH_CLEARTEXT, NULL, 0), 0);
}

static void test_upstream_refusals(void)
{
    static const struct up_case cases[] = {
        { "rejected", up_rejects, SES_R_REJECTED, "28000", "PAM authentication failed for user \"app-mi\"" },
        { "md5", up_md5, SES_R_ERROR, "08001", "asked for MD5 authentication" },
        { "trust", up_trust, SES_R_ERROR, "08001", "without a password" },
        { "odd", up_odd, SES_R_ERROR, "08001", "unexpected 'Z' message" },
        { "too many", up_too_many, SES_R_ERROR, "53300", "too many clients" },
        { "twice", up_twice, SES_R_ERROR, "08001", "asked for the password twice" },
    };
    struct buf b = BUF_INIT(4096);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct session s;
        const char *msg = "";

        fresh(&s, &cfg);
        to_upstream_tls(&s);
        buf_reset(&b);
        cases[i].server(&b);
        if (uin(&s, &b) != SES_CLOSE || strcmp(fatal(&msg), cases[i].code) ||
            !strstr(msg, cases[i].msg) || s.result != cases[i].result)
            t_fail(__FILE__, __LINE__, "%s: %s \"%s\", result %s", cases[i].name, fatal(&msg),
                   msg, session_result_name(s.result));
        T_CHECK(!memmem(to_client.ptr, to_client.len, TOKEN, strlen(TOKEN)));
        session_release(&s);
    }
    buf_release(&b);
}

static void test_upstream_tls_and_failures(void)
{
    struct buf b = BUF_INIT(4096);
    struct session s;
    const char *msg;

    startup_msg(&b, "app-mi", "appdb", PGW_PROTO_3_0);
    /* the server says 'N' to the SSLRequest */
    fresh(&s, &cfg);
    T_EQ_INT(cin(&s, &b), SES_CONNECT);
    session_upstream_connected(&s);
    T_EQ_INT(session_upstream_in(&s, "N", 1), SES_CLOSE);
    drain(&s);
    T_EQ_STR(fatal(&msg), "08001");
    T_CHECK(strstr(msg, "does not accept TLS"));
    T_EQ_INT(s.result, SES_R_TLS);
    session_release(&s);
    /* 'S' with bytes behind it */
    fresh(&s, &cfg);
    cin(&s, &b);
    session_upstream_connected(&s);
    T_EQ_INT(session_upstream_in(&s, "SR", 2), SES_CLOSE);
    session_release(&s);
    /* the loop's failures: TLS, a refused connection */
    fresh(&s, &cfg);
    cin(&s, &b);
    err_set(ERR_TLS, "TLS with db.example.test:5432 failed: the certificate is not trusted: self-signed certificate");
    T_EQ_INT(session_upstream_failed(&s, ERR_TLS), SES_CLOSE);
    drain(&s);
    T_EQ_STR(fatal(&msg), "08001");
    T_CHECK(strstr(msg, "could not log in to db.example.test:5432: TLS with"));
    T_EQ_INT(s.result, SES_R_TLS);
    session_release(&s);
    fresh(&s, &cfg);
    cin(&s, &b);
    err_set(ERR_UNAVAILABLE, "connection refused");
    session_upstream_failed(&s, ERR_UNAVAILABLE);
    T_EQ_INT(s.result, SES_R_UNREACHABLE);
    session_release(&s);
    /* timeouts: a client that never finishes; a server that never answers */
    fresh(&s, &cfg);
    T_EQ_INT(session_client_in(&s, b.ptr, 3), SES_READ);
    T_EQ_INT(session_timeout(&s), SES_CLOSE);
    drain(&s);
    T_EQ_STR(fatal(&msg), "08P01");
    T_EQ_INT(s.result, SES_R_CLIENT);
    session_release(&s);
    fresh(&s, &cfg);
    to_upstream_tls(&s);
    T_EQ_INT(session_timeout(&s), SES_CLOSE);
    drain(&s);
    T_EQ_STR(fatal(&msg), "08001");
    T_CHECK(strstr(msg, "did not complete the login in time"));
    session_release(&s);
    buf_release(&b);
}

/* ---- SCRAM: a small client, as libpq computes it ---- */

static void scram_client_final(struct buf *out, const char *password, const char *first_bare,
                               const char *server_first)
{
    unsigned char salt[64], salted[SHA256_LEN], ck[SHA256_LEN], sk[SHA256_LEN],
        sig[SHA256_LEN], proof[SHA256_LEN];
    const char *s = strstr(server_first, ",s="), *i = strstr(server_first, ",i=");
    struct buf auth = BUF_INIT(4096), nonce = BUF_INIT(256);
    size_t n = 0;

    T_CHECK(s && i);
    T_RC(b64_decode(salt, &n, s + 3, (size_t)(i - s - 3), false), 0);
    pbkdf2_sha256(salted, password, strlen(password), salt, n, atoi(i + 3));
    hmac_sha256(ck, salted, SHA256_LEN, "Client Key", 10);
    sha256(sk, ck, SHA256_LEN);
    buf_add(&nonce, server_first + 2, (size_t)(s - server_first - 2));
    buf_addf(out, "c=biws,r=%s", buf_str(&nonce));
    buf_addf(&auth, "%s,%s,%s", first_bare, server_first, buf_str(out));
    hmac_sha256(sig, sk, SHA256_LEN, auth.ptr, auth.len);
    for (int k = 0; k < SHA256_LEN; k++)
        proof[k] = ck[k] ^ sig[k];
    buf_addstr(out, ",p=");
    b64_encode(out, proof, SHA256_LEN);
    buf_release(&auth);
    buf_release(&nonce);
}

/* A typed 'p' message with body. */
static void p_msg(struct buf *b, const void *body, size_t n)
{
    unsigned char h[5] = { 'p', (unsigned char)((n + 4) >> 24), (unsigned char)((n + 4) >> 16),
                           (unsigned char)((n + 4) >> 8), (unsigned char)(n + 4) };
    buf_add(b, h, 5);
    buf_add(b, body, n);
}

static enum session_do scram_login(const char *password, struct session *s,
                                   const struct session_cfg *c)
{
    static const char first_bare[] = "n=,r=clientnonce0123456789";
    struct buf b = BUF_INIT(4096), body = BUF_INIT(1024), fin = BUF_INIT(1024);
    struct pgw_msg m;
    const unsigned char *data;
    uint32_t code;
    size_t off = 0, n;
    enum session_do d;
    char sf[512];

    fresh(s, c);
    startup_msg(&b, "app-mi", "appdb", PGW_PROTO_3_0);
    T_EQ_INT(cin(s, &b), SES_READ);
    T_EQ_STR(types(&to_client, 0), "R");
    T_CHECK(next_msg(&m, &to_client, &off));
    T_RC(pgw_read_auth(&code, &data, &n, &m), 0);
    T_EQ_INT(code, PGW_AUTH_SASL);
    T_CHECK(n == 15 && !memcmp(data, "SCRAM-SHA-256\0\0", 15));
    /* SASLInitialResponse */
    buf_reset(&b);
    buf_addstr(&body, "SCRAM-SHA-256");
    buf_addch(&body, '\0');
    buf_add(&body, "\0\0\0\x1d", 4);
    buf_addstr(&body, "n,,");
    buf_addstr(&body, first_bare);
    p_msg(&b, body.ptr, body.len);
    T_EQ_INT(cin(s, &b), SES_READ);
    T_CHECK(next_msg(&m, &to_client, &off));
    T_RC(pgw_read_auth(&code, &data, &n, &m), 0);
    T_EQ_INT(code, PGW_AUTH_SASL_CONTINUE);
    snprintf(sf, sizeof(sf), "%.*s", (int)n, (const char *)data);
    T_CHECK(!strncmp(sf, "r=clientnonce0123456789Wlpa", 27)); /* the fixed random bytes */
    scram_client_final(&fin, password, first_bare, sf);
    buf_reset(&b);
    p_msg(&b, fin.ptr, fin.len);
    d = cin(s, &b);
    buf_release(&b);
    buf_release(&body);
    buf_release(&fin);
    return d;
}

static void test_scram(void)
{
    struct sbuf *pw = sbuf_from("local secret", 12);
    unsigned char salt[16] = { 1, 2, 3 };
    struct scram_secret sec;
    struct session_cfg c = cfg;
    struct session s;
    const char *msg;

    T_RC(scram_secret_make(&sec, pw, 4096, salt, sizeof(salt)), 0);
    c.password = &sec;
    T_EQ_INT(scram_login("local secret", &s, &c), SES_CONNECT);
    T_EQ_STR(types(&to_client, 0), "RRR"); /* SASL, Continue, Final; Ok comes with the welcome */
    session_release(&s);
    T_EQ_INT(scram_login("wrong secret", &s, &c), SES_CLOSE);
    T_EQ_STR(fatal(&msg), "28P01");
    T_EQ_STR(msg, "password authentication failed for user \"app-mi\"");
    T_EQ_INT(s.result, SES_R_REFUSED);
    T_EQ_INT(token_calls, 0);
    session_release(&s);
    scram_secret_clear(&sec);
    sbuf_free(pw);
}

int main(void)
{
    T_RUN(test_trust_login);
    T_RUN(test_bytes_one_by_one);
    T_RUN(test_first_packets);
    T_RUN(test_negotiate);
    T_RUN(test_refusals);
    T_RUN(test_no_token);
    T_RUN(test_upstream_refusals);
    T_RUN(test_upstream_tls_and_failures);
    T_RUN(test_scram);
    buf_release(&to_client);
    buf_release(&to_upstream);
    return t_done();
}
