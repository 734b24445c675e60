/* raw.c — a raw image is the host file itself, byte for byte.
 *
 * Stateless data path (pread/pwrite on one fd), so calls run in parallel.
 * Holes are kept sparse: discard punches, block_status uses SEEK_DATA. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostaio.h"
#include "image-int.h"
#include "io_util.h"
#include "vd_error.h"

struct raw_state {
    struct vd_hostfile hf;    /* hf.fd -1 when closed */
    struct vd_ioloop *loop;   /* NULL: no asynchronous I/O */
    _Atomic uint64_t size;    /* virtual size == file size */
    _Atomic bool sync_failed; /* a flush failed: all later ones fail */
};

static int raw_probe(const uint8_t *buf, size_t len)
{
    (void)buf;
    (void)len;
    return 1; /* anything can be raw; every real format scores higher */
}

static int raw_create(const char *location, const struct vd_create_opts *o,
                      struct vd_error *err)
{
    int ret = 0;
    int fd;
    if (o->backing_file != NULL) {
        return vd_error_set(err, -ENOTSUP, "raw images have no backing file");
    }
    if (o->cluster_size != 0) {
        return vd_error_set(err, -EINVAL,
                            "raw images have no clusters: cluster_size "
                            "applies to qcow2 only");
    }
    fd = open(location, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return vd_error_set(err, -errno, "cannot create '%s': %s", location,
                            strerror(errno));
    }
    if (ftruncate(fd, (off_t)o->size) < 0) {
        if (errno == EFBIG) {
            ret = vd_error_set(err, -EFBIG,
                               "the host file system holding '%s' cannot "
                               "hold a file of %llu bytes; choose a smaller "
                               "size",
                               location, (unsigned long long)o->size);
        } else {
            ret = vd_error_set(err, -errno, "cannot size '%s': %s", location,
                               strerror(errno));
        }
        goto out;
    }
    if (o->prealloc == VD_PREALLOC_FALLOC || o->prealloc == VD_PREALLOC_FULL) {
        int r = posix_fallocate(fd, 0, (off_t)o->size);
        if (r != 0) {
            ret = vd_error_set(err, -r, "cannot allocate %llu bytes: %s",
                               (unsigned long long)o->size, strerror(r));
            goto out;
        }
    }
    if (fsync(fd) < 0) {
        ret = vd_error_set(err, -errno, "fsync: %s", strerror(errno));
    }
out:
    close(fd);
    if (ret < 0) {
        unlink(location);
    }
    return ret;
}

static int raw_open(struct vd_image *img, const char *location,
                    const struct vd_open_opts *o, struct vd_error *err)
{
    struct raw_state *s = img->opaque;
    struct stat st;
    int ret;

    ret = vd_hostfile_open(&s->hf, location, !o->readonly, o->direct);
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot open '%s': %s", location,
                            ret == -EINVAL ? "not a regular file"
                                           : strerror(-ret));
    }
    if (fstat(s->hf.fd, &st) < 0) {
        ret = vd_error_set(err, -errno, "stat '%s': %s", location,
                           strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        ret =
            vd_error_set(err, -EINVAL, "'%s' is not a regular file", location);
        goto out_close;
    }
    ret = vd_lock_image_fd_mode(s->hf.fd, !o->readonly         ? VD_LOCK_WRITE
                                          : o->chain_depth > 0 ? VD_LOCK_BACKING
                                                               : VD_LOCK_READ);
    if (ret < 0) {
        vd_error_set(err, ret, "'%s' is in use by another process: %s",
                     location, strerror(-ret));
        goto out_close;
    }
    atomic_store(&s->size, (uint64_t)st.st_size);
    s->loop = o->ioloop;
    return 0;

out_close:
    vd_hostfile_close(&s->hf);
    return ret;
}

static void raw_close(struct vd_image *img)
{
    struct raw_state *s = img->opaque;
    vd_hostfile_close(&s->hf);
}

static int raw_pread(struct vd_image *img, void *buf, size_t len, uint64_t off)
{
    struct raw_state *s = img->opaque;
    return vd_hostfile_pread(&s->hf, buf, len, off);
}

static int raw_pwrite(struct vd_image *img, const void *buf, size_t len,
                      uint64_t off)
{
    struct raw_state *s = img->opaque;
    return vd_hostfile_pwrite(&s->hf, buf, len, off);
}

/* Asynchronous reads and writes go straight to the file (hostaio.h). */
static int raw_submit(struct vd_image *img, struct vd_aio *aio)
{
    struct raw_state *s = img->opaque;
    struct vd_hostio_batch *b;
    if (aio->op == VD_AIO_FLUSH) {
        return -EAGAIN; /* fdatasync blocks: the caller's thread does it */
    }
    if (s->loop == NULL ||
        !vd_hostio_suits(&s->hf, aio->buf, aio->len, aio->off) ||
        (b = vd_hostio_batch_new(aio, 1)) == NULL) {
        return -EAGAIN;
    }
    b->io[0] = (struct vd_hostio){.hf = &s->hf,
                                  .write = aio->op == VD_AIO_WRITE,
                                  .buf = aio->buf,
                                  .len = aio->len,
                                  .off = aio->off};
    b->n = 1;
    if (vd_hostio_batch_submit(s->loop, b) < 0) {
        vd_hostio_batch_free(b);
        return -EAGAIN;
    }
    return 0;
}

static int raw_host_links(struct vd_image *img)
{
    struct raw_state *s = img->opaque;
    return vd_hostfile_links(&s->hf);
}

static int raw_flush(struct vd_image *img)
{
    struct raw_state *s = img->opaque;
    return vd_fdatasync_sticky(s->hf.fd, &s->sync_failed);
}

static int raw_discard(struct vd_image *img, uint64_t off, uint64_t len)
{
    struct raw_state *s = img->opaque;
    int ret = vd_fallocate(s->hf.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           off, len);
    return ret == -EOPNOTSUPP ? -ENOTSUP : ret;
}

static int raw_write_zeroes(struct vd_image *img, uint64_t off, uint64_t len,
                            unsigned flags)
{
    struct raw_state *s = img->opaque;
    if (flags & VD_ZERO_MAY_UNMAP) {
        if (raw_discard(img, off, len) == 0) {
            return 0;
        }
    }
    int ret = vd_fallocate(s->hf.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                           off, len);
    return ret == -EOPNOTSUPP ? -ENOTSUP : ret;
}

static int raw_block_status(struct vd_image *img, uint64_t off, uint64_t len,
                            uint64_t *pnum)
{
    struct raw_state *s = img->opaque;
    off_t data = lseek(s->hf.fd, (off_t)off, SEEK_DATA);
    off_t hole;

    if (data < 0) {
        if (errno == ENXIO) { /* no data after off: all hole */
            *pnum = len;
            return VD_BS_ZERO;
        }
        *pnum = len; /* SEEK_DATA unsupported: say data */
        return VD_BS_DATA | VD_BS_ALLOCATED;
    }
    if ((uint64_t)data > off) { /* a hole up to data */
        *pnum = (uint64_t)data - off < len ? (uint64_t)data - off : len;
        return VD_BS_ZERO;
    }
    hole = lseek(s->hf.fd, (off_t)off, SEEK_HOLE);
    if (hole < 0 || (uint64_t)hole <= off) {
        *pnum = len;
        return VD_BS_DATA | VD_BS_ALLOCATED;
    }
    *pnum = (uint64_t)hole - off < len ? (uint64_t)hole - off : len;
    return VD_BS_DATA | VD_BS_ALLOCATED;
}

static uint64_t raw_length(struct vd_image *img)
{
    struct raw_state *s = img->opaque;
    return atomic_load(&s->size);
}

static int64_t raw_allocated(struct vd_image *img)
{
    struct raw_state *s = img->opaque;
    struct stat st;
    if (fstat(s->hf.fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

static int raw_truncate(struct vd_image *img, uint64_t size,
                        struct vd_error *err)
{
    struct raw_state *s = img->opaque;
    if (size < atomic_load(&s->size)) {
        return vd_error_set(err, -ENOTSUP,
                            "shrinking a volume is not supported");
    }
    int ret = vd_ftruncate(s->hf.fd, size);
    if (ret < 0) {
        return vd_error_set(err, ret, "resize: %s", strerror(-ret));
    }
    atomic_store(&s->size, size);
    return 0;
}

static int raw_host_fd(struct vd_image *img)
{
    struct raw_state *s = img->opaque;
    return s->hf.fd;
}

const struct vd_driver vd_driver_raw = {
    .name = "raw",
    .instance_size = sizeof(struct raw_state),
    .parallel = true,
    .is_file = true,
    .caps = VD_CAP_CREATE | VD_CAP_GROW | VD_CAP_BASE,
    .probe = raw_probe,
    .create = raw_create,
    .open = raw_open,
    .close = raw_close,
    .submit = raw_submit,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .flush = raw_flush,
    .flush_nowait = raw_flush, /* only data to sync */
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .block_status = raw_block_status,
    .length = raw_length,
    .allocated = raw_allocated,
    .truncate = raw_truncate,
    .host_links = raw_host_links,
    .host_fd = raw_host_fd,
};
