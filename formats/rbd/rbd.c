/* rbd.c — the Ceph RBD backend driver: a volume is an RBD image in a
 * pool of a cluster the operator registered (cluster.c), reached through
 * librbd over the cluster's shared connection.
 *
 * The location is "rbd://CLUSTER/POOL/IMAGE" (vd_rbd.h). The size comes
 * from the cluster; snapshots are RBD snapshots and changed blocks come
 * from rbd_diff_iterate2. The data path is in aio.c. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "rbd-int.h"
#include "vd_error.h"

#define DEFAULT_ORDER 22 /* 4 MiB objects, as the rbd tool makes them */
#define MIN_ORDER 12
#define MAX_ORDER 25

static int order_of(uint32_t cluster_size)
{
    if (cluster_size == 0) {
        return DEFAULT_ORDER;
    }
    for (int o = MIN_ORDER; o <= MAX_ORDER; o++) {
        if (cluster_size == 1u << o) {
            return o;
        }
    }
    return -1;
}

static int rbd_drv_create(const char *location,
                          const struct vd_create_opts *opts,
                          struct vd_error *err)
{
    struct vd_rbd_location loc;
    rados_ioctx_t io = NULL;
    rbd_image_options_t io_opts = NULL;
    int order, ret;

    ret = vd_rbd_location_parse(location, &loc, err);
    if (ret < 0) {
        return ret;
    }
    if (opts->backing_file != NULL) {
        return vd_rbd_clone_create(&loc, opts, err);
    }
    if (opts->prealloc != VD_PREALLOC_OFF) {
        return vd_error_set(err, -ENOTSUP,
                            "RBD images are always thin provisioned");
    }
    order = order_of(opts->cluster_size);
    if (order < 0) {
        return vd_error_set(err, -EINVAL,
                            "RBD object size must be a power of two from "
                            "4 KiB to 32 MiB");
    }
    if (opts->size == 0) {
        return vd_error_set(err, -EINVAL, "an RBD image needs a size");
    }
    ret = vd_rbd_ioctx(&loc, false, &io, err);
    if (ret < 0) {
        return ret;
    }
    rbd_image_options_create(&io_opts);
    rbd_image_options_set_uint64(io_opts, RBD_IMAGE_OPTION_FORMAT, 2);
    rbd_image_options_set_uint64(io_opts, RBD_IMAGE_OPTION_FEATURES,
                                 VD_RBD_CREATE_FEATURES);
    rbd_image_options_set_uint64(io_opts, RBD_IMAGE_OPTION_ORDER,
                                 (uint64_t)order);
    ret = rbd_create4(io, loc.image, opts->size, io_opts);
    rbd_image_options_destroy(io_opts);
    if (ret == -EEXIST) {
        vd_error_set(err, ret, "RBD image '%s/%s' already exists", loc.pool,
                     loc.image);
    } else if (ret < 0) {
        vd_error_set(err, ret, "cannot create RBD image '%s/%s': %s", loc.pool,
                     loc.image, strerror(-ret));
    }
    rados_ioctx_destroy(io);
    return ret;
}

int vd_rbd_image_remove(const char *location, struct vd_error *err)
{
    struct vd_rbd_location loc;
    rados_ioctx_t io = NULL;
    int ret = vd_rbd_location_parse(location, &loc, err);
    if (ret < 0) {
        return ret;
    }
    ret = vd_rbd_ioctx(&loc, false, &io, err);
    if (ret < 0) {
        return ret;
    }
    ret = rbd_remove(io, loc.image);
    rados_ioctx_destroy(io);
    if (ret == -ENOENT) {
        return vd_error_set(err, ret, "RBD image '%s/%s' does not exist",
                            loc.pool, loc.image);
    }
    if (ret == -ENOTEMPTY) {
        return vd_error_set(err, ret, "RBD image '%s/%s' has snapshots",
                            loc.pool, loc.image);
    }
    if (ret == -EBUSY) {
        return vd_error_set(err, ret,
                            "RBD image '%s/%s' is in use or has "
                            "clones",
                            loc.pool, loc.image);
    }
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot remove RBD image '%s/%s': %s",
                            loc.pool, loc.image, strerror(-ret));
    }
    return 0;
}

/* Remove the image's snapshots, then the image (vd_driver.remove). A
 * snapshot with clones stops it with -EBUSY. */
static int rbd_drv_remove(const char *location, struct vd_error *err)
{
    struct vd_rbd_location loc;
    rados_ioctx_t io = NULL;
    rbd_image_t image = NULL;
    rbd_snap_info_t snaps[64];
    struct vd_rbd_parent parent;
    int ret, n, max;

    ret = vd_rbd_location_parse(location, &loc, err);
    if (ret < 0) {
        return ret;
    }
    ret = vd_rbd_ioctx(&loc, false, &io, err);
    if (ret < 0) {
        return ret;
    }
    ret = rbd_open(io, loc.image, &image, NULL);
    if (ret < 0) {
        rados_ioctx_destroy(io);
        if (ret == -ENOENT) {
            return vd_error_set(err, ret, "RBD image '%s/%s' does not exist",
                                loc.pool, loc.image);
        }
        return vd_error_set(err, ret, "cannot open RBD image '%s/%s': %s",
                            loc.pool, loc.image, strerror(-ret));
    }
    do {
        max = (int)(sizeof(snaps) / sizeof(snaps[0]));
        n = rbd_snap_list(image, snaps, &max);
        if (n < 0) {
            ret = vd_error_set(err, n,
                               "cannot list snapshots of RBD image "
                               "'%s/%s': %s",
                               loc.pool, loc.image, strerror(-n));
            break;
        }
        for (int i = 0; i < n && ret == 0; i++) {
            ret = vd_rbd_clone_unprotect(image, snaps[i].name);
            if (ret == 0) {
                ret = rbd_snap_remove(image, snaps[i].name);
            }
            if (ret < 0) {
                vd_error_set(err, ret,
                             "cannot remove snapshot '%s' of RBD "
                             "image '%s/%s': %s",
                             snaps[i].name, loc.pool, loc.image,
                             ret == -EBUSY ? "it has clones" : strerror(-ret));
            }
        }
        rbd_snap_list_end(snaps);
    } while (ret == 0 && n > 0);
    if (ret == 0) {
        ret = vd_rbd_clone_parent(image, &parent);
    }
    rbd_close(image);
    rados_ioctx_destroy(io);
    if (ret == 0 && (ret = vd_rbd_image_remove(location, err)) == 0) {
        vd_rbd_clone_release(&loc, &parent);
    }
    return ret;
}

static int rbd_drv_location_parts(const char *location,
                                  struct vd_location_parts *out)
{
    struct vd_rbd_location loc;
    _Static_assert(sizeof(out->cluster) >= sizeof(loc.cluster) &&
                       sizeof(out->pool) >= sizeof(loc.pool) &&
                       sizeof(out->image) >= sizeof(loc.image),
                   "location parts fit");
    int ret = vd_rbd_location_parse(location, &loc, NULL);
    if (ret < 0) {
        return ret;
    }
    memcpy(out->cluster, loc.cluster, sizeof(loc.cluster));
    memcpy(out->pool, loc.pool, sizeof(loc.pool));
    memcpy(out->image, loc.image, sizeof(loc.image));
    return 0;
}

int vd_rbd_open_image(struct rbd_state *s, bool fail_fast, struct vd_error *err)
{
    uint64_t size = 0;
    int ret = vd_rbd_ioctx(&s->loc, fail_fast, &s->io, err);
    if (ret < 0) {
        return ret;
    }
    if (s->readonly) {
        ret = rbd_open_read_only(s->io, s->loc.image, &s->image, s->snapshot);
    } else {
        ret = rbd_open(s->io, s->loc.image, &s->image, NULL);
    }
    if (ret == -ENOENT && s->snapshot != NULL) {
        rbd_image_t probe;
        if (rbd_open_read_only(s->io, s->loc.image, &probe, NULL) == 0) {
            rbd_close(probe);
            vd_error_set(err, ret, "RBD image '%s/%s' has no snapshot '%s'",
                         s->loc.pool, s->loc.image, s->snapshot);
            goto out_ioctx;
        }
    }
    if (ret == -ENOENT) {
        vd_error_set(err, ret, "RBD image '%s/%s' does not exist", s->loc.pool,
                     s->loc.image);
        goto out_ioctx;
    }
    if (ret < 0) {
        vd_error_set(err, ret, "cannot open RBD image '%s/%s': %s", s->loc.pool,
                     s->loc.image, strerror(-ret));
        goto out_ioctx;
    }
    if ((ret = rbd_get_size(s->image, &size)) < 0 ||
        (ret = rbd_get_features(s->image, &s->features)) < 0) {
        vd_error_set(err, ret, "cannot read RBD image '%s/%s': %s", s->loc.pool,
                     s->loc.image, strerror(-ret));
        goto out_close;
    }
    if (size == 0) {
        ret = vd_error_set(err, -ENXIO, "RBD image '%s/%s' is empty",
                           s->loc.pool, s->loc.image);
        goto out_close;
    }
    atomic_store(&s->size, size);
    return 0;

out_close:
    rbd_close(s->image);
    s->image = NULL;
out_ioctx:
    rados_ioctx_destroy(s->io);
    s->io = NULL;
    return ret;
}

/* Errors that say the cluster could not be reached (a lazy open waits
 * for it), as opposed to a location, pool or image that is wrong. */
static bool unreachable(int code)
{
    return code == -ETIMEDOUT || code == -ECONNREFUSED || code == -EIO ||
           code == -ESHUTDOWN || code == -ENOTCONN || code == -EHOSTUNREACH ||
           code == -ENETUNREACH || code == -EAGAIN || code == -EACCES ||
           code == -EPERM;
}

static int rbd_drv_open(struct vd_image *img, const char *location,
                        const struct vd_open_opts *o, struct vd_error *err)
{
    struct rbd_state *s = img->opaque;
    bool lazy = o->lazy_connect && o->size_hint > 0 && o->snapshot == NULL;
    pthread_condattr_t ca;
    int ret;

    ret = vd_rbd_location_parse(location, &s->loc, err);
    if (ret < 0) {
        return ret;
    }
    s->readonly = o->readonly;
    if (o->snapshot != NULL) {
        s->snapshot = strdup(o->snapshot);
        if (s->snapshot == NULL) {
            return vd_error_set(err, -ENOMEM, "out of memory");
        }
    }
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->conn_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_store(&s->allocated, -1);
    atomic_store(&s->lock_owner, -1);
    /* A lazy open does not wait out a connect timeout per image when the
     * cluster's last connect failed: it comes up in the background. */
    ret = vd_rbd_open_image(s, lazy, err);
    if (ret == 0) {
        atomic_store_explicit(&s->up, true, memory_order_release);
        return 0;
    }
    if (lazy && unreachable(ret)) {
        atomic_store(&s->size, o->size_hint);
        snprintf(s->last_error, sizeof(s->last_error), "%.*s",
                 (int)sizeof(s->last_error) - 1,
                 err != NULL ? err->msg : "cannot connect");
        if (vd_rbd_watcher_start(s) == 0) {
            if (err != NULL) {
                *err = (struct vd_error){0};
            }
            return 0;
        }
    }
    pthread_cond_destroy(&s->conn_cv);
    pthread_mutex_destroy(&s->conn_lock);
    free(s->snapshot);
    s->snapshot = NULL;
    return ret;
}

static void rbd_drv_close(struct vd_image *img)
{
    struct rbd_state *s = img->opaque;
    vd_rbd_watcher_stop(s);
    if (s->image != NULL) {
        rbd_close(s->image);
        s->image = NULL;
    }
    if (s->io != NULL) {
        rados_ioctx_destroy(s->io);
        s->io = NULL;
    }
    free(s->snapshot);
    s->snapshot = NULL;
    pthread_cond_destroy(&s->conn_cv);
    pthread_mutex_destroy(&s->conn_lock);
}

/* -EIO with a message while a lazily opened image is not up (note 6). */
static int not_up(struct rbd_state *s, struct vd_error *err)
{
    return vd_error_set(err, -EIO,
                        "RBD image '%s/%s' is not connected: "
                        "cluster '%s' has not answered yet",
                        s->loc.pool, s->loc.image, s->loc.cluster);
}

static uint64_t rbd_drv_length(struct vd_image *img)
{
    struct rbd_state *s = img->opaque;
    return atomic_load_explicit(&s->size, memory_order_relaxed);
}

/* Bytes of the objects that exist, as the watcher last looked them up
 * (note 7 in rbd-int.h): getattr and the API must not wait on an OSD. */
static int64_t rbd_drv_allocated(struct vd_image *img)
{
    struct rbd_state *s = img->opaque;
    int64_t a;
    if (!vd_rbd_up(s)) {
        return -EIO;
    }
    if (!(s->features & RBD_FEATURE_FAST_DIFF)) {
        return -ENOTSUP;
    }
    vd_rbd_refresh(s, 0);
    a = atomic_load(&s->allocated);
    return a >= 0 ? a : -EAGAIN;
}

static int rbd_drv_truncate(struct vd_image *img, uint64_t size,
                            struct vd_error *err)
{
    struct rbd_state *s = img->opaque;
    int ret;
    if (!vd_rbd_up(s)) {
        return not_up(s, err);
    }
    if (size < rbd_drv_length(img)) {
        return vd_error_set(err, -ENOTSUP, "RBD images only grow here");
    }
    ret = rbd_resize2(s->image, size, false, NULL, NULL);
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot resize RBD image '%s/%s': %s",
                            s->loc.pool, s->loc.image, strerror(-ret));
    }
    atomic_store(&s->size, size);
    return 0;
}

/* ---- snapshots -------------------------------------------------------- */

static int rbd_drv_snapshot_create(struct vd_image *img, const char *name,
                                   struct vd_error *err)
{
    struct rbd_state *s = img->opaque;
    int ret;
    if (!vd_rbd_up(s)) {
        return not_up(s, err);
    }
    ret = rbd_snap_create(s->image, name);
    if (ret == -EEXIST) {
        return vd_error_set(err, ret, "snapshot '%s' already exists", name);
    }
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot snapshot RBD image '%s/%s': %s",
                            s->loc.pool, s->loc.image, strerror(-ret));
    }
    return 0;
}

static int rbd_drv_snapshot_list(struct vd_image *img,
                                 struct vd_snapshot_info **out)
{
    struct rbd_state *s = img->opaque;
    rbd_snap_info_t *snaps = NULL;
    struct vd_snapshot_info *info = NULL;
    int max = 16, n;

    *out = NULL;
    if (!vd_rbd_up(s)) {
        return -EIO;
    }
    for (;;) {
        snaps = calloc((size_t)max, sizeof(*snaps));
        if (snaps == NULL) {
            return -ENOMEM;
        }
        n = rbd_snap_list(s->image, snaps, &max);
        if (n != -ERANGE) {
            break;
        }
        free(snaps); /* max now holds the count needed */
    }
    if (n < 0) {
        free(snaps);
        return vd_rbd_io_errno(s, n);
    }
    if (n > 0) {
        info = calloc((size_t)n, sizeof(*info));
        if (info == NULL) {
            rbd_snap_list_end(snaps);
            free(snaps);
            return -ENOMEM;
        }
    }
    for (int i = 0; i < n; i++) {
        struct timespec ts = {0, 0};
        snprintf(info[i].id, sizeof(info[i].id), "%llu",
                 (unsigned long long)snaps[i].id);
        snprintf(info[i].name, sizeof(info[i].name), "%s", snaps[i].name);
        info[i].disk_size = snaps[i].size;
        if (rbd_snap_get_timestamp(s->image, snaps[i].id, &ts) == 0) {
            info[i].date_sec = ts.tv_sec;
            info[i].date_nsec = (uint32_t)ts.tv_nsec;
        }
    }
    rbd_snap_list_end(snaps);
    free(snaps);
    *out = info;
    return n;
}

static int rbd_drv_snapshot_delete(struct vd_image *img, const char *name,
                                   struct vd_error *err)
{
    struct rbd_state *s = img->opaque;
    int ret;
    if (!vd_rbd_up(s)) {
        return not_up(s, err);
    }
    ret = rbd_snap_remove(s->image, name);
    if (ret == -ENOENT) {
        return vd_error_set(err, ret, "no snapshot '%s'", name);
    }
    if (ret == -EBUSY) {
        return vd_error_set(err, ret, "snapshot '%s' has clones", name);
    }
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot remove snapshot '%s': %s", name,
                            strerror(-ret));
    }
    return 0;
}

static int rbd_drv_snapshot_revert(struct vd_image *img, const char *name,
                                   struct vd_error *err)
{
    struct rbd_state *s = img->opaque;
    uint64_t size;
    int ret;
    if (!vd_rbd_up(s)) {
        return not_up(s, err);
    }
    ret = rbd_snap_rollback(s->image, name);
    if (ret == -ENOENT) {
        return vd_error_set(err, ret, "no snapshot '%s'", name);
    }
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot roll back to snapshot '%s': %s",
                            name, strerror(-ret));
    }
    if (rbd_get_size(s->image, &size) == 0) {
        atomic_store(&s->size, size); /* the snapshot's size */
    }
    return 0;
}

/* Extents from rbd_diff_iterate2, merged where they touch. */
struct changes_walk {
    int (*cb)(void *arg, uint64_t off, uint64_t len);
    void *arg;
    uint64_t off, len; /* the run not yet passed on; len 0 = none */
    int stopped;       /* what cb returned when it stopped the walk */
};

static int changes_extent(uint64_t off, size_t len, int exists, void *arg)
{
    struct changes_walk *w = arg;
    (void)exists; /* data or discarded: either way it changed */
    if (w->len > 0 && off == w->off + w->len) {
        w->len += len;
        return 0;
    }
    if (w->len > 0) {
        int r = w->cb(w->arg, w->off, w->len);
        if (r != 0) {
            w->stopped = r;
            return -ECANCELED;
        }
    }
    w->off = off;
    w->len = len;
    return 0;
}

static int rbd_drv_snapshot_changes(struct vd_image *img, const char *since,
                                    const char *snap,
                                    int (*cb)(void *arg, uint64_t off,
                                              uint64_t len),
                                    void *arg, struct vd_error *err)
{
    struct rbd_state *s = img->opaque;
    struct changes_walk w = {.cb = cb, .arg = arg};
    rbd_image_t view = NULL;
    uint64_t size;
    int ret;

    if (!vd_rbd_up(s)) {
        return not_up(s, err);
    }
    ret = rbd_open_read_only(s->io, s->loc.image, &view, snap);
    if (ret == -ENOENT) {
        return vd_error_set(err, ret, "no snapshot '%s'", snap);
    }
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot open snapshot '%s': %s", snap,
                            strerror(-ret));
    }
    ret = rbd_get_size(view, &size);
    if (ret == 0) {
        /* Exact extents, not whole objects; from an empty image the
         * parent's data of a clone counts too. */
        ret = rbd_diff_iterate2(view, since, 0, size, since == NULL, 0,
                                changes_extent, &w);
    }
    rbd_close(view);
    if (w.stopped != 0) {
        return w.stopped;
    }
    if (ret == -ENOENT) {
        return vd_error_set(err, ret, "no snapshot '%s'", since);
    }
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot compare snapshots: %s",
                            strerror(-ret));
    }
    return w.len > 0 ? cb(arg, w.off, w.len) : 0;
}

/* ---- backend state ---------------------------------------------------- */

/* How long an OSD request may go unanswered before it fails: the
 * handle's rados_osd_op_timeout (cluster.c sets it unless ceph.conf
 * does); 0 when unset, which means forever. */
static uint32_t op_timeout_ms(struct rbd_state *s)
{
    char v[32];
    double secs;
    if (rados_conf_get(rados_ioctx_get_cluster(s->io), "rados_osd_op_timeout",
                       v, sizeof(v)) != 0) {
        return 0;
    }
    secs = strtod(v, NULL);
    return secs > 0 && secs < 4e6 ? (uint32_t)(secs * 1000) : 0;
}

static int rbd_drv_backend_state(struct vd_image *img,
                                 struct vd_backend_state *out)
{
    struct rbd_state *s = img->opaque;
    size_t flen = sizeof(out->features);
    int owner;
    bool up = !atomic_load(&s->io_timed_out);

    out->connections = 1; /* the cluster's shared handle */
    if (!vd_rbd_up(s)) {
        out->link = VD_LINK_CONNECTING;
        pthread_mutex_lock(&s->conn_lock);
        snprintf(out->last_error, sizeof(out->last_error), "%.*s",
                 (int)sizeof(out->last_error) - 1, s->last_error);
        pthread_mutex_unlock(&s->conn_lock);
        return 0;
    }
    if (rbd_features_to_string(s->features, out->features, &flen) < 0) {
        out->features[0] = '\0';
    }
    out->have_lock = (s->features & RBD_FEATURE_EXCLUSIVE_LOCK) != 0;
    if (out->have_lock && !s->readonly) {
        /* As last looked up (note 7): asking the OSD here would hold
         * the API for the op timeout while the cluster is away. */
        vd_rbd_refresh(s, 1000);
        owner = atomic_load(&s->lock_owner);
        out->lock_owner = owner > 0;
    }
    up = !atomic_load(&s->io_timed_out); /* the look may have probed */
    out->link = up ? VD_LINK_CONNECTED : VD_LINK_DISCONNECTED;
    out->connections = 1; /* the cluster's shared handle */
    out->connected = up ? 1 : 0;
    out->timeout_ms = op_timeout_ms(s);
    if (atomic_load(&s->fenced)) {
        snprintf(out->last_error, sizeof(out->last_error),
                 "fenced: the cluster blocklisted this client (another "
                 "host took the image over); its I/O fails until the "
                 "daemon is restarted");
    }
    return 0;
}

const struct vd_driver vd_driver_rbd = {
    .name = "rbd",
    .instance_size = sizeof(struct rbd_state),
    .parallel = true, /* librbd serialises what it must itself */
    .is_file = false,
    .caps = VD_CAP_CREATE | VD_CAP_GROW | VD_CAP_SNAPSHOTS |
            VD_CAP_SNAPSHOT_VIEWS | VD_CAP_CHANGES | VD_CAP_BASE |
            VD_CAP_CHEAP_CLONE,
    .locate = vd_rbd_locate,
    .location_parts = rbd_drv_location_parts,
    .remove = rbd_drv_remove,
    .create = rbd_drv_create,
    .open = rbd_drv_open,
    .close = rbd_drv_close,
    .pread = vd_rbd_pread,
    .pwrite = vd_rbd_pwrite,
    .submit = vd_rbd_submit,
    .flush = vd_rbd_flush,
    .discard = vd_rbd_discard,
    .write_zeroes = vd_rbd_write_zeroes,
    .block_status = vd_rbd_block_status,
    .length = rbd_drv_length,
    .allocated = rbd_drv_allocated,
    .truncate = rbd_drv_truncate,
    .snapshot_create = rbd_drv_snapshot_create,
    .snapshot_list = rbd_drv_snapshot_list,
    .snapshot_delete = rbd_drv_snapshot_delete,
    .snapshot_revert = rbd_drv_snapshot_revert,
    .snapshot_changes = rbd_drv_snapshot_changes,
    .backend_state = rbd_drv_backend_state,
    .takeover = vd_rbd_takeover,
};
