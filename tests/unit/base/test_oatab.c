#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/oatab.h"

struct ent {
    char key[16];
    int value;
};

/* weak: a hash with few values, so that keys collide, probe and wrap around */
static unsigned weak_bits = 64;

static uint64_t hash_key(const void *key, void *ctx)
{
    (void)ctx;
    return fnv1a_str(FNV1A_INIT, key) % weak_bits;
}

static uint64_t hash_entry(const void *e, void *ctx)
{
    return hash_key(((const struct ent *)e)->key, ctx);
}

static bool matches(const void *e, const void *key, void *ctx)
{
    (void)ctx;
    return !strcmp(((const struct ent *)e)->key, key);
}

static const struct oatab_type ty = { hash_key, hash_entry, matches };

/* Every entry is found from its key, and the table holds exactly `live`. */
static void check(const struct oatab *t, struct ent *ents, const bool *live, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        struct ent *e = oatab_get(t, &ty, NULL, ents[i].key);
        if (live[i])
            T_CHECK(e == &ents[i]);
        else
            T_CHECK(e == NULL);
        count += live[i];
    }
    T_EQ_INT(t->len, count);
    for (size_t i = 0, seen = 0; i < t->cap; i++) {
        seen += t->slots[i] != NULL;
        if (i == t->cap - 1)
            T_EQ_INT(seen, count);
    }
}

/* Random puts and deletes against a reference, with a hash of 64, 7 and 1 values. */
static void test_random_against_reference(void)
{
    enum { N = 600 };
    static struct ent ents[N];
    bool live[N] = { false };
    unsigned seed = 12345;

    for (size_t i = 0; i < N; i++)
        snprintf(ents[i].key, sizeof(ents[i].key), "ns/s%zu", i);
    for (unsigned bits = 64; bits >= 1; bits = bits == 64 ? 7 : bits == 7 ? 1 : 0) {
        struct oatab t = OATAB_INIT;
        size_t n = bits == 1 ? 80 : N; /* one bucket: every lookup is a full probe */

        weak_bits = bits;
        memset(live, 0, sizeof(live));
        for (int step = 0; step < 6000; step++) {
            size_t i;
            seed = seed * 1103515245u + 12345u;
            i = (seed >> 8) % n;
            if (live[i]) {
                T_CHECK(oatab_del(&t, &ty, NULL, ents[i].key) == &ents[i]);
                live[i] = false;
            } else {
                T_CHECK(oatab_del(&t, &ty, NULL, ents[i].key) == NULL);
                oatab_put(&t, &ty, NULL, &ents[i]);
                live[i] = true;
            }
            T_CHECK(t.len * 4 <= t.cap * 3);
            if (step % 500 == 0)
                check(&t, ents, live, n);
        }
        check(&t, ents, live, n);
        oatab_release(&t);
        T_EQ_INT(t.cap, 0);
        T_CHECK(oatab_get(&t, &ty, NULL, "ns/s1") == NULL);
    }
    weak_bits = 64;
}

/* A sweep that removes at i and looks at i again removes exactly the marked ones,
 * whatever shifts back into i (one bucket makes every removal shift). */
static void test_sweep_remove_at(void)
{
    enum { N = 40 };
    static struct ent ents[N];
    bool live[N];
    struct oatab t = OATAB_INIT;

    weak_bits = 3;
    for (size_t i = 0; i < N; i++) {
        snprintf(ents[i].key, sizeof(ents[i].key), "k%zu", i);
        ents[i].value = (int)(i % 3 == 0); /* marked: remove */
        oatab_put(&t, &ty, NULL, &ents[i]);
        live[i] = !ents[i].value;
    }
    for (size_t i = 0; i < t.cap;) {
        struct ent *e = t.slots[i];
        if (e && e->value) {
            T_CHECK(oatab_remove_at(&t, &ty, NULL, i) == e);
            continue;
        }
        i++;
    }
    check(&t, ents, live, N);
    oatab_release(&t);
    weak_bits = 64;
}

/* Entries that are positions in the caller's array (ctx), as the work queue keeps
 * them: 1-based, never NULL; reserve + slot + assignment adds in place. */
static const char *names[] = { "a/x", "b/y", "c/z", "d/w" };

static uint64_t pos_hash_key(const void *key, void *ctx)
{
    (void)ctx;
    return fnv1a_str(FNV1A_INIT, key);
}

static uint64_t pos_hash_entry(const void *e, void *ctx)
{
    const char **arr = ctx;
    return pos_hash_key(arr[(uintptr_t)e - 1], ctx);
}

static bool pos_matches(const void *e, const void *key, void *ctx)
{
    const char **arr = ctx;
    return !strcmp(arr[(uintptr_t)e - 1], key);
}

static void test_positions(void)
{
    static const struct oatab_type pty = { pos_hash_key, pos_hash_entry, pos_matches };
    struct oatab t = OATAB_INIT;

    for (uintptr_t i = 0; i < 4; i++) {
        oatab_reserve(&t, &pty, names);
        size_t s = oatab_slot(&t, &pty, names, names[i]);
        T_CHECK(t.slots[s] == NULL);
        t.slots[s] = (void *)(i + 1);
        t.len++;
    }
    T_CHECK((uintptr_t)oatab_get(&t, &pty, names, "c/z") == 3);
    T_CHECK(oatab_get(&t, &pty, names, "e/v") == NULL);
    T_CHECK((uintptr_t)oatab_del(&t, &pty, names, "a/x") == 1);
    T_CHECK((uintptr_t)oatab_get(&t, &pty, names, "d/w") == 4);
    T_EQ_INT(t.len, 3);
    oatab_release(&t);
}

/* The one FNV-1a: the published test vectors, and bytes agree with strings. */
static void test_fnv1a(void)
{
    T_CHECK(fnv1a_str(FNV1A_INIT, "") == UINT64_C(0xcbf29ce484222325));
    T_CHECK(fnv1a_str(FNV1A_INIT, "a") == UINT64_C(0xaf63dc4c8601ec8c));
    T_CHECK(fnv1a_str(FNV1A_INIT, "foobar") == UINT64_C(0x85944171f73967e8));
    T_CHECK(fnv1a_bytes(FNV1A_INIT, "foobar", 6) == fnv1a_str(FNV1A_INIT, "foobar"));
    T_CHECK(fnv1a_str(fnv1a_str(FNV1A_INIT, "foo"), "bar") == fnv1a_str(FNV1A_INIT, "foobar"));
    T_CHECK(fnv1a_str(FNV1A_INIT, NULL) == FNV1A_INIT);
}

int main(void)
{
    T_RUN(test_fnv1a);
    T_RUN(test_random_against_reference);
    T_RUN(test_sweep_remove_at);
    T_RUN(test_positions);
    return t_done();
}
