/* test_nbd_aio.c — the NBD driver's asynchronous reads, writes and
 * flushes (vd_image_submit) against nbdkit: 32 requests kept in flight
 * from one thread with data verified by offset, spreading over
 * connections, the -EAGAIN cases, server errors, and outages: a server
 * that hangs, dies, dies and comes back, or shuts down — every aio
 * completes exactly once, within its deadline. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "nbd_servers.h"
#include "vd_error.h"
#include "vd_test.h"

#define MIB (1u << 20)
#define KIB 1024u
#define QD 32
#define MAX_LEN (128 * KIB)
#define IMG_SIZE (64 * MIB)

/* One request slot; done hands it back to the main thread. */
struct slot {
    struct vd_aio aio;
    int index;
    atomic_int pending; /* 1 from submit until done */
    int ret;
    int64_t submitted_ms, done_ms;
    uint8_t *buf;
};

static struct slot slots[QD];
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static int q_done[QD]; /* q_lock: slots whose done ran, not yet reaped */
static int q_n;
static atomic_int double_done; /* done on a slot that was not pending */

static void on_done(struct vd_aio *aio, int ret)
{
    struct slot *sl = (struct slot *)aio; /* aio is the first member */
    pthread_mutex_lock(&q_lock); /* pending and the queue change as one */
    if (atomic_exchange(&sl->pending, 0) != 1) {
        atomic_fetch_add(&double_done, 1);
    } else {
        sl->ret = ret;
        sl->done_ms = now_ms();
        q_done[q_n++] = sl->index;
        pthread_cond_signal(&q_cond);
    }
    pthread_mutex_unlock(&q_lock);
}

/* Next slot whose done ran, waiting up to ms; -1 on timeout. */
static int reap(int ms)
{
    int64_t until = now_ms() + ms;
    int i = -1;
    pthread_mutex_lock(&q_lock);
    while (q_n == 0 && now_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q_cond, &q_lock, &ts);
    }
    if (q_n > 0) {
        i = q_done[--q_n];
    }
    pthread_mutex_unlock(&q_lock);
    return i;
}

/* Bytes at off: a 64-bit word per 8 bytes, derived from its offset, so
 * overlapping writes in any order leave the same data. */
static void pattern(uint8_t *buf, size_t len, uint64_t off)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = (off + i) * 0x9e3779b97f4a7c15ull ^ 0x5a5a5a5a5a5a5a5aull;
        memcpy(buf + i, &v, 8);
    }
}

static bool pattern_ok(const uint8_t *buf, size_t len, uint64_t off)
{
    uint8_t want[MAX_LEN];
    pattern(want, len, off);
    return memcmp(buf, want, len) == 0;
}

/* Submit slot i; 0, -EAGAIN or -errno from vd_image_submit. */
static int submit(struct vd_image *img, int i, enum vd_aio_op op, size_t len,
                  uint64_t off)
{
    struct slot *sl = &slots[i];
    sl->aio = (struct vd_aio){
        .op = op, .buf = sl->buf, .len = len, .off = off, .done = on_done};
    if (op == VD_AIO_WRITE) {
        pattern(sl->buf, len, off);
    } else {
        memset(sl->buf, 0xee, len);
    }
    sl->submitted_ms = now_ms();
    atomic_store(&sl->pending, 1);
    int ret = vd_image_submit(img, &sl->aio);
    if (ret < 0) {
        atomic_store(&sl->pending, 0);
    }
    return ret;
}

/* Wait for every pending slot (limit ms) and forget the completion
 * queue; returns how many never completed. */
static int drain(int limit_ms)
{
    int64_t until = now_ms() + limit_ms;
    for (;;) {
        int left = 0;
        pthread_mutex_lock(&q_lock);
        for (int i = 0; i < QD; i++) {
            left += atomic_load(&slots[i].pending);
        }
        if (left == 0 || now_ms() >= until) {
            q_n = 0;
            pthread_mutex_unlock(&q_lock);
            return left;
        }
        pthread_mutex_unlock(&q_lock);
        sleep_ms(2);
    }
}

static struct vd_image *open_nbd(const char *sock, uint32_t timeout_ms)
{
    char uri[512];
    struct vd_open_opts o = {.io_timeout_ms = timeout_ms,
                             .socket_dirs = socket_dirs};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    if (vd_image_open("nbd", uri, &o, &img, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", uri, err.msg);
    }
    return img;
}

/* Extra connections come up in the background after open. */
/* The image's counters, copied. */
static struct vd_image_stats img_stats(struct vd_image *img)
{
    struct vd_image_stats s;
    vd_image_stats(img, &s);
    return s;
}

static bool wait_connected(struct vd_image *img);

/* The server srv on sock is up, the image opens on it and every
 * connection is live (each a CHECK); the image, or NULL. */
static struct vd_image *open_ready(pid_t srv, const char *sock,
                                   uint32_t timeout_ms)
{
    struct vd_image *img;
    CHECK(srv > 0);
    img = open_nbd(sock, timeout_ms);
    CHECK(img != NULL);
    if (img != NULL) {
        CHECK(wait_connected(img));
    }
    return img;
}

static bool wait_connected(struct vd_image *img)
{
    for (int i = 0; i < 300; i++) {
        struct vd_backend_state st;
        if (vd_image_backend_state(img, &st) == 0 &&
            st.link == VD_LINK_CONNECTED) {
            return true;
        }
        sleep_ms(10);
    }
    return false;
}

static uint64_t rnd(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Submit a random 4-128 KiB read or write, 4 KiB aligned, on slot i. */
static int random_io(struct vd_image *img, int i, uint64_t *seed)
{
    size_t len = (size_t)(1 + rnd(seed) % 32) * 4 * KIB;
    uint64_t off = rnd(seed) % ((IMG_SIZE - len) / 4096 + 1) * 4096;
    return submit(img, i, rnd(seed) % 2 ? VD_AIO_READ : VD_AIO_WRITE, len, off);
}

/* ---- the tests -------------------------------------------------------- */

/* Fill the image with 128 KiB writes, then random 4-128 KiB reads and
 * writes, QD slots always busy, from this one thread. Every submit takes
 * the asynchronous path; every read matches the pattern. */
static void test_queue_depth(void)
{
    char sock[256];
    uint64_t seed = 0x1234567;
    int again = 0, failed = 0, bad = 0, ops = 0;
    snprintf(sock, sizeof(sock), "%s/qd.sock", dir);
    pid_t srv = NBDKIT(sock, "memory", "64M");
    struct vd_image *img = open_ready(srv, sock, 5000);
    if (img == NULL) {
        return;
    }

    int64_t t0 = now_ms();
    uint64_t fill_off = 0;
    for (int i = 0; i < QD; i++) {
        int ret = submit(img, i, VD_AIO_WRITE, MAX_LEN, fill_off);
        again += ret == -EAGAIN;
        fill_off += MAX_LEN;
    }
    while (fill_off < IMG_SIZE) {
        int i = reap(5000);
        if (i < 0) {
            break;
        }
        failed += slots[i].ret != 0;
        if (submit(img, i, VD_AIO_WRITE, MAX_LEN, fill_off) < 0) {
            again++;
        }
        fill_off += MAX_LEN;
    }
    CHECK_EQ(drain(5000), 0);
    CHECK_EQ(again, 0);
    CHECK_EQ(failed, 0);
    fprintf(stderr, "aio: filled 64 MiB with 128K writes at QD%d in %lld ms\n",
            QD, (long long)(now_ms() - t0));

    t0 = now_ms();
    for (ops = 0; ops < 6000; ops++) {
        int i = ops < QD ? ops : reap(5000);
        if (i < 0) {
            break;
        }
        struct slot *sl = &slots[i];
        if (ops >= QD) { /* a finished request: check it */
            failed += sl->ret != 0;
            if (sl->ret == 0 && sl->aio.op == VD_AIO_READ &&
                !pattern_ok(sl->buf, sl->aio.len, sl->aio.off)) {
                bad++;
            }
        }
        if (random_io(img, i, &seed) < 0) {
            again++;
            break;
        }
    }
    CHECK_EQ(drain(5000), 0);
    for (int i = 0; i < QD && ops == 6000; i++) { /* the last round */
        failed += slots[i].ret != 0;
        if (slots[i].aio.op == VD_AIO_READ &&
            !pattern_ok(slots[i].buf, slots[i].aio.len, slots[i].aio.off)) {
            bad++;
        }
    }
    CHECK_EQ(ops, 6000);
    CHECK_EQ(again, 0);
    CHECK_EQ(failed, 0);
    CHECK_EQ(bad, 0);
    CHECK_EQ(atomic_load(&double_done), 0);
    CHECK_EQ(img_stats(img).errors, 0);
    CHECK(img_stats(img).reads + img_stats(img).writes >= 6000);
    fprintf(stderr, "aio: %d random 4-128K reads/writes at QD%d in %lld ms\n",
            ops, QD, (long long)(now_ms() - t0));

    /* A flush takes the asynchronous path too. */
    uint64_t flushes = img_stats(img).flushes;
    slots[0].aio = (struct vd_aio){.op = VD_AIO_FLUSH, .done = on_done};
    atomic_store(&slots[0].pending, 1);
    CHECK_EQ(vd_image_submit(img, &slots[0].aio), 0);
    CHECK_EQ(drain(5000), 0);
    CHECK_EQ(slots[0].ret, 0);
    CHECK_EQ(img_stats(img).flushes, flushes + 1);

    /* The synchronous path sees what the asynchronous one wrote. */
    static uint8_t back[MAX_LEN];
    CHECK_EQ(vd_image_pread(img, back, MAX_LEN, 5 * MIB + 4096), 0);
    CHECK(pattern_ok(back, MAX_LEN, 5 * MIB + 4096));
    CHECK_EQ(vd_image_close(img), 0);
    stop_server(srv);
}

/* A server with one thread per connection and 200 ms per read: 8 reads
 * submitted at once finish in about two delays when they are spread
 * over the 4 connections, not eight (one connection, or a thread asleep
 * per request). */
static void test_spread(void)
{
    char sock[256];
    snprintf(sock, sizeof(sock), "%s/spread.sock", dir);
    pid_t srv = NBDKIT(sock, "-t", "1", "--filter=delay", "memory", "64M",
                       "delay-read=200ms");
    struct vd_image *img = open_ready(srv, sock, 5000);
    if (img == NULL) {
        return;
    }
    int64_t t0 = now_ms();
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(submit(img, i, VD_AIO_READ, 4096, (uint64_t)i * MIB), 0);
    }
    CHECK(now_ms() - t0 < 100); /* submitting does not wait */
    CHECK_EQ(drain(5000), 0);
    int64_t ms = now_ms() - t0;
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(slots[i].ret, 0);
    }
    fprintf(stderr, "aio: 8 reads of 200 ms on 4 connections in %lld ms\n",
            (long long)ms);
    CHECK(ms < 1000);
    vd_image_close(img);
    stop_server(srv);
}

/* What the asynchronous path leaves to the synchronous one: requests
 * above the server's maximum size, and a volume without a connection. */
static void test_eagain(void)
{
    char sock[256];
    snprintf(sock, sizeof(sock), "%s/bs.sock", dir);
    pid_t srv = NBDKIT(sock, "--filter=blocksize-policy", "memory", "64M",
                       "blocksize-maximum=65536");
    struct vd_image *img = open_ready(srv, sock, 1000);
    if (img == NULL) {
        return;
    }
    CHECK_EQ(submit(img, 0, VD_AIO_WRITE, 128 * KIB, 0), -EAGAIN);
    CHECK_EQ(submit(img, 0, VD_AIO_WRITE, 64 * KIB, 0), 0);
    CHECK_EQ(drain(2000), 0);
    CHECK_EQ(slots[0].ret, 0);
    stop_server(srv);
    sleep_ms(200); /* the I/O threads notice */
    CHECK_EQ(submit(img, 0, VD_AIO_READ, 4096, 0), -EAGAIN);
    CHECK_EQ(img_stats(img).errors, 0); /* refusals are not errors */
    vd_image_close(img);
}

/* A server that stops answering reads: each fails with -EIO at its
 * deadline (the connection is killed and redialled), and writes work
 * on afterwards. */
static void test_hang(void)
{
    char sock[256];
    snprintf(sock, sizeof(sock), "%s/hang.sock", dir);
    /* -t 1: nbdkit 1.32 can abort when a connection closes while
     * several of its threads are still answering (raw_send_socket). */
    pid_t srv = NBDKIT(sock, "-t", "1", "--filter=delay", "memory", "64M",
                       "delay-read=30");
    struct vd_image *img = open_ready(srv, sock, 1000);
    if (img == NULL) {
        return;
    }
    for (int i = 0; i < QD; i++) {
        CHECK_EQ(submit(img, i, VD_AIO_READ, 4096, (uint64_t)i * 4096), 0);
    }
    CHECK_EQ(drain(3000), 0);
    for (int i = 0; i < QD; i++) {
        int64_t took = slots[i].done_ms - slots[i].submitted_ms;
        CHECK_EQ(slots[i].ret, -EIO);
        CHECK(took >= 900 && took < 1600);
    }
    CHECK_EQ(atomic_load(&double_done), 0);
    CHECK_EQ(img_stats(img).errors, QD);
    static uint8_t buf[4096];
    pattern(buf, sizeof(buf), 0);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
    CHECK(wait_connected(img));
    CHECK_EQ(submit(img, 0, VD_AIO_WRITE, 4096, 0), 0);
    CHECK_EQ(drain(2000), 0);
    CHECK_EQ(slots[0].ret, 0);
    vd_image_close(img);
    stop_server(srv);
}

/* The server is killed with QD requests on the wire (slow enough that
 * none has been answered): every one fails, exactly once, no later
 * than its deadline. */
static void test_killed(void)
{
    char sock[256];
    snprintf(sock, sizeof(sock), "%s/kill.sock", dir);
    pid_t srv = NBDKIT(sock, "--filter=delay", "memory", "64M", "delay-read=10",
                       "delay-write=10");
    struct vd_image *img = open_ready(srv, sock, 1500);
    if (img == NULL) {
        return;
    }
    for (int i = 0; i < QD; i++) {
        CHECK_EQ(submit(img, i, i % 2 ? VD_AIO_READ : VD_AIO_WRITE,
                        (size_t)(1 + i) * 4 * KIB, (uint64_t)i * MIB),
                 0);
    }
    sleep_ms(300);
    stop_server(srv);
    CHECK_EQ(drain(3000), 0);
    int64_t worst = 0;
    for (int i = 0; i < QD; i++) {
        int64_t took = slots[i].done_ms - slots[i].submitted_ms;
        CHECK_EQ(slots[i].ret, -EIO);
        CHECK(took < 1500 + 300);
        worst = took > worst ? took : worst;
    }
    fprintf(stderr, "aio: server killed, slowest of %d failed after %lld ms\n",
            QD, (long long)worst);
    CHECK_EQ(atomic_load(&double_done), 0);
    CHECK_EQ(img_stats(img).errors, QD);
    vd_image_close(img); /* server gone: close must not hang */
}

struct killer {
    pid_t pid;
    int after_ms;
    atomic_bool fired;
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    sleep_ms(k->after_ms);
    kill(k->pid, SIGKILL);
    atomic_store(&k->fired, true);
    return NULL;
}

/* Whether a finished slot failed, checking it finished right: 0 or
 * -EIO, no later than its deadline (1500 ms) and a little slack. */
static bool check_finished(const struct slot *sl)
{
    CHECK(sl->ret == 0 || sl->ret == -EIO);
    CHECK(sl->done_ms - sl->submitted_ms < 1500 + 300);
    return sl->ret != 0;
}

/* Killed by another thread in the middle of a busy random workload,
 * submissions going on for 50 ms after: everything submitted completes,
 * once, within its deadline, successes and failures alike. */
static void test_killed_busy(void)
{
    char sock[256];
    uint64_t seed = 77;
    snprintf(sock, sizeof(sock), "%s/busy.sock", dir);
    pid_t srv = NBDKIT(sock, "memory", "64M");
    struct vd_image *img = open_ready(srv, sock, 1500);
    if (img == NULL) {
        return;
    }
    struct killer k = {.pid = srv, .after_ms = 300};
    pthread_t t;
    pthread_create(&t, NULL, killer_main, &k);
    int completed = 0, failed = 0, refused = 0;
    int64_t fired_at = 0;
    for (int n = 0;; n++) {
        if (fired_at == 0 && atomic_load(&k.fired)) {
            fired_at = now_ms();
        }
        if (fired_at != 0 && now_ms() - fired_at >= 50) {
            break;
        }
        int i = n < QD ? n : reap(fired_at != 0 ? 50 : 3000);
        if (i < 0) {
            break;
        }
        if (n >= QD) {
            completed++;
            failed += check_finished(&slots[i]);
        }
        if (random_io(img, i, &seed) < 0) {
            refused++; /* -EAGAIN: no connection; the slot rests */
        }
    }
    pthread_join(t, NULL);
    stop_server(srv);
    int64_t stop = now_ms();
    CHECK_EQ(drain(3000), 0);
    CHECK(now_ms() - stop < 1500 + 300);
    for (int i = 0; i < QD; i++) {
        if (slots[i].done_ms >= stop) {
            failed += check_finished(&slots[i]);
        }
    }
    fprintf(stderr,
            "aio: busy server killed: %d completions, %d failed, %d "
            "refused\n",
            completed, failed, refused);
    CHECK(completed > QD);
    CHECK_EQ(atomic_load(&double_done), 0);
    vd_image_close(img);
}

/* Dropped with reads on the wire, the server back at once: the reads
 * are sent again on the redialled connections and succeed. */
static void test_retry(void)
{
    char sock[256];
    snprintf(sock, sizeof(sock), "%s/retry.sock", dir);
    pid_t srv =
        NBDKIT(sock, "--filter=delay", "memory", "64M", "delay-read=500ms");
    struct vd_image *img = open_ready(srv, sock, 4000);
    if (img == NULL) {
        return;
    }
    for (int i = 0; i < 16; i++) {
        CHECK_EQ(submit(img, i, VD_AIO_READ, 64 * KIB, (uint64_t)i * MIB), 0);
    }
    sleep_ms(100);
    stop_server(srv);
    srv = NBDKIT(sock, "memory", "64M");
    CHECK(srv > 0);
    CHECK_EQ(drain(5000), 0);
    for (int i = 0; i < 16; i++) {
        CHECK_EQ(slots[i].ret, 0);
        CHECK(slots[i].done_ms - slots[i].submitted_ms < 4000);
    }
    CHECK_EQ(atomic_load(&double_done), 0);
    CHECK_EQ(img_stats(img).errors, 0);
    vd_image_close(img);
    stop_server(srv);
}

/* nbdkit's error filter fails reads while a trigger file exists: the
 * aio fails at once with the server's errno (no retry), and is counted. */
static void test_server_error(void)
{
    char sock[256], trigger[256], targ[300];
    snprintf(sock, sizeof(sock), "%s/err.sock", dir);
    snprintf(trigger, sizeof(trigger), "%s/fail-reads", dir);
    snprintf(targ, sizeof(targ), "error-pread-file=%s", trigger);
    pid_t srv = NBDKIT(sock, "--filter=error", "memory", "64M",
                       "error-pread=ENOSPC", "error-pread-rate=100%", targ);
    struct vd_image *img = open_ready(srv, sock, 3000);
    if (img == NULL) {
        return;
    }
    close(open(trigger, O_CREAT | O_WRONLY, 0600));
    CHECK_EQ(submit(img, 0, VD_AIO_READ, 4096, 0), 0);
    CHECK_EQ(submit(img, 1, VD_AIO_WRITE, 4096, 4096), 0);
    CHECK_EQ(drain(2000), 0);
    CHECK_EQ(slots[0].ret, -ENOSPC);
    CHECK(slots[0].done_ms - slots[0].submitted_ms < 1000);
    CHECK_EQ(slots[1].ret, 0);
    CHECK_EQ(img_stats(img).errors, 1);
    unlink(trigger);
    CHECK_EQ(submit(img, 0, VD_AIO_READ, 4096, 4096), 0);
    CHECK_EQ(drain(2000), 0);
    CHECK_EQ(slots[0].ret, 0);
    CHECK(pattern_ok(slots[0].buf, 4096, 4096));
    vd_image_close(img);
    stop_server(srv);
}

/* nbdkit stopped with SIGTERM answers with ESHUTDOWN and waits for its
 * clients to hang up: the aio lets go of every connection, and succeeds
 * on the restarted server. */
static void test_graceful_restart(void)
{
    char sock[256];
    snprintf(sock, sizeof(sock), "%s/term.sock", dir);
    pid_t srv = NBDKIT(sock, "memory", "64M");
    struct vd_image *img = open_ready(srv, sock, 4000);
    if (img == NULL) {
        return;
    }
    kill(srv, SIGTERM);
    sleep_ms(100);
    CHECK_EQ(submit(img, 0, VD_AIO_READ, 4096, 0), 0);
    bool exited = server_exited(srv, 1500);
    CHECK(exited);
    if (!exited) {
        stop_server(srv);
    }
    srv = NBDKIT(sock, "memory", "64M");
    CHECK_EQ(drain(4000), 0);
    CHECK_EQ(slots[0].ret, 0);
    CHECK(slots[0].done_ms - slots[0].submitted_ms < 2000);
    CHECK_EQ(img_stats(img).errors, 0);
    vd_image_close(img);
    stop_server(srv);
}

int main(void)
{
    if (servers_init("test_nbd_aio", 240) < 0) {
        return 1;
    }
    setenv("VD_NBD_RECONNECT_MAX_MS", "300", 1);
    /* The default follows the CPU count; the checks want four. */
    setenv("VD_NBD_CONNECTIONS", "4", 1);
    for (int i = 0; i < QD; i++) {
        slots[i].index = i;
        slots[i].buf = malloc(MAX_LEN);
    }

    test_queue_depth();
    test_spread();
    test_eagain();
    test_hang();
    test_killed();
    test_killed_busy();
    test_retry();
    test_server_error();
    test_graceful_restart();

    for (int i = 0; i < QD; i++) {
        free(slots[i].buf);
    }
    return vd_test_done("test_nbd_aio");
}
