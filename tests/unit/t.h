/* A small unit-test harness. Each test binary prints TAP-style lines,
 * "ok - <file>: <test>" or "not ok - <file>: <test>: <what failed>", that
 * tests/run counts, and exits non-zero when any test failed.
 *
 *   static void test_add(void) { T_EQ_INT(add(1, 2), 3); }
 *   int main(void) { T_RUN(test_add); return t_done(); }
 */
#ifndef PGTR_T_H
#define PGTR_T_H

#include <stdint.h>
#include <string.h>

void t_run(const char *name, void (*fn)(void), const char *file);
int t_done(void);
void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define T_RUN(fn) t_run(#fn, fn, __FILE__)

#define T_CHECK(cond)                                                                  \
    do {                                                                               \
        if (!(cond))                                                                   \
            t_fail(__FILE__, __LINE__, "check failed: %s", #cond);                     \
    } while (0)

#define T_EQ_INT(a, b)                                                                 \
    do {                                                                               \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                        \
        if (t_a_ != t_b_)                                                              \
            t_fail(__FILE__, __LINE__, "%s == %lld, want %lld", #a, t_a_, t_b_);       \
    } while (0)

#define T_EQ_STR(a, b)                                                                 \
    do {                                                                               \
        const char *t_a_ = (a), *t_b_ = (b);                                           \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_))                                      \
            t_fail(__FILE__, __LINE__, "%s == \"%s\", want \"%s\"", #a,                \
                   t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                    \
    } while (0)

/* Checks that an expression returning an error code returns exactly want. */
#define T_RC(expr, want) T_EQ_INT((expr), (want))

#endif
