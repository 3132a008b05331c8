/* pg_check_classify (pg/pgcheck.h) of a libpq error message. The first byte's low 6 bits are
 * the length of a token taken from the start of the rest (0: no token); the remainder is the
 * message. Invariants: a known class; a SQLSTATE of 5 characters or none; a message of one line
 * under PG_CHECK_MESSAGE_MAX that holds neither the token nor any of its dot-separated parts
 * of 16 bytes or more (checked for JWT-shaped tokens, the only kind minted: base64url parts
 * joined by single dots). */
#include "base/sbuf.h"
#include "pg/pgcheck.h"
#include "fuzz.h"

#define REDACT_MIN_PART 16 /* PG_REDACT_MIN_PART in lib/pg/classify.c */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static bool jwt_shaped(const char *t, size_t n)
{
    if (n < REDACT_MIN_PART || t[0] == '.' || t[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
        if (c == '.' && t[i + 1] == '.')
            return false;
    }
    return true;
}

static void check_redacted(const char *msg, const char *t, size_t n)
{
    FUZZ_CHECK(!fuzz_contains(msg, t, n));
    for (size_t p = 0; p < n;) {
        const char *dot = memchr(t + p, '.', n - p);
        size_t plen = (dot ? (size_t)(dot - t) : n) - p;
        if (plen >= REDACT_MIN_PART)
            FUZZ_CHECK(!fuzz_contains(msg, t + p, plen));
        p += plen + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pg_check_result r;
    struct sbuf *token = NULL;
    size_t tlen;
    char *msg;

    if (size == 0)
        return 0;
    tlen = data[0] & 63u;
    if (tlen > size - 1)
        tlen = size - 1;
    if (tlen && !memchr(data + 1, 0, tlen))
        token = sbuf_from(data + 1, tlen);
    msg = fuzz_cstr(data + 1 + tlen, size - 1 - tlen);
    pg_check_classify(&r, msg, token);
    FUZZ_CHECK(r.login == PG_LOGIN_OK || r.login == PG_LOGIN_REJECTED ||
               r.login == PG_LOGIN_UNREACHABLE || r.login == PG_LOGIN_TLS ||
               r.login == PG_LOGIN_ERROR);
    FUZZ_CHECK(r.login != PG_LOGIN_OK);
    FUZZ_CHECK(!r.cached);
    FUZZ_CHECK(strlen(r.sqlstate) == 0 || strlen(r.sqlstate) == 5);
    FUZZ_CHECK(memchr(r.message, 0, sizeof(r.message)) != NULL);
    for (const char *p = r.message; *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    if (token && jwt_shaped(sbuf_expose(token), tlen))
        check_redacted(r.message, sbuf_expose(token), tlen);
    /* NULL and "" are both "no message". */
    pg_check_classify(&r, NULL, token);
    FUZZ_CHECK(r.login == PG_LOGIN_ERROR && r.message[0]);
    sbuf_free(token);
    free(msg);
    return 0;
}
