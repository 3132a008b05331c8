/* Where the Kubernetes API server is and how to authenticate to it, found the
 * way controller-runtime's config.GetConfig() finds it, and read the way
 * client-go reads kubeconfig files.
 *
 * Loading order (the first that applies is used, the others are not looked at):
 *   1. opts->kubeconfig (a --kubeconfig flag): that one file; it must exist.
 *   2. $KUBECONFIG, when set and not empty: a ':'-separated list of files.
 *      Missing files are skipped (at least one must exist); empty and repeated
 *      entries are ignored. The files are merged as kubectl merges them: for
 *      current-context, and for each cluster, user and context *name*, the
 *      first file that sets it wins (whole entries, not field by field).
 *   3. In-cluster, when KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are
 *      both set: server https://HOST:PORT, the ServiceAccount token, ca.crt and
 *      namespace from opts->sa_dir (default KUBE_SA_DIR). The namespace is
 *      $POD_NAMESPACE, else the namespace file, else "default".
 *   4. ~/.kube/config ($HOME, else the passwd entry).
 * Note that kubectl itself prefers ~/.kube/config over in-cluster; controllers
 * built on controller-runtime use the order above, and so do we.
 *
 * From a kubeconfig, the context is opts->context (a --context flag) or else
 * current-context; its cluster, user and namespace ("default" when unset) are
 * used. Relative file paths (certificate-authority, client-certificate,
 * client-key, tokenFile, and an exec command that contains a '/') are relative
 * to the directory of the file that defined the entry, as in kubectl.
 *
 * Credentials of a user, by precedence as in client-go: tokenFile (re-read
 * periodically; token is used only until the file is first read) or token;
 * client-certificate/-key (files or base64 -data; -data wins), which may come
 * with a token; an exec plugin (client.authentication.k8s.io/v1 or v1beta1),
 * used only when the user has no token, tokenFile or client certificate.
 * Refused with ERR_INVALID, by name: username/password, auth-provider,
 * impersonation (as, as-groups, ...), tls-server-name and proxy-url (the HTTP
 * layer has no way to honour them), exec interactiveMode Always.
 *
 * Exec plugins run without a shell (posix_spawnp: PATH lookup when the command
 * has no '/'), with stdin from /dev/null, our stderr as theirs, our environment
 * plus the exec env entries plus KUBERNETES_EXEC_INFO (an ExecCredential with
 * spec.interactive false and, with provideClusterInfo, spec.cluster), in a
 * process group of their own that is killed on timeout. Their stdout (at most
 * KUBE_EXEC_OUT_MAX bytes) must be an ExecCredential of the configured
 * apiVersion holding status.token or status.clientCertificateData and
 * clientKeyData, and optionally status.expirationTimestamp (RFC 3339).
 *
 * Secrets (tokens, client keys, plugin output, the parsed kubeconfig's
 * strings) live in struct sbuf or are wiped before they are freed; no error
 * message holds one. */
#ifndef PGTR_KCONFIG_H
#define PGTR_KCONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "net/http.h"

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBE_CONFIG_FILE_MAX (1u << 20)   /* a kubeconfig, a CA file */
#define KUBE_TOKEN_FILE_MAX (64u << 10)   /* a tokenFile, the ServiceAccount token */
#define KUBE_EXEC_OUT_MAX (64u << 10)     /* an exec plugin's stdout */
/* A token file is read again when our copy is this old: client-go's file token
 * source has a 1 minute period less a 10 s leeway. The kubelet replaces the
 * projected token at 80% of its lifetime (at least 10 minutes). */
#define KUBE_TOKEN_REREAD_MS 50000
#define KUBE_EXEC_TIMEOUT_MS 30000
/* An exec credential is replaced this long before its expirationTimestamp
 * (client-go waits for the timestamp itself; see kube_config_cred). */
#define KUBE_EXEC_EXPIRY_SKEW_S 10

struct kube_config_opts {
    const char *kubeconfig; /* --kubeconfig; NULL or "": not given */
    const char *context;    /* --context; NULL or "": current-context */
    const char *sa_dir;     /* in-cluster files; NULL: KUBE_SA_DIR (tests point it elsewhere) */
    int64_t token_reread_ms; /* 0: KUBE_TOKEN_REREAD_MS */
    long exec_timeout_ms;    /* 0: KUBE_EXEC_TIMEOUT_MS */
    /* Clocks for the credential caches; NULL: clock_mono_ms and clock_wall_s.
     * Token files age on mono_ms; exec expirationTimestamps are compared with
     * wall_s. (Plugin timeouts always use the real monotonic clock.) */
    int64_t (*mono_ms)(void);
    int64_t (*wall_s)(void);
};

enum kube_config_source {
    KUBE_SOURCE_FILE,       /* one kubeconfig, explicit or ~/.kube/config */
    KUBE_SOURCE_KUBECONFIG, /* the $KUBECONFIG list */
    KUBE_SOURCE_IN_CLUSTER,
};

/* Where bearer tokens come from (a client certificate is separate, see below). */
enum kube_cred_kind {
    KUBE_CRED_NONE,       /* none: client certificate only, or anonymous */
    KUBE_CRED_TOKEN,      /* a fixed token from the kubeconfig */
    KUBE_CRED_TOKEN_FILE, /* tokenFile or the in-cluster ServiceAccount token, re-read */
    KUBE_CRED_EXEC,       /* an exec plugin: a token, or a client certificate and key */
};

struct kube_auth; /* private: the credential cache and its mutex */

/* A loaded configuration. The public fields are read-only after
 * kube_config_load and may be read from any thread. */
struct kube_config {
    enum kube_config_source source;
    char *path;      /* the (first) kubeconfig file, or the ServiceAccount directory */
    char *context;   /* the context used; NULL in-cluster */
    char *server;    /* "https://host:port[/prefix]", without a trailing '/' */
    char *default_namespace; /* never NULL */
    /* Honoured by kube_config_http_opts; the caller should log a warning. */
    bool insecure_skip_tls_verify;
    char *ca_file;         /* absolute path, or NULL */
    char *ca_pem;          /* decoded certificate-authority-data, or NULL; wins over ca_file */
    char *cert_file;       /* static client certificate: a path ... */
    char *cert_pem;        /* ... or decoded client-certificate-data (wins) */
    char *key_file;        /* its key: a path ... */
    struct sbuf *key_pem;  /* ... or decoded client-key-data (wins) */
    enum kube_cred_kind cred_kind;
    char *exec_command;    /* the exec plugin's command (for logs), or NULL */
    struct kube_auth *auth_;
};

/* Loads the configuration as described at the top of this file; opts may be
 * NULL. 0: *out is the configuration (kube_config_free). ERR_INVALID: no
 * configuration found, or one that is malformed or incomplete (the message
 * names the file and the field, e.g. "kubeconfig /x/config:
 * users[0].user.exec.command is missing"); ERR_IO: a file it names (the
 * explicit kubeconfig, a certificate, a key, a token file, the in-cluster
 * token) cannot be read; ERR_TOOBIG: a file over its cap. Exec plugins are not
 * run here: the first kube_config_cred does. */
int kube_config_load(struct kube_config **out, const struct kube_config_opts *opts);

/* Wipes the secrets and frees cfg (NULL is fine). No other thread may be using
 * it. */
void kube_config_free(struct kube_config *cfg);

/* The credential for one request: copies, owned by the holder, still valid
 * after the configuration moves on to a newer one. */
struct kube_cred {
    struct sbuf *bearer;   /* "Authorization: Bearer" value, or NULL */
    char *cert_pem;        /* client certificate from an exec plugin, or NULL */
    struct sbuf *key_pem;  /* and its key */
    uint64_t generation;   /* changes whenever the credential changes */
};

#define KUBE_CRED_INIT { NULL, NULL, NULL, 0 }

/* Wipes and frees the copies and leaves c empty (KUBE_CRED_INIT). */
void kube_cred_release(struct kube_cred *c);

/* Fills *out (which must be empty) with the current credential, first
 * refreshing it when due:
 *   - a token file is read again when our copy is older than the re-read
 *     interval; when that read fails but an earlier one succeeded, the earlier
 *     token is kept (and a warning logged once), as client-go does;
 *   - an exec plugin runs when there is no cached credential, when
 *     kube_config_invalidate dropped it, or from KUBE_EXEC_EXPIRY_SKEW_S before
 *     its expirationTimestamp (when the plugin gave a credential that close to
 *     expiry, until the timestamp itself); without a timestamp it is kept.
 * Thread-safe: one mutex per configuration, held while a plugin runs, so that
 * concurrent callers run it once and the others wait.
 * 0; ERR_IO: the token file cannot be read and there is no earlier token;
 * for an exec plugin: ERR_INVALID the command cannot be found or run;
 * ERR_UNAVAILABLE it failed (exit status or signal), or timed out;
 * ERR_TOOBIG its output is over KUBE_EXEC_OUT_MAX; ERR_PARSE its output is not
 * a valid ExecCredential. Each message names the command. */
int kube_config_cred(struct kube_cred *out, struct kube_config *cfg);

/* The current bearer token alone: *out is a new secret buffer (sbuf_free), or
 * NULL when the configuration authenticates without one (client certificate,
 * anonymous). Returns as kube_config_cred. */
int kube_config_bearer(struct sbuf **out, struct kube_config *cfg);

/* The API server answered 401 to a request made with the credential of this
 * generation: drop it so the next kube_config_cred runs the exec plugin or
 * reads the token file again, as client-go does. Nothing happens when the
 * credential has changed since (another worker already refreshed it) or when
 * it is a fixed token. */
void kube_config_invalidate(struct kube_config *cfg, uint64_t generation);

/* Sets out->tls from cfg's static TLS settings (CA, client certificate and
 * key, insecure flag); the other fields of *out are left as they are. The
 * pointers point into cfg: keep cfg alive until http_client_new has returned.
 * 0, or ERR_INVALID when cfg is NULL. */
int kube_config_http_opts(struct http_opts *out, const struct kube_config *cfg);

/* When c holds a client certificate from an exec plugin, points tls at it
 * (replacing any static one); keep c alive until http_client_new has returned.
 * A changed c->generation with a certificate means the connection needs a new
 * http client. */
void kube_cred_tls(struct tls_opts *tls, const struct kube_cred *c);

/* "none", "token", "token_file" or "exec", for logs. */
const char *kube_cred_kind_name(enum kube_cred_kind kind);

#endif
