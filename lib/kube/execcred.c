#include "kube/execcred.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/banned.h"

extern char **environ;

static bool env_overridden(const struct kube_exec *ex, const char *entry)
{
    size_t n = strcspn(entry, "=");

    if (n == strlen(KUBE_EXEC_INFO_ENV) && !strncmp(entry, KUBE_EXEC_INFO_ENV, n))
        return true;
    for (size_t i = 0; i < ex->n_env; i++)
        if (!strncmp(ex->env[i], entry, n) && ex->env[i][n] == '=')
            return true;
    return false;
}

/* Our environment, then the kubeconfig's env entries, then the exec info. */
static char **exec_envp(const struct kube_exec *ex)
{
    size_t n = 0, k = 0;
    char **envp;

    while (environ && environ[n])
        n++;
    envp = xcalloc(n + ex->n_env + 2, sizeof(*envp));
    for (size_t i = 0; i < n; i++)
        if (!env_overridden(ex, environ[i]))
            envp[k++] = environ[i];
    for (size_t i = 0; i < ex->n_env; i++)
        envp[k++] = ex->env[i];
    envp[k] = ex->info;
    return envp;
}

/* Starts the plugin in a process group of its own (so that a timeout kills
 * whatever it started), stdin from /dev/null, stdout to out_fd, our stderr. */
static int exec_spawn(pid_t *pid, const struct kube_exec *ex, int out_fd)
{
    static const int reset[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, def;
    char **envp = exec_envp(ex);
    int err;

    sigemptyset(&none);
    sigemptyset(&def);
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        sigaddset(&def, reset[i]);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    err = posix_spawnp(pid, ex->command, &fa, &attr, ex->argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    if (err == ENOENT)
        return err_set(ERR_INVALID, "exec plugin %s: executable not found", ex->command);
    if (err)
        return err_set(ERR_INVALID, "exec plugin %s cannot be run: %s", ex->command,
                       strerror(err));
    return 0;
}

/* Reads stdout until the plugin closes it. */
static int exec_read(struct sbuf *out, int fd, const struct kube_exec *ex, int64_t deadline_ms)
{
    char chunk[4096];
    int rc = 0;

    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        int64_t left = deadline_ms - clock_mono_ms();
        ssize_t n;

        if (left <= 0) {
            rc = err_set(ERR_UNAVAILABLE, "exec plugin %s timed out after %ld ms", ex->command,
                         ex->timeout_ms);
            break;
        }
        if (poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) <= 0)
            continue; /* EINTR or the deadline: checked above */
        n = read(fd, chunk, sizeof(chunk));
        if (n == 0)
            break;
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            rc = err_set(ERR_IO, "exec plugin %s: reading its output: %s", ex->command,
                         strerror(errno));
            break;
        }
        if (n > 0 && sbuf_add(out, chunk, (size_t)n) < 0) {
            rc = err_set(ERR_TOOBIG, "exec plugin %s printed more than %u bytes", ex->command,
                         KUBE_EXEC_OUT_MAX);
            break;
        }
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    return rc;
}

/* Kills the plugin's process group and reaps the plugin. */
static void exec_kill(pid_t pid)
{
    int status;

    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* Reaps the plugin, killing its group once the deadline has passed.
 * 0 with *status; ERR_UNAVAILABLE when it had to be killed. */
static int exec_wait(int *status, pid_t pid, const struct kube_exec *ex, int64_t deadline_ms)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);

        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return err_set(ERR_IO, "exec plugin %s: waitpid: %s", ex->command, strerror(errno));
        if (clock_mono_ms() >= deadline_ms) {
            exec_kill(pid);
            return err_set(ERR_UNAVAILABLE, "exec plugin %s timed out after %ld ms",
                           ex->command, ex->timeout_ms);
        }
        poll(NULL, 0, 5);
    }
}

static int exec_exit_status(int status, const struct kube_exec *ex)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return err_set(ERR_UNAVAILABLE, "exec plugin %s failed with exit code %d", ex->command,
                       WEXITSTATUS(status));
    return err_set(ERR_UNAVAILABLE, "exec plugin %s was killed by signal %d", ex->command,
                   WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int kube_exec_run(struct sbuf **out, const struct kube_exec *ex)
{
    struct sbuf *o = sbuf_new(KUBE_EXEC_OUT_MAX);
    int64_t deadline_ms = clock_mono_ms() + ex->timeout_ms;
    int fds[2] = { -1, -1 }, status = 0, rc;
    pid_t pid = -1;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        rc = err_set(ERR_IO, "exec plugin %s: pipe: %s", ex->command, strerror(errno));
        goto out;
    }
    rc = exec_spawn(&pid, ex, fds[1]);
    close(fds[1]);
    if (rc < 0)
        goto out;
    if ((rc = exec_read(o, fds[0], ex, deadline_ms)) < 0) {
        exec_kill(pid);
        goto out;
    }
    if ((rc = exec_wait(&status, pid, ex, deadline_ms)) < 0 ||
        (rc = exec_exit_status(status, ex)) < 0)
        goto out;
    *out = o;
    o = NULL;
out:
    if (fds[0] >= 0)
        close(fds[0]);
    sbuf_free(o);
    return rc;
}

/* A string member of the ExecCredential status: NULL when absent or "". */
static int status_str(const char **out, const cJSON *st, const char *key, const char *cmd)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, key);

    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return err_set(ERR_PARSE, "exec plugin %s: status.%s is not a string", cmd, key);
    if (*v->valuestring)
        *out = v->valuestring;
    return 0;
}

static int exec_status(struct kube_cred *out, int64_t *expires_at, const cJSON *st,
                       const char *cmd)
{
    const char *tok, *cert, *key, *ts;
    int rc;

    if (!cJSON_IsObject(st))
        return err_set(ERR_PARSE, "exec plugin %s did not return a status", cmd);
    if ((rc = status_str(&tok, st, "token", cmd)) < 0 ||
        (rc = status_str(&cert, st, "clientCertificateData", cmd)) < 0 ||
        (rc = status_str(&key, st, "clientKeyData", cmd)) < 0 ||
        (rc = status_str(&ts, st, "expirationTimestamp", cmd)) < 0)
        return rc;
    if (!tok && !cert && !key)
        return err_set(ERR_PARSE, "exec plugin %s returned neither a token nor a certificate",
                       cmd);
    if (!cert != !key)
        return err_set(ERR_PARSE, "exec plugin %s returned only one of certificate and key", cmd);
    if (cert && (!strstr(cert, "-----BEGIN ") || !strstr(key, "-----BEGIN ")))
        return err_set(ERR_PARSE, "exec plugin %s returned a certificate or key that is not PEM",
                       cmd);
    *expires_at = 0;
    if (ts && clock_parse_rfc3339_any(expires_at, ts) < 0)
        return err_set(ERR_PARSE, "exec plugin %s: status.expirationTimestamp is not RFC 3339",
                       cmd);
    out->bearer = tok ? sbuf_from(tok, strlen(tok)) : NULL;
    out->cert_pem = cert ? xstrdup(cert) : NULL;
    out->key_pem = key ? sbuf_from(key, strlen(key)) : NULL;
    return 0;
}

int kube_exec_parse(struct kube_cred *out, int64_t *expires_at, const struct sbuf *raw,
                      const struct kube_exec *ex)
{
    cJSON *j = NULL;
    const char *kind, *ver;
    int rc;

    if (json_parse(&j, sbuf_expose(raw), sbuf_len(raw), KUBE_EXEC_OUT_MAX) < 0) {
        rc = err_wrap(ERR_PARSE, "exec plugin %s: output is not an ExecCredential", ex->command);
        goto out;
    }
    kind = json_str(j, "kind");
    ver = json_str(j, "apiVersion");
    if (!kind || strcmp(kind, "ExecCredential")) {
        rc = err_set(ERR_PARSE, "exec plugin %s: output is not an ExecCredential", ex->command);
        goto out;
    }
    if (!ver || strcmp(ver, ex->api_version)) {
        rc = err_set(ERR_PARSE, "exec plugin %s did not answer in the configured apiVersion %s",
                     ex->command, ex->api_version);
        goto out;
    }
    rc = exec_status(out, expires_at, json_obj(j, "status"), ex->command);
out:
    json_wipe_delete(j);
    return rc;
}

int kube_exec_credential_parse(struct kube_cred *out, int64_t *expires_at, const char *text,
                               size_t len, const char *api_version)
{
    struct kube_exec ex = { .command = (char *)"(exec plugin)", .api_version = (char *)api_version };
    struct sbuf *raw = sbuf_from(text, len);
    int rc = kube_exec_parse(out, expires_at, raw, &ex);

    sbuf_free(raw);
    return rc;
}

void kube_exec_release(struct kube_exec *ex)
{
    for (size_t i = 0; ex->argv && ex->argv[i]; i++)
        free(ex->argv[i]);
    for (size_t i = 0; i < ex->n_env; i++)
        free(ex->env[i]);
    free(ex->argv);
    free(ex->env);
    free(ex->command);
    free(ex->api_version);
    free(ex->info);
    ex->argv = ex->env = NULL;
    ex->n_env = 0;
    ex->command = ex->api_version = ex->info = NULL;
}
