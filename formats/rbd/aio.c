/* aio.c — the RBD data path: reads, writes, flushes, zeroing and block
 * status, synchronous for callers that wait in their own thread, and
 * asynchronous (vd_driver.submit) completing from librbd's callback
 * (note 3 in rbd-int.h). */
#include <errno.h>
#include <stddef.h>

#include "image.h"
#include "rbd-int.h"

/* ---- synchronous ------------------------------------------------------ */

/* A flush with nothing in flight succeeds without an OSD: its success
 * says nothing about the link, so it does not clear io_timed_out. */
static int flush_errno(struct rbd_state *s, int64_t r)
{
    return r >= 0 ? 0 : vd_rbd_io_errno(s, r);
}

int vd_rbd_pread(struct vd_image *img, void *buf, size_t len, uint64_t off)
{
    struct rbd_state *s = img->opaque;

    if (!vd_rbd_up(s)) {
        return -EIO; /* not connected yet (note 6) */
    }
    ssize_t r = rbd_read2(s->image, off, len, buf, 0);
    if (r >= 0 && (size_t)r != len) {
        return -EIO;
    }
    return vd_rbd_io_errno(s, r);
}

int vd_rbd_pwrite(struct vd_image *img, const void *buf, size_t len,
                  uint64_t off)
{
    struct rbd_state *s = img->opaque;

    if (!vd_rbd_up(s)) {
        return -EIO; /* not connected yet (note 6) */
    }
    ssize_t r = rbd_write2(s->image, off, len, buf, 0);
    if (r >= 0 && (size_t)r != len) {
        return -EIO;
    }
    return vd_rbd_io_errno(s, r);
}

int vd_rbd_flush(struct vd_image *img)
{
    struct rbd_state *s = img->opaque;

    if (!vd_rbd_up(s)) {
        return 0; /* never up: nothing was written through it (note 6) */
    }
    return flush_errno(s, rbd_flush(s->image));
}

/* librbd takes a size_t length per call; keep each well inside it. */
#define ZERO_CHUNK (1ull << 30)

int vd_rbd_write_zeroes(struct vd_image *img, uint64_t off, uint64_t len,
                        unsigned flags)
{
    struct rbd_state *s = img->opaque;

    if (!vd_rbd_up(s)) {
        return -EIO; /* not connected yet (note 6) */
    }
    (void)flags; /* librbd deallocates whole objects either way */
    while (len > 0) {
        size_t n = len < ZERO_CHUNK ? (size_t)len : (size_t)ZERO_CHUNK;
        ssize_t r = rbd_write_zeroes(s->image, off, n, 0, 0);
        if (r < 0) {
            return vd_rbd_io_errno(s, r);
        }
        off += n;
        len -= n;
    }
    return 0;
}

/* Note 4 in rbd-int.h: a discarded range must read back as zeroes. */
int vd_rbd_discard(struct vd_image *img, uint64_t off, uint64_t len)
{
    return vd_rbd_write_zeroes(img, off, len, VD_ZERO_MAY_UNMAP);
}

/* ---- asynchronous ----------------------------------------------------- */

static void aio_complete(rbd_completion_t c, void *arg)
{
    struct vd_aio *aio = arg;
    struct rbd_state *s = aio->img->opaque;
    ssize_t r = rbd_aio_get_return_value(c);
    int ret;

    rbd_aio_release(c);
    if (r >= 0 && aio->op == VD_AIO_READ && (size_t)r != aio->len) {
        ret = -EIO; /* a short read inside the image cannot happen */
    } else if (aio->op == VD_AIO_FLUSH) {
        ret = flush_errno(s, r);
    } else {
        ret = vd_rbd_io_errno(s, r);
    }
    aio->done(aio, ret);
}

int vd_rbd_submit(struct vd_image *img, struct vd_aio *aio)
{
    struct rbd_state *s = img->opaque;
    rbd_completion_t c;
    int ret;

    if (!vd_rbd_up(s)) {
        return -EIO; /* not connected yet (note 6) */
    }

    ret = rbd_aio_create_completion(aio, aio_complete, &c);
    if (ret < 0) {
        return ret;
    }
    switch (aio->op) {
    case VD_AIO_READ:
        ret = rbd_aio_read(s->image, aio->off, aio->len, aio->buf, c);
        break;
    case VD_AIO_WRITE:
        ret = rbd_aio_write(s->image, aio->off, aio->len, aio->buf, c);
        break;
    case VD_AIO_FLUSH:
        ret = rbd_aio_flush(s->image, c);
        break;
    default:
        ret = -EINVAL;
        break;
    }
    if (ret < 0) {
        rbd_aio_release(c); /* not queued: the callback will not run */
        return ret;
    }
    return 0;
}

/* ---- block status ----------------------------------------------------- */

/* Per call, how far to look: with fast-diff the object map answers for
 * the whole range at once; without it librbd asks the OSD per object. */
#define BS_RANGE_FAST (1ull << 30)
#define BS_RANGE_SLOW (64ull << 20)

struct bs_walk {
    uint64_t off, end;   /* the range asked about */
    uint64_t data_start; /* the first data extent found at or after off */
    uint64_t data_end;   /* end of the run of data that starts there */
    bool found;
};

/* Extents arrive in ascending order; stop once a gap ends the first run. */
static int bs_extent(uint64_t off, size_t len, int exists, void *arg)
{
    struct bs_walk *w = arg;
    uint64_t end = off + len;
    if (off < w->off) {
        off = w->off; /* whole-object extents may start before the range */
    }
    if (end > w->end) {
        end = w->end;
    }
    if (!exists || end <= off) {
        return 0;
    }
    len = end - off;
    if (!w->found) {
        w->found = true;
        w->data_start = off;
        w->data_end = off + len;
        return 0;
    }
    if (off == w->data_end) {
        w->data_end += len;
        return 0;
    }
    return -ECANCELED; /* the run ended: nothing further is needed */
}

int vd_rbd_block_status(struct vd_image *img, uint64_t off, uint64_t len,
                        uint64_t *pnum)
{
    struct rbd_state *s = img->opaque;
    uint64_t range =
        (s->features & RBD_FEATURE_FAST_DIFF) ? BS_RANGE_FAST : BS_RANGE_SLOW;
    struct bs_walk w = {.off = off, .end = off + (len < range ? len : range)};
    int ret;

    if (!vd_rbd_up(s)) {
        return -EIO;
    }
    /* Whole objects: a hole is an object that was never written (or was
     * removed), which is what lseek and st_blocks care about. */
    ret = rbd_diff_iterate2(s->image, NULL, w.off, w.end - w.off, 1, 1,
                            bs_extent, &w);
    if (ret < 0 && ret != -ECANCELED) {
        return vd_rbd_io_errno(s, ret);
    }
    if (!w.found || w.data_start >= w.end) {
        *pnum = w.end - off;
        return VD_BS_ZERO;
    }
    if (w.data_start > off) {
        *pnum = w.data_start - off;
        return VD_BS_ZERO;
    }
    *pnum = (w.data_end < w.end ? w.data_end : w.end) - off;
    return VD_BS_DATA | VD_BS_ALLOCATED;
}
