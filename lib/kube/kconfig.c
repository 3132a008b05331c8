#include "kube/kconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/b64.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/yaml.h"
#include "kube/execcred.h"
#include "base/banned.h"

extern char **environ;

#define EXEC_V1 "client.authentication.k8s.io/v1"
#define EXEC_V1BETA1 "client.authentication.k8s.io/v1beta1"
#define EXEC_EXTENSION "client.authentication.k8s.io/exec"
#define NAMESPACE_MAX 1024

struct kube_auth {
    pthread_mutex_t mu;
    enum kube_cred_kind kind;
    struct sbuf *token;   /* the bearer in use */
    char *cert_pem;       /* from the exec plugin */
    struct sbuf *key_pem;
    uint64_t generation;
    bool fresh;           /* false: fetch before the next use (never fetched, or invalidated) */
    char *token_file;
    int64_t read_at_ms;
    int64_t reread_ms;
    bool reread_failing;  /* a warning was logged for the current run of failures */
    struct kube_exec exec;
    int64_t refresh_at_s; /* wall clock; INT64_MAX when the credential does not expire */
    int64_t (*mono_ms)(void);
    int64_t (*wall_s)(void);
};

/* One parsed kubeconfig file. */
struct kc_file {
    char *path;
    char *dir; /* absolute directory, the base of relative paths in the file */
    cJSON *tree;
};

struct kc_set {
    struct kc_file *files;
    size_t n, cap;
};

/* A named entry's inner mapping (clusters[i].cluster, ...) and where it is. */
struct kc_ref {
    const struct kc_file *file;
    const cJSON *obj; /* NULL for an empty entry */
    char where[128];  /* "users[2].user", for messages */
};

/* The file an entry came from, for messages (every entry has one; the
 * fallback keeps the static analyser and any future caller honest). */
static const char *ref_path(const struct kc_ref *r)
{
    return r && r->file ? r->file->path : "(kubeconfig)";
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
    struct buf b = BUF_INIT(SIZE_MAX);
    va_list ap;

    va_start(ap, fmt);
    buf_vaddf(&b, fmt, ap);
    va_end(ap);
    return buf_detach(&b, NULL);
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Reads a small file that holds no secret (a CA bundle, a namespace). */
static int file_read(struct buf *out, const char *path)
{
    char chunk[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return err_set(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    while (rc == 0 && (n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno != EINTR)
            rc = err_set(ERR_IO, "cannot read %s: %s", path, strerror(errno));
        else if (n > 0 && buf_add(out, chunk, (size_t)n) < 0)
            rc = err_set(ERR_TOOBIG, "%s is larger than %zu bytes", path, out->max);
    }
    close(fd);
    return rc;
}

static bool file_missing(const char *path)
{
    struct stat st;

    return stat(path, &st) < 0 && errno == ENOENT;
}

/* ---- credentials and their cache ---- */

void kube_cred_release(struct kube_cred *c)
{
    sbuf_free(c->bearer);
    sbuf_free(c->key_pem);
    free(c->cert_pem);
    *c = (struct kube_cred)KUBE_CRED_INIT;
}

/* Makes c the credential in use; c gets the previous one (for the caller to
 * release). The generation moves only when the credential really changed. */
static void cred_install(struct kube_auth *a, struct kube_cred *c)
{
    struct kube_cred old = { a->token, a->cert_pem, a->key_pem, 0 };
    bool same = sbuf_eq(old.bearer, c->bearer) && sbuf_eq(old.key_pem, c->key_pem) &&
                str_eq(old.cert_pem, c->cert_pem);

    a->token = c->bearer;
    a->cert_pem = c->cert_pem;
    a->key_pem = c->key_pem;
    *c = old;
    if (!same)
        a->generation++;
}

/* Reads a token file, trimmed of surrounding whitespace as client-go does. */
static int token_read(struct sbuf **out, const char *path)
{
    struct sbuf *s = NULL;
    size_t skip;
    int rc;

    if ((rc = sbuf_read_file(&s, path, KUBE_TOKEN_FILE_MAX)) < 0)
        return err_wrap(rc, "token file");
    sbuf_rtrim(s);
    skip = strspn(sbuf_expose(s), " \t\r\n");
    if (skip) {
        struct sbuf *t = sbuf_from(sbuf_expose(s) + skip, sbuf_len(s) - skip);
        sbuf_free(s);
        s = t;
    }
    if (sbuf_len(s) == 0) {
        sbuf_free(s);
        return err_set(ERR_IO, "token file %s is empty", path);
    }
    *out = s;
    return 0;
}

/* Reads the token file when our copy is due. Called with a->mu held. */
static int token_file_refresh(struct kube_auth *a)
{
    struct kube_cred c = KUBE_CRED_INIT;
    int64_t now = a->mono_ms();
    int rc;

    if (a->fresh && now - a->read_at_ms < a->reread_ms)
        return 0;
    if ((rc = token_read(&c.bearer, a->token_file)) < 0) {
        if (a->token) { /* keep the last good token (or the kubeconfig's), as client-go */
            if (!a->reread_failing)
                log_warn("kube_token_file_unreadable", LOG_STR("path", a->token_file),
                         LOG_ERR(rc));
            a->reread_failing = true;
            rc = 0;
        }
        goto out;
    }
    a->reread_failing = false;
    a->read_at_ms = now;
    a->fresh = true;
    cred_install(a, &c);
out:
    kube_cred_release(&c);
    return rc;
}

/* When to run the plugin again: KUBE_EXEC_EXPIRY_SKEW_S before expiry, but no
 * sooner than expiry itself for a credential given that close to it (no
 * back-to-back runs). */
static int64_t exec_refresh_at(int64_t expires_at, int64_t now)
{
    if (!expires_at)
        return INT64_MAX;
    if (expires_at - KUBE_EXEC_EXPIRY_SKEW_S > now)
        return expires_at - KUBE_EXEC_EXPIRY_SKEW_S;
    return expires_at;
}

/* Runs the plugin when the cached credential is due. Called with a->mu held. */
static int exec_refresh(struct kube_auth *a)
{
    struct kube_cred c = KUBE_CRED_INIT;
    struct sbuf *raw = NULL;
    int64_t expires_at = 0;
    int rc;

    if (a->fresh && a->wall_s() < a->refresh_at_s)
        return 0;
    if ((rc = kube_exec_run(&raw, &a->exec)) < 0 ||
        (rc = kube_exec_parse(&c, &expires_at, raw, &a->exec)) < 0)
        goto out;
    a->refresh_at_s = exec_refresh_at(expires_at, a->wall_s());
    a->fresh = true;
    cred_install(a, &c);
out:
    kube_cred_release(&c);
    sbuf_free(raw);
    return rc;
}

/* ---- reading kubeconfig entries ---- */

static int missing(const struct kc_ref *r, const char *key)
{
    return err_set(ERR_INVALID, "kubeconfig %s: %s.%s is missing", ref_path(r), r->where, key);
}

/* A string field: *out is NULL when it is absent, null or "". */
static int ref_str(const char **out, const struct kc_ref *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->obj, key);

    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return err_set(ERR_INVALID, "kubeconfig %s: %s.%s must be a string", ref_path(r),
                       r->where, key);
    if (*v->valuestring)
        *out = v->valuestring;
    return 0;
}

static int ref_bool(bool *out, const struct kc_ref *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->obj, key);

    *out = false;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return err_set(ERR_INVALID, "kubeconfig %s: %s.%s must be true or false", ref_path(r),
                       r->where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Fields we cannot honour: refusing them beats silently doing something else. */
static int ref_refuse(const struct kc_ref *r, const char *const *keys)
{
    for (; *keys; keys++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->obj, *keys);

        if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && !*v->valuestring) ||
            ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child))
            continue;
        return err_set(ERR_INVALID, "kubeconfig %s: %s.%s is not supported", ref_path(r),
                       r->where, *keys);
    }
    return 0;
}

static char *resolve(const struct kc_file *f, const char *path)
{
    return path[0] == '/' ? xstrdup(path) : strf("%s/%s", f->dir, path);
}

/* A file a field names, resolved and checked readable (as kubectl validates). */
static int ref_file(char **out, const struct kc_ref *r, const char *key, const char *value)
{
    char *path = resolve(r->file, value);
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0) {
        rc = err_set(ERR_IO, "kubeconfig %s: %s.%s: cannot read %s: %s", ref_path(r),
                     r->where, key, path, strerror(errno));
        free(path);
        return rc;
    }
    close(fd);
    *out = path;
    return 0;
}

static int bad_pem(const struct kc_ref *r, const char *key)
{
    return err_set(ERR_INVALID, "kubeconfig %s: %s.%s is not base64-encoded PEM", ref_path(r),
                   r->where, key);
}

static int ref_pem(char **out, const struct kc_ref *r, const char *key, const char *b64)
{
    size_t len = strlen(b64), n = 0;
    unsigned char *pem = xmalloc(B64_DECODED_MAX(len) + 1);

    if (b64_decode(pem, &n, b64, len, false) < 0 || memchr(pem, 0, n)) {
        free(pem);
        return bad_pem(r, key);
    }
    pem[n] = '\0';
    if (!strstr((char *)pem, "-----BEGIN ")) {
        free(pem);
        return bad_pem(r, key);
    }
    *out = (char *)pem;
    return 0;
}

static int ref_key_pem(struct sbuf **out, const struct kc_ref *r, const char *key, const char *b64)
{
    struct sbuf *k = NULL;

    if (b64_decode_sb(&k, b64, strlen(b64)) < 0 ||
        memchr(sbuf_expose(k), 0, sbuf_len(k)) || !strstr(sbuf_expose(k), "-----BEGIN ")) {
        sbuf_free(k);
        return bad_pem(r, key);
    }
    *out = k;
    return 0;
}

/* ---- the kubeconfig files ---- */

/* The absolute directory of path. */
static char *abs_dir(const char *path)
{
    struct buf b = BUF_INIT(SIZE_MAX);
    char cwd[PATH_MAX];
    char *slash;

    if (path[0] != '/' && getcwd(cwd, sizeof(cwd)))
        buf_addf(&b, "%s/", cwd);
    buf_addstr(&b, path);
    slash = strrchr(b.ptr, '/');
    if (!slash) { /* relative, and getcwd failed */
        buf_release(&b);
        return xstrdup(".");
    }
    if (slash == b.ptr)
        slash[1] = '\0'; /* a file in / */
    else
        slash[0] = '\0';
    return buf_detach(&b, NULL);
}

static int set_add(struct kc_set *s, const char *path)
{
    struct kc_file f = { NULL, NULL, NULL };
    struct sbuf *raw = NULL;
    int rc;

    if ((rc = sbuf_read_file(&raw, path, KUBE_CONFIG_FILE_MAX)) < 0) {
        rc = err_wrap(rc, "kubeconfig");
        goto out;
    }
    if ((rc = yaml_parse(&f.tree, sbuf_expose(raw), sbuf_len(raw))) < 0) {
        rc = err_wrap(ERR_INVALID, "kubeconfig %s", path);
        goto out;
    }
    if (!cJSON_IsObject(f.tree)) {
        rc = err_set(ERR_INVALID, "kubeconfig %s: not a YAML mapping", path);
        goto out;
    }
    f.path = xstrdup(path);
    f.dir = abs_dir(path);
    XGROW(s->files, s->cap, s->n + 1);
    s->files[s->n++] = f;
    f.tree = NULL;
out:
    json_wipe_delete(f.tree);
    sbuf_free(raw);
    return rc;
}

static bool set_has(const struct kc_set *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->files[i].path, path))
            return true;
    return false;
}

/* $KUBECONFIG: missing, empty and repeated entries are skipped, as kubectl. */
static int set_add_list(struct kc_set *s, const char *list)
{
    const char *p = list;
    int rc = 0;

    while (rc == 0 && *p) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *path = xstrndup(p, len);

        if (len && !set_has(s, path) && !file_missing(path))
            rc = set_add(s, path);
        free(path);
        p += len + (end != NULL);
    }
    if (rc == 0 && s->n == 0)
        rc = err_set(ERR_INVALID, "none of the files in KUBECONFIG (%s) exists", list);
    return rc;
}

static void set_release(struct kc_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->files[i].path);
        free(s->files[i].dir);
        json_wipe_delete(s->files[i].tree);
    }
    free(s->files);
}

/* Entry `name` of `list` in one file. ERR_NOTFOUND when the file has none. */
static int file_find(struct kc_ref *out, const struct kc_file *f, const char *list,
                     const char *inner, const char *name)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(f->tree, list), *e, *hit = NULL;
    int i = 0, at = -1;

    if (!arr || cJSON_IsNull(arr))
        return ERR_NOTFOUND;
    if (!cJSON_IsArray(arr))
        return err_set(ERR_INVALID, "kubeconfig %s: %s is not a list", f->path, list);
    cJSON_ArrayForEach(e, arr) {
        const char *n = json_str(e, "name");

        if (n && !strcmp(n, name)) {
            if (hit)
                return err_set(ERR_INVALID, "kubeconfig %s: %s[%d] and %s[%d] are both named %s",
                               f->path, list, at, list, i, name);
            hit = e;
            at = i;
        }
        i++;
    }
    if (!hit)
        return ERR_NOTFOUND;
    out->file = f;
    out->obj = cJSON_GetObjectItemCaseSensitive(hit, inner);
    snprintf(out->where, sizeof(out->where), "%s[%d].%s", list, at, inner);
    if (cJSON_IsNull(out->obj))
        out->obj = NULL;
    if (out->obj && !cJSON_IsObject(out->obj))
        return err_set(ERR_INVALID, "kubeconfig %s: %s is not a mapping", f->path, out->where);
    return 0;
}

/* The first file that defines `name` wins, as in kubectl's merge. */
static int set_find(struct kc_ref *out, const struct kc_set *s, const char *list,
                    const char *inner, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        int rc = file_find(out, &s->files[i], list, inner, name);

        if (rc != ERR_NOTFOUND)
            return rc;
    }
    return ERR_NOTFOUND;
}

static const char *set_current_context(const struct kc_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *c = json_str(s->files[i].tree, "current-context");

        if (c && *c)
            return c;
    }
    return NULL;
}

/* ---- cluster ---- */

static int cluster_server(struct kube_config *cfg, const struct kc_ref *r, const char *server)
{
    size_t len;

    if (!server)
        return missing(r, "server");
    /* The API client speaks only TLS (kube_client_new refuses anything else): an
     * http:// server is refused here, where the user can be told which field. */
    if (!strncmp(server, "http://", 7))
        return err_set(ERR_INVALID,
                       "kubeconfig %s: %s.server is http://; the API server must be reached over "
                       "https://",
                       ref_path(r), r->where);
    if (strncmp(server, "https://", 8) || !server[8])
        return err_set(ERR_INVALID, "kubeconfig %s: %s.server must be an https:// URL",
                       ref_path(r), r->where);
    len = strlen(server);
    while (len > 8 && server[len - 1] == '/')
        len--;
    cfg->server = xstrndup(server, len);
    return 0;
}

static int cluster_load(struct kube_config *cfg, const struct kc_ref *r)
{
    static const char *const refused[] = { "tls-server-name", "proxy-url", NULL };
    const char *server, *ca_data, *ca_file;
    int rc;

    if ((rc = ref_refuse(r, refused)) < 0 || (rc = ref_str(&server, r, "server")) < 0 ||
        (rc = ref_str(&ca_data, r, "certificate-authority-data")) < 0 ||
        (rc = ref_str(&ca_file, r, "certificate-authority")) < 0 ||
        (rc = ref_bool(&cfg->insecure_skip_tls_verify, r, "insecure-skip-tls-verify")) < 0 ||
        (rc = cluster_server(cfg, r, server)) < 0)
        return rc;
    if (ca_data) /* -data wins over the file, as in kubectl */
        rc = ref_pem(&cfg->ca_pem, r, "certificate-authority-data", ca_data);
    else if (ca_file)
        rc = ref_file(&cfg->ca_file, r, "certificate-authority", ca_file);
    if (rc == 0 && cfg->insecure_skip_tls_verify && (cfg->ca_pem || cfg->ca_file))
        rc = err_set(ERR_INVALID,
                     "kubeconfig %s: %s sets both a certificate authority and "
                     "insecure-skip-tls-verify",
                     ref_path(r), r->where);
    return rc;
}

/* ---- exec plugin configuration ---- */

static int exec_mode(const struct kc_ref *e, const char *ver, const char *mode)
{
    if (!mode && !strcmp(ver, EXEC_V1)) /* v1beta1 defaults to IfAvailable */
        return err_set(ERR_INVALID, "kubeconfig %s: %s.interactiveMode is missing (use Never)",
                       e->file->path, e->where);
    if (!mode || !strcmp(mode, "Never") || !strcmp(mode, "IfAvailable"))
        return 0;
    if (!strcmp(mode, "Always"))
        return err_set(ERR_INVALID,
                       "kubeconfig %s: %s.interactiveMode Always needs a terminal, which a "
                       "controller does not have",
                       e->file->path, e->where);
    return err_set(ERR_INVALID, "kubeconfig %s: %s.interactiveMode must be Never or IfAvailable",
                   e->file->path, e->where);
}

static int exec_args(struct kube_exec *ex, const struct kc_ref *e)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(e->obj, "args"), *v;
    size_t n = 1;

    if (arr && !cJSON_IsNull(arr) && !cJSON_IsArray(arr))
        return err_set(ERR_INVALID, "kubeconfig %s: %s.args is not a list", e->file->path,
                       e->where);
    ex->argv = xcalloc((size_t)cJSON_GetArraySize(arr) + 2, sizeof(*ex->argv));
    ex->argv[0] = xstrdup(ex->command);
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsString(v))
            return err_set(ERR_INVALID, "kubeconfig %s: %s.args[%zu] must be a string",
                           e->file->path, e->where, n - 1);
        ex->argv[n++] = xstrdup(v->valuestring);
    }
    return 0;
}

static int exec_env(struct kube_exec *ex, const struct kc_ref *e)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(e->obj, "env"), *v;

    if (arr && !cJSON_IsNull(arr) && !cJSON_IsArray(arr))
        return err_set(ERR_INVALID, "kubeconfig %s: %s.env is not a list", e->file->path,
                       e->where);
    ex->env = xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*ex->env));
    cJSON_ArrayForEach(v, arr) {
        const char *name = json_str(v, "name"), *value = json_str(v, "value");
        const cJSON *raw = cJSON_GetObjectItemCaseSensitive(v, "value");

        if (!name || !*name || strchr(name, '='))
            return err_set(ERR_INVALID, "kubeconfig %s: %s.env[%zu].name is missing or invalid",
                           e->file->path, e->where, ex->n_env);
        if (raw && !cJSON_IsNull(raw) && !value)
            return err_set(ERR_INVALID, "kubeconfig %s: %s.env[%zu].value must be a string",
                           e->file->path, e->where, ex->n_env);
        ex->env[ex->n_env++] = strf("%s=%s", name, value ? value : "");
    }
    return 0;
}

/* spec.cluster of the ExecCredential, for provideClusterInfo. */
static int exec_info_cluster(cJSON *c, const struct kube_config *cfg, const struct kc_ref *cluster)
{
    struct buf pem = BUF_INIT(KUBE_CONFIG_FILE_MAX), b64 = BUF_INIT(SIZE_MAX);
    const cJSON *ext, *e;
    int rc = 0;

    cJSON_AddStringToObject(c, "server", cfg->server);
    if (cfg->insecure_skip_tls_verify)
        cJSON_AddTrueToObject(c, "insecure-skip-tls-verify");
    if (cfg->ca_pem)
        rc = buf_addstr(&pem, cfg->ca_pem);
    else if (cfg->ca_file)
        rc = file_read(&pem, cfg->ca_file);
    if (rc == 0 && pem.len && (rc = b64_encode(&b64, pem.ptr, pem.len)) == 0)
        cJSON_AddStringToObject(c, "certificate-authority-data", buf_str(&b64));
    ext = cJSON_GetObjectItemCaseSensitive(cluster->obj, "extensions");
    if (!cJSON_IsArray(ext))
        ext = NULL;
    cJSON_ArrayForEach(e, ext) {
        if (str_eq(json_str(e, "name"), EXEC_EXTENSION) && json_obj(e, "extension"))
            cJSON_AddItemToObject(c, "config", cJSON_Duplicate(json_obj(e, "extension"), 1));
    }
    buf_release(&pem);
    buf_release(&b64);
    return rc;
}

/* The KUBERNETES_EXEC_INFO value, built once: our spec never changes. */
static int exec_info(struct kube_exec *ex, const struct kube_config *cfg,
                     const struct kc_ref *cluster, bool provide)
{
    cJSON *j = cJSON_CreateObject(), *spec;
    char *text = NULL;
    int rc = 0;

    cJSON_AddStringToObject(j, "kind", "ExecCredential");
    cJSON_AddStringToObject(j, "apiVersion", ex->api_version);
    spec = cJSON_AddObjectToObject(j, "spec");
    if (provide)
        rc = exec_info_cluster(cJSON_AddObjectToObject(spec, "cluster"), cfg, cluster);
    cJSON_AddFalseToObject(spec, "interactive");
    if (rc == 0 && !(text = cJSON_PrintUnformatted(j)))
        rc = err_set(ERR_IO, "out of memory encoding %s", KUBE_EXEC_INFO_ENV);
    if (rc == 0)
        ex->info = strf("%s=%s", KUBE_EXEC_INFO_ENV, text);
    cJSON_free(text);
    cJSON_Delete(j);
    return rc;
}

static int exec_load(struct kube_config *cfg, const struct kc_ref *u, const struct kc_ref *cluster)
{
    struct kube_exec *ex = &cfg->auth_->exec;
    struct kc_ref e = *u;
    const char *cmd, *ver, *mode;
    bool provide;
    int rc;

    e.obj = cJSON_GetObjectItemCaseSensitive(u->obj, "exec");
    snprintf(e.where, sizeof(e.where), "%s.exec", u->where);
    if (!cJSON_IsObject(e.obj))
        return err_set(ERR_INVALID, "kubeconfig %s: %s is not a mapping", e.file->path, e.where);
    if ((rc = ref_str(&cmd, &e, "command")) < 0 || (rc = ref_str(&ver, &e, "apiVersion")) < 0 ||
        (rc = ref_str(&mode, &e, "interactiveMode")) < 0 ||
        (rc = ref_bool(&provide, &e, "provideClusterInfo")) < 0)
        return rc;
    if (!cmd)
        return missing(&e, "command");
    if (!ver)
        return missing(&e, "apiVersion");
    if (strcmp(ver, EXEC_V1) && strcmp(ver, EXEC_V1BETA1))
        return err_set(ERR_INVALID, "kubeconfig %s: %s.apiVersion must be %s or %s",
                       e.file->path, e.where, EXEC_V1, EXEC_V1BETA1);
    if ((rc = exec_mode(&e, ver, mode)) < 0)
        return rc;
    /* A command with a '/' is a path, relative to the kubeconfig; else PATH. */
    ex->command = strchr(cmd, '/') ? resolve(e.file, cmd) : xstrdup(cmd);
    ex->api_version = xstrdup(ver);
    if ((rc = exec_args(ex, &e)) < 0 || (rc = exec_env(ex, &e)) < 0)
        return rc;
    return exec_info(ex, cfg, cluster, provide);
}

/* ---- user ---- */

static int user_certs(struct kube_config *cfg, const struct kc_ref *u)
{
    const char *cd, *cf, *kd, *kf;
    int rc;

    if ((rc = ref_str(&cd, u, "client-certificate-data")) < 0 ||
        (rc = ref_str(&cf, u, "client-certificate")) < 0 ||
        (rc = ref_str(&kd, u, "client-key-data")) < 0 || (rc = ref_str(&kf, u, "client-key")) < 0)
        return rc;
    if (!cd && !cf && !kd && !kf)
        return 0;
    if (!cd && !cf)
        return missing(u, "client-certificate");
    if (!kd && !kf)
        return missing(u, "client-key");
    if (cd) /* -data wins over the file, as in kubectl */
        rc = ref_pem(&cfg->cert_pem, u, "client-certificate-data", cd);
    else
        rc = ref_file(&cfg->cert_file, u, "client-certificate", cf);
    if (rc == 0 && kd)
        rc = ref_key_pem(&cfg->key_pem, u, "client-key-data", kd);
    else if (rc == 0)
        rc = ref_file(&cfg->key_file, u, "client-key", kf);
    return rc;
}

static int user_token(struct kube_config *cfg, const struct kc_ref *u)
{
    struct kube_auth *a = cfg->auth_;
    const char *tok, *file;
    int rc;

    if ((rc = ref_str(&tok, u, "token")) < 0 || (rc = ref_str(&file, u, "tokenFile")) < 0)
        return rc;
    if (tok) {
        a->token = sbuf_from(tok, strlen(tok));
        a->generation = 1;
        cfg->cred_kind = KUBE_CRED_TOKEN;
    }
    if (!file)
        return 0;
    /* With both, the file wins once it can be read; the token stands in until then. */
    a->token_file = resolve(u->file, file);
    cfg->cred_kind = KUBE_CRED_TOKEN_FILE;
    if ((rc = token_file_refresh(a)) < 0)
        rc = err_wrap(rc, "kubeconfig %s: %s.tokenFile", u->file->path, u->where);
    return rc;
}

static int user_load(struct kube_config *cfg, const struct kc_ref *u, const struct kc_ref *cluster)
{
    static const char *const refused[] = { "username", "password", "auth-provider", "as",
                                           "as-uid", "as-groups", "as-user-extra", NULL };
    const cJSON *exec = cJSON_GetObjectItemCaseSensitive(u->obj, "exec");
    int rc;

    if ((rc = ref_refuse(u, refused)) < 0 || (rc = user_certs(cfg, u)) < 0 ||
        (rc = user_token(cfg, u)) < 0)
        return rc;
    if (!exec || cJSON_IsNull(exec))
        return 0;
    if ((rc = exec_load(cfg, u, cluster)) < 0)
        return rc;
    if (cfg->cred_kind != KUBE_CRED_NONE || cfg->cert_pem || cfg->cert_file) {
        kube_exec_release(&cfg->auth_->exec); /* a token or certificate wins, as in client-go */
        return 0;
    }
    cfg->cred_kind = KUBE_CRED_EXEC;
    cfg->exec_command = xstrdup(cfg->auth_->exec.command);
    return 0;
}

/* ---- context ---- */

static int context_load(struct kube_config *cfg, const struct kc_set *s, const struct kc_ref *ctx)
{
    struct kc_ref cluster = { NULL, NULL, "" }, user = { NULL, NULL, "" };
    const char *cname, *uname, *ns;
    int rc;

    if ((rc = ref_str(&cname, ctx, "cluster")) < 0 || (rc = ref_str(&uname, ctx, "user")) < 0 ||
        (rc = ref_str(&ns, ctx, "namespace")) < 0)
        return rc;
    if (!cname)
        return missing(ctx, "cluster");
    cfg->default_namespace = xstrdup(ns ? ns : "default");
    if ((rc = set_find(&cluster, s, "clusters", "cluster", cname)) == ERR_NOTFOUND)
        return err_set(ERR_INVALID, "kubeconfig %s: cluster %s of context %s does not exist",
                       ref_path(ctx), cname, cfg->context);
    if (rc < 0 || (rc = cluster_load(cfg, &cluster)) < 0 || !uname)
        return rc;
    if ((rc = set_find(&user, s, "users", "user", uname)) == ERR_NOTFOUND)
        return err_set(ERR_INVALID, "kubeconfig %s: user %s of context %s does not exist",
                       ref_path(ctx), uname, cfg->context);
    if (rc < 0)
        return rc;
    return user_load(cfg, &user, &cluster);
}

static int set_resolve(struct kube_config *cfg, const struct kc_set *s,
                       const struct kube_config_opts *o)
{
    const char *name = o->context && *o->context ? o->context : set_current_context(s);
    struct kc_ref ctx = { NULL, NULL, "" };
    int rc;

    if (!name)
        return err_set(ERR_INVALID, "kubeconfig %s: current-context is not set and no context "
                                    "was given",
                       s->files[0].path);
    if ((rc = set_find(&ctx, s, "contexts", "context", name)) == ERR_NOTFOUND)
        return err_set(ERR_INVALID, "kubeconfig %s: context %s does not exist", s->files[0].path,
                       name);
    if (rc < 0)
        return rc;
    cfg->context = xstrdup(name);
    return context_load(cfg, s, &ctx);
}

static int files_load(struct kube_config *cfg, const struct kube_config_opts *o, const char *spec,
                      bool list)
{
    struct kc_set s = { NULL, 0, 0 };
    int rc = list ? set_add_list(&s, spec) : set_add(&s, spec);

    if (rc == 0 && s.n) { /* s.n: a file was added, or rc says why not */
        cfg->path = xstrdup(s.files[0].path);
        rc = set_resolve(cfg, &s, o);
    }
    set_release(&s);
    return rc;
}

/* ---- in-cluster and ~/.kube/config ---- */

/* Both variables set and not empty, as client-go's InClusterConfig wants. */
static bool in_cluster(const char **host, const char **port)
{
    *host = getenv("KUBERNETES_SERVICE_HOST");
    *port = getenv("KUBERNETES_SERVICE_PORT");
    return *host && **host && *port && **port;
}

static void in_cluster_namespace(struct kube_config *cfg, const char *dir)
{
    struct buf b = BUF_INIT(NAMESPACE_MAX);
    const char *env = getenv("POD_NAMESPACE");
    char *path = strf("%s/namespace", dir);
    const char *p;
    size_t len;

    if (env && *env) {
        cfg->default_namespace = xstrdup(env);
    } else if (file_read(&b, path) == 0) {
        p = buf_str(&b) + strspn(buf_str(&b), " \t\r\n");
        len = strlen(p);
        while (len && strchr(" \t\r\n", p[len - 1]))
            len--;
        cfg->default_namespace = len ? xstrndup(p, len) : NULL;
    }
    if (!cfg->default_namespace)
        cfg->default_namespace = xstrdup("default");
    buf_release(&b);
    free(path);
}

static int in_cluster_load(struct kube_config *cfg, const struct kube_config_opts *o,
                           const char *host, const char *port)
{
    const char *dir = o->sa_dir && *o->sa_dir ? o->sa_dir : KUBE_SA_DIR;
    char *ca = strf("%s/ca.crt", dir);
    int rc;

    cfg->source = KUBE_SOURCE_IN_CLUSTER;
    cfg->path = xstrdup(dir);
    cfg->server = strchr(host, ':') ? strf("https://[%s]:%s", host, port)
                                    : strf("https://%s:%s", host, port);
    cfg->auth_->token_file = strf("%s/token", dir);
    cfg->cred_kind = KUBE_CRED_TOKEN_FILE;
    if ((rc = token_file_refresh(cfg->auth_)) < 0) {
        rc = err_wrap(rc, "in-cluster configuration");
        goto out;
    }
    if (access(ca, R_OK) == 0) {
        cfg->ca_file = ca;
        ca = NULL;
    } else { /* client-go logs and goes on with the system roots; so do we */
        log_warn("kube_in_cluster_ca_unreadable", LOG_STR("path", ca),
                 LOG_STR("reason", strerror(errno)));
    }
    in_cluster_namespace(cfg, dir);
out:
    free(ca);
    return rc;
}

static char *home_config(void)
{
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    char tmp[4096];

    if ((!home || !*home) && getpwuid_r(getuid(), &pw, tmp, sizeof(tmp), &res) == 0 && res)
        home = res->pw_dir;
    return home && *home ? strf("%s/.kube/config", home) : NULL;
}

static int home_load(struct kube_config *cfg, const struct kube_config_opts *o)
{
    char *path = home_config();
    int rc;

    if (!path || file_missing(path))
        rc = err_set(ERR_INVALID,
                     "no Kubernetes configuration: no --kubeconfig, KUBECONFIG not set, not in a "
                     "cluster (KUBERNETES_SERVICE_HOST/PORT not set), and %s does not exist",
                     path ? path : "~/.kube/config");
    else
        rc = files_load(cfg, o, path, false);
    free(path);
    return rc;
}

/* ---- the API ---- */

static struct kube_config *config_new(const struct kube_config_opts *o)
{
    struct kube_config *cfg = xcalloc(1, sizeof(*cfg));
    struct kube_auth *a = xcalloc(1, sizeof(*a));

    pthread_mutex_init(&a->mu, NULL);
    a->reread_ms = o->token_reread_ms > 0 ? o->token_reread_ms : KUBE_TOKEN_REREAD_MS;
    a->exec.timeout_ms = o->exec_timeout_ms > 0 ? o->exec_timeout_ms : KUBE_EXEC_TIMEOUT_MS;
    a->mono_ms = o->mono_ms ? o->mono_ms : clock_mono_ms;
    a->wall_s = o->wall_s ? o->wall_s : clock_wall_s;
    cfg->auth_ = a;
    return cfg;
}

int kube_config_load(struct kube_config **out, const struct kube_config_opts *opts)
{
    static const struct kube_config_opts defaults;
    const struct kube_config_opts *o = opts ? opts : &defaults;
    const char *env = getenv("KUBECONFIG"), *host, *port;
    struct kube_config *cfg = config_new(o);
    int rc;

    if (o->kubeconfig && *o->kubeconfig) {
        cfg->source = KUBE_SOURCE_FILE;
        rc = files_load(cfg, o, o->kubeconfig, false);
    } else if (env && *env) {
        cfg->source = KUBE_SOURCE_KUBECONFIG;
        rc = files_load(cfg, o, env, true);
    } else if (in_cluster(&host, &port)) {
        rc = in_cluster_load(cfg, o, host, port);
    } else {
        cfg->source = KUBE_SOURCE_FILE;
        rc = home_load(cfg, o);
    }
    if (rc < 0)
        goto out;
    cfg->auth_->kind = cfg->cred_kind;
    *out = cfg;
    cfg = NULL;
out:
    kube_config_free(cfg);
    return rc;
}

void kube_config_free(struct kube_config *cfg)
{
    struct kube_auth *a;

    if (!cfg)
        return;
    a = cfg->auth_;
    sbuf_free(a->token);
    sbuf_free(a->key_pem);
    free(a->cert_pem);
    free(a->token_file);
    kube_exec_release(&a->exec);
    pthread_mutex_destroy(&a->mu);
    free(a);
    free(cfg->path);
    free(cfg->context);
    free(cfg->server);
    free(cfg->default_namespace);
    free(cfg->ca_file);
    free(cfg->ca_pem);
    free(cfg->cert_file);
    free(cfg->cert_pem);
    free(cfg->key_file);
    sbuf_free(cfg->key_pem);
    free(cfg->exec_command);
    free(cfg);
}

int kube_config_cred(struct kube_cred *out, struct kube_config *cfg)
{
    struct kube_auth *a = cfg->auth_;
    int rc = 0;

    pthread_mutex_lock(&a->mu);
    if (a->kind == KUBE_CRED_TOKEN_FILE)
        rc = token_file_refresh(a);
    else if (a->kind == KUBE_CRED_EXEC)
        rc = exec_refresh(a);
    if (rc == 0) {
        out->bearer = a->token ? sbuf_dup(a->token) : NULL;
        out->cert_pem = a->cert_pem ? xstrdup(a->cert_pem) : NULL;
        out->key_pem = a->key_pem ? sbuf_dup(a->key_pem) : NULL;
        out->generation = a->generation;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int kube_config_bearer(struct sbuf **out, struct kube_config *cfg)
{
    struct kube_cred c = KUBE_CRED_INIT;
    int rc = kube_config_cred(&c, cfg);

    if (rc == 0) {
        *out = c.bearer;
        c.bearer = NULL;
    }
    kube_cred_release(&c);
    return rc;
}

void kube_config_invalidate(struct kube_config *cfg, uint64_t generation)
{
    struct kube_auth *a = cfg->auth_;

    pthread_mutex_lock(&a->mu);
    if (generation == a->generation &&
        (a->kind == KUBE_CRED_TOKEN_FILE || a->kind == KUBE_CRED_EXEC))
        a->fresh = false;
    pthread_mutex_unlock(&a->mu);
}

int kube_config_http_opts(struct http_opts *out, const struct kube_config *cfg)
{
    if (!cfg)
        return err_set(ERR_INVALID, "no Kubernetes configuration");
    out->tls = (struct tls_opts){
        .ca_file = cfg->ca_file,
        .ca_pem = cfg->ca_pem,
        .cert_file = cfg->cert_file,
        .cert_pem = cfg->cert_pem,
        .key_file = cfg->key_file,
        .key_pem = cfg->key_pem,
        .insecure_skip_tls_verify = cfg->insecure_skip_tls_verify,
    };
    return 0;
}

void kube_cred_tls(struct tls_opts *tls, const struct kube_cred *c)
{
    if (!c->cert_pem || !c->key_pem)
        return;
    tls->cert_pem = c->cert_pem;
    tls->cert_file = NULL;
    tls->key_pem = c->key_pem;
    tls->key_file = NULL;
}

const char *kube_cred_kind_name(enum kube_cred_kind kind)
{
    switch (kind) {
    case KUBE_CRED_NONE: return "none";
    case KUBE_CRED_TOKEN: return "token";
    case KUBE_CRED_TOKEN_FILE: return "token_file";
    case KUBE_CRED_EXEC: return "exec";
    }
    return "unknown";
}
