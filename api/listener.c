/* listener.c — the API's listening sockets: TCP on one address, or a
 * unix socket with its mode and group set before anyone can connect
 * (listen.h). The accept loop that serves them is listen.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "listen.h"
#include "vd_error.h"

#define LISTEN_BACKLOG 1024

static int open_unix(struct api_listener *l, const char *path, mode_t mode,
                     gid_t gid, struct vd_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, ret;

    if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path)) {
        return vd_error_set(err, -EINVAL,
                            "unix socket path '%s' must be "
                            "absolute and shorter than %zu bytes",
                            path, sizeof(sa.sun_path));
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return vd_error_set(err, -errno, "socket: %s", strerror(errno));
    }
    if (lstat(path, &st) == 0) {
        /* A socket left by a daemon that died is replaced; one that
         * still answers belongs to a running daemon. */
        int probe;
        if (!S_ISSOCK(st.st_mode)) {
            ret = vd_error_set(err, -EEXIST,
                               "'%s' exists and is not a "
                               "socket",
                               path);
            goto out_close;
        }
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 &&
            connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            ret = vd_error_set(err, -EADDRINUSE,
                               "unix socket '%s' is in "
                               "use by a running process",
                               path);
            goto out_close;
        }
        if (probe >= 0) {
            close(probe);
        }
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        ret = vd_error_set(err, -errno, "cannot bind unix socket '%s': %s",
                           path, strerror(errno));
        goto out_close;
    }
    /* Nobody can connect before listen(): set mode and group first. */
    if (chmod(path, mode != 0 ? mode : 0660) < 0 ||
        (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)) {
        ret = vd_error_set(err, -errno,
                           "unix socket '%s': cannot set mode "
                           "or group: %s",
                           path, strerror(errno));
        unlink(path);
        goto out_close;
    }
    if (listen(fd, LISTEN_BACKLOG) < 0) {
        ret = vd_error_set(err, -errno, "cannot listen on '%s': %s", path,
                           strerror(errno));
        unlink(path);
        goto out_close;
    }
    l->fd = fd;
    l->is_unix = true;
    snprintf(l->path, sizeof(l->path), "%s", path);
    snprintf(l->desc, sizeof(l->desc), "unix:%s", path);
    return 0;

out_close:
    close(fd);
    return ret;
}

/* Split HOST:PORT (or [V6]:PORT). */
static int split_host_port(const char *s, char *host, size_t hostlen,
                           uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t n;
    char *end;
    long p;
    if (colon == NULL) {
        return -1;
    }
    n = (size_t)(colon - s);
    if (n > 1 && s[0] == '[' && s[n - 1] == ']') {
        h = s + 1;
        n -= 2;
    }
    if (n == 0 || n >= hostlen) {
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || p < 0 || p > 65535) {
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            return in6->sin6_addr.s6_addr[12] == 127;
        }
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

static int open_tcp(struct api_listener *l, const char *spec, bool tls,
                    struct vd_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char host[256], portstr[8];
    uint16_t port;
    int one = 1, fd = -1, r, ret;

    if (split_host_port(spec, host, sizeof(host), &port) < 0) {
        return vd_error_set(err, -EINVAL,
                            "--listen wants HOST:PORT, "
                            "[IPV6]:PORT or unix:PATH, got '%s'",
                            spec);
    }
    snprintf(portstr, sizeof(portstr), "%u", port);
    r = getaddrinfo(host, portstr, &hints, &ai);
    if (r != 0) {
        return vd_error_set(err, -EINVAL,
                            "'%s' is not a numeric IPv4 or "
                            "IPv6 address: %s",
                            host, gai_strerror(r));
    }
    l->v6 = ai->ai_family == AF_INET6;
    l->loopback = is_loopback(ai->ai_addr);
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ret = vd_error_set(err, -errno, "socket: %s", strerror(errno));
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->v6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        ret = vd_error_set(err, -errno, "cannot listen on %s port %u: %s", host,
                           port, strerror(errno));
        close(fd);
        goto out;
    }
    l->port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    l->fd = fd;
    snprintf(l->desc, sizeof(l->desc), "%s://%s%s%s:%u", tls ? "https" : "http",
             l->v6 ? "[" : "", host, l->v6 ? "]" : "", l->port);
    ret = 0;
out:
    freeaddrinfo(ai);
    return ret;
}

int vd_api_listen_check(const char *spec, struct vd_error *err)
{
    char host[256];
    uint16_t port;
    if (strncmp(spec, "unix:", 5) == 0) {
        if (spec[5] != '/' ||
            strlen(spec + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            return vd_error_set(err, -EINVAL,
                                "--listen unix:PATH wants an "
                                "absolute PATH shorter than 108 bytes, got "
                                "'%s'",
                                spec);
        }
        return 0;
    }
    if (split_host_port(spec, host, sizeof(host), &port) < 0) {
        return vd_error_set(err, -EINVAL,
                            "--listen wants HOST:PORT, "
                            "[IPV6]:PORT or unix:PATH, got '%s'",
                            spec);
    }
    return 0;
}

int api_listen_loopback(const char *spec)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char host[256];
    uint16_t port;
    int r;
    if (split_host_port(spec, host, sizeof(host), &port) < 0 ||
        getaddrinfo(host, NULL, &hints, &ai) != 0) {
        return -EINVAL;
    }
    r = is_loopback(ai->ai_addr) ? 1 : 0;
    freeaddrinfo(ai);
    return r;
}

int api_listener_open(struct api_listener *l, const char *spec, mode_t mode,
                      gid_t gid, bool tls, struct vd_error *err)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    if (strncmp(spec, "unix:", 5) == 0) {
        return open_unix(l, spec + 5, mode, gid, err);
    }
    return open_tcp(l, spec, tls, err);
}

void api_listener_close(struct api_listener *l)
{
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
        if (l->is_unix) {
            unlink(l->path);
        }
    }
}
