/* A hash map from strings to pointers (chained, power-of-two buckets).
 * Not thread-safe: callers hold their own lock. Keys are copied; values are
 * owned by the caller, who frees them (strmap_clear takes a free function). */
#ifndef PGTR_STRMAP_H
#define PGTR_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap_entry {
    char *key;
    void *value;
    struct strmap_entry *next;
};

struct strmap {
    struct strmap_entry **buckets;
    size_t nbuckets;
    size_t len;
};

#define STRMAP_INIT { NULL, 0, 0 }

/* The value for key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
bool strmap_has(const struct strmap *m, const char *key);
/* Sets key to value; returns the previous value (NULL if none). */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* Removes key; returns its value (NULL if none). */
void *strmap_del(struct strmap *m, const char *key);
/* Removes everything, calling free_value on each value when not NULL. */
void strmap_clear(struct strmap *m, void (*free_value)(void *));

/* Iteration: for (it = strmap_first(m); it; it = strmap_next(m, it)).
 * The map must not change during it. */
struct strmap_entry *strmap_first(const struct strmap *m);
struct strmap_entry *strmap_next(const struct strmap *m, const struct strmap_entry *e);

#endif
