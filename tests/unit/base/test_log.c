#include "t.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "base/err.h"
#include "base/json.h"
#include "base/log.h"

static void test_line_is_json(void)
{
    int fds[2];
    char line[4096];
    ssize_t n;
    cJSON *j = NULL;

    T_CHECK(pipe(fds) == 0);
    log_set_fd(fds[1]);
    log_set_level(LOG_INFO);
    log_debug("hidden", LOG_STR("k", "v"));
    err_set(ERR_CONFLICT, "object \"x\" changed");
    log_info("rotated", LOG_STR("namespace", "a\"b"), LOG_I64("expires_at", 17),
             LOG_BOOL("ok", 1), LOG_ERR(ERR_CONFLICT));
    log_set_fd(2);
    close(fds[1]);
    n = read(fds[0], line, sizeof(line) - 1);
    close(fds[0]);
    T_CHECK(n > 0);
    line[n > 0 ? n : 0] = '\0';
    T_CHECK(strchr(line, '\n') == line + n - 1); /* exactly one line: debug was filtered */
    T_RC(json_parse(&j, line, (size_t)n, sizeof(line)), 0);
    T_EQ_STR(json_str(j, "msg"), "rotated");
    T_EQ_STR(json_str(j, "level"), "info");
    T_EQ_STR(json_str(j, "namespace"), "a\"b");
    T_EQ_STR(json_str(j, "error"), "conflict");
    T_EQ_STR(json_str(j, "detail"), "object \"x\" changed");
    T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    cJSON_Delete(j);
}

/* Runs emit with the log going into a pipe; returns what was written (one read). */
static void capture(char *out, size_t n, void (*emit)(void))
{
    int fds[2];
    ssize_t got;

    T_CHECK(pipe(fds) == 0);
    log_set_fd(fds[1]);
    emit();
    log_set_fd(2);
    close(fds[1]);
    got = read(fds[0], out, n - 1);
    close(fds[0]);
    out[got > 0 ? got : 0] = '\0';
}

static void emit_every_type(void)
{
    err_set(ERR_CONFLICT, "object \"x\" changed");
    log_warn("rotation_failed", LOG_STR("namespace", "team-a"), LOG_STR("empty", ""),
             LOG_STR("none", NULL), LOG_STR("spaced", "a b"), LOG_STR("quoted", "say \"hi\""),
             LOG_STR("eq", "k=v"), LOG_STR("backslash", "C:\\dir"),
             LOG_STR("lines", "one\ntwo\r\tend"), LOG_STR("ctl", "bell\x01" "del\x7f"),
             LOG_STR("utf8", "r\xc3\xb4le"), LOG_I64("retry_in_ms", -1500),
             LOG_I64("big", INT64_MAX), LOG_BOOL("shared", 1), LOG_BOOL("kept", 0),
             LOG_ERR(ERR_CONFLICT));
}

static void emit_spaced_msg(void)
{
    log_error("not a stable name", LOG_STR("k", "v"));
}

static void emit_huge(void)
{
    static char big[LOG_LINE_MAX + 100];

    memset(big, 'x', sizeof(big) - 1);
    log_info("huge", LOG_STR("value", big));
}

static void emit_debug_and_info(void)
{
    log_debug("hidden", LOG_STR("k", "v"));
    log_info("shown", LOG_I64("n", 3));
}

static void test_text_format(void)
{
    char line[8192];
    const char *rest;

    log_set_level(LOG_INFO);
    log_set_format(LOG_FORMAT_TEXT);
    capture(line, sizeof(line), emit_every_type);
    /* 2024-05-01T12:00:00.123Z: the time first, to the millisecond, in UTC. */
    T_CHECK(strlen(line) > 25 && line[4] == '-' && line[10] == 'T' && line[19] == '.' &&
            line[23] == 'Z' && line[24] == ' ');
    rest = line + 25;
    T_EQ_STR(rest, "WARN rotation_failed namespace=team-a empty=\"\" none=\"\" spaced=\"a b\" "
                   "quoted=\"say \\\"hi\\\"\" eq=\"k=v\" backslash=\"C:\\\\dir\" "
                   "lines=\"one\\ntwo\\r\\tend\" ctl=\"bell\\u0001del\\u007f\" utf8=r\xc3\xb4le "
                   "retry_in_ms=-1500 big=9223372036854775807 shared=true kept=false "
                   "error=conflict detail=\"object \\\"x\\\" changed\"\n");
    T_CHECK(strchr(line, '\n') == line + strlen(line) - 1); /* one line, whatever the values */

    capture(line, sizeof(line), emit_spaced_msg);
    T_CHECK(strstr(line, " ERROR \"not a stable name\" k=v\n") != NULL);

    capture(line, sizeof(line), emit_huge);
    T_CHECK(strstr(line, " INFO huge truncated=true\n") != NULL);
    T_CHECK(strchr(line, 'x') == NULL);

    capture(line, sizeof(line), emit_debug_and_info);
    T_CHECK(strstr(line, "hidden") == NULL);
    T_CHECK(strstr(line, " INFO shown n=3\n") != NULL);

    /* Back to JSON, the default: the same record is an object again. */
    log_set_format(LOG_FORMAT_JSON);
    capture(line, sizeof(line), emit_huge);
    T_CHECK(strstr(line, "\"msg\":\"huge\",\"truncated\":true}\n") != NULL);
}

static void test_formats(void)
{
    T_EQ_INT(log_parse_format("json"), LOG_FORMAT_JSON);
    T_EQ_INT(log_parse_format("text"), LOG_FORMAT_TEXT);
    T_EQ_INT(log_parse_format("JSON"), -1);
    T_EQ_INT(log_parse_format("logfmt"), -1);
    T_EQ_INT(log_parse_format(""), -1);
}

static void test_levels(void)
{
    T_EQ_INT(log_parse_level("warn"), LOG_WARN);
    T_EQ_INT(log_parse_level("verbose"), -1);
}

int main(void)
{
    T_RUN(test_line_is_json);
    T_RUN(test_levels);
    T_RUN(test_text_format);
    T_RUN(test_formats);
    return t_done();
}
