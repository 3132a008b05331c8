/* Managed identity through the Azure Instance Metadata Service, for nodes or
 * VMs with a managed identity and no workload identity:
 *   GET {endpoint}/metadata/identity/oauth2/token?api-version=2018-02-01
 *       &resource=R[&client_id=C]     with the header Metadata: true
 * Never used for a workload-identity pod: they are different mechanisms. */
#ifndef PGTR_IMDS_H
#define PGTR_IMDS_H

#include "idp/idp.h"

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"

struct idp_imds_opts {
    const char *endpoint;  /* NULL: AZURE_POD_IDENTITY_AUTHORITY_HOST (as the Azure SDKs
                            * allow), else IMDS_DEFAULT_ENDPOINT */
    const char *client_id; /* a user-assigned identity; NULL: the only/system identity */
};

/* 0 and *out, or ERR_INVALID (an endpoint that is not http(s)://). */
int idp_imds_new(struct idp **out, const struct idp_imds_opts *o);

#endif
