/* volume.c — the volume manager's lifecycle: start-up (reconcile the
 * catalog, open the images), reopen, flush and shutdown, keeping the
 * catalog and the image files in step. The served list is volume_reg.c;
 * create, delete and resize are volume_ctl.c.
 *
 * DESIGN NOTES (lifecycle and crash order)
 * 1. Create: row 'creating' -> image file made and fsynced (with its
 *    directory) -> image opened -> row 'ready' -> published to the mount.
 *    A crash before 'ready' leaves a 'creating' row, which start-up undoes
 *    (file removed, row removed). Nothing half-made is ever visible. A
 *    remote backend has no file: its row goes in 'creating' first (it
 *    holds the name), then the image is made if vdiskd owns it and
 *    opened, outside `ctl` (note 5); a failure removes both.
 * 2. Delete: retire (refused while open unless forced) -> vd_volmgr_unpublish
 * -> gate closed and drained -> image closed -> row 'deleting' -> file unlinked
 * -> row removed. Start-up finishes any 'deleting' row the same way. A remote
 * image vdiskd created (owns_image) is removed like a file, once its volume is
 * closed; an attached one is left alone unless the caller purges it.
 * 3. A 'ready' row whose image is missing or will not open is kept, marked
 *    'missing' and logged; it is not served. It comes back when it opens.
 *    A served volume whose image reports corruption is shown 'corrupt'
 *    (with the driver's reason, logged once); that state is never written
 *    to the catalog, it follows from the image.
 * 4. Image files live in <data>/images/<uuid>.<format>; names never reach
 *    the file system, so a volume name cannot point outside the data dir.
 * 5. Control operations hold `ctl` for their whole length, except that
 *    create dials a remote server before taking it, and delete closes a
 *    remote volume and removes its image after releasing it (a server
 *    that does not answer would hold every control call for its timeout);
 *    `lock` guards only the list of served volumes and is never held
 *    across I/O.
 * 6. Unclean shutdown: <data>/.open-for-writing exists from before
 *    the first image is opened until every image was closed without
 *    error. Found at start-up, it says the last daemon died with images
 *    open, which may leak clusters (never corrupt them: the drivers'
 *    write order); every writable open of this run then asks the driver
 *    to reclaim them, and the count is logged. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "jobs.h"
#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

int vd_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ret = 0;
    if (fd < 0) {
        return -errno;
    }
    if (fsync(fd) < 0) {
        ret = -errno;
    }
    close(fd);
    return ret;
}

bool vd_row_is_file(const struct vd_volume_row *row)
{
    return strcmp(row->backend, VD_BACKEND_FILE) == 0;
}

/* Which driver serves a row: the format for local files, else the backend. */
static const char *row_driver(const struct vd_volume_row *row)
{
    return vd_row_is_file(row) ? row->format : row->backend;
}

static int open_row(struct vd_volmgr *mgr, const struct vd_volume_row *row,
                    bool readonly, bool lazy, struct vd_image **img,
                    struct vd_error *err)
{
    struct vd_open_opts o = {
        .readonly = readonly,
        .socket_dirs = (const char *const *)mgr->nbd_socket_dirs,
        .direct = !mgr->host_cache,
        .ioloop = mgr->ioloop,
    };
    uint64_t leaks = 0;
    int ret;
    vd_volmgr_chain_opts(mgr, row, &o);
    if (!vd_row_is_file(row) && lazy) {
        o.lazy_connect = true;
        o.size_hint = row->size;
    }
    if (mgr->unclean && !readonly && vd_row_is_file(row)) {
        o.leaks_reclaimed = &leaks;
    }
    ret = vd_image_open(row_driver(row), row->location, &o, img, err);
    if (ret == 0 && leaks > 0) {
        vd_warn("volume '%s': reclaimed %llu leaked cluster(s) after an "
                "unclean shutdown",
                row->name, (unsigned long long)leaks);
    }
    return ret;
}

#define OPEN_MARKER ".open-for-writing"

/* Note 6: learn whether the last daemon shut down cleanly, and leave the
 * marker in place for this one. */
static int marker_make(struct vd_volmgr *mgr, struct vd_error *err)
{
    char path[PATH_MAX];
    int fd;
    snprintf(path, sizeof(path), "%s/" OPEN_MARKER, mgr->data_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        mgr->unclean = true;
        mgr->marker_made = true;
        vd_warn("the last shutdown was not clean: images opened for "
                "writing will have leaked clusters reclaimed");
        return 0;
    }
    if (fd < 0) {
        return vd_error_set(err, -errno, "cannot create '%s': %s", path,
                            strerror(errno));
    }
    close(fd);
    mgr->marker_made = true;
    return vd_fsync_dir(mgr->data_dir);
}

static void marker_remove(struct vd_volmgr *mgr)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" OPEN_MARKER, mgr->data_dir);
    if (unlink(path) == 0) {
        vd_fsync_dir(mgr->data_dir);
    }
}

int vd_volmgr_open_row(struct vd_volmgr *mgr, const struct vd_volume_row *row,
                       bool readonly, struct vd_image **img,
                       struct vd_error *err)
{
    return open_row(mgr, row, readonly, false, img, err);
}

int vd_volmgr_open_row_lazy(struct vd_volmgr *mgr,
                            const struct vd_volume_row *row, bool readonly,
                            struct vd_image **img, struct vd_error *err)
{
    return open_row(mgr, row, readonly, true, img, err);
}

/* Finish removing a row whose volume is not served: file, then row. */
int vd_volmgr_remove_row(struct vd_volmgr *mgr, const struct vd_volume_row *row,
                         struct vd_error *err)
{
    int ret;
    /* By uuid: the name may already belong to another volume's row. A
     * row already gone still leaves its own file (named by the uuid) to
     * remove. */
    bool gone = false;
    if (row->state != VD_STATE_DELETING &&
        (ret = vd_catalog_volume_set_state_uuid(mgr->cat, row->uuid,
                                                VD_STATE_DELETING, err)) < 0) {
        if (ret != -ENOENT) {
            return ret;
        }
        gone = true;
    }
    if (vd_row_is_file(row) && unlink(row->location) < 0 && errno != ENOENT) {
        return vd_error_set(err, -errno, "cannot remove '%s': %s",
                            row->location, strerror(errno));
    }
    if (!vd_row_is_file(row) && row->owns_image) {
        ret = vd_image_remove(row->backend, row->location, err);
        if (ret < 0 && ret != -ENOENT) {
            return ret;
        }
    }
    vd_fsync_dir(mgr->images_dir);
    return gone ? 0 : vd_catalog_volume_delete_uuid(mgr->cat, row->uuid, err);
}

/* Start-up: finish or undo what a crash interrupted, open the rest. */
static int reconcile(struct vd_volmgr *mgr, struct vd_error *err)
{
    struct vd_volume_row *rows = NULL;
    int n = vd_catalog_volume_list(mgr->cat, &rows, err);
    if (n < 0) {
        return n;
    }
    for (int i = 0; i < n; i++) {
        struct vd_volume_row *row = &rows[i];
        struct vd_error e = {0};
        struct vd_image *img = NULL;

        if (row->state == VD_STATE_CREATING ||
            row->state == VD_STATE_DELETING) {
            bool creating = row->state == VD_STATE_CREATING;
            if (vd_volmgr_remove_row(mgr, row, &e) < 0) {
                vd_err("reconcile: volume '%s': %s", row->name, e.msg);
            } else {
                vd_warn("reconcile: repaired volume '%s': %s", row->name,
                        creating ? "removed a half-created volume"
                                 : "finished an interrupted delete");
            }
            continue;
        }
        /* A base of linked clones stays read-only while it has them. */
        bool is_base = false;
        for (int k = 0; k < n && !is_base; k++) {
            is_base = strcmp(rows[k].base, row->name) == 0 &&
                      rows[k].state == VD_STATE_READY;
        }
        if (vd_volmgr_open_row_lazy(mgr, row, is_base, &img, &e) < 0) {
            vd_err("reconcile: volume '%s' is not served: %s", row->name,
                   e.msg);
            if (row->state != VD_STATE_MISSING) {
                vd_catalog_volume_set_state(mgr->cat, row->name,
                                            VD_STATE_MISSING, NULL);
                row->state = VD_STATE_MISSING;
            }
        } else if (row->state == VD_STATE_MISSING) {
            vd_info("reconcile: volume '%s' is back", row->name);
            vd_catalog_volume_set_state(mgr->cat, row->name, VD_STATE_READY,
                                        NULL);
            row->state = VD_STATE_READY;
        }
        struct vd_volume *vol =
            vd_volume_new(row, img, vd_volmgr_take_ino(mgr));
        if (vol != NULL) {
            vd_volume_note_corruption(vol);
            vd_volume_sync_snapshots(mgr, vol);
        }
        if (vol == NULL || vd_volmgr_publish(mgr, vol) < 0) {
            vd_image_close(img);
            free(vol);
            free(rows);
            return vd_error_set(err, -ENOMEM, "out of memory");
        }
    }
    free(rows);
    return 0;
}

/* Image files nobody owns: report, never delete (it may be someone's data). */
static void report_orphans(struct vd_volmgr *mgr)
{
    DIR *d = opendir(mgr->images_dir);
    struct dirent *de;
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        bool owned = false;
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", mgr->images_dir, de->d_name);
        pthread_mutex_lock(&mgr->lock);
        for (size_t i = 0; i < mgr->n_vols && !owned; i++) {
            owned = strcmp(mgr->vols[i]->row.location, path) == 0;
        }
        pthread_mutex_unlock(&mgr->lock);
        if (!owned) {
            vd_warn("reconcile: image file '%s' belongs to no volume; "
                    "left in place",
                    path);
        }
    }
    closedir(d);
}

static char **dup_strv(const char *first, const char *const *rest)
{
    size_t n = 0;
    while (rest != NULL && rest[n] != NULL) {
        n++;
    }
    char **v = calloc(n + 2, sizeof(*v));
    size_t k = 0;
    if (v == NULL) {
        return NULL;
    }
    if (first != NULL) {
        v[k++] = strdup(first);
    }
    for (size_t i = 0; i < n; i++) {
        v[k++] = strdup(rest[i]);
    }
    return v;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        free(v[i]);
    }
    free(v);
}

/* Without --format: the first file format in registry order that can
 * create images and make linked clones over them, else the first that
 * can create images at all. */
static const char *default_format(void)
{
    const struct vd_driver *const *d = vd_driver_list();
    const char *any = NULL;
    for (size_t i = 0; d[i] != NULL; i++) {
        unsigned caps = vd_driver_caps(d[i]);
        if (!d[i]->is_file || !(caps & VD_CAP_CREATE)) {
            continue;
        }
        if (caps & VD_CAP_CHEAP_CLONE) {
            return d[i]->name;
        }
        if (any == NULL) {
            any = d[i]->name;
        }
    }
    return any != NULL ? any : "raw";
}

int vd_volmgr_new(const struct vd_volmgr_config *cfg, struct vd_catalog *cat,
                  struct vd_volmgr **out, struct vd_error *err)
{
    struct vd_volmgr *mgr = calloc(1, sizeof(*mgr));
    const char *fmt = cfg->default_format;
    int ret;

    *out = NULL;
    if (mgr == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&mgr->ctl, NULL);
    pthread_mutex_init(&mgr->lock, NULL);
    pthread_mutex_init(&mgr->views_lock, NULL);
    mgr->cat = cat;
    mgr->host_cache = cfg->host_cache;
    mgr->default_uid = cfg->default_uid;
    mgr->default_gid = cfg->default_gid;
    mgr->default_mode = cfg->default_mode & 0777;
    mgr->ioloop = cfg->ioloop;
    mgr->next_ino = 2; /* 1 is the mount's root directory */
    if (fmt == NULL) {
        fmt = default_format();
    }
    const struct vd_driver *fdrv = vd_driver_find(fmt);
    if (fdrv == NULL || !fdrv->is_file ||
        !(vd_driver_caps(fdrv) & VD_CAP_CREATE)) {
        char known[256];
        vd_driver_names(VD_CAP_CREATE, true, known, sizeof(known));
        ret = vd_error_set(err, -EINVAL,
                           "unknown default format '%s'; "
                           "known: %s",
                           fmt, known);
        goto out_free;
    }
    mgr->default_format = strdup(fmt);
    mgr->data_dir = strdup(cfg->data_dir);
    mgr->data_dir_list[0] = mgr->data_dir;
    mgr->mount_dir = strdup(cfg->mount_dir);
    if (asprintf(&mgr->images_dir, "%s/images", cfg->data_dir) < 0) {
        mgr->images_dir = NULL;
    }
    mgr->jobs = vd_jobs_new();
    mgr->import_dirs = dup_strv(NULL, cfg->import_dirs);
    mgr->allowed_dirs = dup_strv(cfg->data_dir, cfg->import_dirs);
    mgr->nbd_socket_dirs = dup_strv(NULL, cfg->nbd_socket_dirs);
    mgr->pool_allow = dup_strv(NULL, cfg->pool_allow);
    if (mgr->default_format == NULL || mgr->data_dir == NULL ||
        mgr->mount_dir == NULL || mgr->images_dir == NULL ||
        mgr->import_dirs == NULL || mgr->allowed_dirs == NULL ||
        mgr->nbd_socket_dirs == NULL || mgr->pool_allow == NULL ||
        mgr->jobs == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out_free;
    }
    for (size_t i = 0; mgr->import_dirs[i] != NULL; i++) {
        const char *d = mgr->import_dirs[i];
        size_t n = strlen(d);
        bool contains = strncmp(mgr->data_dir, d, n) == 0 &&
                        (mgr->data_dir[n] == '/' || n == 1);
        if (contains || vd_volmgr_outside_data(mgr, d, "import", NULL) < 0) {
            vd_warn("--import-dir %s contains the data directory %s or lies "
                    "inside it: nothing in the data directory is ever "
                    "imported or used as a backing file",
                    mgr->import_dirs[i], mgr->data_dir);
        }
    }
    if (mkdir(mgr->images_dir, 0700) < 0 && errno != EEXIST) {
        ret = vd_error_set(err, -errno, "cannot create '%s': %s",
                           mgr->images_dir, strerror(errno));
        goto out_free;
    }
    ret = marker_make(mgr, err);
    if (ret == 0) {
        ret = vd_volmgr_qos_start(mgr, err);
    }
    if (ret == 0) {
        ret = reconcile(mgr, err);
    }
    if (ret < 0) {
        goto out_free;
    }
    report_orphans(mgr);
    vd_info("serving %zu volume(s) from %s", mgr->n_vols, mgr->images_dir);
    *out = mgr;
    return 0;

out_free:
    vd_volmgr_free(mgr);
    return ret;
}

bool vd_volmgr_has_clones(struct vd_volmgr *mgr, const char *name)
{
    struct vd_volume_row *rows = NULL;
    int n = vd_catalog_volume_list(mgr->cat, &rows, NULL);
    bool found = false;
    for (int i = 0; i < n && !found; i++) {
        found = strcmp(rows[i].base, name) == 0;
    }
    free(rows);
    return found;
}

int vd_volmgr_refuse_base(struct vd_volmgr *mgr, const char *name,
                          const char *what, struct vd_error *err)
{
    char clones[512];
    int n = vd_volmgr_clones_of(mgr, name, clones, sizeof(clones));
    if (n <= 0) {
        return 0;
    }
    return vd_error_set(err, -EBUSY,
                        "volume '%s' is the base of %d linked clone(s): %s; "
                        "it stays read-only while they use it, so %s is not "
                        "possible (delete the clones first)",
                        name, n, clones, what);
}

void vd_volmgr_chain_opts(struct vd_volmgr *mgr,
                          const struct vd_volume_row *row,
                          struct vd_open_opts *o)
{
    o->allowed_dirs = (const char *const *)mgr->allowed_dirs;
    /* A linked clone's backing file is its base's image, inside the data
     * directory (and so on, for a clone of a clone). Everything else, an
     * import's chain, must stay out of it, whatever a backing file in an
     * import dir was swapped for since it was checked. */
    if (row->base[0] != '\0') {
        o->one_way_dirs = mgr->data_dir_list;
    } else {
        o->denied_dirs = mgr->data_dir_list;
    }
}

int vd_volume_reopen(struct vd_volmgr *mgr, struct vd_volume *vol,
                     bool readonly, struct vd_error *err)
{
    struct vd_image *img = NULL;
    int ret;
    if (vol->img != NULL && vd_image_readonly(vol->img) == readonly) {
        return 0;
    }
    if (readonly) {
        atomic_store(&vol->readonly, true); /* refuse new writable opens now */
    }
    vd_volume_gate_close(vol);
    vd_image_close(vol->img);
    vol->img = NULL; /* the copies in vol stay: lookups still find it */
    ret = vd_volmgr_open_row(mgr, &vol->row, readonly, &img, err);
    if (ret < 0 &&
        vd_volmgr_open_row(mgr, &vol->row, !readonly, &img, NULL) < 0) {
        vd_err("volume '%s' could not be reopened and is not served",
               vol->row.name);
    }
    vd_volume_set_image(vol, img);
    if (img != NULL) {
        vd_volume_note_corruption(vol);
    }
    vd_volume_gate_open(vol);
    if (ret == 0) {
        vd_info("volume '%s' is now %s", vol->row.name,
                readonly ? "read-only (base of linked clones)" : "writable");
    }
    return ret;
}

/* Drain a volume's I/O and close its image. */
int vd_volume_shut(struct vd_volume *vol)
{
    int ret;
    vd_volume_gate_close(vol);
    ret = vd_image_close(vol->img);
    vd_volume_set_image(vol, NULL);
    return ret;
}

void vd_volmgr_free(struct vd_volmgr *mgr)
{
    if (mgr == NULL) {
        return;
    }
    bool clean = true;
    vd_jobs_free(mgr->jobs); /* running clones stop and undo themselves */
    vd_volmgr_snapviews_free(mgr);
    for (size_t i = 0; i < mgr->n_vols; i++) {
        struct vd_volume *vol = mgr->vols[i];
        vd_volume_retire(vol, true);
        if (vd_volume_shut(vol) < 0) {
            clean = false;
            if (vd_volume_corrupt_reason(vol) == NULL) {
                vd_err("volume '%s': flush at close failed", vol->row.name);
            }
        }
        vd_volume_qos_detach(vol); /* before the scheduler goes */
        vd_volume_unref(vol);
    }
    if (mgr->marker_made && clean) {
        marker_remove(mgr);
    }
    vd_volmgr_qos_stop(mgr);
    free(mgr->vols);
    free(mgr->data_dir);
    free(mgr->images_dir);
    free(mgr->mount_dir);
    free(mgr->default_format);
    free_strv(mgr->import_dirs);
    free_strv(mgr->allowed_dirs);
    free_strv(mgr->nbd_socket_dirs);
    free_strv(mgr->pool_allow);
    pthread_mutex_destroy(&mgr->ctl);
    pthread_mutex_destroy(&mgr->lock);
    pthread_mutex_destroy(&mgr->views_lock);
    free(mgr);
}

/* Whether the volume's image reports corruption (noting it if new). */
static bool known_corrupt(struct vd_volume *vol)
{
    if (vd_volume_gate_enter(vol) == 0) {
        vd_volume_note_corruption(vol);
        vd_volume_gate_leave(vol);
    }
    return vd_volume_corrupt_reason(vol) != NULL;
}

int vd_volmgr_flush_all(struct vd_volmgr *mgr)
{
    int first = 0;
    pthread_mutex_lock(&mgr->ctl);
    pthread_mutex_lock(&mgr->lock);
    size_t n = mgr->n_vols;
    struct vd_volume **v = calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; v != NULL && i < n; i++) {
        v[i] = vd_volume_ref(mgr->vols[i]);
    }
    pthread_mutex_unlock(&mgr->lock);
    for (size_t i = 0; v != NULL && i < n; i++) {
        if (atomic_load(&v[i]->served)) {
            int r = vd_volume_flush(v[i]);
            if (r == -EIO && known_corrupt(v[i])) {
                /* Nothing is written to a corrupt image any more, and the
                 * reason was logged when it was found: not a new failure. */
                vd_info("volume '%s' not flushed: its image is corrupt",
                        v[i]->row.name);
            } else if (r < 0) {
                vd_err("volume '%s': flush failed: %s", v[i]->row.name,
                       strerror(-r));
                if (first == 0) {
                    first = r;
                }
            }
        }
        vd_volume_unref(v[i]);
    }
    free(v);
    pthread_mutex_unlock(&mgr->ctl);
    return v == NULL ? -ENOMEM : first;
}
