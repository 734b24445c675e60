/* rbd-int.h — private interface between the RBD driver's files.
 *
 * cluster.c keeps the registry of clusters and their shared connections
 * and parses locations; rbd.c is the driver table (create, open, close,
 * size, snapshots, backend state); aio.c is the data path, synchronous and
 * asynchronous; refresh.c is the watcher thread of an image. */
#ifndef VD_RBD_INT_H
#define VD_RBD_INT_H

#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image-int.h"
#include "vd_rbd.h"

struct vd_aio;
struct vd_create_opts;
struct vd_error;
struct vd_image;

/* Driver state at img->opaque.
 *
 * DESIGN NOTES
 * 1. Every image of a cluster shares the cluster's one rados handle
 *    (each handle costs about 13 threads); the image owns only its
 *    ioctx and its rbd_image_t.
 * 2. librbd's own cache is off (rbd_cache=false on the handle): a
 *    second host holding the same image must never read stale data, and
 *    a cache=none client expects completed writes to be on the OSDs.
 * 3. An asynchronous request completes from librbd's callback thread,
 *    directly: the callback takes the result, releases the completion
 *    and calls aio->done, nothing more (measured fastest: no hand-over).
 * 4. Reads of zeroes must come back as zeroes: rbd_discard keeps the data
 *    of ranges under its granularity, so discard and write_zeroes both
 *    use rbd_write_zeroes, which zeroes what it cannot deallocate.
 * 5. size is the image's size as this handle last saw it (open, grow);
 *    length() reads it without a call into librbd.
 * 6. A lazy open (vd_open_opts.lazy_connect) whose cluster cannot be
 *    reached succeeds without an image: `up` is false, the size is the
 *    catalog's, every request fails with -EIO at once, and the watcher
 *    thread (refresh.c) retries every VD_RBD_RETRY_S until it has opened
 *    io and image, then sets `up` (release). Nothing else touches io or
 *    image while `up` is false; once true they stay until close, which
 *    stops and joins the watcher first.
 * 7. What the API and getattr show must not wait on an OSD (one paused
 *    OSD would hold every GET for the op timeout): allocated bytes and
 *    the lock owner are looked up by the watcher and kept here; a reader
 *    asks for a fresh look and waits for it at most VD_RBD_LOOK_WAIT_MS,
 *    and not at all while the link is known to be down or a look is
 *    already stuck (on this image or another of its cluster, so that a
 *    list of many volumes does not wait once per volume), then answers
 *    with the last value. While the last
 *    I/O timed out, the watcher probes the image every VD_RBD_RETRY_S,
 *    so an idle image shows `connected` again once the cluster is back. */
struct rbd_state {
    rados_ioctx_t io;
    rbd_image_t image; /* NULL when closed */
    struct vd_rbd_location loc;
    char *snapshot; /* open at this snapshot, or NULL */
    bool readonly;
    uint64_t features; /* RBD_FEATURE_* at open */
    _Atomic uint64_t size;
    atomic_bool io_timed_out; /* the last I/O failed for want of
                                 an OSD; cleared by a success */
    atomic_bool up;           /* io and image are open (note 6) */
    atomic_bool fenced;       /* the cluster blocklisted this client (a
                                 takeover by another host): for good */
    /* The watcher (notes 6 and 7), all under conn_lock but the atomics. */
    bool watcher_started;
    pthread_t watcher;
    pthread_mutex_t conn_lock;
    pthread_cond_t conn_cv;
    bool conn_stop;
    char last_error[256]; /* why it is not up */
    uint64_t look_want;   /* looks asked for */
    uint64_t look_done;   /* the asks the last finished look answered */
    bool look_busy;
    int64_t look_started_ms, look_done_ms; /* CLOCK_MONOTONIC; 0 = never */
    _Atomic int64_t allocated;             /* last looked up; -1 unknown */
    atomic_int lock_owner;                 /* 1 ours, 0 not, -1 unknown */
};

/* Whether the image is open and may be used (note 6). */
static inline bool vd_rbd_up(struct rbd_state *s)
{
    return atomic_load_explicit(&s->up, memory_order_acquire);
}

/* New images: cheap clones (layering), one writer at a time
 * (exclusive-lock, which object-map and fast-diff need), fast holes and
 * diffs (object-map, fast-diff), clones that can drop their parent with
 * its snapshots (deep-flatten). */
#define VD_RBD_CREATE_FEATURES                                                 \
    (RBD_FEATURE_LAYERING | RBD_FEATURE_EXCLUSIVE_LOCK |                       \
     RBD_FEATURE_OBJECT_MAP | RBD_FEATURE_FAST_DIFF |                          \
     RBD_FEATURE_DEEP_FLATTEN)

/* cluster.c */

/* The connected rados handle of the named cluster, connecting it first
 * if it is not (bounded by the connect timeout). A failed connect is
 * retried by the next call; with fail_fast, only once a connect timeout
 * has passed since it failed (until then its error comes back at once).
 * *out stays owned by the registry. */
int vd_rbd_cluster_get(const char *name, bool fail_fast, rados_t *out,
                       struct vd_error *err);

/* Whether a look of one of the cluster's images is stuck on it (note 7):
 * set by a reader that gave up waiting, cleared by a finished look. */
void vd_rbd_cluster_set_stuck(const char *name, bool stuck);
bool vd_rbd_cluster_stuck(const char *name);

/* Open an ioctx on pool, with an error that names pool and cluster. */
int vd_rbd_ioctx(const struct vd_rbd_location *loc, bool fail_fast,
                 rados_ioctx_t *out, struct vd_error *err);

/* vd_driver.locate: "rbd://CLUSTER/POOL/IMAGE" from a create request. */
int vd_rbd_locate(const struct vd_locate_req *req, char *buf, size_t len,
                  struct vd_error *err);

/* errno for an I/O result from librbd: timeouts and a fenced client
 * become -EIO, as a block device reports them. */
int vd_rbd_io_errno(struct rbd_state *s, int64_t r);

/* clone.c: linked clones (layering). */

/* The parent a clone reads through, as rbd_get_parent names it. */
struct vd_rbd_parent {
    bool valid; /* the image is a clone (in the default namespace) */
    char pool[VD_RBD_POOL_MAX];
    char image[VD_RBD_IMAGE_MAX];
    char snap[VD_RBD_IMAGE_MAX + 16];
};

/* Make the image at loc a clone of opts->backing_file (an RBD location
 * in the same cluster and pool): snapshot and protect the base, then
 * rbd_clone3. Nothing is left behind on failure. */
int vd_rbd_clone_create(const struct vd_rbd_location *loc,
                        const struct vd_create_opts *opts,
                        struct vd_error *err);
/* The parent of image, or out->valid false when it has none. */
int vd_rbd_clone_parent(rbd_image_t image, struct vd_rbd_parent *out);
/* The clone (at loc) of parent is gone: unprotect and remove the
 * snapshot made for it. Best effort: a base removed later unprotects
 * what is left. */
void vd_rbd_clone_release(const struct vd_rbd_location *loc,
                          const struct vd_rbd_parent *parent);
/* Unprotect snap of image if it is one made for a clone (0), -EBUSY
 * while a clone still uses it. */
int vd_rbd_clone_unprotect(rbd_image_t image, const char *snap);

/* rbd.c: open io and image of s->loc (not shared yet, or by the watcher
 * while `up` is false). */
int vd_rbd_open_image(struct rbd_state *s, bool fail_fast,
                      struct vd_error *err);

/* refresh.c: the watcher (notes 6 and 7). */
#define VD_RBD_RETRY_S 2        /* a lazy open retries its cluster this often */
#define VD_RBD_LOOK_WAIT_MS 250 /* a reader waits this long for a look */

/* Start the watcher if it is not running (conn_lock held). */
int vd_rbd_watcher_start(struct rbd_state *s);
/* Stop and join it (close; nothing else uses the image any more). */
void vd_rbd_watcher_stop(struct rbd_state *s);
/* Have allocated and lock_owner looked up unless a look finished within
 * max_age_ms; wait for it within the bounds of note 7. */
void vd_rbd_refresh(struct rbd_state *s, int64_t max_age_ms);

/* fence.c: vd_driver.takeover. */
int vd_rbd_takeover(struct vd_image *img, char *fenced, size_t len,
                    struct vd_error *err);

/* aio.c: the data path (vd_driver members). */
int vd_rbd_pread(struct vd_image *img, void *buf, size_t len, uint64_t off);
int vd_rbd_pwrite(struct vd_image *img, const void *buf, size_t len,
                  uint64_t off);
int vd_rbd_submit(struct vd_image *img, struct vd_aio *aio);
int vd_rbd_flush(struct vd_image *img);
int vd_rbd_write_zeroes(struct vd_image *img, uint64_t off, uint64_t len,
                        unsigned flags);
int vd_rbd_discard(struct vd_image *img, uint64_t off, uint64_t len);
int vd_rbd_block_status(struct vd_image *img, uint64_t off, uint64_t len,
                        uint64_t *pnum);

#endif
