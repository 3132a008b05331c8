#include "base/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/mem.h"
#include "base/banned.h"

static uint64_t hash(const char *s)
{
    return fnv1a_str(FNV1A_INIT, s);
}

static struct strmap_entry **slot(const struct strmap *m, const char *key)
{
    return &m->buckets[hash(key) & (m->nbuckets - 1)];
}

void *strmap_get(const struct strmap *m, const char *key)
{
    if (!m->nbuckets)
        return NULL;
    for (struct strmap_entry *e = *slot(m, key); e; e = e->next)
        if (!strcmp(e->key, key))
            return e->value;
    return NULL;
}

bool strmap_has(const struct strmap *m, const char *key)
{
    if (!m->nbuckets)
        return false;
    for (struct strmap_entry *e = *slot(m, key); e; e = e->next)
        if (!strcmp(e->key, key))
            return true;
    return false;
}

static void grow(struct strmap *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    struct strmap_entry **b = xcalloc(n, sizeof(struct strmap_entry *));

    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            struct strmap_entry **s = &b[hash(e->key) & (n - 1)];
            e->next = *s;
            *s = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *strmap_put(struct strmap *m, const char *key, void *value)
{
    struct strmap_entry *e, **s;

    if (m->len + 1 > m->nbuckets * 3 / 4)
        grow(m);
    s = slot(m, key);
    for (e = *s; e; e = e->next)
        if (!strcmp(e->key, key)) {
            void *old = e->value;
            e->value = value;
            return old;
        }
    e = xmalloc(sizeof(*e));
    e->key = xstrdup(key);
    e->value = value;
    e->next = *s;
    *s = e;
    m->len++;
    return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
    if (!m->nbuckets)
        return NULL;
    for (struct strmap_entry **p = slot(m, key); *p; p = &(*p)->next)
        if (!strcmp((*p)->key, key)) {
            struct strmap_entry *e = *p;
            void *v = e->value;
            *p = e->next;
            free(e->key);
            free(e);
            m->len--;
            return v;
        }
    return NULL;
}

void strmap_clear(struct strmap *m, void (*free_value)(void *))
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            if (free_value && e->value)
                free_value(e->value);
            free(e->key);
            free(e);
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    m->len = 0;
}

struct strmap_entry *strmap_first(const struct strmap *m)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        if (m->buckets[i])
            return m->buckets[i];
    return NULL;
}

struct strmap_entry *strmap_next(const struct strmap *m, const struct strmap_entry *e)
{
    if (e->next)
        return e->next;
    for (size_t i = (hash(e->key) & (m->nbuckets - 1)) + 1; i < m->nbuckets; i++)
        if (m->buckets[i])
            return m->buckets[i];
    return NULL;
}
