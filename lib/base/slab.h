/* A size-class slab: small long-lived objects on pages of their own, away from the
 * malloc heap, so that short-lived garbage allocated among them cannot pin their
 * pages (and they cannot pin the garbage's).
 *
 * Objects of at most SLAB_MAX bytes are rounded up to one of SLAB_NCLASSES classes
 * (128 bytes, then eight steps per doubling up to 4 KiB: at most 12.5 % rounding)
 * and carved from SLAB_CHUNK-byte chunks mmap'd for one class each, a page being
 * touched only when a slot on it is first handed out. Freed slots go on their
 * chunk's free list and are handed out again first. A chunk whose objects are all
 * freed is unmapped at once, so a mass delete gives its memory back. Larger objects
 * come from malloc. Objects are aligned to 16 bytes.
 *
 * The caller says the size on free (as it did on alloc): the slab keeps no header
 * per object. Freed memory is wiped (explicit_bzero) before it is reused.
 *
 * Under AddressSanitizer a slab made with SLAB_INIT uses malloc for everything, so
 * that ASan still sees every use after free, overflow and leak of its objects; a
 * slab made with SLAB_INIT_PAGED uses its pages even then (for the slab's own
 * tests), with its free slots and each slot's tail past the object poisoned.
 *
 *   static struct slab secrets = SLAB_INIT;
 *   struct kube_secret *s = slab_alloc(&secrets, size);
 *   ...
 *   slab_free(&secrets, s, size);
 *
 * Thread-safe: one mutex per slab, held for a few pointer moves (and the rare
 * mmap or munmap). A slab is never torn down: once its objects are all freed it
 * holds no memory, and its mutex is statically initialised. */
#ifndef PGTR_SLAB_H
#define PGTR_SLAB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define SLAB_MAX 4096            /* bytes: larger objects come from malloc */
#define SLAB_NCLASSES 41         /* 128, 144, ... 256, 288, ... 512, 576, ... 4096 */
#define SLAB_CHUNK (64u << 10)   /* bytes mapped at a time, for one class */

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifndef SLAB_ASAN
#define SLAB_ASAN 0
#endif

struct slab_chunk;

/* The fields are private to slab.c. */
struct slab {
    pthread_mutex_t mu;
    bool paged;                                /* false: everything from malloc */
    struct slab_chunk *avail[SLAB_NCLASSES];   /* per class: chunks with a free slot */
    char *below;                               /* where to ask for the next chunk */
    size_t chunks;                             /* mapped */
    size_t objects;                            /* in chunks */
    size_t slot_bytes;                         /* their slots' bytes */
};

#define SLAB_INIT { PTHREAD_MUTEX_INITIALIZER, !SLAB_ASAN, { NULL }, NULL, 0, 0, 0 }
#define SLAB_INIT_PAGED { PTHREAD_MUTEX_INITIALIZER, true, { NULL }, NULL, 0, 0, 0 }

/* size bytes (0 is taken as 1), uninitialised, 16-byte aligned. Never NULL: out of
 * memory (malloc or mmap failing) aborts, as xmalloc does. */
void *slab_alloc(struct slab *sl, size_t size);
/* Frees p (NULL: nothing), which slab_alloc(sl, size) returned: size must be the
 * same, or at least of the same class (slab_class_size). Wipes the object. A size
 * that names another class, or a pointer that is not a slot, aborts. */
void slab_free(struct slab *sl, void *p, size_t size);

/* The bytes an object of size takes in a slab: its class's slot size; 0 above
 * SLAB_MAX (malloc's). */
size_t slab_class_size(size_t size);

struct slab_stats {
    size_t chunks;     /* chunks mapped (SLAB_CHUNK bytes of address space each) */
    size_t objects;    /* objects held in them (not counting those from malloc) */
    size_t slot_bytes; /* the bytes of those objects' slots */
};

/* A snapshot of what sl holds in its pages. */
void slab_stats(struct slab_stats *out, struct slab *sl);

#endif
