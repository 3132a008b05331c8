/* Structured logs: one record per line on stderr, a JSON object (the default)
 * or a line of text for people (log_set_format).
 *
 *   log_info("rotated", LOG_STR("namespace", ns), LOG_I64("expires_at", t));
 *
 * The message is a stable event name; details are fields. The level is checked
 * before anything is formatted. Fields take const char * and integers only:
 * a struct sbuf (a secret) cannot be passed, by design. Either format escapes
 * every control character, so a value can never start a line of its own, and
 * a record over LOG_LINE_MAX bytes is replaced by its time, level, message and
 * truncated=true.
 *
 *   json: {"ts":"2024-05-01T12:00:00.123Z","level":"info","msg":"rotated","namespace":"app"}
 *   text: 2024-05-01T12:00:00.123Z INFO rotated namespace=app detail="a b" n=3 ok=true
 *         A text value (and the message) is quoted, with JSON's escapes, when it is empty or
 *         holds a space, '"', '=', '\' or a control character; otherwise it is written as is. */
#ifndef PGTR_LOG_H
#define PGTR_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

#define LOG_LINE_MAX 8192 /* bytes of one record, newline included */

enum log_type { LOG_T_END, LOG_T_STR, LOG_T_I64, LOG_T_BOOL };

struct log_field {
    enum log_type type;
    const char *key;
    const char *s;
    int64_t i;
};

#define LOG_STR(k, v) ((struct log_field){ LOG_T_STR, (k), (v), 0 })
#define LOG_I64(k, v) ((struct log_field){ LOG_T_I64, (k), NULL, (int64_t)(v) })
#define LOG_BOOL(k, v) ((struct log_field){ LOG_T_BOOL, (k), NULL, (v) ? 1 : 0 })
/* The error's name and the thread's current message (err_msg()). */
#define LOG_ERR(code) LOG_STR("error", err_name(code)), LOG_STR("detail", err_msg())
#define LOG_END_ ((struct log_field){ LOG_T_END, NULL, NULL, 0 })

#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__, LOG_END_)
#define log_info(...) log_emit(LOG_INFO, __VA_ARGS__, LOG_END_)
#define log_warn(...) log_emit(LOG_WARN, __VA_ARGS__, LOG_END_)
#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__, LOG_END_)

/* Writes one line if level is enabled. Fields follow msg and end with LOG_END_
 * (the macros add it). Safe from several threads: each line is one write(2). */
void log_emit(enum log_level level, const char *msg, ...);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "debug", "info", "warn", "error" -> level; -1 if unknown. */
int log_parse_level(const char *s);

void log_set_format(enum log_format format);
/* "json", "text" -> format; -1 if unknown. */
int log_parse_format(const char *s);
/* Sends lines to fd instead of 2 (tests). */
void log_set_fd(int fd);

#endif
