/* test_rbd.c — the Ceph RBD driver against a real single-node cluster
 * (tests/ceph/cluster.sh, started once for the whole file): locations and
 * the cluster registry, create and open, synchronous and asynchronous
 * (32 in flight) reads and writes checked against the rbd tool's export,
 * zeroing, block status, growing, snapshots, snapshot views, changed
 * blocks, revert, and the errors for a missing image, snapshot or pool
 * and an unreachable cluster, each within a bounded time. Ends with a
 * 4k QD32 random read/write loop through vd_image_submit, reported only
 * (VD_RBD_BENCH_SECS per run, default 2; 0 skips it).
 *
 * test_rbd --bench CONF POOL/IMAGE SECS runs only that loop, against an
 * existing cluster and image (to compare with fio's ioengine=rbd). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "vd_error.h"
#include "vd_rbd.h"
#include "vd_test.h"

#define KIB 1024u
#define MIB (1u << 20)
#define IMG_SIZE (64 * MIB)
#define QD 32

static char dir[256];    /* the cluster's directory */
static char conf[300];   /* its ceph.conf */
static char script[512]; /* tests/ceph/cluster.sh */
static uint8_t *model;   /* what the image t1 should hold */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void stop_cluster(void)
{
    if (dir[0] != '\0') {
        run("bash %s stop %s", script, dir);
        dir[0] = '\0';
    }
}

static void fill(uint8_t *p, size_t len, uint64_t off, unsigned seed)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = (off + i) * 0x9e3779b97f4a7c15ull ^ seed;
        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

static struct vd_image *open_img(const char *loc, const char *snap, int *ret,
                                 struct vd_error *err)
{
    struct vd_open_opts o = {.snapshot = snap, .readonly = snap != NULL};
    struct vd_image *img = NULL;
    vd_error_clear(err);
    *ret = vd_image_open("rbd", loc, &o, &img, err);
    return img;
}

/* The rbd tool's view of an image equals the model's first len bytes. */
static int export_matches(const char *spec, const uint8_t *want, size_t len)
{
    char out[400];
    snprintf(out, sizeof(out), "%s/export.bin", dir);
    unlink(out);
    if (run("rbd export --no-progress %s %s 2>/dev/null", spec, out) != 0) {
        return 0;
    }
    FILE *f = fopen(out, "rb");
    uint8_t *got = malloc(len + 1);
    size_t n = f != NULL && got != NULL ? fread(got, 1, len + 1, f) : 0;
    int ok = n == len && memcmp(got, want, len) == 0;
    if (f != NULL) {
        fclose(f);
    }
    free(got);
    unlink(out);
    return ok;
}

/* ---- the case list -------------------------------------------------- */

static void test_locations(void)
{
    struct vd_rbd_location l;
    char buf[64];
    CHECK_EQ(vd_rbd_location_parse("rbd://c1/rbd/vm-disk", &l, NULL), 0);
    CHECK(strcmp(l.cluster, "c1") == 0 && strcmp(l.pool, "rbd") == 0 &&
          strcmp(l.image, "vm-disk") == 0);
    const char *bad[] = {
        "rbd://c1/rbd",      "rbd://c1/rbd/",    "rbd:///rbd/x",
        "rbd://C1/rbd/x",    "rbd://c1/rbd/a/b", "rbd://c1/.x/y",
        "rbd://c1/p/x@snap", "nbd://c/p/i",      "rbd://c1/p/../x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vd_error err = {0};
        CHECK_EQ(vd_rbd_location_parse(bad[i], &l, &err), -EINVAL);
        CHECK(err.msg[0] != '\0');
    }
    CHECK_EQ(vd_rbd_location_format(buf, sizeof(buf), "c1", "rbd", "x"), 14);
    CHECK(strcmp(buf, "rbd://c1/rbd/x") == 0);
    CHECK_EQ(vd_rbd_location_format(buf, sizeof(buf), "c1", "rbd", "a/b"),
             -EINVAL);
    CHECK_EQ(vd_rbd_location_format(buf, 8, "c1", "rbd", "x"), -ERANGE);
}

static void test_registry(const char *down_conf)
{
    struct vd_error err = {0};
    CHECK_EQ(vd_rbd_cluster_add("Bad", conf, NULL, &err), -EINVAL);
    vd_error_clear(&err);
    CHECK_EQ(vd_rbd_cluster_add("c2", "/nonexistent/ceph.conf", NULL, &err),
             -ENOENT);
    CHECK_EQ(vd_rbd_cluster_add("c1", conf, "admin", NULL), 0);
    vd_error_clear(&err);
    CHECK_EQ(vd_rbd_cluster_add("c1", conf, NULL, &err), -EEXIST);
    CHECK_EQ(vd_rbd_cluster_add("down", down_conf, NULL, NULL), 0);
    CHECK_EQ(vd_rbd_cluster_count(), 2);
    /* a key the monitor does not know, and a keyring that is not there */
    CHECK_EQ(run("ceph-authtool --create-keyring %s/bad.keyring --gen-key "
                 "-n client.admin >/dev/null && "
                 "sed 's|^keyring = .*|keyring = %s/bad.keyring|' %s "
                 ">%s/badkey.conf && "
                 "sed 's|^keyring = .*|keyring = %s/none.keyring|' %s "
                 ">%s/nokey.conf",
                 dir, dir, conf, dir, dir, conf, dir),
             0);
    char path[400];
    snprintf(path, sizeof(path), "%s/badkey.conf", dir);
    CHECK_EQ(vd_rbd_cluster_add("badkey", path, NULL, NULL), 0);
    snprintf(path, sizeof(path), "%s/nokey.conf", dir);
    CHECK_EQ(vd_rbd_cluster_add("nokey", path, NULL, NULL), 0);
    CHECK(strcmp(vd_rbd_cluster_name(1), "down") == 0);
}

static void test_errors(const char *key)
{
    struct vd_error err = {0};
    struct vd_create_opts co = {.size = IMG_SIZE};
    int ret;
    int64_t t0;

    CHECK(open_img("rbd://c1/rbd/missing", NULL, &ret, &err) == NULL);
    CHECK_EQ(ret, -ENOENT);
    CHECK(strstr(err.msg, "does not exist") != NULL);
    CHECK(open_img("rbd://c1/nopool/x", NULL, &ret, &err) == NULL);
    CHECK_EQ(ret, -ENOENT);
    CHECK(strstr(err.msg, "no pool 'nopool'") != NULL);
    CHECK(open_img("rbd://nocluster/rbd/x", NULL, &ret, &err) == NULL);
    CHECK_EQ(ret, -ENOENT);
    CHECK(strstr(err.msg, "no RBD cluster named") != NULL);
    CHECK(open_img("rbd://c1/rbd/t1", "nosnap", &ret, &err) == NULL);
    CHECK_EQ(ret, -ENOENT);
    CHECK(strstr(err.msg, "no snapshot 'nosnap'") != NULL);
    vd_error_clear(&err);
    CHECK_EQ(vd_image_create("rbd", "rbd://c1/rbd/t1", &co, &err), -EEXIST);
    vd_error_clear(&err);
    CHECK_EQ(vd_image_create("rbd", "rbd://c1/nopool/t1", &co, &err), -ENOENT);

    /* No monitor on the port: fails within the connect timeout (3 s
     * here), twice (a failed connect is not cached as success), and the
     * message names the cluster, not its files or key. */
    for (int i = 0; i < 2; i++) {
        t0 = now_ms();
        CHECK(open_img("rbd://down/rbd/t1", NULL, &ret, &err) == NULL);
        int64_t took = now_ms() - t0;
        fprintf(stderr, "unreachable cluster: %d (%s) after %lld ms\n", ret,
                err.msg, (long long)took);
        CHECK(ret == -ETIMEDOUT);
        CHECK(took < 8000);
        CHECK(strstr(err.msg, "cluster 'down'") != NULL);
        CHECK(strstr(err.msg, dir) == NULL);
        CHECK(strstr(err.msg, key) == NULL);
    }
    const char *denied[] = {"rbd://badkey/rbd/t1", "rbd://nokey/rbd/t1"};
    for (int i = 0; i < 2; i++) {
        t0 = now_ms();
        CHECK(open_img(denied[i], NULL, &ret, &err) == NULL);
        fprintf(stderr, "%s: %d (%s) after %lld ms\n", denied[i], ret, err.msg,
                (long long)(now_ms() - t0));
        CHECK_EQ(ret, -EACCES);
        CHECK(now_ms() - t0 < 8000);
        CHECK(strstr(err.msg, dir) == NULL);
    }
}

static void test_sync_io(struct vd_image *img)
{
    uint8_t *buf = malloc(MIB), *rd = malloc(MIB);
    struct {
        uint64_t off;
        size_t len;
    } w[] = {
        {0, 4 * KIB},
        {4 * MIB - 512, 8 * KIB},
        {10 * MIB, MIB},
        {IMG_SIZE - 64 * KIB, 64 * KIB},
        {33 * MIB + 512, 3 * 512},
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        fill(buf, w[i].len, w[i].off, 1);
        CHECK_EQ(vd_image_pwrite(img, buf, w[i].len, w[i].off), 0);
        memcpy(model + w[i].off, buf, w[i].len);
    }
    CHECK_EQ(vd_image_flush(img), 0);
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        memset(rd, 0xee, w[i].len);
        CHECK_EQ(vd_image_pread(img, rd, w[i].len, w[i].off), 0);
        CHECK(memcmp(rd, model + w[i].off, w[i].len) == 0);
    }
    /* never written: zeroes */
    CHECK_EQ(vd_image_pread(img, rd, 64 * KIB, 50 * MIB), 0);
    CHECK(memcmp(rd, model + 50 * MIB, 64 * KIB) == 0);
    /* past the end: refused by the dispatcher */
    CHECK_EQ(vd_image_pread(img, rd, 4096, IMG_SIZE), -EINVAL);
    free(buf);
    free(rd);
}

/* ---- asynchronous: QD requests in flight from one thread ------------ */

struct slot {
    struct vd_aio aio;
    int index;
    atomic_int pending; /* from submit until done */
    bool busy;          /* main thread: from submit until reaped */
    int ret;
    uint8_t *buf;
};

static struct slot slots[QD];
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static int q_done[QD]; /* q_lock: slots whose done ran, not yet reaped */
static int q_n;
static atomic_int double_done;

static void on_done(struct vd_aio *aio, int ret)
{
    struct slot *sl = (struct slot *)aio;
    pthread_mutex_lock(&q_lock);
    if (atomic_exchange(&sl->pending, 0) != 1) {
        atomic_fetch_add(&double_done, 1);
    } else {
        sl->ret = ret;
        q_done[q_n++] = sl->index;
        pthread_cond_signal(&q_cond);
    }
    pthread_mutex_unlock(&q_lock);
}

/* Next finished slot, waiting up to 30 s; -1 on timeout. */
static int reap(void)
{
    struct timespec ts;
    int i = -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&q_lock);
    while (q_n == 0) {
        if (pthread_cond_timedwait(&q_cond, &q_lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (q_n > 0) {
        i = q_done[--q_n];
        slots[i].busy = false;
    }
    pthread_mutex_unlock(&q_lock);
    return i;
}

static int submit(struct vd_image *img, struct slot *sl, enum vd_aio_op op,
                  size_t len, uint64_t off)
{
    sl->aio = (struct vd_aio){
        .op = op, .buf = sl->buf, .len = len, .off = off, .done = on_done};
    atomic_store(&sl->pending, 1);
    int ret = vd_image_submit(img, &sl->aio);
    if (ret < 0) {
        atomic_store(&sl->pending, 0);
    }
    sl->busy = ret == 0;
    return ret;
}

/* n requests of op, QD at a time; each slot keeps to its own 2 MiB
 * stripe so writes in flight never overlap. Writes update the model,
 * reads are compared with it. Returns the number that failed. */
static int aio_round(struct vd_image *img, enum vd_aio_op op, int n,
                     unsigned seed)
{
    const uint64_t stripe = IMG_SIZE / QD;
    int submitted = 0, finished = 0, failed = 0;
    for (int i = 0; i < QD && submitted < n; i++, submitted++) {
        slots[i].index = i;
    }
    submitted = 0;
    unsigned rnd = seed;
    for (;;) {
        /* keep every idle slot busy until n were submitted */
        for (int i = 0; i < QD && submitted < n; i++) {
            if (slots[i].busy) {
                continue;
            }
            rnd = rnd * 1103515245u + 12345u;
            size_t len = (size_t)(1 + (rnd >> 8) % 32) * 4 * KIB;
            uint64_t off =
                (uint64_t)i * stripe + ((rnd >> 16) % (stripe / 512)) * 512;
            if (off + len > (uint64_t)(i + 1) * stripe) {
                off = (uint64_t)(i + 1) * stripe - len;
            }
            if (op == VD_AIO_WRITE) {
                fill(slots[i].buf, len, off, seed);
                memcpy(model + off, slots[i].buf, len);
            } else {
                memset(slots[i].buf, 0xee, len);
            }
            int ret = submit(img, &slots[i], op, len, off);
            CHECK_EQ(ret, 0);
            if (ret < 0) {
                return n;
            }
            submitted++;
        }
        if (finished == submitted && submitted == n) {
            break;
        }
        int i = reap();
        CHECK(i >= 0);
        if (i < 0) {
            return n;
        }
        finished++;
        if (slots[i].ret != 0) {
            if (failed++ == 0) {
                fprintf(stderr, "aio %s at %llu+%zu: %d\n",
                        op == VD_AIO_READ ? "read" : "write",
                        (unsigned long long)slots[i].aio.off, slots[i].aio.len,
                        slots[i].ret);
            }
        } else if (op == VD_AIO_READ &&
                   memcmp(slots[i].buf, model + slots[i].aio.off,
                          slots[i].aio.len) != 0) {
            if (failed++ == 0) {
                size_t k = 0;
                while (slots[i].buf[k] == model[slots[i].aio.off + k]) {
                    k++;
                }
                fprintf(stderr, "aio read at %llu+%zu differs at +%zu\n",
                        (unsigned long long)slots[i].aio.off, slots[i].aio.len,
                        k);
            }
        }
    }
    return failed;
}

static void test_async_io(struct vd_image *img)
{
    for (int i = 0; i < QD; i++) {
        slots[i].buf = malloc(128 * KIB);
        slots[i].index = i;
    }
    CHECK_EQ(aio_round(img, VD_AIO_WRITE, 400, 7), 0);
    CHECK_EQ(aio_round(img, VD_AIO_READ, 400, 7), 0);  /* same offsets */
    CHECK_EQ(aio_round(img, VD_AIO_READ, 400, 99), 0); /* elsewhere */
    /* an asynchronous flush */
    CHECK_EQ(submit(img, &slots[0], VD_AIO_FLUSH, 0, 0), 0);
    CHECK_EQ(reap(), 0);
    CHECK_EQ(slots[0].ret, 0);
    CHECK_EQ(atomic_load(&double_done), 0);
    struct vd_image_stats st0;
    vd_image_stats(img, &st0);
    CHECK(st0.async >= 1201);
}

static void test_zeroes(struct vd_image *img)
{
    uint8_t *rd = malloc(64 * KIB), zero[4096] = {0};
    /* 4 KiB inside written data: rbd_discard alone would keep it */
    CHECK_EQ(vd_image_discard(img, 10 * MIB + 8 * KIB, 4 * KIB), 0);
    memset(model + 10 * MIB + 8 * KIB, 0, 4 * KIB);
    CHECK_EQ(vd_image_pread(img, rd, 4 * KIB, 10 * MIB + 8 * KIB), 0);
    CHECK(memcmp(rd, zero, 4 * KIB) == 0);
    CHECK_EQ(vd_image_write_zeroes(img, 10 * MIB + 20 * KIB, 12 * KIB, 0), 0);
    memset(model + 10 * MIB + 20 * KIB, 0, 12 * KIB);
    CHECK_EQ(vd_image_pread(img, rd, 64 * KIB, 10 * MIB), 0);
    CHECK(memcmp(rd, model + 10 * MIB, 64 * KIB) == 0);
    free(rd);
}

static void test_block_status(struct vd_image *img)
{
    struct vd_create_opts co = {.size = 32 * MIB};
    struct vd_image *b;
    uint8_t buf[4096];
    uint64_t pnum = 0;
    int ret;

    CHECK_EQ(vd_image_create("rbd", "rbd://c1/rbd/holes", &co, NULL), 0);
    b = open_img("rbd://c1/rbd/holes", NULL, &ret, NULL);
    CHECK(b != NULL);
    if (b == NULL) {
        return;
    }
    CHECK_EQ(vd_image_block_status(b, 0, 32 * MIB, &pnum), VD_BS_ZERO);
    CHECK_EQ(pnum, 32 * MIB);
    CHECK_EQ(vd_image_allocated(b), 0);
    fill(buf, sizeof(buf), 0, 3);
    CHECK_EQ(vd_image_pwrite(b, buf, sizeof(buf), 9 * MIB), 0);  /* object 2 */
    CHECK_EQ(vd_image_pwrite(b, buf, sizeof(buf), 12 * MIB), 0); /* object 3 */
    CHECK_EQ(vd_image_flush(b), 0);
    CHECK_EQ(vd_image_block_status(b, 0, 32 * MIB, &pnum), VD_BS_ZERO);
    CHECK_EQ(pnum, 8 * MIB);
    CHECK(vd_image_block_status(b, 8 * MIB, 24 * MIB, &pnum) & VD_BS_DATA);
    CHECK_EQ(pnum, 8 * MIB);
    CHECK_EQ(vd_image_block_status(b, 10 * MIB, MIB, &pnum),
             VD_BS_DATA | VD_BS_ALLOCATED);
    CHECK_EQ(pnum, MIB);
    CHECK_EQ(vd_image_block_status(b, 16 * MIB, 16 * MIB, &pnum), VD_BS_ZERO);
    CHECK_EQ(pnum, 16 * MIB);
    CHECK_EQ(vd_image_allocated(b), 8 * MIB);
    CHECK_EQ(vd_image_close(b), 0);
    CHECK_EQ(vd_rbd_image_remove("rbd://c1/rbd/holes", NULL), 0);
    CHECK_EQ(vd_rbd_image_remove("rbd://c1/rbd/holes", NULL), -ENOENT);
    (void)img;
}

struct change {
    uint64_t off, len;
};
struct changes {
    struct change c[64];
    int n;
};

static int on_change(void *arg, uint64_t off, uint64_t len)
{
    struct changes *ch = arg;
    if (ch->n < 64) {
        ch->c[ch->n++] = (struct change){off, len};
    }
    return 0;
}

static void test_snapshots(struct vd_image **pimg, const char *key)
{
    struct vd_image *img = *pimg, *view;
    struct vd_snapshot_info *info = NULL;
    struct vd_error err = {0};
    struct changes ch = {.n = 0};
    uint8_t *rd = malloc(MIB), *old = malloc(IMG_SIZE), *buf = malloc(MIB);
    struct vd_backend_state st;
    int n, ret;

    memcpy(old, model, IMG_SIZE);
    CHECK_EQ(vd_image_snapshot_create(img, "s1", NULL), 0);
    CHECK_EQ(vd_image_snapshot_create(img, "s1", &err), -EEXIST);
    fill(buf, MIB, 20 * MIB, 5); /* after s1: one MiB at 20 MiB */
    CHECK_EQ(vd_image_pwrite(img, buf, MIB, 20 * MIB), 0);
    memcpy(model + 20 * MIB, buf, MIB);
    CHECK_EQ(vd_image_snapshot_create(img, "s2", NULL), 0);
    CHECK_EQ(run("rbd snap ls rbd/t1 | grep -qw s1"), 0);

    n = vd_image_snapshot_list(img, &info);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(info[0].name, "s1") == 0);
        CHECK(strcmp(info[1].name, "s2") == 0);
        CHECK_EQ(info[0].disk_size, IMG_SIZE);
        CHECK(info[0].date_sec > 1700000000);
    }
    free(info);

    /* the view of s1 reads the old data; the head the new */
    view = open_img("rbd://c1/rbd/t1", "s1", &ret, &err);
    CHECK(view != NULL);
    if (view != NULL) {
        CHECK(vd_image_readonly(view));
        CHECK_EQ(vd_image_pread(view, rd, MIB, 20 * MIB), 0);
        CHECK(memcmp(rd, old + 20 * MIB, MIB) == 0);
        CHECK_EQ(vd_image_pwrite(view, rd, 4096, 0), -EROFS);
        CHECK_EQ(vd_image_backend_state(view, &st), 0);
        CHECK(!st.lock_owner); /* a read-only view never takes the lock */
        vd_image_close(view);
    }
    CHECK_EQ(vd_image_pread(img, rd, MIB, 20 * MIB), 0);
    CHECK(memcmp(rd, model + 20 * MIB, MIB) == 0);
    CHECK(export_matches("rbd/t1@s1", old, IMG_SIZE));

    /* changed blocks: s1 -> s2 is the one MiB written between them */
    CHECK_EQ(vd_image_snapshot_changes(img, "s1", "s2", on_change, &ch, NULL),
             0);
    CHECK_EQ(ch.n, 1);
    CHECK_EQ(ch.c[0].off, 20 * MIB);
    CHECK_EQ(ch.c[0].len, MIB);
    ch.n = 0;
    CHECK_EQ(vd_image_snapshot_changes(img, NULL, "s1", on_change, &ch, NULL),
             0);
    CHECK(ch.n >= 1);
    CHECK(ch.n > 0 && ch.c[0].off == 0);
    vd_error_clear(&err);
    CHECK_EQ(
        vd_image_snapshot_changes(img, "s1", "nosnap", on_change, &ch, &err),
        -ENOENT);

    /* revert to s1: the head reads the old data again */
    CHECK_EQ(vd_image_snapshot_revert(img, "s1", NULL), 0);
    CHECK_EQ(vd_image_pread(img, rd, MIB, 20 * MIB), 0);
    CHECK(memcmp(rd, old + 20 * MIB, MIB) == 0);
    memcpy(model, old, IMG_SIZE);

    CHECK_EQ(vd_image_snapshot_delete(img, "s2", NULL), 0);
    vd_error_clear(&err);
    CHECK_EQ(vd_image_snapshot_delete(img, "s2", &err), -ENOENT);
    CHECK_EQ(vd_image_snapshot_list(img, &info), 1);
    free(info);

    CHECK_EQ(vd_image_backend_state(img, &st), 0);
    fprintf(stderr, "features: %s\n", st.features);
    CHECK(st.link == VD_LINK_CONNECTED && st.connected == 1);
    CHECK(strstr(st.features, "exclusive-lock") != NULL);
    CHECK(st.have_lock && st.lock_owner);
    CHECK(st.last_error[0] == '\0');
    CHECK(strstr(st.features, dir) == NULL && strstr(st.features, key) == NULL);
    free(rd);
    free(old);
    free(buf);
    *pimg = img;
}

static void test_grow(struct vd_image *img)
{
    struct vd_error err = {0};
    uint8_t buf[4096];
    CHECK_EQ(vd_image_truncate(img, IMG_SIZE + 32 * MIB, NULL), 0);
    CHECK_EQ(vd_image_length(img), IMG_SIZE + 32 * MIB);
    CHECK_EQ(run("rbd info rbd/t1 | grep -q 'size 96 MiB'"), 0);
    fill(buf, sizeof(buf), IMG_SIZE + MIB, 9);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), IMG_SIZE + MIB), 0);
    CHECK_EQ(vd_image_truncate(img, IMG_SIZE, &err), -ENOTSUP);
}

/* Whether process pid is stopped (state T in /proc/pid/stat) within 5 s. */
static bool wait_stopped(int pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, "r");
        char *p = NULL;
        if (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            p = strrchr(line, ')');
        }
        if (f != NULL) {
            fclose(f);
        }
        if (p != NULL && p[1] == ' ' && (p[2] == 'T' || p[2] == 't')) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* An OSD that stops answering: with a 2 s OSD timeout on its own
 * connection, a read fails with EIO in about that time, the backend state says
 * the image is not connected, and once the OSD is back reads work again
 * on the same open image. */
static void test_osd_pause(void)
{
    struct vd_error err = {0};
    struct vd_image *img;
    char pidfile[400];
    struct vd_backend_state st;
    uint8_t buf[4096];
    int ret, pid = 0;
    FILE *f;

    setenv("VD_RBD_OP_TIMEOUT_S", "2", 1);
    CHECK_EQ(vd_rbd_cluster_add("slow", conf, NULL, NULL), 0);
    img = open_img("rbd://slow/rbd/t1", NULL, &ret, &err);
    unsetenv("VD_RBD_OP_TIMEOUT_S");
    CHECK(img != NULL);
    snprintf(pidfile, sizeof(pidfile), "%s/run/osd.0.pid", dir);
    f = fopen(pidfile, "r");
    if (f == NULL || fscanf(f, "%d", &pid) != 1 || img == NULL) {
        CHECK(!"no OSD pid or image");
        if (f != NULL) {
            fclose(f);
        }
        vd_image_close(img);
        return;
    }
    fclose(f);
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), 0);
    kill(pid, SIGSTOP);
    /* The signal takes effect when the OSD is next scheduled: on a busy
     * machine a read sent at once may still be answered. */
    CHECK(wait_stopped(pid));
    int64_t t0 = now_ms();
    ret = vd_image_pread(img, buf, sizeof(buf), 4 * MIB);
    int64_t took = now_ms() - t0;
    CHECK_EQ(vd_image_backend_state(img, &st), 0);
    kill(pid, SIGCONT);
    fprintf(stderr, "read with the OSD stopped: %d after %lld ms\n", ret,
            (long long)took);
    CHECK_EQ(ret, -EIO);
    CHECK(took >= 1500 && took < 6000);
    CHECK(st.link == VD_LINK_DISCONNECTED && st.connected == 0);
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 4 * MIB), 0);
    CHECK(memcmp(buf, model + 4 * MIB, sizeof(buf)) == 0);
    CHECK_EQ(vd_image_backend_state(img, &st), 0);
    CHECK(st.link == VD_LINK_CONNECTED && st.connected == 1);
    CHECK_EQ(vd_image_close(img), 0);
}

/* ---- a bounded benchmark, reported only ----------------------------- */

static double bench(struct vd_image *img, enum vd_aio_op op, uint64_t size,
                    int secs)
{
    int64_t until = now_ms() + secs * 1000, t0 = now_ms();
    uint64_t done = 0;
    unsigned rnd = 12345;
    int inflight = 0;
    for (int i = 0; i < QD; i++) {
        rnd = rnd * 1103515245u + 12345u;
        if (submit(img, &slots[i], op, 4096,
                   ((rnd >> 4) % (size / 4096)) * 4096) == 0) {
            inflight++;
        }
    }
    while (inflight > 0) {
        int i = reap();
        if (i < 0) {
            break;
        }
        inflight--;
        done++;
        if (now_ms() < until) {
            rnd = rnd * 1103515245u + 12345u;
            if (submit(img, &slots[i], op, 4096,
                       ((uint64_t)rnd % (size / 4096)) * 4096) == 0) {
                inflight++;
            }
        }
    }
    return (double)done * 1000.0 / (double)(now_ms() - t0);
}

static void run_bench(void)
{
    const char *v = getenv("VD_RBD_BENCH_SECS");
    int secs = v != NULL ? atoi(v) : 2;
    uint64_t size = 256ull * MIB;
    struct vd_create_opts co = {.size = size};
    struct vd_image *b;
    int ret;
    if (secs <= 0) {
        return;
    }
    CHECK_EQ(vd_image_create("rbd", "rbd://c1/rbd/bench", &co, NULL), 0);
    b = open_img("rbd://c1/rbd/bench", NULL, &ret, NULL);
    CHECK(b != NULL);
    if (b == NULL) {
        return;
    }
    /* written in full first, so reads find data */
    CHECK_EQ(run("rbd bench --io-type write --io-size 4M --io-threads 4 "
                 "--io-total 256M --io-pattern seq rbd/bench >/dev/null"),
             0);
    double w = bench(b, VD_AIO_WRITE, size, secs);
    double r = bench(b, VD_AIO_READ, size, secs);
    fprintf(stderr,
            "bench: 4k QD%d through vd_image_submit, %d s each: "
            "randwrite %.0f IOPS, randread %.0f IOPS\n",
            QD, secs, w, r);
    CHECK_EQ(vd_image_close(b), 0);
}

static int bench_only(const char *cf, const char *spec, int secs)
{
    char loc[512];
    struct vd_error err = {0};
    struct vd_image *img;
    int ret;
    snprintf(loc, sizeof(loc), "rbd://bench/%s", spec);
    if (vd_rbd_cluster_add("bench", cf, NULL, &err) < 0 ||
        (img = open_img(loc, NULL, &ret, &err)) == NULL) {
        fprintf(stderr, "test_rbd: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < QD; i++) {
        slots[i].buf = malloc(4096);
        slots[i].index = i;
    }
    uint64_t size = vd_image_length(img);
    double w = bench(img, VD_AIO_WRITE, size, secs);
    double r = bench(img, VD_AIO_READ, size, secs);
    printf("4k QD%d through vd_image_submit, %d s each: randwrite %.0f IOPS, "
           "randread %.0f IOPS\n",
           QD, secs, w, r);
    vd_image_close(img);
    vd_rbd_clusters_shutdown();
    return 0;
}

int main(int argc, char **argv)
{
    const char *src = getenv("VD_SRCDIR");
    char down_conf[320], key[128] = "", line[512];
    struct vd_create_opts co = {.size = IMG_SIZE};
    struct vd_image *img;
    FILE *f;
    int ret, p;

    if (argc == 5 && strcmp(argv[1], "--bench") == 0) {
        return bench_only(argv[2], argv[3], atoi(argv[4]));
    }
    if (src == NULL) {
        fprintf(stderr, "test_rbd: VD_SRCDIR is not set\n");
        return 1;
    }
    snprintf(script, sizeof(script), "%s/tests/ceph/cluster.sh", src);
    snprintf(dir, sizeof(dir), "%s/vd-rbd-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(stop_cluster);
    int64_t t0 = now_ms();
    if (run("OWNER_PID=%d bash %s start %s >/dev/null", (int)getpid(), script,
            dir) != 0) {
        fprintf(stderr, "test_rbd: the cluster did not start\n");
        return 1;
    }
    fprintf(stderr, "cluster up in %lld ms\n", (long long)(now_ms() - t0));
    snprintf(conf, sizeof(conf), "%s/ceph.conf", dir);
    setenv("CEPH_CONF", conf, 1);
    setenv("VD_RBD_CONNECT_TIMEOUT_S", "3", 1);

    /* the admin key, to prove it never shows */
    snprintf(line, sizeof(line), "%s/keyring", dir);
    f = fopen(line, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, " key = %127s", key) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    CHECK(key[0] != '\0');

    /* a copy of the config whose monitor address answers nothing */
    p = 0;
    f = popen("python3 -c 'import socket; s=socket.socket(); "
              "s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])'",
              "r");
    if (f == NULL || fscanf(f, "%d", &p) != 1) {
        p = 9; /* discard: nothing answers there either */
    }
    if (f != NULL) {
        pclose(f);
    }
    snprintf(down_conf, sizeof(down_conf), "%s/down.conf", dir);
    CHECK_EQ(run("sed 's/^mon host = .*/mon host = v1:127.0.0.1:%d/' %s > %s",
                 p, conf, down_conf),
             0);

    model = calloc(1, IMG_SIZE);
    test_locations();
    test_registry(down_conf);

    CHECK_EQ(vd_image_create("rbd", "rbd://c1/rbd/t1", &co, NULL), 0);
    CHECK_EQ(run("rbd info rbd/t1 | grep -q 'features: layering, "
                 "exclusive-lock, object-map, fast-diff, deep-flatten'"),
             0);
    img = open_img("rbd://c1/rbd/t1", NULL, &ret, NULL);
    CHECK(img != NULL);
    if (img == NULL) {
        return vd_test_done("test_rbd");
    }
    CHECK_EQ(vd_image_length(img), IMG_SIZE);
    test_errors(key);
    test_sync_io(img);
    test_async_io(img);
    test_zeroes(img);
    CHECK_EQ(vd_image_flush(img), 0);
    CHECK(export_matches("rbd/t1", model, IMG_SIZE));
    test_block_status(img);
    test_snapshots(&img, key);
    CHECK(export_matches("rbd/t1", model, IMG_SIZE));
    test_grow(img);
    test_osd_pause();
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(vd_rbd_image_remove("rbd://c1/rbd/t1", NULL), -ENOTEMPTY);

    run_bench();
    vd_rbd_clusters_shutdown();
    free(model);
    for (int i = 0; i < QD; i++) {
        free(slots[i].buf);
    }
    t0 = now_ms();
    stop_cluster();
    fprintf(stderr, "cluster stopped in %lld ms\n", (long long)(now_ms() - t0));
    return vd_test_done("test_rbd");
}
