/* volume_change.c — changes to a volume that exists: delete (with its
 * image, or detaching a remote one) and resize. Crash ordering is
 * described in volume.c's DESIGN NOTES. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

/* The last clone of base is gone: serve it writable again. */
void vd_volmgr_thaw_base(struct vd_volmgr *mgr, const char *base)
{
    if (base[0] == '\0' || vd_volmgr_has_clones(mgr, base)) {
        return;
    }
    struct vd_volume *vol = vd_volmgr_lookup(mgr, base);
    if (vol != NULL && atomic_load(&vol->served)) {
        vd_volume_reopen(mgr, vol, false, NULL);
    }
    vd_volume_unref(vol);
}

/* Volumes that use name as their base, as "a, b" (empty when none). */
int vd_volmgr_clones_of(struct vd_volmgr *mgr, const char *name, char *buf,
                        size_t cap)
{
    struct vd_volume_row *rows = NULL;
    int n = vd_catalog_volume_list(mgr->cat, &rows, NULL);
    int count = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].base, name) == 0) {
            size_t len = strlen(buf);
            snprintf(buf + len, cap - len, "%s%s", count ? ", " : "",
                     rows[i].name);
            count++;
        }
    }
    free(rows);
    return count;
}

int vd_volmgr_delete(struct vd_volmgr *mgr, const char *name, bool force,
                     struct vd_error *err)
{
    return vd_volmgr_delete_image(mgr, name, force, false, NULL, err);
}

int vd_volmgr_delete_image(struct vd_volmgr *mgr, const char *name, bool force,
                           bool purge, bool *image_removed,
                           struct vd_error *err)
{
    struct vd_volume_row row;
    struct vd_volume *vol = NULL, *remote = NULL;
    char clones[512];
    bool file;
    int ret;

    if (!vd_volume_name_valid(name)) {
        return vd_error_set(err, -ENOENT, "no volume named '%s'", name);
    }
    pthread_mutex_lock(&mgr->ctl);
    ret = vd_catalog_volume_get(mgr->cat, name, &row, err);
    if (ret < 0) {
        goto out;
    }
    if (row.state == VD_STATE_CREATING && !vd_volmgr_served(mgr, name)) {
        /* Its maker (a create call or a clone job) owns the row and file
         * until it turns them 'ready' or removes them; deleting under it
         * would leave the maker publishing a ghost. (An empty volume made
         * on the mount is served while 'creating': it may go.) */
        ret = vd_error_set(err, -EBUSY,
                           "volume '%s' is still being created; delete it "
                           "once it is ready (a full clone's progress is "
                           "at GET /jobs)",
                           name);
        goto out;
    }
    file = vd_row_is_file(&row);
    if (!file && purge) {
        row.owns_image = true; /* remove it with the row */
    }
    if (!file && row.owns_image && vd_driver_find(row.backend) != NULL &&
        vd_driver_find(row.backend)->remove == NULL) {
        ret = vd_error_set(err, -ENOTSUP,
                           "a %s volume's image cannot be "
                           "removed through vdiskd; delete without "
                           "'purge' to detach it",
                           row.backend);
        goto out;
    }
    if (vd_volmgr_clones_of(mgr, name, clones, sizeof(clones)) > 0) {
        ret = vd_error_set(err, -EBUSY, "volume '%s' is the base of: %s", name,
                           clones);
        goto out;
    }
    if (vd_volmgr_snapview_busy(mgr, name, NULL)) {
        ret = vd_error_set(err, -EBUSY,
                           "snapshots of volume '%s' are open "
                           "through %s/.snapshots; close them first",
                           name, mgr->mount_dir);
        goto out;
    }
    vol = vd_volmgr_lookup(mgr, name);
    if (vol != NULL) {
        ret = vd_volume_retire(vol, force);
        if (ret < 0) {
            vd_error_set(err, ret,
                         "volume '%s' is open by %d client(s); "
                         "close it first or delete with force",
                         name, vd_volume_open_count(vol));
            vd_volume_unref(vol);
            goto out;
        }
        vd_volume_unref(vd_volmgr_unpublish(mgr, name));
        if (file) {
            vd_volume_shut(vol); /* before its image file goes */
            vd_volume_unref(vol);
        } else {
            remote = vol; /* closed below, outside ctl */
        }
    }
    if (!file) {
        /* Closing flushes to the server, and a server that hangs holds
         * that for its whole timeout: no other control call waits for it.
         * The volume is unpublished and its row 'deleting', so nothing
         * finds it; a remote image is removed only once it is closed. */
        if (row.state != VD_STATE_DELETING &&
            (ret = vd_catalog_volume_set_state(mgr->cat, name,
                                               VD_STATE_DELETING, err)) < 0) {
            goto out;
        }
        row.state = VD_STATE_DELETING;
        pthread_mutex_unlock(&mgr->ctl);
        if (remote != NULL) {
            vd_volume_shut(remote);
            vd_volume_unref(remote);
        }
        ret = vd_volmgr_remove_row(mgr, &row, err);
        if (ret == 0 && row.base[0] != '\0') {
            pthread_mutex_lock(&mgr->ctl);
            vd_volmgr_thaw_base(mgr, row.base);
            pthread_mutex_unlock(&mgr->ctl);
        }
        if (ret == 0) {
            vd_info("deleted volume '%s'%s; its image %s was %s", name,
                    force ? " (forced)" : "", row.location,
                    row.owns_image ? "removed" : "detached, not removed");
            if (image_removed != NULL) {
                *image_removed = row.owns_image;
            }
        }
        return ret;
    }
    ret = vd_volmgr_remove_row(mgr, &row, err);
    if (ret == 0) {
        vd_info("deleted volume '%s'%s", name, force ? " (forced)" : "");
        vd_volmgr_thaw_base(mgr, row.base);
        if (image_removed != NULL) {
            *image_removed = true;
        }
    }
out:
    pthread_mutex_unlock(&mgr->ctl);
    return ret;
}

int vd_volmgr_resize(struct vd_volmgr *mgr, const char *name, uint64_t size,
                     struct vd_error *err)
{
    struct vd_volume *vol;
    int ret;

    if (vd_volume_size_check(size, "size", err) < 0) {
        return -EINVAL;
    }
    pthread_mutex_lock(&mgr->ctl);
    vol = vd_volmgr_lookup(mgr, name);
    if (vol == NULL || !atomic_load(&vol->served)) {
        ret = vd_error_set(err, -ENOENT, "no served volume named '%s'", name);
        goto out;
    }
    uint64_t cur = vd_volume_size(vol);
    if (size < cur) {
        ret = vd_error_set(err, -EINVAL,
                           "volume '%s' is %llu bytes; "
                           "shrinking is not supported",
                           name, (unsigned long long)cur);
        goto out;
    }
    ret = 0;
    if (size == cur) {
        goto out;
    }
    if ((ret = vd_volmgr_refuse_base(mgr, name, "resizing it", err)) < 0) {
        goto out;
    }
    if (!(atomic_load(&vol->caps) & VD_CAP_GROW)) {
        /* vol->img is stable under ctl */
        ret = vd_error_set(err, -ENOTSUP,
                           "volume '%s' cannot grow: driver "
                           "'%s' cannot resize",
                           name, vd_image_format(vol->img));
        goto out;
    }
    vd_volume_gate_close(vol);
    ret = vd_image_truncate(vol->img, size, err);
    if (ret == 0) {
        ret = vd_image_flush(vol->img);
    }
    if (ret == 0) {
        atomic_store(&vol->size, vd_image_length(vol->img));
    }
    vd_volume_gate_open(vol);
    if (ret == 0) {
        ret = vd_catalog_volume_set_size(mgr->cat, name, size, err);
    }
    if (ret == 0 && vol->row.state == VD_STATE_CREATING) {
        /* an empty volume made on the mount is complete now */
        ret = vd_catalog_volume_set_state(mgr->cat, name, VD_STATE_READY, err);
        if (ret == 0) {
            pthread_mutex_lock(&mgr->lock);
            vol->row.state = VD_STATE_READY;
            pthread_mutex_unlock(&mgr->lock);
        }
    }
    if (ret == 0) {
        vd_info("resized volume '%s' to %llu bytes", name,
                (unsigned long long)size);
        if (mgr->notify != NULL) {
            mgr->notify(mgr->notify_arg, VD_VOLUME_RESIZED, vol->ino, name);
        }
    }
out:
    vd_volume_unref(vol);
    pthread_mutex_unlock(&mgr->ctl);
    return ret;
}
