#include "t.h"

#include "base/err.h"

/* A Retry-After goes with the one error it came with: a later error on the same
 * thread (a refused connection after a 429) has none. */
static void test_retry_after_not_stale(void)
{
    T_RC(err_set(ERR_UNAVAILABLE, "PATCH /x: 429 Too Many Requests"), ERR_UNAVAILABLE);
    err_set_retry_after_s(120);
    T_EQ_INT(err_retry_after_s(), 120);
    T_RC(err_wrap(ERR_UNAVAILABLE, "Secret a/b"), ERR_UNAVAILABLE);
    T_EQ_INT(err_retry_after_s(), 120); /* the same error, wrapped */
    T_RC(err_set(ERR_UNAVAILABLE, "connect: connection refused"), ERR_UNAVAILABLE);
    T_EQ_INT(err_retry_after_s(), 0);
    err_set_retry_after_s(30);
    T_RC(err_set(ERR_INVALID, "bad"), ERR_INVALID);
    T_EQ_INT(err_retry_after_s(), 0);
}

static void test_wrap_and_names(void)
{
    T_RC(err_set(ERR_NOTFOUND, "secret %s", "a/b"), ERR_NOTFOUND);
    T_RC(err_wrap(ERR_NOTFOUND, "reconcile"), ERR_NOTFOUND);
    T_EQ_STR(err_msg(), "reconcile: secret a/b");
    /* an argument may be err_msg() itself */
    T_RC(err_set(ERR_INVALID, "again: %s", err_msg()), ERR_INVALID);
    T_EQ_STR(err_msg(), "again: reconcile: secret a/b");
    T_EQ_STR(err_name(ERR_UNAVAILABLE), "unavailable");
    T_EQ_STR(err_name(0), "ok");
}

int main(void)
{
    T_RUN(test_retry_after_not_stale);
    T_RUN(test_wrap_and_names);
    return t_done();
}
