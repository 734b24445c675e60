/* volume_reg.c — the list of served volumes: publish and unpublish,
 * lookup by name or inode number, iteration, inode numbers, and the rule
 * for volume names. `mgr->lock` guards the list and is never held across
 * I/O (volume.c DESIGN NOTES 5); the lifecycle in volume.c, the control
 * path and the snapshot files use it, it calls none of them. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vd_error.h"
#include "volume-int.h"

bool vd_volume_name_valid(const char *name)
{
    size_t n;
    if (name == NULL) {
        return false;
    }
    n = strlen(name);
    if (n == 0 || n > VD_NAME_MAX) {
        return false;
    }
    if (!((name[0] >= 'a' && name[0] <= 'z') ||
          (name[0] >= '0' && name[0] <= '9'))) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-')) {
            return false;
        }
    }
    return true; /* '.' and '..' fail the first-character rule */
}

/* Publish a volume on the mount (takes over the caller's reference). */
int vd_volmgr_publish(struct vd_volmgr *mgr, struct vd_volume *vol)
{
    vd_volume_owner_init(mgr, vol);
    vd_volume_qos_attach(mgr, vol); /* before its first request */
    pthread_mutex_lock(&mgr->lock);
    if (mgr->n_vols == mgr->cap_vols) {
        size_t ncap = mgr->cap_vols ? mgr->cap_vols * 2 : 16;
        struct vd_volume **nv = realloc(mgr->vols, ncap * sizeof(*nv));
        if (nv == NULL) {
            pthread_mutex_unlock(&mgr->lock);
            return -ENOMEM;
        }
        mgr->vols = nv;
        mgr->cap_vols = ncap;
    }
    mgr->vols[mgr->n_vols++] = vol;
    pthread_mutex_unlock(&mgr->lock);
    if (mgr->notify != NULL && atomic_load(&vol->served)) {
        mgr->notify(mgr->notify_arg, VD_VOLUME_ADDED, vol->ino, vol->row.name);
    }
    return 0;
}

bool vd_volmgr_served(struct vd_volmgr *mgr, const char *name)
{
    struct vd_volume *vol = vd_volmgr_lookup(mgr, name);
    bool served = vol != NULL && atomic_load(&vol->served);
    vd_volume_unref(vol);
    return served;
}

uint64_t vd_volmgr_take_ino(struct vd_volmgr *mgr)
{
    pthread_mutex_lock(&mgr->lock);
    uint64_t ino = mgr->next_ino++;
    pthread_mutex_unlock(&mgr->lock);
    return ino;
}

/* Remove from the list; returns the list's reference (or NULL). */
struct vd_volume *vd_volmgr_unpublish(struct vd_volmgr *mgr, const char *name)
{
    struct vd_volume *vol = NULL;
    pthread_mutex_lock(&mgr->lock);
    for (size_t i = 0; i < mgr->n_vols; i++) {
        if (strcmp(mgr->vols[i]->row.name, name) == 0) {
            vol = mgr->vols[i];
            memmove(&mgr->vols[i], &mgr->vols[i + 1],
                    (mgr->n_vols - i - 1) * sizeof(*mgr->vols));
            mgr->n_vols--;
            break;
        }
    }
    pthread_mutex_unlock(&mgr->lock);
    if (vol != NULL && mgr->notify != NULL) {
        mgr->notify(mgr->notify_arg, VD_VOLUME_REMOVED, vol->ino,
                    vol->row.name);
    }
    return vol;
}

void vd_volmgr_set_notify(struct vd_volmgr *mgr, vd_volume_notify_fn fn,
                          void *arg)
{
    mgr->notify = fn;
    mgr->notify_arg = arg;
}

void vd_volmgr_set_export_check(struct vd_volmgr *mgr, vd_volume_export_fn fn,
                                void *arg)
{
    mgr->export_check = fn;
    mgr->export_arg = arg;
}

int vd_volmgr_export_state(struct vd_volmgr *mgr, char *why, size_t len)
{
    if (len > 0) {
        why[0] = '\0';
    }
    if (mgr->export_check == NULL) {
        return 0; /* no export: nothing to serve, nothing lost */
    }
    return mgr->export_check(mgr->export_arg, why, len);
}

struct vd_volume *vd_volmgr_lookup(struct vd_volmgr *mgr, const char *name)
{
    struct vd_volume *vol = NULL;
    pthread_mutex_lock(&mgr->lock);
    for (size_t i = 0; i < mgr->n_vols; i++) {
        if (strcmp(mgr->vols[i]->row.name, name) == 0) {
            vol = vd_volume_ref(mgr->vols[i]);
            break;
        }
    }
    pthread_mutex_unlock(&mgr->lock);
    return vol;
}

/* Served volumes only: a missing volume has no file on the mount. */
struct vd_volume *vd_volmgr_lookup_ino(struct vd_volmgr *mgr, uint64_t ino)
{
    struct vd_volume *vol = NULL;
    size_t lo = 0, hi;
    pthread_mutex_lock(&mgr->lock);
    hi = mgr->n_vols;
    while (lo < hi) { /* vols is ordered by ino */
        size_t mid = lo + (hi - lo) / 2;
        if (mgr->vols[mid]->ino < ino) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < mgr->n_vols && mgr->vols[lo]->ino == ino &&
        atomic_load(&mgr->vols[lo]->served)) {
        vol = vd_volume_ref(mgr->vols[lo]);
    }
    pthread_mutex_unlock(&mgr->lock);
    return vol;
}

void vd_volmgr_foreach(struct vd_volmgr *mgr, uint64_t after_ino,
                       int (*cb)(void *arg, struct vd_volume *vol), void *arg)
{
    pthread_mutex_lock(&mgr->lock);
    for (size_t i = 0; i < mgr->n_vols; i++) {
        struct vd_volume *vol = mgr->vols[i];
        if (vol->ino > after_ino && atomic_load(&vol->served) &&
            cb(arg, vol) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&mgr->lock);
}

int vd_volume_size_check(uint64_t size, const char *field, struct vd_error *err)
{
    if (size == 0) {
        return vd_error_set(err, -EINVAL, "'%s' must be greater than zero",
                            field);
    }
    if (size % VD_VOLUME_SIZE_ALIGN != 0) {
        return vd_error_set(
            err, -EINVAL, "'%s' must be a multiple of %llu bytes, got %" PRIu64,
            field, VD_VOLUME_SIZE_ALIGN, size);
    }
    if (size > VD_VOLUME_SIZE_MAX) {
        return vd_error_set(
            err, -EINVAL,
            "'%s' must be at most 64 TiB (%llu bytes), got %" PRIu64, field,
            VD_VOLUME_SIZE_MAX, size);
    }
    return 0;
}

const char *vd_volmgr_data_dir(const struct vd_volmgr *mgr)
{
    return mgr->data_dir;
}
