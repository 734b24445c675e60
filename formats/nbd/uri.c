/* uri.c — which NBD URIs the driver accepts: nbd://HOST[:PORT]/EXPORT
 * and nbd+unix:///EXPORT?socket=/PATH, nothing that reaches past a plain
 * socket (TLS, vsock, ssh, local files, extra parameters), and unix
 * sockets only in the directories the caller allows. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Whether the canonical path lies in (or is) one of dirs. */
static bool in_dirs(const char *path, const char *const *dirs)
{
    for (size_t i = 0; dirs[i] != NULL; i++) {
        size_t n = strlen(dirs[i]);
        if (strcmp(dirs[i], "/") == 0 ||
            (strncmp(path, dirs[i], n) == 0 &&
             (path[n] == '/' || path[n] == '\0'))) {
            return true;
        }
    }
    return false;
}

int vd_nbd_socket_check(const char *uri, const char *const *dirs, char *msg,
                        size_t len)
{
    char parent[PATH_MAX], real[PATH_MAX], full[PATH_MAX + NAME_MAX + 2];
    const char *path, *base;
    struct stat st;
    bool ok;

    if (strncmp(uri, "nbd+unix://", 11) != 0) {
        return 0;
    }
    path = strchr(uri, '?') + strlen("?socket="); /* vd_nbd_uri_check'd */
    base = strrchr(path, '/') + 1;
    if (strchr(path, '%') != NULL) {
        /* libnbd would decode it: check exactly what it would dial. */
        snprintf(msg, len, "percent-encoded socket paths are not accepted");
        return -EINVAL;
    }
    if (strlen(path) >= sizeof(parent) || *base == '\0' ||
        strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        snprintf(msg, len, "the socket path must end in a file name");
        return -EINVAL;
    }
    if (dirs == NULL || dirs[0] == NULL) {
        snprintf(msg, len,
                 "NBD volumes on unix sockets are not allowed here "
                 "(no socket directory is configured)");
        return -EACCES;
    }
    /* Resolve the directory (the socket itself may not exist yet, with a
     * server that is down); a socket that is a symlink must point into
     * an allowed directory too. Outside, or unresolvable: one answer,
     * which tells nothing about what exists there. */
    snprintf(parent, sizeof(parent), "%.*s", (int)(base - 1 - path), path);
    ok = realpath(parent[0] != '\0' ? parent : "/", real) != NULL &&
         in_dirs(real, dirs);
    if (ok) {
        snprintf(full, sizeof(full), "%s/%s", strcmp(real, "/") ? real : "",
                 base);
        if (lstat(full, &st) == 0 && S_ISLNK(st.st_mode)) {
            ok = realpath(full, real) != NULL && in_dirs(real, dirs);
        }
    }
    if (!ok) {
        snprintf(msg, len,
                 "socket '%s' is not in a directory allowed for NBD sockets",
                 path);
        return -EACCES;
    }
    return 0;
}

int vd_nbd_socket_pin(const char *uri, const char *const *dirs, int *fd,
                      char *dial_uri, size_t dial_len, char *msg, size_t len)
{
    char link[64], real[PATH_MAX];
    const char *path;
    struct stat st;
    ssize_t n;
    int ret;

    *fd = -1;
    if (strncmp(uri, "nbd+unix://", 11) != 0) {
        snprintf(dial_uri, dial_len, "%s", uri);
        return 0;
    }
    path = strchr(uri, '?') + strlen("?socket="); /* vd_nbd_uri_check'd */
    if (dirs == NULL || dirs[0] == NULL) {
        snprintf(msg, len, "no socket directory is configured");
        return -EACCES;
    }
    /* Follows symlinks on purpose: the descriptor names where they lead,
     * and that is what is checked and dialled. */
    int f = open(path, O_PATH | O_CLOEXEC);
    if (f < 0) {
        ret = -errno;
        snprintf(msg, len, "socket '%s': %s", path, strerror(errno));
        return ret;
    }
    snprintf(link, sizeof(link), "/proc/self/fd/%d", f);
    n = readlink(link, real, sizeof(real) - 1);
    if (n < 0 || fstat(f, &st) < 0) {
        ret = -errno;
        snprintf(msg, len, "socket '%s': %s", path, strerror(errno));
        goto fail;
    }
    real[n] = '\0';
    if (!in_dirs(real, dirs)) {
        ret = -EACCES;
        snprintf(msg, len,
                 "socket '%s' is not in a directory allowed for NBD sockets",
                 path);
        goto fail;
    }
    if (!S_ISSOCK(st.st_mode)) {
        ret = -ENOTSOCK;
        snprintf(msg, len, "'%s' is not a socket", path);
        goto fail;
    }
    if ((size_t)snprintf(dial_uri, dial_len, "%.*s%s", (int)(path - uri), uri,
                         link) >= dial_len) {
        ret = -ENAMETOOLONG;
        snprintf(msg, len, "NBD URI too long");
        goto fail;
    }
    *fd = f;
    return 0;

fail:
    close(f);
    return ret;
}
