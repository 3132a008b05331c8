/* kube_secret_from_json (kube/secret.h) of a Secret object as the API server sends it (JSON).
 * Invariants: 0 or ERR_PARSE; a read Secret has its identity, an annotations object and one
 * 16-hex-digit fingerprint per data key; its copy is equal; look-ups find every key. */
#include <cJSON.h>

#include "base/err.h"
#include "base/json.h"
#include "kube/secret.h"
#include "fuzz.h"

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

static void check_secret(const struct kube_secret *s, const cJSON *obj)
{
    struct kube_secret *d = kube_secret_dup(s);
    const cJSON *data = json_obj(obj, "data"), *it;
    char *key = kube_secret_key(s);
    size_t n = 0;

    FUZZ_CHECK(s->ns && s->name && s->uid && s->rv && cJSON_IsObject(s->annotations));
    FUZZ_CHECK(strlen(key) == strlen(s->ns) + 1 + strlen(s->name));
    cJSON_ArrayForEach(it, data) n++;
    FUZZ_CHECK(s->nkeys == n);
    for (size_t i = 0; i < s->nkeys; i++) {
        FUZZ_CHECK(hex16(s->keys[i].fp));
        FUZZ_CHECK(kube_secret_key_fp(s, s->keys[i].key) != NULL);
        FUZZ_CHECK(strcmp(d->keys[i].key, s->keys[i].key) == 0);
        FUZZ_CHECK(strcmp(d->keys[i].fp, s->keys[i].fp) == 0);
    }
    cJSON_ArrayForEach(it, s->annotations)
    {
        /* With repeated names the look-up sees the first. */
        if (it->string && cJSON_IsString(it) &&
            cJSON_GetObjectItemCaseSensitive(s->annotations, it->string) == it)
            FUZZ_CHECK(kube_secret_annotation(s, it->string) != NULL);
    }
    FUZZ_CHECK(d->nkeys == s->nkeys && d->deleting == s->deleting);
    FUZZ_CHECK(!strcmp(d->ns, s->ns) && !strcmp(d->name, s->name) && !strcmp(d->rv, s->rv));
    {
        char *a = cJSON_PrintUnformatted(d->annotations);
        char *b = cJSON_PrintUnformatted(s->annotations);
        FUZZ_CHECK(a && b && strcmp(a, b) == 0);
        cJSON_free(a);
        cJSON_free(b);
    }
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
    rc = kube_secret_from_json(&s, obj);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (rc == 0) {
        check_secret(s, obj);
        kube_secret_free(s);
    }
    json_wipe_delete(obj);
    return 0;
}
