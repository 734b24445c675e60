/* metrics_fmt.h — private to api/: pieces of the Prometheus text
 * exposition format (version 0.0.4) shared by the /metrics renderers. */
#ifndef VD_API_METRICS_FMT_H
#define VD_API_METRICS_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct vd_volmgr;
struct vd_volume_info;

/* metrics_volume.c: the per-volume families beyond metrics.c's counters. */
void api_metrics_volumes(FILE *f, const struct vd_volume_info *vols, int n);
/* metrics_daemon.c: the daemon's families and the API's requests. */
void api_metrics_daemon(FILE *f, struct vd_volmgr *mgr);

/* metrics_fmt.c */
/* "# HELP name help" and "# TYPE name type". */
void api_metrics_family(FILE *f, const char *name, const char *type,
                        const char *help);
/* Write s as a label value, with \ " and newline escaped. */
void api_metrics_label(FILE *f, const char *s);
/* One histogram series of a latency histogram (iostats.h buckets, not
 * cumulative, VD_LAT_BUCKETS + 1 of them) in seconds: name_bucket for
 * every bound and +Inf, name_sum, name_count. labels is the rendered label
 * list without braces, e.g. volume="v",op="read". */
void api_metrics_hist(FILE *f, const char *name, const char *labels,
                      const uint64_t *bucket, uint64_t sum_ns);
/* Render name="value" (value escaped) into buf; buf is cut short (and
 * then still valid text) if it is too small. */
void api_metrics_labels(char *buf, size_t size, const char *name,
                        const char *value);

#endif
