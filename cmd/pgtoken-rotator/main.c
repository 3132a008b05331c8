/* pgtoken-rotator: subcommands and wiring only. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "app/cli.h"
#include "app/config.h"
#include "app/controller.h"
#include "app/proxycmd.h"
#include "base/err.h"
#include "base/flag.h"
#include "base/log.h"
#include "base/sleep.h"
#include "net/http.h"
#include "base/banned.h"

static atomic_bool stop;
static atomic_bool signal_done; /* the signal thread has taken its signal */

static void usage(FILE *f)
{
    fprintf(f, "usage: pgtoken-rotator <command> [flags]\n\n"
               "Keeps Kubernetes Secrets filled with fresh Entra ID tokens for Azure Database\n"
               "for PostgreSQL, proving each token logs in before it is written.\n\n"
               "commands:\n"
               "  run        run the controller (the default); see run --help\n"
               "  token      mint a token (or render DATABASE_URL) and print it; see token --help\n"
               "  check      mint a token and try a login; print the result; see check --help\n"
               "  proxy      a local PostgreSQL auth proxy that logs in with fresh tokens;\n"
               "             see proxy --help\n"
               "  version    print the version\n"
               "  help       this text\n\n"
               "exit status: 0 success, 1 runtime failure, 2 usage or configuration error\n");
}

/* Signals are taken by one thread (sigwait) so that no handler runs in a
 * thread holding a lock. */
static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;

    if (sigwait(set, &sig) == 0)
        log_info("signal_received", LOG_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    atomic_store(&signal_done, true);
    atomic_store(&stop, true);
    sleep_wake_all(); /* the main loop and every other sleeper see it at once */
    return NULL;
}

static int cmd_run(int argc, char **argv)
{
    struct config cfg;
    struct controller *c = NULL;
    sigset_t set;
    pthread_t sig_th;
    int rc, lvl;

    /* Block the stop signals first: one that arrives while we start up waits
     * for the signal thread and ends in a clean shutdown, not a killed process. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    config_init(&cfg);
    rc = config_parse_args(&cfg, argc, argv);
    if (rc == 1) {
        config_release(&cfg);
        return 0;
    }
    if (rc < 0 || (rc = config_validate(&cfg)) < 0) {
        log_error("invalid_configuration", LOG_STR("detail", err_msg()));
        config_release(&cfg);
        return 2;
    }
    lvl = log_parse_level(cfg.log_level);
    log_set_level((enum log_level)lvl);
    log_set_format((enum log_format)log_parse_format(cfg.log_format));
    signal(SIGPIPE, SIG_IGN);
    if ((rc = http_global_init()) < 0 || (rc = controller_new(&c, &cfg)) < 0) {
        log_error("startup_failed", LOG_ERR(rc));
        config_release(&cfg);
        return rc == ERR_INVALID ? 2 : 1;
    }
    if ((rc = pthread_create(&sig_th, NULL, signal_main, &set)) != 0) {
        log_error("startup_failed", LOG_STR("detail", "cannot start the signal thread"),
                  LOG_STR("error", strerror(rc)));
        controller_free(c);
        http_global_cleanup();
        config_release(&cfg);
        return 1;
    }
    rc = controller_run(c, &stop);
    /* The controller also stops by itself (a thread that could not start): wake
     * the sigwait thread then (SIGTERM is blocked elsewhere). */
    if (!atomic_load(&signal_done))
        kill(getpid(), SIGTERM);
    pthread_join(sig_th, NULL);
    controller_free(c);
    http_global_cleanup();
    config_release(&cfg);
    return rc < 0 ? 1 : 0;
}

static int cmd_proxy(int argc, char **argv)
{
    struct proxycmd_opts o;
    sigset_t set;
    pthread_t sig_th;
    int rc;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    rc = proxycmd_parse(&o, argc, argv);
    if (rc == FLAG_HELP) {
        proxycmd_usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "pgtoken-rotator proxy: %s\n", err_msg());
        return 2;
    }
    log_set_level((enum log_level)log_parse_level(o.log_level));
    log_set_format((enum log_format)log_parse_format(o.log_format));
    signal(SIGPIPE, SIG_IGN);
    if (http_global_init() < 0)
        return 1;
    if ((rc = pthread_create(&sig_th, NULL, signal_main, &set)) != 0) {
        log_error("startup_failed", LOG_STR("detail", "cannot start the signal thread"),
                  LOG_STR("error", strerror(rc)));
        http_global_cleanup();
        return 1;
    }
    rc = proxycmd_run(&o, &stop);
    if (!atomic_load(&signal_done))
        kill(getpid(), SIGTERM);
    pthread_join(sig_th, NULL);
    http_global_cleanup();
    return rc;
}

/* version takes no flags; it parses them all the same, so that it answers --help and
 * refuses what it does not know like every other command. */
static int cmd_version(int argc, char **argv)
{
    int rc = flag_parse(NULL, 0, argc, argv, NULL, NULL);

    if (rc == FLAG_HELP) {
        printf("usage: pgtoken-rotator version\n\n"
               "Prints the version and the commit it was built from.\n");
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "pgtoken-rotator version: %s\n", err_msg());
        return 2;
    }
    printf("pgtoken-rotator %s (%s)\n", PGTR_VERSION, PGTR_GIT_REV);
    return 0;
}

int main(int argc, char **argv)
{
    /* This process holds tokens: no core dumps, no ptrace by other users. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (argc > 1 && (!strcmp(argv[1], "help") || !strcmp(argv[1], "-h") ||
                     !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")))
        return cmd_version(argc - 1, argv + 1);
    if (argc < 2 || !strcmp(argv[1], "run") || argv[1][0] == '-')
        return cmd_run(argc > 1 && !strcmp(argv[1], "run") ? argc - 1 : argc,
                       argc > 1 && !strcmp(argv[1], "run") ? argv + 1 : argv);
    if (!strcmp(argv[1], "proxy"))
        return cmd_proxy(argc - 1, argv + 1);
    if (!strcmp(argv[1], "token") || !strcmp(argv[1], "check")) {
        int rc;
        log_set_level(LOG_WARN);
        signal(SIGPIPE, SIG_IGN);
        if (http_global_init() < 0)
            return 1;
        rc = !strcmp(argv[1], "token") ? cli_token(argc - 1, argv + 1)
                                       : cli_check(argc - 1, argv + 1);
        http_global_cleanup();
        return rc;
    }
    fprintf(stderr, "pgtoken-rotator: unknown command %s\n\n", argv[1]);
    usage(stderr);
    return 2;
}
