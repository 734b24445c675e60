/* fuzz_qcow2_rw.c — libFuzzer harness for the write path: open arbitrary
 * bytes as a writable qcow2 image (on a memfd) and write, zero, discard,
 * snapshot and flush a little. Whatever the image says, the driver must
 * fail cleanly (and then stop writing) or produce a consistent result;
 * sanitizers catch the rest. Build as fuzz_qcow2 (see run.sh). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image.h"
#include "vd_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[8192];
    struct vd_open_opts o = {.cache_bytes = 1 << 14};
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    char path[64];
    int fd = memfd_create("fuzz_qcow2_rw", MFD_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (vd_image_open("qcow2", path, &o, &img, &err) == 0) {
        uint64_t len = vd_image_length(img);
        memset(buf, 0x5a, sizeof(buf));
        if (len >= sizeof(buf)) {
            vd_image_pwrite(img, buf, 700, 100);
            vd_image_pwrite(img, buf, sizeof(buf), len - sizeof(buf));
            vd_image_write_zeroes(img, 0, len / 2, 0);
            vd_image_discard(img, len / 4, len / 4);
            vd_image_pwrite(img, buf, 4096, len / 3);
            if (!vd_image_readonly(img)) {
                struct vd_error e2 = {0};
                vd_image_snapshot_create(img, "fz", &e2);
            }
            vd_image_pwrite(img, buf, 512, 0);
            vd_image_flush(img);
            vd_image_pread(img, buf, sizeof(buf), len / 3);
        }
        vd_image_close(img);
    }
    close(fd);
    return 0;
}
