/* threadfail.so: makes one pthread_create of the process it is preloaded into
 * fail, for the tests of what the controller does when a thread cannot start.
 *
 *   LD_PRELOAD=build/tests/threadfail.so PGTR_TEST_FAIL_THREAD=K pgtoken-rotator ...
 *
 * The K-th call (1-based, counted over the whole process) returns EAGAIN, as
 * glibc does when there is no memory for the stack or a thread limit is hit;
 * every other call goes to the real pthread_create. Without the variable (or
 * with an unparsable one) nothing fails. Only for non-sanitizer builds: ASan
 * intercepts pthread_create itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static atomic_long calls;

__attribute__((visibility("default"))) int pthread_create(pthread_t *th,
                                                          const pthread_attr_t *attr,
                                                          void *(*fn)(void *), void *arg)
{
    static create_fn real;
    const char *k = getenv("PGTR_TEST_FAIL_THREAD");
    long n = atomic_fetch_add(&calls, 1) + 1;
    char *end = NULL;

    if (k && *k && strtol(k, &end, 10) == n && end && !*end)
        return EAGAIN;
    if (!real)
        real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (!real)
        return ENOSYS;
    return real(th, attr, fn, arg);
}
