/* test_raw.c — the raw driver through the dispatcher: create, I/O,
 * holes, discard, zeroes, block status, resize, range and locking checks. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "vd_error.h"
#include "vd_test.h"

int main(void)
{
    char dir[] = "/tmp/vdraw.XXXXXX";
    char path[64];
    struct vd_error err = {0};
    struct vd_image *img = NULL;
    struct vd_open_opts oo = {0};
    struct vd_create_opts co = {.size = 8 << 20};
    char buf[65536], back[65536];
    uint64_t pnum;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/a.raw", dir);

    CHECK_EQ(vd_image_create("raw", path, &co, &err), 0);
    CHECK_EQ(vd_image_create("raw", path, &co, NULL), -EEXIST);
    co.size = 1000;
    CHECK_EQ(vd_image_create("raw", "/tmp/never", &co, NULL), -EINVAL);
    CHECK_EQ(vd_image_create("nosuch", "/tmp/never", &co, NULL), -EINVAL);

    CHECK_EQ(vd_image_open(NULL, path, &oo, &img, &err), 0);
    CHECK(strcmp(vd_image_format(img), "raw") == 0);
    CHECK_EQ(vd_image_length(img), 8 << 20);

    /* A fresh image is one hole and reads zeroes. */
    CHECK_EQ(vd_image_block_status(img, 0, 8 << 20, &pnum), VD_BS_ZERO);
    CHECK_EQ(pnum, 8 << 20);
    CHECK_EQ(vd_image_pread(img, back, sizeof(back), 0), 0);
    memset(buf, 0, sizeof(buf));
    CHECK(memcmp(buf, back, sizeof(back)) == 0);

    memset(buf, 0xab, sizeof(buf));
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 1 << 20), 0);
    CHECK_EQ(vd_image_pread(img, back, sizeof(back), 1 << 20), 0);
    CHECK(memcmp(buf, back, sizeof(back)) == 0);
    CHECK_EQ(vd_image_flush(img), 0);
    CHECK_EQ(vd_image_block_status(img, 1 << 20, 1 << 20, &pnum),
             VD_BS_DATA | VD_BS_ALLOCATED);
    CHECK(pnum >= sizeof(buf));
    CHECK(vd_image_allocated(img) >= (int64_t)sizeof(buf));

    /* Out of range and empty requests. */
    CHECK_EQ(vd_image_pread(img, back, 512, 8 << 20), -EINVAL);
    CHECK_EQ(vd_image_pwrite(img, buf, 4096, (8 << 20) - 512), -EINVAL);
    CHECK_EQ(vd_image_pread(img, back, 0, 0), 0);
    CHECK_EQ(vd_image_pread(img, back, 512, UINT64_MAX - 100), -EINVAL);

    /* Discard and write_zeroes read back as zeroes. */
    CHECK_EQ(vd_image_discard(img, 1 << 20, 4096), 0);
    CHECK_EQ(vd_image_pread(img, back, 4096, 1 << 20), 0);
    memset(buf, 0, 4096);
    CHECK(memcmp(buf, back, 4096) == 0);
    CHECK_EQ(vd_image_write_zeroes(img, (1 << 20) + 4096, 8192, 0), 0);
    CHECK_EQ(vd_image_pread(img, back, 8192, (1 << 20) + 4096), 0);
    CHECK(memcmp(buf, back, 4096) == 0 && memcmp(buf, back + 4096, 4096) == 0);
    CHECK_EQ(vd_image_pread(img, back, 1, (1 << 20) + 12288), 0);
    CHECK_EQ((unsigned char)back[0], 0xab);

    /* Grow; shrinking is refused. */
    CHECK_EQ(vd_image_truncate(img, 16 << 20, &err), 0);
    CHECK_EQ(vd_image_length(img), 16 << 20);
    CHECK_EQ(vd_image_truncate(img, 4 << 20, NULL), -ENOTSUP);
    CHECK_EQ(vd_image_truncate(img, 1000, NULL), -EINVAL);

    /* A second writer is locked out, like QEMU would be. */
    struct vd_image *img2 = NULL;
    struct vd_error e2 = {0};
    CHECK(vd_image_open("raw", path, &oo, &img2, &e2) < 0);
    CHECK(strstr(e2.msg, "in use") != NULL);

    struct vd_image_stats stats;
    vd_image_stats(img, &stats);
    CHECK(stats.errors > 0);
    CHECK_EQ(vd_image_close(img), 0);
    CHECK_EQ(vd_image_close(NULL), 0);

    /* Read-only open refuses writes. */
    oo.readonly = true;
    CHECK_EQ(vd_image_open("raw", path, &oo, &img, &err), 0);
    CHECK_EQ(vd_image_pwrite(img, buf, 512, 0), -EROFS);
    CHECK_EQ(vd_image_discard(img, 0, 512), -EROFS);
    vd_image_close(img);

    /* Host O_DIRECT: aligned and unaligned buffers, offsets and lengths
     * all work (bounce buffer or page-cache fallback). */
    oo.readonly = false;
    oo.direct = true;
    CHECK_EQ(vd_image_open("raw", path, &oo, &img, &err), 0);
    static char big[3 * 65536];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (char)(i * 7 + 3);
    }
    CHECK_EQ(vd_image_pwrite(img, big + 1, 65536, 65536), 0); /* bounce */
    CHECK_EQ(vd_image_pwrite(img, big + 5, 1000, 3 * 65536 + 17),
             0); /* buffered */
    CHECK_EQ(vd_image_pread(img, back, 65536, 65536), 0);
    CHECK(memcmp(back, big + 1, 65536) == 0);
    CHECK_EQ(vd_image_pread(img, back + 3, 1000, 3 * 65536 + 17), 0);
    CHECK(memcmp(back + 3, big + 5, 1000) == 0);
    CHECK_EQ(vd_image_flush(img), 0);
    vd_image_close(img);

    unlink(path);
    rmdir(dir);
    return vd_test_done("test_raw");
}
