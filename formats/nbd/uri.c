/* uri.c — which NBD URIs the driver accepts: nbd://HOST[:PORT]/EXPORT
 * and nbd+unix:///EXPORT?socket=/PATH, nothing that reaches past a plain
 * socket (TLS, vsock, ssh, local files, extra parameters). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "nbd-int.h"

static bool port_ok(const char *p, size_t n)
{
    unsigned long v = 0;
    if (n == 0 || n > 5) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* Accept nbd://host[:port][/export] and
 * nbd+unix:///[export]?socket=/abs/path, nothing else: no TLS, vsock,
 * ssh or other schemes that reach past a plain socket, no user info, no
 * query parameters but the socket. 0, or -EINVAL with msg set. */
int vd_nbd_uri_check(const char *uri, char *msg, size_t len)
{
    static const char *const refused[] = {
        "nbds", "nbd+vsock", "nbds+unix", "nbds+vsock", "nbd+ssh", "nbds+ssh"};
    const char *p, *auth, *auth_end, *query;
    bool unix_sock;

    for (p = uri; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            snprintf(msg, len, "spaces and control characters are not allowed");
            return -EINVAL;
        }
    }
    if (strncmp(uri, "nbd://", 6) == 0) {
        unix_sock = false;
        auth = uri + 6;
    } else if (strncmp(uri, "nbd+unix://", 11) == 0) {
        unix_sock = true;
        auth = uri + 11;
    } else {
        const char *colon = strstr(uri, "://");
        for (size_t i = 0; colon && i < sizeof(refused) / sizeof(*refused);
             i++) {
            if ((size_t)(colon - uri) == strlen(refused[i]) &&
                strncmp(uri, refused[i], strlen(refused[i])) == 0) {
                snprintf(msg, len, "scheme '%s' is not supported", refused[i]);
                return -EINVAL;
            }
        }
        snprintf(msg, len,
                 "use nbd://HOST[:PORT]/EXPORT or "
                 "nbd+unix:///EXPORT?socket=/PATH");
        return -EINVAL;
    }
    if (strchr(uri, '#') != NULL) {
        snprintf(msg, len, "fragments are not allowed");
        return -EINVAL;
    }
    auth_end = auth + strcspn(auth, "/?");
    query = strchr(auth, '?');
    if (unix_sock) {
        if (auth_end != auth) {
            snprintf(
                msg, len,
                "nbd+unix:// takes no host (nbd+unix:///EXPORT?socket=/PATH)");
            return -EINVAL;
        }
        if (query == NULL || strncmp(query, "?socket=/", 9) != 0 ||
            strpbrk(query + 1, "&;?") != NULL) {
            snprintf(msg, len,
                     "nbd+unix:// needs exactly one parameter, "
                     "socket=/ABSOLUTE/PATH");
            return -EINVAL;
        }
        return 0;
    }
    if (query != NULL) {
        snprintf(msg, len, "nbd:// URIs take no parameters");
        return -EINVAL;
    }
    if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
        snprintf(msg, len, "user names are not allowed");
        return -EINVAL;
    }
    const char *host_end = auth_end;
    if (*auth == '[') {
        host_end = memchr(auth, ']', (size_t)(auth_end - auth));
        if (host_end == NULL || host_end == auth + 1) {
            snprintf(msg, len, "malformed IPv6 address");
            return -EINVAL;
        }
        host_end++;
    } else {
        const char *colon = memchr(auth, ':', (size_t)(auth_end - auth));
        if (colon != NULL) {
            host_end = colon;
        }
    }
    if (host_end == auth) {
        snprintf(msg, len, "no host name");
        return -EINVAL;
    }
    if (host_end != auth_end &&
        (*host_end != ':' ||
         !port_ok(host_end + 1, (size_t)(auth_end - host_end - 1)))) {
        snprintf(msg, len, "port must be a number from 1 to 65535");
        return -EINVAL;
    }
    return 0;
}
