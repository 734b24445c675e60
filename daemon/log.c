/* log.c — timestamped, levelled log lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum vd_log_level min_level = VD_LOG_INFO;

void vd_log_set_level(enum vd_log_level level)
{
    min_level = level;
}

void vd_log(enum vd_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1024];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (level < min_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fprintf per line keeps lines from different threads whole. */
    fprintf(stderr, "%s.%03ldZ vdiskd[%s]: %s\n", stamp, ts.tv_nsec / 1000000,
            names[level], line);
}
