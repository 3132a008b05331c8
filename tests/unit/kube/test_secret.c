#include "t.h"

#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/sbuf.h"
#include "base/slab.h"
#include "kube/secret.h"

/* "cGFzcw==" is "pass"; "dXJs" is "url". */
static const char *const SECRET_JSON =
    "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"namespace\":\"team-a\","
    "\"name\":\"db\",\"uid\":\"0b1c3a52-5e1d-4f5e-9a1b-6f1f9d0e2a11\",\"resourceVersion\":\"4711\","
    "\"labels\":{\"pgtoken.io/managed\":\"true\"},\"annotations\":{"
    "\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"big\\\":\\\"blob\\\"}\","
    "\"pgtoken.io/host\":\"db.example.com\",\"pgtoken.io/user\":\"app\","
    "\"pgtoken.io/status.expires-at\":\"2026-01-01T00:00:00Z\","
    "\"pgtoken.io/status.identity\":\"wi:client\",\"other\":\"x\"}},"
    "\"data\":{\"password\":\"cGFzcw==\",\"DATABASE_URL\":\"dXJs\"}}";

static const char *const skip[] = { "pgtoken.io/status.identity", NULL };
static const struct kube_secret_keep keep = { "pgtoken.io/", skip };

static struct kube_secret *read_secret(const char *json, const struct kube_secret_keep *k, int *rc)
{
    struct kube_secret *s = NULL;
    cJSON *obj = NULL;

    T_RC(json_parse(&obj, json, strlen(json), 1u << 20), 0);
    *rc = kube_secret_from_json_keep(&s, obj, k);
    cJSON_Delete(obj);
    return s;
}

static void fp_of(char out[17], const char *value)
{
    struct sbuf *sb = sbuf_new(64);

    T_RC(sbuf_addstr(sb, value), 0);
    kube_secret_value_fp(out, sb);
    sbuf_free(sb);
}

static void check_common(const struct kube_secret *s)
{
    char fp[17];

    T_EQ_STR(s->ns, "team-a");
    T_EQ_STR(s->name, "db");
    T_EQ_STR(s->uid, "0b1c3a52-5e1d-4f5e-9a1b-6f1f9d0e2a11");
    T_EQ_STR(s->rv, "4711");
    T_CHECK(!s->deleting);
    T_EQ_INT(s->nkeys, 2);
    fp_of(fp, "pass");
    T_EQ_STR(kube_secret_key_fp(s, "password"), fp);
    fp_of(fp, "url");
    T_EQ_STR(kube_secret_key_fp(s, "DATABASE_URL"), fp);
    T_CHECK(kube_secret_key_fp(s, "pass") == NULL);
    T_CHECK(kube_secret_key_fp(s, "") == NULL);
    const char *kfp = NULL;
    T_EQ_STR(kube_secret_key_at(s, 1, &kfp), "DATABASE_URL");
    T_EQ_STR(kfp, fp);
    T_EQ_STR(s->ann == NULL ? NULL : kube_secret_annotation(s, "pgtoken.io/host"),
             "db.example.com");
    T_EQ_STR(kube_secret_annotation(s, "pgtoken.io/status.expires-at"), "2026-01-01T00:00:00Z");
    T_CHECK(kube_secret_annotation(s, "pgtoken.io/port") == NULL);
    T_CHECK(kube_secret_annotation(s, "host") == NULL); /* the prefix is part of the name */
    char *key = kube_secret_key(s);
    T_EQ_STR(key, "team-a/db");
    free(key);
}

/* Everything kept: annotations as they were, in their order. */
static void test_round_trip_all(void)
{
    int rc;
    struct kube_secret *s = read_secret(SECRET_JSON, NULL, &rc);
    cJSON *ann;
    char *txt;

    T_RC(rc, 0);
    if (!s)
        return;
    check_common(s);
    T_EQ_INT(s->nann, 6);
    T_EQ_STR(kube_secret_annotation(s, "other"), "x");
    T_EQ_STR(kube_secret_annotation(s, "pgtoken.io/status.identity"), "wi:client");
    ann = kube_secret_annotations_json(s);
    txt = cJSON_PrintUnformatted(ann);
    T_EQ_STR(txt, "{\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"big\\\":\\\"blob\\\"}\","
                  "\"pgtoken.io/host\":\"db.example.com\",\"pgtoken.io/user\":\"app\","
                  "\"pgtoken.io/status.expires-at\":\"2026-01-01T00:00:00Z\","
                  "\"pgtoken.io/status.identity\":\"wi:client\",\"other\":\"x\"}");
    cJSON_free(txt);
    cJSON_Delete(ann);
    kube_secret_free(s);
}

/* With a keep filter: only the prefix, less the skipped names; the rest is not stored. */
static void test_keep_filter_and_dup(void)
{
    int rc;
    struct kube_secret *s = read_secret(SECRET_JSON, &keep, &rc), *d;
    cJSON *ann;
    char *txt;

    T_RC(rc, 0);
    if (!s)
        return;
    check_common(s);
    T_EQ_INT(s->nann, 3);
    T_CHECK(kube_secret_annotation(s, "other") == NULL);
    T_CHECK(kube_secret_annotation(s, "pgtoken.io/status.identity") == NULL);
    T_CHECK(kube_secret_annotation(s, "kubectl.kubernetes.io/last-applied-configuration") == NULL);
    ann = kube_secret_annotations_json(s);
    txt = cJSON_PrintUnformatted(ann);
    T_EQ_STR(txt, "{\"pgtoken.io/host\":\"db.example.com\",\"pgtoken.io/user\":\"app\","
                  "\"pgtoken.io/status.expires-at\":\"2026-01-01T00:00:00Z\"}");
    cJSON_free(txt);
    cJSON_Delete(ann);
    /* The copy is one block of the same size and stands on its own. */
    d = kube_secret_dup(s);
    T_EQ_INT(d->size, s->size);
    kube_secret_free(s);
    check_common(d);
    T_EQ_INT(d->nann, 3);
    T_CHECK(d->ns >= d->blob && d->ns < (const char *)d + d->size);
    kube_secret_free(d);
}

/* What one cached Secret costs: the bench's Secret after its first rotation. */
static void test_compact_size(void)
{
    const char *json =
        "{\"metadata\":{\"namespace\":\"bench-07\",\"name\":\"db-00042\","
        "\"uid\":\"8a1f4e5c-3b2d-4c6e-9f80-1a2b3c4d5e6f\",\"resourceVersion\":\"123456\","
        "\"annotations\":{\"pgtoken.io/host\":\"localhost\",\"pgtoken.io/port\":\"54321\","
        "\"pgtoken.io/user\":\"bench_role_3\",\"pgtoken.io/database\":\"benchdb\","
        "\"pgtoken.io/status.issued-at\":\"2026-11-23T20:06:45Z\","
        "\"pgtoken.io/status.expires-at\":\"2026-11-23T21:06:45Z\","
        "\"pgtoken.io/status.rotate-at\":\"2026-11-23T20:36:45Z\","
        "\"pgtoken.io/status.rotated-at\":\"2026-11-23T20:06:46Z\","
        "\"pgtoken.io/status.spec-hash\":\"0123456789abcdef\","
        "\"pgtoken.io/status.identity\":\"workload-identity:11111111-2222-3333-4444-555555555555\"}},"
        "\"data\":{\"password\":\"cGFzcw==\",\"DATABASE_URL\":\"dXJs\"}}";
    static const char *const unread[] = { "pgtoken.io/status.rotated-at",
                                          "pgtoken.io/status.identity",
                                          "pgtoken.io/status.last-error-at", NULL };
    const struct kube_secret_keep k = { "pgtoken.io/", unread };
    int rc;
    struct kube_secret *s = read_secret(json, &k, &rc);

    T_RC(rc, 0);
    if (!s)
        return;
    printf("# one cached Secret: %u bytes in one allocation, a %zu-byte slab slot\n", s->size,
           slab_class_size(s->size));
    T_CHECK(s->size <= 416);
    T_CHECK(slab_class_size(s->size) <= 416);
    T_EQ_STR(kube_secret_annotation(s, "pgtoken.io/status.spec-hash"), "0123456789abcdef");
    T_CHECK(kube_secret_annotation(s, "pgtoken.io/status.rotated-at") == NULL);
    kube_secret_free(s);
}

/* A Secret larger than the slab's largest class (malloc's) is read, copied and
 * freed the same way; so is NULL. */
static void test_large_secret(void)
{
    enum { VALUE = SLAB_MAX + 500 };
    struct buf json = BUF_INIT(1u << 16);
    struct kube_secret *s, *d;
    int rc;

    buf_addstr(&json, "{\"metadata\":{\"namespace\":\"ns\",\"name\":\"big\","
                      "\"resourceVersion\":\"1\",\"annotations\":{\"pgtoken.io/host\":\"");
    for (int i = 0; i < VALUE; i++)
        buf_addstr(&json, "h");
    buf_addstr(&json, "\"}},\"data\":{\"password\":\"cGFzcw==\"}}");
    s = read_secret(buf_str(&json), &keep, &rc);
    buf_release(&json);
    T_RC(rc, 0);
    if (!s)
        return;
    T_CHECK(s->size > SLAB_MAX);
    T_EQ_INT(slab_class_size(s->size), 0);
    d = kube_secret_dup(s);
    kube_secret_free(s);
    T_EQ_INT(strlen(kube_secret_annotation(d, "pgtoken.io/host")), VALUE);
    T_EQ_STR(d->name, "big");
    kube_secret_free(d);
    kube_secret_free(NULL);
}

static void test_errors(void)
{
    int rc;
    struct kube_secret *s;

    s = read_secret("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\"}}", NULL, &rc);
    T_RC(rc, ERR_PARSE);
    T_CHECK(s == NULL);
    s = read_secret("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"resourceVersion\":\"1\"},"
                    "\"data\":{\"k\":\"not base64!\"}}", NULL, &rc);
    T_RC(rc, ERR_PARSE);
    s = read_secret("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"resourceVersion\":\"1\"},"
                    "\"data\":{\"k\":5}}", NULL, &rc);
    T_RC(rc, ERR_PARSE);
    /* A kept annotation that is not a string: the API server never sends one. */
    s = read_secret("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"resourceVersion\":\"1\","
                    "\"annotations\":{\"pgtoken.io/port\":5432}}}", &keep, &rc);
    T_RC(rc, ERR_PARSE);
    /* One that is not kept does not matter. */
    s = read_secret("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"resourceVersion\":\"1\","
                    "\"deletionTimestamp\":\"2026-01-01T00:00:00Z\","
                    "\"annotations\":{\"x\":5}}}", &keep, &rc);
    T_RC(rc, 0);
    if (s) {
        T_CHECK(s->deleting);
        T_EQ_STR(s->uid, "");
        T_EQ_INT(s->nann, 0);
        T_EQ_INT(s->nkeys, 0);
        kube_secret_free(s);
    }
}

/* Namespaces and names as the API server allows them, and nothing else: the store's
 * "namespace/name" key must split back into the Secret it names (a namespace "a/" made
 * the key "a//app-db", which the store then looked up as namespace "a", name "/app-db"). */
static void test_refs(void)
{
    static const char *const good[][2] = {
        { "a", "b" }, { "prod-9", "s9999" }, { "team-a", "app.db-1" }, { "0", "9.a-b.c" },
    };
    static const char *const bad[][2] = {
        { "a/", "app-db" }, { "a", "/app-db" }, { "a", "x/y" }, { "", "b" }, { "a", "" },
        { "A", "b" }, { "a", "B" }, { "-a", "b" }, { "a-", "b" }, { "a", "-b" }, { "a", "b-" },
        { "a.b", "c" }, { "a", ".b" }, { "a", "b." }, { "a", "b..c" }, { "a", "b-.c" },
        { "a", "b.-c" }, { "a_b", "c" }, { "a", "b c" }, { "a", "b\x01" },
    };
    char ns64[65], name254[255];
    int rc;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        T_RC(kube_secret_check_ref(good[i][0], good[i][1]), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (kube_secret_check_ref(bad[i][0], bad[i][1]) != ERR_PARSE)
            t_fail(__FILE__, __LINE__, "\"%s\"/\"%s\" was accepted", bad[i][0], bad[i][1]);
    memset(ns64, 'a', 64);
    ns64[64] = '\0';
    memset(name254, 'b', 254);
    name254[254] = '\0';
    T_RC(kube_secret_check_ref(ns64, "b"), ERR_PARSE);
    T_RC(kube_secret_check_ref(ns64 + 1, "b"), 0);
    T_RC(kube_secret_check_ref("a", name254), ERR_PARSE);
    T_RC(kube_secret_check_ref("a", name254 + 1), 0);
    /* And the reader refuses them. */
    T_CHECK(read_secret("{\"metadata\":{\"namespace\":\"a/\",\"name\":\"app-db\","
                        "\"resourceVersion\":\"1\"}}", NULL, &rc) == NULL);
    T_RC(rc, ERR_PARSE);
}

int main(void)
{
    T_RUN(test_round_trip_all);
    T_RUN(test_keep_filter_and_dup);
    T_RUN(test_compact_size);
    T_RUN(test_large_secret);
    T_RUN(test_errors);
    T_RUN(test_refs);
    return t_done();
}
