#include "app/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/flag.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/yaml.h"
#include "base/banned.h"

#define CONFIG_FILE_MAX (1u << 20)

enum ftype { F_STR, F_INT, F_LONG, F_RATIO, F_BOOL, F_LOGIN, F_LIST };

/* One row per setting: where it lives in the YAML file and which flag sets it. */
struct field {
    const char *path;  /* "rotation.refreshRatio" */
    const char *flag;  /* "--refresh-ratio" or NULL */
    enum ftype type;
    size_t off;
    const char *help;
};

#define O(f) offsetof(struct config, f)

static const struct field fields[] = {
    { "kubernetes.kubeconfig", "--kubeconfig", F_STR, O(kubeconfig),
      "kubeconfig file (default: KUBECONFIG, in-cluster, ~/.kube/config)" },
    { "kubernetes.context", "--context", F_STR, O(context), "kubeconfig context" },
    { "namespaces", "--namespace", F_LIST, O(namespaces),
      "watch only this namespace (repeatable; default all)" },
    { "labelSelector", "--label-selector", F_STR, O(label_selector),
      "Secrets to manage (default pgtoken.io/managed=true)" },
    { "workers", "--workers", F_INT, O(workers), "concurrent reconciles (default 4)" },
    { "watch.timeoutSeconds", NULL, F_LONG, O(watch_timeout_s), NULL },
    { "watch.idleTimeoutSeconds", NULL, F_LONG, O(watch_idle_timeout_s), NULL },
    { "watch.resyncSeconds", NULL, F_LONG, O(resync_s), NULL },
    { "watch.relistSeconds", NULL, F_LONG, O(relist_s), NULL },
    { "identity.source", "--identity-source", F_STR, O(identity_source),
      "workload-identity (default) or imds (a node's managed identity)" },
    { "identity.clientId", "--client-id", F_STR, O(client_id),
      "imds: the user-assigned identity's client id" },
    { "identity.tenantId", "--tenant-id", F_STR, O(tenant_id),
      "tenant of ServiceAccount identities (default AZURE_TENANT_ID)" },
    { "identity.imdsEndpoint", NULL, F_STR, O(imds_endpoint), NULL },
    { "identity.allowControllerIdentity", "--allow-controller-identity", F_BOOL,
      O(allow_controller_identity),
      "Secrets without pgtoken.io/service-account use the controller's identity (default true)" },
    { "identity.scope", "--scope", F_STR, O(scope),
      "token scope (default https://ossrdbms-aad.database.windows.net/.default)" },
    { "identity.authorityHost", "--authority-host", F_STR, O(authority_host),
      "Entra authority (default AZURE_AUTHORITY_HOST)" },
    { "identity.caFile", "--identity-ca-file", F_STR, O(identity_ca_file),
      "CA bundle for identity endpoints (default: system)" },
    { "identity.insecureAllowHTTPAuthority", "--insecure-allow-http-authority", F_BOOL,
      O(insecure_http_authority), "INSECURE, tests only: allow an http:// authority" },
    { "rotation.refreshRatio", "--refresh-ratio", F_RATIO, O(refresh_ratio),
      "rotate when this share of a token's lifetime has passed (default 0.5)" },
    { "rotation.jitter", NULL, F_RATIO, O(jitter), NULL },
    { "rotation.minRemainingSeconds", NULL, F_LONG, O(min_remaining_s), NULL },
    { "loginCheck.mode", "--login-check", F_LOGIN, O(login_check),
      "required (default), best-effort or off" },
    { "loginCheck.caFile", "--db-ca-file", F_STR, O(db_ca_file),
      "CA bundle for PostgreSQL (default /etc/ssl/certs/ca-certificates.crt)" },
    { "loginCheck.sslmode", NULL, F_STR, O(db_sslmode), NULL },
    { "loginCheck.timeoutSeconds", NULL, F_INT, O(db_connect_timeout_s), NULL },
    { "loginCheck.insecureSkipTLSVerify", "--insecure-skip-db-tls-verify", F_BOOL,
      O(insecure_skip_db_tls_verify), "INSECURE: do not verify PostgreSQL's certificate" },
    { "log.level", "--log-level", F_STR, O(log_level), "debug, info (default), warn, error" },
    { "log.format", "--log-format", F_STR, O(log_format),
      "json (default: one object per line) or text (one line for people)" },
    { "metrics.address", "--metrics-addr", F_STR, O(metrics_addr),
      "serve /metrics, /healthz, /readyz on host:port or :port (default off)" },
    { "leaderElection.enabled", "--leader-elect", F_BOOL, O(leader_elect),
      "elect one active replica through a Lease (default false)" },
    { "leaderElection.namespace", "--leader-election-namespace", F_STR, O(lease_namespace),
      "the Lease's namespace (default POD_NAMESPACE, else the pod's own)" },
    { "leaderElection.leaseName", "--leader-election-id", F_STR, O(lease_name),
      "the Lease's name (default pgtoken-rotator)" },
    { "leaderElection.leaseDurationSeconds", NULL, F_LONG, O(lease_duration_s), NULL },
    { "leaderElection.renewDeadlineSeconds", NULL, F_LONG, O(renew_deadline_s), NULL },
    { "leaderElection.retryPeriodSeconds", NULL, F_LONG, O(retry_period_s), NULL },
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = xstrdup(v);
}

void config_init(struct config *c)
{
    char host[256] = "";

    memset(c, 0, sizeof(*c));
    c->namespaces = xcalloc(1, sizeof(char *));
    set_str(&c->label_selector, "pgtoken.io/managed=true");
    c->workers = 4;
    c->watch_timeout_s = 300;
    c->watch_idle_timeout_s = 120;
    c->resync_s = 60;
    c->relist_s = 1800;
    set_str(&c->identity_source, "workload-identity");
    c->allow_controller_identity = true;
    set_str(&c->scope, "https://ossrdbms-aad.database.windows.net/.default");
    c->refresh_ratio = 0.5;
    c->jitter = 0.1;
    c->min_remaining_s = 300;
    c->login_check = LOGIN_CHECK_REQUIRED;
    set_str(&c->db_ca_file, "/etc/ssl/certs/ca-certificates.crt");
    set_str(&c->db_sslmode, "verify-full");
    c->db_connect_timeout_s = 10;
    set_str(&c->log_level, "info");
    set_str(&c->log_format, "json");
    set_str(&c->metrics_addr, "");
    set_str(&c->lease_name, "pgtoken-rotator");
    c->lease_duration_s = 15;
    c->renew_deadline_s = 10;
    c->retry_period_s = 2;
    if (getenv("POD_NAME"))
        set_str(&c->instance, getenv("POD_NAME"));
    else if (gethostname(host, sizeof(host) - 1) == 0)
        set_str(&c->instance, host);
    else
        set_str(&c->instance, "pgtoken-rotator");
}

void config_release(struct config *c)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].type == F_STR)
            free(*(char **)((char *)c + fields[i].off));
    for (size_t i = 0; i < c->nnamespaces; i++)
        free(c->namespaces[i]);
    free(c->namespaces);
    free(c->instance);
    memset(c, 0, sizeof(*c));
}

const char *login_check_name(enum login_check_mode m)
{
    return m == LOGIN_CHECK_REQUIRED ? "required" : m == LOGIN_CHECK_BEST_EFFORT ? "best-effort" : "off";
}

int login_check_parse(enum login_check_mode *out, const char *s)
{
    if (!strcmp(s, "required"))
        *out = LOGIN_CHECK_REQUIRED;
    else if (!strcmp(s, "best-effort"))
        *out = LOGIN_CHECK_BEST_EFFORT;
    else if (!strcmp(s, "off"))
        *out = LOGIN_CHECK_OFF;
    else
        return err_set(ERR_INVALID, "must be required, best-effort or off");
    return 0;
}

static void add_ns(struct config *c, const char *ns)
{
    c->namespaces = xrealloc(c->namespaces, (c->nnamespaces + 2) * sizeof(char *));
    c->namespaces[c->nnamespaces++] = xstrdup(ns);
    c->namespaces[c->nnamespaces] = NULL;
}

/* Sets field f from text (a flag's value, or a YAML scalar rendered as text). */
static int set_field(struct config *c, const struct field *f, const char *v)
{
    void *slot = (char *)c + f->off;
    char *end;

    errno = 0;
    switch (f->type) {
    case F_STR:
        set_str(slot, v);
        return 0;
    case F_INT:
    case F_LONG: {
        long n = strtol(v, &end, 10);
        /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch): strto* always sets end */
        if (!*v || *end || errno || n < 0 || n > 1000000)
            return err_set(ERR_INVALID, "must be a whole number from 0 to 1000000");
        if (f->type == F_INT)
            *(int *)slot = (int)n;
        else
            *(long *)slot = n;
        return 0;
    }
    case F_RATIO: {
        double d = strtod(v, &end);
        /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch): strto* always sets end */
        if (!*v || *end || errno || !(d > 0 && d < 1))
            return err_set(ERR_INVALID, "must be a number between 0 and 1 (exclusive)");
        *(double *)slot = d;
        return 0;
    }
    case F_BOOL:
        if (!strcmp(v, "true"))
            *(bool *)slot = true;
        else if (!strcmp(v, "false"))
            *(bool *)slot = false;
        else
            return err_set(ERR_INVALID, "must be true or false");
        return 0;
    case F_LOGIN:
        return login_check_parse(slot, v);
    case F_LIST:
        add_ns(c, v);
        return 0;
    }
    return err_set(ERR_INVALID, "unknown field type");
}

static const cJSON *lookup(const cJSON *root, const char *path)
{
    char part[64];
    const char *p = path;
    const cJSON *cur = root;

    while (cur && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        cur = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, part) : NULL;
        p += n + (p[n] == '.');
    }
    return cur;
}

static int scalar_text(char *out, size_t n, const cJSON *v)
{
    if (cJSON_IsString(v))
        snprintf(out, n, "%s", v->valuestring);
    else if (cJSON_IsBool(v))
        snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v))
        snprintf(out, n, "%.17g", v->valuedouble);
    else
        return err_set(ERR_INVALID, "must be a single value");
    return 0;
}

/* Every key in the file must be one we know: a typo is an error, not a default. */
static int check_unknown(const cJSON *obj, const char *prefix, const char *file)
{
    const cJSON *it;
    char path[256];
    int rc;

    cJSON_ArrayForEach(it, obj)
    {
        bool known = false, parent = false;
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", it->string);
        for (size_t i = 0; i < NFIELDS; i++) {
            size_t n = strlen(path);
            if (!strcmp(fields[i].path, path))
                known = true;
            else if (!strncmp(fields[i].path, path, n) && fields[i].path[n] == '.')
                parent = true;
        }
        if (parent && cJSON_IsObject(it)) {
            if ((rc = check_unknown(it, path, file)) < 0)
                return rc;
        } else if (!known) {
            return err_set(ERR_INVALID, "config %s: unknown setting %s", file, path);
        }
    }
    return 0;
}

int config_load_file(struct config *c, const char *path)
{
    cJSON *root = NULL;
    char text[4096];
    int rc;

    if ((rc = yaml_parse_file(&root, path, CONFIG_FILE_MAX)) < 0)
        return rc;
    if (!cJSON_IsObject(root)) {
        rc = err_set(ERR_INVALID, "config %s: the top level must be a mapping", path);
        goto out;
    }
    if ((rc = check_unknown(root, "", path)) < 0)
        goto out;
    for (size_t i = 0; i < NFIELDS; i++) {
        const cJSON *v = lookup(root, fields[i].path), *it;
        if (!v || cJSON_IsNull(v))
            continue;
        if (fields[i].type == F_LIST) {
            if (!cJSON_IsArray(v)) {
                rc = err_set(ERR_INVALID, "config %s: %s must be a list", path, fields[i].path);
                goto out;
            }
            cJSON_ArrayForEach(it, v)
            {
                if ((rc = scalar_text(text, sizeof(text), it)) < 0 ||
                    (rc = set_field(c, &fields[i], text)) < 0)
                    goto bad;
            }
            continue;
        }
        if ((rc = scalar_text(text, sizeof(text), v)) < 0 || (rc = set_field(c, &fields[i], text)) < 0)
            goto bad;
        continue;
bad:
        rc = err_wrap(rc, "config %s: %s", path, fields[i].path);
        goto out;
    }
out:
    cJSON_Delete(root);
    return rc;
}

static void usage(void)
{
    printf("usage: pgtoken-rotator run [--config FILE] [flags]\n\n"
           "Watches Secrets labelled pgtoken.io/managed=true and keeps their PostgreSQL\n"
           "password and connection values filled with fresh Entra ID tokens.\n\nflags:\n");
    printf("  %-34s %s\n", "--config FILE", "YAML settings file (flags override it)");
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].flag)
            printf("  %-34s %s\n", fields[i].flag, fields[i].help);
    printf("  %-34s %s\n", "-h, --help", "this text");
}

/* --config, the file the other flags override: not a setting of its own. */
#define FLAG_ID_CONFIG (-1)

static int set_flag(void *ctx, const struct flag *fl, const char *v)
{
    struct config *c = ctx;
    int rc;

    if (fl->id == FLAG_ID_CONFIG)
        return config_load_file(c, v);
    if ((rc = set_field(c, &fields[fl->id], v)) < 0)
        return err_wrap(rc, "flag %s", fl->name);
    return 0;
}

int config_parse_args(struct config *c, int argc, char **argv)
{
    struct flag flags[NFIELDS + 1];
    size_t n = 0;
    int rc;

    flags[n++] = (struct flag){ "--config", FLAG_VALUE, FLAG_ID_CONFIG, true };
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].flag)
            flags[n++] = (struct flag){ fields[i].flag,
                                        fields[i].type == F_BOOL ? FLAG_BOOL : FLAG_VALUE,
                                        (int)i, false };
    if ((rc = flag_parse(flags, n, argc, argv, set_flag, c)) == FLAG_HELP)
        usage();
    return rc;
}

int config_validate(const struct config *c)
{
    if (log_parse_level(c->log_level) < 0)
        return err_set(ERR_INVALID, "log.level %s: must be debug, info, warn or error", c->log_level);
    if (log_parse_format(c->log_format) < 0)
        return err_set(ERR_INVALID, "log.format %s: must be json or text", c->log_format);
    if (c->workers < 1 || c->workers > 256)
        return err_set(ERR_INVALID, "workers must be from 1 to 256");
    if (strcmp(c->identity_source, "workload-identity") && strcmp(c->identity_source, "imds"))
        return err_set(ERR_INVALID, "identity.source %s: must be workload-identity or imds",
                       c->identity_source);
    if (!*c->label_selector)
        return err_set(ERR_INVALID, "labelSelector must not be empty: the controller manages "
                                    "only Secrets that opt in");
    if (strcmp(c->db_sslmode, "require") && strcmp(c->db_sslmode, "verify-ca") &&
        strcmp(c->db_sslmode, "verify-full"))
        return err_set(ERR_INVALID, "loginCheck.sslmode %s: must be require, verify-ca or "
                                    "verify-full", c->db_sslmode);
    if (c->watch_timeout_s < 10 || c->watch_idle_timeout_s < 5)
        return err_set(ERR_INVALID, "watch.timeoutSeconds must be >= 10 and "
                                    "watch.idleTimeoutSeconds >= 5");
    if (c->resync_s < 1 || c->resync_s > 86400)
        return err_set(ERR_INVALID, "watch.resyncSeconds must be from 1 to 86400");
    if (c->relist_s < 0 || c->relist_s > 86400)
        return err_set(ERR_INVALID, "watch.relistSeconds must be from 0 (off) to 86400");
    if (c->retry_period_s < 1 || c->renew_deadline_s * 1000 <= 1200 * c->retry_period_s ||
        c->lease_duration_s <= c->renew_deadline_s)
        return err_set(ERR_INVALID, "leaderElection: want leaseDurationSeconds > "
                                    "renewDeadlineSeconds > 1.2 x retryPeriodSeconds >= 1.2");
    return 0;
}
