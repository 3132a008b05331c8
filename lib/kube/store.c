#include "kube/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/strmap.h"
#include "base/banned.h"

struct entry {
    struct kube_secret *s;
    bool stale;
};

struct store {
    pthread_mutex_t mu;
    struct strmap map;
};

static void entry_free(void *p)
{
    struct entry *e = p;

    kube_secret_free(e->s);
    free(e);
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
    strmap_clear(&st->map, entry_free);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

bool store_upsert(struct store *st, struct kube_secret *s)
{
    char *key = kube_secret_key(s);
    struct entry *e;
    bool changed = true;

    pthread_mutex_lock(&st->mu);
    e = strmap_get(&st->map, key);
    if (e) {
        changed = strcmp(e->s->rv, s->rv) != 0;
        kube_secret_free(e->s);
        e->s = s;
        e->stale = false;
    } else {
        e = xcalloc(1, sizeof(*e));
        e->s = s;
        strmap_put(&st->map, key, e);
    }
    pthread_mutex_unlock(&st->mu);
    free(key);
    return changed;
}

bool store_delete(struct store *st, const char *key)
{
    struct entry *e;

    pthread_mutex_lock(&st->mu);
    e = strmap_del(&st->map, key);
    pthread_mutex_unlock(&st->mu);
    if (e)
        entry_free(e);
    return e != NULL;
}

int store_get(struct kube_secret **out, struct store *st, const char *key)
{
    struct entry *e;
    int rc = 0;

    pthread_mutex_lock(&st->mu);
    e = strmap_get(&st->map, key);
    if (e)
        *out = kube_secret_dup(e->s);
    else
        rc = err_set(ERR_NOTFOUND, "Secret %s is not in the cache", key);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

size_t store_len(struct store *st)
{
    size_t n;

    pthread_mutex_lock(&st->mu);
    n = st->map.len;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void store_mark(struct store *st, const char *ns)
{
    pthread_mutex_lock(&st->mu);
    for (struct strmap_entry *it = strmap_first(&st->map); it; it = strmap_next(&st->map, it)) {
        struct entry *e = it->value;
        if (!ns || !strcmp(e->s->ns, ns))
            e->stale = true;
    }
    pthread_mutex_unlock(&st->mu);
}

void store_sweep(struct store *st, void (*on_removed)(void *ctx, const char *key), void *ctx)
{
    struct strmap gone = STRMAP_INIT;

    pthread_mutex_lock(&st->mu);
    for (struct strmap_entry *it = strmap_first(&st->map); it; it = strmap_next(&st->map, it))
        if (((struct entry *)it->value)->stale)
            strmap_put(&gone, it->key, NULL);
    for (struct strmap_entry *it = strmap_first(&gone); it; it = strmap_next(&gone, it))
        entry_free(strmap_del(&st->map, it->key));
    pthread_mutex_unlock(&st->mu);
    for (struct strmap_entry *it = strmap_first(&gone); it; it = strmap_next(&gone, it))
        if (on_removed)
            on_removed(ctx, it->key);
    strmap_clear(&gone, NULL);
}

void store_each_key(struct store *st, void (*fn)(void *ctx, const char *key), void *ctx)
{
    pthread_mutex_lock(&st->mu);
    for (struct strmap_entry *it = strmap_first(&st->map); it; it = strmap_next(&st->map, it))
        fn(ctx, it->key);
    pthread_mutex_unlock(&st->mu);
}
