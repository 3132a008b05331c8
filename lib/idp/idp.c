#include "idp/idp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/jwt.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/urlenc.h"
#include "base/banned.h"

#define IDP_RESPONSE_MAX (256u * 1024)
#define WI_ASSERTION_MAX (64u * 1024)
#define WI_FORM_MAX (80u * 1024)
#define IDP_SKEW_TOLERANCE_S 300
#define IDP_EXPIRES_IN_MAX (366 * 86400) /* longer than any access token lives */

void idp_token_release(struct idp_token *t)
{
    sbuf_free(t->token);
    t->token = NULL;
    t->issued_at = t->expires_at = 0;
}

void idp_free(struct idp *p)
{
    if (p)
        p->ops->free(p);
}

/* The first line of an Entra error_description ("AADSTS70021: No matching
 * federated identity record found ..."): the rest is trace ids. */
static void first_line(char *out, size_t n, const char *s)
{
    size_t len = strcspn(s, "\r\n");

    if (len >= n)
        len = n - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

static int token_error(long status, const cJSON *j)
{
    const char *code = json_str(j, "error"), *desc = json_str(j, "error_description");
    char line[400] = "";

    if (desc)
        first_line(line, sizeof(line), desc);
    if (status == 429 || status >= 500)
        return err_set(ERR_UNAVAILABLE, "token endpoint answered %ld%s%s", status,
                       *line ? ": " : "", line);
    return err_set(ERR_REJECTED, "token request refused (%ld %s)%s%s", status,
                   code ? code : "error", *line ? ": " : "", line);
}

/* A token has only printable ASCII (a JWT: base64url and dots). Anything else in it would
 * end up in a Secret, an environment variable or a URL. */
static bool token_chars_ok(const char *tok, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f)
            return false;
    return true;
}

/* The JWT's header names a signature algorithm and the token carries a signature: Entra signs
 * every token, so an unsigned one ("alg":"none", or nothing after the last dot) did not come
 * from it. The controller cannot verify the signature (the database does); it refuses what is
 * certainly not a real token. */
static int jwt_signed(const char *tok, size_t len)
{
    const char *dot = memchr(tok, '.', len), *alg;
    size_t hlen = dot ? (size_t)(dot - tok) : 0, rawlen = 0;
    unsigned char *raw;
    cJSON *h = NULL;
    int rc = 0;

    if (!hlen || tok[len - 1] == '.')
        return err_set(ERR_PARSE, "token endpoint returned an unsigned JWT");
    raw = xmalloc(B64_DECODED_MAX(hlen) + 1);
    if (b64_decode(raw, &rawlen, tok, hlen, true) < 0 ||
        json_parse(&h, (const char *)raw, rawlen, JWT_MAX_LEN) < 0 || !cJSON_IsObject(h))
        rc = err_set(ERR_PARSE, "token endpoint returned a JWT whose header is not JSON");
    else if (!(alg = json_str(h, "alg")) || !*alg || !strcasecmp(alg, "none"))
        rc = err_set(ERR_PARSE, "token endpoint returned an unsigned JWT (alg none or missing)");
    cJSON_Delete(h);
    free(raw);
    return rc;
}

int idp_parse_token_response(struct idp_token *out, long status, const char *body, size_t len,
                             int64_t now)
{
    struct jwt_times t = { 0, 0, 0 };
    const char *tok;
    int64_t expires_in = 0;
    size_t tok_len;
    cJSON *j = NULL;
    int rc;

    if (status != 200 && (status < 400 || !len)) {
        return status == 429 || status >= 500 || status == 0
                   ? err_set(ERR_UNAVAILABLE, "token endpoint answered %ld", status)
                   : err_set(ERR_REJECTED, "token endpoint answered %ld", status);
    }
    if ((rc = json_parse(&j, body, len, IDP_RESPONSE_MAX)) < 0) {
        rc = status == 200 ? err_wrap(ERR_PARSE, "token endpoint reply")
                           : token_error(status, NULL);
        goto out;
    }
    if (status != 200) {
        rc = token_error(status, j);
        goto out;
    }
    tok = json_str(j, "access_token");
    if (!tok || !*tok) {
        rc = err_set(ERR_PARSE, "token endpoint reply has no access_token string");
        goto out;
    }
    tok_len = strlen(tok);
    if (!token_chars_ok(tok, tok_len)) {
        rc = err_set(ERR_PARSE, "token endpoint returned an access_token with a space, control or "
                                "non-ASCII character");
        goto out;
    }
    /* Not believed when absent, not positive or absurd (which also keeps now + expires_in
     * and the comparisons with exp below from overflowing). */
    if (json_i64(&expires_in, j, "expires_in") < 0 || expires_in <= 0 ||
        expires_in > IDP_EXPIRES_IN_MAX)
        expires_in = 0;
    if (memchr(tok, '.', tok_len)) {
        /* A JWT, as Entra's tokens are: it must be readable, signed and say when it expires
         * (the database refuses one without exp). */
        if ((rc = jwt_read_times(&t, tok, tok_len)) < 0) {
            rc = err_wrap(rc == ERR_TOOBIG ? ERR_TOOBIG : ERR_PARSE,
                          "token endpoint returned a malformed JWT");
            goto out;
        }
        if ((rc = jwt_signed(tok, tok_len)) < 0)
            goto out;
    } else {
        /* An opaque token: trust expires_in alone. */
        if (!expires_in) {
            rc = err_set(ERR_PARSE, "token has neither an exp claim nor expires_in");
            goto out;
        }
        t.exp = now + expires_in;
    }
    if (expires_in && llabs((t.exp - now) - expires_in) > IDP_SKEW_TOLERANCE_S) {
        log_warn("token_lifetime_mismatch", LOG_I64("exp_in_s", t.exp - now),
                 LOG_I64("expires_in_s", expires_in));
        if (now + expires_in < t.exp)
            t.exp = now + expires_in; /* trust the earlier of the two */
    }
    /* exp is what the database checks; a token already past it on our clock is useless (and
     * writing it would only schedule the next rotation at once, again and again). */
    if (t.exp <= now) {
        rc = err_set(ERR_PARSE, "token endpoint returned a token that expired %llds ago (or the "
                                "issuer's clock is that far behind)", (long long)(now - t.exp));
        goto out;
    }
    out->token = sbuf_from(tok, tok_len);
    /* Scheduling runs on this clock alone: the token's life is counted from now, when it was
     * received. Its iat is on the issuer's clock and Entra backdates it by 5 minutes; with an
     * issuer clock a few minutes behind, iat-based rotation points fell before the token was
     * even received and every reconcile minted and wrote again. */
    out->issued_at = now;
    out->expires_at = t.exp;
    rc = 0;
out:
    json_wipe_delete(j);
    return rc;
}

/* --- workload identity ------------------------------------------------- */

struct idp_wi {
    struct idp base;
    char *client_id, *tenant_id, *token_file, *token_url;
};

static int form_add(struct sbuf *f, const char *k, const char *v, size_t vlen)
{
    int rc;

    if (sbuf_len(f) && (rc = sbuf_add(f, "&", 1)) < 0)
        return rc;
    if ((rc = sbuf_addstr(f, k)) < 0 || (rc = sbuf_add(f, "=", 1)) < 0)
        return rc;
    return url_encode_sb(f, v, vlen);
}

static int wi_form(struct sbuf **out, const char *client_id, const char *scope,
                   const struct sbuf *assertion)
{
    static const char atype[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    struct sbuf *f = sbuf_new(WI_FORM_MAX);
    int rc;

    if ((rc = form_add(f, "client_id", client_id, strlen(client_id))) < 0 ||
        (rc = form_add(f, "scope", scope, strlen(scope))) < 0 ||
        (rc = form_add(f, "grant_type", "client_credentials", 18)) < 0 ||
        (rc = form_add(f, "client_assertion_type", atype, sizeof(atype) - 1)) < 0 ||
        (rc = form_add(f, "client_assertion", sbuf_expose(assertion), sbuf_len(assertion))) < 0) {
        sbuf_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int idp_exchange(struct idp_token *out, struct http_client *http, const char *token_url,
                 const char *client_id, const char *scope, const struct sbuf *assertion)
{
    struct sbuf *form = NULL;
    struct http_resp resp = HTTP_RESP_INIT;
    int rc;

    if ((rc = wi_form(&form, client_id, scope, assertion)) < 0)
        goto out;
    struct http_req req = { .method = "POST", .url = token_url,
                            .content_type = "application/x-www-form-urlencoded",
                            .body = sbuf_expose(form), .body_len = sbuf_len(form) };
    if ((rc = http_do(&resp, http, &req)) < 0)
        goto out;
    rc = idp_parse_token_response(out, resp.status, resp.body.ptr ? resp.body.ptr : "",
                                  resp.body.len, clock_wall_s());
    if (rc == ERR_UNAVAILABLE)
        err_set_retry_after_s(resp.retry_after_s);
out:
    sbuf_free(form);
    http_resp_release(&resp);
    return rc;
}

static int wi_mint(struct idp_token *out, struct idp *self, struct http_client *http,
                   const char *scope)
{
    struct idp_wi *wi = (struct idp_wi *)self;
    struct sbuf *assertion = NULL;
    int rc;

    if ((rc = sbuf_read_file(&assertion, wi->token_file, WI_ASSERTION_MAX)) < 0)
        goto out;
    sbuf_rtrim(assertion);
    if (!sbuf_len(assertion)) {
        rc = err_set(ERR_IO, "federated token file %s is empty", wi->token_file);
        goto out;
    }
    rc = idp_exchange(out, http, wi->token_url, wi->client_id, scope, assertion);
out:
    sbuf_free(assertion);
    return rc;
}

static void wi_free(struct idp *self)
{
    struct idp_wi *wi = (struct idp_wi *)self;

    free(wi->client_id);
    free(wi->tenant_id);
    free(wi->token_file);
    free(wi->token_url);
    free(wi->base.id);
    free(wi);
}

static const struct idp_ops wi_ops = { wi_mint, wi_free };

static bool safe_segment(const char *s)
{
    /* tenant ids are GUIDs or domain names: nothing that changes the URL path */
    return *s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
                     strlen(s);
}

int idp_token_url(char **out, const char *authority_host, const char *tenant_id,
                  bool allow_http)
{
    const char *auth = authority_host && *authority_host ? authority_host
                                                         : "https://login.microsoftonline.com/";
    struct buf url = BUF_INIT(2048);

    if (!tenant_id || !safe_segment(tenant_id))
        return err_set(ERR_INVALID, "the tenant id is missing or malformed");
    if (strncmp(auth, "https://", 8) && !(allow_http && !strncmp(auth, "http://", 7)))
        return err_set(ERR_INVALID, "authority host %s is not https", auth);
    buf_addstr(&url, auth);
    if (url.len && url.ptr[url.len - 1] != '/')
        buf_addch(&url, '/');
    buf_addf(&url, "%s/oauth2/v2.0/token", tenant_id);
    *out = buf_detach(&url, NULL);
    return 0;
}

int idp_wi_new(struct idp **out, const struct idp_wi_opts *o)
{
    struct buf id = BUF_INIT(512);
    struct idp_wi *wi;
    char *url = NULL;
    int rc;

    if (!o->client_id || !*o->client_id)
        return err_set(ERR_INVALID, "workload identity: AZURE_CLIENT_ID is not set");
    if (!o->token_file || !*o->token_file)
        return err_set(ERR_INVALID, "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set");
    if ((rc = idp_token_url(&url, o->authority_host, o->tenant_id, o->allow_http_authority)) < 0)
        return err_wrap(rc, "workload identity (AZURE_TENANT_ID, AZURE_AUTHORITY_HOST)");
    buf_addf(&id, "wi:%s", o->client_id);
    wi = xcalloc(1, sizeof(*wi));
    wi->base.ops = &wi_ops;
    wi->base.id = buf_detach(&id, NULL);
    wi->base.kind = "workload-identity";
    wi->client_id = xstrdup(o->client_id);
    wi->tenant_id = xstrdup(o->tenant_id);
    wi->token_file = xstrdup(o->token_file);
    wi->token_url = url;
    *out = &wi->base;
    return 0;
}

int idp_wi_opts_from_env(struct idp_wi_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->client_id = getenv("AZURE_CLIENT_ID");
    o->tenant_id = getenv("AZURE_TENANT_ID");
    o->token_file = getenv("AZURE_FEDERATED_TOKEN_FILE");
    o->authority_host = getenv("AZURE_AUTHORITY_HOST");
    if (o->authority_host && !*o->authority_host)
        o->authority_host = NULL;
    if (!o->client_id || !o->token_file)
        return err_set(ERR_NOTFOUND, "no workload identity: AZURE_CLIENT_ID and "
                                     "AZURE_FEDERATED_TOKEN_FILE are not both set");
    return 0;
}
