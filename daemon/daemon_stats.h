/* daemon_stats.h — process-wide figures the API shows in /metrics. */
#ifndef VD_DAEMON_STATS_H
#define VD_DAEMON_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct vd_volmgr;

/* The daemon as /metrics shows it. */
struct vd_daemon_stats {
    uint64_t jobs[3];   /* by enum vd_job_state: running, succeeded, failed */
    int open_fds;       /* -1 if unknown */
    int threads;        /* -1 if unknown */
    bool have_io_cpu;   /* an I/O thread runs */
    uint64_t io_cpu_ns; /* its CPU time */
};
void vd_volmgr_daemon_stats(struct vd_volmgr *mgr, struct vd_daemon_stats *out);

#endif
