/* What the controller keeps of a Secret: identity, version, the annotations it
 * reads and, for each data key, a fingerprint of its value — never the value
 * itself, so the cache holds nothing secret and stays small.
 *
 * A struct kube_secret is one allocation: the struct and, behind it, its
 * strings packed end to end (the pointers below point into it). It comes from
 * the Secrets' own pages (base/slab.h), not the malloc heap: free it with
 * kube_secret_free only, from any thread. Annotations
 * can be filtered when the Secret is read (struct kube_secret_keep): only the
 * names under one prefix, less some that nobody reads, are kept, and the
 * prefix itself is not stored. With 10,000 Secrets in the cache this is a few
 * hundred bytes each instead of a few kilobytes of cJSON tree. */
#ifndef PGTR_SECRET_H
#define PGTR_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "base/sbuf.h"
#include "kube/kpath.h"

#define KUBE_SECRET_FP_LEN 16 /* hex characters of a value's fingerprint */
/* Cap on what one Secret keeps (names, versions, kept annotations, key names): the API
 * server allows 256 KiB of annotations and 1 MiB of data, so this only stops nonsense. */
#define KUBE_SECRET_KEPT_MAX (1u << 20)

/* Which annotations to keep (NULL: all of them). The strings must outlive every
 * Secret read with it (string literals or configuration). */
struct kube_secret_keep {
    const char *prefix;        /* keep only names starting with it ("pgtoken.io/") */
    const char *const *skip;   /* NULL-terminated full names not to keep; may be NULL */
};

struct kube_secret {
    const char *ns;         /* these point into this allocation */
    const char *name;
    const char *uid;        /* "" when the object had none */
    const char *rv;         /* metadata.resourceVersion */
    bool deleting;          /* metadata.deletionTimestamp is set */
    unsigned char store_mark; /* private to the store (kube/store.h); 0 elsewhere */
    int64_t store_due_ms;     /* private to the store: its owner's planned time */
    uint16_t nann;          /* kept annotations */
    uint32_t nkeys;         /* data keys */
    uint32_t size;          /* bytes of the allocation */
    const char *prefix;     /* the keep prefix stripped from annotation names ("" none) */
    const char *ann;        /* nann times "name-without-prefix\0value\0" */
    const char *keys;       /* nkeys times "key\0" then KUBE_SECRET_FP_LEN hex + "\0" */
    char blob[];
};

/* 0 when ns is a DNS-1123 label (at most KPATH_NS_MAX bytes) and name a DNS-1123
 * subdomain (at most KPATH_NAME_MAX), as the API server requires of every Secret;
 * else ERR_PARSE naming the field (not its value). The "namespace/name" keys of the
 * store and the work queue (kube/kpath.h) rely on it: every Secret has a valid key. */
int kube_secret_check_ref(const char *ns, const char *name);

/* Reads a Secret object (as the API returns it), keeping every annotation.
 * 0, or ERR_PARSE naming the missing field (or a namespace or name the API
 * server would not allow: kube_secret_check_ref). Values are fingerprinted
 * (kube_secret_value_fp) as their base64 text, never decoded. */
int kube_secret_from_json(struct kube_secret **out, const cJSON *obj);
/* The same, keeping only the annotations keep selects (NULL: all); ERR_PARSE
 * also when a kept annotation's value is not a string (the API server sends
 * only strings) or what is kept is over KUBE_SECRET_KEPT_MAX. */
int kube_secret_from_json_keep(struct kube_secret **out, const cJSON *obj,
                               const struct kube_secret_keep *keep);
/* Frees s (NULL: nothing), wiping its bytes. */
void kube_secret_free(struct kube_secret *s);
/* A deep copy (one allocation, one memcpy). */
struct kube_secret *kube_secret_dup(const struct kube_secret *s);

/* The annotation's value (name in full, prefix included), or NULL when it is
 * absent or was not kept. With repeated names, the first. */
const char *kube_secret_annotation(const struct kube_secret *s, const char *name);
/* Calls fn for each kept annotation, in the object's order, with its full name
 * (prefix included: name is valid during the call only). */
void kube_secret_each_annotation(const struct kube_secret *s,
                                 void (*fn)(void *ctx, const char *name, const char *value),
                                 void *ctx);
/* The kept annotations as a new cJSON object of strings, full names, in the
 * object's order (for parsers that take one). Free with cJSON_Delete. */
cJSON *kube_secret_annotations_json(const struct kube_secret *s);
/* The fingerprint of key's value (KUBE_SECRET_FP_LEN hex characters), or NULL
 * when the key is absent. */
const char *kube_secret_key_fp(const struct kube_secret *s, const char *key);
/* The i-th data key (i < s->nkeys) and its fingerprint, in the object's order. */
const char *kube_secret_key_at(const struct kube_secret *s, size_t i, const char **fp);
/* The fingerprint the cache keeps of a data value: the first 8 bytes of the
 * SHA-256 of its base64 text, as hex. The API server sends data in standard,
 * padded base64 (one text per value), so this is computed from what it sends
 * without decoding, and from a value by encoding it the same way. */
void kube_secret_value_fp(char out[KUBE_SECRET_FP_LEN + 1], const struct sbuf *value);
/* The Secret's "namespace/name" key (kube/kpath.h), as a new string (free it). */
char *kube_secret_key(const struct kube_secret *s);

#endif
