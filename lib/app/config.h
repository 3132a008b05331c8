/* The controller's settings: defaults that serve AKS, then the YAML file
 * (--config), then flags. Validated once at start; errors name the field. */
#ifndef PGTR_CONFIG_H
#define PGTR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum login_check_mode { LOGIN_CHECK_REQUIRED, LOGIN_CHECK_BEST_EFFORT, LOGIN_CHECK_OFF };

struct config {
    /* kubernetes */
    char *kubeconfig;          /* NULL: KUBECONFIG, in-cluster, ~/.kube/config */
    char *context;
    char **namespaces;         /* NULL-terminated; empty: all namespaces */
    size_t nnamespaces;
    char *label_selector;      /* pgtoken.io/managed=true */
    int workers;               /* reconcile threads; 4 */
    long watch_timeout_s;      /* 300 */
    long watch_idle_timeout_s; /* 120 */
    long resync_s;             /* 60: Secrets past their planned time are looked at again */
    long relist_s;             /* 1800: a complete list again this often; 0: off */
    /* identity */
    char *identity_source;     /* "workload-identity" or "imds" */
    char *client_id;           /* imds: a user-assigned identity (default: the node's) */
    char *tenant_id;           /* ServiceAccount identities; default AZURE_TENANT_ID */
    char *imds_endpoint;       /* default AZURE_POD_IDENTITY_AUTHORITY_HOST or 169.254.169.254 */
    bool allow_controller_identity; /* true: Secrets without pgtoken.io/service-account use ours */
    char *scope;               /* https://ossrdbms-aad.database.windows.net/.default */
    char *authority_host;      /* NULL: AZURE_AUTHORITY_HOST or the public cloud */
    char *identity_ca_file;    /* NULL: system bundle */
    bool insecure_http_authority; /* tests only: allow http:// token endpoints */
    /* rotation */
    double refresh_ratio;      /* 0.5 */
    double jitter;             /* 0.1 */
    long min_remaining_s;      /* 300 */
    /* login check */
    enum login_check_mode login_check;
    char *db_ca_file;          /* /etc/ssl/certs/ca-certificates.crt */
    char *db_sslmode;          /* verify-full */
    int db_connect_timeout_s;  /* 10 */
    bool insecure_skip_db_tls_verify;
    /* operations */
    char *metrics_addr;        /* /metrics, /healthz, /readyz listener; "" or "0": off */
    bool leader_elect;         /* false */
    char *lease_namespace;     /* NULL: POD_NAMESPACE, else the in-cluster namespace file */
    char *lease_name;          /* pgtoken-rotator */
    long lease_duration_s;     /* 15 */
    long renew_deadline_s;     /* 10 */
    long retry_period_s;       /* 2 */
    /* logging */
    char *log_level;           /* info */
    char *log_format;          /* json (one object per line) or text (for people) */
    /* identity of this replica for Events */
    char *instance;            /* POD_NAME or the host name */
};

/* Fills defaults. */
void config_init(struct config *c);
void config_release(struct config *c);

/* Reads a YAML file over the current values. ERR_IO, ERR_PARSE, or ERR_INVALID
 * naming the field ("config x.yaml: rotation.refreshRatio must be in (0, 1)"). */
int config_load_file(struct config *c, const char *path);

/* Parses `run` flags over the current values (argv[0] is the subcommand), in the forms of
 * base/flag.h (--flag VALUE, --flag=VALUE, --bool-flag[=true|false]); a repeated flag: the
 * last one wins, except --namespace, which adds up. --config is applied first wherever it
 * appears. ERR_INVALID on a bad flag (flag.h's messages; a bad value reads "flag --workers:
 * must be ..."), or config_load_file's error; 1 (FLAG_HELP) when --help was asked (usage
 * already printed on stdout). */
int config_parse_args(struct config *c, int argc, char **argv);

/* Cross-field checks after everything is read. */
int config_validate(const struct config *c);

const char *login_check_name(enum login_check_mode m);
int login_check_parse(enum login_check_mode *out, const char *s);

#endif
