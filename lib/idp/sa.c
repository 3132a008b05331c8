#include "idp/sa.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "kube/kpath.h"
#include "base/banned.h"


struct idp_sa {
    struct idp base;
    struct kube_conn *conn; /* mints are serialised by the token cache */
    char *ns, *name, *client_id, *token_url;
};

int idp_sa_lookup(char **client_id, char **tenant_id, struct kube_conn *k, const char *ns,
                  const char *name)
{
    struct buf path = BUF_INIT(2048);
    cJSON *sa = NULL;
    const char *cid, *tid;
    int rc;

    if ((rc = kpath_add(&path, KPATH_CORE_V1, ns, "serviceaccounts", name, NULL)) == 0)
        rc = kube_call(&sa, k, "GET", path.ptr, NULL, NULL, 0);
    buf_release(&path);
    if (rc == ERR_NOTFOUND)
        return err_set(ERR_NOTFOUND, "ServiceAccount %s/%s does not exist", ns, name);
    if (rc < 0)
        return rc;
    cid = json_str(json_obj(json_obj(sa, "metadata"), "annotations"), SA_CLIENT_ID_ANNOTATION);
    tid = json_str(json_obj(json_obj(sa, "metadata"), "annotations"), SA_TENANT_ID_ANNOTATION);
    if (!cid || !*cid) {
        cJSON_Delete(sa);
        return err_set(ERR_INVALID, "ServiceAccount %s/%s has no %s annotation", ns, name,
                       SA_CLIENT_ID_ANNOTATION);
    }
    *client_id = xstrdup(cid);
    *tenant_id = tid && *tid ? xstrdup(tid) : NULL;
    cJSON_Delete(sa);
    return 0;
}

/* A TokenRequest for the ServiceAccount, for Entra's audience, as short-lived
 * as the API allows (600 s): it is used once, right away. */
static int request_token(struct sbuf **out, struct idp_sa *sa)
{
    static const char body[] = "{\"apiVersion\":\"authentication.k8s.io/v1\","
                               "\"kind\":\"TokenRequest\",\"spec\":{\"audiences\":[\""
                               SA_TOKEN_AUDIENCE "\"],\"expirationSeconds\":600}}";
    struct buf path = BUF_INIT(2048);
    cJSON *resp = NULL;
    const char *tok;
    int rc;

    if ((rc = kpath_add(&path, KPATH_CORE_V1, sa->ns, "serviceaccounts", sa->name, "token")) == 0)
        rc = kube_call(&resp, sa->conn, "POST", path.ptr, "application/json", body,
                       sizeof(body) - 1);
    buf_release(&path);
    if (rc == ERR_NOTFOUND)
        rc = err_set(ERR_INVALID, "ServiceAccount %s/%s does not exist", sa->ns, sa->name);
    if (rc < 0)
        goto out;
    tok = json_str(json_obj(resp, "status"), "token");
    if (!tok || !*tok) {
        rc = err_set(ERR_PARSE, "TokenRequest for %s/%s returned no token", sa->ns, sa->name);
        goto out;
    }
    *out = sbuf_from(tok, strlen(tok));
out:
    json_wipe_delete(resp);
    return rc;
}

static int sa_mint(struct idp_token *out, struct idp *self, struct http_client *http,
                   const char *scope)
{
    struct idp_sa *sa = (struct idp_sa *)self;
    struct sbuf *assertion = NULL;
    int rc;

    if ((rc = request_token(&assertion, sa)) < 0)
        return err_wrap(rc, "token for ServiceAccount %s/%s", sa->ns, sa->name);
    rc = idp_exchange(out, http, sa->token_url, sa->client_id, scope, assertion);
    sbuf_free(assertion);
    return rc;
}

static void sa_free(struct idp *self)
{
    struct idp_sa *sa = (struct idp_sa *)self;

    kube_conn_free(sa->conn);
    free(sa->ns);
    free(sa->name);
    free(sa->client_id);
    free(sa->token_url);
    free(sa->base.id);
    free(sa);
}

static const struct idp_ops sa_ops = { sa_mint, sa_free };

int idp_sa_new(struct idp **out, const struct idp_sa_opts *o)
{
    struct buf id = BUF_INIT(1024);
    struct idp_sa *sa;
    char *url = NULL;
    int rc;

    if (!o->client_id || !*o->client_id)
        return err_set(ERR_INVALID, "no client id for ServiceAccount %s/%s", o->ns, o->name);
    if ((rc = idp_token_url(&url, o->authority_host, o->tenant_id, o->allow_http_authority)) < 0)
        return err_wrap(rc, "ServiceAccount %s/%s", o->ns, o->name);
    sa = xcalloc(1, sizeof(*sa));
    if ((rc = kube_conn_new(&sa->conn, o->kube)) < 0) {
        free(url);
        free(sa);
        return rc;
    }
    buf_addf(&id, "sa:%s/%s:%s", o->ns, o->name, o->client_id);
    sa->base.ops = &sa_ops;
    sa->base.id = buf_detach(&id, NULL);
    sa->base.kind = "serviceaccount-workload-identity";
    sa->ns = xstrdup(o->ns);
    sa->name = xstrdup(o->name);
    sa->client_id = xstrdup(o->client_id);
    sa->token_url = url;
    *out = &sa->base;
    return 0;
}
