#include "t.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "kube/store.h"

static struct kube_secret *secret(const char *ns, const char *name, const char *rv)
{
    char json[512];
    struct kube_secret *s = NULL;
    cJSON *obj = NULL;

    snprintf(json, sizeof(json),
             "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"%s\","
             "\"annotations\":{\"pgtoken.io/host\":\"h-%s\"}},\"data\":{}}",
             ns, name, rv, name);
    T_RC(json_parse(&obj, json, strlen(json), 1u << 16), 0);
    T_RC(kube_secret_from_json(&s, obj), 0);
    cJSON_Delete(obj);
    return s;
}

static void test_upsert_get_delete(void)
{
    struct store *st = store_new();
    struct kube_secret *got = NULL;

    T_RC(store_get(&got, st, "a/x"), ERR_NOTFOUND);
    T_CHECK(!store_has(st, "a/x")); /* an empty table */
    T_CHECK(!store_delete(st, "a/x"));
    T_CHECK(!store_delete(st, "no-slash"));
    T_CHECK(store_upsert(st, secret("a", "x", "1")));
    T_CHECK(!store_upsert(st, secret("a", "x", "1"))); /* same version: nothing new */
    T_CHECK(store_upsert(st, secret("a", "x", "2")));
    T_CHECK(store_upsert(st, secret("ab", "x", "1")));
    T_CHECK(store_upsert(st, secret("a", "bx", "1"))); /* "a/bx" and "ab/x": not confused */
    T_EQ_INT(store_len(st), 3);
    T_CHECK(store_has(st, "a/x") && store_has(st, "ab/x") && store_has(st, "a/bx"));
    T_CHECK(!store_has(st, "a/b") && !store_has(st, "no-slash") && !store_has(st, "b/x"));
    T_RC(store_get(&got, st, "a/x"), 0);
    if (got) {
        T_EQ_STR(got->rv, "2");
        T_EQ_STR(kube_secret_annotation(got, "pgtoken.io/host"), "h-x");
        kube_secret_free(got);
    }
    T_RC(store_get(&got, st, "a/b"), ERR_NOTFOUND);
    T_CHECK(store_delete(st, "a/x"));
    T_CHECK(!store_delete(st, "a/x"));
    T_RC(store_get(&got, st, "a/x"), ERR_NOTFOUND);
    T_CHECK(!store_has(st, "a/x"));
    T_EQ_INT(store_len(st), 2);
    store_free(st);
}

struct seen {
    size_t n;
    char keys[64][32];
};

static void collect(void *ctx, const char *key)
{
    struct seen *s = ctx;

    if (s->n < 64)
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
    s->n++;
}

static void count_secret(void *ctx, const struct kube_secret *s)
{
    (void)s;
    (*(size_t *)ctx)++;
}

/* Many entries through growth, deletes (backward shifts), a relist's mark and sweep. */
static void test_many_mark_sweep(void)
{
    struct store *st = store_new();
    struct seen gone = { 0 }, all = { 0 };
    struct kube_secret *got = NULL;
    char ns[16], name[16], key[40];
    size_t n = 0;

    for (int i = 0; i < 3000; i++) {
        snprintf(ns, sizeof(ns), "ns-%d", i % 7);
        snprintf(name, sizeof(name), "s-%d", i);
        store_upsert(st, secret(ns, name, "1"));
    }
    T_EQ_INT(store_len(st), 3000);
    for (int i = 0; i < 3000; i += 3) {
        snprintf(key, sizeof(key), "ns-%d/s-%d", i % 7, i);
        T_CHECK(store_delete(st, key));
    }
    T_EQ_INT(store_len(st), 2000);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "ns-%d/s-%d", i % 7, i);
        int rc = store_get(&got, st, key);
        T_RC(rc, i % 3 ? 0 : ERR_NOTFOUND);
        if (rc == 0)
            kube_secret_free(got);
    }
    /* A relist of namespace ns-1 that sees only s-1: every other ns-1 entry goes. */
    store_mark(st, "ns-1");
    store_upsert(st, secret("ns-1", "s-1", "2"));
    store_sweep(st, collect, &gone);
    size_t want = 0;
    for (int i = 0; i < 3000; i++)
        if (i % 3 && i % 7 == 1 && i != 1)
            want++;
    T_EQ_INT(gone.n, want);
    T_EQ_INT(store_len(st), 2000 - want);
    T_RC(store_get(&got, st, "ns-1/s-1"), 0);
    kube_secret_free(got);
    T_RC(store_get(&got, st, "ns-1/s-8"), ERR_NOTFOUND);
    T_RC(store_get(&got, st, "ns-2/s-2"), 0);
    kube_secret_free(got);
    /* A full relist that sees nothing empties it. */
    store_mark(st, NULL);
    store_each(st, count_secret, &n);
    T_EQ_INT(n, 2000 - want);
    store_sweep(st, NULL, NULL);
    T_EQ_INT(store_len(st), 0);
    store_upsert(st, secret("z", "last", "1"));
    store_each_key(st, collect, &all);
    T_EQ_INT(all.n, 1);
    T_EQ_STR(all.keys[0], "z/last");
    store_free(st);
}

static void test_due(void)
{
    struct store *st = store_new();
    struct seen due = { 0 };
    int64_t t0 = clock_mono_ms();

    T_EQ_INT(store_each_due(st, INT64_MAX - 1, NULL, NULL), 0);
    T_CHECK(store_upsert(st, secret("a", "x", "1"))); /* new: planned for now */
    T_CHECK(store_upsert(st, secret("a", "y", "1")));
    T_EQ_INT(store_each_due(st, t0 - 1, NULL, NULL), 0);
    T_EQ_INT(store_each_due(st, clock_mono_ms(), collect, &due), 2);
    T_EQ_INT(due.n, 2);
    /* Planned later, and kept across an unchanged upsert (a relist); a change
     * plans the entry for now again. */
    store_set_due(st, "a/x", t0 + 3600000);
    store_set_due(st, "a/y", STORE_DUE_NEVER);
    store_set_due(st, "a/none", t0); /* not cached: nothing */
    T_EQ_INT(store_len(st), 2);
    T_EQ_INT(store_each_due(st, t0 + 3599999, NULL, NULL), 0);
    T_EQ_INT(store_each_due(st, t0 + 3600000, NULL, NULL), 1);
    T_CHECK(!store_upsert(st, secret("a", "x", "1")));
    T_CHECK(!store_upsert(st, secret("a", "y", "1")));
    T_EQ_INT(store_each_due(st, t0 + 3599999, NULL, NULL), 0);
    T_EQ_INT(store_each_due(st, INT64_MAX - 1, NULL, NULL), 1); /* never is never */
    T_CHECK(store_upsert(st, secret("a", "y", "2")));
    due.n = 0;
    T_EQ_INT(store_each_due(st, clock_mono_ms(), collect, &due), 1);
    T_EQ_INT(due.n, 1);
    T_EQ_STR(due.keys[0], "a/y");
    /* The planned time is the store's: a copy handed out does not carry it. */
    {
        struct kube_secret *got = NULL;
        T_RC(store_get(&got, st, "a/x"), 0);
        if (got) {
            T_EQ_INT(got->store_due_ms, 0);
            kube_secret_free(got);
        }
    }
    store_free(st);
}

/* The controller's threads at once: a watch thread replacing every cached Secret
 * with a new copy and deleting some, while workers take copies and free them. The
 * copies are whole; every Secret ends up freed (ASan's leak check; the slab counts
 * under the paged build). */
enum { RACE_SECRETS = 200, RACE_ROUNDS = 15, RACE_WORKERS = 3 };

struct race {
    struct store *st;
    int done;
    int bad;
};

/* The owner's own write comes back from the watch: no reconcile for it; any
 * other version (someone else's write, or a later one) still counts. */
static void test_expect_echo(void)
{
    struct store *st = store_new();

    T_CHECK(store_upsert(st, secret("ns", "a", "10")));
    store_expect(st, "ns/a", "11");
    T_CHECK(!store_upsert(st, secret("ns", "a", "11"))); /* the echo */
    T_CHECK(store_upsert(st, secret("ns", "a", "12")));  /* then someone else */

    store_expect(st, "ns/a", "14");
    T_CHECK(store_upsert(st, secret("ns", "a", "13")));  /* another write first */
    T_CHECK(store_upsert(st, secret("ns", "a", "14")));  /* the expectation went with it */

    T_CHECK(!store_upsert(st, secret("ns", "a", "14"))); /* the same version: unchanged */
    store_expect(st, "ns/a", "14");                      /* the watch was first: no-op */
    T_CHECK(store_upsert(st, secret("ns", "a", "15")));

    store_expect(st, "ns/a", "16");
    T_CHECK(store_delete(st, "ns/a"));                   /* gone: forgotten */
    T_CHECK(store_upsert(st, secret("ns", "a", "16")));  /* new again: counts */

    store_expect(st, "ns/none", "1");                    /* not cached: nothing */
    T_CHECK(store_upsert(st, secret("ns", "none", "1")));
    store_expect(st, "ns/a", "");
    T_CHECK(store_upsert(st, secret("ns", "a", "17")));

    /* At most 1,024 writes await their echo: the next one is not remembered. */
    char key[32];
    for (int i = 0; i < 1025; i++) {
        snprintf(key, sizeof(key), "cap/s%d", i);
        T_CHECK(store_upsert(st, secret("cap", key + 4, "1")));
        store_expect(st, key, "2");
    }
    T_CHECK(!store_upsert(st, secret("cap", "s1023", "2"))); /* remembered */
    T_CHECK(store_upsert(st, secret("cap", "s1024", "2")));  /* over the cap */
    store_free(st);
}

static void *race_watch(void *arg)
{
    struct race *r = arg;
    char name[32], rv[32];

    for (int round = 1; round <= RACE_ROUNDS; round++)
        for (int i = 0; i < RACE_SECRETS; i++) {
            snprintf(name, sizeof(name), "s-%d", i);
            snprintf(rv, sizeof(rv), "%d", round);
            if (i % 7 == round % 7) {
                char key[64];
                snprintf(key, sizeof(key), "race/%s", name);
                store_delete(r->st, key);
            } else {
                store_upsert(r->st, secret("race", name, rv));
            }
        }
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *race_worker(void *arg)
{
    struct race *r = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    char key[64], host[64];

    while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
        struct kube_secret *s = NULL;
        seed = seed * 1103515245u + 12345u;
        snprintf(key, sizeof(key), "race/s-%u", (seed >> 8) % RACE_SECRETS);
        if (store_get(&s, r->st, key) < 0)
            continue; /* deleted, or not there yet */
        snprintf(host, sizeof(host), "h-%s", s->name);
        if (strcmp(s->ns, "race") || strcmp(key + 5, s->name) ||
            strcmp(kube_secret_annotation(s, "pgtoken.io/host") ?: "", host))
            __atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
        kube_secret_free(s);
    }
    return NULL;
}

static void test_threads(void)
{
    struct race r = { store_new(), 0, 0 };
    pthread_t watch, workers[RACE_WORKERS];

    for (int i = 0; i < RACE_WORKERS; i++)
        T_RC(pthread_create(&workers[i], NULL, race_worker, &r), 0);
    T_RC(pthread_create(&watch, NULL, race_watch, &r), 0);
    T_RC(pthread_join(watch, NULL), 0);
    for (int i = 0; i < RACE_WORKERS; i++)
        T_RC(pthread_join(workers[i], NULL), 0);
    T_EQ_INT(r.bad, 0);
    T_EQ_INT(store_len(r.st), RACE_SECRETS - RACE_SECRETS / 7 - 1); /* round 15: i % 7 == 1 */
    store_free(r.st);
}

int main(void)
{
    T_RUN(test_upsert_get_delete);
    T_RUN(test_many_mark_sweep);
    T_RUN(test_due);
    T_RUN(test_expect_echo);
    T_RUN(test_threads);
    return t_done();
}
