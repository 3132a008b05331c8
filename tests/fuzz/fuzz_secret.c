/* kube_secret_from_json (kube/secret.h) of a Secret object as the API server sends it (JSON).
 * Invariants: 0 or ERR_PARSE; a read Secret has its identity, its string annotations and one
 * 16-hex-digit fingerprint per data key; its copy is equal; look-ups find every key and every
 * kept annotation; the packed annotations rebuild the object's string annotations (all of
 * them, or with a keep filter only the selected ones). */
#include <cJSON.h>

#include "base/err.h"
#include "base/json.h"
#include "kube/secret.h"
#include "fuzz.h"

static const char *const skip[] = { "pgtoken.io/status.identity", NULL };
static const struct kube_secret_keep keep = { "pgtoken.io/", skip };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static bool hex16(const char *fp)
{
    return strlen(fp) == 16 && strspn(fp, "0123456789abcdef") == 16;
}

static bool selected(const struct kube_secret_keep *k, const char *name)
{
    return !k || (!strncmp(name, k->prefix, strlen(k->prefix)) && strcmp(name, skip[0]));
}

static void check_secret(const struct kube_secret *s, const cJSON *obj,
                         const struct kube_secret_keep *k)
{
    struct kube_secret *d = kube_secret_dup(s);
    const cJSON *data = json_obj(obj, "data"), *it;
    const cJSON *ann = json_obj(json_obj(obj, "metadata"), "annotations");
    cJSON *packed = kube_secret_annotations_json(s), *want = cJSON_CreateObject();
    char *key = kube_secret_key(s);
    size_t n = 0;

    FUZZ_CHECK(s->ns && s->name && s->uid && s->rv && cJSON_IsObject(packed));
    FUZZ_CHECK(strlen(key) == strlen(s->ns) + 1 + strlen(s->name));
    cJSON_ArrayForEach(it, data) n++;
    FUZZ_CHECK(s->nkeys == n);
    for (size_t i = 0; i < s->nkeys; i++) {
        const char *fp = NULL, *dfp = NULL;
        const char *name = kube_secret_key_at(s, i, &fp);
        FUZZ_CHECK(hex16(fp));
        /* With repeated keys the look-up sees the first. */
        FUZZ_CHECK(kube_secret_key_fp(s, name) != NULL);
        FUZZ_CHECK(strcmp(kube_secret_key_at(d, i, &dfp), name) == 0);
        FUZZ_CHECK(strcmp(dfp, fp) == 0);
    }
    cJSON_ArrayForEach(it, ann)
    {
        if (!it->string || !selected(k, it->string)) {
            if (it->string)
                FUZZ_CHECK(kube_secret_annotation(s, it->string) == NULL);
            continue;
        }
        FUZZ_CHECK(cJSON_IsString(it)); /* else kube_secret_from_json said ERR_PARSE */
        cJSON_AddItemToObject(want, it->string, cJSON_CreateString(it->valuestring));
        /* With repeated names the look-up sees the first. */
        if (cJSON_GetObjectItemCaseSensitive(ann, it->string) == it)
            FUZZ_CHECK(!strcmp(kube_secret_annotation(s, it->string), it->valuestring));
    }
    {
        char *a = cJSON_PrintUnformatted(packed);
        char *b = cJSON_PrintUnformatted(want);
        FUZZ_CHECK(a && b && strcmp(a, b) == 0);
        cJSON_free(a);
        cJSON_free(b);
    }
    FUZZ_CHECK(d->nkeys == s->nkeys && d->nann == s->nann && d->deleting == s->deleting);
    FUZZ_CHECK(!strcmp(d->ns, s->ns) && !strcmp(d->name, s->name) && !strcmp(d->rv, s->rv) &&
               !strcmp(d->uid, s->uid));
    cJSON_Delete(packed);
    cJSON_Delete(want);
    free(key);
    kube_secret_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_secret *s = NULL;
    cJSON *obj = NULL;
    int rc;

    if (json_parse(&obj, (const char *)data, size, 1u << 20) < 0)
        return 0;
    for (int pass = 0; pass < 2; pass++) {
        const struct kube_secret_keep *k = pass ? &keep : NULL;
        rc = kube_secret_from_json_keep(&s, obj, k);
        FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
        if (rc == 0) {
            check_secret(s, obj, k);
            kube_secret_free(s);
            s = NULL;
        }
    }
    json_wipe_delete(obj);
    return 0;
}
