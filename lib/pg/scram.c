/* SCRAM-SHA-256's server side (pg/scram.h). The messages are short texts of
 * "x=value" attributes separated by commas; each is copied to a NUL-ended
 * buffer first (no NUL may be inside), so that the parsing below is plain
 * string work. The proof is checked as RFC 5802 section 3 says: the client's
 * key is the proof XOR HMAC(StoredKey, AuthMessage), and its hash must be the
 * StoredKey; compared in constant time. */
#include "pg/scram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/b64.h"
#include "base/err.h"

#define MSG_MAX 1024   /* of a client's message */
#define PASSWORD_MAX 1024

int scram_secret_make(struct scram_secret *out, const struct sbuf *password, int iterations,
                      const unsigned char *salt, size_t salt_len)
{
    const char *pw = sbuf_expose(password);
    size_t n = sbuf_len(password);
    unsigned char salted[SHA256_LEN], client_key[SHA256_LEN];

    if (n < 1 || n > PASSWORD_MAX)
        return err_set(ERR_INVALID, "the password must have 1 to %d characters", PASSWORD_MAX);
    for (size_t i = 0; i < n; i++)
        if (pw[i] < 0x20 || pw[i] > 0x7e)
            return err_set(ERR_INVALID, "the password must be printable ASCII (character %zu "
                                        "is not)", i + 1);
    if (iterations < 1 || iterations > 1000000)
        return err_set(ERR_INVALID, "SCRAM iterations %d out of 1..1000000", iterations);
    if (salt_len < 1 || salt_len > SCRAM_SALT_MAX)
        return err_set(ERR_INVALID, "a SCRAM salt of %zu bytes (1..%d)", salt_len,
                       SCRAM_SALT_MAX);
    memset(out, 0, sizeof(*out));
    out->iterations = iterations;
    out->salt_len = salt_len;
    memcpy(out->salt, salt, salt_len);
    pbkdf2_sha256(salted, pw, n, salt, salt_len, iterations);
    hmac_sha256(client_key, salted, sizeof(salted), "Client Key", 10);
    sha256(out->stored_key, client_key, sizeof(client_key));
    hmac_sha256(out->server_key, salted, sizeof(salted), "Server Key", 10);
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return 0;
}

/* Decodes the base64 text s[0..len) into exactly want bytes of out (or, when
 * want is 0, 1..cap bytes, the count in *got). */
static int decode_exact(unsigned char *out, size_t *got, size_t cap, const char *s, size_t len,
                        size_t want)
{
    unsigned char tmp[B64_DECODED_MAX(128)];
    size_t n = 0;

    if (len > 128 || b64_decode(tmp, &n, s, len, false) < 0 || (want ? n != want : !n) ||
        n > cap)
        return ERR_PARSE;
    memcpy(out, tmp, n);
    if (got)
        *got = n;
    OPENSSL_cleanse(tmp, sizeof(tmp));
    return 0;
}

int scram_secret_parse(struct scram_secret *out, const char *text)
{
    const char *iter, *salt, *keys, *server;
    struct scram_secret s = { 0 };
    char *end;
    long it;

    if (strncmp(text, SCRAM_MECH "$", sizeof(SCRAM_MECH)))
        goto bad;
    iter = text + sizeof(SCRAM_MECH);
    if (!(salt = strchr(iter, ':')) || !(keys = strchr(++salt, '$')) ||
        !(server = strchr(++keys, ':')))
        goto bad;
    server++;
    it = strtol(iter, &end, 10);
    if (end != salt - 1 || it < 1 || it > 1000000)
        goto bad;
    s.iterations = (int)it;
    if (decode_exact(s.salt, &s.salt_len, SCRAM_SALT_MAX, salt, (size_t)(keys - 1 - salt), 0) ||
        decode_exact(s.stored_key, NULL, SHA256_LEN, keys, (size_t)(server - 1 - keys),
                     SHA256_LEN) ||
        decode_exact(s.server_key, NULL, SHA256_LEN, server, strlen(server), SHA256_LEN))
        goto bad;
    *out = s;
    OPENSSL_cleanse(&s, sizeof(s));
    return 0;
bad:
    OPENSSL_cleanse(&s, sizeof(s));
    return err_set(ERR_INVALID, "not a SCRAM-SHA-256 verifier as PostgreSQL stores one "
                                "(SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)");
}

void scram_secret_clear(struct scram_secret *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
}

/* Copies a client message into b as a C string. */
static int take_msg(struct buf *b, const void *data, size_t len, const char *which)
{
    buf_reset(b);
    if (len > MSG_MAX || memchr(data, '\0', len))
        return err_set(ERR_PARSE, "the SCRAM %s message is over %d bytes or holds a NUL", which,
                       MSG_MAX);
    return buf_add(b, data, len) < 0 ? err_set(ERR_PARSE, "the SCRAM %s message is too long",
                                               which)
                                     : 0;
}

/* The value of attribute name at *p ("name=value" up to ',' or the end), its
 * length in *n; *p moves past the value (to its ',' or the end). NULL when the
 * attribute at *p is another. */
static const char *attr(const char **p, char name, size_t *n)
{
    const char *v;

    if ((*p)[0] != name || (*p)[1] != '=')
        return NULL;
    v = *p + 2;
    *n = strcspn(v, ",");
    *p = v + *n;
    return v;
}

/* A nonce is printable ASCII but ',' (RFC 5802's "printable"). */
static bool nonce_ok(const char *s, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
            return false;
    return true;
}

static int parse_first(struct scram_exchange *ex, struct buf *msg, const char *server_nonce)
{
    const char *p = msg->ptr, *bare, *nonce;
    size_t n;

    if (!strncmp(p, "p=", 2))
        return err_set(ERR_PARSE, "the client asked for channel binding, which was not offered");
    if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',')
        return err_set(ERR_PARSE, "the SCRAM client-first message has no GS2 header");
    if (p[2] != ',')
        return err_set(ERR_PARSE, "the client named an authorization identity (not supported)");
    memcpy(ex->gs2, p, 3);
    ex->gs2[3] = '\0';
    bare = p + 3;
    p = bare;
    if (p[0] == 'm' && p[1] == '=')
        return err_set(ERR_PARSE, "the client asked for a SCRAM extension (not supported)");
    if (!attr(&p, 'n', &n) || *p++ != ',' || !(nonce = attr(&p, 'r', &n)) || !nonce_ok(nonce, n))
        return err_set(ERR_PARSE, "the SCRAM client-first message lacks its user or nonce");
    buf_reset(&ex->client_first_bare);
    buf_reset(&ex->nonce);
    if (buf_addstr(&ex->client_first_bare, bare) < 0 || buf_add(&ex->nonce, nonce, n) < 0 ||
        buf_addstr(&ex->nonce, server_nonce) < 0)
        return err_set(ERR_PARSE, "the SCRAM nonce is too long");
    return 0;
}

int scram_server_first(struct scram_exchange *ex, struct buf *reply,
                       const struct scram_secret *secret, const void *client_first, size_t len,
                       const char *server_nonce)
{
    struct buf msg = BUF_INIT(MSG_MAX);
    int rc;

    ex->secret = secret;
    if (!nonce_ok(server_nonce, strlen(server_nonce)))
        rc = err_set(ERR_PARSE, "the server nonce is not printable");
    else if ((rc = take_msg(&msg, client_first, len, "client-first")) == 0 &&
             (rc = parse_first(ex, &msg, server_nonce)) == 0) {
        buf_reset(&ex->server_first);
        if ((rc = buf_addf(&ex->server_first, "r=%s,s=", buf_str(&ex->nonce))) < 0 ||
            (rc = b64_encode(&ex->server_first, secret->salt, secret->salt_len)) < 0 ||
            (rc = buf_addf(&ex->server_first, ",i=%d", secret->iterations)) < 0 ||
            (rc = buf_add(reply, ex->server_first.ptr, ex->server_first.len)) < 0)
            rc = err_set(rc, "the SCRAM server-first message does not fit");
    }
    buf_release(&msg);
    return rc;
}

/* Checks the client-final message in msg (a C string) against the exchange;
 * on success *without_proof_len is the length of its part before ",p=" and
 * proof holds the decoded proof. */
static int parse_final(struct scram_exchange *ex, const char *msg, size_t *without_proof_len,
                       unsigned char proof[SHA256_LEN])
{
    const char *p = msg, *cb, *nonce, *pr;
    struct buf want = BUF_INIT(16);
    size_t n, cn, pn;
    bool cb_ok;

    if (!(cb = attr(&p, 'c', &cn)) || *p++ != ',' || !(nonce = attr(&p, 'r', &n)))
        return err_set(ERR_PARSE, "the SCRAM client-final message lacks its binding or nonce");
    (void)b64_encode(&want, ex->gs2, strlen(ex->gs2));
    cb_ok = cn == want.len && !memcmp(cb, want.ptr, cn);
    buf_release(&want);
    if (!cb_ok)
        return err_set(ERR_PARSE, "the SCRAM channel binding does not match the client's header");
    if (n != ex->nonce.len || CRYPTO_memcmp(nonce, ex->nonce.ptr, n))
        return err_set(ERR_PARSE, "the SCRAM nonce is not this exchange's");
    /* extensions, then the proof last */
    for (;;) {
        const char *at = p;

        if (*p++ != ',')
            return err_set(ERR_PARSE, "the SCRAM client-final message has no proof");
        if ((pr = attr(&p, 'p', &pn))) {
            if (*p)
                return err_set(ERR_PARSE, "the SCRAM proof is not the last attribute");
            if (decode_exact(proof, NULL, SHA256_LEN, pr, pn, SHA256_LEN))
                return err_set(ERR_PARSE, "the SCRAM proof is not 32 bytes of base64");
            *without_proof_len = (size_t)(at - msg);
            return 0;
        }
        if (!*p || p[1] != '=')
            return err_set(ERR_PARSE, "the SCRAM client-final message is malformed");
        p += strcspn(p, ",");
    }
}

int scram_server_final(struct scram_exchange *ex, struct buf *reply, const void *client_final,
                       size_t len)
{
    struct buf msg = BUF_INIT(MSG_MAX), auth = BUF_INIT(3 * MSG_MAX + 4);
    unsigned char proof[SHA256_LEN] = { 0 }, sig[SHA256_LEN], key[SHA256_LEN];
    size_t wp = 0;
    int rc;

    if (!ex->secret || !ex->server_first.len)
        return err_set(ERR_PARSE, "a SCRAM client-final message before the first");
    if ((rc = take_msg(&msg, client_final, len, "client-final")) < 0 ||
        (rc = parse_final(ex, msg.ptr, &wp, proof)) < 0)
        goto out;
    if (buf_add(&auth, ex->client_first_bare.ptr, ex->client_first_bare.len) < 0 ||
        buf_addch(&auth, ',') < 0 ||
        buf_add(&auth, ex->server_first.ptr, ex->server_first.len) < 0 ||
        buf_addch(&auth, ',') < 0 || buf_add(&auth, msg.ptr, wp) < 0) {
        rc = err_set(ERR_PARSE, "the SCRAM messages are too long");
        goto out;
    }
    hmac_sha256(sig, ex->secret->stored_key, SHA256_LEN, auth.ptr, auth.len);
    for (int i = 0; i < SHA256_LEN; i++)
        key[i] = proof[i] ^ sig[i];
    sha256(sig, key, sizeof(key));
    if (CRYPTO_memcmp(sig, ex->secret->stored_key, SHA256_LEN)) {
        rc = err_set(ERR_REJECTED, "the SCRAM proof is wrong (a wrong password)");
        goto out;
    }
    hmac_sha256(sig, ex->secret->server_key, SHA256_LEN, auth.ptr, auth.len);
    if ((rc = buf_addstr(reply, "v=")) < 0 || (rc = b64_encode(reply, sig, sizeof(sig))) < 0)
        rc = err_set(rc, "the SCRAM server-final message does not fit");
out:
    OPENSSL_cleanse(proof, sizeof(proof));
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(sig, sizeof(sig));
    buf_release(&msg);
    buf_release(&auth);
    return rc;
}

void scram_exchange_release(struct scram_exchange *ex)
{
    buf_release(&ex->client_first_bare);
    buf_release(&ex->server_first);
    buf_release(&ex->nonce);
    ex->gs2[0] = '\0';
    ex->secret = NULL;
}
