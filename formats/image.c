/* image.c — the dispatcher between callers and block drivers.
 *
 * Checks what the driver interface promises (open, in range, writable,
 * non-empty), serialises drivers that are not parallel-safe, counts
 * requests and errors, and supplies fallbacks for optional members. */
#include "image-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io_util.h"
#include "ioloop.h"
#include "vd_assert.h"
#include "vd_error.h"

/* Enter/leave a driver call: a no-op for parallel drivers. */
static void drv_enter(struct vd_image *img)
{
    if (!img->drv->parallel) {
        pthread_mutex_lock(&img->serial);
    }
}

static void drv_leave(struct vd_image *img)
{
    if (!img->drv->parallel) {
        pthread_mutex_unlock(&img->serial);
    }
}

/* A driver's "0 or -errno" result (what every int member returns unless
 * its comment says a count): errno values are small positive numbers. */
#define VD_ASSERT_ERRNO_RESULT(ret)                                            \
    VD_ASSERT((ret) == 0 || ((ret) < 0 && (ret) > -4096))
#define VD_ASSERT_ERRNO_OR_COUNT(ret) VD_ASSERT((ret) > -4096)

static int count_result(struct vd_image *img, int ret)
{
    if (ret < 0) {
        atomic_fetch_add(&img->stats.errors, 1);
    }
    return ret;
}

int vd_image_create(const char *format, const char *location,
                    const struct vd_create_opts *opts, struct vd_error *err)
{
    const struct vd_driver *drv = vd_driver_find(format);
    if (drv == NULL) {
        return vd_error_set(err, -EINVAL, "unknown format '%s'", format);
    }
    if (drv->create == NULL) {
        return vd_error_set(err, -ENOTSUP, "format '%s' cannot create images",
                            format);
    }
    /* 0 makes an empty image, to be grown before it holds data */
    if (opts->size % 512 != 0) {
        return vd_error_set(err, -EINVAL, "size %llu is not a multiple of 512",
                            (unsigned long long)opts->size);
    }
    return drv->create(location, opts, err);
}

int vd_image_locate(const char *driver, const struct vd_locate_req *req,
                    char *buf, size_t len, struct vd_error *err)
{
    const struct vd_driver *drv = vd_driver_find(driver);
    if (drv == NULL) {
        return vd_error_set(err, -EINVAL, "unknown driver '%s'", driver);
    }
    if (drv->locate == NULL) {
        return -ENOTSUP;
    }
    return drv->locate(req, buf, len, err);
}

int vd_image_location_parts(const char *driver, const char *location,
                            struct vd_location_parts *out)
{
    const struct vd_driver *drv = vd_driver_find(driver);
    memset(out, 0, sizeof(*out));
    if (drv == NULL || drv->location_parts == NULL) {
        return -ENOTSUP;
    }
    return drv->location_parts(location, out);
}

int vd_image_remove(const char *driver, const char *location,
                    struct vd_error *err)
{
    const struct vd_driver *drv = vd_driver_find(driver);
    if (drv == NULL) {
        return vd_error_set(err, -EINVAL, "unknown driver '%s'", driver);
    }
    if (drv->remove == NULL) {
        return vd_error_set(err, -ENOTSUP,
                            "driver '%s' cannot remove "
                            "images",
                            driver);
    }
    return drv->remove(location, err);
}

int vd_image_relocate(const char *format, const char *location,
                      const char *orig_dir, struct vd_error *err)
{
    const struct vd_driver *drv = vd_driver_find(format);
    if (drv == NULL) {
        return vd_error_set(err, -EINVAL, "unknown format '%s'", format);
    }
    return drv->relocate != NULL ? drv->relocate(location, orig_dir, err) : 0;
}

int vd_image_open(const char *format, const char *location,
                  const struct vd_open_opts *opts, struct vd_image **out,
                  struct vd_error *err)
{
    const struct vd_driver *drv;
    struct vd_image *img = NULL;
    int ret;

    *out = NULL;
    if (format != NULL) {
        drv = vd_driver_find(format);
        if (drv == NULL) {
            return vd_error_set(err, -EINVAL, "unknown format '%s'", format);
        }
    } else {
        drv = vd_driver_probe_file(location, err);
        if (drv == NULL) {
            return err != NULL && err->code ? err->code : -EINVAL;
        }
    }
    if (opts->chain_depth > VD_MAX_CHAIN_DEPTH) {
        return vd_error_set(err, -ELOOP,
                            "backing chain deeper than %d images at '%s'",
                            VD_MAX_CHAIN_DEPTH, location);
    }

    if (opts->snapshot != NULL && !(drv->caps & VD_CAP_SNAPSHOT_VIEWS)) {
        return vd_error_set(err, -ENOTSUP, "format '%s' has no snapshots",
                            drv->name);
    }
    img = calloc(1, sizeof(*img));
    if (img == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    img->drv = drv;
    img->readonly =
        opts->readonly || drv->pwrite == NULL || opts->snapshot != NULL;
    pthread_mutex_init(&img->serial, NULL);
    img->location = strdup(location);
    if (img->location == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out_free;
    }
    if (drv->instance_size > 0) {
        img->opaque = calloc(1, drv->instance_size);
        if (img->opaque == NULL) {
            ret = vd_error_set(err, -ENOMEM, "out of memory");
            goto out_free;
        }
    }
    struct vd_open_opts o = *opts;
    o.readonly = img->readonly;
    ret = drv->open(img, location, &o, err);
    VD_ASSERT(ret == VD_OPEN_READONLY || (ret <= 0 && ret > -4096));
    if (ret < 0) {
        goto out_free;
    }
    if (ret == VD_OPEN_READONLY) {
        img->readonly = true;
    }
    *out = img;
    return 0;

out_free:
    pthread_mutex_destroy(&img->serial);
    free(img->opaque);
    free(img->location);
    free(img);
    return ret;
}

const struct vd_driver *vd_image_driver(const struct vd_image *img)
{
    return img->drv;
}

const char *vd_image_format(const struct vd_image *img)
{
    return img->drv->name;
}

unsigned vd_image_caps(const struct vd_image *img)
{
    return vd_driver_caps(img->drv);
}

bool vd_image_readonly(const struct vd_image *img)
{
    return img->readonly;
}

const char *vd_image_location(const struct vd_image *img)
{
    return img->location;
}

void vd_image_stats(const struct vd_image *img, struct vd_image_stats *out)
{
    const struct vd_image_counters *c = &img->stats;
    out->reads = atomic_load(&c->reads);
    out->writes = atomic_load(&c->writes);
    out->flushes = atomic_load(&c->flushes);
    out->discards = atomic_load(&c->discards);
    out->bytes_read = atomic_load(&c->bytes_read);
    out->bytes_written = atomic_load(&c->bytes_written);
    out->errors = atomic_load(&c->errors);
    out->async = atomic_load(&c->async);
}

int vd_image_close(struct vd_image *img)
{
    int ret = 0;
    if (img == NULL) {
        return 0;
    }
    if (!img->readonly) {
        ret = vd_image_flush(img);
    }
    img->drv->close(img);
    pthread_mutex_destroy(&img->serial);
    free(img->opaque);
    free(img->location);
    free(img);
    return ret;
}

/*
 * An image file deleted behind our back (rm of the file under the data
 * dir) still takes writes and fsyncs through the open descriptor, and
 * all of it vanishes when the file is closed. So a writable image looks
 * at its file's link count (drv->host_links, one fstat) after every
 * flush, where a client asks for durability, and about once a second
 * while writes go on, never per request. Found at 0, the image fails every
 * request with -EIO from then on and vd_image_lost says why.
 */
#define LINKS_PERIOD_NS 1000000000LL

static int links_check(struct vd_image *img)
{
    if (atomic_load_explicit(&img->unlinked, memory_order_relaxed)) {
        return -EIO;
    }
    if (img->readonly || img->drv->host_links == NULL ||
        img->drv->host_links(img) != 0) {
        return 0; /* an fstat error says nothing about the links */
    }
    atomic_store(&img->unlinked, true);
    return -EIO;
}

/* links_check if a period has passed since the last one; one caller
 * among those that find it due does it. */
static int links_due(struct vd_image *img)
{
    struct timespec ts;
    int_fast64_t now, last;
    if (atomic_load_explicit(&img->unlinked, memory_order_relaxed)) {
        return -EIO;
    }
    if (img->drv->host_links == NULL) {
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    now = (int_fast64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    last = atomic_load_explicit(&img->links_checked_ns, memory_order_relaxed);
    if (now - last < LINKS_PERIOD_NS ||
        !atomic_compare_exchange_strong(&img->links_checked_ns, &last, now)) {
        return 0;
    }
    return links_check(img);
}

const char *vd_image_lost(struct vd_image *img)
{
    if (links_check(img) == 0) {
        return NULL;
    }
    return "its image file was deleted while the volume was open (the "
           "file has no links left): writes could not survive a restart, "
           "so every request fails with EIO; restore the image file or "
           "delete the volume";
}

/* Validate a data range: non-empty and within the virtual size. */
static int check_range(struct vd_image *img, uint64_t off, uint64_t len)
{
    if (len == 0) {
        return 0;
    }
    if (atomic_load_explicit(&img->unlinked, memory_order_relaxed)) {
        return -EIO;
    }
    if (!vd_range_ok(off, len, img->drv->length(img))) {
        return -EINVAL;
    }
    return 1;
}

static int check_write(struct vd_image *img, uint64_t off, uint64_t len)
{
    int ret;
    if (img->readonly) {
        return -EROFS;
    }
    ret = check_range(img, off, len);
    if (ret > 0 && links_due(img) < 0) {
        ret = -EIO;
    }
    return ret;
}

int vd_image_pread(struct vd_image *img, void *buf, size_t len, uint64_t off)
{
    int ret = check_range(img, off, len);
    if (ret <= 0) {
        return count_result(img, ret);
    }
    drv_enter(img);
    ret = img->drv->pread(img, buf, len, off);
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    atomic_fetch_add(&img->stats.reads, 1);
    if (ret == 0) {
        atomic_fetch_add(&img->stats.bytes_read, len);
    }
    return count_result(img, ret);
}

int vd_image_pwrite(struct vd_image *img, const void *buf, size_t len,
                    uint64_t off)
{
    int ret = check_write(img, off, len);
    uint64_t len_before = VD_ASSERTS_ON ? img->drv->length(img) : 0;
    if (ret <= 0) {
        return count_result(img, ret);
    }
    drv_enter(img);
    ret = img->drv->pwrite(img, buf, len, off);
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    VD_ASSERT(img->drv->length(img) == len_before);
    atomic_fetch_add(&img->stats.writes, 1);
    if (ret == 0) {
        atomic_fetch_add(&img->stats.bytes_written, len);
    }
    return count_result(img, ret);
}

static void image_aio_done(struct vd_aio *aio, int ret)
{
    struct vd_image *img = aio->img;
    VD_ASSERT_ERRNO_RESULT(ret);
    atomic_fetch_add(&img->stats.async, 1);
    if (aio->op == VD_AIO_FLUSH) {
        atomic_fetch_add(&img->stats.flushes, 1);
    } else if (aio->op == VD_AIO_READ) {
        atomic_fetch_add(&img->stats.reads, 1);
        if (ret == 0) {
            atomic_fetch_add(&img->stats.bytes_read, aio->len);
        }
    } else {
        atomic_fetch_add(&img->stats.writes, 1);
        if (ret == 0) {
            atomic_fetch_add(&img->stats.bytes_written, aio->len);
        }
    }
    aio->caller_done(aio, count_result(img, ret));
}

int vd_image_submit(struct vd_image *img, struct vd_aio *aio)
{
    int ret;
    if (img->drv->submit == NULL || !img->drv->parallel) {
        return -EAGAIN;
    }
    if (aio->op == VD_AIO_FLUSH) {
        ret = img->readonly || img->drv->flush == NULL ? 0 : 1;
        if (ret > 0 && links_check(img) < 0) {
            ret = -EIO;
        }
    } else {
        ret = aio->op == VD_AIO_READ ? check_range(img, aio->off, aio->len)
                                     : check_write(img, aio->off, aio->len);
    }
    if (ret <= 0) {
        return ret == 0 ? -EAGAIN : count_result(img, ret);
    }
    aio->img = img;
    aio->caller_done = aio->done;
    aio->done = image_aio_done;
    ret = img->drv->submit(img, aio);
    VD_ASSERT_ERRNO_RESULT(ret);
    if (ret < 0) {
        aio->done = aio->caller_done; /* not taken: the caller's again */
        if (ret != -EAGAIN) {
            count_result(img, ret);
        }
    }
    return ret;
}

int vd_image_flush(struct vd_image *img)
{
    int ret = 0;
    VD_ASSERT(vd_ioloop_may_wait()); /* may drain: vd_image_flush_nowait */
    if (img->readonly || img->drv->flush == NULL) {
        return 0;
    }
    if (atomic_load_explicit(&img->unlinked, memory_order_relaxed)) {
        return count_result(img, -EIO);
    }
    drv_enter(img);
    ret = img->drv->flush(img);
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    atomic_fetch_add(&img->stats.flushes, 1);
    if (ret == 0 && links_check(img) < 0) {
        ret = -EIO; /* deleted while we synced: it is not durable */
    }
    return count_result(img, ret);
}

int vd_image_flush_nowait(struct vd_image *img)
{
    int ret;
    if (img->readonly || img->drv->flush == NULL) {
        return 0;
    }
    if (img->drv->flush_nowait == NULL || !img->drv->parallel) {
        return -EAGAIN; /* serialising could wait */
    }
    if (atomic_load_explicit(&img->unlinked, memory_order_relaxed)) {
        return count_result(img, -EIO);
    }
    ret = img->drv->flush_nowait(img);
    if (ret == -EAGAIN) {
        return ret;
    }
    if (ret == 0 && links_check(img) < 0) {
        ret = -EIO;
    }
    atomic_fetch_add(&img->stats.flushes, 1);
    return count_result(img, ret);
}

int vd_image_discard(struct vd_image *img, uint64_t off, uint64_t len)
{
    int ret = check_write(img, off, len);
    if (ret <= 0) {
        return count_result(img, ret);
    }
    if (img->drv->discard == NULL) {
        return -ENOTSUP;
    }
    drv_enter(img);
    ret = img->drv->discard(img, off, len);
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    atomic_fetch_add(&img->stats.discards, 1);
    return count_result(img, ret);
}

/* Fallback for drivers without write_zeroes: write a zero buffer. */
static int write_zero_buffers(struct vd_image *img, uint64_t off, uint64_t len)
{
    const size_t chunk = 1u << 20;
    void *zero = calloc(1, chunk);
    int ret = 0;
    if (zero == NULL) {
        return -ENOMEM;
    }
    while (len > 0 && ret == 0) {
        size_t n = len < chunk ? (size_t)len : chunk;
        ret = img->drv->pwrite(img, zero, n, off);
        off += n;
        len -= n;
    }
    free(zero);
    return ret;
}

int vd_image_write_zeroes(struct vd_image *img, uint64_t off, uint64_t len,
                          unsigned flags)
{
    int ret = check_write(img, off, len);
    if (ret <= 0) {
        return count_result(img, ret);
    }
    drv_enter(img);
    if (img->drv->write_zeroes != NULL) {
        ret = img->drv->write_zeroes(img, off, len, flags);
    } else {
        ret = -ENOTSUP;
    }
    if (ret == -ENOTSUP) {
        ret = write_zero_buffers(img, off, len);
    }
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    atomic_fetch_add(&img->stats.writes, 1);
    return count_result(img, ret);
}

int vd_image_block_status(struct vd_image *img, uint64_t off, uint64_t len,
                          uint64_t *pnum)
{
    int ret = check_range(img, off, len);
    if (ret <= 0) {
        *pnum = 0;
        return ret;
    }
    if (img->drv->block_status == NULL) {
        *pnum = len;
        return VD_BS_DATA | VD_BS_ALLOCATED;
    }
    drv_enter(img);
    ret = img->drv->block_status(img, off, len, pnum);
    drv_leave(img);
    VD_ASSERT_ERRNO_OR_COUNT(ret);
    VD_ASSERT(ret < 0 || (*pnum >= 1 && *pnum <= len));
    VD_ASSERT(ret < 0 ||
              (ret & ~(int)(VD_BS_DATA | VD_BS_ZERO | VD_BS_ALLOCATED)) == 0);
    if (ret >= 0 && (*pnum == 0 || *pnum > len)) {
        ret = -EIO; /* a driver bug must not loop the caller forever */
    }
    return count_result(img, ret);
}

uint64_t vd_image_length(struct vd_image *img)
{
    return img->drv->length(img);
}

int64_t vd_image_allocated(struct vd_image *img)
{
    int64_t ret;
    if (img->drv->allocated == NULL) {
        return -ENOTSUP;
    }
    ret = img->drv->allocated(img);
    VD_ASSERT(ret > -4096);
    return ret;
}

int vd_image_truncate(struct vd_image *img, uint64_t size, struct vd_error *err)
{
    int ret;
    if (img->readonly) {
        return vd_error_set(err, -EROFS, "image is read-only");
    }
    if (img->drv->truncate == NULL) {
        return vd_error_set(err, -ENOTSUP, "format '%s' cannot be resized",
                            img->drv->name);
    }
    if (size == 0 || size % 512 != 0) {
        return vd_error_set(err, -EINVAL,
                            "size %llu is not a positive multiple of 512",
                            (unsigned long long)size);
    }
    drv_enter(img);
    ret = img->drv->truncate(img, size, err);
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    VD_ASSERT(ret < 0 || img->drv->length(img) == size);
    return ret;
}

/* Snapshot members share one shape: check presence and writability. */
static int snapshot_op(struct vd_image *img, const char *name,
                       int (*op)(struct vd_image *, const char *,
                                 struct vd_error *),
                       struct vd_error *err)
{
    int ret;
    if (op == NULL) {
        return vd_error_set(err, -ENOTSUP, "format '%s' has no snapshots",
                            img->drv->name);
    }
    if (img->readonly) {
        return vd_error_set(err, -EROFS, "image is read-only");
    }
    drv_enter(img);
    ret = op(img, name, err);
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    return ret;
}

int vd_image_snapshot_create(struct vd_image *img, const char *name,
                             struct vd_error *err)
{
    return snapshot_op(img, name, img->drv->snapshot_create, err);
}

int vd_image_snapshot_delete(struct vd_image *img, const char *name,
                             struct vd_error *err)
{
    return snapshot_op(img, name, img->drv->snapshot_delete, err);
}

int vd_image_snapshot_revert(struct vd_image *img, const char *name,
                             struct vd_error *err)
{
    return snapshot_op(img, name, img->drv->snapshot_revert, err);
}

int vd_image_snapshot_list(struct vd_image *img, struct vd_snapshot_info **out)
{
    int ret;
    *out = NULL;
    if (img->drv->snapshot_list == NULL) {
        return -ENOTSUP;
    }
    drv_enter(img);
    ret = img->drv->snapshot_list(img, out);
    drv_leave(img);
    VD_ASSERT_ERRNO_OR_COUNT(ret);
    VD_ASSERT(ret <= 0 || *out != NULL);
    return ret;
}

int vd_image_snapshot_changes(struct vd_image *img, const char *since,
                              const char *snap,
                              int (*cb)(void *arg, uint64_t off, uint64_t len),
                              void *arg, struct vd_error *err)
{
    int ret;
    if (img->drv->snapshot_changes == NULL) {
        return vd_error_set(err, -ENOTSUP,
                            "format '%s' cannot list changed "
                            "blocks",
                            img->drv->name);
    }
    drv_enter(img);
    ret = img->drv->snapshot_changes(img, since, snap, cb, arg, err);
    drv_leave(img);
    return ret;
}

int vd_image_check(struct vd_image *img, struct vd_check_result *res)
{
    int ret;
    memset(res, 0, sizeof(*res));
    if (img->drv->check == NULL) {
        return 0;
    }
    drv_enter(img);
    ret = img->drv->check(img, res);
    drv_leave(img);
    VD_ASSERT_ERRNO_RESULT(ret);
    return ret;
}

int vd_image_backend_state(struct vd_image *img, struct vd_backend_state *out)
{
    memset(out, 0, sizeof(*out));
    if (img->drv->backend_state == NULL) {
        return -ENOTSUP;
    }
    int ret = img->drv->backend_state(img, out);
    VD_ASSERT(ret <= 0 && ret > -4096);
    return ret;
}

int vd_image_takeover(struct vd_image *img, char *fenced, size_t len,
                      struct vd_error *err)
{
    if (len > 0) {
        fenced[0] = '\0';
    }
    if (img->drv->takeover == NULL) {
        return vd_error_set(err, -ENOTSUP,
                            "%s images have no lock to take over",
                            img->drv->name);
    }
    if (vd_image_readonly(img)) {
        return vd_error_set(err, -EROFS,
                            "a read-only volume takes no lock over");
    }
    int ret = img->drv->takeover(img, fenced, len, err);
    VD_ASSERT(ret <= 0 && ret > -4096);
    return ret;
}

const char *vd_image_corruption(struct vd_image *img)
{
    return img->drv->corruption != NULL ? img->drv->corruption(img) : NULL;
}

int vd_image_host_reopen(struct vd_image *img, int flags)
{
    char path[64];
    int fd;
    if (img->drv->host_fd == NULL) {
        return -ENOTSUP;
    }
    if ((flags & O_ACCMODE) != O_RDONLY && img->readonly) {
        return -EROFS;
    }
    /* Through /proc, not the location: the same inode even if the path
     * was renamed or replaced since the image was opened. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", img->drv->host_fd(img));
    fd = open(path, (flags & O_ACCMODE) | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vd_image_host_trim(struct vd_image *img)
{
    uint64_t len;
    struct stat st;
    int fd;
    if (img->drv->host_fd == NULL) {
        return -ENOTSUP;
    }
    fd = img->drv->host_fd(img);
    len = vd_image_length(img);
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if ((uint64_t)st.st_size <= len || img->readonly) {
        return 0;
    }
    return ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
}
