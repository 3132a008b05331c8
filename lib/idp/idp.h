/* Identity providers behind one interface: something that, given a scope,
 * returns an access token and its times. Implementations: workload identity
 * (idp_wi_*; the AKS webhook's federated token exchanged with Entra ID). */
#ifndef PGTR_IDP_H
#define PGTR_IDP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "net/http.h"

#define IDP_DEFAULT_SCOPE "https://ossrdbms-aad.database.windows.net/.default"

struct idp_token {
    struct sbuf *token;
    int64_t issued_at;  /* epoch seconds on our clock: when it was received (not iat: that
                         * is the issuer's clock, and Entra backdates it by 5 minutes) */
    int64_t expires_at; /* epoch seconds: exp, or receipt + expires_in when that is more than
                         * 5 minutes earlier; always after issued_at */
};

void idp_token_release(struct idp_token *t);

struct idp;

struct idp_ops {
    /* Mints a token for scope using http. 0: *out filled (caller releases).
     * ERR_REJECTED: the identity provider refused (message says why, with
     * its error code); ERR_UNAVAILABLE: try later (err_retry_after_s may be
     * set); ERR_PARSE: a malformed answer; ERR_IO: a local file unreadable. */
    int (*mint)(struct idp_token *out, struct idp *self, struct http_client *http,
                const char *scope);
    void (*free)(struct idp *self);
};

struct idp {
    const struct idp_ops *ops;
    char *id;   /* stable identity for caching and logs: "wi:<client id>" */
    char *kind; /* "workload-identity", ... */
};

static inline int idp_mint(struct idp_token *out, struct idp *p, struct http_client *http,
                           const char *scope)
{
    return p->ops->mint(out, p, http, scope);
}

void idp_free(struct idp *p);

/* Workload identity: exchanges the projected ServiceAccount token in
 * token_file (re-read on every exchange: the kubelet rotates it) for an
 * access token at {authority_host}{tenant_id}/oauth2/v2.0/token. */
struct idp_wi_opts {
    const char *client_id;
    const char *tenant_id;
    const char *token_file;
    const char *authority_host; /* default https://login.microsoftonline.com/ */
    bool allow_http_authority;  /* only for tests; refused otherwise */
};

/* 0 and *out; ERR_INVALID naming the missing setting. */
int idp_wi_new(struct idp **out, const struct idp_wi_opts *o);

/* Fills o from AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and
 * AZURE_AUTHORITY_HOST (as the AKS webhook injects them). The strings point
 * into the environment. ERR_NOTFOUND when the pod has no workload identity. */
int idp_wi_opts_from_env(struct idp_wi_opts *o);

/* The federated-credential exchange itself: POSTs assertion for client_id
 * and scope to token_url (as workload identity does). Errors as mint. */
int idp_exchange(struct idp_token *out, struct http_client *http, const char *token_url,
                 const char *client_id, const char *scope, const struct sbuf *assertion);

/* {authority_host}{tenant_id}/oauth2/v2.0/token into *out (free()). The
 * authority must be https unless allow_http. ERR_INVALID otherwise. */
int idp_token_url(char **out, const char *authority_host, const char *tenant_id,
                  bool allow_http);

/* Parses a token endpoint reply (exposed for unit tests and fuzzing):
 * status and body in, token out. now is the epoch second of receipt. 0 and *out (the caller
 * releases it); ERR_UNAVAILABLE (429, 5xx), ERR_REJECTED (another error status); ERR_PARSE
 * (ERR_TOOBIG) for a reply that is not JSON, has no access_token string, a token with a space,
 * control or non-ASCII character, a JWT that cannot be read, is unsigned ("alg":"none") or has
 * no exp, an opaque token without expires_in, or a token already expired on our clock. */
int idp_parse_token_response(struct idp_token *out, long status, const char *body, size_t len,
                             int64_t now);

#endif
