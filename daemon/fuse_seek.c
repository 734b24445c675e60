/* fuse_seek.c — lseek(SEEK_DATA/SEEK_HOLE) on the mount's files, answered
 * from the driver's block status, so that qemu-img, cp --sparse and backup
 * tools skip what the image does not hold instead of reading zeroes.
 *
 * DESIGN NOTES
 * 1. A hole is a run the driver reports as reading zeroes (VD_BS_ZERO):
 *    unallocated clusters with no backing data below them, qcow2's zero
 *    clusters, a raw file's holes. Data in a backing file is data: the
 *    volume's file shows it.
 * 2. As on any file system, the end of the file counts as a hole:
 *    SEEK_HOLE finds it when nothing before it is one, SEEK_DATA past the
 *    last data (or at or beyond the end) fails with ENXIO.
 * 3. Only SEEK_DATA and SEEK_HOLE reach the daemon; the kernel serves
 *    SEEK_SET, SEEK_CUR and SEEK_END itself. */
#include <errno.h>
#include <unistd.h>

#include "fuse-int.h"
#include "vd_driver.h"
#include "volume.h"

int vd_fuse_seek(vd_fuse_status_fn status, void *obj, uint64_t size, off_t off,
                 int whence, off_t *out)
{
    uint64_t pos, pnum;

    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        return -EINVAL;
    }
    if (off < 0 || (uint64_t)off >= size) {
        return -ENXIO;
    }
    for (pos = (uint64_t)off; pos < size; pos += pnum) {
        int st = status(obj, pos, size - pos, &pnum);
        bool hole;
        if (st < 0) {
            return st;
        }
        hole = (st & VD_BS_ZERO) != 0;
        if (hole == (whence == SEEK_HOLE)) {
            *out = (off_t)pos;
            return 0;
        }
    }
    if (whence == SEEK_DATA) {
        return -ENXIO;
    }
    *out = (off_t)size;
    return 0;
}

static int volume_status(void *vol, uint64_t off, uint64_t len, uint64_t *pnum)
{
    return vd_volume_block_status(vol, off, len, pnum);
}

void vd_fuse_reply_seek(fuse_req_t req, vd_fuse_status_fn status, void *obj,
                        uint64_t size, off_t off, int whence)
{
    struct vd_fuse_export *fx = req_fx(req);
    off_t res = 0;
    int ret;

    if (!fx_enter(fx)) {
        fuse_reply_err(req, EIO);
        return;
    }
    ret = vd_fuse_seek(status, obj, size, off, whence, &res);
    fx_leave(fx);
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_lseek(req, res);
    }
}

void vd_fuse_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                   struct fuse_file_info *fi)
{
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    (void)ino;
    vd_fuse_reply_seek(req, volume_status, h->vol, vd_volume_size(h->vol), off,
                       whence);
}
