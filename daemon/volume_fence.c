/* volume_fence.c — an operator takes a volume over from a host that died
 * holding its image's lock (POST /volumes/{name}/takeover). The driver
 * fences the old owner and breaks its lock (vd_driver.takeover); this
 * file finds the volume and says what was done. Only this explicit call
 * fences anybody: a waiting write never does it behind the operator's
 * back. */
#include <errno.h>
#include <stdio.h>

#include "image.h"
#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

int vd_volmgr_takeover(struct vd_volmgr *mgr, const char *name, char *fenced,
                       size_t len, struct vd_error *err)
{
    struct vd_volume *vol;
    int ret;

    if (len > 0) {
        fenced[0] = '\0';
    }
    if (!vd_volume_name_valid(name)) {
        return vd_error_set(err, -ENOENT, "no volume named '%s'", name);
    }
    /* ctl keeps the image from being replaced or closed meanwhile */
    pthread_mutex_lock(&mgr->ctl);
    vol = vd_volmgr_lookup(mgr, name);
    if (vol == NULL) {
        ret = vd_error_set(err, -ENOENT, "no volume named '%s'", name);
    } else if (!atomic_load(&vol->served) || vol->img == NULL) {
        ret = vd_error_set(err, -EIO, "volume '%s' is not served", name);
    } else if (vd_volume_readonly(vol)) {
        ret = vd_error_set(err, -EROFS,
                           "volume '%s' is read-only: it takes no lock "
                           "over",
                           name);
    } else {
        ret = vd_image_takeover(vol->img, fenced, len, err);
    }
    pthread_mutex_unlock(&mgr->ctl);
    vd_volume_unref(vol);
    if (ret == 0 && len > 0 && fenced[0] != '\0') {
        vd_warn("volume '%s': taken over; fenced and broke the lock of %s",
                name, fenced);
    } else if (ret == 0) {
        vd_info("volume '%s': takeover found no other lock owner", name);
    }
    return ret;
}
