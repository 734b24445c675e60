/* clone.c — linked clones of RBD images: RBD's own layering.
 *
 * A clone of image B is made from a snapshot of B taken for that clone
 * alone, named VD_RBD_CLONE_SNAP_PREFIX + the clone's image name, and
 * protected so that nobody removes it while the clone reads through it.
 * Removing the clone unprotects and removes that snapshot again, so a
 * base whose clones are all gone can be removed like any other image.
 * A snapshot per clone (not one shared) keeps each clone's view of its
 * base exactly what the base held when that clone was made. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rbd-int.h"
#include "vd_driver.h"
#include "vd_error.h"

#define CLONE_SNAP_PREFIX "vdiskd-clone-"

static int clone_snap_name(char *buf, size_t len, const char *child)
{
    int n = snprintf(buf, len, "%s%s", CLONE_SNAP_PREFIX, child);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Unprotect and remove snapshot snap of image name in io, if it is one
 * this driver made for a clone and no clone uses it any more. */
static int drop_clone_snap(rados_ioctx_t io, const char *name, const char *snap)
{
    rbd_image_t image = NULL;
    int prot = 0, ret;

    if (strncmp(snap, CLONE_SNAP_PREFIX, strlen(CLONE_SNAP_PREFIX)) != 0) {
        return 0;
    }
    ret = rbd_open(io, name, &image, NULL);
    if (ret < 0) {
        return ret;
    }
    ret = rbd_snap_is_protected(image, snap, &prot);
    if (ret == 0 && prot) {
        ret = rbd_snap_unprotect(image, snap); /* -EBUSY: clones left */
    }
    if (ret == 0) {
        ret = rbd_snap_remove(image, snap);
    }
    rbd_close(image);
    return ret == -ENOENT ? 0 : ret;
}

int vd_rbd_clone_create(const struct vd_rbd_location *loc,
                        const struct vd_create_opts *opts, struct vd_error *err)
{
    struct vd_rbd_location parent;
    rados_ioctx_t io = NULL;
    rbd_image_t pimg = NULL;
    rbd_image_options_t copts = NULL;
    char snap[VD_RBD_IMAGE_MAX + sizeof(CLONE_SNAP_PREFIX)];
    uint64_t psize = 0;
    int ret;

    ret = vd_rbd_location_parse(opts->backing_file, &parent, err);
    if (ret < 0) {
        return ret;
    }
    if (strcmp(parent.cluster, loc->cluster) != 0 ||
        strcmp(parent.pool, loc->pool) != 0) {
        return vd_error_set(err, -EINVAL,
                            "an RBD clone lives in its base's cluster and "
                            "pool ('%s', '%s')",
                            parent.cluster, parent.pool);
    }
    if (clone_snap_name(snap, sizeof(snap), loc->image) < 0) {
        return vd_error_set(err, -ENAMETOOLONG, "RBD image name too long");
    }
    ret = vd_rbd_ioctx(loc, false, &io, err);
    if (ret < 0) {
        return ret;
    }
    ret = rbd_open(io, parent.image, &pimg, NULL);
    if (ret < 0) {
        vd_error_set(err, ret, "cannot open base RBD image '%s/%s': %s",
                     parent.pool, parent.image, strerror(-ret));
        goto out_io;
    }
    if ((ret = rbd_get_size(pimg, &psize)) < 0) {
        vd_error_set(err, ret, "cannot read base RBD image '%s/%s': %s",
                     parent.pool, parent.image, strerror(-ret));
        goto out_close;
    }
    if (opts->size != 0 && opts->size != psize) {
        ret = vd_error_set(err, -EINVAL,
                           "an RBD clone has its base's size (%llu bytes); "
                           "grow it once made",
                           (unsigned long long)psize);
        goto out_close;
    }
    ret = rbd_snap_create(pimg, snap);
    if (ret == 0 && (ret = rbd_snap_protect(pimg, snap)) < 0) {
        rbd_snap_remove(pimg, snap);
    }
    if (ret < 0) {
        vd_error_set(err, ret,
                     "cannot snapshot base RBD image '%s/%s' for a "
                     "clone: %s",
                     parent.pool, parent.image, strerror(-ret));
        goto out_close;
    }
    rbd_image_options_create(&copts);
    rbd_image_options_set_uint64(copts, RBD_IMAGE_OPTION_FORMAT, 2);
    rbd_image_options_set_uint64(copts, RBD_IMAGE_OPTION_FEATURES,
                                 VD_RBD_CREATE_FEATURES);
    ret = rbd_clone3(io, parent.image, snap, io, loc->image, copts);
    rbd_image_options_destroy(copts);
    if (ret < 0) {
        if (ret == -EEXIST) {
            vd_error_set(err, ret, "RBD image '%s/%s' already exists",
                         loc->pool, loc->image);
        } else {
            vd_error_set(err, ret, "cannot clone RBD image '%s/%s': %s",
                         parent.pool, parent.image, strerror(-ret));
        }
        rbd_snap_unprotect(pimg, snap);
        rbd_snap_remove(pimg, snap);
    }
out_close:
    rbd_close(pimg);
out_io:
    rados_ioctx_destroy(io);
    return ret;
}

int vd_rbd_clone_parent(rbd_image_t image, struct vd_rbd_parent *out)
{
    rbd_linked_image_spec_t pi;
    rbd_snap_spec_t ps;
    int ret;

    memset(out, 0, sizeof(*out));
    ret = rbd_get_parent(image, &pi, &ps);
    if (ret == -ENOENT) {
        return 0; /* not a clone */
    }
    if (ret < 0) {
        return ret;
    }
    if (strlen(pi.image_name) < sizeof(out->image) &&
        strlen(ps.name) < sizeof(out->snap) &&
        strlen(pi.pool_name) < sizeof(out->pool) && pi.pool_namespace != NULL &&
        pi.pool_namespace[0] == '\0') {
        snprintf(out->pool, sizeof(out->pool), "%s", pi.pool_name);
        snprintf(out->image, sizeof(out->image), "%s", pi.image_name);
        snprintf(out->snap, sizeof(out->snap), "%s", ps.name);
        out->valid = true;
    }
    rbd_linked_image_spec_cleanup(&pi);
    rbd_snap_spec_cleanup(&ps);
    return 0;
}

void vd_rbd_clone_release(const struct vd_rbd_location *loc,
                          const struct vd_rbd_parent *parent)
{
    struct vd_rbd_location ploc = *loc;
    rados_ioctx_t io = NULL;

    if (!parent->valid) {
        return;
    }
    snprintf(ploc.pool, sizeof(ploc.pool), "%s", parent->pool);
    if (vd_rbd_ioctx(&ploc, false, &io, NULL) < 0) {
        return; /* the base's own removal unprotects it then */
    }
    drop_clone_snap(io, parent->image, parent->snap);
    rados_ioctx_destroy(io);
}

int vd_rbd_clone_unprotect(rbd_image_t image, const char *snap)
{
    int prot = 0;
    if (strncmp(snap, CLONE_SNAP_PREFIX, strlen(CLONE_SNAP_PREFIX)) != 0 ||
        rbd_snap_is_protected(image, snap, &prot) < 0 || !prot) {
        return 0;
    }
    return rbd_snap_unprotect(image, snap);
}
