#include "base/slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/banned.h"

#if SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Slot sizes: 128, then eight steps per doubling (an eighth of the lower power of
 * two each), so no object is rounded up by more than an eighth of its size. The
 * steps are fine because one kind of object fills a slab, its sizes close together:
 * coarser classes would waste more in rounding than they save in partly used chunks. */
static const uint16_t class_size[SLAB_NCLASSES] = {
    128,  144,  160,  176,  192,  208,  224,  240,  256,  288,  320,  352,  384,  416,
    448,  480,  512,  576,  640,  704,  768,  832,  896,  960,  1024, 1152, 1280, 1408,
    1536, 1664, 1792, 1920, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
};

/* A freed slot: the start of it links to the next one. */
struct free_slot {
    struct free_slot *next;
};

/* At the start of every chunk, which is SLAB_CHUNK-aligned: a slot's chunk is its
 * address rounded down. The slots follow, from HDR on. */
struct slab_chunk {
    struct slab_chunk *prev, *next; /* in sl->avail[cls] while the chunk has room */
    struct free_slot *free;         /* freed slots */
    uint32_t used;                  /* slots handed out */
    uint32_t carved;                /* slots ever handed out: the rest are untouched pages */
    uint32_t nslots;
    uint16_t cls;
    bool listed;                    /* in sl->avail[cls] */
};

#define HDR 64 /* bytes before the first slot: the header, rounded to keep slots aligned */
_Static_assert(sizeof(struct slab_chunk) <= HDR, "the chunk header fits before the slots");
_Static_assert(HDR % 16 == 0, "slots are 16-byte aligned");
_Static_assert((SLAB_CHUNK & (SLAB_CHUNK - 1)) == 0, "chunks are a power of two");

/* The class of size (at most SLAB_MAX). */
static unsigned class_of(size_t size)
{
    unsigned c = 0;

    while (class_size[c] < size)
        c++;
    return c;
}

size_t slab_class_size(size_t size)
{
    if (size > SLAB_MAX)
        return 0;
    return class_size[class_of(size ? size : 1)];
}

static char *slot_at(struct slab_chunk *c, uint32_t i)
{
    return (char *)c + HDR + (size_t)i * class_size[c->cls];
}

static void link_avail(struct slab *sl, struct slab_chunk *c)
{
    c->prev = NULL;
    c->next = sl->avail[c->cls];
    if (c->next)
        c->next->prev = c;
    sl->avail[c->cls] = c;
    c->listed = true;
}

static void unlink_avail(struct slab *sl, struct slab_chunk *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        sl->avail[c->cls] = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->listed = false;
}

/* SLAB_CHUNK bytes, SLAB_CHUNK-aligned, or NULL. Mappings are placed downwards, so
 * the space just below the last chunk is usually free: asked for first, it comes
 * aligned in one call and joins the last chunk's mapping. Else twice the size is
 * mapped and the ends that are not needed unmapped. */
static char *map_chunk(struct slab *sl)
{
    const int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS;
    char *raw;
    size_t lead;

    if (sl->below) {
        raw = mmap(sl->below, SLAB_CHUNK, prot, flags, -1, 0);
        if (raw != MAP_FAILED && (uintptr_t)raw % SLAB_CHUNK == 0)
            return raw;
        if (raw != MAP_FAILED)
            munmap(raw, SLAB_CHUNK);
    }
    raw = mmap(NULL, 2 * (size_t)SLAB_CHUNK, prot, flags, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    lead = (SLAB_CHUNK - (uintptr_t)raw % SLAB_CHUNK) % SLAB_CHUNK;
    if (lead)
        munmap(raw, lead);
    munmap(raw + lead + SLAB_CHUNK, SLAB_CHUNK - lead);
    return raw + lead;
}

/* A new chunk for class cls, listed as available. Only its header's page is
 * touched: the slots' pages are faulted in as they are carved. */
static struct slab_chunk *chunk_new(struct slab *sl, unsigned cls)
{
    char *mem = map_chunk(sl);
    struct slab_chunk *c;

    if (!mem) {
        log_error("out_of_memory", LOG_I64("bytes", SLAB_CHUNK));
        abort(); /* as xmalloc */
    }
    /* Neighbouring chunks share one mapping, which a huge page could then back
     * whole, carved or not: only the pages in use should count. */
    (void)madvise(mem, SLAB_CHUNK, MADV_NOHUGEPAGE);
    sl->below = (uintptr_t)mem > SLAB_CHUNK ? mem - SLAB_CHUNK : NULL;
    c = (struct slab_chunk *)(void *)mem;
    memset(c, 0, sizeof(*c));
    c->cls = (uint16_t)cls;
    c->nslots = (SLAB_CHUNK - HDR) / class_size[cls];
    POISON(mem + HDR, SLAB_CHUNK - HDR);
    link_avail(sl, c);
    sl->chunks++;
    return c;
}

static void chunk_unmap(struct slab *sl, struct slab_chunk *c)
{
    if (c->listed)
        unlink_avail(sl, c);
    UNPOISON(c, SLAB_CHUNK); /* the next mapping here starts clean */
    munmap(c, SLAB_CHUNK);
    sl->chunks--;
}

void *slab_alloc(struct slab *sl, size_t size)
{
    struct slab_chunk *c;
    unsigned cls;
    char *p;

    if (!size)
        size = 1;
    if (!sl->paged || size > SLAB_MAX)
        return xmalloc(size);
    cls = class_of(size);
    pthread_mutex_lock(&sl->mu);
    if (!(c = sl->avail[cls]))
        c = chunk_new(sl, cls);
    if (c->free) {
        p = (char *)c->free;
        UNPOISON(p, sizeof(struct free_slot));
        c->free = c->free->next;
        POISON(p, sizeof(struct free_slot));
    } else {
        p = slot_at(c, c->carved++);
    }
    if (++c->used == c->nslots)
        unlink_avail(sl, c);
    sl->objects++;
    sl->slot_bytes += class_size[cls];
    UNPOISON(p, size); /* the rest of the slot stays poisoned: an overflow is caught */
    pthread_mutex_unlock(&sl->mu);
    return p;
}

/* Another class's size, or not a slot: memory is not what we think, so stop. */
_Noreturn static void bad_free(size_t size)
{
    log_error("slab_free_bad_pointer", LOG_I64("size", size));
    abort();
}

void slab_free(struct slab *sl, void *p, size_t size)
{
    struct slab_chunk *c;
    size_t off, slot;

    if (!p)
        return;
    if (!size)
        size = 1;
    if (!sl->paged || size > SLAB_MAX) {
        /* Wiped for the same reason as a slot; under ASan this also checks that size
         * is within the object. */
        explicit_bzero(p, size);
        free(p);
        return;
    }
    off = (uintptr_t)p % SLAB_CHUNK; /* chunks are aligned: the header is at p - off */
    c = (struct slab_chunk *)(void *)((char *)p - off);
    if (c->cls != class_of(size) || off < HDR)
        bad_free(size);
    slot = class_size[c->cls];
    if ((off - HDR) % slot)
        bad_free(size);
    UNPOISON(p, slot);
    explicit_bzero(p, slot); /* the slot is still the caller's: no lock needed */
    pthread_mutex_lock(&sl->mu);
    if ((off - HDR) / slot >= c->carved || !c->used)
        bad_free(size);
    ((struct free_slot *)p)->next = c->free;
    c->free = p;
    POISON(p, slot);
    sl->objects--;
    sl->slot_bytes -= slot;
    if (--c->used == 0)
        chunk_unmap(sl, c); /* nothing left in it: give the pages back now */
    else if (!c->listed)
        link_avail(sl, c); /* first room in a full chunk: filled again before others */
    pthread_mutex_unlock(&sl->mu);
}

void slab_stats(struct slab_stats *out, struct slab *sl)
{
    pthread_mutex_lock(&sl->mu);
    out->chunks = sl->chunks;
    out->objects = sl->objects;
    out->slot_bytes = sl->slot_bytes;
    pthread_mutex_unlock(&sl->mu);
}
