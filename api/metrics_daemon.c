/* metrics_daemon.c — the daemon's own families of /metrics: jobs by
 * state, open descriptors, threads, the I/O thread's CPU time, and the
 * API's request counters (reqstats.c). */
#include <inttypes.h>
#include <stdio.h>

#include "daemon_stats.h"
#include "metrics_fmt.h"
#include "reqstats.h"

void api_metrics_daemon(FILE *f, struct vd_volmgr *mgr)
{
    static const char *const job_states[] = {"running", "succeeded", "failed"};
    struct vd_daemon_stats ds;

    vd_volmgr_daemon_stats(mgr, &ds);
    api_metrics_family(f, "vdiskd_jobs", "gauge",
                       "Jobs the daemon keeps (GET /jobs/{id} shows them), by "
                       "state.");
    for (size_t s = 0; s < sizeof(job_states) / sizeof(job_states[0]); s++) {
        fprintf(f, "vdiskd_jobs{state=\"%s\"} %" PRIu64 "\n", job_states[s],
                ds.jobs[s]);
    }
    if (ds.open_fds >= 0) {
        api_metrics_family(f, "vdiskd_open_fds", "gauge",
                           "Open file descriptors of the daemon.");
        fprintf(f, "vdiskd_open_fds %d\n", ds.open_fds);
    }
    if (ds.threads >= 0) {
        api_metrics_family(f, "vdiskd_threads", "gauge",
                           "Threads of the daemon.");
        fprintf(f, "vdiskd_threads %d\n", ds.threads);
    }
    if (ds.have_io_cpu) {
        api_metrics_family(f, "vdiskd_io_thread_busy_seconds_total", "counter",
                           "CPU time of the I/O thread: serving requests, "
                           "or polling for the next one.");
        fprintf(f, "vdiskd_io_thread_busy_seconds_total %.9f\n",
                (double)ds.io_cpu_ns / 1e9);
    }
    api_reqstats_render(f);
}
