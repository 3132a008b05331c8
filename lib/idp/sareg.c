#include "idp/sareg.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/strmap.h"
#include "idp/sa.h"
#include "kube/kpath.h"
#include "base/banned.h"

struct sa_entry {
    int64_t fetched_ms; /* monotonic */
    char *client_id;
    char *tenant_id;    /* NULL: the annotation is absent */
};

struct sareg {
    struct sareg_opts o;
    pthread_mutex_t mu;
    struct strmap idps; /* "ns/name|client|tenant" -> struct idp */
    struct strmap sa;   /* "ns/name" -> struct sa_entry: successful look-ups only */
};

static void sa_entry_free(void *p)
{
    struct sa_entry *e = p;

    free(e->client_id);
    free(e->tenant_id);
    free(e);
}

static void idp_free_v(void *p)
{
    idp_free(p);
}

struct sareg *sareg_new(const struct sareg_opts *o)
{
    struct sareg *r = xcalloc(1, sizeof(*r));

    r->o = *o;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void sareg_free(struct sareg *r)
{
    if (!r)
        return;
    strmap_clear(&r->idps, idp_free_v);
    strmap_clear(&r->sa, sa_entry_free);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* idp_sa_lookup through the cache. */
static int lookup(char **client_id, char **tenant_id, struct sareg *r, struct kube_conn *k,
                  const char *ns, const char *name)
{
    char key[KPATH_KEY_SIZE];
    struct sa_entry *e;
    int64_t now = clock_mono_ms();
    int rc;

    if ((rc = kpath_key_join(key, ns, name)) < 0)
        return rc;
    rc = 1;
    pthread_mutex_lock(&r->mu);
    e = strmap_get(&r->sa, key);
    if (e && now - e->fetched_ms < SAREG_CACHE_MS) {
        *client_id = xstrdup(e->client_id);
        *tenant_id = e->tenant_id ? xstrdup(e->tenant_id) : NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&r->mu);
    if (rc == 0 || (rc = idp_sa_lookup(client_id, tenant_id, k, ns, name)) < 0)
        return rc;
    e = xcalloc(1, sizeof(*e));
    e->fetched_ms = now;
    e->client_id = xstrdup(*client_id);
    e->tenant_id = *tenant_id ? xstrdup(*tenant_id) : NULL;
    pthread_mutex_lock(&r->mu);
    if (r->sa.len >= SAREG_CACHE_MAX && !strmap_has(&r->sa, key))
        strmap_clear(&r->sa, sa_entry_free);
    e = strmap_put(&r->sa, key, e); /* the previous entry, if any */
    pthread_mutex_unlock(&r->mu);
    if (e)
        sa_entry_free(e);
    return 0;
}

int sareg_get(struct idp **out, struct sareg *r, struct kube_conn *k, const char *ns,
              const char *name)
{
    char *cid = NULL, *tid = NULL;
    const char *tenant;
    struct buf key = BUF_INIT(2048);
    struct idp *p = NULL;
    int rc;

    if ((rc = lookup(&cid, &tid, r, k, ns, name)) < 0)
        goto out;
    tenant = tid ? tid : r->o.tenant_id;
    buf_addf(&key, "%s/%s|%s|%s", ns, name, cid, tenant ? tenant : "");
    pthread_mutex_lock(&r->mu);
    if (!(p = strmap_get(&r->idps, key.ptr))) {
        struct idp_sa_opts o = { .kube = r->o.kube, .ns = ns, .name = name, .client_id = cid,
                                 .tenant_id = tenant, .authority_host = r->o.authority_host,
                                 .allow_http_authority = r->o.allow_http_authority };
        if ((rc = idp_sa_new(&p, &o)) == 0)
            strmap_put(&r->idps, key.ptr, p);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc == 0)
        *out = p;
out:
    buf_release(&key);
    free(cid);
    free(tid);
    return rc;
}
