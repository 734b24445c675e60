/* metrics.c — GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): per-volume I/O counters, latency histograms, errors
 * and state, each with a volume="name" label, then the daemon's own
 * figures and the API's request counters (reqstats.c). Every label value
 * comes from a fixed set or a volume name, so the series are bounded by
 * the number of volumes. README.md ("Metrics") documents each family. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "metrics_fmt.h"
#include "problem.h"
#include "reqstats.h"
#include "vd_error.h"
#include "volume.h"

enum metric_kind { COUNTER, GAUGE };

struct metric {
    const char *name;
    enum metric_kind kind;
    const char *help;
};

static const struct metric per_volume[] = {
    {"vdiskd_volume_reads_total", COUNTER, "Read requests served."},
    {"vdiskd_volume_writes_total", COUNTER, "Write requests served."},
    {"vdiskd_volume_read_bytes_total", COUNTER, "Bytes read."},
    {"vdiskd_volume_written_bytes_total", COUNTER, "Bytes written."},
    {"vdiskd_volume_errors_total", COUNTER, "Requests that failed."},
    {"vdiskd_volume_async_requests_total", COUNTER,
     "Reads, writes and flushes served on the I/O thread."},
    {"vdiskd_volume_open_handles", GAUGE, "Open handles on the volume file."},
    {"vdiskd_volume_size_bytes", GAUGE, "Virtual size."},
    {"vdiskd_volume_corrupt", GAUGE,
     "1 while the volume's image reports corruption (state corrupt; "
     "GET /volumes/{name} gives the reason), else 0."},
    {"vdiskd_volume_in_flight", GAUGE,
     "Requests inside the volume's I/O gate now."},
};

static uint64_t metric_value(const struct vd_volume_info *vi, size_t m)
{
    switch (m) {
    case 0:
        return vi->reads;
    case 1:
        return vi->writes;
    case 2:
        return vi->bytes_read;
    case 3:
        return vi->bytes_written;
    case 4:
        return vi->errors;
    case 5:
        return vi->async;
    case 6:
        return vi->open_count < 0 ? 0 : (uint64_t)vi->open_count;
    case 7:
        return vi->row.size;
    case 8:
        return vi->row.state == VD_STATE_CORRUPT;
    default:
        return vi->inflight < 0 ? 0 : (uint64_t)vi->inflight;
    }
}

/* The states vdiskd_volume_state shows; "disconnected" is a ready remote
 * volume whose backend is not reachable now. */
static const char *const states[] = {"ready", "missing", "corrupt", "deleting",
                                     "disconnected"};

static const char *state_of(const struct vd_volume_info *vi)
{
    if (vi->row.state == VD_STATE_READY && vi->have_backend_state &&
        (vi->backend_state.link == VD_LINK_DISCONNECTED ||
         vi->backend_state.link == VD_LINK_CONNECTING)) {
        return "disconnected";
    }
    return vd_volume_state_name(vi->row.state);
}

static const char *const links[] = {"connecting", "connected", "degraded",
                                    "disconnected"};

static void render_state(FILE *f, const struct vd_volume_info *vols, int n)
{
    char vl[160];
    api_metrics_family(f, "vdiskd_volume_state", "gauge",
                       "1 for the volume's current state, 0 for the others.");
    for (int i = 0; i < n; i++) {
        const char *now = state_of(&vols[i]);
        api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
        for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
            fprintf(f, "vdiskd_volume_state{%s,state=\"%s\"} %d\n", vl,
                    states[s], strcmp(now, states[s]) == 0);
        }
    }
    api_metrics_family(f, "vdiskd_volume_backend_link", "gauge",
                       "Remote volumes: 1 for the link state of the backend "
                       "connection now, 0 for the others.");
    for (int i = 0; i < n; i++) {
        if (!vols[i].have_backend_state) {
            continue;
        }
        api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
        for (size_t s = 0; s < sizeof(links) / sizeof(links[0]); s++) {
            fprintf(f, "vdiskd_volume_backend_link{%s,link=\"%s\"} %d\n", vl,
                    links[s], (size_t)vols[i].backend_state.link == s);
        }
    }
    api_metrics_family(f, "vdiskd_volume_backend_connections", "gauge",
                       "Remote volumes: backend connections up now.");
    for (int i = 0; i < n; i++) {
        if (vols[i].have_backend_state) {
            api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
            fprintf(f, "vdiskd_volume_backend_connections{%s} %d\n", vl,
                    vols[i].backend_state.connected);
        }
    }
    api_metrics_family(f, "vdiskd_volume_backend_reconnects_total", "counter",
                       "Remote volumes: successful reconnects to the "
                       "backend since the volume was opened.");
    for (int i = 0; i < n; i++) {
        if (vols[i].have_backend_state) {
            api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
            fprintf(f,
                    "vdiskd_volume_backend_reconnects_total{%s} %" PRIu64 "\n",
                    vl, vols[i].backend_state.reconnects);
        }
    }
}

static void render_io(FILE *f, const struct vd_volume_info *vols, int n)
{
    char vl[160], labels[200];
    api_metrics_family(f, "vdiskd_volume_request_duration_seconds", "histogram",
                       "Time from a request's arrival at the volume to its "
                       "completion, by op (read, write, flush).");
    for (int i = 0; i < n; i++) {
        api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
        for (unsigned op = 0; op < VD_IO_NOPS; op++) {
            snprintf(labels, sizeof(labels), "%s,op=\"%s\"", vl,
                     vd_io_op_name(op));
            api_metrics_hist(f, "vdiskd_volume_request_duration_seconds",
                             labels, vols[i].io.bucket[op],
                             vols[i].io.sum_ns[op]);
        }
    }
    api_metrics_family(f, "vdiskd_volume_request_errors_total", "counter",
                       "Requests that failed, by errno (a fixed set; "
                       "others count as \"other\"). Only errnos seen.");
    for (int i = 0; i < n; i++) {
        api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
        for (unsigned e = 0; e < VD_ERRNO_SLOTS; e++) {
            if (vols[i].io.errors[e] > 0) {
                fprintf(f,
                        "vdiskd_volume_request_errors_total{%s,errno=\"%s\"} "
                        "%" PRIu64 "\n",
                        vl, vd_iostats_errno_name(e), vols[i].io.errors[e]);
            }
        }
    }
    api_metrics_family(f, "vdiskd_volume_throttled_seconds_total", "counter",
                       "Time requests spent waiting for the volume's rate "
                       "limit.");
    for (int i = 0; i < n; i++) {
        api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
        fprintf(f, "vdiskd_volume_throttled_seconds_total{%s} %.9f\n", vl,
                (double)vols[i].io.throttled_ns / 1e9);
    }
}

static void render_daemon(FILE *f, struct vd_volmgr *mgr)
{
    static const char *const job_states[] = {"running", "succeeded", "failed"};
    struct vd_daemon_stats ds;

    vd_volmgr_daemon_stats(mgr, &ds);
    api_metrics_family(f, "vdiskd_jobs", "gauge",
                       "Jobs the daemon knows (since it started), by state.");
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

void api_metrics_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_volume_info *vols = NULL;
    char vl[160];
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int n;

    n = vd_volmgr_list(req->mgr, &vols, &err);
    if (n < 0) {
        api_problem_errno(rep, n, err.msg);
        return;
    }
    f = open_memstream(&buf, &len);
    if (f == NULL) {
        free(vols);
        api_problem(rep, 500, "out of memory rendering metrics");
        return;
    }
    api_metrics_family(f, "vdiskd_volumes", "gauge", "Volumes in the catalog.");
    fprintf(f, "vdiskd_volumes %d\n", n);
    for (size_t m = 0; m < sizeof(per_volume) / sizeof(per_volume[0]); m++) {
        api_metrics_family(f, per_volume[m].name,
                           per_volume[m].kind == COUNTER ? "counter" : "gauge",
                           per_volume[m].help);
        for (int i = 0; i < n; i++) {
            api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
            fprintf(f, "%s{%s} %" PRIu64 "\n", per_volume[m].name, vl,
                    metric_value(&vols[i], m));
        }
    }
    render_state(f, vols, n);
    render_io(f, vols, n);
    free(vols);
    render_daemon(f, req->mgr);
    if (fclose(f) != 0 || buf == NULL) {
        free(buf);
        api_problem(rep, 500, "out of memory rendering metrics");
        return;
    }
    api_reply_clear(rep);
    rep->status = 200;
    rep->text = buf;
    rep->text_len = len;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
