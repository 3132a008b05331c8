/* This process's resource use, as the Prometheus client libraries' process
 * collector reports it (Linux): CPU time, memory, file descriptors, start
 * time. Read from /proc/self/stat, /proc/self/fd, getrlimit(RLIMIT_NOFILE)
 * and the btime line of /proc/stat each time it is asked, so nothing is kept.
 *
 *   struct proc_stats ps;
 *   if (proc_stats_read(&ps) == 0)
 *       ... ps.cpu_seconds, ps.resident_bytes ...
 */
#ifndef PGTR_PROC_H
#define PGTR_PROC_H

#include <stdint.h>

struct proc_stats {
    double cpu_seconds;      /* user + system CPU time of every thread (clock ticks) */
    double resident_bytes;   /* resident set size */
    double virtual_bytes;    /* virtual memory size */
    double open_fds;         /* open file descriptors (not counting the one reading them) */
    double max_fds;          /* RLIMIT_NOFILE soft limit (RLIM_INFINITY as it is, ~1.8e19) */
    double start_time;       /* when the process started, Unix seconds (tick resolution) */
};

/* Fills *out. 0, or ERR_IO (a file could not be read: not Linux, no /proc)
 * or ERR_PARSE (a file did not read as documented in proc(5)); *out is then
 * unchanged. Thread-safe; opens and closes two files and a directory. */
int proc_stats_read(struct proc_stats *out);

#endif
