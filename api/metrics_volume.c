/* metrics_volume.c — the per-volume families of /metrics beyond the plain
 * counters of metrics.c: requests in flight, state and remote backend
 * gauges, latency histograms, errors by errno, throttled time. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "metrics_fmt.h"
#include "volume.h"

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
}

/* The time requests waited for their QoS limits (qos.h). */
static void render_throttled(FILE *f, const struct vd_volume_info *vols, int n)
{
    char vl[160];
    api_metrics_family(f, "vdiskd_volume_throttled_seconds_total", "counter",
                       "Time requests waited for the volume's QoS limits "
                       "(its own or its group's).");
    for (int i = 0; i < n; i++) {
        api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
        fprintf(f, "vdiskd_volume_throttled_seconds_total{%s} %.9f\n", vl,
                (double)vols[i].qos_stats.throttled_ns / 1e9);
    }
}

void api_metrics_volumes(FILE *f, const struct vd_volume_info *vols, int n)
{
    char vl[160];
    api_metrics_family(f, "vdiskd_volume_in_flight", "gauge",
                       "Requests inside the volume's I/O gate now.");
    for (int i = 0; i < n; i++) {
        api_metrics_labels(vl, sizeof(vl), "volume", vols[i].row.name);
        fprintf(f, "vdiskd_volume_in_flight{%s} %d\n", vl,
                vols[i].inflight < 0 ? 0 : vols[i].inflight);
    }
    render_state(f, vols, n);
    render_io(f, vols, n);
    render_throttled(f, vols, n);
}
