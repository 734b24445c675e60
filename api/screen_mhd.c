/* screen_mhd.c — the request-head checks of screen.h for connections
 * whose bytes cannot be peeked (TLS: listen.c sees only ciphertext).
 *
 * libmicrohttpd has parsed the head by the first request callback; the
 * head is written back out from what it kept (request line, header
 * fields in arrival order, repeats included) and given to
 * api_head_check, so both paths apply the same rules.
 *
 * What the parse loses is a NUL byte: libmicrohttpd hands out C strings,
 * so "/volumes/v1\0x" arrives as "/volumes/v1". The URI log callback
 * sees the request target before the query is split off; the length it
 * measures there must reach the space before the version, which
 * libmicrohttpd 0.9.75 keeps in the same buffer right after it. Header
 * values come with their length, which a NUL makes longer than the
 * string. Either mismatch is a NUL, refused like the raw check does. */
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "screen.h"
#include "server-int.h"

struct rebuild {
    char *buf;
    size_t len, cap;
    bool overflow, nul;
};

static void put(struct rebuild *r, const char *s, size_t n)
{
    if (r->overflow || n > r->cap - r->len) {
        r->overflow = true;
        return;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}

static enum MHD_Result put_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, size_t key_size,
                                  const char *value, size_t value_size)
{
    struct rebuild *r = cls;
    if (strlen(key) != key_size ||
        (value != NULL && strlen(value) != value_size)) {
        r->nul = true;
        return MHD_NO;
    }
    put(r, key, key_size);
    put(r, ": ", 2);
    if (value != NULL) {
        put(r, value, value_size);
    }
    put(r, "\r\n", 2);
    return MHD_YES;
}

void *api_srv_on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    /* Kept in the request's context without allocating (nothing would
     * free it if libmicrohttpd refused the head before the first
     * callback): the length, tagged with the low bit, which no
     * malloc'd pointer has. */
    return (void *)(((uintptr_t)strlen(uri) << 1) | 1u);
}

unsigned api_head_check_mhd(struct MHD_Connection *c, const char *method,
                            const char *url, const char *version,
                            size_t uri_len, char *msg, size_t msglen)
{
    char buf[API_HEAD_MAX];
    struct rebuild r = {.buf = buf, .cap = sizeof(buf)};

    if (version < url || (size_t)(version - url) != uri_len + 1) {
        snprintf(msg, msglen,
                 "the request head contains a NUL or another "
                 "control character");
        return 400;
    }
    put(&r, method, strlen(method));
    put(&r, " ", 1);
    put(&r, url, strlen(url));
    put(&r, " ", 1);
    put(&r, version, strlen(version));
    put(&r, "\r\n", 2);
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, put_header, &r);
    put(&r, "\r\n", 2);
    if (r.nul) {
        snprintf(msg, msglen,
                 "the request head contains a NUL or another "
                 "control character");
        return 400;
    }
    if (r.overflow) {
        snprintf(msg, msglen, "the request head is larger than %u bytes",
                 (unsigned)API_HEAD_MAX);
        return 431;
    }
    return api_head_check(buf, r.len, msg, msglen);
}
