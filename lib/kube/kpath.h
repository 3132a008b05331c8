/* How the API server and our caches name Kubernetes objects: REST paths and
 * "namespace/name" keys, each spelled in one place.
 *
 * Paths: "/<gv>[/namespaces/<ns>]/<resource>[/<name>[/<sub>]]", then an
 * optional query. Every segment is percent-encoded (base/urlenc.h: all but
 * ALPHA DIGIT - . _ ~), so no input can add a segment, a query or a fragment;
 * for the names the API server allows (DNS-1123) the encoding changes nothing.
 *
 * Keys: the work queue and the store name one object "namespace/name". A valid
 * key has a namespace of 1 to KPATH_NS_MAX bytes and a name of 1 to
 * KPATH_NAME_MAX bytes, neither holding a '/', so it splits back into exactly
 * the parts it was joined from. */
#ifndef PGTR_KPATH_H
#define PGTR_KPATH_H

#include <stdint.h>

#include "base/buf.h"

/* Group-version prefixes (the gv argument of kpath_add). */
#define KPATH_CORE_V1 "api/v1"
#define KPATH_APPS_V1 "apis/apps/v1"
#define KPATH_COORDINATION_V1 "apis/coordination.k8s.io/v1"

#define KPATH_NS_MAX 63    /* bytes of a namespace: a DNS-1123 label */
#define KPATH_NAME_MAX 253 /* bytes of a name: a DNS-1123 subdomain */
/* Bytes of the longest key with its NUL: the size of kpath_key_join's out. */
#define KPATH_KEY_SIZE (KPATH_NS_MAX + 1 + KPATH_NAME_MAX + 1)

/* Appends the path of an object or a collection to b:
 *   gv        "api/v1" or "apis/<group>/<version>" (KPATH_*_V1): its '/'-separated
 *             segments are encoded one by one
 *   ns        the namespace; NULL for a cluster-wide collection (all namespaces)
 *   resource  the plural resource: "secrets", "leases", "deployments"
 *   name      the object; NULL for the collection
 *   sub       a subresource ("token", "status"); NULL for none. Needs a name.
 * 0; ERR_INVALID when gv or resource is NULL or empty, ns, name or sub is empty,
 * gv has an empty segment or sub comes without a name; ERR_TOOBIG past b->max.
 * On error b is as it was. */
int kpath_add(struct buf *b, const char *gv, const char *ns, const char *resource,
              const char *name, const char *sub);

/* Appends one query parameter to the path in b: '?' before the first ('?' is
 * always encoded inside segments, so the first is the one b lacks), '&' before
 * the others, then the encoded name, '=' and the encoded value. 0; ERR_INVALID
 * when name is empty; ERR_TOOBIG past b->max (b then as it was). */
int kpath_add_query(struct buf *b, const char *name, const char *value);
/* The same with a number as the value. */
int kpath_add_query_i64(struct buf *b, const char *name, int64_t value);

/* A key split into NUL-terminated copies of its parts (no pointer into the key). */
struct kpath_key {
    char ns[KPATH_NS_MAX + 1];
    char name[KPATH_NAME_MAX + 1];
};

/* Writes "ns/name" to out. 0; ERR_INVALID (out "") when ns or name is empty,
 * too long or holds a '/'. */
int kpath_key_join(char out[KPATH_KEY_SIZE], const char *ns, const char *name);
/* Copies ns and name into *out, with the checks of kpath_key_join. 0 or ERR_INVALID
 * (*out unchanged). */
int kpath_key_set(struct kpath_key *out, const char *ns, const char *name);
/* Splits key at its '/' into *out. 0; ERR_INVALID (*out unchanged) when key has no
 * '/', or its parts fail the checks of kpath_key_join (a second '/' included). */
int kpath_key_split(struct kpath_key *out, const char *key);

#endif
