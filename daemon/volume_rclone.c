/* volume_rclone.c — linked clones of remote volumes: a base whose driver
 * makes clones itself (VD_CAP_BASE and VD_CAP_CHEAP_CLONE on a remote
 * backend, e.g. RBD layering) gets its clones made by that driver, beside
 * it: same backend, same cluster and pool, a new image named from the
 * clone's uuid. The clone's row names the base (row.base) like a local
 * linked clone, so the base stays read-only while it has clones, and
 * deleting it is refused while they exist; the image the driver made is
 * the clone's (owns_image), and removing it lets go of the base. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

#include "image.h"
#include "vd_error.h"
#include "volume-int.h"

static bool pool_allowed(struct vd_volmgr *mgr, const char *pool)
{
    for (size_t i = 0; mgr->pool_allow[i] != NULL; i++) {
        if (strcmp(mgr->pool_allow[i], pool) == 0) {
            return true;
        }
    }
    return false;
}

int vd_volmgr_plan_remote_clone(struct vd_volmgr *mgr,
                                const struct vd_volume_spec *spec,
                                struct vd_volume_row *row,
                                struct vd_volume_row *base,
                                struct vd_error *err)
{
    struct vd_location_parts parts;
    const struct vd_driver *drv;
    const unsigned want = VD_CAP_BASE | VD_CAP_CHEAP_CLONE;
    uuid_t u;
    int n;

    if (vd_catalog_volume_get(mgr->cat, spec->base, base, NULL) < 0 ||
        base->state != VD_STATE_READY || vd_row_is_file(base)) {
        return 1; /* not a remote base: the local rules apply */
    }
    drv = vd_driver_find(base->backend);
    if (drv == NULL || (vd_driver_caps(drv) & want) != want) {
        return vd_error_set(err, -ENOTSUP,
                            "volume '%s' cannot be a linked-clone base: "
                            "its backend '%s' makes no clones",
                            spec->base, base->backend);
    }
    if (spec->format != NULL || spec->cluster_size != 0) {
        return vd_error_set(err, -EINVAL,
                            "a linked clone of %s volume '%s' has its "
                            "base's format: leave out 'format' and "
                            "'cluster_size'",
                            base->backend, spec->base);
    }
    if (spec->size != 0 && spec->size != base->size) {
        return vd_error_set(err, -EINVAL,
                            "a linked clone of %s volume '%s' has its "
                            "base's size (%llu bytes); grow it with PATCH "
                            "once made",
                            base->backend, spec->base,
                            (unsigned long long)base->size);
    }
    if (vd_image_location_parts(base->backend, base->location, &parts) < 0) {
        return vd_error_set(err, -EINVAL, "volume '%s' has a bad location",
                            spec->base);
    }
    if (!pool_allowed(mgr, parts.pool)) {
        return vd_error_set(err, -EACCES,
                            "pool '%s' is not one the operator allowed "
                            "for %s volumes",
                            parts.pool, base->backend);
    }
    uuid_generate(u);
    uuid_unparse_lower(u, row->uuid);
    struct vd_locate_req lr = {
        .cluster = parts.cluster,
        .pool = parts.pool,
        .uuid = row->uuid,
        .create = true,
    };
    n = vd_image_locate(base->backend, &lr, row->location,
                        sizeof(row->location), err);
    if (n < 0) {
        return n;
    }
    snprintf(row->name, sizeof(row->name), "%s", spec->name);
    snprintf(row->format, sizeof(row->format), "raw");
    snprintf(row->backend, sizeof(row->backend), "%s", base->backend);
    snprintf(row->base, sizeof(row->base), "%s", spec->base);
    row->owns_image = true;
    row->size = base->size;
    row->state = VD_STATE_CREATING;
    return vd_volmgr_plan_owner(mgr, &spec->own, row, err);
}
