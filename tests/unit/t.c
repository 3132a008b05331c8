#include "t.h"

#include <stdarg.h>
#include <stdio.h>

static int n_pass, n_fail, cur_failed;
static char cur_msg[1024];

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (cur_failed++)
        return; /* report the first failure of a test */
    n = snprintf(cur_msg, sizeof(cur_msg), "%s:%d: ", file, line);
    va_start(ap, fmt);
    vsnprintf(cur_msg + n, sizeof(cur_msg) - (size_t)n, fmt, ap);
    va_end(ap);
}

void t_run(const char *name, void (*fn)(void), const char *file)
{
    const char *base = strrchr(file, '/');

    cur_failed = 0;
    fn();
    base = base ? base + 1 : file;
    if (cur_failed) {
        n_fail++;
        printf("not ok - %s: %s: %s\n", base, name, cur_msg);
    } else {
        n_pass++;
        printf("ok - %s: %s\n", base, name);
    }
    fflush(stdout);
}

int t_done(void)
{
    return n_fail ? 1 : 0;
}
