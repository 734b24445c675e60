/* snapshot.c — the volume manager's snapshot operations.
 *
 * DESIGN NOTES
 * 1. The image's snapshot table is what a snapshot is; the catalog keeps
 *    a record that vd_volume_sync_snapshots() brings in line with it when
 *    the volume opens and after every change, so snapshots made by other
 *    tools (qemu-img snapshot -c) appear and vanished ones are dropped.
 * 2. Create, delete and revert run with the volume's I/O gate closed:
 *    requests in flight finish first, new ones wait (they do not fail),
 *    and the image is flushed before the snapshot is taken, so the
 *    snapshot holds every write acknowledged before it.
 * 3. Order for create: image snapshot, then catalog row. A crash between
 *    the two leaves a snapshot without a row, which the next sync adds.
 * 4. A snapshot being read — by a clone job, a view on the mount
 *    (snapview.c) or a changed-block walk — cannot be deleted: the first
 *    two are counted and make delete answer -EBUSY, the walk holds ctl.
 * 5. Reads that do not take ctl (list, show: the API and every stat on
 *    the mount's .snapshots tree) pass the volume's I/O gate like data
 *    requests, so a reopen (a base frozen for clones) cannot close the
 *    image under them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "jobs.h"
#include "log.h"
#include "vd_assert.h"
#include "vd_error.h"
#include "volume-int.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void to_view(const struct vd_snapshot_info *si,
                    struct vd_snapshot_view *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->name, sizeof(v->name), "%s", si->name);
    snprintf(v->id, sizeof(v->id), "%s", si->id);
    v->size = si->disk_size;
    v->vm_state_size = si->vm_state_size;
    v->created_at = si->date_sec;
}

/* The served volume, with a snapshot-capable image, into *out (a new
 * reference); -ENOENT or -ENOTSUP with err set otherwise. Callers hold
 * ctl, or pass `enter` and leave the volume's gate when done (note 5). */
static int snap_volume_gated(struct vd_volmgr *mgr, const char *volume,
                             bool enter, struct vd_volume **out,
                             struct vd_error *err)
{
    struct vd_volume *vol =
        vd_volume_name_valid(volume) ? vd_volmgr_lookup(mgr, volume) : NULL;
    *out = NULL;
    if (vol != NULL && enter && vd_volume_gate_enter(vol) < 0) {
        vd_volume_unref(vol);
        vol = NULL;
    }
    if (vol == NULL || !atomic_load(&vol->served)) {
        if (vol != NULL && enter) {
            vd_volume_gate_leave(vol);
        }
        vd_volume_unref(vol);
        return vd_error_set(err, -ENOENT, "no served volume named '%s'",
                            volume);
    }
    if (!(atomic_load(&vol->caps) & VD_CAP_SNAPSHOTS)) {
        int ret = vd_error_set(err, -ENOTSUP,
                               "volume '%s' is a %s %s "
                               "volume, which has no snapshots",
                               volume, vol->row.format, vol->row.backend);
        if (enter) {
            vd_volume_gate_leave(vol);
        }
        vd_volume_unref(vol);
        return ret;
    }
    *out = vol;
    return 0;
}

static int snap_volume(struct vd_volmgr *mgr, const char *volume,
                       struct vd_volume **out, struct vd_error *err)
{
    return snap_volume_gated(mgr, volume, false, out, err);
}

/* Leave what snap_volume_gated(enter = true) entered. */
static void snap_volume_done(struct vd_volume *vol)
{
    vd_volume_gate_leave(vol);
    vd_volume_unref(vol);
}

/* Find name in the image's table; 0 with *out filled, or -ENOENT. */
static int find_snapshot(struct vd_volume *vol, const char *name,
                         struct vd_snapshot_view *out, struct vd_error *err)
{
    struct vd_snapshot_info *si = NULL;
    int n = vd_image_snapshot_list(vol->img, &si);
    int ret = -ENOENT;
    if (n < 0) {
        return vd_error_set(err, n, "cannot read snapshots of '%s': %s",
                            vol->row.name, strerror(-n));
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(si[i].name, name) == 0) {
            if (out != NULL) {
                to_view(&si[i], out);
            }
            ret = 0;
            break;
        }
    }
    free(si);
    if (ret < 0) {
        vd_error_set(err, -ENOENT, "volume '%s' has no snapshot named '%s'",
                     vol->row.name, name);
    }
    return ret;
}

void vd_volume_sync_snapshots(struct vd_volmgr *mgr, struct vd_volume *vol)
{
    struct vd_snapshot_info *si = NULL;
    struct vd_snapshot_row *rows = NULL;
    int n_img, n_cat;

    if (vol->img == NULL || !(vd_image_caps(vol->img) & VD_CAP_SNAPSHOTS)) {
        return;
    }
    n_img = vd_image_snapshot_list(vol->img, &si);
    n_cat = vd_catalog_snapshot_list(mgr->cat, vol->row.name, &rows, NULL);
    if (n_img < 0 || n_cat < 0) {
        goto out;
    }
    for (int i = 0; i < n_img; i++) {
        bool known = false;
        for (int k = 0; k < n_cat && !known; k++) {
            known = strcmp(rows[k].name, si[i].name) == 0;
        }
        if (!known) {
            struct vd_snapshot_row r = {
                .size = si[i].disk_size,
                .created_at = si[i].date_sec,
            };
            snprintf(r.name, sizeof(r.name), "%s", si[i].name);
            if (vd_catalog_snapshot_insert(mgr->cat, vol->row.name, &r, NULL) ==
                0) {
                vd_info("volume '%s': recorded snapshot '%s' found in the "
                        "image",
                        vol->row.name, si[i].name);
            }
        }
    }
    for (int k = 0; k < n_cat; k++) {
        bool present = false;
        for (int i = 0; i < n_img && !present; i++) {
            present = strcmp(rows[k].name, si[i].name) == 0;
        }
        if (!present && vd_catalog_snapshot_delete(mgr->cat, vol->row.name,
                                                   rows[k].name, NULL) == 0) {
            vd_warn("volume '%s': dropped record of snapshot '%s', which the "
                    "image no longer has",
                    vol->row.name, rows[k].name);
        }
    }
out:
    free(si);
    free(rows);
}

int vd_volmgr_snapshot_create(struct vd_volmgr *mgr, const char *volume,
                              const char *name, struct vd_snapshot_view *out,
                              uint64_t *paused_us, struct vd_error *err)
{
    struct vd_volume *vol;
    uint64_t t0, paused;
    int ret;

    if (!vd_volume_name_valid(name)) {
        return vd_error_set(err, -EINVAL,
                            "invalid snapshot name '%s': use 1-64 characters "
                            "a-z 0-9 _ . -, starting with a letter or digit",
                            name ? name : "");
    }
    pthread_mutex_lock(&mgr->ctl);
    ret = snap_volume(mgr, volume, &vol, err);
    if (ret < 0) {
        goto out_unlock;
    }
    if ((ret = vd_volmgr_refuse_base(mgr, volume, "taking a snapshot of it",
                                     err)) < 0) {
        goto out;
    }
    if (find_snapshot(vol, name, NULL, NULL) == 0) {
        ret = vd_error_set(err, -EEXIST,
                           "volume '%s' already has a snapshot "
                           "named '%s'",
                           volume, name);
        goto out;
    }
    t0 = now_us();
    vd_volume_gate_close(vol);
    ret = vd_image_flush(vol->img);
    if (ret < 0) {
        vd_error_set(err, ret, "flushing '%s' before the snapshot failed: %s",
                     volume, strerror(-ret));
    } else {
        ret = vd_image_snapshot_create(vol->img, name, err);
    }
    vd_volume_gate_open(vol);
    paused = now_us() - t0;
    if (paused_us != NULL) {
        *paused_us = paused;
    }
    if (ret < 0) {
        goto out;
    }
    vd_volume_sync_snapshots(mgr, vol);
    ret = find_snapshot(vol, name, out, err);
    vd_info("volume '%s': snapshot '%s' taken, I/O paused %llu us", volume,
            name, (unsigned long long)paused);
out:
    vd_volume_unref(vol);
out_unlock:
    pthread_mutex_unlock(&mgr->ctl);
    return ret;
}

int vd_volmgr_snapshot_list(struct vd_volmgr *mgr, const char *volume,
                            struct vd_snapshot_view **out, struct vd_error *err)
{
    struct vd_snapshot_info *si = NULL;
    struct vd_volume *vol;
    int n = snap_volume_gated(mgr, volume, true, &vol, err);
    *out = NULL;
    if (n < 0) {
        return n;
    }
    n = vd_image_snapshot_list(vol->img, &si);
    snap_volume_done(vol);
    if (n < 0) {
        return vd_error_set(err, n, "cannot read snapshots of '%s': %s", volume,
                            strerror(-n));
    }
    struct vd_snapshot_view *v = calloc(n > 0 ? (size_t)n : 1, sizeof(*v));
    if (v == NULL) {
        free(si);
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        to_view(&si[i], &v[i]);
    }
    free(si);
    *out = v;
    return n;
}

int vd_volmgr_snapshot_get(struct vd_volmgr *mgr, const char *volume,
                           const char *name, struct vd_snapshot_view *out,
                           struct vd_error *err)
{
    struct vd_volume *vol;
    int ret = snap_volume_gated(mgr, volume, true, &vol, err);
    if (ret < 0) {
        return ret;
    }
    ret = find_snapshot(vol, name, out, err);
    snap_volume_done(vol);
    return ret;
}

/* The served volume (a new reference in *out) and its snapshot name must
 * both exist; caller holds ctl. */
static int snap_existing(struct vd_volmgr *mgr, const char *volume,
                         const char *name, struct vd_volume **out,
                         struct vd_error *err)
{
    VD_ASSERT_HELD(&mgr->ctl);
    int ret = snap_volume(mgr, volume, out, err);
    if (ret == 0 && (ret = find_snapshot(*out, name, NULL, err)) < 0) {
        vd_volume_unref(*out);
        *out = NULL;
    }
    return ret;
}

int vd_volmgr_snapshot_delete(struct vd_volmgr *mgr, const char *volume,
                              const char *name, struct vd_error *err)
{
    struct vd_volume *vol;
    int ret;
    pthread_mutex_lock(&mgr->ctl);
    ret = snap_existing(mgr, volume, name, &vol, err);
    if (ret < 0) {
        goto out_unlock;
    }
    if ((ret = vd_volmgr_refuse_base(mgr, volume, "deleting its snapshots",
                                     err)) < 0) {
        goto out;
    }
    char source[330];
    snprintf(source, sizeof(source), "%s/%s", volume, name);
    if (vd_jobs_source_busy(mgr->jobs, source)) {
        ret = vd_error_set(err, -EBUSY,
                           "snapshot '%s' of '%s' is being "
                           "cloned; delete it when the job has finished",
                           name, volume);
        goto out;
    }
    if (vd_volmgr_snapview_busy(mgr, volume, name)) {
        ret = vd_error_set(err, -EBUSY,
                           "snapshot '%s' of '%s' is open "
                           "through %s/.snapshots; delete it once it is "
                           "closed",
                           name, volume, mgr->mount_dir);
        goto out;
    }
    vd_volume_gate_close(vol);
    ret = vd_image_snapshot_delete(vol->img, name, err);
    if (ret == 0) {
        ret = vd_image_flush(vol->img);
    }
    vd_volume_gate_open(vol);
    if (ret == 0) {
        vd_volume_sync_snapshots(mgr, vol);
        vd_info("volume '%s': snapshot '%s' deleted", volume, name);
    }
out:
    vd_volume_unref(vol);
out_unlock:
    pthread_mutex_unlock(&mgr->ctl);
    return ret;
}

int vd_volmgr_snapshot_revert(struct vd_volmgr *mgr, const char *volume,
                              const char *name, bool force,
                              struct vd_error *err)
{
    struct vd_volume *vol;
    int ret;
    pthread_mutex_lock(&mgr->ctl);
    ret = snap_existing(mgr, volume, name, &vol, err);
    if (ret < 0) {
        goto out_unlock;
    }
    if ((ret = vd_volmgr_refuse_base(mgr, volume, "reverting it", err)) < 0) {
        goto out;
    }
    if (!force && vd_volume_open_count(vol) > 0) {
        ret = vd_error_set(err, -EBUSY,
                           "volume '%s' is open by %d client(s); "
                           "a running VM would see its disk change under it "
                           "(use force to revert anyway)",
                           volume, vd_volume_open_count(vol));
        goto out;
    }
    vd_volume_gate_close(vol);
    ret = vd_image_snapshot_revert(vol->img, name, err);
    if (ret == 0) {
        ret = vd_image_flush(vol->img);
    }
    uint64_t size = vd_image_length(vol->img);
    bool resized = size != vd_volume_size(vol);
    atomic_store(&vol->size, size);
    vd_volume_gate_open(vol);
    if (ret == 0) {
        vd_catalog_volume_set_size(mgr->cat, volume, size, NULL);
        if (resized && mgr->notify != NULL) {
            mgr->notify(mgr->notify_arg, VD_VOLUME_RESIZED, vol->ino, volume);
        }
        vd_info("volume '%s': reverted to snapshot '%s'%s", volume, name,
                force ? " (forced while open)" : "");
    }
out:
    vd_volume_unref(vol);
out_unlock:
    pthread_mutex_unlock(&mgr->ctl);
    return ret;
}

struct extent_list {
    struct vd_extent *v;
    size_t n, cap;
};

/* Collect extents, merging each with the last when they touch. */
static int add_extent(void *arg, uint64_t off, uint64_t len)
{
    struct extent_list *l = arg;
    if (l->n > 0 && l->v[l->n - 1].offset + l->v[l->n - 1].length == off) {
        l->v[l->n - 1].length += len;
        return 0;
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        struct vd_extent *nv = realloc(l->v, ncap * sizeof(*nv));
        if (nv == NULL) {
            return -ENOMEM;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = (struct vd_extent){off, len};
    return 0;
}

int vd_volmgr_snapshot_changes(struct vd_volmgr *mgr, const char *volume,
                               const char *snap, const char *since,
                               struct vd_extent **out, struct vd_error *err)
{
    struct extent_list l = {0};
    struct vd_volume *vol;
    int ret;

    *out = NULL;
    pthread_mutex_lock(&mgr->ctl); /* no snapshot goes away mid-walk */
    ret = snap_volume(mgr, volume, &vol, err);
    if (ret < 0) {
        pthread_mutex_unlock(&mgr->ctl);
        return ret;
    }
    if ((ret = find_snapshot(vol, snap, NULL, err)) < 0 ||
        (since != NULL && (ret = find_snapshot(vol, since, NULL, err)) < 0)) {
        goto out;
    }
    ret = vd_image_snapshot_changes(vol->img, since, snap, add_extent, &l, err);
    if (ret == -ENOMEM) {
        vd_error_set(err, ret, "out of memory listing changes");
    }
out:
    vd_volume_unref(vol);
    pthread_mutex_unlock(&mgr->ctl);
    if (ret < 0) {
        free(l.v);
        return ret;
    }
    *out = l.v;
    return (int)l.n;
}
