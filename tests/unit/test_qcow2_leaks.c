/* test_qcow2_leaks.c — reclaiming the clusters a crash leaked.
 *
 * Images are made with the driver, then given leaks by hand the way a
 * killed writer leaves them: refcounts of clusters no table references,
 * inside the file and past its end. A writable open that asks for it
 * (vd_open_opts.leaks_reclaimed) must free exactly those, count them, and
 * leave every referenced cluster alone, including those only a snapshot
 * references; qemu-img check is the referee. An image that also shows
 * corruption must not be touched, and a huge leaked count (64-bit
 * refcounts) is lowered at once. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <endian.h>

#include "image.h"
#include "vd_error.h"
#include "vd_test.h"

#define CS 65536ULL

static char dir[] = "/tmp/vd-leaks-XXXXXX";

static uint64_t get64(int fd, uint64_t off)
{
    uint64_t v = 0;
    if (pread(fd, &v, 8, (off_t)off) != 8) {
        return 0;
    }
    return be64toh(v);
}

/* The 16-bit refcount of host cluster c (one refcount block suffices for
 * these small images). */
static uint64_t rc_entry_off(int fd, uint64_t c)
{
    uint64_t rt = get64(fd, 48);
    uint64_t rb = get64(fd, rt);
    CHECK(rb != 0);
    return rb + 2 * c;
}

static unsigned get_rc(int fd, uint64_t c)
{
    uint16_t v = 0;
    CHECK(pread(fd, &v, 2, (off_t)rc_entry_off(fd, c)) == 2);
    return be16toh(v);
}

static void set_rc(int fd, uint64_t c, unsigned rc)
{
    uint16_t v = htobe16((uint16_t)rc);
    CHECK(pwrite(fd, &v, 2, (off_t)rc_entry_off(fd, c)) == 2);
}

/* qemu-img check's exit code: 0 clean, 2 corrupt, 3 leaks only. */
static int qemu_check(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s' >/dev/null 2>&1", path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static struct vd_image *open_img(const char *path, bool ro, uint64_t *leaks)
{
    struct vd_open_opts oo = {.readonly = ro, .leaks_reclaimed = leaks};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    int ret = vd_image_open("qcow2", path, &oo, &img, &err);
    if (ret < 0) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
    }
    CHECK_EQ(ret, 0);
    return img;
}

static void fill(struct vd_image *img, uint64_t off, int byte)
{
    uint8_t *buf = malloc(CS);
    memset(buf, byte, CS);
    CHECK_EQ(vd_image_pwrite(img, buf, CS, off), 0);
    free(buf);
}

static bool holds(struct vd_image *img, uint64_t off, int byte)
{
    uint8_t *buf = malloc(CS);
    bool ok = vd_image_pread(img, buf, CS, off) == 0;
    for (uint64_t i = 0; ok && i < CS; i++) {
        ok = buf[i] == byte;
    }
    free(buf);
    return ok;
}

/* A 16 MiB image with data in guest clusters 0 and 5; with a snapshot
 * "s1" taken and cluster 0 then overwritten when snap is set, so one
 * cluster is referenced by the snapshot alone. */
static void make(const char *path, bool snap)
{
    struct vd_create_opts co = {.size = 16u << 20, .cluster_size = CS};
    struct vd_error err = {0};
    struct vd_image *img;
    unlink(path);
    CHECK_EQ(vd_image_create("qcow2", path, &co, &err), 0);
    img = open_img(path, false, NULL);
    if (img == NULL) {
        return;
    }
    fill(img, 0, 0x5a);
    fill(img, 5 * CS, 0x5b);
    if (snap) {
        CHECK_EQ(vd_image_snapshot_create(img, "s1", &err), 0);
        fill(img, 0, 0x6c);
    }
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(qemu_check(path), 0);
}

/* Leak n clusters at the end of the file (written, counted, referenced
 * by nothing) and one past its end (counted, never written). Returns the
 * first leaked cluster. */
static uint64_t leak(const char *path, unsigned n)
{
    int fd = open(path, O_RDWR);
    struct stat st;
    CHECK(fd >= 0 && fstat(fd, &st) == 0);
    uint64_t first = ((uint64_t)st.st_size + CS - 1) / CS;
    uint8_t *junk = malloc(CS);
    memset(junk, 0xee, CS);
    for (unsigned i = 0; i < n; i++) {
        CHECK(pwrite(fd, junk, CS, (off_t)((first + i) * CS)) == (ssize_t)CS);
        set_rc(fd, first + i, 1);
    }
    set_rc(fd, first + n, 1);
    free(junk);
    close(fd);
    return first;
}

static void test_plain(void)
{
    char path[128];
    uint64_t leaks = 0, first;
    snprintf(path, sizeof(path), "%s/plain.qcow2", dir);
    make(path, false);
    first = leak(path, 3);
    CHECK_EQ(qemu_check(path), 3);

    /* Read-only and not-asked-for opens leave leaks alone. */
    struct vd_image *img = open_img(path, true, &leaks);
    CHECK_EQ(leaks, 0);
    CHECK_EQ(vd_image_close(img), 0);
    img = open_img(path, false, NULL);
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(qemu_check(path), 3);

    img = open_img(path, false, &leaks);
    CHECK_EQ(leaks, 4);
    CHECK(holds(img, 0, 0x5a));
    CHECK(holds(img, 5 * CS, 0x5b));
    /* The space is usable again, and data written there reads back. */
    fill(img, 9 * CS, 0x7d);
    CHECK(holds(img, 9 * CS, 0x7d));
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(qemu_check(path), 0);
    int fd = open(path, O_RDONLY);
    CHECK(get_rc(fd, first) <= 1); /* reused by the write at most once */
    close(fd);

    /* Nothing left to do: a second reclaim counts none. */
    img = open_img(path, false, &leaks);
    CHECK_EQ(leaks, 0);
    CHECK(holds(img, 9 * CS, 0x7d));
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(qemu_check(path), 0);
}

/* Clusters only a snapshot references are not leaks; a refcount of 3
 * on a cluster two tables share is one. */
static void test_snapshot(void)
{
    char path[128];
    uint64_t leaks = 0;
    snprintf(path, sizeof(path), "%s/snap.qcow2", dir);
    make(path, true);
    leak(path, 1);
    int fd = open(path, O_RDWR);
    uint64_t l1 = get64(fd, 40);
    uint64_t l2 = get64(fd, l1) & 0x00fffffffffffe00ULL;
    uint64_t c5 = (get64(fd, l2 + 5 * 8) & 0x00fffffffffffe00ULL) / CS;
    CHECK(c5 > 0);
    CHECK_EQ(get_rc(fd, c5), 2); /* active and s1 */
    set_rc(fd, c5, 3);
    close(fd);
    CHECK_EQ(qemu_check(path), 3);

    struct vd_image *img = open_img(path, false, &leaks);
    CHECK_EQ(leaks, 3);
    CHECK(holds(img, 0, 0x6c));
    CHECK(holds(img, 5 * CS, 0x5b));
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(qemu_check(path), 0);
    fd = open(path, O_RDONLY);
    CHECK_EQ(get_rc(fd, c5), 2);
    close(fd);

    /* The snapshot still holds the old contents of cluster 0. */
    struct vd_open_opts vo = {.readonly = true, .snapshot = "s1"};
    struct vd_error err = {0};
    CHECK_EQ(vd_image_open("qcow2", path, &vo, &img, &err), 0);
    if (img != NULL) {
        CHECK(holds(img, 0, 0x5a));
        vd_image_close(img);
    }
}

/* A referenced cluster with too low a refcount is corruption: then the
 * walk is not trusted and nothing is freed. */
static void test_corrupt(void)
{
    char path[128];
    uint64_t leaks = 7, first;
    snprintf(path, sizeof(path), "%s/corrupt.qcow2", dir);
    make(path, false);
    first = leak(path, 2);
    int fd = open(path, O_RDWR);
    uint64_t l1 = get64(fd, 40);
    uint64_t l2 = get64(fd, l1) & 0x00fffffffffffe00ULL;
    uint64_t c5 = (get64(fd, l2 + 5 * 8) & 0x00fffffffffffe00ULL) / CS;
    set_rc(fd, c5, 0);
    close(fd);
    CHECK_EQ(qemu_check(path), 2);

    struct vd_image *img = open_img(path, false, &leaks);
    CHECK_EQ(leaks, 0);
    CHECK_EQ(vd_image_close(img), 0);
    fd = open(path, O_RDONLY);
    CHECK_EQ(get_rc(fd, first), 1);
    CHECK_EQ(get_rc(fd, first + 1), 1);
    close(fd);
}

/* 64-bit refcounts: a leaked count of 2^40 is lowered in one step. */
static void test_wide(void)
{
    char path[128], cmd[512];
    uint64_t leaks = 0;
    snprintf(path, sizeof(path), "%s/wide.qcow2", dir);
    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f qcow2 -o refcount_bits=64,cluster_size=64k "
             "'%s' 16M",
             path);
    CHECK_EQ(system(cmd), 0);
    struct vd_image *img = open_img(path, false, NULL);
    if (img == NULL) {
        return;
    }
    fill(img, 0, 0x5a);
    CHECK_EQ(vd_image_close(img), 0);
    int fd = open(path, O_RDWR);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    uint64_t c = ((uint64_t)st.st_size + CS - 1) / CS;
    uint64_t rb = get64(fd, get64(fd, 48));
    uint64_t v = htobe64(1ULL << 40);
    CHECK(pwrite(fd, &v, 8, (off_t)(rb + 8 * c)) == 8);
    CHECK(pwrite(fd, &v, 8, (off_t)(c * CS + CS - 8)) == 8); /* in the file */
    close(fd);
    CHECK_EQ(qemu_check(path), 3);
    img = open_img(path, false, &leaks);
    CHECK_EQ(leaks, 1);
    CHECK(img != NULL && holds(img, 0, 0x5a));
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(qemu_check(path), 0);
}

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_plain();
    test_snapshot();
    test_corrupt();
    test_wide();
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
    return vd_test_done("test_qcow2_leaks");
}
