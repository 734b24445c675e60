/* volume_ctl.c — the volume manager's create: new volumes, linked clones,
 * imports and remote attaches, planned and then made. Delete and resize
 * are volume_change.c's, the views the API shows volume_view.c's. Crash
 * ordering is described in volume.c's DESIGN NOTES. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "image.h"
#include "io_util.h"
#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

/* Resolve path and require it to lie inside one of dirs. Sets *real
 * (caller frees). */
static int confine_path(const char *path, char *const *dirs, char **real,
                        const char *what, struct vd_error *err)
{
    *real = NULL;
    if (path == NULL || path[0] != '/') {
        return vd_error_set(err, -EINVAL, "%s path must be absolute", what);
    }
    char *r = realpath(path, NULL);
    if (r == NULL) {
        if (errno == ENOENT) {
            return vd_error_set(err, -EACCES,
                                "%s path '%s' is not in an allowed directory "
                                "or does not exist",
                                what, path);
        }
        return vd_error_set(err, -EACCES, "%s path '%s': %s", what, path,
                            strerror(errno));
    }
    for (size_t i = 0; dirs != NULL && dirs[i] != NULL; i++) {
        size_t n = strlen(dirs[i]);
        if (strncmp(r, dirs[i], n) == 0 && (r[n] == '/' || r[n] == '\0')) {
            *real = r;
            return 0;
        }
    }
    free(r);
    return vd_error_set(err, -EACCES,
                        "%s path '%s' is not in a directory the operator "
                        "allowed (--import-dir)",
                        what, path);
}

/* Copy src to a new file dst, keeping holes. */
static int copy_sparse(const char *src, const char *dst, struct vd_error *err)
{
    int in = -1, out = -1, ret = 0;
    char *buf = NULL;
    struct stat st;
    const size_t chunk = 1u << 20;

    /* Without blocking: a FIFO swapped in since the probe must not
     * stall this thread in open (and SIGTERM with it). */
    in = vd_open_regular(src, O_RDONLY | O_NOFOLLOW);
    if (in < 0) {
        ret =
            vd_error_set(err, in, "cannot read '%s': %s", src,
                         in == -EINVAL ? "not a regular file" : strerror(-in));
        in = -1;
        goto out;
    }
    if (fstat(in, &st) < 0) {
        ret = vd_error_set(err, -errno, "cannot read '%s': %s", src,
                           strerror(errno));
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    buf = malloc(chunk);
    if (out < 0 || buf == NULL) {
        ret = vd_error_set(err, out < 0 ? -errno : -ENOMEM,
                           "cannot create '%s'", dst);
        goto out;
    }
    if (ftruncate(out, st.st_size) < 0) {
        ret = vd_error_set(err, -errno, "cannot size '%s'", dst);
        goto out;
    }
    off_t pos = 0;
    while (pos < st.st_size) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0) {
            break; /* only a hole remains */
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0) {
            hole = st.st_size;
        }
        for (pos = data; pos < hole;) {
            size_t n =
                (size_t)(hole - pos) < chunk ? (size_t)(hole - pos) : chunk;
            if ((ret = vd_pread_full(in, buf, n, (uint64_t)pos)) < 0 ||
                (ret = vd_pwrite_full(out, buf, n, (uint64_t)pos)) < 0) {
                vd_error_set(err, ret, "copying '%s': %s", src, strerror(-ret));
                goto out;
            }
            pos += (off_t)n;
        }
    }
    if (fsync(out) < 0) {
        ret = vd_error_set(err, -errno, "fsync '%s': %s", dst, strerror(errno));
        goto out;
    }
    /* The copy is on disk: do not leave the whole image in the page cache,
     * in the large folios a sequential copy makes, which make every later
     * 4k buffered write cost a walk over the folio's blocks. */
    (void)posix_fadvise(out, 0, 0, POSIX_FADV_DONTNEED);
out:
    free(buf);
    if (in >= 0) {
        close(in);
    }
    if (out >= 0) {
        close(out);
    }
    return ret;
}

/* The format of the image an import copies, probed from its content; a
 * 'format' given with the import must agree. */
static int import_format(struct vd_volmgr *mgr,
                         const struct vd_volume_spec *spec, const char **format,
                         struct vd_error *err)
{
    const struct vd_driver *drv;
    char *real = NULL;
    int ret =
        confine_path(spec->import_path, mgr->import_dirs, &real, "import", err);
    if (ret < 0) {
        return ret;
    }
    if ((ret = vd_volmgr_import_check(mgr, real, err)) < 0) {
        free(real);
        return ret;
    }
    drv = vd_driver_probe_file(real, err);
    free(real);
    if (drv == NULL) {
        return err != NULL && err->code ? err->code : -EINVAL;
    }
    if (spec->format != NULL && strcmp(spec->format, drv->name) != 0) {
        return vd_error_set(err, -EINVAL,
                            "import '%s' holds a %s image, "
                            "not %s (leave 'format' out to take the file's)",
                            spec->import_path, drv->name, spec->format);
    }
    *format = drv->name;
    return 0;
}

/* Whether the operator allowed pool (a distributed store's) for volumes. */
static bool pool_allowed(struct vd_volmgr *mgr, const char *pool)
{
    for (size_t i = 0; pool != NULL && mgr->pool_allow[i] != NULL; i++) {
        if (strcmp(mgr->pool_allow[i], pool) == 0) {
            return true;
        }
    }
    return false;
}

int vd_volmgr_plan(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                   struct vd_volume_row *row, struct vd_volume_row *base,
                   struct vd_error *err)
{
    const char *backend =
        spec->backend_type ? spec->backend_type : VD_BACKEND_FILE;
    const char *format = spec->format ? spec->format : mgr->default_format;
    bool local = strcmp(backend, VD_BACKEND_FILE) == 0;
    uuid_t u;

    memset(row, 0, sizeof(*row));
    char why[256];
    if (vd_volmgr_export_state(mgr, why, sizeof(why)) < 0) {
        return vd_error_set(err, -ENOMEDIUM, "volumes cannot be created: %s",
                            why);
    }
    if (!vd_volume_name_valid(spec->name)) {
        return vd_error_set(err, -EINVAL,
                            "invalid volume name '%s': use 1-64 characters "
                            "a-z 0-9 _ . -, starting with a letter or digit",
                            spec->name ? spec->name : "");
    }
    /* 0 means "not given" here (an attach, an import, a clone) */
    if (spec->size != 0 && vd_volume_size_check(spec->size, "size", err) < 0) {
        return -EINVAL;
    }
    if (spec->base != NULL && spec->import_path != NULL) {
        return vd_error_set(err, -EINVAL,
                            "'base' and 'import' exclude "
                            "each other");
    }
    if (spec->base != NULL && spec->backend_type == NULL) {
        int ret = vd_volmgr_plan_remote_clone(mgr, spec, row, base, err);
        if (ret <= 0) {
            return ret;
        }
        memset(row, 0, sizeof(*row));
    }
    if (local) {
        const struct vd_driver *drv = vd_driver_find(format);
        if (spec->backend_uri != NULL) {
            return vd_error_set(err, -EINVAL,
                                "'backend.uri' is not allowed "
                                "with type \"%s\"",
                                VD_BACKEND_FILE);
        }
        if (drv == NULL || !drv->is_file ||
            !(vd_driver_caps(drv) & VD_CAP_CREATE)) {
            char known[256];
            vd_driver_names(VD_CAP_CREATE, true, known, sizeof(known));
            return vd_error_set(err, -EINVAL,
                                "unknown format \"%.32s\" in "
                                "'format'; known: %s",
                                format, known);
        }
        if (spec->size == 0 && spec->base == NULL &&
            spec->import_path == NULL && !spec->empty) {
            return vd_error_set(err, -EINVAL,
                                "'size' is required unless "
                                "'base', 'import', 'source' or a remote "
                                "'backend' is given");
        }
    } else {
        const struct vd_driver *drv = vd_driver_find(backend);
        if (drv == NULL || drv->is_file) {
            char known[256];
            vd_driver_names(0, false, known, sizeof(known));
            return vd_error_set(err, -EINVAL,
                                "unknown backend type \"%.32s\" "
                                "in 'backend.type'; known: %s%s%s",
                                backend, VD_BACKEND_FILE,
                                known[0] != '\0' ? ", " : "", known);
        }
        if (spec->base != NULL || spec->import_path != NULL) {
            return vd_error_set(err, -EINVAL,
                                "'base' and 'import' make "
                                "local images; they exclude a remote "
                                "'backend'");
        }
        /* With a size, a backend that can create makes a new image;
         * without, an existing one is attached. */
        bool create =
            spec->size != 0 && (vd_driver_caps(drv) & VD_CAP_CREATE) != 0;
        struct vd_locate_req lr = {
            .uri = spec->backend_uri,
            .cluster = spec->backend_cluster,
            .pool = spec->backend_pool,
            .image = spec->backend_image,
            .uuid = NULL,
            .create = create,
        };
        uuid_generate(u);
        uuid_unparse_lower(u, row->uuid);
        lr.uuid = row->uuid;
        int n = vd_image_locate(backend, &lr, row->location,
                                sizeof(row->location), err);
        if (n == -ENOTSUP) {
            /* The driver takes a URI as the location. */
            if (spec->backend_cluster != NULL || spec->backend_pool != NULL ||
                spec->backend_image != NULL) {
                return vd_error_set(err, -EINVAL,
                                    "'backend.cluster', "
                                    "'backend.pool' and 'backend.image' are "
                                    "not taken by type \"%s\"",
                                    backend);
            }
            if (spec->backend_uri == NULL) {
                return vd_error_set(err, -EINVAL,
                                    "'backend.uri' is required "
                                    "with type \"%s\"",
                                    backend);
            }
            if (strlen(spec->backend_uri) >= sizeof(row->location)) {
                return vd_error_set(err, -EINVAL, "'backend.uri' is too long");
            }
            snprintf(row->location, sizeof(row->location), "%s",
                     spec->backend_uri);
        } else if (n < 0) {
            return n;
        } else if (!pool_allowed(mgr, spec->backend_pool)) {
            return vd_error_set(err, -EACCES,
                                "pool '%s' is not one the "
                                "operator allowed for %s volumes",
                                spec->backend_pool, backend);
        }
        row->owns_image = create;
        format = "raw"; /* the data as the server exports it */
    }
    if (spec->import_path != NULL) {
        /* The row names the format found in the file, so that the catalog
         * holds the right location from the first insert on. */
        int ret = import_format(mgr, spec, &format, err);
        if (ret < 0) {
            return ret;
        }
    }
    if (spec->base != NULL) {
        int ret = vd_catalog_volume_get(mgr->cat, spec->base, base, NULL);
        if (ret < 0 || base->state != VD_STATE_READY) {
            return vd_error_set(err, -ENOENT, "base volume '%s' not found",
                                spec->base);
        }
        const struct vd_driver *bdrv = vd_driver_find(base->format);
        if (!vd_row_is_file(base) || bdrv == NULL ||
            !(vd_driver_caps(bdrv) & VD_CAP_BASE)) {
            return vd_error_set(err, -ENOTSUP,
                                "volume '%s' cannot be a "
                                "linked-clone base: its %s has no "
                                "backing-file support",
                                spec->base,
                                vd_row_is_file(base) ? "format" : "backend");
        }
        if (!(vd_driver_caps(vd_driver_find(format)) & VD_CAP_CHEAP_CLONE)) {
            char known[256];
            vd_driver_names(VD_CAP_CREATE | VD_CAP_CHEAP_CLONE, true, known,
                            sizeof(known));
            return vd_error_set(err, -ENOTSUP,
                                "format '%s' cannot make "
                                "linked clones (no backing files); formats "
                                "that can: %s",
                                format, known);
        }
        snprintf(row->base, sizeof(row->base), "%s", spec->base);
    }
    if (local) {
        uuid_generate(u);
        uuid_unparse_lower(u, row->uuid);
        row->owns_image = true;
    }
    snprintf(row->name, sizeof(row->name), "%s", spec->name);
    snprintf(row->format, sizeof(row->format), "%s", format);
    snprintf(row->backend, sizeof(row->backend), "%s", backend);
    if (local) {
        snprintf(row->location, sizeof(row->location), "%s/%s.%s",
                 mgr->images_dir, row->uuid, format);
    }
    row->size = spec->size ? spec->size : (spec->base ? base->size : 1);
    row->state = VD_STATE_CREATING;
    return vd_volmgr_plan_owner(mgr, &spec->own, row, err);
}

/* Make the image file a 'creating' row points at. */
static int make_image(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                      struct vd_volume_row *row,
                      const struct vd_volume_row *base, struct vd_error *err)
{
    if (spec->import_path != NULL) {
        char *real = NULL;
        int ret = confine_path(spec->import_path, mgr->import_dirs, &real,
                               "import", err);
        if (ret == 0 &&
            (ret = vd_volmgr_outside_data(mgr, real, "import", err)) < 0) {
            free(real);
        }
        if (ret < 0) {
            return ret;
        }
        /* plan probed it; a file that changed since is not imported */
        const struct vd_driver *drv = vd_driver_probe_file(real, err);
        if (drv == NULL) {
            free(real);
            return err != NULL && err->code ? err->code : -EINVAL;
        }
        if (strcmp(drv->name, row->format) != 0) {
            free(real);
            return vd_error_set(err, -EBUSY,
                                "import '%s' changed while "
                                "being imported",
                                spec->import_path);
        }
        ret = copy_sparse(real, row->location, err);
        if (ret == 0) {
            char *slash = strrchr(real, '/');
            *slash = '\0'; /* realpath: absolute, so a '/' exists */
            ret = vd_image_relocate(drv->name, row->location,
                                    slash == real ? "/" : real, err);
        }
        free(real);
        return ret;
    }
    struct vd_create_opts o = {
        .size = spec->empty ? 0 : row->size,
        .cluster_size = spec->cluster_size,
    };
    if (base != NULL) {
        o.backing_file = base->location;
        o.backing_format = base->format;
    }
    return vd_image_create(row->format, row->location, &o, err);
}

/* A base must not change under its clones: refuse while a client has it
 * open, then serve it read-only from now on. */
static int freeze_base(struct vd_volmgr *mgr, const char *base,
                       struct vd_error *err)
{
    struct vd_volume *vol = vd_volmgr_lookup(mgr, base);
    int ret;
    if (vol == NULL || !atomic_load(&vol->served)) {
        vd_volume_unref(vol);
        return vd_error_set(err, -ENOENT, "base volume '%s' is not served",
                            base);
    }
    if (!vd_volume_readonly(vol) && vd_volume_open_count(vol) > 0) {
        ret = vd_error_set(err, -EBUSY,
                           "base volume '%s' is open by %d "
                           "client(s); a base must be read-only, so close it "
                           "first",
                           base, vd_volume_open_count(vol));
    } else {
        ret = vd_volume_reopen(mgr, vol, true, err);
    }
    vd_volume_unref(vol);
    return ret;
}

/* A remote backend's image, made (if the row owns it) and opened before
 * ctl is taken: a server that does not answer must not stall every other
 * control call for the whole connect timeout. The caller has inserted
 * the row 'creating', which holds the name. On failure nothing is left
 * on the server. Sets *img. */
static int open_remote(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                       const struct vd_volume_row *row,
                       const struct vd_volume_row *base, struct vd_image **img,
                       struct vd_error *err)
{
    int ret;

    if (row->owns_image) {
        struct vd_create_opts o = {
            .size = row->size,
            .cluster_size = spec->cluster_size,
            .backing_file = base != NULL ? base->location : NULL,
        };
        ret = vd_image_create(row->backend, row->location, &o, err);
        if (ret < 0) {
            return ret;
        }
    }
    ret = vd_volmgr_open_row(mgr, row, false, img, err);
    if (ret == 0 && spec->size != 0 && vd_image_length(*img) != spec->size) {
        ret = vd_error_set(err, -EINVAL,
                           "the server's export is %llu bytes, "
                           "not the %llu asked for (leave 'size' out to take "
                           "the export's)",
                           (unsigned long long)vd_image_length(*img),
                           (unsigned long long)spec->size);
        vd_image_close(*img);
        *img = NULL;
    }
    if (ret < 0 && row->owns_image) {
        vd_image_remove(row->backend, row->location, NULL);
    }
    return ret;
}

int vd_volmgr_create(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                     struct vd_volume_info *out, struct vd_error *err)
{
    struct vd_volume_row row, base;
    struct vd_image *img = NULL;
    struct vd_volume *vol = NULL;
    bool file;
    int ret;

    ret = vd_volmgr_plan(mgr, spec, &row, &base, err);
    if (ret < 0) {
        return ret;
    }
    file = vd_row_is_file(&row);
    if (!file) {
        /* Note 1 in volume.c: the row first, so that a crash leaves
         * nothing on the server that start-up does not remove. */
        if ((ret = vd_catalog_volume_insert(mgr->cat, &row, err)) < 0) {
            return ret;
        }
        if ((ret = open_remote(mgr, spec, &row, spec->base ? &base : NULL, &img,
                               err)) < 0) {
            vd_catalog_volume_delete(mgr->cat, row.name, NULL);
            return ret;
        }
    }
    pthread_mutex_lock(&mgr->ctl);
    if (spec->base != NULL && (ret = freeze_base(mgr, spec->base, err)) < 0) {
        if (file) {
            goto out_unlock;
        }
        goto out_undo; /* a remote clone is made already */
    }
    if (file && (ret = vd_catalog_volume_insert(mgr->cat, &row, err)) < 0) {
        goto out_unlock;
    }
    if (file) {
        ret = make_image(mgr, spec, &row, spec->base ? &base : NULL, err);
        if (ret < 0) {
            goto out_undo;
        }
        vd_fsync_dir(mgr->images_dir);
        ret = vd_volmgr_open_row(mgr, &row, false, &img, err);
        if (ret < 0) {
            goto out_undo;
        }
    }
    row.size = vd_image_length(img);
    if (spec->empty && row.size == 0) {
        /* Served, but 'creating' until a resize gives it a size (the
         * catalog has no size 0): a crash before that removes it at
         * start, as any half-made volume. */
    } else if ((ret = vd_catalog_volume_set_size(mgr->cat, row.name, row.size,
                                                 err)) < 0 ||
               (ret = vd_catalog_volume_set_state(mgr->cat, row.name,
                                                  VD_STATE_READY, err)) < 0 ||
               (spec->qos != NULL &&
                (ret = vd_volmgr_qos_store(mgr, row.name, spec->qos, NULL,
                                           err)) < 0)) {
        goto out_undo;
    } else {
        row.state = VD_STATE_READY;
    }
    vol = vd_volume_new(&row, img, vd_volmgr_take_ino(mgr));
    if (vol == NULL || vd_volmgr_publish(mgr, vol) < 0) {
        free(vol);
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out_undo;
    }
    vd_volmgr_fill_info(mgr, vol, &row, out);
    vd_info("created volume '%s' (%s, %llu bytes, %s)", row.name, row.format,
            (unsigned long long)row.size, row.location);
    pthread_mutex_unlock(&mgr->ctl);
    return 0;

out_undo:
    vd_image_close(img);
    img = NULL;
    /* Import/format errors may have changed row.format/location: the row in
     * the catalog still names what was planned, so remove by what we made. */
    if (file) {
        unlink(row.location);
    } else if (row.owns_image) {
        vd_image_remove(row.backend, row.location, NULL);
    }
    vd_catalog_volume_delete(mgr->cat, row.name, NULL);
out_unlock:
    vd_image_close(img); /* a remote image, opened before ctl */
    if (spec->base != NULL) {
        vd_volmgr_thaw_base(mgr,
                            spec->base); /* no-op while it has other clones */
    }
    pthread_mutex_unlock(&mgr->ctl);
    return ret;
}
