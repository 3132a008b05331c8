/* kube_config_load (kube/kconfig.h) of kubeconfig files, through real files as the
 * controller reads them (the loader has no in-memory entry point, and needs none: a write to
 * a private temporary directory is cheap). The input is one kubeconfig, or two separated by a
 * line "---8<---" (then merged through $KUBECONFIG "a:b"); a first line "#context=NAME" is
 * --context. Relative paths resolve in the temporary directory, which holds ca.crt,
 * client.crt, client.key, token and an empty file "empty". Exec plugins are never run (the
 * loader does not run them, and this target asks for no exec credential).
 * Invariants: 0, ERR_INVALID, ERR_IO or ERR_TOOBIG; a loaded configuration is complete and
 * consistent; no message holds a token or client key (checked for values with a non-ASCII
 * byte, which no message text can hold by chance). */
#include <cJSON.h>

#include "base/err.h"
#include "base/sbuf.h"
#include "base/yaml.h"
#include "kube/kconfig.h"
#include "fuzz.h"

#define SPLIT "\n---8<---\n"

static const char *file_a, *file_b;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char pem_cert[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    static const char pem_key[] = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    (void)argc, (void)argv;
    fuzz_quiet();
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    file_a = fuzz_tmpfile("kubeconfig");
    file_b = fuzz_tmpfile("kubeconfig2");
    fuzz_write(fuzz_tmpfile("ca.crt"), pem_cert, sizeof(pem_cert) - 1);
    fuzz_write(fuzz_tmpfile("client.crt"), pem_cert, sizeof(pem_cert) - 1);
    fuzz_write(fuzz_tmpfile("client.key"), pem_key, sizeof(pem_key) - 1);
    fuzz_write(fuzz_tmpfile("token"), "fixture-token\n", 14);
    fuzz_write(fuzz_tmpfile("empty"), "", 0);
    return 0;
}

/* Strings that could name a device, a FIFO or a terminal (a token file is read to its end). */
static bool risky(const char *s)
{
    static const char *const bad[] = { "dev", "proc", "sys", "run", "..", "fd", NULL };

    for (const char *const *b = bad; *b; b++)
        if (strstr(s, *b))
            return true;
    return false;
}

static bool tree_risky(const cJSON *j)
{
    for (; j; j = j->next)
        if ((cJSON_IsString(j) && risky(j->valuestring)) || tree_risky(j->child))
            return true;
    return false;
}

static bool input_risky(const char *s, size_t n)
{
    cJSON *j = NULL;
    bool r;

    if (yaml_parse(&j, s, n) < 0)
        return false; /* the loader will refuse it too */
    r = tree_risky(j);
    cJSON_Delete(j);
    return r;
}

static bool non_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* Whether needle occurs in any key or string of t other than skip. */
static bool elsewhere(const cJSON *t, const cJSON *skip, const char *needle)
{
    for (; t; t = t->next) {
        if ((t->string && strstr(t->string, needle)) ||
            (t != skip && cJSON_IsString(t) && strstr(t->valuestring, needle)) ||
            elsewhere(t->child, skip, needle))
            return true;
    }
    return false;
}

static void no_secret_in(const char *msg, const cJSON *root, const cJSON *t)
{
    for (; t; t = t->next) {
        if (cJSON_IsString(t) && t->string &&
            (!strcmp(t->string, "token") || !strcmp(t->string, "client-key-data")) &&
            strlen(t->valuestring) >= 4 && non_ascii(t->valuestring) &&
            !elsewhere(root, t, t->valuestring))
            FUZZ_CHECK(!strstr(msg, t->valuestring));
        no_secret_in(msg, root, t->child);
    }
}

static void check_loaded(struct kube_config *cfg)
{
    struct http_opts ho;

    FUZZ_CHECK(cfg->server && (!strncmp(cfg->server, "https://", 8) ||
                               !strncmp(cfg->server, "http://", 7)));
    FUZZ_CHECK(cfg->default_namespace && cfg->context && cfg->path);
    FUZZ_CHECK(!(cfg->insecure_skip_tls_verify && (cfg->ca_pem || cfg->ca_file)));
    FUZZ_CHECK(!(cfg->cert_pem || cfg->cert_file) == !(cfg->key_pem || cfg->key_file));
    FUZZ_CHECK((cfg->cred_kind == KUBE_CRED_EXEC) == (cfg->exec_command != NULL));
    memset(&ho, 0, sizeof(ho));
    FUZZ_CHECK(kube_config_http_opts(&ho, cfg) == 0);
    if (cfg->cred_kind != KUBE_CRED_EXEC) {
        struct kube_cred c = KUBE_CRED_INIT;
        FUZZ_CHECK(kube_config_cred(&c, cfg) == 0);
        FUZZ_CHECK((c.bearer != NULL) == (cfg->cred_kind != KUBE_CRED_NONE));
        kube_cred_release(&c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *split;
    char context[256] = "", *list = NULL;
    struct kube_config_opts o = { 0 };
    struct kube_config *cfg = NULL;
    cJSON *tree = NULL;
    int rc;

    if (size > (1u << 20) || input_risky(s, size))
        return 0;
    if (size > 9 && !memcmp(s, "#context=", 9)) {
        const char *nl = memchr(s, '\n', size);
        size_t n = (nl ? (size_t)(nl - s) : size) - 9;
        snprintf(context, sizeof(context), "%.*s", (int)(n < 255 ? n : 255), s + 9);
        o.context = context;
    }
    split = memmem(s, size, SPLIT, sizeof(SPLIT) - 1);
    if (split) {
        const char *b = split + sizeof(SPLIT) - 1;
        if (input_risky(b, size - (size_t)(b - s)))
            return 0;
        fuzz_write(file_a, s, (size_t)(split - s));
        fuzz_write(file_b, b, size - (size_t)(b - s));
        list = malloc(strlen(file_a) + strlen(file_b) + 2);
        FUZZ_CHECK(list);
        snprintf(list, strlen(file_a) + strlen(file_b) + 2, "%s:%s", file_a, file_b);
        setenv("KUBECONFIG", list, 1);
    } else {
        fuzz_write(file_a, s, size);
        o.kubeconfig = file_a;
    }
    rc = kube_config_load(&cfg, &o);
    FUZZ_CHECK(rc == 0 || rc == ERR_INVALID || rc == ERR_IO || rc == ERR_TOOBIG);
    if (rc == 0) {
        check_loaded(cfg);
        kube_config_free(cfg);
    } else if (!split && yaml_parse(&tree, s, size) == 0) {
        no_secret_in(err_msg(), tree, tree);
        cJSON_Delete(tree);
    }
    if (split)
        unsetenv("KUBECONFIG");
    free(list);
    return 0;
}
