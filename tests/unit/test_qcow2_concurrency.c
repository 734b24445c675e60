/* test_qcow2_concurrency.c — many threads writing, zeroing, reading and
 * flushing one qcow2 image at once.
 *
 * Each thread owns every Nth stripe of STRIPE bytes; stripes are not
 * cluster aligned, so threads race to allocate and copy-on-write the same
 * clusters. Every thread checks its own stripes after each write, and at
 * the end the image is compared with the shadow copy by our reader and by
 * qemu-img (check must be clean, compare identical). A small metadata
 * cache forces evictions during the run.
 *
 * Meanwhile one more thread owns a region where it changes mappings of
 * whole clusters: allocating writes, zero clusters with and without unmap,
 * discards, so freed clusters are reused while others read and flush.
 *
 * A second phase races readers against the first allocation of clusters:
 * a reader must see each cluster either still unallocated (zeroes) or
 * with its whole new contents, never a mixture.
 *
 * Everything runs twice: on the host page cache, and with guest data on
 * O_DIRECT (vd_open_opts.direct) beside buffered metadata. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "vd_error.h"
#include "vd_test.h"

#define NTHREADS 6
#define OPS 1500
#define SIZE (24u << 20)
#define STRIPE 3000u
#define NSTRIPES ((SIZE - (8u << 20)) / STRIPE)
#define MAP_OFF (SIZE - (8u << 20)) /* whole-cluster mapping changes */

static struct vd_image *img;
static uint8_t *shadow;
static _Atomic int failures;

struct worker {
    int id;
    unsigned seed;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    uint8_t *buf = malloc(STRIPE), *got = malloc(STRIPE);
    for (int op = 0; op < OPS; op++) {
        unsigned r = (unsigned)rand_r(&w->seed);
        uint64_t stripe = (r % (NSTRIPES / NTHREADS)) * NTHREADS + w->id;
        uint64_t off = stripe * STRIPE;
        int kind = (int)(r >> 20) % 16;
        int ret = 0;
        if (kind == 0) {
            ret = vd_image_flush(img);
        } else if (kind == 1) {
            ret = vd_image_write_zeroes(img, off, STRIPE, 0);
            memset(shadow + off, 0, STRIPE);
        } else if (kind < 4) {
            /* read someone else's stripe: must not fail */
            uint64_t o = (uint64_t)(rand_r(&w->seed) % (SIZE - STRIPE));
            ret = vd_image_pread(img, got, STRIPE, o);
        } else {
            memset(buf, (w->id << 5) | (op & 31), STRIPE);
            ret = vd_image_pwrite(img, buf, STRIPE, off);
            memcpy(shadow + off, buf, STRIPE);
        }
        if (ret < 0) {
            fprintf(stderr, "thread %d op %d kind %d: %s\n", w->id, op, kind,
                    strerror(-ret));
            failures++;
            break;
        }
        if (vd_image_pread(img, got, STRIPE, off) < 0 ||
            memcmp(got, shadow + off, STRIPE) != 0) {
            fprintf(stderr, "thread %d op %d: stripe %llu lost its data\n",
                    w->id, op, (unsigned long long)stripe);
            failures++;
            break;
        }
    }
    free(buf);
    free(got);
    return NULL;
}

static void *run_mapper(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    uint8_t *buf = malloc(8 * 4096), *got = malloc(8 * 4096);
    for (int op = 0; op < OPS; op++) {
        uint64_t n = 1 + (unsigned)rand_r(&seed) % 8;
        uint64_t c = (unsigned)rand_r(&seed) % ((4u << 20) / 4096 - n);
        uint64_t off = MAP_OFF + c * 4096, len = n * 4096;
        int kind = rand_r(&seed) % 8, ret;
        if (kind == 0) {
            ret = vd_image_discard(img, off, len);
            memset(shadow + off, 0, len); /* no backing: zeroes */
        } else if (kind <= 2) {
            ret = vd_image_write_zeroes(img, off, len,
                                        kind == 1 ? VD_ZERO_MAY_UNMAP : 0);
            memset(shadow + off, 0, len);
        } else {
            memset(buf, 0x80 | (op & 0x7f), len);
            ret = vd_image_pwrite(img, buf, len, off);
            memcpy(shadow + off, buf, len);
        }
        if (ret < 0 || vd_image_pread(img, got, len, off) < 0 ||
            memcmp(got, shadow + off, len) != 0) {
            fprintf(stderr, "mapper op %d kind %d failed (%d)\n", op, kind,
                    ret);
            failures++;
            break;
        }
    }
    free(buf);
    free(got);
    return NULL;
}

#define RACE_OFF (SIZE - (4u << 20))
#define RACE_CLUSTERS ((4u << 20) / 4096)
static _Atomic int race_done;

static void *race_writer(void *arg)
{
    uint8_t *buf = malloc(4096);
    (void)arg;
    for (unsigned c = 0; c < RACE_CLUSTERS; c++) {
        memset(buf, (int)(c % 255) + 1, 4096);
        if (vd_image_pwrite(img, buf, 4096, RACE_OFF + c * 4096ULL) < 0) {
            failures++;
        }
    }
    race_done = 1;
    free(buf);
    return NULL;
}

static void *race_reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    uint8_t *buf = malloc(4096);
    while (!race_done) {
        unsigned c = (unsigned)rand_r(&seed) % RACE_CLUSTERS;
        if (vd_image_pread(img, buf, 4096, RACE_OFF + c * 4096ULL) < 0) {
            failures++;
            break;
        }
        uint8_t want = buf[0] == 0 ? 0 : (uint8_t)(c % 255 + 1);
        for (int i = 0; i < 4096; i++) {
            if (buf[i] != want) {
                fprintf(stderr, "cluster %u read half allocated\n", c);
                failures++;
                break;
            }
        }
    }
    free(buf);
    return NULL;
}

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    return system(cmd);
}

static void run_image(bool direct)
{
    char dir[] = "/tmp/vdconcXXXXXX";
    char path[256], raw[256];
    struct vd_error err = {0};
    struct vd_create_opts co = {.size = SIZE, .cluster_size = 4096};
    struct vd_open_opts oo = {.cache_bytes = 64 * 1024, .direct = direct};
    pthread_t th[NTHREADS];
    struct worker ws[NTHREADS];

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/c.qcow2", dir);
    snprintf(raw, sizeof(raw), "%s/shadow.raw", dir);
    shadow = calloc(1, SIZE);
    CHECK_EQ(vd_image_create("qcow2", path, &co, &err), 0);
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
    if (img == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    race_done = 0;
    for (int i = 0; i < NTHREADS; i++) {
        ws[i].id = i;
        ws[i].seed = 1234u + (unsigned)i;
        pthread_create(&th[i], NULL, run, &ws[i]);
    }
    pthread_t mapper;
    pthread_create(&mapper, NULL, run_mapper, (void *)(uintptr_t)99);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_join(mapper, NULL);
    CHECK_EQ(failures, 0);

    /* Phase 2: the top 4 MiB were never written (stripes stop short). */
    pthread_t rw, rr[3];
    for (unsigned c = 0; c < RACE_CLUSTERS; c++) {
        memset(shadow + RACE_OFF + c * 4096ULL, (int)(c % 255) + 1, 4096);
    }
    pthread_create(&rw, NULL, race_writer, NULL);
    for (int i = 0; i < 3; i++) {
        pthread_create(&rr[i], NULL, race_reader, (void *)(uintptr_t)(i + 7));
    }
    pthread_join(rw, NULL);
    for (int i = 0; i < 3; i++) {
        pthread_join(rr[i], NULL);
    }
    CHECK_EQ(failures, 0);
    struct vd_check_result res;
    CHECK_EQ(vd_image_check(img, &res), 0);
    CHECK_EQ(res.corruptions, 0);
    CHECK_EQ(res.leaks, 0);
    CHECK_EQ(vd_image_close(img), 0);

    /* Reopen: what reached the file equals the shadow. */
    oo.readonly = true;
    CHECK_EQ(vd_image_open("qcow2", path, &oo, &img, &err), 0);
    uint8_t *all = malloc(SIZE);
    CHECK_EQ(vd_image_pread(img, all, SIZE, 0), 0);
    CHECK(memcmp(all, shadow, SIZE) == 0);
    vd_image_close(img);
    free(all);

    int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, shadow, SIZE) == (ssize_t)SIZE);
    close(fd);
    CHECK_EQ(sh("qemu-img check -q %s%s", path, ""), 0);
    CHECK_EQ(sh("qemu-img compare -q -f raw -F qcow2 %s %s", raw, path), 0);
    sh("rm -rf %s%s", dir, "");
    free(shadow);
}

int main(void)
{
    run_image(false);
    run_image(true);
    return vd_test_done("test_qcow2_concurrency");
}
