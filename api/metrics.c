/* metrics.c — GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): the number of volumes and per-volume I/O counters
 * and state, each with a volume="name" label; latency histograms and the
 * rest per volume (metrics_volume.c); the daemon's own figures and API
 * requests (metrics_daemon.c). README.md, Monitoring, documents them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "handler.h"
#include "metrics_fmt.h"
#include "problem.h"
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
    default:
        return vi->row.state == VD_STATE_CORRUPT;
    }
}

void api_metrics_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_volume_info *vols = NULL;
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
    fprintf(f,
            "# HELP vdiskd_volumes Volumes in the catalog.\n"
            "# TYPE vdiskd_volumes gauge\n"
            "vdiskd_volumes %d\n",
            n);
    api_metrics_volumes(f, vols, n);
    api_metrics_daemon(f, req->mgr);
    for (size_t m = 0; m < sizeof(per_volume) / sizeof(per_volume[0]); m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", per_volume[m].name,
                per_volume[m].help, per_volume[m].name,
                per_volume[m].kind == COUNTER ? "counter" : "gauge");
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s{volume=\"", per_volume[m].name);
            api_metrics_label(f, vols[i].row.name);
            fprintf(f, "\"} %" PRIu64 "\n", metric_value(&vols[i], m));
        }
    }
    free(vols);
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
