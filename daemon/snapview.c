/* snapview.c — read-only views of volumes' snapshots, for the files under
 * the mount's .snapshots directory: one read-only image per viewed
 * (volume, snapshot), shared by every open of its file and counted, so the
 * snapshot (or its volume) is not deleted while someone reads it.
 *
 * DESIGN NOTES
 * 1. A view is a second open of the volume's image file, read-only, as the
 *    snapshot (formats/qcow2/snapview.c). The served volume keeps writing:
 *    a snapshot's clusters never change while it exists, so nothing is
 *    paused and nothing is shared with the volume's image.
 * 2. Opening runs under mgr->ctl, so it never interleaves with a snapshot
 *    create, delete or revert, or a resize — the operations that rewrite
 *    the header and snapshot table the open reads.
 * 3. mgr->views_lock protects the list and each view's user count. A view
 *    is on the list from before its open returns until its last user has
 *    closed it, so deleting its snapshot or its volume (both under ctl,
 *    both asking vd_volmgr_snapview_busy) answers -EBUSY meanwhile.
 * 4. The last close removes the view from the list and closes its image
 *    (read-only: no flush, no I/O). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "vd_assert.h"
#include "vd_error.h"
#include "volume-int.h"

struct vd_snapview {
    struct vd_snapview *next; /* mgr->views; mgr->views_lock */
    struct vd_volmgr *mgr;
    char volume[VD_NAME_MAX + 1];
    char snapshot[256];
    struct vd_image *img; /* read-only; fixed while listed */
    int users;            /* mgr->views_lock */
};

/* The listed view of volume/snapshot, or NULL. views_lock held. */
static struct vd_snapview *find_view(struct vd_volmgr *mgr, const char *volume,
                                     const char *snapshot)
{
    VD_ASSERT_HELD(&mgr->views_lock);
    for (struct vd_snapview *v = mgr->views; v != NULL; v = v->next) {
        if (strcmp(v->volume, volume) == 0 &&
            (snapshot == NULL || strcmp(v->snapshot, snapshot) == 0)) {
            return v;
        }
    }
    return NULL;
}

bool vd_volmgr_snapview_busy(struct vd_volmgr *mgr, const char *volume,
                             const char *snapshot)
{
    pthread_mutex_lock(&mgr->views_lock);
    bool busy = find_view(mgr, volume, snapshot) != NULL;
    pthread_mutex_unlock(&mgr->views_lock);
    return busy;
}

int vd_volmgr_snapview_open(struct vd_volmgr *mgr, const char *volume,
                            const char *snapshot, struct vd_snapview **out,
                            struct vd_error *err)
{
    struct vd_snapview *v;
    struct vd_volume *vol = NULL;
    int ret = 0;

    *out = NULL;
    /* Snapshots made by other tools (qemu-img) may have any name. */
    if (!vd_volume_name_valid(volume) || snapshot == NULL ||
        snapshot[0] == '\0') {
        return vd_error_set(err, -ENOENT, "no snapshot '%s' of '%s'",
                            snapshot ? snapshot : "", volume ? volume : "");
    }
    pthread_mutex_lock(&mgr->ctl);
    pthread_mutex_lock(&mgr->views_lock);
    v = find_view(mgr, volume, snapshot);
    if (v != NULL) {
        v->users++;
    }
    pthread_mutex_unlock(&mgr->views_lock);
    if (v != NULL) {
        goto out;
    }
    vol = vd_volmgr_lookup(mgr, volume);
    if (vol == NULL || !atomic_load(&vol->served)) {
        ret = vd_error_set(err, -ENOENT, "no served volume named '%s'", volume);
        goto out;
    }
    if (!(atomic_load(&vol->caps) & VD_CAP_SNAPSHOT_VIEWS)) {
        ret =
            vd_error_set(err, -ENOTSUP, "volume '%s' has no snapshots", volume);
        goto out;
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    struct vd_open_opts o = {
        .readonly = true,
        .snapshot = snapshot,
        .direct = !mgr->host_cache,
        .ioloop = mgr->ioloop,
    };
    vd_volmgr_chain_opts(mgr, &vol->row, &o);
    ret = vd_image_open(vol->row.format, vol->row.location, &o, &v->img, err);
    if (ret < 0) {
        free(v);
        v = NULL;
        goto out;
    }
    v->mgr = mgr;
    v->users = 1;
    snprintf(v->volume, sizeof(v->volume), "%s", volume);
    snprintf(v->snapshot, sizeof(v->snapshot), "%s", snapshot);
    pthread_mutex_lock(&mgr->views_lock);
    v->next = mgr->views;
    mgr->views = v;
    pthread_mutex_unlock(&mgr->views_lock);
out:
    pthread_mutex_unlock(&mgr->ctl);
    vd_volume_unref(vol);
    *out = v;
    return ret;
}

void vd_snapview_close(struct vd_snapview *v)
{
    struct vd_volmgr *mgr;
    if (v == NULL) {
        return;
    }
    mgr = v->mgr;
    pthread_mutex_lock(&mgr->views_lock);
    if (--v->users > 0) {
        pthread_mutex_unlock(&mgr->views_lock);
        return;
    }
    for (struct vd_snapview **p = &mgr->views; *p != NULL; p = &(*p)->next) {
        if (*p == v) {
            *p = v->next;
            break;
        }
    }
    vd_image_close(v->img);
    pthread_mutex_unlock(&mgr->views_lock);
    free(v);
}

uint64_t vd_snapview_size(const struct vd_snapview *v)
{
    return vd_image_length(v->img);
}

int vd_snapview_pread(struct vd_snapview *v, void *buf, size_t len,
                      uint64_t off)
{
    return vd_image_pread(v->img, buf, len, off);
}

int vd_snapview_block_status(struct vd_snapview *v, uint64_t off, uint64_t len,
                             uint64_t *pnum)
{
    return vd_image_block_status(v->img, off, len, pnum);
}

void vd_volmgr_snapviews_free(struct vd_volmgr *mgr)
{
    pthread_mutex_lock(&mgr->views_lock);
    while (mgr->views != NULL) {
        struct vd_snapview *v = mgr->views;
        mgr->views = v->next;
        vd_image_close(v->img);
        free(v);
    }
    pthread_mutex_unlock(&mgr->views_lock);
}
