/* parse.c — pure validation helpers for the REST API (see parse.h).
 *
 * Everything here turns untrusted text into checked values; nothing
 * allocates, so callers need no cleanup on the error paths. */
#include "parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "vd_error.h"
#include "volume.h"

int api_parse_size_string(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {
        {"", 0},     {"B", 0},    {"K", 10},   {"KiB", 10}, {"M", 20},
        {"MiB", 20}, {"G", 30},   {"GiB", 30}, {"T", 40},   {"TiB", 40},
        {"P", 50},   {"PiB", 50}, {"E", 60},   {"EiB", 60},
    };
    uint64_t v = 0;
    const char *p = s;

    if (s == NULL || *s < '0' || *s > '9') {
        return -EINVAL; /* no sign, no space, at least one digit */
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -ERANGE;
        }
        v = v * 10 + d;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(p, units[i].suffix) != 0) {
            continue;
        }
        if (units[i].shift > 0 && v > (UINT64_MAX >> units[i].shift)) {
            return -ERANGE;
        }
        *out = v << units[i].shift;
        return 0;
    }
    return -EINVAL;
}

int api_check_size(uint64_t size, const char *field, struct vd_error *err)
{
    return vd_volume_size_check(size, field, err); /* the rules live there */
}

int api_size_from_json(const json_t *v, const char *field, uint64_t *out,
                       struct vd_error *err)
{
    uint64_t size;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0) {
            return vd_error_set(
                err, -EINVAL,
                "'%s' must not be negative, got %" JSON_INTEGER_FORMAT, field,
                i);
        }
        size = (uint64_t)i;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        int r = api_parse_size_string(s, &size);
        if (r == -ERANGE) {
            return vd_error_set(err, -EINVAL, "'%s' is too large: \"%.64s\"",
                                field, s);
        }
        if (r < 0 || strlen(s) != json_string_length(v)) {
            return vd_error_set(err, -EINVAL,
                                "'%s' must be an integer number of bytes or a "
                                "string such as \"10G\" (units K, M, G, T), "
                                "got \"%.64s\"",
                                field, s);
        }
    } else if (json_is_real(v)) {
        return vd_error_set(err, -EINVAL,
                            "'%s' must be an integer number of bytes, got %g",
                            field, json_real_value(v));
    } else {
        return vd_error_set(err, -EINVAL,
                            "'%s' must be an integer or a string such as "
                            "\"10G\"",
                            field);
    }
    if (api_check_size(size, field, err) < 0) {
        return -EINVAL;
    }
    *out = size;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int api_segment_decode(const char *raw, size_t len, char *out, size_t outlen)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len) {
                return -EINVAL;
            }
            hi = hex_value(raw[i + 1]);
            lo = hi < 0 ? -1 : hex_value(raw[i + 2]);
            if (lo < 0) {
                return -EINVAL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || c == '/') {
            return -EINVAL;
        }
        if (n + 1 >= outlen) {
            return -ENAMETOOLONG;
        }
        out[n++] = c;
    }
    if (outlen == 0) {
        return -ENAMETOOLONG;
    }
    out[n] = '\0';
    return 0;
}

bool api_media_type_is(const char *header, const char *type)
{
    size_t n;

    if (header == NULL) {
        return false;
    }
    while (*header == ' ' || *header == '\t') {
        header++;
    }
    n = strlen(type);
    if (strncasecmp(header, type, n) != 0) {
        return false;
    }
    header += n;
    while (*header == ' ' || *header == '\t') {
        header++;
    }
    return *header == '\0' || *header == ';';
}

int api_parse_bool(const char *s, bool *out)
{
    if (s == NULL || s[0] == '\0' || strcmp(s, "true") == 0 ||
        strcmp(s, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

int api_rfc3339(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (len < API_RFC3339_LEN || (int64_t)tt != t ||
        gmtime_r(&tt, &tm) == NULL || tm.tm_year < -1900 ||
        tm.tm_year > 9999 - 1900) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return -EINVAL;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return 0;
}
