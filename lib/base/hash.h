/* FNV-1a, 64 bits: the one string hash of the project (hash tables, jitter seeds).
 * Not for anything an attacker could exploit by choosing keys: the tables that
 * use it hold what the API server lists, whose names Kubernetes already caps. */
#ifndef PGTR_HASH_H
#define PGTR_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_INIT UINT64_C(0xcbf29ce484222325)
#define FNV1A_PRIME UINT64_C(0x100000001b3)

/* h extended by the n bytes at p. */
static inline uint64_t fnv1a_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV1A_PRIME;
    return h;
}

/* h extended by the bytes of s up to its NUL (none when s is NULL). */
static inline uint64_t fnv1a_str(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * FNV1A_PRIME;
    return h;
}

/* Folds the high bits into the low ones, for tables indexed by the low bits. */
static inline uint64_t hash_fold(uint64_t h)
{
    return h ^ (h >> 29);
}

#endif
