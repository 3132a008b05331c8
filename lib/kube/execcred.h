/* Running a kubeconfig exec credential plugin and reading its answer (the client side of
 * client.authentication.k8s.io ExecCredential, as client-go does it): the command with its
 * argv, our environment plus the kubeconfig's env entries plus KUBERNETES_EXEC_INFO, stdin
 * from /dev/null, our stderr, in a process group of its own that is killed on timeout; its
 * stdout (at most KUBE_EXEC_OUT_MAX bytes) an ExecCredential of the configured apiVersion.
 * The credential cache that decides when to run it is kube/kconfig's. */
#ifndef PGTR_EXECCRED_H
#define PGTR_EXECCRED_H

#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "kube/kconfig.h"

#define KUBE_EXEC_INFO_ENV "KUBERNETES_EXEC_INFO"

/* A plugin as the kubeconfig configures it; every member owned (kube_exec_release). */
struct kube_exec {
    char *command;
    char **argv;     /* argv[0] is the command; NULL-terminated */
    char **env;      /* "NAME=VALUE" from the kubeconfig; NULL-terminated */
    size_t n_env;
    char *api_version;
    char *info;      /* "KUBERNETES_EXEC_INFO=<ExecCredential>" */
    long timeout_ms;
};

/* Runs the plugin. 0: *out holds its stdout (a secret buffer). ERR_UNAVAILABLE when it
 * cannot start, times out, fails or is killed; ERR_TOOBIG over KUBE_EXEC_OUT_MAX. */
int kube_exec_run(struct sbuf **out, const struct kube_exec *ex);
/* Decodes the plugin's stdout raw: 0 and *out (which must be empty) holds the token and/or
 * certificate and key, *expires_at the status.expirationTimestamp (RFC 3339, any offset) or 0
 * when absent. ERR_PARSE otherwise, naming the command. */
int kube_exec_parse(struct kube_cred *out, int64_t *expires_at, const struct sbuf *raw,
                    const struct kube_exec *ex);
/* kube_exec_parse of text[0..len) for a plugin answering in api_version. Exposed for tests
 * and fuzzing. */
int kube_exec_credential_parse(struct kube_cred *out, int64_t *expires_at, const char *text,
                               size_t len, const char *api_version);
/* Frees the members of ex and leaves it empty. */
void kube_exec_release(struct kube_exec *ex);

#endif
