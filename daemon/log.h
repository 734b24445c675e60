/* log.h — the daemon's log: one line per event on stderr (journald or the
 * container runtime picks it up), with a level and a timestamp. */
#ifndef VD_LOG_H
#define VD_LOG_H

enum vd_log_level { VD_LOG_DEBUG, VD_LOG_INFO, VD_LOG_WARN, VD_LOG_ERROR };

void vd_log_set_level(enum vd_log_level level);
void vd_log(enum vd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define vd_info(...) vd_log(VD_LOG_INFO, __VA_ARGS__)
#define vd_warn(...) vd_log(VD_LOG_WARN, __VA_ARGS__)
#define vd_err(...) vd_log(VD_LOG_ERROR, __VA_ARGS__)
#define vd_debug(...) vd_log(VD_LOG_DEBUG, __VA_ARGS__)

#endif
