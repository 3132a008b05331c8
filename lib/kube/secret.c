#include "kube/secret.h"

#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/banned.h"

void kube_secret_free(struct kube_secret *s)
{
    if (!s)
        return;
    free(s->ns);
    free(s->name);
    free(s->uid);
    free(s->rv);
    cJSON_Delete(s->annotations);
    for (size_t i = 0; i < s->nkeys; i++)
        free(s->keys[i].key);
    free(s->keys);
    free(s);
}

static int read_keys(struct kube_secret *s, const cJSON *data)
{
    const cJSON *v;
    size_t n = 0;
    int rc;

    cJSON_ArrayForEach(v, data) n++;
    s->keys = xcalloc(n ? n : 1, sizeof(*s->keys));
    cJSON_ArrayForEach(v, data)
    {
        struct sbuf *val = NULL;
        if (!cJSON_IsString(v) || !v->string)
            return err_set(ERR_PARSE, "Secret %s/%s: data.%s is not a string", s->ns, s->name,
                           v->string ? v->string : "?");
        if ((rc = b64_decode_sb(&val, v->valuestring, strlen(v->valuestring))) < 0)
            return err_set(ERR_PARSE, "Secret %s/%s: data.%s is not base64", s->ns, s->name,
                           v->string);
        s->keys[s->nkeys].key = xstrdup(v->string);
        sbuf_fingerprint(s->keys[s->nkeys].fp, val);
        s->nkeys++;
        sbuf_free(val);
    }
    return 0;
}

int kube_secret_from_json(struct kube_secret **out, const cJSON *obj)
{
    const cJSON *meta = json_obj(obj, "metadata"), *ann;
    const char *ns = json_str(meta, "namespace"), *name = json_str(meta, "name");
    const char *uid = json_str(meta, "uid"), *rv = json_str(meta, "resourceVersion");
    struct kube_secret *s;
    int rc;

    if (!meta || !ns || !name || !rv)
        return err_set(ERR_PARSE, "Secret object lacks metadata.%s",
                       !meta ? "" : !ns ? "namespace" : !name ? "name" : "resourceVersion");
    /* What the API server allows; kube_secret_key's capped buffer relies on it. */
    if (strlen(ns) > KUBE_SECRET_NAMESPACE_MAX)
        return err_set(ERR_PARSE, "Secret object's metadata.namespace is over %d bytes",
                       KUBE_SECRET_NAMESPACE_MAX);
    if (strlen(name) > KUBE_SECRET_NAME_MAX)
        return err_set(ERR_PARSE, "Secret object's metadata.name is over %d bytes",
                       KUBE_SECRET_NAME_MAX);
    s = xcalloc(1, sizeof(*s));
    s->ns = xstrdup(ns);
    s->name = xstrdup(name);
    s->uid = xstrdup(uid ? uid : "");
    s->rv = xstrdup(rv);
    s->deleting = json_str(meta, "deletionTimestamp") != NULL;
    ann = json_obj(meta, "annotations");
    s->annotations = ann ? cJSON_Duplicate(ann, 1) : cJSON_CreateObject();
    if ((rc = read_keys(s, json_obj(obj, "data"))) < 0) {
        kube_secret_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

struct kube_secret *kube_secret_dup(const struct kube_secret *s)
{
    struct kube_secret *d = xcalloc(1, sizeof(*d));

    d->ns = xstrdup(s->ns);
    d->name = xstrdup(s->name);
    d->uid = xstrdup(s->uid);
    d->rv = xstrdup(s->rv);
    d->deleting = s->deleting;
    d->annotations = cJSON_Duplicate(s->annotations, 1);
    d->keys = xcalloc(s->nkeys ? s->nkeys : 1, sizeof(*d->keys));
    for (size_t i = 0; i < s->nkeys; i++) {
        d->keys[i].key = xstrdup(s->keys[i].key);
        memcpy(d->keys[i].fp, s->keys[i].fp, sizeof(d->keys[i].fp));
    }
    d->nkeys = s->nkeys;
    return d;
}

const char *kube_secret_annotation(const struct kube_secret *s, const char *name)
{
    return json_str(s->annotations, name);
}

const char *kube_secret_key_fp(const struct kube_secret *s, const char *key)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (!strcmp(s->keys[i].key, key))
            return s->keys[i].fp;
    return NULL;
}

char *kube_secret_key(const struct kube_secret *s)
{
    struct buf b = BUF_INIT(1024);

    buf_addf(&b, "%s/%s", s->ns, s->name);
    return buf_detach(&b, NULL);
}
