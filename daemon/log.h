/* log.h — the daemon's log: one line per event on stderr (journald or the
 * container runtime picks it up), with a level and a timestamp; as text,
 * or as one JSON object a line for log collectors. */
#ifndef VD_LOG_H
#define VD_LOG_H

enum vd_log_level { VD_LOG_DEBUG, VD_LOG_INFO, VD_LOG_WARN, VD_LOG_ERROR };

enum vd_log_format {
    VD_LOG_TEXT, /* 2026-01-02T03:04:05.678Z vdiskd[info]: message */
    VD_LOG_JSON, /* {"ts":"2026-01-02T03:04:05.678Z","level":"info",
                    "msg":"message"}: always these keys, in this order */
};

void vd_log_set_level(enum vd_log_level level);
void vd_log_set_format(enum vd_log_format format);
/* "text" or "json"; 0, or -EINVAL for anything else. */
int vd_log_format_parse(const char *name, enum vd_log_format *out);

void vd_log(enum vd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define vd_info(...) vd_log(VD_LOG_INFO, __VA_ARGS__)
#define vd_warn(...) vd_log(VD_LOG_WARN, __VA_ARGS__)
#define vd_err(...) vd_log(VD_LOG_ERROR, __VA_ARGS__)
#define vd_debug(...) vd_log(VD_LOG_DEBUG, __VA_ARGS__)

#endif
