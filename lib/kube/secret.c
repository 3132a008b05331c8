#include "kube/secret.h"

#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/sha256.h"
#include "base/sbuf.h"
#include "base/slab.h"
#include "base/banned.h"

/* The cached Secrets live for as long as the Secret does, and a new copy replaces
 * the old on every watch event. From the malloc heap, they were allocated all
 * through the cold start among the workers' short-lived JSON trees, whose holes
 * then stayed resident around them (at 10,000 Secrets, 2.5 of the heap's 10.3
 * resident MB were free). On pages of their own, a freed copy's slot goes to the
 * next copy of that size, and the garbage's holes are the heap's to reuse. */
static struct slab secret_slab = SLAB_INIT;

void kube_secret_free(struct kube_secret *s)
{
    if (s)
        slab_free(&secret_slab, s, s->size);
}

static bool kept(const struct kube_secret_keep *keep, const char *name)
{
    if (!name)
        return false;
    if (!keep)
        return true;
    if (keep->prefix && strncmp(name, keep->prefix, strlen(keep->prefix)))
        return false;
    for (const char *const *sk = keep->skip; sk && *sk; sk++)
        if (!strcmp(name, *sk))
            return false;
    return true;
}

/* Appends s and its NUL at *p. */
static char *put(char **p, const char *s)
{
    size_t n = strlen(s) + 1;
    char *at = *p;

    memcpy(at, s, n);
    *p += n;
    return at;
}

/* A DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, when dots is false; with dots, a
 * DNS-1123 subdomain: such labels joined by '.'. */
static bool dns1123(const char *s, size_t max, bool dots)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        bool edge = i == 0 || i == n - 1 || (dots && (s[i - 1] == '.' || s[i + 1] == '.'));
        if (alnum)
            continue;
        if (edge || !(c == '-' || (dots && c == '.')))
            return false;
    }
    return true;
}

int kube_secret_check_ref(const char *ns, const char *name)
{
    if (!dns1123(ns, KPATH_NS_MAX, false))
        return err_set(ERR_PARSE, "metadata.namespace is not a DNS-1123 label of at most %d "
                       "bytes", KPATH_NS_MAX);
    if (!dns1123(name, KPATH_NAME_MAX, true))
        return err_set(ERR_PARSE, "metadata.name is not a DNS-1123 subdomain of at most %d "
                       "bytes", KPATH_NAME_MAX);
    return 0;
}

int kube_secret_from_json_keep(struct kube_secret **out, const cJSON *obj,
                               const struct kube_secret_keep *keep)
{
    const cJSON *meta = json_obj(obj, "metadata"), *data = json_obj(obj, "data"), *v;
    const cJSON *ann = json_obj(meta, "annotations");
    const char *ns = json_str(meta, "namespace"), *name = json_str(meta, "name");
    const char *uid = json_str(meta, "uid"), *rv = json_str(meta, "resourceVersion");
    size_t plen = keep && keep->prefix ? strlen(keep->prefix) : 0, size, nann = 0, nkeys = 0;
    struct kube_secret *s;
    char *p;

    if (!meta || !ns || !name || !rv)
        return err_set(ERR_PARSE, "Secret object lacks metadata.%s",
                       !meta ? "" : !ns ? "namespace" : !name ? "name" : "resourceVersion");
    if (kube_secret_check_ref(ns, name) < 0)
        return ERR_PARSE;
    if (!uid)
        uid = "";
    size = strlen(ns) + strlen(name) + strlen(uid) + strlen(rv) + 4;
    cJSON_ArrayForEach(v, ann)
    {
        if (!kept(keep, v->string))
            continue;
        if (!cJSON_IsString(v))
            return err_set(ERR_PARSE, "Secret %s/%s: annotation %s is not a string", ns, name,
                           v->string);
        size += strlen(v->string) - plen + strlen(v->valuestring) + 2;
        nann++;
    }
    cJSON_ArrayForEach(v, data)
    {
        if (!cJSON_IsString(v) || !v->string)
            return err_set(ERR_PARSE, "Secret %s/%s: data.%s is not a string", ns, name,
                           v->string ? v->string : "?");
        size += strlen(v->string) + 1 + KUBE_SECRET_FP_LEN + 1;
        nkeys++;
    }
    if (size > KUBE_SECRET_KEPT_MAX || nann > UINT16_MAX)
        return err_set(ERR_PARSE, "Secret %s/%s: over %u bytes of names and annotations", ns,
                       name, KUBE_SECRET_KEPT_MAX);
    s = slab_alloc(&secret_slab, sizeof(*s) + size);
    memset(s, 0, sizeof(*s));
    s->size = (uint32_t)(sizeof(*s) + size);
    s->nann = (uint16_t)nann;
    s->nkeys = (uint32_t)nkeys;
    s->prefix = plen ? keep->prefix : "";
    s->deleting = json_str(meta, "deletionTimestamp") != NULL;
    p = s->blob;
    s->ns = put(&p, ns);
    s->name = put(&p, name);
    s->uid = put(&p, uid);
    s->rv = put(&p, rv);
    s->ann = p;
    cJSON_ArrayForEach(v, ann)
    {
        if (!kept(keep, v->string))
            continue;
        put(&p, v->string + plen);
        put(&p, v->valuestring);
    }
    s->keys = p;
    cJSON_ArrayForEach(v, data)
    {
        char fp[KUBE_SECRET_FP_LEN + 1];
        size_t len = strlen(v->valuestring);
        if (!b64_canonical(v->valuestring, len)) {
            int rc = err_set(ERR_PARSE, "Secret %s/%s: data.%s is not base64", ns, name,
                             v->string);
            kube_secret_free(s);
            return rc;
        }
        sha256_fp(fp, v->valuestring, len);
        put(&p, v->string);
        put(&p, fp);
    }
    *out = s;
    return 0;
}

int kube_secret_from_json(struct kube_secret **out, const cJSON *obj)
{
    return kube_secret_from_json_keep(out, obj, NULL);
}

static const char *rebase(const char *ptr, const struct kube_secret *from, struct kube_secret *to)
{
    return to->blob + (ptr - from->blob);
}

struct kube_secret *kube_secret_dup(const struct kube_secret *s)
{
    struct kube_secret *d = slab_alloc(&secret_slab, s->size);

    memcpy(d, s, s->size);
    d->ns = rebase(s->ns, s, d);
    d->name = rebase(s->name, s, d);
    d->uid = rebase(s->uid, s, d);
    d->rv = rebase(s->rv, s, d);
    d->ann = rebase(s->ann, s, d);
    d->keys = rebase(s->keys, s, d);
    d->store_mark = 0;
    d->store_due_ms = 0;
    return d;
}

const char *kube_secret_annotation(const struct kube_secret *s, const char *name)
{
    size_t plen = strlen(s->prefix);
    const char *p = s->ann;

    if (strncmp(name, s->prefix, plen))
        return NULL;
    name += plen;
    for (size_t i = 0; i < s->nann; i++) {
        const char *value = p + strlen(p) + 1;
        if (!strcmp(p, name))
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

void kube_secret_each_annotation(const struct kube_secret *s,
                                 void (*fn)(void *ctx, const char *name, const char *value),
                                 void *ctx)
{
    struct buf full = BUF_INIT(KUBE_SECRET_KEPT_MAX);
    const char *p = s->ann;

    for (size_t i = 0; i < s->nann; i++) {
        const char *value = p + strlen(p) + 1;
        buf_reset(&full);
        buf_addstr(&full, s->prefix);
        buf_addstr(&full, p);
        fn(ctx, buf_str(&full), value);
        p = value + strlen(value) + 1;
    }
    buf_release(&full);
}

static void add_to_json(void *ctx, const char *name, const char *value)
{
    cJSON_AddItemToObject(ctx, name, cJSON_CreateString(value));
}

cJSON *kube_secret_annotations_json(const struct kube_secret *s)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        abort(); /* out of memory: as xmalloc */
    kube_secret_each_annotation(s, add_to_json, o);
    return o;
}

const char *kube_secret_key_at(const struct kube_secret *s, size_t i, const char **fp)
{
    const char *p = s->keys;

    for (size_t j = 0; j < i; j++)
        p += strlen(p) + 1 + KUBE_SECRET_FP_LEN + 1;
    if (fp)
        *fp = p + strlen(p) + 1;
    return p;
}

const char *kube_secret_key_fp(const struct kube_secret *s, const char *key)
{
    const char *p = s->keys;

    for (size_t i = 0; i < s->nkeys; i++) {
        size_t n = strlen(p);
        if (!strcmp(p, key))
            return p + n + 1;
        p += n + 1 + KUBE_SECRET_FP_LEN + 1;
    }
    return NULL;
}

char *kube_secret_key(const struct kube_secret *s)
{
    char key[KPATH_KEY_SIZE];

    /* Cannot fail: a struct kube_secret passed kube_secret_check_ref. */
    (void)kpath_key_join(key, s->ns, s->name);
    return xstrdup(key);
}

void kube_secret_value_fp(char out[KUBE_SECRET_FP_LEN + 1], const struct sbuf *value)
{
    struct sbuf *text = sbuf_new(sbuf_len(value) / 3 * 4 + 8);

    b64_encode_sb(text, sbuf_expose(value), sbuf_len(value));
    sha256_fp(out, sbuf_expose(text), sbuf_len(text));
    sbuf_free(text);
}
