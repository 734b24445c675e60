/* test_qcow2_corruption.c — corruption is signalled, not silent.
 *
 * Each case makes a qcow2 image with the driver, damages one table entry
 * the way a bug or a bad disk would, opens it with the driver and does the
 * I/O that finds the damage. The I/O must fail with EIO (never return or
 * write wrong data), vd_image_corruption() must name the problem, a
 * writable image must carry the corrupt bit afterwards (qemu-img info says
 * "corrupt: true"), and a second detection must not write it again. A
 * read-only open records the reason but leaves the file alone. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <endian.h>

#include "image.h"
#include "vd_error.h"
#include "vd_test.h"

#define CS 65536ULL
#define COPIED (1ULL << 63)

static char dir[] = "/tmp/vd-corrupt-XXXXXX";

static uint64_t get64(int fd, uint64_t off)
{
    uint64_t v = 0;
    if (pread(fd, &v, 8, (off_t)off) != 8) {
        return 0;
    }
    return be64toh(v);
}

static void put64(int fd, uint64_t off, uint64_t v)
{
    v = htobe64(v);
    CHECK(pwrite(fd, &v, 8, (off_t)off) == 8);
}

static bool corrupt_bit(const char *path)
{
    int fd = open(path, O_RDONLY);
    uint64_t f = get64(fd, 72);
    close(fd);
    return (f & 2) != 0;
}

/* qemu-img's view of the bit (-U: the image may be open here). */
static bool qemu_says_corrupt(const char *path)
{
    char cmd[512], line[512];
    bool found = false;
    snprintf(cmd, sizeof(cmd), "qemu-img info -U --output=json '%s'", path);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return false;
    }
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strstr(line, "\"corrupt\": true") != NULL) {
            found = true;
        }
    }
    CHECK_EQ(pclose(p), 0);
    return found;
}

/* A fresh 4 MiB image whose first cluster holds 0x5a; *l2 receives the
 * host offset of the first L2 table, *data that of guest cluster 0. */
static void make(const char *path, uint64_t *l1, uint64_t *l2, uint64_t *data)
{
    struct vd_create_opts co = {.size = 4u << 20, .cluster_size = CS};
    struct vd_open_opts oo = {.readonly = false};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    uint8_t *buf = malloc(CS);
    memset(buf, 0x5a, CS);
    unlink(path);
    CHECK_EQ(vd_image_create("qcow2", path, &co, &err), 0);
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
    CHECK_EQ(vd_image_pwrite(img, buf, CS, 0), 0);
    CHECK_EQ(vd_image_close(img), 0);
    free(buf);
    int fd = open(path, O_RDONLY);
    *l1 = get64(fd, 40);
    *l2 = get64(fd, *l1) & 0x00fffffffffffe00ULL;
    *data = get64(fd, *l2) & 0x00fffffffffffe00ULL;
    close(fd);
    CHECK(*l2 >= CS && *data >= CS);
    CHECK(!corrupt_bit(path));
}

static struct vd_image *open_img(const char *path, bool ro)
{
    struct vd_open_opts oo = {.readonly = ro};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
    return img;
}

/* Detection by a read: EIO, a reason naming `words`, the bit set once. */
static void read_case(const char *name, uint64_t table_off, uint64_t entry,
                      const char *words)
{
    char path[128];
    uint64_t l1, l2, data;
    uint8_t buf[4096];
    snprintf(path, sizeof(path), "%s/%s.qcow2", dir, name);
    make(path, &l1, &l2, &data);
    int fd = open(path, O_RDWR);
    put64(fd, table_off == 1 ? l1 : l2, entry);

    struct vd_image *img = open_img(path, false);
    if (img == NULL) {
        close(fd);
        return;
    }
    CHECK(vd_image_corruption(img) == NULL);
    memset(buf, 0xee, sizeof(buf));
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), -EIO);
    const char *why = vd_image_corruption(img);
    CHECK(why != NULL && strstr(why, words) != NULL);
    fprintf(stderr, "%s: %s\n", name, why ? why : "(none)");
    CHECK(corrupt_bit(path));
    CHECK(qemu_says_corrupt(path));

    /* Clear the bit behind the driver's back: a second detection (read
     * and write) must neither write it again nor change the reason. */
    put64(fd, 72, get64(fd, 72) & ~2ULL);
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), -EIO);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), -EIO);
    CHECK(!corrupt_bit(path));
    CHECK(vd_image_corruption(img) == why);
    vd_image_close(img);
    close(fd);
}

int main(void)
{
    uint64_t l1, l2, data, rt;
    char path[128];
    uint8_t buf[4096];
    int fd;
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    /* Every image below is made the same way, so this one tells where
     * the tables of all of them are. */
    snprintf(path, sizeof(path), "%s/probe.qcow2", dir);
    make(path, &l1, &l2, &data);
    fd = open(path, O_RDONLY);
    rt = get64(fd, 48);
    close(fd);

    /* L2 entry aimed past the end of the file. */
    read_case("l2eof", 2, COPIED | (1ULL << 40), "past the end of the file");
    /* L2 entry whose host offset is not cluster aligned. */
    read_case("l2unal", 2, COPIED | (data + 512), "not cluster aligned");
    /* L1 entry whose L2 table would be the refcount table. */
    read_case("l1isrt", 1, COPIED | rt, "L1 entry 0");
    /* L1 entry whose L2 table would be the L1 table itself. */
    read_case("l1self", 1, COPIED | l1, "points into other metadata");

    /* A data cluster that is really the refcount table: reading it is
     * harmless, writing would destroy metadata and must be refused. */
    snprintf(path, sizeof(path), "%s/meta.qcow2", dir);
    make(path, &l1, &l2, &data);
    fd = open(path, O_RDWR);
    uint64_t rt0 = get64(fd, rt);
    put64(fd, l2, COPIED | rt);
    struct vd_image *img = open_img(path, false);
    if (img != NULL) {
        memset(buf, 0x77, sizeof(buf));
        CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), -EIO);
        const char *why = vd_image_corruption(img);
        CHECK(why != NULL && strstr(why, "metadata") != NULL);
        fprintf(stderr, "meta: %s\n", why ? why : "(none)");
        CHECK_EQ(get64(fd, rt), rt0);
        CHECK(corrupt_bit(path));
        vd_image_close(img);
    }
    close(fd);

    /* A read-only open finds it too, says so, and writes nothing. */
    snprintf(path, sizeof(path), "%s/ro.qcow2", dir);
    make(path, &l1, &l2, &data);
    fd = open(path, O_RDWR);
    put64(fd, l2, COPIED | (1ULL << 40));
    close(fd);
    img = open_img(path, true);
    if (img != NULL) {
        CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), -EIO);
        CHECK(vd_image_corruption(img) != NULL);
        CHECK(!corrupt_bit(path));
        vd_image_close(img);
    }

    /* An image that carries the bit opens read-only, and says why. */
    snprintf(path, sizeof(path), "%s/l2eof.qcow2", dir);
    fd = open(path, O_RDWR);
    put64(fd, 72, get64(fd, 72) | 2);
    close(fd);
    img = open_img(path, false);
    if (img != NULL) {
        const char *why = vd_image_corruption(img);
        CHECK(why != NULL && strstr(why, "marked corrupt") != NULL);
        CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), CS), -EROFS);
        vd_image_close(img);
    }

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
    return vd_test_done("test_qcow2_corruption");
}
