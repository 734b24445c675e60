/* reqstats.c — API request counters (see reqstats.h).
 *
 * The label values come from fixed sets, never from the request: the
 * route is the router's template (or "unmatched"), the method one of the
 * HTTP methods the API knows (or "other"), and the status a number the
 * server chose. So the number of series is bounded by the route table,
 * whatever clients send. A mutex is enough: the API answers at most a few
 * thousand requests a second, and the data path never comes here. */
#include "reqstats.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "iostats.h"
#include "metrics_fmt.h"

#define MAX_SERIES 256 /* (route, method, status); ~15 routes x 6 x ~12 */
#define MAX_HISTS 96   /* (route, method) */

struct req_count {
    const char *route, *method;
    unsigned status;
    uint64_t n;
};

struct req_hist {
    const char *route, *method;
    uint64_t bucket[VD_LAT_BUCKETS + 1];
    uint64_t sum_ns;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct req_count counts[MAX_SERIES]; /* lock */
static unsigned n_counts;                   /* lock */
static struct req_hist hists[MAX_HISTS];    /* lock */
static unsigned n_hists;                    /* lock */

/* The method as a label: a static string from a fixed set. */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET",   "HEAD",   "POST",   "PUT",
                                        "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(method, known[i]) == 0) {
            return known[i];
        }
    }
    return "other";
}

void api_reqstats_record(const char *route, const char *method, unsigned status,
                         uint64_t ns)
{
    const char *m = method_label(method);
    const char *r = route != NULL ? route : "unmatched";
    unsigned i;

    if (status < 100 || status > 599) {
        status = 0; /* never sent; still a bounded label */
    }
    pthread_mutex_lock(&lock);
    for (i = 0; i < n_counts; i++) {
        if (counts[i].route == r && counts[i].method == m &&
            counts[i].status == status) {
            break;
        }
    }
    if (i == n_counts && n_counts < MAX_SERIES) {
        counts[n_counts++] = (struct req_count){r, m, status, 0};
    }
    if (i < n_counts) {
        counts[i].n++;
    }
    for (i = 0; i < n_hists; i++) {
        if (hists[i].route == r && hists[i].method == m) {
            break;
        }
    }
    if (i == n_hists && n_hists < MAX_HISTS) {
        memset(&hists[i], 0, sizeof(hists[i]));
        hists[i].route = r;
        hists[i].method = m;
        n_hists++;
    }
    if (i < n_hists) {
        hists[i].bucket[vd_lat_bucket(ns)]++;
        hists[i].sum_ns += ns;
    }
    pthread_mutex_unlock(&lock);
}

/* route="/volumes/{volume}",method="GET": the router's template with a
 * leading '/', as clients see the path. */
static void route_labels(char *buf, size_t size, const char *route,
                         const char *method)
{
    bool matched = strcmp(route, "unmatched") != 0;
    snprintf(buf, size, "route=\"%s%s\",method=\"%s\"", matched ? "/" : "",
             route, method);
}

void api_reqstats_render(FILE *f)
{
    char labels[160];
    pthread_mutex_lock(&lock);
    api_metrics_family(f, "vdiskd_api_requests_total", "counter",
                       "API requests answered, by route template, method "
                       "and status.");
    for (unsigned i = 0; i < n_counts; i++) {
        route_labels(labels, sizeof(labels), counts[i].route, counts[i].method);
        fprintf(f, "vdiskd_api_requests_total{%s,status=\"%u\"} %llu\n", labels,
                counts[i].status, (unsigned long long)counts[i].n);
    }
    api_metrics_family(f, "vdiskd_api_request_duration_seconds", "histogram",
                       "Time from a request's arrival to its answer, by "
                       "route template and method.");
    for (unsigned i = 0; i < n_hists; i++) {
        route_labels(labels, sizeof(labels), hists[i].route, hists[i].method);
        api_metrics_hist(f, "vdiskd_api_request_duration_seconds", labels,
                         hists[i].bucket, hists[i].sum_ns);
    }
    pthread_mutex_unlock(&lock);
}
