#include "base/jwt.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/b64.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/banned.h"

int jwt_claims(cJSON **out, const char *token, size_t len)
{
    const char *dot1, *dot2, *p;
    unsigned char *raw = NULL;
    size_t plen, rawlen = 0;
    cJSON *claims = NULL;
    int rc;

    if (len > JWT_MAX_LEN)
        return err_set(ERR_TOOBIG, "token of %zu bytes is over the %d-byte limit", len,
                       JWT_MAX_LEN);
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) ||
        dot1 == token)
        return err_set(ERR_PARSE, "token is not a JWT (want header.payload.signature)");
    p = dot1 + 1;
    plen = (size_t)(dot2 - p);
    raw = xmalloc(B64_DECODED_MAX(plen) + 1);
    if ((rc = b64_decode(raw, &rawlen, p, plen, true)) < 0) {
        rc = err_set(ERR_PARSE, "token payload is not base64url");
        goto out;
    }
    if ((rc = json_parse(&claims, (const char *)raw, rawlen, JWT_MAX_LEN)) < 0) {
        rc = err_set(ERR_PARSE, "token payload is not JSON");
        goto out;
    }
    if (!cJSON_IsObject(claims)) {
        rc = err_set(ERR_PARSE, "token payload is not a JSON object");
        goto out;
    }
    *out = claims;
    claims = NULL;
out:
    cJSON_Delete(claims);
    if (raw) {
        OPENSSL_cleanse(raw, B64_DECODED_MAX(plen) + 1);
        free(raw);
    }
    return rc;
}

int jwt_read_times(struct jwt_times *out, const char *token, size_t len)
{
    struct jwt_times t = { 0, 0, 0 };
    cJSON *claims = NULL;
    int rc;

    if ((rc = jwt_claims(&claims, token, len)) < 0)
        return rc;
    if ((rc = json_i64(&t.exp, claims, "exp")) < 0) {
        rc = err_set(ERR_PARSE, "token has no numeric exp claim");
        goto out;
    }
    if (json_i64(&t.nbf, claims, "nbf") < 0)
        t.nbf = 0;
    if (json_i64(&t.iat, claims, "iat") < 0)
        t.iat = 0;
    *out = t;
    rc = 0;
out:
    cJSON_Delete(claims);
    return rc;
}
