/* test_api_auth.c — request-head screening (screen.c) and the token file
 * (auth.c): what a head must look like, and which token files are
 * refused, how roles and names come back, and that near misses (a
 * prefix, one more byte, one byte changed) never match. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "screen.h"
#include "vd_error.h"
#include "vd_test.h"

static unsigned check(const char *head)
{
    char msg[256];
    return api_head_check(head, strlen(head), msg, sizeof(msg));
}

static void test_screen(void)
{
    static const char nul[] = "GET /volumes/v1\0x HTTP/1.1\r\nHost: x\r\n\r\n";
    char msg[256];

    CHECK_EQ(api_head_length("GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY", 31), 27);
    CHECK_EQ(api_head_length("GET / HTTP/1.1\r\nHost: x\r\n", 25), 0);
    CHECK_EQ(api_head_length("GET / HTTP/1.0\n\n", 16), 16);

    CHECK_EQ(check("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    CHECK_EQ(check("GET /health HTTP/1.0\r\n\r\n"), 0);
    CHECK_EQ(
        check(
            "POST /volumes HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"),
        0);
    CHECK_EQ(check("POST /volumes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n"),
             0);
    CHECK_EQ(check("GET /x HTTP/1.1\r\nHost:    x   \r\nX-Empty:\r\n\r\n"), 0);

    CHECK_EQ(api_head_check(nul, sizeof(nul) - 1, msg, sizeof(msg)), 400);
    CHECK(strstr(msg, "NUL") != NULL);
    CHECK_EQ(check("GET /x HTTP/1.1\r\n\r\n"), 400); /* no Host */
    CHECK_EQ(check("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    CHECK_EQ(check("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
             400);
    CHECK_EQ(
        check("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"),
        400);
    CHECK_EQ(check("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: "
                   "18446744073709551616\r\n\r\n"),
             400);
    CHECK_EQ(
        check("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"),
        400);
    CHECK_EQ(check("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
             400);
    CHECK_EQ(check("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: "
                   "2\r\nContent-Length: 2\r\n\r\n"),
             400);
    CHECK_EQ(check("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: "
                   "2\r\nTransfer-Encoding: chunked\r\n\r\n"),
             400);
    CHECK_EQ(check("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, "
                   "chunked\r\n\r\n"),
             400);
    CHECK_EQ(check("GET /x HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
    CHECK_EQ(check("GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
    CHECK_EQ(check("GET /x HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n"), 400);
    CHECK_EQ(check("GET /x HTTP/1.1\r\nHost: a\x01\r\n\r\n"), 400);
    CHECK_EQ(check("GET  /x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    CHECK_EQ(check("GET /x y HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    CHECK_EQ(check("GET /x\r\n\r\n"), 400);
    CHECK_EQ(check("G(T /x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    CHECK_EQ(check("GET /x HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    CHECK_EQ(check("GET /x HTTP/1.10\r\nHost: a\r\n\r\n"), 505);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return -1;
    }
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        close(fd);
        return -1;
    }
    close(fd);
    return chmod(path, mode);
}

static int load(const char *path, const char *text, mode_t mode,
                struct api_tokens **t, struct vd_error *err)
{
    vd_error_clear(err);
    if (write_file(path, text, mode) < 0) {
        return -999;
    }
    return api_tokens_load(path, t, err);
}

static void test_tokens(void)
{
    char dir[] = "/tmp/vdauth.XXXXXX", path[64], name[API_TOKEN_NAME_MAX + 1];
    struct vd_error err = {0};
    struct api_tokens *t = NULL;
    const char *good = "# tokens\n\nops admin 0123456789abcdef0123\n"
                       "viewer read fedcba9876543210fedc\n";

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/tokens", dir);

    CHECK_EQ(load(path, good, 0644, &t, &err), -EPERM);
    CHECK(strstr(err.msg, "group or others") != NULL);
    CHECK_EQ(load(path, good, 0604, &t, &err), -EPERM);
    CHECK_EQ(load(path, good, 0620, &t, &err), -EPERM);
    CHECK_EQ(load(path, "ops admin short\n", 0600, &t, &err), -EINVAL);
    CHECK_EQ(load(path, "ops root 0123456789abcdef0123\n", 0600, &t, &err),
             -EINVAL);
    CHECK_EQ(
        load(path, "ops admin 0123456789abcdef0123 extra\n", 0600, &t, &err),
        -EINVAL);
    CHECK_EQ(load(path,
                  "a admin 0123456789abcdef0123\n"
                  "b read 0123456789abcdef0123\n",
                  0600, &t, &err),
             -EINVAL); /* the same token twice */
    CHECK_EQ(load(path, "# nothing\n", 0600, &t, &err), -EINVAL);
    CHECK(t == NULL);

    CHECK_EQ(load(path, good, 0600, &t, &err), 0);
    api_tokens_free(t);
    t = NULL;
    CHECK_EQ(load(path, good, 0400, &t, &err) == 0 ? 0 : 1, 0);
    api_tokens_free(t);
    t = NULL;
    CHECK_EQ(load(path, good, 0600, &t, &err), 0);
    CHECK_EQ(api_tokens_count(t), 2);
    CHECK_EQ(api_tokens_check(t, "0123456789abcdef0123", name, sizeof(name)),
             API_ROLE_ADMIN);
    CHECK(strcmp(name, "ops") == 0);
    CHECK_EQ(api_tokens_check(t, "fedcba9876543210fedc", name, sizeof(name)),
             API_ROLE_READ);
    CHECK(strcmp(name, "viewer") == 0);
    CHECK_EQ(api_tokens_check(t, "0123456789abcdef012", name, sizeof(name)),
             API_ROLE_NONE);
    CHECK_EQ(api_tokens_check(t, "0123456789abcdef01234", name, sizeof(name)),
             API_ROLE_NONE);
    CHECK_EQ(api_tokens_check(t, "0123456789abcdef0124", name, sizeof(name)),
             API_ROLE_NONE);
    CHECK_EQ(api_tokens_check(t, "", name, sizeof(name)), API_ROLE_NONE);
    CHECK_EQ(api_tokens_check(t, NULL, name, sizeof(name)), API_ROLE_NONE);
    CHECK_EQ(api_tokens_check(NULL, "0123456789abcdef0123", name, sizeof(name)),
             API_ROLE_NONE);
    api_tokens_free(t);

    CHECK(api_bearer_token(NULL) == NULL);
    CHECK(api_bearer_token("Basic abc") == NULL);
    CHECK(api_bearer_token("Bearerabc") == NULL);
    CHECK(strcmp(api_bearer_token("Bearer abc"), "abc") == 0);
    CHECK(strcmp(api_bearer_token("bearer  abc"), "abc") == 0);

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_screen();
    test_tokens();
    return vd_test_done("test_api_auth");
}
