/* One proxied connection's login, both ways (proxy/session.h). Each call
 * appends what arrived, then handles every whole message it now holds, so that
 * bytes split or joined anyhow by the network give the same result. */
#include "proxy/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/b64.h"
#include "base/err.h"
#include "pg/wire.h"
#include "base/banned.h"

enum {
    ST_FIRST,      /* the client's first packets */
    ST_CLIENT_TLS, /* the client's handshake (the loop's) */
    ST_SASL_INIT,  /* waiting for SASLInitialResponse */
    ST_SASL_FINAL, /* waiting for SASLResponse */
    ST_CONNECTING, /* the loop connects */
    ST_UP_SSL,     /* SSLRequest sent, its answer awaited */
    ST_UP_TLS,     /* the upstream's handshake (the loop's) */
    ST_UP_AUTH,    /* StartupMessage sent; until AuthenticationOk */
    ST_UP_PARAMS,  /* until ReadyForQuery */
    ST_RELAY,
    ST_CLOSED,
};

#define SASL_MSG_MAX 8192 /* a SCRAM message is a few hundred bytes */

const char *session_result_name(enum session_result r)
{
    static const char *const names[] = {
        [SES_R_NONE] = "none",         [SES_R_OK] = "ok",
        [SES_R_CLIENT] = "client",     [SES_R_REFUSED] = "refused",
        [SES_R_NO_TOKEN] = "no_token", [SES_R_UNREACHABLE] = "unreachable",
        [SES_R_TLS] = "tls",           [SES_R_REJECTED] = "rejected",
        [SES_R_ERROR] = "error",       [SES_R_CANCEL] = "cancel",
    };
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "none";
}

void session_init(struct session *s, const struct session_cfg *cfg, uint32_t pid)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->state = ST_FIRST;
    s->pid = pid;
    cfg->random(&s->key, sizeof(s->key));
    buf_init(&s->client_out, SESSION_WELCOME_MAX + SESSION_MSG_MAX);
    buf_init(&s->upstream_out, 2 * PGW_FIRST_MAX + SESSION_MSG_MAX);
    buf_init(&s->client_in, SESSION_MSG_MAX + PGW_FIRST_MAX);
    buf_init(&s->upstream_in, SESSION_MSG_MAX + 5);
    buf_init(&s->params, PGW_FIRST_MAX);
    buf_init(&s->welcome, SESSION_WELCOME_MAX);
    s->scram = (struct scram_exchange)SCRAM_EXCHANGE_INIT;
}

/* Wipes a buffer's whole allocation, then frees it. */
static void wipe(struct buf *b)
{
    if (b->ptr)
        OPENSSL_cleanse(b->ptr, b->cap);
    buf_release(b);
}

void session_release(struct session *s)
{
    wipe(&s->upstream_out); /* the password message */
    wipe(&s->client_in);    /* SCRAM proofs */
    buf_release(&s->client_out);
    buf_release(&s->upstream_in);
    buf_release(&s->params);
    buf_release(&s->welcome);
    scram_exchange_release(&s->scram);
    s->state = ST_CLOSED;
}

/* Ends the login with a FATAL for the client (and why, for the log). */
__attribute__((format(printf, 4, 5))) static enum session_do
refuse(struct session *s, enum session_result r, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
    va_end(ap);
    s->result = r;
    s->state = ST_CLOSED;
    /* The outbox has room for one more error: it was made for a welcome. */
    (void)pgw_put_error(&s->client_out, "FATAL", sqlstate, s->reason, NULL);
    return SES_CLOSE;
}

/* The connection ends without a word to the client (it left, or asked to). */
static enum session_do quiet_close(struct session *s, enum session_result r, const char *why)
{
    snprintf(s->reason, sizeof(s->reason), "%s", why);
    s->result = r;
    s->state = ST_CLOSED;
    return SES_CLOSE;
}

static bool option_false(const char *v)
{
    static const char *const no[] = { "false", "off", "no", "0", "f", "n" };

    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (!strcmp(v, no[i]))
            return true;
    return false;
}

/* ---- the client's side ---- */

static enum session_do start_upstream(struct session *s)
{
    struct sbuf *tok = NULL;

    if (s->cfg->token(s->cfg->token_ctx, &tok) < 0)
        return refuse(s, SES_R_NO_TOKEN, "08001", "could not get a token to log in to %s: %s",
                      s->cfg->upstream, err_msg());
    sbuf_free(tok);
    s->state = ST_CONNECTING;
    return SES_CONNECT;
}

static enum session_do startup(struct session *s, const struct pgw_first *f)
{
    const char *user = pgw_first_param(f, "user"), *db = pgw_first_param(f, "database");
    const char *repl = pgw_first_param(f, "replication");
    const char *unknown[PGW_PARAMS_MAX];
    size_t nunknown = 0;

    /* A newer minor version or protocol options: say what is spoken (3.0, none),
     * first, as the server does. */
    for (size_t i = 0; i < f->nparams; i++)
        if (!strncmp(f->params[i].name, "_pq_.", 5))
            unknown[nunknown++] = f->params[i].name;
    if ((f->version & 0xffff) || nunknown)
        (void)pgw_put_negotiate(&s->client_out, 0, unknown, nunknown);
    if (!user || !*user)
        return refuse(s, SES_R_REFUSED, "28000",
                      "no PostgreSQL user name specified in startup packet");
    if (strcmp(user, s->cfg->role))
        return refuse(s, SES_R_REFUSED, "28000",
                      "role \"%.64s\" is not served here: this proxy logs in as \"%s\"", user,
                      s->cfg->role);
    if (!db || !*db)
        db = user;
    if (strcmp(db, s->cfg->database))
        return refuse(s, SES_R_REFUSED, "3D000",
                      "database \"%.64s\" is not served here: this proxy serves \"%s\"", db,
                      s->cfg->database);
    if (repl && !option_false(repl))
        return refuse(s, SES_R_REFUSED, "0A000", "replication connections are not proxied");
    buf_reset(&s->params);
    for (size_t i = 0; i < f->nparams; i++) {
        const char *n = f->params[i].name;

        if (!strncmp(n, "_pq_.", 5) || !strcmp(n, "user") || !strcmp(n, "database") ||
            !strcmp(n, "replication"))
            continue;
        if (buf_add(&s->params, n, strlen(n) + 1) < 0 ||
            buf_add(&s->params, f->params[i].value, strlen(f->params[i].value) + 1) < 0)
            return refuse(s, SES_R_CLIENT, "08P01", "the startup parameters are too long");
    }
    if (s->cfg->password) {
        static const char mechs[] = SCRAM_MECH "\0";
        (void)pgw_put_auth(&s->client_out, PGW_AUTH_SASL, mechs, sizeof(mechs));
        s->state = ST_SASL_INIT;
        return SES_READ;
    }
    return start_upstream(s);
}

/* The first packets: 1 when one was handled and more may follow, else what to do. */
static int first_packet(struct session *s, enum session_do *next)
{
    struct pgw_first f;
    size_t n = 0;
    int rc = pgw_frame(&n, s->client_in.ptr, s->client_in.len, false, PGW_FIRST_MAX);

    if (rc == 0) {
        *next = SES_READ;
        return 0;
    }
    if (rc < 0 || pgw_first_parse(&f, s->client_in.ptr, n) < 0) {
        *next = refuse(s, SES_R_CLIENT, "08P01", "invalid startup packet: %s", err_msg());
        return 0;
    }
    switch (f.kind) {
    case PGW_SSL:
        buf_consume(&s->client_in, n);
        if (s->client_tls_done) {
            *next = refuse(s, SES_R_CLIENT, "08P01", "SSLRequest over TLS");
            return 0;
        }
        if (!s->cfg->client_tls) {
            (void)buf_addch(&s->client_out, 'N');
            return 1;
        }
        /* Bytes sent behind the request would be taken as if they came over TLS. */
        if (s->client_in.len) {
            *next = refuse(s, SES_R_CLIENT, "08P01", "data sent after SSLRequest before TLS");
            return 0;
        }
        (void)buf_addch(&s->client_out, 'S');
        s->state = ST_CLIENT_TLS;
        *next = SES_CLIENT_TLS;
        return 0;
    case PGW_GSSENC:
        buf_consume(&s->client_in, n);
        (void)buf_addch(&s->client_out, 'N');
        return 1;
    case PGW_CANCEL:
        buf_consume(&s->client_in, n);
        s->cancel_pid = f.pid;
        s->cancel_key = f.key;
        s->result = SES_R_CANCEL;
        s->state = ST_CLOSED;
        *next = SES_CANCEL;
        return 0;
    case PGW_STARTUP:
        break;
    }
    *next = startup(s, &f);
    buf_consume(&s->client_in, n);
    return *next == SES_READ ? 1 : 0;
}

static enum session_do sasl_message(struct session *s, const struct pgw_msg *m)
{
    struct buf reply = BUF_INIT(1024);
    enum session_do next;
    int rc;

    if (s->state == ST_SASL_INIT) {
        const unsigned char *data;
        const char *mech;
        unsigned char raw[SCRAM_NONCE_RAW];
        struct buf nonce = BUF_INIT(64);
        size_t n;

        if (pgw_read_sasl_initial(&mech, &data, &n, m) < 0 || !data)
            return refuse(s, SES_R_CLIENT, "08P01", "expected a SASLInitialResponse");
        if (strcmp(mech, SCRAM_MECH))
            return refuse(s, SES_R_CLIENT, "08P01",
                          "client selected an invalid SASL authentication mechanism");
        s->cfg->random(raw, sizeof(raw));
        (void)b64_encode(&nonce, raw, sizeof(raw));
        rc = scram_server_first(&s->scram, &reply, s->cfg->password, data, n, buf_str(&nonce));
        buf_release(&nonce);
        if (rc < 0) {
            buf_release(&reply);
            return refuse(s, SES_R_CLIENT, "08P01", "%s", err_msg());
        }
        (void)pgw_put_auth(&s->client_out, PGW_AUTH_SASL_CONTINUE, reply.ptr, reply.len);
        buf_release(&reply);
        s->state = ST_SASL_FINAL;
        return SES_READ;
    }
    rc = scram_server_final(&s->scram, &reply, m->body, m->len);
    if (rc == ERR_REJECTED)
        next = refuse(s, SES_R_REFUSED, "28P01", "password authentication failed for user \"%s\"",
                      s->cfg->role);
    else if (rc < 0)
        next = refuse(s, SES_R_CLIENT, "08P01", "%s", err_msg());
    else {
        (void)pgw_put_auth(&s->client_out, PGW_AUTH_SASL_FINAL, reply.ptr, reply.len);
        next = start_upstream(s);
    }
    buf_release(&reply);
    scram_exchange_release(&s->scram);
    return next;
}

enum session_do session_client_in(struct session *s, const void *data, size_t len)
{
    enum session_do next = SES_READ;

    if (s->state == ST_CLOSED || s->state == ST_RELAY || s->state == ST_CLIENT_TLS)
        return s->state == ST_CLOSED ? SES_CLOSE : next;
    if (buf_add(&s->client_in, data, len) < 0)
        return refuse(s, SES_R_CLIENT, "08P01", "the client sent over %zu bytes before logging in",
                      s->client_in.max);
    while (s->state == ST_FIRST)
        if (!first_packet(s, &next))
            return next;
    while (s->state == ST_SASL_INIT || s->state == ST_SASL_FINAL) {
        struct pgw_msg m;
        size_t n = 0;
        int rc = pgw_frame(&n, s->client_in.ptr, s->client_in.len, true, SASL_MSG_MAX);

        if (rc == 0)
            return SES_READ;
        if (rc < 0)
            return refuse(s, SES_R_CLIENT, "08P01", "%s", err_msg());
        pgw_msg_split(&m, s->client_in.ptr, n);
        if (m.type == 'X')
            return quiet_close(s, SES_R_CLIENT, "the client ended the login");
        if (m.type != 'p')
            next = refuse(s, SES_R_CLIENT, "08P01", "expected a password message, got '%c'",
                          m.type);
        else
            next = sasl_message(s, &m);
        OPENSSL_cleanse(s->client_in.ptr, n);
        buf_consume(&s->client_in, n);
        if (next != SES_READ)
            return next;
    }
    /* Later bytes (a query sent ahead) wait in client_in for the relay. */
    return next;
}

enum session_do session_client_tls(struct session *s)
{
    s->client_tls_done = true;
    s->state = ST_FIRST;
    return SES_READ;
}

/* ---- the upstream's side ---- */

enum session_do session_upstream_connected(struct session *s)
{
    (void)pgw_put_ssl_request(&s->upstream_out);
    s->state = ST_UP_SSL;
    return SES_READ;
}

enum session_do session_upstream_tls(struct session *s)
{
    struct pgw_param p[PGW_PARAMS_MAX + 2];
    size_t n = 0;

    p[n++] = (struct pgw_param){ "user", s->cfg->role };
    p[n++] = (struct pgw_param){ "database", s->cfg->database };
    for (size_t off = 0; off < s->params.len && n < PGW_PARAMS_MAX + 2;) {
        p[n].name = s->params.ptr + off;
        off += strlen(p[n].name) + 1;
        p[n].value = s->params.ptr + off;
        off += strlen(p[n].value) + 1;
        n++;
    }
    if (pgw_put_startup(&s->upstream_out, p, n) < 0)
        return refuse(s, SES_R_ERROR, "08001", "the startup parameters are too long");
    s->state = ST_UP_AUTH;
    return SES_READ;
}

enum session_do session_upstream_failed(struct session *s, int rc)
{
    if (s->state == ST_CLOSED)
        return SES_CLOSE;
    return refuse(s, rc == ERR_TLS ? SES_R_TLS : SES_R_UNREACHABLE, "08001",
                  "could not log in to %s: %s", s->cfg->upstream, err_msg());
}

enum session_do session_timeout(struct session *s)
{
    if (s->state == ST_CLOSED)
        return SES_CLOSE;
    if (s->state < ST_CONNECTING)
        return refuse(s, SES_R_CLIENT, "08P01", "the client did not finish its login in time");
    return refuse(s, SES_R_UNREACHABLE, "08001", "%s did not complete the login in time",
                  s->cfg->upstream);
}

static enum session_do send_password(struct session *s)
{
    struct sbuf *tok = NULL, *msg = NULL;
    int rc;

    if (s->upstream_secret)
        return refuse(s, SES_R_ERROR, "08001", "%s asked for the password twice",
                      s->cfg->upstream);
    if (s->cfg->token(s->cfg->token_ctx, &tok) < 0)
        return refuse(s, SES_R_NO_TOKEN, "08001", "could not get a token to log in to %s: %s",
                      s->cfg->upstream, err_msg());
    rc = pgw_put_password(&msg, tok);
    if (!rc)
        rc = buf_add(&s->upstream_out, sbuf_expose(msg), sbuf_len(msg));
    sbuf_free(msg);
    sbuf_free(tok);
    if (rc < 0)
        return refuse(s, SES_R_ERROR, "08001", "the token does not fit in a password message");
    s->upstream_secret = true;
    return SES_READ;
}

/* The server's refusal goes to the client as it came. */
static enum session_do server_error(struct session *s, const unsigned char *raw, size_t n,
                                    const struct pgw_msg *m)
{
    const char *code, *msg;

    if (pgw_read_fields(m) < 0)
        return refuse(s, SES_R_ERROR, "08001", "%s sent a malformed ErrorResponse",
                      s->cfg->upstream);
    code = pgw_field(m, 'C');
    msg = pgw_field(m, 'M');
    snprintf(s->reason, sizeof(s->reason), "%s refused the login: %s (%s)", s->cfg->upstream,
             msg ? msg : "no message", code ? code : "no SQLSTATE");
    s->result = code && !strncmp(code, "28", 2) ? SES_R_REJECTED : SES_R_ERROR;
    s->state = ST_CLOSED;
    (void)buf_add(&s->client_out, raw, n);
    return SES_CLOSE;
}

static enum session_do welcome(struct session *s, const unsigned char *raw, size_t n)
{
    (void)pgw_put_auth(&s->client_out, PGW_AUTH_OK, NULL, 0);
    if (buf_add(&s->client_out, s->welcome.ptr, s->welcome.len) < 0 ||
        pgw_put_backend_key(&s->client_out, s->pid, s->key) < 0 ||
        buf_add(&s->client_out, raw, n) < 0)
        return refuse(s, SES_R_ERROR, "08001", "the server's welcome is too long");
    buf_release(&s->welcome);
    /* What the client sent ahead goes up first. */
    if (s->client_in.len && buf_add(&s->upstream_out, s->client_in.ptr, s->client_in.len) < 0)
        return refuse(s, SES_R_CLIENT, "08P01", "the client sent too much before its login ended");
    buf_reset(&s->client_in);
    s->result = SES_R_OK;
    s->state = ST_RELAY;
    return SES_RELAY;
}

static const char *auth_name(uint32_t code)
{
    switch (code) {
    case PGW_AUTH_MD5: return "MD5";
    case PGW_AUTH_SASL: return "SASL (SCRAM)";
    case 2: return "Kerberos";
    case 7: return "GSSAPI";
    case 9: return "SSPI";
    default: return "another";
    }
}

/* One whole message from the server during its login. */
static enum session_do upstream_message(struct session *s, const unsigned char *raw, size_t n)
{
    const unsigned char *data;
    const char *name, *value;
    struct pgw_msg m;
    uint32_t code;
    size_t dlen;
    char st;

    pgw_msg_split(&m, raw, n);
    switch (m.type) {
    case 'E':
        return server_error(s, raw, n, &m);
    case 'R':
        if (s->state != ST_UP_AUTH || pgw_read_auth(&code, &data, &dlen, &m) < 0)
            break;
        if (code == PGW_AUTH_CLEARTEXT)
            return send_password(s);
        if (code == PGW_AUTH_OK) {
            if (!s->upstream_secret)
                return refuse(s, SES_R_ERROR, "08001",
                              "%s let the role in without a password: the token was not checked",
                              s->cfg->upstream);
            s->state = ST_UP_PARAMS;
            return SES_READ;
        }
        return refuse(s, SES_R_ERROR, "08001",
                      "%s asked for %s authentication; a token is sent only as a password "
                      "over TLS",
                      s->cfg->upstream, auth_name(code));
    case 'N':
        if (pgw_read_fields(&m) < 0 || buf_add(&s->welcome, raw, n) < 0)
            break;
        return SES_READ;
    case 'S':
        if (s->state != ST_UP_PARAMS || pgw_read_param_status(&name, &value, &m) < 0 ||
            buf_add(&s->welcome, raw, n) < 0)
            break;
        return SES_READ;
    case 'K':
        if (s->state != ST_UP_PARAMS || pgw_read_backend_key(&s->up_pid, &s->up_key, &m) < 0)
            break;
        return SES_READ;
    case 'Z':
        if (s->state != ST_UP_PARAMS || pgw_read_ready(&st, &m) < 0)
            break;
        return welcome(s, raw, n);
    default:
        break;
    }
    return refuse(s, SES_R_ERROR, "08001", "%s sent an unexpected '%c' message during the login",
                  s->cfg->upstream, m.type);
}

enum session_do session_upstream_in(struct session *s, const void *data, size_t len)
{
    if (s->state == ST_CLOSED)
        return SES_CLOSE;
    if (s->state == ST_RELAY || s->state == ST_UP_TLS || s->state < ST_UP_SSL)
        return SES_READ;
    if (buf_add(&s->upstream_in, data, len) < 0)
        return refuse(s, SES_R_ERROR, "08001", "%s sent too much during the login",
                      s->cfg->upstream);
    if (s->state == ST_UP_SSL) {
        char c;

        if (!s->upstream_in.len)
            return SES_READ;
        c = s->upstream_in.ptr[0];
        buf_consume(&s->upstream_in, 1);
        if (c == 'N')
            return refuse(s, SES_R_TLS, "08001", "%s does not accept TLS", s->cfg->upstream);
        if (c != 'S')
            return refuse(s, SES_R_ERROR, "08001", "%s did not answer the SSLRequest",
                          s->cfg->upstream);
        if (s->upstream_in.len)
            return refuse(s, SES_R_ERROR, "08001", "%s sent data before TLS", s->cfg->upstream);
        s->state = ST_UP_TLS;
        return SES_UPSTREAM_TLS;
    }
    for (;;) {
        enum session_do next;
        size_t n = 0;
        int rc = pgw_frame(&n, s->upstream_in.ptr, s->upstream_in.len, true, SESSION_MSG_MAX);

        if (rc == 0)
            return SES_READ;
        if (rc < 0)
            return refuse(s, SES_R_ERROR, "08001", "%s: %s", s->cfg->upstream, err_msg());
        next = upstream_message(s, (const unsigned char *)s->upstream_in.ptr, n);
        buf_consume(&s->upstream_in, n);
        if (next == SES_RELAY && s->upstream_in.len) {
            /* the server spoke first after its welcome: pass it on */
            (void)buf_add(&s->client_out, s->upstream_in.ptr, s->upstream_in.len);
            buf_reset(&s->upstream_in);
        }
        if (next != SES_READ)
            return next;
    }
}
