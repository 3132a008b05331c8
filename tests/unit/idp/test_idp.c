#include "t.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/b64.h"
#include "base/buf.h"
#include "base/err.h"
#include "idp/idp.h"

#define NOW INT64_C(1790000000)

static void b64url(struct buf *out, const char *s)
{
    struct buf p = BUF_INIT(8192);

    b64_encode(&p, s, strlen(s));
    for (size_t i = 0; i < p.len && p.ptr[i] != '='; i++)
        buf_addch(out, p.ptr[i] == '+' ? '-' : p.ptr[i] == '/' ? '_' : p.ptr[i]);
    buf_release(&p);
}

/* header.payload.sig from a JSON header and payload; sig may be "". */
static char *jwt(const char *header, const char *payload, const char *sig)
{
    struct buf b = BUF_INIT(16384);

    b64url(&b, header);
    buf_addch(&b, '.');
    b64url(&b, payload);
    buf_addch(&b, '.');
    buf_addstr(&b, sig);
    return buf_detach(&b, NULL);
}

static char *times_jwt(long long iat, long long exp)
{
    char claims[256];

    snprintf(claims, sizeof(claims), "{\"aud\":\"https://ossrdbms-aad.database.windows.net\","
             "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}", iat, iat, exp);
    return jwt("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims, "c2lnbmF0dXJl");
}

/* Parses a 200 reply {"token_type":"Bearer","expires_in":<ein>,"access_token":"<tok>"}. */
static int parse200(struct idp_token *out, const char *ein, const char *tok)
{
    struct buf b = BUF_INIT(1 << 20);
    int rc;

    buf_addf(&b, "{\"token_type\":\"Bearer\",\"expires_in\":%s,\"access_token\":\"%s\"}", ein, tok);
    rc = idp_parse_token_response(out, 200, b.ptr, b.len, NOW);
    buf_release(&b);
    return rc;
}

static void test_times_from_receipt(void)
{
    struct idp_token t = { NULL, 0, 0 };
    /* Entra's backdating: iat 5 minutes before receipt; the life counts from receipt. */
    char *tok = times_jwt(NOW - 300, NOW + 3600);

    T_RC(parse200(&t, "3600", tok), 0);
    T_EQ_INT(t.issued_at, NOW);
    T_EQ_INT(t.expires_at, NOW + 3600);
    T_EQ_INT(sbuf_len(t.token), strlen(tok));
    idp_token_release(&t);
    free(tok);
}

static void test_issuer_clock_behind(void)
{
    struct idp_token t = { NULL, 0, 0 };
    /* Issuer 3 minutes behind, 300 s token: 120 s left on our clock. */
    char *tok = times_jwt(NOW - 180 - 300, NOW - 180 + 300);

    T_RC(parse200(&t, "300", tok), 0);
    T_EQ_INT(t.issued_at, NOW);
    T_EQ_INT(t.expires_at, NOW + 120);
    idp_token_release(&t);
    free(tok);
}

static void test_issuer_clock_ahead(void)
{
    struct idp_token t = { NULL, 0, 0 };
    char *tok = times_jwt(NOW + 180 - 300, NOW + 180 + 90);

    /* Within 5 minutes of receipt + expires_in: exp (what the database checks) is kept. */
    T_RC(parse200(&t, "90", tok), 0);
    T_EQ_INT(t.issued_at, NOW);
    T_EQ_INT(t.expires_at, NOW + 270);
    idp_token_release(&t);
    free(tok);
    /* Far later than expires_in says: the earlier is believed. */
    tok = times_jwt(NOW, NOW + 7200);
    T_RC(parse200(&t, "600", tok), 0);
    T_EQ_INT(t.expires_at, NOW + 600);
    idp_token_release(&t);
    free(tok);
}

static void test_expired_refused(void)
{
    struct idp_token t = { NULL, 0, 0 };
    char *tok = times_jwt(NOW - 400, NOW - 10);

    /* Even a few seconds: writing it would only rotate again at once. */
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "expired 10s ago") != NULL);
    T_CHECK(t.token == NULL);
    free(tok);
    tok = times_jwt(NOW - 400, NOW);
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    free(tok);
    /* Issuer more than the token's life behind: expired on our clock. */
    tok = times_jwt(NOW - 600 - 300, NOW - 600 + 300);
    T_RC(parse200(&t, "300", tok), ERR_PARSE);
    free(tok);
}

static void test_bad_jwts(void)
{
    struct idp_token t = { NULL, 0, 0 };
    char *tok;

    /* Payload not base64url. */
    T_RC(parse200(&t, "3600", "eyJhbGciOiJSUzI1NiJ9.!!!not-base64!!!.c2ln"), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "malformed JWT") != NULL);
    /* No exp, even with expires_in: the database refuses such a token. */
    tok = jwt("{\"alg\":\"RS256\"}", "{\"aud\":\"x\",\"iat\":1789999000}", "c2ln");
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    free(tok);
    /* exp not a number. */
    tok = jwt("{\"alg\":\"RS256\"}", "{\"exp\":{\"at\":1790003600}}", "c2ln");
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    free(tok);
    /* Unsigned: alg none, with or without a signature part; no alg; header not JSON. */
    tok = jwt("{\"alg\":\"none\"}", "{\"exp\":1790003600}", "");
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "unsigned") != NULL);
    free(tok);
    tok = jwt("{\"alg\":\"NONE\"}", "{\"exp\":1790003600}", "c2ln");
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    free(tok);
    tok = jwt("{\"alg\":\"RS256\"}", "{\"exp\":1790003600}", "");
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    free(tok);
    tok = jwt("{\"typ\":\"JWT\"}", "{\"exp\":1790003600}", "c2ln");
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    free(tok);
    tok = jwt("not json", "{\"exp\":1790003600}", "c2ln");
    T_RC(parse200(&t, "3600", tok), ERR_PARSE);
    free(tok);
    /* Two parts only. */
    T_RC(parse200(&t, "3600", "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3OTAwMDM2MDB9"), ERR_PARSE);
    T_CHECK(t.token == NULL);
}

static void test_wrong_types(void)
{
    struct idp_token t = { NULL, 0, 0 };
    static const char *bodies[] = {
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":12345}",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":[\"a\"]}",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":null}",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"\"}",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600}",
        "[\"access_token\"]",
        "\"access_token\"",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"abc",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"a b\"}",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"a\\nb\"}",
        "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"a\\u00e9b\"}",
    };
    char *tok = times_jwt(NOW, NOW + 3600);

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        T_RC(idp_parse_token_response(&t, 200, bodies[i], strlen(bodies[i]), NOW), ERR_PARSE);
        T_CHECK(t.token == NULL);
    }
    /* expires_in as a string (IMDS sends strings) is read; exp still decides. */
    T_RC(parse200(&t, "\"3600\"", tok), 0);
    T_EQ_INT(t.expires_at, NOW + 3600);
    idp_token_release(&t);
    free(tok);
    /* An opaque token lives on expires_in; without a usable one it is refused. */
    T_RC(parse200(&t, "600", "opaque-token_0123"), 0);
    T_EQ_INT(t.issued_at, NOW);
    T_EQ_INT(t.expires_at, NOW + 600);
    idp_token_release(&t);
    T_RC(parse200(&t, "\"ten minutes\"", "opaque-token_0123"), ERR_PARSE);
    T_RC(parse200(&t, "{}", "opaque-token_0123"), ERR_PARSE);
    T_RC(parse200(&t, "-5", "opaque-token_0123"), ERR_PARSE);
}

static void test_errors_and_hostile_bodies(void)
{
    struct idp_token t = { NULL, 0, 0 };
    const char *aad = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700213: No "
                      "matching federated identity record\\r\\nTrace ID: x\"}";
    struct buf deep = BUF_INIT(1 << 20);

    T_RC(idp_parse_token_response(&t, 429, "", 0, NOW), ERR_UNAVAILABLE);
    T_RC(idp_parse_token_response(&t, 503, "{}", 2, NOW), ERR_UNAVAILABLE);
    T_RC(idp_parse_token_response(&t, 401, aad, strlen(aad), NOW), ERR_REJECTED);
    T_CHECK(strstr(err_msg(), "AADSTS700213") != NULL && !strstr(err_msg(), "Trace ID"));
    buf_addstr(&deep, "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":");
    for (int i = 0; i < 100000; i++)
        buf_addch(&deep, '[');
    for (int i = 0; i < 100000; i++)
        buf_addch(&deep, ']');
    buf_addch(&deep, '}');
    T_RC(idp_parse_token_response(&t, 200, deep.ptr, deep.len, NOW), ERR_PARSE);
    T_CHECK(t.token == NULL);
    buf_release(&deep);
}

int main(void)
{
    T_RUN(test_times_from_receipt);
    T_RUN(test_issuer_clock_behind);
    T_RUN(test_issuer_clock_ahead);
    T_RUN(test_expired_refused);
    T_RUN(test_bad_jwts);
    T_RUN(test_wrong_types);
    T_RUN(test_errors_and_hostile_bodies);
    return t_done();
}
