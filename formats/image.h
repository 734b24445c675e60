/* image.h — an open image and the dispatcher in front of its driver.
 *
 * Everything above formats/ goes through these functions, never through
 * drv members: they check the contract, serialise non-parallel drivers
 * and count requests and errors. */
#ifndef VD_IMAGE_H
#define VD_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vd_driver.h"

struct vd_image; /* opaque above formats/ (image-int.h) */

/* A copy of an image's request counters (vd_image_stats). */
struct vd_image_stats {
    uint64_t reads, writes, flushes, discards;
    uint64_t bytes_read, bytes_written;
    uint64_t errors;
    uint64_t async; /* reads, writes, flushes done asynchronously */
};

/* Driver registry (registry.c). */
const struct vd_driver *vd_driver_find(const char *name);
/* Probe a host file's format from its first bytes. NULL with err set if
 * nothing matches or the file cannot be read. */
const struct vd_driver *vd_driver_probe_file(const char *path,
                                             struct vd_error *err);
/* NULL-terminated list of every registered driver, in probe order. */
const struct vd_driver *const *vd_driver_list(void);
/* What a driver can do: VD_CAP_* bits (vd_driver.h). */
unsigned vd_driver_caps(const struct vd_driver *drv);
/* The registered names of drivers that have every bit of caps and whose
 * is_file equals is_file, as "a, b" in registry order, in buf (cap
 * bytes, NUL terminated; "" when none). For error messages. */
void vd_driver_names(unsigned caps, bool is_file, char *buf, size_t cap);

/* Create an image of format at location. */
int vd_image_create(const char *format, const char *location,
                    const struct vd_create_opts *opts, struct vd_error *err);

/* The location of a remote image named by parts (vd_driver.locate):
 * its length, -ENOTSUP if driver takes a URI instead, or -errno. */
int vd_image_locate(const char *driver, const struct vd_locate_req *req,
                    char *buf, size_t len, struct vd_error *err);

/* Split a remote location into its parts (vd_driver.location_parts);
 * -ENOTSUP if the driver has none. */
int vd_image_location_parts(const char *driver, const char *location,
                            struct vd_location_parts *out);

/* Remove the image at location through its driver (vd_driver.remove);
 * -ENOTSUP if the driver cannot. */
int vd_image_remove(const char *driver, const char *location,
                    struct vd_error *err);

/* After copying an image of format into location from orig_dir, make
 * its relative references to other files resolve as before. */
int vd_image_relocate(const char *format, const char *location,
                      const char *orig_dir, struct vd_error *err);

/* Open location with the named format, or probe it when format is NULL
 * (host files only). On success *out owns the image; caller closes. */
int vd_image_open(const char *format, const char *location,
                  const struct vd_open_opts *opts, struct vd_image **out,
                  struct vd_error *err);

/* Flush (if writable) and close; accepts NULL. Returns the flush result. */
int vd_image_close(struct vd_image *img);

/* Accessors: the daemon's whole view of an open image besides I/O. */
const struct vd_driver *vd_image_driver(const struct vd_image *img);
const char *vd_image_format(const struct vd_image *img); /* driver name */
unsigned vd_image_caps(const struct vd_image *img);      /* VD_CAP_* */
/* Writes are refused (-EROFS): opened read-only, as a snapshot view, by
 * a driver without writes, or by one that could open only for reading. */
bool vd_image_readonly(const struct vd_image *img);
const char *vd_image_location(const struct vd_image *img); /* as opened */
/* A new descriptor (caller closes) on the host file that holds the disk
 * byte for byte (vd_driver.host_fd), opened anew with flags (O_RDWR or
 * O_RDONLY; O_CLOEXEC is added) so it shares none of the image's own
 * flags (O_DIRECT). -ENOTSUP when the disk is not such a file, -EROFS
 * for writing a read-only image. */
int vd_image_host_reopen(struct vd_image *img, int flags);
/* Cut the host file of vd_image_host_reopen back to the disk's length
 * when writes that did not pass the driver (the kernel's passthrough)
 * grew it. 0, -ENOTSUP when the disk is not such a file, or -errno. */
int vd_image_host_trim(struct vd_image *img);
/* A consistent-enough copy of the counters (each read atomically). */
void vd_image_stats(const struct vd_image *img, struct vd_image_stats *out);

int vd_image_pread(struct vd_image *img, void *buf, size_t len, uint64_t off);
int vd_image_pwrite(struct vd_image *img, const void *buf, size_t len,
                    uint64_t off);
/* Start an asynchronous read or write (struct vd_aio in vd_driver.h):
 * 0 when aio->done will be called, -EAGAIN when the request must take
 * vd_image_pread/vd_image_pwrite instead, or another -errno (done is then
 * not called). Counts like the synchronous calls. */
int vd_image_submit(struct vd_image *img, struct vd_aio *aio);
int vd_image_flush(struct vd_image *img);
/* vd_image_flush when the driver promises it needs no waiting
 * (vd_driver.flush_nowait), else -EAGAIN. Safe on an I/O loop's thread. */
int vd_image_flush_nowait(struct vd_image *img);
int vd_image_discard(struct vd_image *img, uint64_t off, uint64_t len);
int vd_image_write_zeroes(struct vd_image *img, uint64_t off, uint64_t len,
                          unsigned flags);
int vd_image_block_status(struct vd_image *img, uint64_t off, uint64_t len,
                          uint64_t *pnum);
uint64_t vd_image_length(struct vd_image *img);
int64_t vd_image_allocated(struct vd_image *img);
int vd_image_truncate(struct vd_image *img, uint64_t size,
                      struct vd_error *err);

int vd_image_snapshot_create(struct vd_image *img, const char *name,
                             struct vd_error *err);
int vd_image_snapshot_list(struct vd_image *img, struct vd_snapshot_info **out);
int vd_image_snapshot_delete(struct vd_image *img, const char *name,
                             struct vd_error *err);
int vd_image_snapshot_revert(struct vd_image *img, const char *name,
                             struct vd_error *err);
int vd_image_snapshot_changes(struct vd_image *img, const char *since,
                              const char *snap,
                              int (*cb)(void *arg, uint64_t off, uint64_t len),
                              void *arg, struct vd_error *err);
int vd_image_check(struct vd_image *img, struct vd_check_result *res);

/* Live state of a remote backend (vd_driver.backend_state): 0 with *out
 * filled, -ENOTSUP when the driver has nothing to report, or -errno. */
int vd_image_backend_state(struct vd_image *img, struct vd_backend_state *out);
/* vd_driver.takeover: -ENOTSUP without it, -EROFS on a read-only image. */
int vd_image_takeover(struct vd_image *img, char *fenced, size_t len,
                      struct vd_error *err);

/* Why the image is considered corrupt (vd_driver.corruption), or NULL. */
const char *vd_image_corruption(struct vd_image *img);
/* Why every request on the image now fails with -EIO although its
 * metadata is sound (its host file was deleted while open), or NULL.
 * Looks at the file afresh (one fstat) until it finds it gone. */
const char *vd_image_lost(struct vd_image *img);

#endif
