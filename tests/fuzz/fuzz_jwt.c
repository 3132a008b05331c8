/* jwt_claims and jwt_read_times (base/jwt.h). The first byte picks a mode:
 *   even: the rest is a token as received;
 *   odd:  the rest is a claims payload, wrapped here as header.base64url(payload).signature,
 *         which jwt_claims must read back exactly when it is a JSON object. */
#include <cJSON.h>

#include "base/b64.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/jwt.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static void check_token(const char *tok, size_t len)
{
    struct jwt_times t;
    cJSON *claims = NULL;
    int rc_claims = jwt_claims(&claims, tok, len);
    int rc_times = jwt_read_times(&t, tok, len);

    FUZZ_CHECK(rc_claims == 0 || rc_claims == ERR_PARSE || rc_claims == ERR_TOOBIG);
    FUZZ_CHECK(rc_times == 0 || rc_times == ERR_PARSE || rc_times == ERR_TOOBIG);
    FUZZ_CHECK(rc_claims == 0 || rc_times < 0);   /* times need claims */
    if (rc_claims == 0) {
        FUZZ_CHECK(cJSON_IsObject(claims));
        cJSON_Delete(claims);
    }
}

/* base64url without padding of p[0..n) into b. */
static void b64url(struct buf *b, const void *p, size_t n)
{
    size_t start = b->len;

    FUZZ_CHECK(b64_encode(b, p, n) == 0);
    while (b->len > start && b->ptr[b->len - 1] == '=')
        b->len--;
    b->ptr[b->len] = '\0';
    for (size_t i = start; i < b->len; i++)
        b->ptr[i] = b->ptr[i] == '+' ? '-' : b->ptr[i] == '/' ? '_' : b->ptr[i];
}

static void check_wrapped(const char *payload, size_t n)
{
    struct buf tok = BUF_INIT(SIZE_MAX);
    cJSON *want = NULL, *got = NULL;
    bool is_obj;
    int rc;

    if (n > JWT_MAX_LEN / 2)
        return;
    is_obj = json_parse(&want, payload, n, JWT_MAX_LEN) == 0 && cJSON_IsObject(want);
    buf_addstr(&tok, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.");
    b64url(&tok, payload, n);
    buf_addstr(&tok, ".c2lnbmF0dXJl");
    rc = jwt_claims(&got, tok.ptr, tok.len);
    FUZZ_CHECK((rc == 0) == is_obj);
    if (rc == 0) {
        /* Same bytes, same tree (cJSON_Compare would trip on repeated keys). */
        char *a = cJSON_PrintUnformatted(want), *b = cJSON_PrintUnformatted(got);
        FUZZ_CHECK(a && b && strcmp(a, b) == 0);
        cJSON_free(a);
        cJSON_free(b);
    }
    check_token(tok.ptr, tok.len);
    cJSON_Delete(got);
    cJSON_Delete(want);
    buf_release(&tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        check_wrapped((const char *)data + 1, size - 1);
    else
        check_token((const char *)data + 1, size - 1);
    return 0;
}
