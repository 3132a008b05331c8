#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/banned.h"

#define LOG_LINE_MAX 8192

static atomic_int cur_level = LOG_INFO;
static atomic_int out_fd = 2;

static const char *level_name[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
    atomic_store(&cur_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&cur_level);
}

void log_set_fd(int fd)
{
    atomic_store(&out_fd, fd);
}

int log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, level_name[i]))
            return i;
    return -1;
}

void log_emit(enum log_level level, const char *msg, ...)
{
    struct buf line = BUF_INIT(LOG_LINE_MAX);
    struct timespec ts;
    struct tm tm;
    char when[40];
    va_list ap;

    if ((int)level < atomic_load(&cur_level) || level >= LOG_OFF)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    buf_addf(&line, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", when,
             ts.tv_nsec / 1000000, level_name[level]);
    json_quote(&line, msg);
    va_start(ap, msg);
    for (;;) {
        struct log_field f = va_arg(ap, struct log_field);
        if (f.type == LOG_T_END)
            break;
        buf_addch(&line, ',');
        json_quote(&line, f.key);
        buf_addch(&line, ':');
        if (f.type == LOG_T_STR)
            json_quote(&line, f.s ? f.s : "");
        else if (f.type == LOG_T_I64)
            buf_addf(&line, "%lld", (long long)f.i);
        else
            buf_addstr(&line, f.i ? "true" : "false");
    }
    va_end(ap);
    if (buf_addstr(&line, "}\n") < 0) {
        /* Over the line cap: say so rather than emit broken JSON. */
        buf_release(&line);
        buf_addf(&line, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", when,
                 ts.tv_nsec / 1000000, level_name[level]);
        json_quote(&line, msg);
        buf_addstr(&line, ",\"truncated\":true}\n");
    }
    (void)!write(atomic_load(&out_fd), line.ptr, line.len);
    buf_release(&line);
}
