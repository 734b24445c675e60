/* test_ioloop.c — the I/O engine as an object: drivers given a loop submit
 * through it and complete on its thread, drivers given none take their
 * synchronous path; vd_ioloop_call and the thread markers; the flush that
 * promises not to wait (flush_nowait) refuses whenever qcow2 would write
 * metadata or drain; and a drain on the I/O thread trips its assertion. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostaio.h"
#include "image.h"
#include "ioloop.h"
#include "vd_error.h"
#include "vd_test.h"

#define LEN 65536

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

struct waiter {
    struct vd_aio aio;
    struct vd_ioloop *want; /* the loop done must run on */
    bool on_loop, may_wait;
    int ret;
    bool done;
    bool on_submitter; /* done ran on the submitting thread */
    pthread_t submitter;
};

static void aio_done(struct vd_aio *aio, int ret)
{
    struct waiter *w = (struct waiter *)aio;
    pthread_mutex_lock(&mu);
    w->on_loop = vd_ioloop_self() == w->want;
    w->on_submitter = pthread_equal(pthread_self(), w->submitter);
    w->may_wait = vd_ioloop_may_wait();
    w->ret = ret;
    w->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Submit and wait; the submit's result, or done's when it was taken. */
static int run_aio(struct vd_image *img, struct vd_ioloop *l, enum vd_aio_op op,
                   void *buf, struct waiter *w)
{
    int ret;
    memset(w, 0, sizeof(*w));
    w->aio = (struct vd_aio){
        .op = op, .buf = buf, .len = LEN, .off = 1 << 20, .done = aio_done};
    w->want = l;
    w->submitter = pthread_self();
    ret = vd_image_submit(img, &w->aio);
    if (ret < 0) {
        return ret;
    }
    pthread_mutex_lock(&mu);
    while (!w->done) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    return w->ret;
}

struct call {
    struct vd_hostio io;
    struct vd_ioloop *self;
    bool may_wait, ran;
};

static void call_cb(struct vd_hostio *io, int ret)
{
    struct call *c = (struct call *)io;
    (void)ret;
    pthread_mutex_lock(&mu);
    c->self = vd_ioloop_self();
    c->may_wait = vd_ioloop_may_wait();
    c->ran = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void test_call(struct vd_ioloop *l)
{
    struct call c = {.io = {.cb = call_cb}};
    CHECK(vd_ioloop_self() == NULL);
    CHECK(vd_ioloop_may_wait());
    vd_ioloop_call(l, &c.io);
    pthread_mutex_lock(&mu);
    while (!c.ran) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    CHECK(c.self == l);
    CHECK(!c.may_wait);
    /* A polling window changes nothing but timing. */
    vd_ioloop_poll_until(l, vd_ioloop_now_ns() + 1000000, 100000);
    CHECK_EQ(vd_ioloop_poll_us(l), 20);
}

struct cmd {
    struct vd_ioloop_cmd c;
    int ret;
    bool ran;
};

static void cmd_cb(struct vd_hostio *io, int ret)
{
    struct cmd *c = (struct cmd *)io;
    pthread_mutex_lock(&mu);
    c->ret = ret;
    c->ran = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* A device command reaches the kernel and its result comes back through
 * cb on the I/O thread: a regular file has no command interface, so it
 * answers with an error. A loop made without VD_IOLOOP_CMDS refuses. */
static void test_cmd(const char *dir, struct vd_ioloop *l, bool cmds)
{
    char path[128];
    struct cmd c = {.c = {.io = {.cb = cmd_cb}, .op = 1}};
    snprintf(path, sizeof(path), "%s/cmd", dir);
    c.c.io.fd = open(path, O_RDWR | O_CREAT, 0600);
    CHECK(c.c.io.fd >= 0);
    if (!cmds) {
        CHECK(!vd_ioloop_has_cmd(l));
        CHECK_EQ(vd_ioloop_cmd(l, &c.c), -ENOTSUP);
    } else if (vd_ioloop_has_cmd(l)) {
        CHECK_EQ(vd_ioloop_cmd(l, &c.c), 0);
        pthread_mutex_lock(&mu);
        while (!c.ran) {
            pthread_cond_wait(&cv, &mu);
        }
        pthread_mutex_unlock(&mu);
        CHECK(c.ret < 0);
    }
    close(c.c.io.fd);
    unlink(path);
}

/* raw and qcow2, with a loop and without: the same data either way. */
static void test_submit(const char *dir, const char *fmt, struct vd_ioloop *l)
{
    char path[128];
    struct vd_create_opts co = {.size = 8 << 20};
    struct vd_open_opts oo = {.direct = true};
    struct vd_image *img = NULL, *sync_img = NULL;
    struct waiter w;
    uint8_t *buf = NULL, *back = NULL;

    snprintf(path, sizeof(path), "%s/a.%s", dir, fmt);
    CHECK(posix_memalign((void **)&buf, 4096, LEN) == 0);
    CHECK(posix_memalign((void **)&back, 4096, LEN) == 0);
    memset(buf, 0x5c, LEN);
    CHECK_EQ(vd_image_create(fmt, path, &co, NULL), 0);
    oo.ioloop = l;
    CHECK_EQ(vd_image_open(fmt, path, &oo, &img, NULL), 0);
    /* Allocation is synchronous in qcow2; then the cluster is owned. */
    CHECK_EQ(vd_image_pwrite(img, buf, LEN, 1 << 20), 0);
    CHECK_EQ(vd_image_flush(img), 0);
    memset(buf, 0xa7, LEN);
    CHECK_EQ(run_aio(img, l, VD_AIO_WRITE, buf, &w), 0);
    /* The I/O thread completes it, unless the submitter still held the
     * batch when the last segment finished: then the submitter does
     * (vd_aio.done may run before submit returns). Never elsewhere. */
    CHECK(w.on_loop || w.on_submitter);
    CHECK(w.may_wait == !w.on_loop);
    memset(back, 0, LEN);
    CHECK_EQ(run_aio(img, l, VD_AIO_READ, back, &w), 0);
    CHECK(w.on_loop || w.on_submitter);
    CHECK(memcmp(buf, back, LEN) == 0);
    struct vd_image_stats st;
    vd_image_stats(img, &st);
    CHECK(st.async == 2);
    CHECK_EQ(vd_image_close(img), 0);

    /* No loop: every request takes the synchronous path. */
    oo.ioloop = NULL;
    CHECK_EQ(vd_image_open(fmt, path, &oo, &sync_img, NULL), 0);
    CHECK_EQ(run_aio(sync_img, NULL, VD_AIO_READ, back, &w), -EAGAIN);
    CHECK_EQ(run_aio(sync_img, NULL, VD_AIO_WRITE, back, &w), -EAGAIN);
    CHECK_EQ(vd_image_pread(sync_img, back, LEN, 1 << 20), 0);
    CHECK(memcmp(buf, back, LEN) == 0);
    vd_image_stats(sync_img, &st);
    CHECK(st.async == 0);
    CHECK_EQ(vd_image_close(sync_img), 0);
    free(buf);
    free(back);
}

/* flush_nowait syncs data only; any flush that writes metadata or applies
 * frees (and so drains) is refused. */
static void test_flush_nowait(const char *dir)
{
    char path[128];
    struct vd_create_opts co = {.size = 8 << 20};
    struct vd_open_opts oo = {0};
    struct vd_image *img = NULL;
    struct vd_error err = {0};
    char buf[4096];

    snprintf(path, sizeof(path), "%s/f.qcow2", dir);
    CHECK_EQ(vd_image_create("qcow2", path, &co, NULL), 0);
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, NULL), 0);
    CHECK_EQ(vd_image_flush_nowait(img), 0); /* nothing dirty */
    memset(buf, 1, sizeof(buf));
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0); /* allocates */
    CHECK_EQ(vd_image_flush_nowait(img), -EAGAIN); /* metadata to write */
    CHECK_EQ(vd_image_flush(img), 0);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0); /* in place */
    CHECK_EQ(vd_image_flush_nowait(img), 0);
    /* A snapshot shares the cluster; the overwrite copies it and queues a
     * free of the old one, which the next flush applies after a drain. */
    CHECK_EQ(vd_image_snapshot_create(img, "t", &err), 0);
    CHECK_EQ(vd_image_flush(img), 0);
    CHECK_EQ(vd_image_flush_nowait(img), 0);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
    CHECK_EQ(vd_image_flush_nowait(img), -EAGAIN);
    CHECK_EQ(vd_image_flush(img), 0);
    CHECK_EQ(vd_image_flush_nowait(img), 0);
    CHECK_EQ(vd_image_discard(img, 0, 65536), 0); /* frees queued */
    CHECK_EQ(vd_image_flush_nowait(img), -EAGAIN);
    CHECK_EQ(vd_image_flush(img), 0);
    CHECK_EQ(vd_image_flush_nowait(img), 0);
    CHECK_EQ(vd_image_close(img), 0);

    /* raw has only data to sync. */
    snprintf(path, sizeof(path), "%s/f.raw", dir);
    CHECK_EQ(vd_image_create("raw", path, &co, NULL), 0);
    CHECK_EQ(vd_image_open("raw", path, &oo, &img, NULL), 0);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
    CHECK_EQ(vd_image_flush_nowait(img), 0);
    CHECK_EQ(vd_image_close(img), 0);
}

#ifdef VD_ASSERTS
/* A flush that may drain, called on the I/O thread, aborts. */
static struct vd_image *abort_img;

static void flush_on_loop(struct vd_hostio *io, int ret)
{
    (void)io;
    (void)ret;
    vd_image_flush(abort_img);
    _exit(0); /* not reached */
}

static void test_drain_asserts(const char *dir)
{
    char path[128];
    struct vd_open_opts oo = {0};
    pid_t pid;
    int status = 0;

    snprintf(path, sizeof(path), "%s/f.qcow2", dir);
    pid = fork();
    if (pid == 0) {
        struct vd_ioloop *l = NULL;
        static struct vd_hostio io = {.cb = flush_on_loop};
        (void)!freopen("/dev/null", "w", stderr); /* the expected message */
        if (vd_ioloop_new(0, 0, &l) < 0 ||
            vd_image_open("qcow2", path, &oo, &abort_img, NULL) < 0) {
            _exit(2);
        }
        vd_ioloop_call(l, &io);
        pause();
        _exit(3);
    }
    CHECK(pid > 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}
#endif

int main(void)
{
    char dir[] = "/var/tmp/vdioloop.XXXXXX"; /* O_DIRECT: not tmpfs */
    struct vd_ioloop *l = NULL;
    char cmd[64];

    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ(vd_ioloop_new(20, 0, &l), 0);
    if (l != NULL) {
        test_call(l);
        test_cmd(dir, l, false);
        test_submit(dir, "raw", l);
        test_submit(dir, "qcow2", l);
    }
    vd_ioloop_free(l);
    /* A ring that takes commands still does file I/O the same. */
    CHECK_EQ(vd_ioloop_new(0, VD_IOLOOP_CMDS, &l), 0);
    if (l != NULL) {
        test_cmd(dir, l, true);
        snprintf(cmd, sizeof(cmd), "%s/a.qcow2", dir);
        unlink(cmd);
        test_submit(dir, "qcow2", l);
    }
    vd_ioloop_free(l);
    vd_ioloop_free(NULL);
    test_flush_nowait(dir);
#ifdef VD_ASSERTS
    test_drain_asserts(dir);
#else
    fprintf(stderr,
            "test_ioloop: built without VD_ASSERTS: assertion not checked\n");
#endif
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return vd_test_done("test_ioloop");
}
