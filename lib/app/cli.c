#include "app/cli.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/flag.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sbuf.h"
#include "idp/idp.h"
#include "idp/imds.h"
#include "net/http.h"
#include "pg/pgcheck.h"
#include "rot/spec.h"
#include "base/banned.h"

static void usage_token(FILE *f)
{
    fprintf(f,
        "usage: pgtoken-rotator token [--host H --user U [--database D] [--port P]\n"
        "                              [--sslmode M] [--format F] [--template KEY=TEMPLATE]...]\n"
        "                             [--key KEY | --env] [identity flags]\n\n"
        "Mints an access token with the same identity as the controller (the workload-identity\n"
        "environment: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE,\n"
        "AZURE_AUTHORITY_HOST) and prints it on stdout, for init containers and migrations\n"
        "(e.g. prisma migrate deploy). With connection flags, --key KEY prints that rendered value\n"
        "(e.g. --key DATABASE_URL) and --env prints every value as KEY=VALUE lines. The flags take\n"
        "the same values as the pgtoken.io/ annotations. Nothing secret is written to stderr.\n\n"
        "identity flags:\n"
        "  --scope S                 default https://ossrdbms-aad.database.windows.net/.default\n"
        "  --authority-host URL      default AZURE_AUTHORITY_HOST\n"
        "  --identity-ca-file FILE   CA bundle for the token endpoint (default: system)\n"
        "  --insecure-allow-http-authority   INSECURE, tests only\n"
        "  --identity-source imds    use the node's managed identity through IMDS instead\n"
        "  --client-id ID            imds: a user-assigned identity\n\n"
        "exit status: 0 printed; 2 usage; 7 no token (the identity provider refused or failed);\n"
        "1 anything else.\n");
}

static void usage_check(FILE *f)
{
    fprintf(f,
        "usage: pgtoken-rotator check --host H --user U [--database D] [--port P] [--json]\n"
        "                             [--db-ca-file FILE] [--db-sslmode verify-full|verify-ca]\n"
        "                             [--insecure-skip-db-tls-verify] [--timeout S] [identity flags]\n\n"
        "Mints a token with the controller's identity and logs in with it, as the controller does\n"
        "before every write. Prints which identity minted the token (its client id, never the\n"
        "token), when it expires, and how the login went.\n\n"
        "exit status: 0 logged in; 3 the server rejected the token; 4 unreachable; 5 TLS or\n"
        "certificate failure; 6 other login failure; 7 no token; 2 usage; 1 anything else.\n"
        "Identity flags as for `pgtoken-rotator token --help`.\n");
}

/* The flags of token and check: both take all of them. */
enum cli_flag_id {
    CF_ANNOTATION, /* --host, --port, ...: the pgtoken.io/ annotation of the same name */
    CF_TEMPLATE,
    CF_SCOPE,
    CF_AUTHORITY_HOST,
    CF_IDENTITY_CA_FILE,
    CF_DB_CA_FILE,
    CF_DB_SSLMODE,
    CF_IDENTITY_SOURCE,
    CF_CLIENT_ID,
    CF_KEY,
    CF_TIMEOUT,
    CF_ENV,
    CF_JSON,
    CF_INSECURE_DB,
    CF_INSECURE_HTTP,
};

static const struct flag cli_flags[] = {
    { "--host", FLAG_VALUE, CF_ANNOTATION, false },
    { "--port", FLAG_VALUE, CF_ANNOTATION, false },
    { "--user", FLAG_VALUE, CF_ANNOTATION, false },
    { "--database", FLAG_VALUE, CF_ANNOTATION, false },
    { "--sslmode", FLAG_VALUE, CF_ANNOTATION, false },
    { "--format", FLAG_VALUE, CF_ANNOTATION, false },
    { "--template", FLAG_VALUE, CF_TEMPLATE, false },
    { "--scope", FLAG_VALUE, CF_SCOPE, false },
    { "--authority-host", FLAG_VALUE, CF_AUTHORITY_HOST, false },
    { "--identity-ca-file", FLAG_VALUE, CF_IDENTITY_CA_FILE, false },
    { "--db-ca-file", FLAG_VALUE, CF_DB_CA_FILE, false },
    { "--db-sslmode", FLAG_VALUE, CF_DB_SSLMODE, false },
    { "--identity-source", FLAG_VALUE, CF_IDENTITY_SOURCE, false },
    { "--client-id", FLAG_VALUE, CF_CLIENT_ID, false },
    { "--key", FLAG_VALUE, CF_KEY, false },
    { "--timeout", FLAG_VALUE, CF_TIMEOUT, false },
    { "--env", FLAG_BOOL, CF_ENV, false },
    { "--json", FLAG_BOOL, CF_JSON, false },
    { "--insecure-skip-db-tls-verify", FLAG_BOOL, CF_INSECURE_DB, false },
    { "--insecure-allow-http-authority", FLAG_BOOL, CF_INSECURE_HTTP, false },
};

/* Where the flags that keep their value as given put it (a FLAG_BOOL flag: true or false). */
static const size_t SLOT[] = {
    [CF_SCOPE] = offsetof(struct cli_opts, scope),
    [CF_AUTHORITY_HOST] = offsetof(struct cli_opts, authority_host),
    [CF_IDENTITY_CA_FILE] = offsetof(struct cli_opts, identity_ca_file),
    [CF_DB_CA_FILE] = offsetof(struct cli_opts, db_ca_file),
    [CF_DB_SSLMODE] = offsetof(struct cli_opts, db_sslmode),
    [CF_IDENTITY_SOURCE] = offsetof(struct cli_opts, identity_source),
    [CF_CLIENT_ID] = offsetof(struct cli_opts, client_id),
    [CF_KEY] = offsetof(struct cli_opts, key),
    [CF_ENV] = offsetof(struct cli_opts, env),
    [CF_JSON] = offsetof(struct cli_opts, json),
    [CF_INSECURE_DB] = offsetof(struct cli_opts, insecure_db),
    [CF_INSECURE_HTTP] = offsetof(struct cli_opts, insecure_http_authority),
};

/* Sets annotation name to v; a repeated flag replaces the earlier value (the last one wins). */
static void set_annotation(cJSON *ann, const char *name, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(ann, name);
    cJSON_AddStringToObject(ann, name, v);
}

static int set_opt(void *ctx, const struct flag *f, const char *v)
{
    struct cli_opts *o = ctx;
    char name[300], *end;
    const char *eq;
    long n;

    switch ((enum cli_flag_id)f->id) {
    case CF_ANNOTATION:
        snprintf(name, sizeof(name), "pgtoken.io/%s", f->name + 2);
        set_annotation(o->ann, name, v);
        return 0;
    case CF_TEMPLATE:
        eq = strchr(v, '=');
        if (!eq || eq == v || (size_t)(eq - v) > 253)
            return err_set(ERR_INVALID, "--template wants KEY=TEMPLATE");
        snprintf(name, sizeof(name), "pgtoken.io/template.%.*s", (int)(eq - v), v);
        set_annotation(o->ann, name, eq + 1);
        return 0;
    case CF_TIMEOUT:
        n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 3600)
            return err_set(ERR_INVALID, "--timeout wants seconds from 1 to 3600");
        o->timeout_s = (int)n;
        return 0;
    case CF_IDENTITY_SOURCE:
        if (strcmp(v, "workload-identity") && strcmp(v, "imds"))
            return err_set(ERR_INVALID, "--identity-source wants workload-identity or imds");
        break;
    default:
        break;
    }
    if (f->kind == FLAG_BOOL)
        *(bool *)((char *)o + SLOT[f->id]) = strcmp(v, "true") == 0;
    else
        *(const char **)((char *)o + SLOT[f->id]) = v;
    return 0;
}

int cli_parse(struct cli_opts *out, int argc, char **argv)
{
    struct cli_opts o = { .ann = cJSON_CreateObject(), .scope = IDP_DEFAULT_SCOPE };
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = flag_parse(cli_flags, sizeof(cli_flags) / sizeof(cli_flags[0]), argc, argv,
                         set_opt, &o)) != 0) {
        cli_opts_release(&o);
        return rc;
    }
    *out = o;
    return 0;
}

void cli_opts_release(struct cli_opts *o)
{
    cJSON_Delete(o->ann);
    memset(o, 0, sizeof(*o));
}

int cli_identity(struct idp **out, const char *source, const char *client_id,
                 const char *authority_host, bool insecure_http_authority)
{
    struct idp_wi_opts wo;
    int rc;

    if (source && !strcmp(source, "imds")) {
        struct idp_imds_opts io = { .client_id = client_id };
        return idp_imds_new(out, &io);
    }
    if ((rc = idp_wi_opts_from_env(&wo)) < 0)
        return rc;
    if (authority_host)
        wo.authority_host = authority_host;
    wo.allow_http_authority = insecure_http_authority;
    return idp_wi_new(out, &wo);
}

static int mint(struct idp_token *tok, struct idp **who, const struct cli_opts *o)
{
    struct http_opts ho = { 0 };
    struct http_client *http = NULL;
    int rc;

    if ((rc = cli_identity(who, o->identity_source, o->client_id, o->authority_host,
                           o->insecure_http_authority)) < 0)
        return rc;
    ho.tls.ca_file = o->identity_ca_file;
    if ((rc = http_client_new(&http, &ho)) < 0)
        return rc;
    rc = idp_mint(tok, *who, http, o->scope);
    http_client_free(http);
    return rc;
}

static void release(struct cli_opts *o, struct idp *who, struct idp_token *tok, struct spec *spec)
{
    cli_opts_release(o);
    idp_free(who);
    idp_token_release(tok);
    spec_release(spec);
}

/* Writes all of s to stdout; the caller wipes s. */
static int print_secret(const struct sbuf *s, bool newline)
{
    if (fwrite(sbuf_expose(s), 1, sbuf_len(s), stdout) != sbuf_len(s) ||
        (newline && fputc('\n', stdout) == EOF) || fflush(stdout) != 0)
        return err_set(ERR_IO, "cannot write to stdout");
    return 0;
}

static int print_outputs(const struct cli_opts *o, const struct spec *spec,
                         const struct idp_token *tok)
{
    bool found = false;
    int rc = 0;

    for (size_t i = 0; i < spec->n_outputs && rc == 0; i++) {
        struct sbuf *v = NULL;
        if (!o->env && strcmp(spec->outputs[i].key, o->key))
            continue;
        found = true;
        if ((rc = spec_render(&v, spec, i, tok->token)) < 0)
            break;
        if (o->env && (fputs(spec->outputs[i].key, stdout) == EOF || fputc('=', stdout) == EOF))
            rc = err_set(ERR_IO, "cannot write to stdout");
        if (rc == 0)
            rc = print_secret(v, true);
        sbuf_free(v);
    }
    if (rc == 0 && !found)
        rc = err_set(ERR_INVALID, "no output named %s (the outputs come from --format and "
                                  "--template, default password and DATABASE_URL)", o->key);
    return rc;
}

int cli_token(int argc, char **argv)
{
    struct cli_opts o;
    struct idp *who = NULL;
    struct idp_token tok = { NULL, 0, 0 };
    struct spec spec = SPEC_INIT;
    bool render;
    int rc;

    if ((rc = cli_parse(&o, argc, argv)) != 0) {
        if (rc == FLAG_HELP)
            usage_token(stdout);
        else
            fprintf(stderr, "pgtoken-rotator token: %s\n", err_msg());
        release(&o, who, &tok, &spec);
        return rc == FLAG_HELP ? CLI_OK : CLI_USAGE;
    }
    render = o.key || o.env;
    if (render && (rc = spec_parse(&spec, o.ann)) < 0) {
        fprintf(stderr, "pgtoken-rotator token: %s\n", err_msg());
        release(&o, who, &tok, &spec);
        return CLI_USAGE;
    }
    if ((rc = mint(&tok, &who, &o)) < 0) {
        fprintf(stderr, "pgtoken-rotator token: %s\n", err_msg());
        release(&o, who, &tok, &spec);
        return rc == ERR_INVALID || rc == ERR_NOTFOUND ? CLI_USAGE : CLI_TOKEN_FAILED;
    }
    rc = render ? print_outputs(&o, &spec, &tok) : print_secret(tok.token, true);
    if (rc < 0)
        fprintf(stderr, "pgtoken-rotator token: %s\n", err_msg());
    release(&o, who, &tok, &spec);
    return rc == ERR_INVALID ? CLI_USAGE : rc < 0 ? CLI_FAILED : CLI_OK;
}

static int exit_for(enum pg_login l)
{
    switch (l) {
    case PG_LOGIN_OK: return CLI_OK;
    case PG_LOGIN_REJECTED: return CLI_REJECTED;
    case PG_LOGIN_UNREACHABLE: return CLI_UNREACHABLE;
    case PG_LOGIN_TLS: return CLI_TLS;
    default: return CLI_LOGIN_ERROR;
    }
}

static void report(const struct cli_opts *o, const struct idp *who, const struct idp_token *tok,
                   const struct spec *spec, const struct pg_check_result *res)
{
    char exp[32];
    struct buf b = BUF_INIT(4096);

    clock_rfc3339(exp, tok->expires_at);
    if (!o->json) {
        printf("identity:  %s (%s)\ntoken:     expires %s\ntarget:    %s@%s:%u/%s\n"
               "login:     %s%s%s\n", who->id, who->kind, exp, spec->user, spec->host, spec->port,
               spec->database, pg_login_name(res->login), *res->message ? ": " : "",
               res->message);
        return;
    }
    buf_addstr(&b, "{\"identity\":");
    json_quote(&b, who->id);
    buf_addstr(&b, ",\"identityKind\":");
    json_quote(&b, who->kind);
    buf_addf(&b, ",\"expiresAt\":\"%s\",\"host\":", exp);
    json_quote(&b, spec->host);
    buf_addf(&b, ",\"port\":%u,\"database\":", spec->port);
    json_quote(&b, spec->database);
    buf_addstr(&b, ",\"user\":");
    json_quote(&b, spec->user);
    buf_addf(&b, ",\"result\":\"%s\",\"sqlstate\":\"%s\",\"message\":",
             pg_login_name(res->login), res->sqlstate);
    json_quote(&b, res->message);
    buf_addstr(&b, "}");
    puts(buf_str(&b));
    buf_release(&b);
}

int cli_check(int argc, char **argv)
{
    struct cli_opts o;
    struct idp *who = NULL;
    struct idp_token tok = { NULL, 0, 0 };
    struct spec spec = SPEC_INIT;
    struct pg_check_result res;
    int rc;

    if ((rc = cli_parse(&o, argc, argv)) != 0 || (rc = spec_parse(&spec, o.ann)) < 0) {
        if (rc == FLAG_HELP)
            usage_check(stdout);
        else
            fprintf(stderr, "pgtoken-rotator check: %s\n", err_msg());
        release(&o, who, &tok, &spec);
        return rc == FLAG_HELP ? CLI_OK : CLI_USAGE;
    }
    if ((rc = mint(&tok, &who, &o)) < 0) {
        fprintf(stderr, "pgtoken-rotator check: no token: %s\n", err_msg());
        release(&o, who, &tok, &spec);
        return rc == ERR_INVALID || rc == ERR_NOTFOUND ? CLI_USAGE : CLI_TOKEN_FAILED;
    }
    struct pg_target t = { spec.host, (int)spec.port, spec.database, spec.user };
    struct pg_check_opts po = { .sslmode = o.db_sslmode, .ca_file = o.db_ca_file,
                                .insecure_skip_tls_verify = o.insecure_db,
                                .connect_timeout_s = o.timeout_s };
    if ((rc = pg_check_login(&res, &t, tok.token, &po)) < 0) {
        fprintf(stderr, "pgtoken-rotator check: %s\n", err_msg());
        release(&o, who, &tok, &spec);
        return CLI_USAGE;
    }
    report(&o, who, &tok, &spec, &res);
    rc = exit_for(res.login);
    release(&o, who, &tok, &spec);
    return rc;
}
