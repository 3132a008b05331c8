#include "kube/store.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"
#include "base/oatab.h"
#include "base/strmap.h"
#include "kube/kpath.h"
#include "base/banned.h"

#define STALE 1 /* kube_secret.store_mark: not seen by the relist in progress */
/* Writes awaiting their echo that are remembered at once: when the watch lags far
 * behind the writers, the ones past this are reconciled once more (as before
 * store_expect), instead of costing memory per Secret. */
#define ECHO_MAX 1024

/* An open-addressing table (base/oatab.h) of the Secrets themselves: the key
 * "namespace/name" is read from each entry, never copied, so an entry costs the
 * Secret and two pointers of table. */
struct store {
    pthread_mutex_t mu;
    struct oatab t; /* struct kube_secret */
    /* key -> the resourceVersion (char *) its owner's own write produced, until
     * the watch delivers that key again: entries only between a write and its
     * echo (store_expect). */
    struct strmap echo;
};

/* The table is asked with a struct kpath_key: a key string split into its parts. */
static uint64_t hash_parts(const char *ns, const char *name)
{
    return hash_fold(fnv1a_str(fnv1a_bytes(fnv1a_str(FNV1A_INIT, ns), "/", 1), name));
}

static uint64_t key_hash(const void *key, void *ctx)
{
    const struct kpath_key *k = key;

    (void)ctx;
    return hash_parts(k->ns, k->name);
}

static uint64_t entry_hash(const void *e, void *ctx)
{
    const struct kube_secret *s = e;

    (void)ctx;
    return hash_parts(s->ns, s->name);
}

static bool entry_matches(const void *e, const void *key, void *ctx)
{
    const struct kube_secret *s = e;
    const struct kpath_key *k = key;

    (void)ctx;
    return !strcmp(s->ns, k->ns) && !strcmp(s->name, k->name);
}

static const struct oatab_type secret_type = { key_hash, entry_hash, entry_matches };

/* The Secret under key, or NULL (also for a key that is not "namespace/name"). */
static struct kube_secret *lookup(const struct store *st, const char *key)
{
    struct kpath_key k;

    return kpath_key_split(&k, key) == 0 ? oatab_get(&st->t, &secret_type, NULL, &k) : NULL;
}

struct store *store_new(void)
{
    struct store *st = xcalloc(1, sizeof(*st));

    pthread_mutex_init(&st->mu, NULL);
    return st;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->t.cap; i++)
        kube_secret_free(st->t.slots[i]);
    oatab_release(&st->t);
    strmap_clear(&st->echo, free);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

bool store_upsert(struct store *st, struct kube_secret *s)
{
    struct kpath_key k;
    struct kube_secret *old;
    size_t i;
    bool changed = true;

    if (kpath_key_set(&k, s->ns, s->name) < 0) {
        kube_secret_free(s); /* cannot happen: a Secret passed kube_secret_check_ref */
        return false;
    }
    s->store_mark = 0;
    s->store_due_ms = clock_mono_ms();
    pthread_mutex_lock(&st->mu);
    oatab_reserve(&st->t, &secret_type, NULL);
    i = oatab_slot(&st->t, &secret_type, NULL, &k);
    if ((old = st->t.slots[i])) {
        changed = strcmp(old->rv, s->rv) != 0;
        if (changed && st->echo.len) { /* the echo of the owner's own write? */
            char skey[KPATH_KEY_SIZE];
            char *mine = kpath_key_join(skey, s->ns, s->name) == 0 ? strmap_del(&st->echo, skey)
                                                                    : NULL;
            changed = !(mine && !strcmp(mine, s->rv));
            free(mine);
        }
        if (!changed)
            s->store_due_ms = old->store_due_ms;
        kube_secret_free(old);
    } else {
        st->t.len++;
    }
    st->t.slots[i] = s;
    pthread_mutex_unlock(&st->mu);
    return changed;
}

void store_expect(struct store *st, const char *key, const char *rv)
{
    struct kube_secret *s;

    if (!rv || !*rv)
        return;
    pthread_mutex_lock(&st->mu);
    /* Not cached, or the echo came first: nothing to wait for. */
    if ((s = lookup(st, key)) && strcmp(s->rv, rv) &&
        (st->echo.len < ECHO_MAX || strmap_has(&st->echo, key)))
        free(strmap_put(&st->echo, key, xstrdup(rv)));
    pthread_mutex_unlock(&st->mu);
}

void store_set_due(struct store *st, const char *key, int64_t due_ms)
{
    struct kube_secret *s;

    pthread_mutex_lock(&st->mu);
    if ((s = lookup(st, key)))
        s->store_due_ms = due_ms;
    pthread_mutex_unlock(&st->mu);
}

size_t store_each_due(struct store *st, int64_t before_ms,
                      void (*fn)(void *ctx, const char *key), void *ctx)
{
    char key[KPATH_KEY_SIZE];
    size_t n = 0;

    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->t.cap; i++) {
        const struct kube_secret *s = st->t.slots[i];
        if (!s || s->store_due_ms > before_ms)
            continue;
        n++;
        if (fn && kpath_key_join(key, s->ns, s->name) == 0)
            fn(ctx, key);
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

bool store_delete(struct store *st, const char *key)
{
    struct kube_secret *gone = NULL;
    struct kpath_key k;

    if (kpath_key_split(&k, key) < 0)
        return false;
    pthread_mutex_lock(&st->mu);
    gone = oatab_del(&st->t, &secret_type, NULL, &k);
    free(strmap_del(&st->echo, key));
    pthread_mutex_unlock(&st->mu);
    kube_secret_free(gone);
    return gone != NULL;
}

bool store_has(struct store *st, const char *key)
{
    bool has;

    pthread_mutex_lock(&st->mu);
    has = lookup(st, key) != NULL;
    pthread_mutex_unlock(&st->mu);
    return has;
}

int store_get(struct kube_secret **out, struct store *st, const char *key)
{
    struct kube_secret *s;

    pthread_mutex_lock(&st->mu);
    if ((s = lookup(st, key)))
        s = kube_secret_dup(s);
    pthread_mutex_unlock(&st->mu);
    if (!s)
        return err_set(ERR_NOTFOUND, "Secret %s is not in the cache", key);
    *out = s;
    return 0;
}

size_t store_len(struct store *st)
{
    size_t n;

    pthread_mutex_lock(&st->mu);
    n = st->t.len;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void store_mark(struct store *st, const char *ns)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->t.cap; i++) {
        struct kube_secret *s = st->t.slots[i];
        if (s && (!ns || !strcmp(s->ns, ns)))
            s->store_mark = STALE;
    }
    pthread_mutex_unlock(&st->mu);
}

void store_sweep(struct store *st, void (*on_removed)(void *ctx, const char *key), void *ctx)
{
    struct kube_secret **gone = NULL;
    size_t ngone = 0, capgone = 0;
    const size_t elem = sizeof(struct kube_secret *);

    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->t.cap;) {
        const struct kube_secret *s = st->t.slots[i];
        if (s && s->store_mark == STALE) {
            xgrow((void **)&gone, &capgone, ngone + 1, elem);
            /* slot i may hold a shifted entry now: look at it again */
            gone[ngone++] = oatab_remove_at(&st->t, &secret_type, NULL, i);
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < ngone; i++) {
        char *key = kube_secret_key(gone[i]);
        if (on_removed)
            on_removed(ctx, key);
        free(key);
        kube_secret_free(gone[i]);
    }
    free(gone);
}

void store_each_key(struct store *st, void (*fn)(void *ctx, const char *key), void *ctx)
{
    (void)store_each_due(st, STORE_DUE_NEVER, fn, ctx); /* every entry is due by never */
}

void store_each(struct store *st, void (*fn)(void *ctx, const struct kube_secret *s), void *ctx)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->t.cap; i++)
        if (st->t.slots[i])
            fn(ctx, st->t.slots[i]);
    pthread_mutex_unlock(&st->mu);
}
