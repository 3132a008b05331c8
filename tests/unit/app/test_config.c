#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "app/config.h"
#include "base/err.h"

static char *write_tmp(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/pgtr-config-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
    return path;
}

static void test_defaults_serve_aks(void)
{
    struct config c;

    config_init(&c);
    T_RC(config_validate(&c), 0);
    T_EQ_STR(c.label_selector, "pgtoken.io/managed=true");
    T_EQ_STR(c.scope, "https://ossrdbms-aad.database.windows.net/.default");
    T_EQ_INT(c.nnamespaces, 0);
    T_EQ_INT(c.login_check, LOGIN_CHECK_REQUIRED);
    T_EQ_STR(c.db_sslmode, "verify-full");
    T_EQ_STR(c.log_format, "json");
    T_CHECK(c.refresh_ratio == 0.5);
    T_EQ_INT(c.resync_s, 60);
    T_EQ_INT(c.relist_s, 1800);
    config_release(&c);
}

static void test_file_then_flags(void)
{
    const char *yaml = "namespaces: [team-a, team-b]\n"
                       "workers: 8\n"
                       "rotation:\n  refreshRatio: 0.4\n"
                       "loginCheck:\n  mode: best-effort\n  insecureSkipTLSVerify: true\n"
                       "log: {level: debug, format: text}\n"
                       "watch: {resyncSeconds: 5, relistSeconds: 0}\n";
    char *path = write_tmp(yaml);
    char *argv[] = { "run", "--workers", "2", "--config", path, "--namespace=team-c", NULL };
    char *json[] = { "run", "--log-format=json", NULL };
    struct config c;

    config_init(&c);
    T_RC(config_parse_args(&c, 6, argv), 0);
    T_EQ_STR(c.log_format, "text");
    T_EQ_INT(c.workers, 2); /* the flag wins over the file */
    T_EQ_INT(c.nnamespaces, 3);
    T_EQ_STR(c.namespaces[2], "team-c");
    T_CHECK(c.refresh_ratio == 0.4);
    T_EQ_INT(c.login_check, LOGIN_CHECK_BEST_EFFORT);
    T_CHECK(c.insecure_skip_db_tls_verify);
    T_EQ_STR(c.log_level, "debug");
    T_EQ_INT(c.resync_s, 5);
    T_RC(config_validate(&c), 0);
    c.resync_s = 0; /* a resync is never off */
    T_RC(config_validate(&c), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "watch.resyncSeconds") != NULL);
    c.resync_s = 86401;
    T_RC(config_validate(&c), ERR_INVALID);
    c.resync_s = 86400;
    T_EQ_INT(c.relist_s, 0); /* 0: relists only after a 410 */
    T_RC(config_validate(&c), 0);
    c.relist_s = 86401;
    T_RC(config_validate(&c), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "watch.relistSeconds") != NULL);
    c.relist_s = -1;
    T_RC(config_validate(&c), ERR_INVALID);
    c.relist_s = 0;
    T_RC(config_parse_args(&c, 2, json), 0); /* the flag wins over the file */
    T_EQ_STR(c.log_format, "json");
    T_RC(config_validate(&c), 0);
    config_release(&c);
    unlink(path);
}

static void test_errors_name_the_field(void)
{
    struct config c;
    char *p;

    config_init(&c);
    p = write_tmp("rotation:\n  refreshRato: 0.4\n");
    T_RC(config_load_file(&c, p), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "rotation.refreshRato") != NULL);
    unlink(p);
    p = write_tmp("rotation:\n  refreshRatio: 1.5\n");
    T_RC(config_load_file(&c, p), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "rotation.refreshRatio") != NULL);
    unlink(p);
    p = write_tmp("loginCheck: {mode: sometimes}\n");
    T_RC(config_load_file(&c, p), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "loginCheck.mode") != NULL);
    unlink(p);
    p = write_tmp("namespaces: team-a\n");
    T_RC(config_load_file(&c, p), ERR_INVALID);
    unlink(p);
    p = write_tmp("workers: [\n");
    T_RC(config_load_file(&c, p), ERR_PARSE);
    unlink(p);
    T_RC(config_load_file(&c, "/nonexistent/config.yaml"), ERR_IO);
    config_release(&c);
}

static void test_flag_errors(void)
{
    struct config c;
    char *bad_flag[] = { "run", "--no-such-flag", NULL };
    char *no_value[] = { "run", "--workers", NULL };
    char *bad_value[] = { "run", "--refresh-ratio", "0", NULL };
    char *bad_level[] = { "run", "--log-level", "loud", NULL };
    char *bad_format[] = { "run", "--log-format", "xml", NULL };
    char *text[] = { "run", "--log-format", "text", NULL };

    config_init(&c);
    T_RC(config_parse_args(&c, 2, bad_flag), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "--no-such-flag") != NULL);
    T_RC(config_parse_args(&c, 2, no_value), ERR_INVALID);
    T_RC(config_parse_args(&c, 3, bad_value), ERR_INVALID);
    T_RC(config_parse_args(&c, 3, bad_level), 0);
    T_RC(config_validate(&c), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "log.level") != NULL);
    config_release(&c);

    config_init(&c);
    T_RC(config_parse_args(&c, 3, bad_format), 0);
    T_RC(config_validate(&c), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "log.format xml: must be json or text") != NULL);
    T_RC(config_parse_args(&c, 3, text), 0);
    T_RC(config_validate(&c), 0);
    config_release(&c);
}

/* Runs config_parse_args on c with args (split on spaces, after "run"), stdout silenced (--help
 * prints the usage there). */
static int parse_run(struct config *c, const char *args)
{
    char buf[512], *argv[32], *save = NULL;
    int argc = 0, out, rc;

    argv[argc++] = "run";
    snprintf(buf, sizeof(buf), "%s", args);
    for (char *w = strtok_r(buf, " ", &save); w && argc < 31; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc] = NULL;
    fflush(stdout);
    out = dup(STDOUT_FILENO);
    if (!freopen("/dev/null", "w", stdout))
        abort();
    rc = config_parse_args(c, argc, argv);
    fflush(stdout);
    dup2(out, STDOUT_FILENO);
    close(out);
    return rc;
}

/* The forms of the shared parser (base/flag.h) as `run` takes them. */
static void test_flag_forms(void)
{
    struct config c;

    config_init(&c);
    T_RC(parse_run(&c, "--workers=3 --label-selector=team=a --context ctx"), 0);
    T_EQ_INT(c.workers, 3);
    T_EQ_STR(c.label_selector, "team=a"); /* the first '=' ends the name */
    T_EQ_STR(c.context, "ctx");
    /* Repeated: the last one wins, --namespace adds up. */
    T_RC(parse_run(&c, "--workers 5 --workers=6 --namespace a --namespace=b"), 0);
    T_EQ_INT(c.workers, 6);
    T_EQ_INT(c.nnamespaces, 2);
    T_EQ_STR(c.namespaces[1], "b");
    /* Booleans: bare, =true, =false; never a separate value. */
    T_CHECK(!c.leader_elect && c.allow_controller_identity);
    T_RC(parse_run(&c, "--leader-elect --allow-controller-identity=false"), 0);
    T_CHECK(c.leader_elect && !c.allow_controller_identity);
    T_RC(parse_run(&c, "--leader-elect=false --allow-controller-identity=true"), 0);
    T_CHECK(!c.leader_elect && c.allow_controller_identity);
    T_RC(parse_run(&c, "--leader-elect=yes"), ERR_INVALID);
    T_EQ_STR(err_msg(), "flag --leader-elect: must be true or false");
    T_RC(parse_run(&c, "--leader-elect false"), ERR_INVALID);
    T_EQ_STR(err_msg(), "unexpected argument false (see --help)");
    /* Missing values, unknown flags, bad values. */
    T_RC(parse_run(&c, "--metrics-addr"), ERR_INVALID);
    T_EQ_STR(err_msg(), "flag --metrics-addr needs a value");
    T_RC(parse_run(&c, "--config"), ERR_INVALID);
    T_EQ_STR(err_msg(), "flag --config needs a value");
    T_RC(parse_run(&c, "--no-such-flag=1"), ERR_INVALID);
    T_EQ_STR(err_msg(), "unknown flag --no-such-flag (see --help)");
    T_RC(parse_run(&c, "--work 2"), ERR_INVALID); /* no abbreviations */
    T_EQ_STR(err_msg(), "unknown flag --work (see --help)");
    T_RC(parse_run(&c, "--refresh-ratio=1"), ERR_INVALID);
    T_EQ_STR(err_msg(), "flag --refresh-ratio: must be a number between 0 and 1 (exclusive)");
    T_RC(parse_run(&c, "--login-check sometimes"), ERR_INVALID);
    T_EQ_STR(err_msg(), "flag --login-check: must be required, best-effort or off");
    /* Help, before any error. */
    T_RC(parse_run(&c, "--workers 2 -h --no-such-flag"), 1);
    T_RC(parse_run(&c, "--help"), 1);
    T_EQ_INT(c.workers, 2);
    config_release(&c);
}

/* --config is read before every other flag wherever it stands, so that flags win over it. */
static void test_config_flag_first(void)
{
    char *path = write_tmp("workers: 8\nlabelSelector: from-file\n"), args[256];
    struct config c;

    config_init(&c);
    snprintf(args, sizeof(args), "--workers 2 --config=%s", path);
    T_RC(parse_run(&c, args), 0);
    T_EQ_INT(c.workers, 2);
    T_EQ_STR(c.label_selector, "from-file");
    /* A bad file is reported before a bad flag that stands earlier. */
    T_RC(parse_run(&c, "--no-such-flag --config /nonexistent/config.yaml"), ERR_IO);
    config_release(&c);
    unlink(path);
}

int main(void)
{
    T_RUN(test_defaults_serve_aks);
    T_RUN(test_file_then_flags);
    T_RUN(test_errors_name_the_field);
    T_RUN(test_flag_errors);
    T_RUN(test_flag_forms);
    T_RUN(test_config_flag_first);
    return t_done();
}
