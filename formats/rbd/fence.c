/* fence.c — taking an RBD image over from a host that died holding its
 * exclusive lock (vd_driver.takeover).
 *
 * librbd's writers wait for the lock while its owner's watch lives (about
 * 30 s after a host dies, its watch times out and a waiting writer breaks
 * the lock itself). An operator who knows the host is dead need not
 * wait: takeover blocklists the owner's client first, so that a host that
 * was only frozen (a hung kernel, a paused VM) can never land a write
 * when it wakes, then breaks its lock; this host's next write (or the one
 * already waiting) takes the lock. Blocklisting fences the owner's whole
 * cluster connection, every image it has open, which is what fencing a
 * dead host means. Never done silently: only this call does it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "rbd-int.h"
#include "vd_error.h"

#define MAX_OWNERS 8

int vd_rbd_takeover(struct vd_image *img, char *fenced, size_t len,
                    struct vd_error *err)
{
    struct rbd_state *s = img->opaque;
    rbd_lock_mode_t mode;
    char *owners[MAX_OWNERS];
    size_t n = MAX_OWNERS, used = 0;
    int is_owner = 0, ret;

    if (!vd_rbd_up(s)) {
        return vd_error_set(err, -EIO, "RBD image '%s/%s' is not connected",
                            s->loc.pool, s->loc.image);
    }
    if (!(s->features & RBD_FEATURE_EXCLUSIVE_LOCK)) {
        return vd_error_set(err, -ENOTSUP,
                            "RBD image '%s/%s' has no exclusive lock",
                            s->loc.pool, s->loc.image);
    }
    if (rbd_is_exclusive_lock_owner(s->image, &is_owner) == 0 && is_owner) {
        return 0; /* ours already */
    }
    ret = rbd_lock_get_owners(s->image, &mode, owners, &n);
    if (ret == -ENOENT) {
        return 0; /* nobody holds it: the next write takes it */
    }
    if (ret < 0) {
        return vd_error_set(err, vd_rbd_io_errno(s, ret),
                            "cannot read the lock of RBD image '%s/%s': %s",
                            s->loc.pool, s->loc.image, strerror(-ret));
    }
    rados_t cluster = rados_ioctx_get_cluster(s->io);
    for (size_t i = 0; i < n && ret == 0; i++) {
        /* Fence first: between the break and the blocklist the old owner
         * could otherwise take the lock back. 0 = the cluster's default
         * expiry (an hour), long past any request it still holds. */
        ret = rados_blocklist_add(cluster, owners[i], 0);
        if (ret < 0) {
            vd_error_set(err, ret, "cannot blocklist client %s: %s", owners[i],
                         strerror(-ret));
            break;
        }
        ret = rbd_lock_break(s->image, mode, owners[i]);
        if (ret == -ENOENT) {
            ret = 0; /* released meanwhile */
        }
        if (ret < 0) {
            vd_error_set(err, ret,
                         "cannot break the lock of RBD image '%s/%s' held "
                         "by %s: %s",
                         s->loc.pool, s->loc.image, owners[i], strerror(-ret));
            break;
        }
        if (len > used) {
            int k = snprintf(fenced + used, len - used, "%s%s",
                             used ? ", " : "", owners[i]);
            used += k > 0 ? (size_t)k : 0;
            if (used >= len) {
                used = len - 1;
            }
        }
    }
    rbd_lock_get_owners_cleanup(owners, n);
    return ret;
}
