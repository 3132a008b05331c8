/* What the controller keeps of a Secret: identity, version, annotations and,
 * for each data key, a fingerprint of its value — never the value itself, so
 * the cache holds nothing secret and stays small. */
#ifndef PGTR_SECRET_H
#define PGTR_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "base/sbuf.h"

struct secret_key {
    char *key;
    char fp[17]; /* sbuf_fingerprint of the decoded value */
};

struct kube_secret {
    char *ns;
    char *name;
    char *uid;
    char *rv;               /* metadata.resourceVersion */
    cJSON *annotations;     /* a copy; an empty object when there are none */
    bool deleting;          /* metadata.deletionTimestamp is set */
    struct secret_key *keys;
    size_t nkeys;
};

#define KUBE_SECRET_NAMESPACE_MAX 63 /* bytes: a DNS-1123 label */
#define KUBE_SECRET_NAME_MAX 253     /* bytes: a DNS-1123 subdomain */

/* Reads a Secret object (as the API returns it). 0, or ERR_PARSE naming the
 * missing field (or a namespace or name longer than the API server allows).
 * Decoded values are fingerprinted and wiped. */
int kube_secret_from_json(struct kube_secret **out, const cJSON *obj);
void kube_secret_free(struct kube_secret *s);
/* A deep copy. */
struct kube_secret *kube_secret_dup(const struct kube_secret *s);

/* The annotation's value, or NULL. */
const char *kube_secret_annotation(const struct kube_secret *s, const char *name);
/* The fingerprint of key's value, or NULL when the key is absent. */
const char *kube_secret_key_fp(const struct kube_secret *s, const char *key);
/* "namespace/name" into out (a new string). */
char *kube_secret_key(const struct kube_secret *s);

#endif
