/* test_nbd.c — the NBD driver through the dispatcher against real servers
 * it starts itself (nbdkit memory/error/delay/nozero, qemu-nbd): data
 * ops, parallel I/O, read-only exports, bad URIs, unreachable servers,
 * missing exports, fault injection, outages with reconnect, lazy open.
 * Servers come from nbd_servers.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "nbd_servers.h"
#include "vd_error.h"
#include "vd_test.h"

#define MIB (1u << 20)

static struct vd_image *open_uri(const char *uri, struct vd_open_opts *o)
{
    struct vd_open_opts def = {.socket_dirs = socket_dirs};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    int ret = vd_image_open("nbd", uri, o ? o : &def, &img, &err);
    if (ret < 0) {
        fprintf(stderr, "open %s: %d %s\n", uri, ret, err.msg);
    }
    return img;
}

static int open_err(const char *uri, char *msg, size_t len)
{
    struct vd_open_opts o = {.socket_dirs = socket_dirs};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    int ret = vd_image_open("nbd", uri, &o, &img, &err);
    snprintf(msg, len, "%s", err.msg);
    vd_image_close(img);
    return ret;
}

/* The image's counters, copied. */
static struct vd_image_stats img_stats(struct vd_image *img)
{
    struct vd_image_stats s;
    vd_image_stats(img, &s);
    return s;
}

/* The driver's backend state (struct vd_backend_state), zeroed on error. */
static struct vd_backend_state bstate(struct vd_image *img)
{
    struct vd_backend_state st;
    if (vd_image_backend_state(img, &st) < 0) {
        memset(&st, 0, sizeof(st));
        st.link = VD_LINK_CONNECTING;
    }
    return st;
}

/* Extra connections come up in the background after open. */
static bool wait_connected(struct vd_image *img)
{
    for (int i = 0; i < 200; i++) {
        if (bstate(img).link == VD_LINK_CONNECTED) {
            return true;
        }
        sleep_ms(10);
    }
    return false;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
    }
}

static bool is_zero(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Write, read back, flush, zero, discard, block status on any server. */
static void check_data_ops(struct vd_image *img, bool holes_read_as_zero)
{
    static uint8_t buf[1 * MIB], back[1 * MIB];
    uint64_t pnum = 0;

    fill(buf, sizeof(buf), 1);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 1 * MIB), 0);
    CHECK_EQ(vd_image_pread(img, back, sizeof(back), 1 * MIB), 0);
    CHECK(memcmp(buf, back, sizeof(buf)) == 0);
    CHECK_EQ(vd_image_pwrite(img, buf, 100, 3 * MIB + 7), 0); /* unaligned */
    CHECK_EQ(vd_image_pread(img, back, 100, 3 * MIB + 7), 0);
    CHECK(memcmp(buf, back, 100) == 0);
    CHECK_EQ(vd_image_flush(img), 0);

    CHECK_EQ(vd_image_block_status(img, 1 * MIB, 1 * MIB, &pnum),
             VD_BS_DATA | VD_BS_ALLOCATED);
    CHECK(pnum > 0 && pnum <= 1 * MIB);
    if (holes_read_as_zero) {
        int bs = vd_image_block_status(img, 8 * MIB, 4 * MIB, &pnum);
        CHECK(bs >= 0 && (bs & VD_BS_ZERO));
        CHECK(pnum > 0 && pnum <= 4 * MIB);
    }

    CHECK_EQ(vd_image_write_zeroes(img, 1 * MIB, 64 * 1024, 0), 0);
    CHECK_EQ(vd_image_pread(img, back, 64 * 1024 + 512, 1 * MIB), 0);
    CHECK(is_zero(back, 64 * 1024));
    CHECK(memcmp(back + 64 * 1024, buf + 64 * 1024, 512) == 0);
    CHECK_EQ(vd_image_discard(img, 1 * MIB + 128 * 1024, 64 * 1024), 0);
    CHECK_EQ(vd_image_pread(img, back, 64 * 1024, 1 * MIB + 128 * 1024), 0);
    CHECK(is_zero(back, 64 * 1024));
    CHECK_EQ(
        vd_image_write_zeroes(img, 2 * MIB - 4096, 4096, VD_ZERO_MAY_UNMAP), 0);
    CHECK_EQ(vd_image_pread(img, back, 4096, 2 * MIB - 4096), 0);
    CHECK(is_zero(back, 4096));

    /* The dispatcher's range checks hold for a remote size too. */
    uint64_t size = vd_image_length(img);
    CHECK_EQ(vd_image_pread(img, back, 512, size), -EINVAL);
    CHECK_EQ(vd_image_pread(img, back, 512, size - 512), 0);
}

/* ---- parallel I/O ----------------------------------------------------- */

struct worker {
    struct vd_image *img;
    int id, iters;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t buf[64 * 1024], back[64 * 1024];
    for (int i = 0; i < w->iters; i++) {
        uint64_t off =
            (uint64_t)w->id * 4 * MIB + (uint64_t)(i % 64) * sizeof(buf);
        fill(buf, sizeof(buf), (unsigned)(w->id * 1000 + i));
        if (vd_image_pwrite(w->img, buf, sizeof(buf), off) != 0 ||
            vd_image_pread(w->img, back, sizeof(back), off) != 0 ||
            memcmp(buf, back, sizeof(buf)) != 0) {
            w->failures++;
        }
    }
    return NULL;
}

static int64_t run_workers(struct vd_image *img, int n, int iters,
                           int *failures)
{
    pthread_t t[8];
    struct worker w[8];
    int64_t start = now_ms();
    *failures = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (struct worker){.img = img, .id = i, .iters = iters};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        *failures += w[i].failures;
    }
    return now_ms() - start;
}

/* ---- the tests -------------------------------------------------------- */

static void test_unix_memory(void)
{
    char sock[256], uri[512];
    snprintf(sock, sizeof(sock), "%s/mem.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    pid_t srv = NBDKIT(sock, "memory", "64M");
    CHECK(srv > 0);
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(img != NULL);
    if (img == NULL) {
        return;
    }
    CHECK_EQ(vd_image_length(img), 64 * MIB);
    CHECK(!vd_image_readonly(img));
    check_data_ops(img, true);
    CHECK(wait_connected(img));
    CHECK(bstate(img).have_server && bstate(img).server.can_multi_conn);
    CHECK_EQ(bstate(img).connections, 4);

    /* Larger than one NBD request: split and reassembled. */
    size_t big = 40 * MIB;
    uint8_t *b = malloc(big), *r = malloc(big);
    fill(b, big, 9);
    CHECK_EQ(vd_image_pwrite(img, b, big, 20 * MIB), 0);
    CHECK_EQ(vd_image_pread(img, r, big, 20 * MIB), 0);
    CHECK(memcmp(b, r, big) == 0);
    free(b);
    free(r);

    int failures;
    int64_t ms = run_workers(img, 8, 200, &failures);
    CHECK_EQ(failures, 0);
    fprintf(stderr,
            "parallel: 8 threads x 200 x (64K write + read) in %lld ms\n",
            (long long)ms);
    CHECK_EQ(img_stats(img).errors, 1); /* only the out-of-range read */
    CHECK_EQ(vd_image_close(img), 0);
    stop_server(srv);
}

static void test_tcp(void)
{
    char port[16], uri[256];
    int p = free_port();
    snprintf(port, sizeof(port), "%d", p);
    snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%d/", p);
    pid_t srv = start_server(
        NULL, p,
        (const char *const[]){"nbdkit", "--exit-with-parent", "-f", "-i",
                              "127.0.0.1", "-p", port, "memory", "16M", NULL});
    CHECK(srv > 0);
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(img != NULL);
    if (img != NULL) {
        CHECK_EQ(vd_image_length(img), 16 * MIB);
        check_data_ops(img, true);
        vd_image_close(img);
    }
    stop_server(srv);
}

/* Requests really overlap: 8 threads against 50 ms of server latency per
 * read finish far sooner than the same requests one after another. */
static void test_latency_parallel(void)
{
    char sock[256], uri[512];
    snprintf(sock, sizeof(sock), "%s/delay.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    pid_t srv =
        NBDKIT(sock, "--filter=delay", "memory", "64M", "delay-read=50ms");
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(srv > 0 && img != NULL);
    if (img != NULL) {
        int failures;
        int64_t ms = run_workers(img, 8, 8, &failures); /* 64 reads */
        CHECK_EQ(failures, 0);
        fprintf(stderr, "latency: 64 reads of 50 ms each in %lld ms\n",
                (long long)ms);
        CHECK(ms < 64 * 50 / 3);
        vd_image_close(img);
    }
    stop_server(srv);
}

static void test_read_only(void)
{
    char sock[256], uri[512];
    uint8_t buf[4096] = {0};
    snprintf(sock, sizeof(sock), "%s/ro.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    pid_t srv = NBDKIT(sock, "-r", "memory", "8M");
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(srv > 0 && img != NULL);
    if (img != NULL) {
        CHECK(vd_image_readonly(img));
        CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), 0);
        CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), -EROFS);
        CHECK_EQ(vd_image_discard(img, 0, 4096), -EROFS);
        CHECK(bstate(img).have_server && bstate(img).server.read_only);
        CHECK_EQ(vd_image_close(img), 0);
    }
    stop_server(srv);
}

static void test_bad_uris(void)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "/tmp/file.raw",
        "file:///etc/passwd",
        "http://x/",
        "nbds://127.0.0.1/",
        "nbds+unix:///?socket=/tmp/s",
        "nbd+vsock://1",
        "nbd+ssh://host/",
        "nbd://",
        "nbd://:10809/",
        "nbd://host:0/",
        "nbd://host:99999/",
        "nbd://host:abc/",
        "nbd://user@host/",
        "nbd://host/?tls-psk-file=/etc/shadow",
        "nbd://[::1/",
        "nbd+unix:///exp",
        "nbd+unix://host/?socket=/tmp/s",
        "nbd+unix:///?socket=rel/path",
        "nbd+unix:///?socket=/s&tls=on",
        "nbd+unix:///?socket=/tmp/a%2Fb.sock",
        "nbd+unix:///?socket=/tmp/",
        "nbd+unix:///?socket=/tmp/..",
        "nbd://host/a b",
        "nbd://host/#frag",
    };
    char msg[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        int ret = open_err(bad[i], msg, sizeof(msg));
        if (ret != -EINVAL) {
            fprintf(stderr, "URI '%s' gave %d: %s\n", bad[i], ret, msg);
        }
        CHECK_EQ(ret, -EINVAL);
        CHECK(strstr(msg, "URI") != NULL || strstr(msg, "scheme") != NULL);
    }
}

static void test_unreachable(void)
{
    char uri[512], msg[512];
    int64_t t0 = now_ms();
    snprintf(uri, sizeof(uri), "nbd://127.0.0.1:%d/", free_port());
    CHECK_EQ(open_err(uri, msg, sizeof(msg)), -ENXIO);
    CHECK(strstr(msg, uri) != NULL && strstr(msg, "refused") != NULL);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/nothing.sock", dir);
    CHECK_EQ(open_err(uri, msg, sizeof(msg)), -ENXIO);
    CHECK(strstr(msg, uri) != NULL);
    CHECK(now_ms() - t0 < 3000);
}

/* Unix sockets only in socket_dirs: outside (existing or not, through
 * "..", a symlinked directory or a symlinked socket) is -EACCES with one
 * message shape, before any connection attempt; no dirs, no sockets. */
static void test_socket_dirs(void)
{
    char sock[256], uri[512], msg[512], link[256], outside[512];
    struct vd_open_opts none = {0};
    struct vd_error err = {0};
    struct vd_image *img = NULL;

    snprintf(sock, sizeof(sock), "%s/in.sock", dir);
    pid_t srv = NBDKIT(sock, "memory", "8M");
    CHECK(srv > 0);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    CHECK_EQ(vd_image_open("nbd", uri, &none, &img, &err), -EACCES);
    CHECK(strstr(err.msg, "not allowed") != NULL);
    CHECK(img == NULL);

    static const char *const refused[] = {
        "/etc/passwd",         /* exists, outside */
        "/nonexistent/x.sock", /* does not exist, outside */
        "%s/../x.sock",        /* climbs out */
        "%s/etc/x.sock",       /* a symlink to /etc */
        "%s/outlink.sock",     /* a symlink to a socket outside */
    };
    snprintf(link, sizeof(link), "%s/etc", dir);
    CHECK(symlink("/etc", link) == 0);
    snprintf(link, sizeof(link), "%s/outlink.sock", dir);
    CHECK(symlink("/run/outside.sock", link) == 0);
    for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
        char path[300];
        snprintf(path, sizeof(path), refused[i], dir);
        snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", path);
        int64_t t0 = now_ms();
        CHECK_EQ(open_err(uri, msg, sizeof(msg)), -EACCES);
        CHECK(now_ms() - t0 < 100); /* refused before dialling */
        snprintf(outside, sizeof(outside),
                 "socket '%s' is not in a directory allowed for NBD sockets",
                 path);
        if (strcmp(msg, outside) != 0) {
            fprintf(stderr, "socket %s: %s\n", path, msg);
        }
        CHECK(strcmp(msg, outside) == 0);
    }

    /* "." and ".." that stay inside are fine (but ../ after a symlink
     * climbs from where the link points: dir/etc/.. is /). */
    snprintf(link, sizeof(link), "%s/sub", dir);
    CHECK(mkdir(link, 0700) == 0);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/./sub/../in.sock", dir);
    img = open_uri(uri, NULL);
    CHECK(img != NULL);
    vd_image_close(img);
    rmdir(link);
    stop_server(srv);
}

/* qemu-nbd with a named export over a raw file: the data lands in the
 * file, and a wrong export name is -ENXIO. */
static void test_qemu_nbd(void)
{
    char sock[256], img_path[256], uri[512], msg[512];
    static uint8_t buf[1 * MIB], back[1 * MIB];
    snprintf(sock, sizeof(sock), "%s/qemu.sock", dir);
    snprintf(img_path, sizeof(img_path), "%s/disk.raw", dir);
    int fd = open(img_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 16 * MIB) == 0);
    close(fd);
    pid_t srv = start_server(sock, 0,
                             (const char *const[]){"qemu-nbd", "-k", sock, "-f",
                                                   "raw", "-x", "exp", "-e",
                                                   "8", "-t", img_path, NULL});
    CHECK(srv > 0);

    snprintf(uri, sizeof(uri), "nbd+unix:///nope?socket=%s", sock);
    CHECK_EQ(open_err(uri, msg, sizeof(msg)), -ENXIO);
    CHECK(strstr(msg, uri) != NULL);

    snprintf(uri, sizeof(uri), "nbd+unix:///exp?socket=%s", sock);
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(img != NULL);
    if (img != NULL) {
        CHECK_EQ(vd_image_length(img), 16 * MIB);
        CHECK(wait_connected(img)); /* -e 8: qemu-nbd offers multi-conn */
        check_data_ops(img, false);
        fill(buf, sizeof(buf), 77);
        CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 5 * MIB), 0);
        CHECK_EQ(vd_image_close(img), 0);
        fd = open(img_path, O_RDONLY);
        CHECK(pread(fd, back, sizeof(back), 5 * MIB) == (ssize_t)sizeof(back));
        CHECK(memcmp(buf, back, sizeof(buf)) == 0);
        close(fd);
    }
    stop_server(srv);
}

/* nbdkit's error filter fails reads while a trigger file exists; writes
 * and, later, reads keep working on the same image. */
static void test_error_injection(void)
{
    char sock[256], uri[512], trigger[256], targ[300];
    uint8_t buf[4096];
    snprintf(sock, sizeof(sock), "%s/err.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    snprintf(trigger, sizeof(trigger), "%s/fail-reads", dir);
    snprintf(targ, sizeof(targ), "error-pread-file=%s", trigger);
    pid_t srv = NBDKIT(sock, "--filter=error", "memory", "8M",
                       "error-pread=EIO", "error-pread-rate=100%", targ);
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(srv > 0 && img != NULL);
    if (img == NULL) {
        return;
    }
    fill(buf, sizeof(buf), 3);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
    close(open(trigger, O_CREAT | O_WRONLY, 0600));
    int64_t t0 = now_ms();
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), -EIO);
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 4096), -EIO);
    CHECK(now_ms() - t0 < 1000); /* a server error is not retried */
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 8192), 0);
    CHECK_EQ(img_stats(img).errors, 2);
    unlink(trigger);
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), 0);
    CHECK(wait_connected(img));
    vd_image_close(img);
    stop_server(srv);
}

/* Servers without structured replies (no block status) or without
 * write zeroes: the driver answers with the documented fallbacks. */
static void test_fallbacks(void)
{
    char sock[256], uri[512];
    uint8_t buf[8192];
    uint64_t pnum = 0;
    snprintf(sock, sizeof(sock), "%s/fb.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);

    pid_t srv = NBDKIT(sock, "--no-sr", "memory", "8M");
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(srv > 0 && img != NULL);
    if (img != NULL) {
        CHECK_EQ(vd_image_block_status(img, 0, 1 * MIB, &pnum),
                 VD_BS_DATA | VD_BS_ALLOCATED);
        CHECK_EQ(pnum, 1 * MIB);
        CHECK(bstate(img).have_server && !bstate(img).server.block_status);
        vd_image_close(img);
    }
    stop_server(srv);

    /* Writable without multi-conn: one connection, or a flush on one
     * would not cover writes made on another. */
    srv = NBDKIT(sock, "--filter=multi-conn", "memory", "64M",
                 "multi-conn-mode=disable");
    img = open_uri(uri, NULL);
    CHECK(srv > 0 && img != NULL);
    if (img != NULL) {
        CHECK(bstate(img).have_server && !bstate(img).server.can_multi_conn);
        CHECK(wait_connected(img));
        CHECK(bstate(img).connections == 1 && bstate(img).connected == 1);
        check_data_ops(img, true);
        vd_image_close(img);
    }
    stop_server(srv);

    srv = NBDKIT(sock, "--filter=nozero", "memory", "8M");
    img = open_uri(uri, NULL);
    CHECK(srv > 0 && img != NULL);
    if (img != NULL) {
        memset(buf, 0xee, sizeof(buf));
        CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
        CHECK_EQ(vd_image_write_zeroes(img, 0, 4096, 0), 0); /* buffers */
        CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), 0);
        CHECK(is_zero(buf, 4096) && buf[4096] == 0xee);
        CHECK_EQ(vd_image_discard(img, 4096, 4096), -ENOTSUP);
        CHECK(bstate(img).have_server && !bstate(img).server.can_zero);
        vd_image_close(img);
    }
    stop_server(srv);
}

struct bg_read {
    struct vd_image *img;
    int ret;
    int64_t ms;
};

static void *bg_read_main(void *arg)
{
    struct bg_read *b = arg;
    uint8_t buf[4096];
    int64_t t0 = now_ms();
    b->ret = vd_image_pread(b->img, buf, sizeof(buf), 0);
    b->ms = now_ms() - t0;
    return NULL;
}

/* Wait until I/O works again after a server restart; ms taken or -1. */
static int64_t wait_io_back(struct vd_image *img, int limit_ms)
{
    uint8_t buf[4096];
    int64_t t0 = now_ms();
    while (now_ms() - t0 < limit_ms) {
        if (vd_image_pread(img, buf, sizeof(buf), 0) == 0) {
            return now_ms() - t0;
        }
        sleep_ms(50);
    }
    return -1;
}

/* The server dies (in flight and idle), hangs, and comes back. Timeout
 * 2 s, reconnect backoff capped at 300 ms. */
static void test_outage(void)
{
    char sock[256], sock2[256], uri[512], uri2[512];
    uint8_t buf[4096];
    snprintf(sock, sizeof(sock), "%s/out.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    snprintf(sock2, sizeof(sock2), "%s/other.sock", dir);
    snprintf(uri2, sizeof(uri2), "nbd+unix:///?socket=%s", sock2);

    pid_t srv = NBDKIT(sock, "--filter=delay", "memory", "8M", "delay-read=1");
    pid_t other_srv = NBDKIT(sock2, "memory", "8M");
    struct vd_image *img = open_uri(uri, NULL);
    struct vd_image *other = open_uri(uri2, NULL);
    CHECK(srv > 0 && other_srv > 0 && img != NULL && other != NULL);
    if (img == NULL || other == NULL) {
        vd_image_close(img);
        vd_image_close(other);
        return;
    }
    fill(buf, sizeof(buf), 5);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);

    /* Killed with a read in flight: -EIO within the timeout. */
    struct bg_read b = {.img = img};
    pthread_t t;
    pthread_create(&t, NULL, bg_read_main, &b);
    sleep_ms(300);
    stop_server(srv);
    pthread_join(t, NULL);
    CHECK_EQ(b.ret, -EIO);
    CHECK(b.ms >= 1500 && b.ms < 3500);
    fprintf(stderr, "outage: in-flight read failed after %lld ms\n",
            (long long)b.ms);

    /* Long outage: new I/O fails quickly (after one poked redial attempt,
     * not the whole timeout); the other volume is fine. */
    int64_t t0 = now_ms();
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), -EIO);
    CHECK(now_ms() - t0 < 1000);
    CHECK_EQ(bstate(img).link, VD_LINK_DISCONNECTED);
    t0 = now_ms();
    CHECK_EQ(vd_image_pwrite(other, buf, sizeof(buf), 0), 0);
    CHECK_EQ(vd_image_pread(other, buf, sizeof(buf), 0), 0);
    CHECK(now_ms() - t0 < 500);

    /* Back on the same socket: I/O works again without reopening. */
    srv = NBDKIT(sock, "memory", "8M");
    CHECK(srv > 0);
    int64_t back = wait_io_back(img, 3000);
    CHECK(back >= 0);
    fprintf(stderr, "outage: I/O back %lld ms after restart\n",
            (long long)back);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
    CHECK(wait_connected(img));
    CHECK(bstate(img).reconnects > 0);
    stop_server(srv);

    /* A hung server (10 s reads): the read fails at the timeout, the
     * connection is dropped and redialled, writes keep working. */
    srv = NBDKIT(sock, "--filter=delay", "memory", "8M", "delay-read=10");
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0); /* reconnects */
    t0 = now_ms();
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), -EIO);
    int64_t ms = now_ms() - t0;
    CHECK(ms >= 1500 && ms < 3500);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 4096), 0);
    CHECK(strstr(bstate(img).last_error, "no reply in time") != NULL);
    stop_server(srv);

    CHECK(img_stats(img).errors >= 3);
    CHECK_EQ(img_stats(other).errors, 0);
    vd_image_close(img); /* server gone: close must not hang */
    vd_image_close(other);
    stop_server(other_srv);
}

/* nbdkit stopped with SIGTERM answers requests with ESHUTDOWN and waits
 * for its clients to hang up: the driver lets go so the server can exit,
 * and a read issued meanwhile succeeds on the restarted server. */
static void test_graceful_restart(void)
{
    char sock[256], uri[512];
    snprintf(sock, sizeof(sock), "%s/term.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    pid_t srv = NBDKIT(sock, "memory", "8M");
    struct vd_image *img = open_uri(uri, NULL);
    CHECK(srv > 0 && img != NULL);
    if (img == NULL) {
        return;
    }
    CHECK(wait_connected(img));
    kill(srv, SIGTERM);
    sleep_ms(100);
    struct bg_read b = {.img = img};
    pthread_t t;
    pthread_create(&t, NULL, bg_read_main, &b);
    bool exited = server_exited(srv, 1500);
    CHECK(exited);
    if (!exited) {
        stop_server(srv);
    }
    srv = NBDKIT(sock, "memory", "8M");
    pthread_join(t, NULL);
    CHECK_EQ(b.ret, 0);
    CHECK(b.ms < 2000);
    CHECK_EQ(img_stats(img).errors, 0);
    vd_image_close(img);
    stop_server(srv);
}

/* A server back after a long outage serves the next request at once,
 * though the reconnect backoff (cap 60 s here) has grown to seconds. */
static void test_poke_redial(void)
{
    char sock[256], uri[512];
    uint8_t buf[4096];
    snprintf(sock, sizeof(sock), "%s/poke.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    pid_t srv = NBDKIT(sock, "memory", "8M");
    setenv("VD_NBD_RECONNECT_MAX_MS", "60000", 1);
    struct vd_image *img = open_uri(uri, NULL);
    setenv("VD_NBD_RECONNECT_MAX_MS", "300", 1);
    CHECK(srv > 0 && img != NULL);
    if (img == NULL) {
        return;
    }
    stop_server(srv);
    sleep_ms(3500); /* redials at 0.1, 0.3, 0.7, 1.5, 3.1 s; next at 6.3 s */
    srv = NBDKIT(sock, "memory", "8M");
    int64_t t0 = now_ms();
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), 0);
    CHECK(now_ms() - t0 < 1000);
    vd_image_close(img);
    stop_server(srv);
}

/* Start-up with the server down: lazy open succeeds, sized by the hint,
 * and the volume comes alive when the server does. */
static void test_lazy(void)
{
    char sock[256], uri[512], msg[512];
    uint8_t buf[4096];
    snprintf(sock, sizeof(sock), "%s/lazy.sock", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    unlink(sock);

    CHECK_EQ(open_err(uri, msg, sizeof(msg)), -ENXIO);
    struct vd_open_opts o = {
        .lazy_connect = true, .size_hint = 8 * MIB, .socket_dirs = socket_dirs};
    struct vd_image *img = open_uri(uri, &o);
    CHECK(img != NULL);
    if (img == NULL) {
        return;
    }
    CHECK_EQ(vd_image_length(img), 8 * MIB);
    CHECK_EQ(bstate(img).link, VD_LINK_CONNECTING);
    CHECK(!bstate(img).have_server);
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), -EIO);

    /* A server of another size is not attached. */
    pid_t srv = NBDKIT(sock, "memory", "4M");
    sleep_ms(700);
    CHECK(strstr(bstate(img).last_error, "differs") != NULL);
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), -EIO);
    stop_server(srv);

    srv = NBDKIT(sock, "memory", "8M");
    CHECK(wait_io_back(img, 3000) >= 0);
    CHECK(wait_connected(img));
    fill(buf, sizeof(buf), 8);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
    vd_image_close(img);

    /* A size hint that does not match the server fails a normal open. */
    o.lazy_connect = false;
    o.size_hint = 16 * MIB;
    struct vd_error err = {0};
    CHECK_EQ(vd_image_open("nbd", uri, &o, &img, &err), -ENXIO);
    stop_server(srv);
}

int main(void)
{
    if (servers_init("test_nbd", 240) < 0) {
        return 1;
    }
    setenv("VD_NBD_TIMEOUT_MS", "2000", 1);
    setenv("VD_NBD_RECONNECT_MAX_MS", "300", 1);
    /* The default follows the CPU count; the checks want four. */
    setenv("VD_NBD_CONNECTIONS", "4", 1);

    test_bad_uris();
    test_unreachable();
    test_socket_dirs();
    test_unix_memory();
    test_tcp();
    test_latency_parallel();
    test_read_only();
    test_qemu_nbd();
    test_error_injection();
    test_fallbacks();
    test_outage();
    test_graceful_restart();
    test_poke_redial();
    test_lazy();
    return vd_test_done("test_nbd");
}
