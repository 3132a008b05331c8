#include "t.h"

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

static void test_levels(void)
{
    T_EQ_INT(log_parse_level("warn"), LOG_WARN);
    T_EQ_INT(log_parse_level("verbose"), -1);
}

int main(void)
{
    T_RUN(test_line_is_json);
    T_RUN(test_levels);
    return t_done();
}
