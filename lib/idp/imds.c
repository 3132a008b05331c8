#include "idp/imds.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/urlenc.h"
#include "base/banned.h"

struct idp_imds {
    struct idp base;
    char *endpoint;
    char *client_id; /* may be NULL */
};

/* The scope's resource: "https://x/.default" -> "https://x". */
static void resource_of(struct buf *b, const char *scope)
{
    size_t n = strlen(scope);
    const char *suffix = "/.default";

    if (n > strlen(suffix) && !strcmp(scope + n - strlen(suffix), suffix))
        n -= strlen(suffix);
    url_encode(b, scope, n);
}

static int imds_mint(struct idp_token *out, struct idp *self, struct http_client *http,
                     const char *scope)
{
    struct idp_imds *m = (struct idp_imds *)self;
    static const char *const hdrs[] = { "Metadata: true", NULL };
    struct http_resp resp = HTTP_RESP_INIT;
    struct buf url = BUF_INIT(4096);
    int rc;

    buf_addf(&url, "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=",
             m->endpoint);
    resource_of(&url, scope);
    if (m->client_id) {
        buf_addstr(&url, "&client_id=");
        url_encode(&url, m->client_id, strlen(m->client_id));
    }
    struct http_req req = { .method = "GET", .url = url.ptr, .headers = hdrs };
    if ((rc = http_do(&resp, http, &req)) < 0)
        goto out;
    /* IMDS answers 404 and 410 while it is being updated, 429 when busy:
     * all of them mean "later" (Azure's IMDS retry guidance). */
    if (resp.status == 404 || resp.status == 410) {
        rc = err_set(ERR_UNAVAILABLE, "IMDS answered %ld (updating); retrying later", resp.status);
        goto out;
    }
    rc = idp_parse_token_response(out, resp.status, resp.body.ptr ? resp.body.ptr : "",
                                  resp.body.len, clock_wall_s());
    if (rc == ERR_UNAVAILABLE)
        err_set_retry_after_s(resp.retry_after_s);
out:
    http_resp_release(&resp);
    buf_release(&url);
    return rc;
}

static void imds_free(struct idp *self)
{
    struct idp_imds *m = (struct idp_imds *)self;

    free(m->endpoint);
    free(m->client_id);
    free(m->base.id);
    free(m);
}

static const struct idp_ops imds_ops = { imds_mint, imds_free };

int idp_imds_new(struct idp **out, const struct idp_imds_opts *o)
{
    const char *ep = o->endpoint;
    struct buf id = BUF_INIT(512);
    struct idp_imds *m;
    size_t n;

    if (!ep || !*ep)
        ep = getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST");
    if (!ep || !*ep)
        ep = IMDS_DEFAULT_ENDPOINT;
    if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
        return err_set(ERR_INVALID, "IMDS endpoint %s is not an http(s) URL", ep);
    m = xcalloc(1, sizeof(*m));
    m->endpoint = xstrdup(ep);
    n = strlen(m->endpoint);
    while (n && m->endpoint[n - 1] == '/')
        m->endpoint[--n] = '\0';
    m->client_id = o->client_id && *o->client_id ? xstrdup(o->client_id) : NULL;
    buf_addf(&id, "imds:%s", m->client_id ? m->client_id : "default");
    m->base.ops = &imds_ops;
    m->base.id = buf_detach(&id, NULL);
    m->base.kind = "managed-identity";
    *out = &m->base;
    return 0;
}
