#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/slab.h"

#define PAGE 4096u

/* 128, then eight steps per doubling. */
static size_t classes[SLAB_NCLASSES];

static void make_classes(void)
{
    size_t k = 0;

    classes[k++] = 128;
    for (size_t pow = 128; pow < SLAB_MAX; pow *= 2)
        for (size_t step = 1; step <= 8; step++)
            classes[k++] = pow + step * pow / 8;
}

static size_t slots_per_chunk(size_t cls)
{
    return (SLAB_CHUNK - 64) / cls;
}

static void *chunk_of(const void *p)
{
    return (void *)((uintptr_t)p & ~(uintptr_t)(SLAB_CHUNK - 1));
}

/* Fills an object so that check() finds any other object written over it. */
static void fill(unsigned char *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)(seed * 31 + i);
}

static bool intact(const unsigned char *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        if (p[i] != (unsigned char)(seed * 31 + i))
            return false;
    return true;
}

/* Whether the page at p is mapped (mincore fails with ENOMEM when it is not). */
static bool mapped(const void *p)
{
    unsigned char vec;

    return mincore(chunk_of(p), PAGE, &vec) == 0 || errno != ENOMEM;
}

static struct slab_stats stats(struct slab *sl)
{
    struct slab_stats st;

    slab_stats(&st, sl);
    return st;
}

/* Every size maps to the smallest class that holds it, at most a quarter more. */
static void test_class_sizes(void)
{
    size_t c = 0;

    T_EQ_INT(classes[SLAB_NCLASSES - 1], SLAB_MAX);
    T_EQ_INT(slab_class_size(0), 128);
    for (size_t size = 1; size <= SLAB_MAX; size++) {
        size_t got = slab_class_size(size);
        while (classes[c] < size)
            c++;
        if (got != classes[c]) {
            T_EQ_INT(got, classes[c]);
            break;
        }
        T_CHECK(size < 128 || got * 8 <= size * 9);
        T_CHECK(got % 16 == 0);
    }
    T_EQ_INT(slab_class_size(SLAB_MAX + 1), 0);
    T_EQ_INT(slab_class_size(1u << 20), 0);
}

/* Each class: a chunk and a half of objects, aligned, not overlapping, one chunk
 * per slots_per_chunk, all unmapped when freed. */
static void test_every_class(void)
{
    for (size_t k = 0; k < SLAB_NCLASSES; k++) {
        struct slab sl = SLAB_INIT_PAGED;
        size_t cls = classes[k], n = slots_per_chunk(cls) * 3 / 2, size = cls - (k % 3) * 5;
        unsigned char **p = calloc(n, sizeof(*p));
        bool ok = true;

        for (size_t i = 0; i < n; i++) {
            p[i] = slab_alloc(&sl, size);
            fill(p[i], size, (unsigned)i);
            ok &= (uintptr_t)p[i] % 16 == 0;
        }
        T_CHECK(ok);
        T_EQ_INT(stats(&sl).chunks, 2);
        T_EQ_INT(stats(&sl).objects, n);
        T_EQ_INT(stats(&sl).slot_bytes, n * cls);
        for (size_t i = 0; i < n; i++)
            ok &= intact(p[i], size, (unsigned)i);
        T_CHECK(ok);
        T_CHECK(chunk_of(p[0]) != chunk_of(p[n - 1]));
        for (size_t i = 0; i < n; i++)
            slab_free(&sl, p[i], size);
        T_EQ_INT(stats(&sl).chunks, 0);
        T_EQ_INT(stats(&sl).objects, 0);
        T_EQ_INT(stats(&sl).slot_bytes, 0);
        T_CHECK(!mapped(p[0]));
        free(p);
        if (!ok)
            break;
    }
}

/* A freed slot is the next one handed out in its class, wiped; another class does
 * not get it; a size of the same class frees it. */
static void test_reuse_and_wipe(void)
{
    struct slab sl = SLAB_INIT_PAGED;
    unsigned char *keep = slab_alloc(&sl, 300), *a = slab_alloc(&sl, 300), *b, *c;
    bool zero = true;

    memset(a, 0xAA, 300);
    slab_free(&sl, a, 310); /* same class (320) */
    c = slab_alloc(&sl, 200);
    T_CHECK(chunk_of(c) != chunk_of(keep)); /* its own class, its own chunk */
    b = slab_alloc(&sl, 320);
    T_CHECK(b == a);
    for (size_t i = 0; i < 320; i++) /* the free list's link was NULL: all zero */
        zero &= b[i] == 0;
    T_CHECK(zero);
    T_EQ_INT(stats(&sl).chunks, 2);
    slab_free(&sl, c, 200);
    T_EQ_INT(stats(&sl).chunks, 1);
    slab_free(&sl, b, 320);
    slab_free(&sl, keep, 300);
    slab_free(&sl, NULL, 300);
    T_EQ_INT(stats(&sl).chunks, 0);
}

/* Pages are only touched when carved; a chunk goes back when its last object is
 * freed, whatever the order, and not before. */
static void test_page_return(void)
{
    struct slab sl = SLAB_INIT_PAGED;
    enum { SIZE = 256 };
    size_t per = slots_per_chunk(SIZE), n = per * 3;
    unsigned char **p = calloc(n, sizeof(*p)), vec[SLAB_CHUNK / PAGE];
    size_t resident = 0;

    p[0] = slab_alloc(&sl, SIZE);
    T_RC(mincore(chunk_of(p[0]), SLAB_CHUNK, vec), 0);
    for (size_t i = 0; i < sizeof(vec); i++)
        resident += vec[i] & 1;
    T_CHECK(resident <= 2); /* the header's page (and one ASan may have read ahead) */
    for (size_t i = 1; i < n; i++)
        p[i] = slab_alloc(&sl, SIZE);
    T_EQ_INT(stats(&sl).chunks, 3);
    /* Everything but the last object of each chunk: nothing goes back. */
    for (size_t i = 0; i < n; i++)
        if (i % per != per - 1) {
            slab_free(&sl, p[i], SIZE);
            p[i] = NULL;
        }
    T_EQ_INT(stats(&sl).chunks, 3);
    T_EQ_INT(stats(&sl).objects, 3);
    /* The second chunk's last: it goes, the others stay. */
    slab_free(&sl, p[2 * per - 1], SIZE);
    T_EQ_INT(stats(&sl).chunks, 2);
    T_CHECK(!mapped(p[2 * per - 1]));
    T_CHECK(mapped(p[per - 1]));
    p[2 * per - 1] = NULL;
    /* New objects fill the chunks still there before a new one is mapped. */
    for (size_t i = 0, refilled = 0; i < n && refilled < 2 * (per - 1); i++)
        if (!p[i]) {
            p[i] = slab_alloc(&sl, SIZE);
            refilled++;
        }
    T_EQ_INT(stats(&sl).chunks, 2);
    T_EQ_INT(stats(&sl).objects, 2 * per);
    for (size_t i = 0; i < n; i++)
        if (!p[i]) {
            p[i] = slab_alloc(&sl, SIZE);
            break;
        }
    T_EQ_INT(stats(&sl).chunks, 3);
    for (size_t i = 0; i < n; i++)
        slab_free(&sl, p[i], SIZE);
    T_EQ_INT(stats(&sl).chunks, 0);
    T_EQ_INT(stats(&sl).objects, 0);
    free(p);
}

/* Random allocations and frees of every size, up to past SLAB_MAX, against a record
 * of what each object holds. */
static void test_random_patterns(void)
{
    enum { LIVE = 3000, OPS = 60000 };
    struct slab sl = SLAB_INIT_PAGED;
    unsigned char **p = calloc(LIVE, sizeof(*p));
    size_t *size = calloc(LIVE, sizeof(*size)), small = 0;
    unsigned seed = 12345;
    bool ok = true;

    for (unsigned op = 0; op < OPS; op++) {
        size_t i;
        seed = seed * 1103515245u + 12345u;
        i = (seed >> 8) % LIVE;
        if (p[i]) {
            ok &= intact(p[i], size[i], (unsigned)i);
            slab_free(&sl, p[i], size[i]);
            p[i] = NULL;
            small -= size[i] <= SLAB_MAX;
        } else {
            size[i] = 1 + (seed >> 4) % (SLAB_MAX + 600); /* some from malloc */
            p[i] = slab_alloc(&sl, size[i]);
            fill(p[i], size[i], (unsigned)i);
            small += size[i] <= SLAB_MAX;
        }
    }
    T_CHECK(ok);
    T_EQ_INT(stats(&sl).objects, small);
    for (size_t i = 0; i < LIVE; i++) {
        if (p[i])
            ok &= intact(p[i], size[i], (unsigned)i);
        slab_free(&sl, p[i], size[i]);
    }
    T_CHECK(ok);
    T_EQ_INT(stats(&sl).chunks, 0);
    T_EQ_INT(stats(&sl).objects, 0);
    free(size);
    free(p);
}

/* Larger than SLAB_MAX: from malloc, never in a chunk. */
static void test_large_fallback(void)
{
    struct slab sl = SLAB_INIT_PAGED;
    unsigned char *p = slab_alloc(&sl, SLAB_MAX + 1), *q = slab_alloc(&sl, 1u << 20);

    fill(p, SLAB_MAX + 1, 1);
    fill(q, 1u << 20, 2);
    T_EQ_INT(stats(&sl).chunks, 0);
    T_EQ_INT(stats(&sl).objects, 0);
    T_CHECK(intact(p, SLAB_MAX + 1, 1) && intact(q, 1u << 20, 2));
    slab_free(&sl, p, SLAB_MAX + 1);
    slab_free(&sl, q, 1u << 20);
}

/* SLAB_INIT: pages, except under ASan, where everything comes from malloc (so ASan
 * sees the objects' leaks and uses after free). */
static void test_default_slab(void)
{
    struct slab sl = SLAB_INIT;
    unsigned char *p = slab_alloc(&sl, 200);

    fill(p, 200, 3);
    T_EQ_INT(stats(&sl).objects, SLAB_ASAN ? 0 : 1);
    T_EQ_INT(stats(&sl).chunks, SLAB_ASAN ? 0 : 1);
    T_CHECK(intact(p, 200, 3));
    slab_free(&sl, p, 200);
    T_EQ_INT(stats(&sl).chunks, 0);
}

/* The wait status of a child process that runs fn(arg) with stderr (the report it
 * is expected to print) sent to /dev/null, then exits 0. */
static int in_child(void (*fn)(int), int arg)
{
    pid_t pid = fork();
    int st = -1;

    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        fn(arg);
        _exit(0);
    }
    T_CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    return st;
}

static void bad_free(int how)
{
    struct slab sl = SLAB_INIT_PAGED;
    char *p = slab_alloc(&sl, 300);

    if (how == 0)
        slab_free(&sl, p, 100); /* another class */
    else
        slab_free(&sl, p + 16, 300); /* inside the slot */
}

/* Freeing with another class's size, or a pointer into the middle of a slot, stops
 * the process. */
static void test_bad_free_aborts(void)
{
    for (int how = 0; how < 2; how++) {
        int st = in_child(bad_free, how);
        T_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    }
}

#if SLAB_ASAN
static void misuse(int how)
{
    struct slab sl = SLAB_INIT_PAGED;
    char *keep = slab_alloc(&sl, 100), *p = slab_alloc(&sl, 100);
    volatile char c = keep[0] = p[0] = 0;

    if (how == 0) {
        slab_free(&sl, p, 100);
        c = p[5];
    } else if (how == 1) {
        c = p[100]; /* in the 128-byte slot, past the 100 bytes */
    } else {
        c = p[99]; /* fine */
    }
    (void)c;
}

/* Under ASan, a paged slab's free slots and each slot's tail past its object are
 * poisoned: a read after free, or past the size asked for, stops the process. */
static void test_asan_sees_misuse(void)
{
    for (int how = 0; how < 3; how++) {
        int st = in_child(misuse, how);
        if (how == 2)
            T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        else
            T_CHECK(!WIFEXITED(st) || WEXITSTATUS(st) != 0);
    }
}
#endif

/* Threads allocating, checking and freeing at once, and handing objects to each
 * other to free (as the watch thread's Secrets are freed by workers). */
enum { THREADS = 4, THREAD_OPS = 20000, MAILBOXES = 64, OWN = 256 };

struct shared {
    struct slab sl;
    pthread_mutex_t mu;
    unsigned char *box[MAILBOXES];
    size_t box_size[MAILBOXES];
    int bad;
};

static size_t size_for(unsigned r)
{
    return 1 + r % 1200;
}

/* The seed of an object is its size: any thread can check it. */
static void *stress(void *arg)
{
    struct shared *sh = arg;
    unsigned char *own[OWN] = { NULL };
    size_t own_size[OWN] = { 0 };
    unsigned seed = (unsigned)(uintptr_t)&own;

    for (int op = 0; op < THREAD_OPS; op++) {
        unsigned r;
        size_t i, size;
        unsigned char *p;
        seed = seed * 1103515245u + 12345u;
        r = seed >> 4;
        i = r % OWN;
        if (own[i]) {
            if (!intact(own[i], own_size[i], (unsigned)own_size[i]))
                __atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
            slab_free(&sh->sl, own[i], own_size[i]);
            own[i] = NULL;
            continue;
        }
        size = size_for(r >> 8);
        p = slab_alloc(&sh->sl, size);
        fill(p, size, (unsigned)size);
        if (r & 1) {
            own[i] = p;
            own_size[i] = size;
            continue;
        }
        /* Swap it into a mailbox; free whatever another thread left there. */
        pthread_mutex_lock(&sh->mu);
        i = (r >> 1) % MAILBOXES;
        unsigned char *other = sh->box[i];
        size_t other_size = sh->box_size[i];
        sh->box[i] = p;
        sh->box_size[i] = size;
        pthread_mutex_unlock(&sh->mu);
        if (other) {
            if (!intact(other, other_size, (unsigned)other_size))
                __atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
            slab_free(&sh->sl, other, other_size);
        }
    }
    for (size_t i = 0; i < OWN; i++)
        slab_free(&sh->sl, own[i], own_size[i]);
    return NULL;
}

static void test_threads(void)
{
    struct shared sh = { .sl = SLAB_INIT_PAGED, .mu = PTHREAD_MUTEX_INITIALIZER };
    pthread_t th[THREADS];

    for (int i = 0; i < THREADS; i++)
        T_RC(pthread_create(&th[i], NULL, stress, &sh), 0);
    for (int i = 0; i < THREADS; i++)
        T_RC(pthread_join(th[i], NULL), 0);
    T_EQ_INT(sh.bad, 0);
    for (size_t i = 0; i < MAILBOXES; i++) {
        if (sh.box[i])
            T_CHECK(intact(sh.box[i], sh.box_size[i], (unsigned)sh.box_size[i]));
        slab_free(&sh.sl, sh.box[i], sh.box_size[i]);
    }
    T_EQ_INT(stats(&sh.sl).objects, 0);
    T_EQ_INT(stats(&sh.sl).chunks, 0);
}

int main(void)
{
    make_classes();
    T_RUN(test_class_sizes);
    T_RUN(test_every_class);
    T_RUN(test_reuse_and_wipe);
    T_RUN(test_page_return);
    T_RUN(test_random_patterns);
    T_RUN(test_large_fallback);
    T_RUN(test_default_slab);
    T_RUN(test_bad_free_aborts);
#if SLAB_ASAN
    T_RUN(test_asan_sees_misuse);
#endif
    T_RUN(test_threads);
    return t_done();
}
