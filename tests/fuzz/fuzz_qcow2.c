/* fuzz_qcow2.c — libFuzzer harness: open arbitrary bytes as a read-only
 * qcow2 image, walk its block status, read a few ranges, run the refcount
 * check, list snapshots, list changes between them, open the first as a
 * view and read from it, close.
 *
 * The bytes go to a memfd so the driver sees a real file descriptor with
 * a real size. No backing files are allowed, so nothing outside the input
 * is ever opened. Build: cmake -DVD_FUZZ=ON -DCMAKE_C_COMPILER=clang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image.h"
#include "vd_error.h"

static int count_extent(void *arg, uint64_t off, uint64_t len)
{
    (void)off;
    *(uint64_t *)arg += len;
    return 0;
}

static void read_range(struct vd_image *img, uint8_t *buf, uint64_t off,
                       size_t len)
{
    uint64_t size = vd_image_length(img);
    if (off >= size) {
        return;
    }
    if (len > size - off) {
        len = (size_t)(size - off);
    }
    vd_image_pread(img, buf, len, off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[1 << 16];
    struct vd_open_opts o = {.readonly = true, .cache_bytes = 1 << 16};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    char path[64];
    int fd = memfd_create("fuzz_qcow2", MFD_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (vd_image_open("qcow2", path, &o, &img, &err) == 0) {
        uint64_t len = vd_image_length(img), off = 0, n;
        for (int i = 0; i < 64 && off < len; i++) {
            if (vd_image_block_status(img, off, len - off, &n) < 0) {
                break;
            }
            off += n;
        }
        read_range(img, buf, 0, 4096);
        read_range(img, buf, len / 2 & ~511ULL, 8192);
        read_range(img, buf, len > 3000 ? len - 3000 : 0, 3000);
        read_range(img, buf, 1, sizeof(buf));
        struct vd_check_result res;
        vd_image_check(img, &res); /* walks every table read-only */
        struct vd_snapshot_info *snaps = NULL;
        int ns = vd_image_snapshot_list(img, &snaps);
        /* Bounded sizes only: a walk reads every L2 table it meets. */
        if (ns > 0 && snaps[0].disk_size <= (1ULL << 30)) {
            uint64_t bytes = 0;
            vd_image_snapshot_changes(img, NULL, snaps[0].name, count_extent,
                                      &bytes, NULL);
            if (ns > 1 && snaps[1].disk_size <= (1ULL << 30)) {
                vd_image_snapshot_changes(img, snaps[0].name, snaps[1].name,
                                          count_extent, &bytes, NULL);
            }
        }
        vd_image_close(img);
        if (ns > 0) {
            struct vd_open_opts vo = o;
            vo.snapshot = snaps[0].name;
            if (vd_image_open("qcow2", path, &vo, &img, NULL) == 0) {
                uint64_t vlen = vd_image_length(img);
                read_range(img, buf, 0, 4096);
                read_range(img, buf, vlen / 2 & ~511ULL, 8192);
                vd_image_close(img);
            }
        }
        free(snaps);
    }
    close(fd);
    return 0;
}
