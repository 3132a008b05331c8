#include "base/oatab.h"

#include <stdlib.h>

#include "base/mem.h"
#include "base/banned.h"

size_t oatab_slot(const struct oatab *t, const struct oatab_type *ty, void *ctx, const void *key)
{
    size_t mask = t->cap - 1, i = (size_t)ty->hash_key(key, ctx) & mask;

    while (t->slots[i] && !ty->matches(t->slots[i], key, ctx))
        i = (i + 1) & mask;
    return i;
}

void *oatab_get(const struct oatab *t, const struct oatab_type *ty, void *ctx, const void *key)
{
    return t->cap ? t->slots[oatab_slot(t, ty, ctx, key)] : NULL;
}

void oatab_reserve(struct oatab *t, const struct oatab_type *ty, void *ctx)
{
    size_t ocap = t->cap, ncap;
    void **old = t->slots;

    if ((t->len + 1) * 4 <= t->cap * 3)
        return;
    ncap = ocap ? ocap * 2 : 64;
    t->slots = xcalloc(ncap, sizeof(*t->slots));
    t->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i])
            continue;
        size_t j = (size_t)ty->hash_entry(old[i], ctx) & (ncap - 1);
        while (t->slots[j])
            j = (j + 1) & (ncap - 1);
        t->slots[j] = old[i];
    }
    free(old);
}

void oatab_put(struct oatab *t, const struct oatab_type *ty, void *ctx, void *entry)
{
    size_t mask, j;

    oatab_reserve(t, ty, ctx);
    mask = t->cap - 1;
    j = (size_t)ty->hash_entry(entry, ctx) & mask;
    while (t->slots[j])
        j = (j + 1) & mask;
    t->slots[j] = entry;
    t->len++;
}

void *oatab_remove_at(struct oatab *t, const struct oatab_type *ty, void *ctx, size_t i)
{
    void *gone = t->slots[i];
    size_t mask = t->cap - 1, j = i;

    t->slots[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slots[j])
            break;
        size_t home = (size_t)ty->hash_entry(t->slots[j], ctx) & mask;
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            t->slots[i] = t->slots[j];
            t->slots[j] = NULL;
            i = j;
        }
    }
    t->len--;
    return gone;
}

void *oatab_del(struct oatab *t, const struct oatab_type *ty, void *ctx, const void *key)
{
    size_t i;

    if (!t->cap || !t->slots[i = oatab_slot(t, ty, ctx, key)])
        return NULL;
    return oatab_remove_at(t, ty, ctx, i);
}

void oatab_release(struct oatab *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = 0;
    t->len = 0;
}
