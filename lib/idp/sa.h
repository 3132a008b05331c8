/* Per-Secret identity: the Secret names a ServiceAccount in its own
 * namespace (pgtoken.io/service-account); the controller asks the
 * TokenRequest API for a short-lived token of that ServiceAccount with
 * audience api://AzureADTokenExchange and exchanges it with Entra ID for the
 * client id the ServiceAccount is annotated with — the same federated
 * credential the app's own pods would use. A Secret can only ever name a
 * ServiceAccount of its own namespace. */
#ifndef PGTR_SA_IDP_H
#define PGTR_SA_IDP_H

#include "idp/idp.h"
#include "kube/kclient.h"

#define SA_CLIENT_ID_ANNOTATION "azure.workload.identity/client-id"
#define SA_TENANT_ID_ANNOTATION "azure.workload.identity/tenant-id"
#define SA_TOKEN_AUDIENCE "api://AzureADTokenExchange"

struct idp_sa_opts {
    struct kube_client *kube;
    const char *ns;
    const char *name;
    const char *client_id;
    const char *tenant_id;
    const char *authority_host;
    bool allow_http_authority;
};

/* 0 and *out (id "sa:NS/NAME:CLIENT_ID"), or ERR_INVALID. */
int idp_sa_new(struct idp **out, const struct idp_sa_opts *o);

/* Reads the ServiceAccount ns/name and its workload-identity annotations.
 * *client_id and *tenant_id are new strings (*tenant_id NULL when the
 * annotation is absent). ERR_NOTFOUND when the ServiceAccount does not exist,
 * ERR_INVALID when it has no client-id annotation; other API errors as is. */
int idp_sa_lookup(char **client_id, char **tenant_id, struct kube_conn *k, const char *ns,
                  const char *name);

#endif
