#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/banned.h"

static atomic_int cur_level = LOG_INFO;
static atomic_int out_fd = 2;
static atomic_int out_format = LOG_FORMAT_JSON;

static const char *level_name[] = { "debug", "info", "warn", "error" };
static const char *level_upper[] = { "DEBUG", "INFO", "WARN", "ERROR" };
static const char *format_name[] = { "json", "text" };

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

void log_set_format(enum log_format format)
{
    atomic_store(&out_format, (int)format);
}

int log_parse_format(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, format_name[i]))
            return i;
    return -1;
}

int log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, level_name[i]))
            return i;
    return -1;
}

/* A text value as is, or quoted with JSON's escapes when a reader could not tell where it
 * ends (empty, a space, '"', '=', '\\') or it holds a control character. */
static int text_value(struct buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return json_quote(b, s);
    return buf_addstr(b, *s ? s : "\"\"");
}

/* The time, level and message: what a record over the cap keeps. */
static int head(struct buf *b, bool text, const char *when, long ms, enum log_level level,
                const char *msg)
{
    int rc;

    if (text) {
        rc = buf_addf(b, "%s.%03ldZ %s ", when, ms, level_upper[level]);
        return rc < 0 ? rc : text_value(b, msg);
    }
    rc = buf_addf(b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", when, ms,
                  level_name[level]);
    return rc < 0 ? rc : json_quote(b, msg);
}

static int field(struct buf *b, bool text, const struct log_field *f)
{
    int rc;

    if (text) /* keys are constants of our own: never quoted */
        rc = buf_addf(b, " %s=", f->key);
    else if ((rc = buf_addch(b, ',')) == 0 && (rc = json_quote(b, f->key)) == 0)
        rc = buf_addch(b, ':');
    if (rc < 0)
        return rc;
    if (f->type == LOG_T_STR)
        return text ? text_value(b, f->s ? f->s : "") : json_quote(b, f->s ? f->s : "");
    if (f->type == LOG_T_I64)
        return buf_addf(b, "%lld", (long long)f->i);
    return buf_addstr(b, f->i ? "true" : "false");
}

void log_emit(enum log_level level, const char *msg, ...)
{
    struct buf line = BUF_INIT(LOG_LINE_MAX);
    bool text = atomic_load(&out_format) == LOG_FORMAT_TEXT;
    struct timespec ts;
    struct tm tm;
    char when[40];
    long ms;
    int rc;
    va_list ap;

    if ((int)level < atomic_load(&cur_level) || level >= LOG_OFF)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    ms = ts.tv_nsec / 1000000;
    rc = head(&line, text, when, ms, level, msg);
    va_start(ap, msg);
    for (;;) {
        struct log_field f = va_arg(ap, struct log_field);
        if (f.type == LOG_T_END)
            break;
        if (rc == 0)
            rc = field(&line, text, &f);
    }
    va_end(ap);
    if (rc < 0 || buf_addstr(&line, text ? "\n" : "}\n") < 0) {
        /* Over the line cap: say so rather than drop a field or emit a broken record. */
        buf_release(&line);
        (void)head(&line, text, when, ms, level, msg);
        buf_addstr(&line, text ? " truncated=true\n" : ",\"truncated\":true}\n");
    }
    (void)!write(atomic_load(&out_fd), line.ptr, line.len);
    buf_release(&line);
}
