/* open.c — opening and closing a qcow2 image: header and tables, feature
 * bits, the backing file (confined to the allowed directories), and the
 * repairs a writable open must make before the first write. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "qcow2-int.h"
#include "vd_error.h"

#define Q2_DEFAULT_CACHE_BYTES (2u << 20)

static int read_table(int fd, uint64_t off, uint64_t entries, uint64_t **out)
{
    uint64_t *t = malloc(entries ? entries * 8 : 8);
    int ret;
    if (t == NULL) {
        return -ENOMEM;
    }
    ret = vd_pread_full(fd, t, entries * 8, off);
    if (ret < 0) {
        free(t);
        return ret;
    }
    for (uint64_t i = 0; i < entries; i++) {
        t[i] = q2_be64(&t[i]);
    }
    *out = t;
    return 0;
}

/* Is the canonical path p inside one of dirs (allowed or denied ones)? */
static bool path_allowed(const char *p, const char *const *dirs)
{
    for (size_t i = 0; dirs != NULL && dirs[i] != NULL; i++) {
        size_t n = strlen(dirs[i]);
        if (n == 1 && dirs[i][0] == '/') {
            return true;
        }
        if (n > 0 && strncmp(p, dirs[i], n) == 0 && p[n] == '/') {
            return true;
        }
    }
    return false;
}

static int open_backing(struct q2_state *s, const char *location,
                        const uint8_t *hbuf, const struct vd_open_opts *o,
                        struct vd_error *err)
{
    char name[QCOW2_MAX_BACKING_NAME + 1];
    char *path = NULL, *dir_copy = NULL, *real = NULL;
    const char *fmt = NULL;
    struct vd_open_opts bo;
    int ret;

    memcpy(name, hbuf + s->hdr.backing_file_offset, s->hdr.backing_file_size);
    name[s->hdr.backing_file_size] = '\0';
    if (strlen(name) != s->hdr.backing_file_size) {
        return vd_error_set(err, -EINVAL,
                            "invalid qcow2 image '%s': backing "
                            "file name contains a NUL byte",
                            location);
    }
    if (name[0] == '/') {
        path = strdup(name);
    } else {
        dir_copy = strdup(location);
        if (dir_copy != NULL &&
            asprintf(&path, "%s/%s", dirname(dir_copy), name) < 0) {
            path = NULL;
        }
    }
    if (path == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    real = realpath(path, NULL);
    if (real == NULL) {
        ret = vd_error_set(err, -errno, "backing file '%s' of '%s': %s", path,
                           location, strerror(errno));
        goto out;
    }
    if (!path_allowed(real, o->allowed_dirs)) {
        ret = vd_error_set(err, -EACCES,
                           "backing file '%s' of '%s' lies outside the "
                           "allowed directories",
                           real, location);
        goto out;
    }
    if (path_allowed(real, o->denied_dirs)) {
        ret = vd_error_set(err, -EACCES,
                           "backing file '%s' of '%s' lies inside vdiskd's "
                           "data directory, which is never a backing source",
                           real, location);
        goto out;
    }
    /* Named straight, from inside: a symlink or ".." on the way would
     * let a file outside (an import dir) lead back in. */
    if (path_allowed(real, o->one_way_dirs) &&
        (!path_allowed(location, o->one_way_dirs) || strcmp(path, real) != 0)) {
        ret = vd_error_set(err, -EACCES,
                           "backing file '%s' (named '%s') of '%s' leads back "
                           "into vdiskd's data directory from outside it",
                           real, path, location);
        goto out;
    }
    if (s->hdr.backing_format[0] != '\0') {
        fmt = s->hdr.backing_format;
        if (vd_driver_find(fmt) == NULL) {
            ret = vd_error_set(err, -ENOTSUP,
                               "backing file '%s' has unsupported format "
                               "'%s'",
                               real, fmt);
            goto out;
        }
    }
    bo = *o;
    bo.readonly = true;
    bo.snapshot = NULL;        /* a view reads the backing file as it is */
    bo.leaks_reclaimed = NULL; /* a backing file is never written */
    bo.chain_depth = o->chain_depth + 1;
    ret = vd_image_open(fmt, real, &bo, &s->backing, err);
    if (ret == 0) {
        s->backing_size = vd_image_length(s->backing);
    }
out:
    free(real);
    free(path);
    free(dir_copy);
    return ret;
}

static int init_caches(struct q2_state *s, uint64_t bytes)
{
    size_t l2_slots, rb_slots;
    int ret;
    if (bytes == 0) {
        bytes = Q2_DEFAULT_CACHE_BYTES;
    }
    l2_slots = (size_t)(bytes / 4 * 3 / s->cluster_size);
    rb_slots = (size_t)(bytes / 4 / s->cluster_size);
    l2_slots = l2_slots < 4 ? 4 : l2_slots > 65536 ? 65536 : l2_slots;
    rb_slots = rb_slots < 2 ? 2 : rb_slots > 16384 ? 16384 : rb_slots;
    ret = q2_cache_init(&s->l2_cache, l2_slots, s->cluster_size, true);
    if (ret == 0) {
        ret = q2_cache_init(&s->rb_cache, rb_slots, s->cluster_size, false);
    }
    return ret;
}

static void free_state(struct q2_state *s)
{
    q2_cache_destroy(&s->l2_cache);
    q2_cache_destroy(&s->rb_cache);
    free(s->l1);
    free(s->reftable);
    free(s->hdr_raw);
    free(s->pending);
    q2_snapshots_free(s->snaps, s->nsnaps);
    s->l1 = s->reftable = NULL;
    s->hdr_raw = NULL;
    s->pending = NULL;
    s->snaps = NULL;
    if (s->backing != NULL) {
        vd_image_close(s->backing);
        s->backing = NULL;
    }
    vd_hostfile_close(&s->hf);
    s->fd = -1;
}

static int load_snapshots(struct q2_state *s, uint64_t file_size,
                          struct vd_error *err)
{
    uint64_t len;
    uint8_t *buf;
    int ret;
    if (s->hdr.nb_snapshots == 0) {
        return 0;
    }
    len = file_size - s->hdr.snapshots_offset;
    if (len > QCOW2_MAX_SNAPSHOT_TABLE) {
        len = QCOW2_MAX_SNAPSHOT_TABLE;
    }
    buf = malloc(len);
    if (buf == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    ret = vd_pread_full(s->fd, buf, len, s->hdr.snapshots_offset);
    if (ret < 0) {
        free(buf);
        return vd_error_set(err, ret, "reading snapshot table: %s",
                            strerror(-ret));
    }
    ret = q2_snapshots_decode(buf, len, s->hdr.nb_snapshots, s->hdr.version,
                              s->cluster_bits, file_size, &s->snaps,
                              &s->snap_table_bytes, err);
    free(buf);
    if (ret == 0) {
        s->nsnaps = s->hdr.nb_snapshots;
        for (uint32_t i = 0; i < s->nsnaps; i++) {
            if (s->snaps[i].disk_size == 0) { /* old entries lack it */
                s->snaps[i].disk_size = s->hdr.size;
            }
        }
    }
    return ret;
}

/* After a crash: q2_reclaim_leaks, where an image it cannot trust the
 * walk of (corruption, too large to map) is served as it is. */
static int reclaim_leaks(struct q2_state *s, uint64_t *freed)
{
    int ret = q2_reclaim_leaks(s, freed);
    if (ret == -EUCLEAN || ret == -EFBIG || ret == -ENOMEM) {
        *freed = 0;
        return 0;
    }
    return ret;
}

int qcow2_open(struct vd_image *img, const char *location,
               const struct vd_open_opts *o, struct vd_error *err)
{
    struct q2_state *s = img->opaque;
    uint8_t *hbuf = NULL;
    struct stat st;
    size_t hlen;
    int ret;

    ret = vd_hostfile_open(&s->hf, location, !o->readonly, o->direct);
    s->fd = s->hf.fd;
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot open '%s': %s", location,
                            ret == -EINVAL ? "not a regular file"
                                           : strerror(-ret));
    }
    s->readonly = o->readonly;
    s->loop = o->ioloop;
    if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ret =
            vd_error_set(err, -EINVAL, "'%s' is not a regular file", location);
        goto fail;
    }
    hlen = st.st_size < (1 << QCOW_MAX_CLUSTER_BITS)
               ? (size_t)st.st_size
               : (size_t)1 << QCOW_MAX_CLUSTER_BITS;
    hbuf = malloc(hlen ? hlen : 1);
    if (hbuf == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    ret = vd_pread_full(s->fd, hbuf, hlen, 0);
    if (ret < 0) {
        vd_error_set(err, ret, "cannot read '%s': %s", location,
                     strerror(-ret));
        goto fail;
    }
    ret = q2_header_decode(hbuf, hlen, (uint64_t)st.st_size, &s->hdr, err);
    if (ret < 0) {
        goto fail;
    }
    if (s->hdr.incompatible_features & QCOW2_INCOMPAT_CORRUPT) {
        /* Never write a corrupt image; serve it read-only so its data can
         * still be copied off, and say why. */
        s->readonly = true;
        atomic_store(&s->corrupt_marked, true);
        q2_set_reason(s, "the image is marked corrupt (qcow2 incompatible "
                         "feature bit 1); opened read-only until "
                         "'qemu-img check -r all' repairs it");
    }
    ret = vd_lock_image_fd_mode(s->fd, !s->readonly         ? VD_LOCK_WRITE
                                       : o->chain_depth > 0 ? VD_LOCK_BACKING
                                                            : VD_LOCK_READ);
    if (ret < 0) {
        vd_error_set(err, ret, "'%s' is in use by another process: %s",
                     location, strerror(-ret));
        goto fail;
    }

    s->cluster_bits = s->hdr.cluster_bits;
    s->cluster_size = 1ULL << s->cluster_bits;
    s->l2_bits = s->cluster_bits - 3;
    s->refcount_order = s->hdr.refcount_order;
    s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
    s->refcount_max = s->refcount_order == 6
                          ? UINT64_MAX
                          : (1ULL << (1u << s->refcount_order)) - 1;
    s->csize_shift = 62 - (s->cluster_bits - 8);
    s->csize_mask = (1ULL << (s->cluster_bits - 8)) - 1;
    s->cluster_offset_mask = (1ULL << s->csize_shift) - 1;
    atomic_store(&s->size, s->hdr.size);
    s->host_end = q2_align_up((uint64_t)st.st_size, s->cluster_size);
    s->file_size = (uint64_t)st.st_size;
    s->free_hint = s->cluster_size;

    s->hdr_raw = calloc(1, s->hdr.header_length);
    if (s->hdr_raw == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(s->hdr_raw, hbuf, s->hdr.header_length);
    s->l1_size = s->hdr.l1_size;
    s->l1_offset = s->hdr.l1_table_offset;
    s->reftable_offset = s->hdr.refcount_table_offset;
    s->reftable_size =
        (uint64_t)s->hdr.refcount_table_clusters * s->cluster_size / 8;
    ret = read_table(s->fd, s->l1_offset, s->l1_size, &s->l1);
    if (ret == 0) {
        ret = read_table(s->fd, s->reftable_offset, s->reftable_size,
                         &s->reftable);
    }
    if (ret < 0) {
        vd_error_set(err, ret, "reading tables of '%s': %s", location,
                     strerror(-ret));
        goto fail;
    }
    ret = load_snapshots(s, (uint64_t)st.st_size, err);
    if (ret < 0) {
        goto fail;
    }
    ret = init_caches(s, o->cache_bytes);
    if (ret < 0) {
        vd_error_set(err, ret, "out of memory for the metadata cache");
        goto fail;
    }
    if (s->hdr.backing_file_offset != 0) {
        ret = open_backing(s, location, hbuf, o, err);
        if (ret < 0) {
            goto fail;
        }
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->io_barrier, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_cond_init(&s->inflight_cond, NULL);
    pthread_mutex_init(&s->aio_lock, NULL);
    pthread_cond_init(&s->aio_cond, NULL);

    if (o->snapshot != NULL) {
        /* image.c opened us read-only: a view never writes (snapview.c). */
        ret = q2_view_select(s, o->snapshot, err);
        if (ret < 0) {
            goto fail_locks;
        }
    }
    if (!s->readonly) {
        /* Repairs before anything else is written. Autoclear bits go
         * first: we maintain none of their data (bitmaps, ...), and a
         * refcount rebuild does not count clusters only they reference. */
        if (s->hdr.autoclear_features != 0) {
            s->hdr.autoclear_features = 0;
            ret = q2_header_write(s);
            if (ret == 0) {
                ret = q2_sync(s);
            }
            if (ret < 0) {
                vd_error_set(err, ret, "updating header of '%s': %s", location,
                             strerror(-ret));
                goto fail_locks;
            }
        }
        if (s->hdr.incompatible_features & QCOW2_INCOMPAT_DIRTY) {
            ret = q2_rebuild_refcounts(s, err);
            if (ret < 0) {
                goto fail_locks;
            }
        } else {
            /* A crash can leave refcounts of clusters never written, past
             * the end of the file: they must not look free. */
            ret = q2_refcount_extend_host_end(s);
            if (ret < 0) {
                vd_error_set(err, ret, "reading refcount blocks of '%s': %s",
                             location, strerror(-ret));
                goto fail_locks;
            }
            if (o->leaks_reclaimed != NULL) {
                ret = reclaim_leaks(s, o->leaks_reclaimed);
                if (ret < 0) {
                    vd_error_set(err, ret,
                                 "reclaiming leaked clusters of "
                                 "'%s': %s",
                                 location, strerror(-ret));
                    goto fail_locks;
                }
            }
        }
    }
    free(hbuf);
    return s->readonly && !o->readonly ? VD_OPEN_READONLY : 0;

fail_locks:
    pthread_cond_destroy(&s->inflight_cond);
    pthread_cond_destroy(&s->aio_cond);
    pthread_mutex_destroy(&s->aio_lock);
    pthread_mutex_destroy(&s->lock);
    pthread_rwlock_destroy(&s->io_barrier);
fail:
    free(hbuf);
    free_state(s);
    return ret;
}

void qcow2_close(struct vd_image *img)
{
    struct q2_state *s = img->opaque;
    pthread_cond_destroy(&s->inflight_cond);
    pthread_cond_destroy(&s->aio_cond);
    pthread_mutex_destroy(&s->aio_lock);
    pthread_mutex_destroy(&s->lock);
    pthread_rwlock_destroy(&s->io_barrier);
    free_state(s);
}
