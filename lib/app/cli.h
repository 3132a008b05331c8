/* One-off commands that use the controller's identity and checks:
 *
 *   pgtoken-rotator token [flags]   mint a token (or render a value such as
 *                                   DATABASE_URL) and print it on stdout
 *   pgtoken-rotator check [flags]   mint a token and try a login; print the
 *                                   classified result (never the token)
 *
 * Both return the process exit status (see cli_usage). */
#ifndef PGTR_CLI_H
#define PGTR_CLI_H

#include <stdbool.h>

struct cJSON;
struct idp;

enum cli_exit {
    CLI_OK = 0,
    CLI_FAILED = 1,       /* anything not listed below */
    CLI_USAGE = 2,        /* bad flags or values */
    CLI_REJECTED = 3,     /* the server refused the token */
    CLI_UNREACHABLE = 4,  /* the server could not be reached */
    CLI_TLS = 5,          /* TLS or certificate verification failed */
    CLI_LOGIN_ERROR = 6,  /* another login failure */
    CLI_TOKEN_FAILED = 7, /* no token: the identity provider refused or failed */
};

int cli_token(int argc, char **argv);
int cli_check(int argc, char **argv);

/* The flags of token and check (both take all of them), as parsed. Strings point into argv
 * or at constants. */
struct cli_opts {
    struct cJSON *ann;    /* the connection flags as pgtoken.io/ annotations: --host H is
                           * pgtoken.io/host (likewise port, user, database, sslmode,
                           * format), --template K=T pgtoken.io/template.K */
    const char *scope;    /* IDP_DEFAULT_SCOPE unless --scope */
    const char *authority_host;
    const char *identity_ca_file;
    const char *db_ca_file;
    const char *db_sslmode;
    const char *key;      /* token: print this output key instead of the token */
    const char *identity_source; /* "workload-identity" (default) or "imds" */
    const char *client_id;       /* imds: a user-assigned identity */
    bool env;             /* token: print every output as KEY=VALUE */
    bool json;            /* check: JSON output */
    bool insecure_http_authority;
    bool insecure_db;
    int timeout_s;        /* 0: the login check's default */
};

/* Parses token/check flags (argv[0] is the subcommand) in the forms of base/flag.h; a
 * repeated flag: the last one wins (--template: per KEY). Used by cli_token and cli_check,
 * exposed for tests. 0: *out filled (release it with cli_opts_release); 1 (FLAG_HELP) for
 * -h/--help; ERR_INVALID with flag.h's messages or "--timeout wants seconds from 1 to 3600",
 * "--identity-source wants workload-identity or imds", "--template wants KEY=TEMPLATE".
 * Otherwise *out is zeroed (releasing it is harmless). */
int cli_parse(struct cli_opts *out, int argc, char **argv);
void cli_opts_release(struct cli_opts *o);

/* The identity the identity flags name (token, check and proxy take them): workload identity
 * from the environment (authority_host, when set, in place of AZURE_AUTHORITY_HOST; an
 * http:// one only with insecure_http_authority), or the node's managed identity through IMDS
 * when source is "imds" (client_id: a user-assigned one). 0 and *out (idp_free); ERR_NOTFOUND
 * when the pod has no workload identity; ERR_INVALID as idp_wi_new. */
int cli_identity(struct idp **out, const char *source, const char *client_id,
                 const char *authority_host, bool insecure_http_authority);

#endif
