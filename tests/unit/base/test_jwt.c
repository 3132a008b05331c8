#include "t.h"

#include <stdlib.h>

#include "base/b64.h"
#include "base/err.h"
#include "base/jwt.h"

/* Builds header.payload.sig with a base64url payload. */
static char *mk(const char *payload)
{
    struct buf b = BUF_INIT(4096), p = BUF_INIT(4096);

    b64_encode(&p, payload, strlen(payload));
    buf_addstr(&b, "eyJhbGciOiJSUzI1NiJ9.");
    for (size_t i = 0; i < p.len; i++) {
        char c = p.ptr[i];
        if (c == '=')
            break;
        buf_addch(&b, c == '+' ? '-' : c == '/' ? '_' : c);
    }
    buf_addstr(&b, ".c2ln");
    buf_release(&p);
    return buf_detach(&b, NULL);
}

static void test_times(void)
{
    char *t = mk("{\"aud\":\"x\",\"exp\":1790000000,\"nbf\":1789996400,\"iat\":1789996400}");
    struct jwt_times tm;

    T_RC(jwt_read_times(&tm, t, strlen(t)), 0);
    T_EQ_INT(tm.exp, 1790000000);
    T_EQ_INT(tm.nbf, 1789996400);
    T_EQ_INT(tm.iat, 1789996400);
    free(t);
}

static void test_bad(void)
{
    struct jwt_times tm;
    char *noexp = mk("{\"aud\":\"x\"}"), *strexp = mk("{\"exp\":\"soon\"}"), *arr = mk("[1]");
    char *frac = mk("{\"exp\":1.5}");

    T_RC(jwt_read_times(&tm, noexp, strlen(noexp)), ERR_PARSE);
    T_RC(jwt_read_times(&tm, strexp, strlen(strexp)), ERR_PARSE);
    T_RC(jwt_read_times(&tm, arr, strlen(arr)), ERR_PARSE);
    T_RC(jwt_read_times(&tm, frac, strlen(frac)), ERR_PARSE);
    T_RC(jwt_read_times(&tm, "abc", 3), ERR_PARSE);
    T_RC(jwt_read_times(&tm, "a.b", 3), ERR_PARSE);
    T_RC(jwt_read_times(&tm, "a.b.c.d", 7), ERR_PARSE);
    T_RC(jwt_read_times(&tm, ".e30.x", 6), ERR_PARSE);
    T_RC(jwt_read_times(&tm, "a.!!!.c", 7), ERR_PARSE);
    free(noexp);
    free(strexp);
    free(arr);
    free(frac);
}

int main(void)
{
    T_RUN(test_times);
    T_RUN(test_bad);
    return t_done();
}
