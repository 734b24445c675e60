/* test_qcow2_faults.c — a qcow2 workload with a host I/O fault injected at
 * each point in turn (formats/fault.h), in the manner of SQLite's fault
 * simulation tests.
 *
 * One unarmed run counts the operations of a class the workload performs
 * (allocating writes, overwrites, copy-on-write after snapshots, snapshot
 * create/revert/delete, resize across an L1 boundary, zeroes, discard,
 * flushes, close). Then, for every k, a fresh image runs the same workload
 * with the kth operation of that class failing, and is closed (a close
 * may fail). Then:
 *   - `qemu-img check` finds no corruption (exit 0, or 3 for leaks);
 *   - reopened by the driver, every block reads back as it was at the last
 *     successful flush, or as one of the versions written since;
 *   - if the client never saw an error, the image holds exactly what it
 *     was told it holds;
 *   - the driver can write to the image again, and qemu-img agrees.
 * During the run, a read that succeeds must return what the client was
 * told the disk holds, or for failed requests either old or new data.
 *
 * Faults are one-shot (later operations succeed) or sticky (every later
 * write and flush fails too: the image is what a crash at that point
 * leaves, short of lost page cache). After a one-shot fault the client
 * either stops and closes, or goes on to the end as a VM does after an
 * EIO; after a sticky one it stops. A flush fault is sticky inside the
 * driver whatever the mode: after a failed fdatasync every later flush
 * fails and no metadata is written (q2_sync).
 *
 * The model keeps, for each 4 KiB block, the acknowledged version, the
 * version at the last successful flush, the versions written since and
 * those of failed requests; contents are a function of (block, version),
 * version 0 being zeroes, and are compared per 512-byte sector.
 *
 * Usage: test_qcow2_faults [class|all [geometry]] runs only the sweeps of
 * one class (read, data-write, meta-write, flush, resize) and geometry
 * (64k, 4k, 512, 512r); VD_FAULT_FULL=1 adds the read sweeps left out by
 * default on small clusters, and the 512r geometry. With VD_FAULT_KEEP=1
 * a failing run keeps the images that failed (fail-*.qcow2). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "image.h"
#include "vd_error.h"
#include "vd_test.h"

#define BLK 4096u
#define MAXHIST 16
#define CHUNK 16u /* blocks per verifying read */

/* Geometry of one sweep: a low region present from the start, and a high
 * one that exists once the image has grown (past an L1 entry's span for
 * 64 KiB clusters). */
struct geometry {
    const char *name;
    uint32_t cluster_size;
    uint64_t lo_bytes; /* initial virtual size */
    uint64_t hi_off;   /* start of the high region */
    uint64_t hi_bytes;
    uint64_t grown; /* size after the resize */
    uint64_t cache_bytes;
    bool fill_hi; /* write the whole high region once grown */
};

static const struct geometry *geo;
static uint32_t nlo, nhi, nblocks;

struct block {
    uint32_t acked;         /* what the client was last told */
    uint32_t stable;        /* as of the last successful flush */
    uint32_t hist[MAXHIST]; /* written since that flush, acked or not */
    uint32_t nhist;
    int64_t pending;       /* version of the request under way, or -1 */
    uint32_t alt[MAXHIST]; /* versions of failed requests since the
                              last acknowledged one: maybe current */
    uint32_t nalt;
};

static struct block *blocks;
static uint32_t next_version;
/* What a snapshot holds of each block: the acknowledged version at its
 * creation, or one of the versions of requests that had failed. */
struct snap_block {
    uint32_t v[MAXHIST + 1];
    uint32_t n;
};
static struct snap_block *snaps[4];
static uint64_t cur_size, stable_size, alt_size; /* alt: a failed resize */
/* A snapshot operation rewrote the header after a resize had failed: the
 * size on disk is then the one the client was told of. */
static bool size_settled;

static uint64_t block_off(uint32_t b)
{
    return b < nlo ? (uint64_t)b * BLK
                   : geo->hi_off + (uint64_t)(b - nlo) * BLK;
}

static void fill(uint8_t *p, uint32_t b, uint32_t v)
{
    if (v == 0) {
        memset(p, 0, BLK);
        return;
    }
    uint64_t x = ((uint64_t)b << 32 | v) * 0x9e3779b97f4a7c15ULL;
    for (uint32_t i = 0; i < BLK; i += 8) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        memcpy(p + i, &x, 8);
    }
}

/* Whether each 512-byte sector of the block at p holds one of the n
 * versions v[] of block b: a failed or unflushed write may leave any mix
 * of old and new sectors, never other bytes. */
static bool is_one_of(const uint8_t *p, uint32_t b, const uint32_t *v,
                      uint32_t n)
{
    static uint8_t want[MAXHIST + 2][BLK];
    for (uint32_t i = 0; i < n; i++) {
        fill(want[i], b, v[i]);
    }
    for (uint32_t sec = 0; sec < BLK; sec += 512) {
        uint32_t i = 0;
        while (i < n && memcmp(p + sec, want[i] + sec, 512) != 0) {
            i++;
        }
        if (i == n) {
            return false;
        }
    }
    return true;
}

static bool is_version(const uint8_t *p, uint32_t b, uint32_t v)
{
    return is_one_of(p, b, &v, 1);
}

static void model_reset(void)
{
    memset(blocks, 0, nblocks * sizeof(*blocks));
    for (uint32_t b = 0; b < nblocks; b++) {
        blocks[b].pending = -1;
    }
    next_version = 1;
    cur_size = stable_size = alt_size = geo->lo_bytes;
    size_settled = false;
    for (int i = 0; i < 4; i++) {
        free(snaps[i]);
        snaps[i] = NULL;
    }
}

/* Block b is about to get version v (the request may fail). */
static void model_begin(uint32_t b, uint32_t v)
{
    struct block *k = &blocks[b];
    k->pending = v;
    if (k->nhist < MAXHIST) {
        k->hist[k->nhist++] = v;
    } else {
        fprintf(stderr, "model: history of block %u full\n", b);
        abort();
    }
}

static void model_ack(void)
{
    for (uint32_t b = 0; b < nblocks; b++) {
        if (blocks[b].pending >= 0) {
            blocks[b].acked = (uint32_t)blocks[b].pending;
            blocks[b].pending = -1;
            blocks[b].nalt = 0;
        }
    }
}

/* The request failed: its blocks may hold its data or not. */
static void model_failed(void)
{
    for (uint32_t b = 0; b < nblocks; b++) {
        struct block *k = &blocks[b];
        if (k->pending >= 0) {
            if (k->nalt == MAXHIST) {
                fprintf(stderr, "model: failed versions of block %u\n", b);
                abort();
            }
            k->alt[k->nalt++] = (uint32_t)k->pending;
            k->pending = -1;
        }
    }
}

static void model_flushed(void)
{
    for (uint32_t b = 0; b < nblocks; b++) {
        blocks[b].stable = blocks[b].acked;
        memcpy(blocks[b].hist, blocks[b].alt, sizeof(blocks[b].alt));
        blocks[b].nhist = blocks[b].nalt;
    }
    stable_size = cur_size;
}

/* ---- one run ---- */

static struct vd_image *img;
static bool keep_going;  /* the client goes on after an error */
static bool stopped;     /* it did not: no more requests */
static int client_error; /* first error the workload was given */
static const char *failed_step;
static int bad_reads; /* successful reads of wrong data */

static bool live_ok(uint32_t b, const uint8_t *p)
{
    const struct block *k = &blocks[b];
    uint32_t v[MAXHIST + 2], n = 0;
    v[n++] = k->acked;
    if (k->pending >= 0) {
        v[n++] = (uint32_t)k->pending;
    }
    memcpy(v + n, k->alt, k->nalt * sizeof(v[0]));
    return is_one_of(p, b, v, n + k->nalt);
}

static bool durable_ok(uint32_t b, const uint8_t *p)
{
    const struct block *k = &blocks[b];
    uint32_t v[MAXHIST + 1];
    v[0] = k->stable;
    memcpy(v + 1, k->hist, k->nhist * sizeof(v[0]));
    return is_one_of(p, b, v, k->nhist + 1);
}

/* Read every block inside size; count those check() refuses. Read errors
 * are allowed (returned through *read_errors). */
static int read_all(struct vd_image *im, uint64_t size,
                    bool (*check)(uint32_t, const uint8_t *), int *read_errors,
                    bool verbose)
{
    static uint8_t buf[CHUNK * BLK];
    int bad = 0;
    for (uint32_t b = 0; b < nblocks; b++) {
        if (block_off(b) + BLK > size) {
            continue;
        }
        /* one read per CHUNK blocks (both regions are multiples) */
        if (b % CHUNK == 0) {
            int ret = vd_image_pread(im, buf, CHUNK * BLK, block_off(b));
            if (ret < 0) {
                (*read_errors)++;
                b += CHUNK - 1;
                continue;
            }
        }
        if (!check(b, buf + (size_t)(b % CHUNK) * BLK)) {
            if (verbose && bad < 5) {
                fprintf(stderr,
                        "  block %u (offset %llu): wrong data, "
                        "acked %u stable %u pending %lld nhist %u\n",
                        b, (unsigned long long)block_off(b), blocks[b].acked,
                        blocks[b].stable, (long long)blocks[b].pending,
                        blocks[b].nhist);
            }
            bad++;
        }
    }
    return bad;
}

/* The result of a workload step: true to go on. */
static bool step_done(const char *what, int ret)
{
    if (ret < 0) {
        if (client_error == 0) {
            client_error = ret;
            failed_step = what;
        }
        model_failed();
        stopped = !keep_going;
        return false;
    }
    model_ack();
    return true;
}

/* Write n blocks from b (b+n within one region) with new versions. */
static bool w(uint32_t b, uint32_t n)
{
    if (stopped) {
        return false;
    }
    static uint8_t buf[64 * BLK];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = next_version++;
        fill(buf + (size_t)i * BLK, b + i, v);
        model_begin(b + i, v);
    }
    return step_done("write",
                     vd_image_pwrite(img, buf, (size_t)n * BLK, block_off(b)));
}

static bool zero(uint32_t b, uint32_t n, int kind)
{
    if (stopped) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        model_begin(b + i, 0);
    }
    uint64_t off = block_off(b), len = (uint64_t)n * BLK;
    int ret = kind == 0 ? vd_image_discard(img, off, len)
                        : vd_image_write_zeroes(
                              img, off, len, kind == 1 ? VD_ZERO_MAY_UNMAP : 0);
    if (ret == -ENOTSUP && kind == 0) {
        ret = 0; /* a discard may be ignored: the data stays */
        for (uint32_t i = 0; i < n; i++) {
            blocks[b + i].nhist--;
            blocks[b + i].pending = -1;
        }
    }
    return step_done(kind == 0 ? "discard" : "write_zeroes", ret);
}

static bool flush(void)
{
    if (stopped) {
        return false;
    }
    int ret = vd_image_flush(img);
    if (!step_done("flush", ret)) {
        return false;
    }
    model_flushed();
    return true;
}

static bool snap_create(int i, const char *name)
{
    if (stopped) {
        return false;
    }
    struct vd_error err = {0};
    if (!step_done("snapshot create",
                   vd_image_snapshot_create(img, name, &err))) {
        return false;
    }
    size_settled = alt_size != cur_size;
    snaps[i] = malloc(nblocks * sizeof(*snaps[i]));
    for (uint32_t b = 0; b < nblocks; b++) {
        snaps[i][b].v[0] = blocks[b].acked;
        memcpy(snaps[i][b].v + 1, blocks[b].alt, blocks[b].nalt * 4);
        snaps[i][b].n = 1 + blocks[b].nalt;
    }
    return true;
}

static bool snap_delete(const char *name)
{
    if (stopped) {
        return false;
    }
    struct vd_error err = {0};
    return step_done("snapshot delete",
                     vd_image_snapshot_delete(img, name, &err));
}

static bool snap_revert(int i, const char *name)
{
    if (stopped) {
        return false;
    }
    struct vd_error err = {0};
    if (snaps[i] == NULL) {
        return true; /* its creation failed */
    }
    /* Each possible content of the snapshot is a version the request may
     * leave: the first stands for success, the others are alternatives
     * (also after success). */
    for (uint32_t b = 0; b < nblocks; b++) {
        for (uint32_t j = 1; j < snaps[i][b].n; j++) {
            model_begin(b, snaps[i][b].v[j]); /* into the history */
        }
        model_begin(b, snaps[i][b].v[0]);
    }
    int ret = vd_image_snapshot_revert(img, name, &err);
    if (ret < 0) {
        for (uint32_t b = 0; b < nblocks; b++) {
            struct block *k = &blocks[b];
            for (uint32_t j = 1; j < snaps[i][b].n && k->nalt < MAXHIST; j++) {
                k->alt[k->nalt++] = snaps[i][b].v[j];
            }
        }
        return step_done("snapshot revert", ret);
    }
    for (uint32_t b = 0; b < nblocks; b++) {
        struct block *k = &blocks[b];
        k->acked = (uint32_t)k->pending;
        k->pending = -1;
        memcpy(k->alt, snaps[i][b].v + 1, (snaps[i][b].n - 1) * 4);
        k->nalt = snaps[i][b].n - 1;
    }
    return true;
}

static bool grow(void)
{
    if (stopped) {
        return false;
    }
    struct vd_error err = {0};
    alt_size = geo->grown;
    if (!step_done("resize", vd_image_truncate(img, geo->grown, &err))) {
        return false;
    }
    cur_size = geo->grown;
    return true;
}

static bool verify_live(void)
{
    if (stopped) {
        return false;
    }
    int rerr = 0;
    int bad = read_all(img, cur_size, live_ok, &rerr, true);
    bad_reads += bad;
    if (rerr > 0) {
        return step_done("read", -EIO);
    }
    return true;
}

/* The workload. Each step does nothing once the client has stopped. */
static void workload(void)
{
    const uint32_t cb = geo->cluster_size / BLK ? geo->cluster_size / BLK : 1;
    /* allocating writes: whole clusters, partial clusters, across
     * cluster boundaries, one L2 table's worth apart */
    for (uint32_t i = 0; i < 12; i++) {
        uint32_t b = (i * 37 * cb / 4 + i * 5) % (nlo - 8);
        w(b, 1 + i % 5);
    }
    flush();
    w(0, 2), w(cb + 1, 1), w(5, 3); /* in place */
    snap_create(0, "s1");
    w(1, 1), w(cb * 2, cb), w(nlo - 3, 3); /* copy on write */
    flush();
    zero(cb * 4, cb, 1), zero(cb * 2, cb, 2), zero(8, 2, 1), zero(0, cb, 0);
    w(cb * 4 + 1, 1);
    verify_live();
    snap_create(1, "s2");
    w(3, 4), w(cb * 6, 2);
    snap_revert(0, "s1");
    w(2, 1), w(cb * 3 + 2, 2);
    snap_delete("s2");
    flush();
    verify_live();
    grow();
    w(nlo, 3), w(nlo + nhi / 2, cb + 1), w(10, 1);
    for (uint32_t b = nlo + 4; geo->fill_hi && b + 64 <= nblocks; b += 64) {
        w(b, 64);
    }
    snap_create(2, "s3");
    w(nlo + 1, 1), w(11, 2);
    flush();
    snap_delete("s1");
    w(nlo + 2, 2), zero(nlo, cb, 1);
    snap_revert(2, "s3");
    w(12, 1);
    flush();
    verify_live();
}

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char dir[64];
static char path[256];

/* qemu-img check's exit code: 0 clean, 3 leaks only, 2 corruption.
 * *copied_only tells whether every error it reported was a "copied"
 * flag that disagrees with a refcount. */
static int qemu_check(bool *copied_only)
{
    char cmd[600], line[512];
    int ret, errors = 0, copied = 0;
    snprintf(cmd, sizeof(cmd), "qemu-img check %s >%s/check.out 2>&1", path,
             dir);
    ret = sh(cmd);
    snprintf(cmd, sizeof(cmd), "%s/check.out", dir);
    FILE *f = fopen(cmd, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        errors += strncmp(line, "ERROR", 5) == 0;
        copied += strncmp(line, "ERROR OFLAG_COPIED", 18) == 0;
    }
    if (f != NULL) {
        fclose(f);
    }
    if (copied_only != NULL) {
        *copied_only = errors > 0 && errors == copied;
    }
    return ret;
}

struct sweep_stats {
    unsigned runs, fired, errors_seen, silent, copied_window;
};

/* One run with the nth operation of class c failing (nth = 0: none).
 * Returns the number of failed checks. */
static int run_one(enum vd_fault_class c, uint64_t nth, int error,
                   unsigned flags, struct sweep_stats *st)
{
    struct vd_error err = {0};
    struct vd_create_opts co = {.size = geo->lo_bytes,
                                .cluster_size = geo->cluster_size};
    struct vd_open_opts oo = {.cache_bytes = geo->cache_bytes};
    int before = vd_test_failures;
    int rerr = 0, bad, qc;
    bool fired;

    unlink(path);
    model_reset();
    client_error = 0;
    failed_step = NULL;
    stopped = false;
    bad_reads = 0;
    CHECK_EQ(vd_image_create("qcow2", path, &co, &err), 0);
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
    if (img == NULL) {
        return 1;
    }
    vd_fault_arm(c, nth, error, flags);
    workload();
    if (client_error < 0 && !keep_going) {
        /* The client goes on reading after an error: whatever reads
         * succeed return the old or the new data. */
        bad_reads += read_all(img, cur_size < alt_size ? cur_size : alt_size,
                              live_ok, &rerr, true);
    }
    int cret = vd_image_close(img);
    img = NULL;
    fired = vd_fault_fired();
    vd_fault_disarm();
    if (client_error == 0 && cret < 0) {
        client_error = cret;
        failed_step = "close";
    }
    st->runs++;
    st->fired += fired;
    st->errors_seen += client_error < 0;
    CHECK_EQ(bad_reads, 0);
    if (nth == 0 || !fired) {
        CHECK_EQ(client_error, 0);
    }

    bool copied_only = false, window = false;
    qc = qemu_check(&copied_only);
    /* A crash inside a snapshot operation, between the refcount blocks
     * and the tables whose "copied" flags follow them, leaves flags that
     * disagree with refcounts: qemu-img counts that as corruption (and
     * repairs it), though no data is at risk, and QEMU's own snapshot
     * code has the same window. Only that is forgiven, and only there.
     * A failed flush stops the driver's writing for good (q2_sync), so
     * even a one-shot flush fault leaves what such a crash leaves. */
    bool crash_like = (flags & VD_FAULT_STICKY) || c == VD_FAULT_FLUSH;
    if (qc == 2 && copied_only && crash_like && failed_step != NULL &&
        strncmp(failed_step, "snapshot", 8) == 0) {
        window = true;
        st->copied_window++;
    } else {
        CHECK(qc == 0 || qc == 3);
    }

    /* What was flushed is there; the rest is old or new. */
    oo.readonly = true;
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
    if (img == NULL) {
        fprintf(stderr, "  reopen: %s\n", err.msg);
        goto report;
    }
    uint64_t size = vd_image_length(img);
    CHECK(size == stable_size || size == cur_size || size == alt_size);
    if (size_settled) {
        CHECK_EQ(size, cur_size);
    }
    if (!(size == stable_size || size == cur_size || size == alt_size)) {
        fprintf(stderr, "  size %llu, expected %llu (flushed), %llu or %llu\n",
                (unsigned long long)size, (unsigned long long)stable_size,
                (unsigned long long)cur_size, (unsigned long long)alt_size);
    }
    if (client_error == 0) {
        /* No error reported: every request took effect. */
        model_flushed();
        CHECK_EQ(size, cur_size);
        if (fired) {
            st->silent++;
        }
    }
    rerr = 0;
    bad = read_all(img, size, durable_ok, &rerr, true);
    CHECK_EQ(bad, 0);
    CHECK_EQ(rerr, 0);
    vd_image_close(img);
    img = NULL;
    if (window) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd),
                 "qemu-img check -q -r all %s >/dev/null "
                 "2>&1",
                 path);
        CHECK_EQ(sh(cmd), 0);
    }

    /* The driver can go on writing to what is left, and stays clean. */
    oo.readonly = false;
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
    if (img == NULL) {
        fprintf(stderr, "  reopen for writing: %s\n", err.msg);
        goto report;
    }
    {
        static uint8_t buf[BLK];
        int werr = 0;
        for (uint32_t b = 0; b < nlo; b += nlo / 24) {
            fill(buf, b, 0xfff00000u + b);
            werr |= vd_image_pwrite(img, buf, BLK, block_off(b));
        }
        CHECK_EQ(werr, 0);
        CHECK_EQ(vd_image_close(img), 0);
        img = NULL;
        qc = qemu_check(NULL);
        CHECK(qc == 0 || qc == 3);
        oo.readonly = true;
        CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
        for (uint32_t b = 0; img != NULL && b < nlo; b += nlo / 24) {
            CHECK_EQ(vd_image_pread(img, buf, BLK, block_off(b)), 0);
            CHECK(is_version(buf, b, 0xfff00000u + b));
        }
        vd_image_close(img);
        img = NULL;
    }

report:
    if (vd_test_failures != before) {
        fprintf(stderr,
                "  ^ %s: %s fault %llu (%s%s): client saw %d at %s, "
                "qemu-img check %d\n",
                geo->name, vd_fault_class_name(c), (unsigned long long)nth,
                error == VD_FAULT_SHORT ? "short" : strerror(error),
                flags & VD_FAULT_STICKY ? ", sticky" : "", client_error,
                failed_step ? failed_step : "-", qc);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "cp %s %s/fail-%s-%s-%llu.qcow2", path, dir,
                 geo->name, vd_fault_class_name(c), (unsigned long long)nth);
        sh(cmd);
    }
    return vd_test_failures - before;
}

static unsigned points_total;
static const char *only;     /* argv[1]: run only this class's sweeps */
static const char *only_geo; /* argv[2]: and only this geometry */

/* One sweep over every point of class c; go_on: the client keeps going
 * after an error (else it stops and closes). */
static void sweep(enum vd_fault_class c, int error, unsigned flags, bool go_on)
{
    struct sweep_stats st = {0};
    struct timespec t0, t1;
    uint64_t n;
    int failed = 0;

    if (only != NULL && strcmp(only, vd_fault_class_name(c)) != 0) {
        return;
    }
    keep_going = go_on;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_one(c, 0, 0, 0, &st);
    /* the count-only run armed with nth = 0 */
    n = vd_fault_count(c);
    memset(&st, 0, sizeof(st));
    for (uint64_t k = 1; k <= n; k++) {
        failed += run_one(c, k, error, flags, &st) != 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    points_total += (unsigned)n;
    fprintf(stderr,
            "%-4s %-10s %-6s %-6s: %3llu points, %u fired, %u errors "
            "seen, %u handled silently, %u in the copied-flag window, "
            "%d runs failed (%.1f s)\n",
            geo->name, vd_fault_class_name(c),
            error == VD_FAULT_SHORT ? "short"
            : error == EIO          ? "EIO"
                                    : "ENOSPC",
            flags & VD_FAULT_STICKY ? "sticky"
            : go_on                 ? "go-on"
                                    : "stop",
            (unsigned long long)n, st.fired, st.errors_seen, st.silent,
            st.copied_window, failed,
            (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    CHECK(n > 0);
}

static void run_geometry(const struct geometry *g)
{
    geo = g;
    nlo = (uint32_t)(g->lo_bytes / BLK);
    nhi = (uint32_t)(g->hi_bytes / BLK);
    nblocks = nlo + nhi;
    blocks = calloc(nblocks, sizeof(*blocks));
    snprintf(path, sizeof(path), "%s/%s.qcow2", dir, g->name);

    /* One-shot faults: the client stops and closes (what the error left
     * behind is written at close), or goes on as a VM does after an EIO
     * (the error paths' state is used further). Sticky faults: a crash at
     * that point. */
    sweep(VD_FAULT_META_WRITE, EIO, 0, false);
    sweep(VD_FAULT_META_WRITE, EIO, 0, true);
    sweep(VD_FAULT_META_WRITE, EIO, VD_FAULT_STICKY, false);
    sweep(VD_FAULT_META_WRITE, VD_FAULT_SHORT, VD_FAULT_STICKY, false);
    sweep(VD_FAULT_FLUSH, EIO, 0, false);
    sweep(VD_FAULT_FLUSH, EIO, 0, true);
    sweep(VD_FAULT_FLUSH, EIO, VD_FAULT_STICKY, false);
    sweep(VD_FAULT_DATA_WRITE, ENOSPC, 0, true);
    sweep(VD_FAULT_DATA_WRITE, VD_FAULT_SHORT, VD_FAULT_STICKY, false);
    sweep(VD_FAULT_RESIZE, EIO, 0, true);
    /* Reads are most of the points with small clusters (every table
     * load), and take the longest: the full set only on request. */
    if (g->cluster_size >= 65536 || getenv("VD_FAULT_FULL") != NULL) {
        sweep(VD_FAULT_READ, EIO, 0, false);
        sweep(VD_FAULT_READ, EIO, 0, true);
    } else if (g->cluster_size >= 4096) {
        sweep(VD_FAULT_READ, EIO, 0, false);
    }
    free(blocks);
    blocks = NULL;
}

int main(int argc, char **argv)
{
    static const struct geometry geos[] = {
        /* 64 KiB clusters: one L2 table maps 512 MiB, so the resize to
         * 1 GiB adds an L1 entry (the high region lies past 512 MiB) */
        {"64k", 65536, 4u << 20, 768u << 20, 512u << 10, 1u << 30, 256 << 10,
         false},
        /* 4 KiB clusters: L2 tables map 2 MiB, refcount blocks cover
         * 8 MiB of host file; tiny caches evict all the time */
        {"4k", 4096, 4u << 20, 6u << 20, 1u << 20, 8u << 20, 32 << 10, false},
        /* 512-byte clusters: a refcount block covers 128 KiB of host
         * file, so allocation keeps adding refcount blocks */
        {"512", 512, 1u << 20, 1536u << 10, 256u << 10, 2u << 20, 4 << 10,
         false},
        /* and filling 8 MiB of it outgrows the first refcount table
         * cluster (64 blocks of 128 KiB): the table moves */
        {"512r", 512, 1u << 20, 2u << 20, 8u << 20, 10u << 20, 8 << 10, true},
    };
    only = argc > 1 && strcmp(argv[1], "all") != 0 ? argv[1] : NULL;
    only_geo = argc > 2 ? argv[2] : NULL;
    /* Hundreds of runs, each syncing: keep them off a real disk. */
    snprintf(dir, sizeof(dir), "%s/vdfaultXXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < sizeof(geos) / sizeof(geos[0]); i++) {
        /* the last one has thousands of points: on request only */
        if ((geos[i].fill_hi && getenv("VD_FAULT_FULL") == NULL) ||
            (only_geo != NULL && strcmp(only_geo, geos[i].name) != 0)) {
            continue;
        }
        run_geometry(&geos[i]);
    }
    fprintf(stderr, "injection points covered: %u\n", points_total);
    if (vd_test_failures == 0 || getenv("VD_FAULT_KEEP") == NULL) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        sh(cmd);
    } else {
        fprintf(stderr, "failing images kept in %s\n", dir);
    }
    return vd_test_done("test_qcow2_faults");
}
