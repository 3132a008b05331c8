#include "base/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/err.h"
#include "base/banned.h"

/* /proc/self/stat is one line of a few hundred bytes; the command name in it
 * is at most 16. */
#define STAT_MAX 4096

/* Reads all of a small file into out (NUL-terminated). */
static int read_small(char *out, size_t max, const char *path)
{
    size_t len = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return err_set(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    while (len < max - 1 && (n = read(fd, out + len, max - 1 - len)) != 0) {
        if (n < 0 && errno != EINTR) {
            rc = err_set(ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n > 0)
            len += (size_t)n;
    }
    close(fd);
    out[len] = '\0';
    if (rc == 0 && len == max - 1)
        rc = err_set(ERR_PARSE, "%s is longer than %zu bytes", path, max - 1);
    return rc;
}

/* Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize) and 24 (rss, pages)
 * of /proc/self/stat. Field 2, the command name, is in parentheses and may hold
 * spaces and parentheses of its own, so the count starts after the last ')'. */
static int parse_stat(unsigned long long f[25], const char *text)
{
    const char *p = strrchr(text, ')');
    int i;

    if (!p)
        return err_set(ERR_PARSE, "/proc/self/stat has no command name");
    p++;
    for (i = 3; i <= 24; i++) {
        char *end;
        while (*p == ' ')
            p++;
        if (i == 3) { /* the state: one letter */
            if (!*p || *p == ' ')
                break;
            p++;
            continue;
        }
        errno = 0;
        f[i] = strtoull(p, &end, 10);
        if (end == p || errno || (*end != ' ' && *end != '\n' && *end != '\0'))
            break;
        p = end;
    }
    if (i <= 24)
        return err_set(ERR_PARSE, "/proc/self/stat: field %d is not a number", i);
    return 0;
}

/* The btime line of /proc/stat (boot time, Unix seconds). The file is read a
 * piece at a time: the interrupt counts before it can be long on big machines,
 * and only the first bytes of each line matter. */
static int boot_time(double *out)
{
    char chunk[4096], line[32];
    size_t ll = 0;
    bool fits = true;
    ssize_t n;
    int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC), rc = ERR_PARSE;

    if (fd < 0)
        return err_set(ERR_IO, "cannot open /proc/stat: %s", strerror(errno));
    while (rc == ERR_PARSE && (n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return err_set(ERR_IO, "cannot read /proc/stat: %s", strerror(errno));
        }
        for (ssize_t i = 0; i < n && rc == ERR_PARSE; i++) {
            if (chunk[i] != '\n') {
                if (ll < sizeof(line) - 1)
                    line[ll++] = chunk[i];
                else
                    fits = false;
                continue;
            }
            line[ll] = '\0';
            if (fits && !strncmp(line, "btime ", 6)) {
                char *end;
                unsigned long long t;
                errno = 0;
                t = strtoull(line + 6, &end, 10);
                if (end == line + 6 || errno || *end)
                    break;
                *out = (double)t;
                rc = 0;
            }
            ll = 0;
            fits = true;
        }
    }
    close(fd);
    return rc == 0 ? 0 : err_set(ERR_PARSE, "/proc/stat has no btime line");
}

/* Entries of /proc/self/fd, less the directory's own descriptor. */
static int count_fds(double *out)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char self[16];
    double n = 0;

    if (!d)
        return err_set(ERR_IO, "cannot open /proc/self/fd: %s", strerror(errno));
    snprintf(self, sizeof(self), "%d", dirfd(d));
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, self))
            n++;
    closedir(d);
    *out = n;
    return 0;
}

int proc_stats_read(struct proc_stats *out)
{
    char text[STAT_MAX];
    unsigned long long f[25] = { 0 };
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct proc_stats ps;
    struct rlimit rl;
    double btime = 0;
    int rc;

    if (tick <= 0 || page <= 0)
        return err_set(ERR_IO, "sysconf: no clock tick or page size");
    if ((rc = read_small(text, sizeof(text), "/proc/self/stat")) < 0 ||
        (rc = parse_stat(f, text)) < 0 || (rc = boot_time(&btime)) < 0 ||
        (rc = count_fds(&ps.open_fds)) < 0)
        return rc;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return err_set(ERR_IO, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    ps.cpu_seconds = (double)(f[14] + f[15]) / (double)tick;
    ps.start_time = btime + (double)f[22] / (double)tick;
    ps.virtual_bytes = (double)f[23];
    ps.resident_bytes = (double)f[24] * (double)page;
    ps.max_fds = (double)rl.rlim_cur;
    *out = ps;
    return 0;
}
