/* metrics_fmt.c — shared pieces of the text exposition format. */
#include "metrics_fmt.h"

#include "iostats.h"

void api_metrics_family(FILE *f, const char *name, const char *type,
                        const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void api_metrics_label(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"') {
            fputc('\\', f);
            fputc(*s, f);
        } else if (*s == '\n') {
            fputs("\\n", f);
        } else {
            fputc(*s, f);
        }
    }
}

void api_metrics_labels(char *buf, size_t size, const char *name,
                        const char *value)
{
    size_t n = (size_t)snprintf(buf, size, "%s=\"", name);
    for (; *value != '\0' && n + 4 < size; value++) {
        if (*value == '\\' || *value == '"' || *value == '\n') {
            buf[n++] = '\\';
        }
        buf[n++] = *value == '\n' ? 'n' : *value;
    }
    if (n + 2 <= size) {
        buf[n++] = '"';
        buf[n] = '\0';
    } else {
        buf[0] = '\0'; /* cannot happen for names the catalog accepts */
    }
}

void api_metrics_hist(FILE *f, const char *name, const char *labels,
                      const uint64_t *bucket, uint64_t sum_ns)
{
    uint64_t cum = 0;
    for (unsigned k = 0; k <= VD_LAT_BUCKETS; k++) {
        cum += bucket[k];
        fprintf(f, "%s_bucket{%s,le=\"", name, labels);
        if (k < VD_LAT_BUCKETS) {
            fprintf(f, "%.9g", (double)vd_lat_bound_ns(k) / 1e9);
        } else {
            fputs("+Inf", f);
        }
        fprintf(f, "\"} %llu\n", (unsigned long long)cum);
    }
    fprintf(f, "%s_sum{%s} %.9f\n", name, labels, (double)sum_ns / 1e9);
    fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}
