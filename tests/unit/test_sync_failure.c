/* test_sync_failure.c — a flush that failed once keeps failing.
 *
 * After fdatasync fails, the kernel may have dropped the dirty pages it
 * could not write and marked them clean; a later fdatasync then succeeds
 * without having stored them. A driver that answered that later flush
 * with success would vouch for lost writes. For raw and qcow2: one
 * injected flush failure, then every later flush fails too, and qcow2
 * says why and writes no more metadata. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "image.h"
#include "vd_error.h"
#include "vd_test.h"

static void check_format(const char *fmt, const char *dir)
{
    char path[512];
    struct vd_create_opts co = {.size = 4 << 20};
    struct vd_open_opts oo = {0};
    struct vd_image *img = NULL;
    char buf[4096];

    snprintf(path, sizeof(path), "%s/img.%s", dir, fmt);
    CHECK_EQ(vd_image_create(fmt, path, &co, NULL), 0);
    CHECK_EQ(vd_image_open(fmt, path, &oo, &img, NULL), 0);
    if (img == NULL) {
        return;
    }
    memset(buf, 0x3c, sizeof(buf));
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 0), 0);
    CHECK_EQ(vd_image_flush(img), 0);

    /* The first flush after this write fails... */
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 1 << 20), 0);
    vd_fault_arm(VD_FAULT_FLUSH, 1, EIO, 0);
    CHECK_EQ(vd_image_flush(img), -EIO);
    CHECK(vd_fault_fired());
    vd_fault_disarm();
    /* ... and so does every later one, though the disk works again. */
    CHECK_EQ(vd_image_flush(img), -EIO);
    /* never a success; qcow2 sends it to the waiting path (-EAGAIN) */
    int nw = vd_image_flush_nowait(img);
    CHECK(nw == -EIO || nw == -EAGAIN);
    CHECK_EQ(vd_image_pwrite(img, buf, sizeof(buf), 2 << 20), 0);
    CHECK_EQ(vd_image_flush(img), -EIO);
    /* Reads still work: the data may be copied off. */
    CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), 0);
    CHECK(buf[0] == 0x3c && buf[4095] == 0x3c);
    if (strcmp(fmt, "qcow2") == 0) {
        const char *why = vd_image_corruption(img);
        CHECK(why != NULL && strstr(why, "fdatasync") != NULL);
    }
    vd_image_close(img); /* its flush fails too; the file stays usable */

    /* A new open starts with a clean slate (the fault is gone). */
    CHECK_EQ(vd_image_open(fmt, path, &oo, &img, NULL), 0);
    if (img != NULL) {
        CHECK_EQ(vd_image_pread(img, buf, sizeof(buf), 0), 0);
        CHECK(buf[0] == 0x3c);
        CHECK_EQ(vd_image_flush(img), 0);
        CHECK_EQ(vd_image_close(img), 0);
    }
}

int main(void)
{
    char dir[] = "/tmp/vdsync.XXXXXX";
    char cmd[600];
    if (mkdtemp(dir) == NULL) {
        return 1;
    }
    check_format("raw", dir);
    check_format("qcow2", dir);
    snprintf(cmd, sizeof(cmd), "qemu-img check -q %s/img.qcow2", dir);
    int rc = system(cmd);
    /* no corruption; the clusters of the write never flushed may leak */
    CHECK(rc == 0 || (WIFEXITED(rc) && WEXITSTATUS(rc) == 3));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
    return vd_test_done("test_sync_failure");
}
