/* notify.c — the sd_notify protocol: one datagram on $NOTIFY_SOCKET
 * (a path, or an abstract name starting with '@'). */
#include "notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

void vd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@')) {
        return;
    }
    n = strlen(path);
    if (n >= sizeof(sa.sun_path)) {
        return;
    }
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@') {
        sa.sun_path[0] = '\0';
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
        vd_warn("sd_notify '%s' failed", state);
    }
    close(fd);
}
