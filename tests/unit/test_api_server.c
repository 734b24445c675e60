/* test_api_server.c — starting and stopping the HTTP server: port 0
 * picks a free port and vd_api_port reports it, IPv4 and IPv6 literals
 * bind, names and busy ports are refused with a message, a
 * non-loopback address without a token file is refused, and requests
 * that need no volume manager are answered on the socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "vd_error.h"
#include "vd_test.h"

/* Send one raw HTTP/1.0 request to 127.0.0.1:port; the reply in buf. */
static int roundtrip(uint16_t port, const char *req, char *buf, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    size_t n = 0;
    ssize_t r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0) {
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    return 0;
}

int main(void)
{
    struct vd_api_config cfg = {
        .listen = {"127.0.0.1:0"}, .n_listen = 1, .max_body = 1024};
    char addr[64];
    struct vd_error err = {0};
    struct vd_api *api = NULL, *api2 = NULL;
    char buf[4096];

    CHECK_EQ(vd_api_start(&cfg, NULL, &api, &err), 0);
    CHECK(api != NULL && vd_api_port(api) != 0);
    if (api == NULL) {
        return vd_test_done("test_api_server");
    }

    CHECK_EQ(roundtrip(vd_api_port(api), "GET /health HTTP/1.0\r\n\r\n", buf,
                       sizeof(buf)),
             0);
    CHECK(strncmp(buf, "HTTP/1.0 200", 12) == 0 ||
          strncmp(buf, "HTTP/1.1 200", 12) == 0);
    CHECK(strstr(buf, "{\"status\":\"ok\"}") != NULL);

    CHECK_EQ(roundtrip(vd_api_port(api), "GET /nope HTTP/1.0\r\n\r\n", buf,
                       sizeof(buf)),
             0);
    CHECK(strstr(buf, " 404 ") != NULL);
    CHECK(strstr(buf, "application/problem+json") != NULL);

    CHECK_EQ(
        roundtrip(vd_api_port(api),
                  "POST /volumes HTTP/1.0\r\nContent-Type: application/json"
                  "\r\nContent-Length: 2048\r\n\r\n{",
                  buf, sizeof(buf)),
        0);
    CHECK(strstr(buf, " 413 ") != NULL);

    CHECK_EQ(roundtrip(vd_api_port(api), "PUT /health HTTP/1.0\r\n\r\n", buf,
                       sizeof(buf)),
             0);
    CHECK(strstr(buf, " 405 ") != NULL);
    CHECK(strstr(buf, "Allow: GET, HEAD") != NULL);

    /* The same port again: refused, saying why. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", vd_api_port(api));
    cfg.listen[0] = addr;
    CHECK_EQ(vd_api_start(&cfg, NULL, &api2, &err), -EADDRINUSE);
    CHECK(strstr(err.msg, "in use") != NULL);
    CHECK(api2 == NULL);
    vd_api_stop(api);
    /* and free again once stopped */
    vd_error_clear(&err);
    CHECK_EQ(vd_api_start(&cfg, NULL, &api, &err), 0);
    vd_api_stop(api);

    /* Only numeric addresses. */
    vd_error_clear(&err);
    cfg.listen[0] = "localhost:0";
    CHECK_EQ(vd_api_start(&cfg, NULL, &api2, &err), -EINVAL);
    CHECK(strstr(err.msg, "localhost") != NULL);
    vd_error_clear(&err);
    cfg.listen[0] = "300.1.1.1:0";
    CHECK_EQ(vd_api_start(&cfg, NULL, &api2, &err), -EINVAL);

    /* IPv6 loopback, if the host has it. */
    vd_error_clear(&err);
    cfg.listen[0] = "[::1]:0";
    if (vd_api_start(&cfg, NULL, &api2, &err) == 0) {
        CHECK(vd_api_port(api2) != 0);
        vd_api_stop(api2);
    } else {
        CHECK(err.code == -EADDRNOTAVAIL || err.code == -EAFNOSUPPORT);
    }

    /* Not loopback and no tokens: refused, saying why. */
    vd_error_clear(&err);
    cfg.listen[0] = "0.0.0.0:0";
    CHECK_EQ(vd_api_start(&cfg, NULL, &api2, &err), -EPERM);
    CHECK(strstr(err.msg, "--api-token-file") != NULL);
    /* Two TCP listeners: refused. */
    vd_error_clear(&err);
    cfg.listen[0] = "127.0.0.1:0";
    cfg.listen[1] = "127.0.0.2:0";
    cfg.n_listen = 2;
    CHECK_EQ(vd_api_start(&cfg, NULL, &api2, &err), -EINVAL);

    vd_api_stop(NULL);
    return vd_test_done("test_api_server");
}
