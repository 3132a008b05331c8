/* An open-addressing hash table (linear probing, backward-shift deletion) of the
 * caller's entries: non-NULL pointer-sized values that carry their own key (a
 * struct holding its key, or a position in the caller's array that holds it), so
 * an entry costs one slot and no copy of its key. At most 3/4 full; the capacity
 * is a power of two. Not thread-safe: callers hold their own lock.
 *
 *   static const struct oatab_type ty = { hash_key, hash_entry, matches };
 *   struct oatab t = OATAB_INIT;
 *   if (!oatab_get(&t, &ty, NULL, "ns/a"))
 *       oatab_put(&t, &ty, NULL, entry);
 *   ...
 *   oatab_release(&t);   (the entries stay the caller's)
 *
 * Slots are t.slots[0 .. t.cap), NULL when empty: iterate them directly. */
#ifndef PGTR_OATAB_H
#define PGTR_OATAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct oatab {
    void **slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
};

#define OATAB_INIT { NULL, 0, 0 }

/* How entries are keyed. hash_entry(e) must equal hash_key(k) when matches(e, k);
 * ctx is what the caller passes to every call (the array a position points into). */
struct oatab_type {
    uint64_t (*hash_key)(const void *key, void *ctx);
    uint64_t (*hash_entry)(const void *entry, void *ctx);
    bool (*matches)(const void *entry, const void *key, void *ctx);
};

/* The entry whose key is key, or NULL. */
void *oatab_get(const struct oatab *t, const struct oatab_type *ty, void *ctx, const void *key);
/* The slot holding key's entry, or the empty slot where it would go; t->cap must
 * be > 0. For replacing an entry in place: t->slots[i] = e (same key). */
size_t oatab_slot(const struct oatab *t, const struct oatab_type *ty, void *ctx, const void *key);
/* Adds entry (non-NULL; its key must not be in t), growing t first when needed. */
void oatab_put(struct oatab *t, const struct oatab_type *ty, void *ctx, void *entry);
/* Makes room for one more entry without moving later: after it, oatab_slot of a
 * new key and an assignment to that slot add it (count it with t->len++). */
void oatab_reserve(struct oatab *t, const struct oatab_type *ty, void *ctx);
/* Takes key's entry out and returns it (NULL: none). */
void *oatab_del(struct oatab *t, const struct oatab_type *ty, void *ctx, const void *key);
/* Takes out the entry in slot i (non-empty) and returns it. The entries after it
 * that probed past it shift back, so slot i may hold another entry afterwards: a
 * sweep that removes at i looks at i again. */
void *oatab_remove_at(struct oatab *t, const struct oatab_type *ty, void *ctx, size_t i);
/* Frees the slots (not the entries) and leaves t empty. */
void oatab_release(struct oatab *t);

#endif
