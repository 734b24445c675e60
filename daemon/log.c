/* log.c — timestamped, levelled log lines on stderr, as text or JSON.
 *
 * A JSON line must parse whatever a message holds (paths, a driver's
 * error text, a name from a request): quotes, backslashes and control
 * characters are escaped, and bytes that are not valid UTF-8 become
 * U+FFFD, so one bad byte never costs a collector the whole line. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOG_LINE_MAX 1024

static enum vd_log_level min_level = VD_LOG_INFO;
static enum vd_log_format format = VD_LOG_TEXT;

void vd_log_set_level(enum vd_log_level level)
{
    min_level = level;
}

void vd_log_set_format(enum vd_log_format f)
{
    format = f;
}

int vd_log_format_parse(const char *name, enum vd_log_format *out)
{
    if (strcmp(name, "text") == 0) {
        *out = VD_LOG_TEXT;
    } else if (strcmp(name, "json") == 0) {
        *out = VD_LOG_JSON;
    } else {
        return -EINVAL;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;
    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        return 0;
    }
    return len;
}

/* s as the inside of a JSON string into out (cap bytes, NUL ended); a
 * string that does not fit is cut at a character boundary. */
static void json_escape(const char *s, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), o = 0;
    while (n > 0) {
        char esc[8];
        const char *add = esc;
        size_t alen, used = utf8_len(p, n);
        if (used == 0) {
            add = "\\ufffd";
            alen = 6;
            used = 1;
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            alen = 2;
        } else if (*p < 0x20) {
            alen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else {
            add = (const char *)p;
            alen = used;
        }
        if (o + alen >= cap) {
            break;
        }
        memcpy(out + o, add, alen);
        o += alen;
        p += used;
        n -= used;
    }
    out[o] = '\0';
}

void vd_log(enum vd_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[LOG_LINE_MAX];
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
    if (format == VD_LOG_JSON) {
        char msg[LOG_LINE_MAX * 6];
        json_escape(line, msg, sizeof(msg));
        fprintf(stderr,
                "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
                stamp, ts.tv_nsec / 1000000, names[level], msg);
        return;
    }
    fprintf(stderr, "%s.%03ldZ vdiskd[%s]: %s\n", stamp, ts.tv_nsec / 1000000,
            names[level], line);
}
