/* The identities of ServiceAccounts that Secrets name (idp/sa.h), created on
 * first use and kept, one per ServiceAccount, client id and tenant, so that
 * their tokens are cached and shared (idp/tokcache.h) like the controller's
 * own. The ServiceAccounts' identity annotations are read through a short
 * cache: a changed client id takes effect within SAREG_CACHE_MS, and a
 * thousand Secrets naming one ServiceAccount cost one GET per period, not one
 * per rotation. Thread-safe. */
#ifndef PGTR_SAREG_H
#define PGTR_SAREG_H

#include <stdbool.h>

#include "idp/idp.h"
#include "kube/kclient.h"

#define SAREG_CACHE_MS 60000 /* a ServiceAccount's annotations are read again after this */
#define SAREG_CACHE_MAX 1024 /* ServiceAccounts remembered; past it, start over */

/* What every identity of the registry shares. The strings must outlive it. */
struct sareg_opts {
    struct kube_client *kube;   /* for the TokenRequests */
    const char *tenant_id;      /* when the ServiceAccount does not name one */
    const char *authority_host; /* NULL: Entra ID's */
    bool allow_http_authority;  /* only for tests */
};

struct sareg;

struct sareg *sareg_new(const struct sareg_opts *o);
void sareg_free(struct sareg *r);

/* The identity of ServiceAccount ns/name, read with k (the caller's
 * connection) when its annotations are not cached. *out belongs to the
 * registry and lives as long as it. ERR_NOTFOUND: no such ServiceAccount;
 * ERR_INVALID: it has no client-id annotation, or the identity cannot be made
 * (message says why); other API errors as kube_call. Errors are not cached: a
 * ServiceAccount fixed after a failure is seen at the next call. */
int sareg_get(struct idp **out, struct sareg *r, struct kube_conn *k, const char *ns,
              const char *name);

#endif
