/* lib/base/proc: each value checked against a source that does not go through
 * /proc/self/stat (getrusage, descriptors this test opens and counts with
 * fcntl, mappings it makes, getrlimit, the time main started), with margins
 * that cover the kernel's rounding (clock ticks, per-thread counter caches)
 * and nothing else, so that a wrong field or unit fails and scheduling never
 * does. Single-threaded, so nothing else opens or maps anything meanwhile. */
#include "t.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/proc.h"

#define MIB (1024.0 * 1024.0)

static double started; /* wall clock when main began */

/* Under qemu-user, /proc/self/stat is made up by the emulator: CPU time and
 * memory read 0. The descriptors and limits are the host's, and still hold. */
static bool emulated(void)
{
    return getenv("PGTR_UNIT_EMULATED") != NULL;
}

static bool read_ok(struct proc_stats *ps)
{
    int rc = proc_stats_read(ps);

    if (rc < 0)
        t_fail(__FILE__, __LINE__, "proc_stats_read: %d %s", rc, err_msg());
    return rc == 0;
}

static double rusage_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void test_cpu_seconds(void)
{
    struct proc_stats ps;
    volatile unsigned long spin = 0;
    double before, after, begin = rusage_cpu();

    if (emulated())
        return;
    while (rusage_cpu() < begin + 0.3) /* burn 0.3 s of CPU */
        for (int i = 0; i < 1000000; i++)
            spin = spin + (unsigned long)i;
    before = rusage_cpu();
    if (!read_ok(&ps))
        return;
    after = rusage_cpu();
    /* The same counter, in whole clock ticks (two truncations of 1/CLK_TCK s). */
    if (!(ps.cpu_seconds >= before - 0.05 && ps.cpu_seconds <= after + 0.05))
        t_fail(__FILE__, __LINE__, "cpu %.3f s, getrusage %.3f..%.3f s", ps.cpu_seconds, before,
               after);
}

static void test_memory(void)
{
    struct proc_stats a, b, c;
    struct rusage ru;
    size_t big = 32u << 20, map = 256u << 20;
    char *p = NULL;
    void *m = MAP_FAILED;

    if (emulated() || !read_ok(&a))
        return;
    /* 32 MiB touched: resident */
    p = malloc(big);
    T_CHECK(p != NULL);
    if (!p)
        return;
    memset(p, 1, big);
    if (!read_ok(&b))
        goto out;
    if (b.resident_bytes - a.resident_bytes < 24 * MIB)
        t_fail(__FILE__, __LINE__, "rss grew %.1f MiB after touching 32 MiB",
               (b.resident_bytes - a.resident_bytes) / MIB);
    getrusage(RUSAGE_SELF, &ru); /* the peak (KiB) is at least the current size */
    if (b.resident_bytes > (double)ru.ru_maxrss * 1024 + MIB)
        t_fail(__FILE__, __LINE__, "rss %.1f MiB over the peak %.1f MiB", b.resident_bytes / MIB,
               (double)ru.ru_maxrss / 1024);
    /* 256 MiB mapped, not touched: virtual only */
    m = mmap(NULL, map, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    T_CHECK(m != MAP_FAILED);
    if (m == MAP_FAILED || !read_ok(&c))
        goto out;
    if (c.virtual_bytes - b.virtual_bytes < 255 * MIB ||
        c.virtual_bytes - b.virtual_bytes > 272 * MIB)
        t_fail(__FILE__, __LINE__, "vsize grew %.1f MiB after mapping 256 MiB",
               (c.virtual_bytes - b.virtual_bytes) / MIB);
    if (c.resident_bytes - b.resident_bytes > 8 * MIB)
        t_fail(__FILE__, __LINE__, "rss grew %.1f MiB for an untouched mapping",
               (c.resident_bytes - b.resident_bytes) / MIB);
    T_CHECK(c.virtual_bytes > c.resident_bytes);
out:
    if (m != MAP_FAILED)
        munmap(m, map);
    free(p);
}

/* Descriptors open now, by asking each number fcntl. */
static double fds_by_fcntl(void)
{
    double n = 0;

    for (int fd = 0; fd < 65536; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void test_fds(void)
{
    struct proc_stats a, b, c;
    struct rlimit rl, low;
    int fds[7];

    if (!read_ok(&a))
        return;
    if (!emulated())
        T_EQ_INT(a.open_fds, fds_by_fcntl());
    for (int i = 0; i < 7; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!read_ok(&b))
        return;
    T_EQ_INT(b.open_fds - a.open_fds, 7);
    if (!emulated())
        T_EQ_INT(b.open_fds, fds_by_fcntl());
    for (int i = 0; i < 7; i++)
        close(fds[i]);
    if (read_ok(&c))
        T_EQ_INT(c.open_fds, a.open_fds);

    /* the soft limit, as it moves */
    T_RC(getrlimit(RLIMIT_NOFILE, &rl), 0);
    T_CHECK(a.max_fds == (double)rl.rlim_cur);
    low = rl;
    low.rlim_cur = 200;
    if (rl.rlim_max >= 200 && setrlimit(RLIMIT_NOFILE, &low) == 0) {
        if (read_ok(&b))
            T_EQ_INT(b.max_fds, 200);
        T_RC(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
}

static void test_start_time(void)
{
    struct proc_stats ps;

    if (emulated() || !read_ok(&ps))
        return;
    /* Before main began (btime and the tick count both round down), and not
     * long before: nothing this binary does before main takes seconds. */
    if (!(ps.start_time <= started + 1 && ps.start_time >= started - 60))
        t_fail(__FILE__, __LINE__, "start time %.2f, main began at %.2f", ps.start_time,
               started);
}

/* The command name sits in the middle of /proc/self/stat in parentheses and
 * may hold both, and spaces: the fields after it still read right. */
static void test_odd_command_name(void)
{
    char name[17] = { 0 };
    struct proc_stats a, b;

    if (!read_ok(&a))
        return;
    T_RC(prctl(PR_GET_NAME, name), 0);
    T_RC(prctl(PR_SET_NAME, "x) 1 2 (3 ) y"), 0);
    if (read_ok(&b)) {
        T_EQ_INT(b.open_fds, a.open_fds);
        T_CHECK(b.start_time == a.start_time);
        T_CHECK(b.cpu_seconds >= a.cpu_seconds);
        T_CHECK(emulated() || b.virtual_bytes > 0);
    }
    T_RC(prctl(PR_SET_NAME, name), 0);
}

int main(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    started = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    T_RUN(test_cpu_seconds);
    T_RUN(test_memory);
    T_RUN(test_fds);
    T_RUN(test_start_time);
    T_RUN(test_odd_command_name);
    return t_done();
}
