/* daemon_stats.c — process-wide figures for /metrics: jobs by state,
 * open descriptors, threads, and the I/O thread's CPU time. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "daemon_stats.h"
#include "ioloop.h"
#include "jobs.h"
#include "volume-int.h"

/* Entries of a /proc directory, not counting . and ..; -1 on error. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

void vd_volmgr_daemon_stats(struct vd_volmgr *mgr, struct vd_daemon_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (mgr->jobs != NULL) {
        vd_jobs_count(mgr->jobs, out->jobs, 3);
    }
    out->open_fds = count_entries("/proc/self/fd");
    if (out->open_fds > 0) {
        out->open_fds--; /* the one opendir holds while counting */
    }
    out->threads = count_entries("/proc/self/task");
    out->have_io_cpu = mgr->ioloop != NULL &&
                       vd_ioloop_cpu_ns(mgr->ioloop, &out->io_cpu_ns) == 0;
}
