/* fuse_names.c — file operations on the mount root that are volume
 * operations: creating a file creates a volume, truncating it resizes the
 * volume, unlinking it deletes the volume.
 *
 * DESIGN NOTES
 * 1. One set of rules. Every change goes through the volume manager's
 *    control calls, the same the API makes (vd_volmgr_create, _resize,
 *    _delete), so names, sizes, busy volumes and linked-clone bases are
 *    judged alike and the catalog and the mount change together; a crash
 *    in the middle is repaired at start as for an API create ('creating'
 *    rows). Their -errno codes are the answers, except -ENOTSUP (a driver
 *    that cannot grow, an image that cannot be removed), which a file
 *    system says as EPERM, and -ENOMEDIUM, which becomes EIO.
 * 2. A new file is a volume of the default format and size 0, owned by
 *    the creating process with the mode it asked for (the kernel has
 *    applied the umask). Tools create and then truncate to the wanted
 *    size (qemu-img create -f raw, truncate -s, libvirt's vol-create-as),
 *    so a crash between the two leaves a valid empty volume. Only regular
 *    files can be made (mknod of anything else: EPERM).
 * 3. truncate to the current size does nothing (qemu-img truncates a new
 *    file to 0 first); a larger size grows the volume; a smaller one is
 *    refused with EINVAL, the API's answer to shrinking (400). fallocate
 *    past the end grows through here too (fuse_io.c note 2).
 * 4. unlink answers EBUSY while the volume is open or is the base of
 *    linked clones (the API's 409). close() returns before the kernel's
 *    RELEASE reaches us, so "rm right after the writer closed" would race:
 *    a busy volume is retried for a short while before EBUSY is answered.
 * 5. rename is refused with EPERM: the catalog names a volume for life
 *    (snapshot views, linked clones and jobs refer to it by name). EPERM
 *    rather than EXDEV, which would make mv copy the whole disk into a new
 *    volume and delete the old one.
 * 6. The kernel holds the directory's lock while these handlers run, so
 *    the invalidations the volume manager queues for the change are not
 *    waited for (vd_fuse_in_name_op); our answer already tells the kernel
 *    what changed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fuse-int.h"
#include "log.h"
#include "vd_error.h"
#include "volume.h"

#define FN_TIMEOUT 1.0     /* as FX_TIMEOUT in fuse_ops.c */
#define FN_BUSY_RETRIES 20 /* note 4 */
#define FN_BUSY_WAIT_NS 10000000L

_Thread_local bool vd_fuse_in_name_op;

/* A volume manager error as a file system's errno (note 1). */
static int to_errno(int ret)
{
    switch (ret) {
    case -ENOTSUP:
        return EPERM;
    case -ENOMEDIUM:
        return EIO;
    default:
        return ret < 0 ? -ret : EIO;
    }
}

/* The parent of a name operation: 0 for the root, else an errno. */
static int check_parent(fuse_ino_t parent)
{
    if (vd_fuse_snap_ino(parent)) {
        return EROFS;
    }
    return parent == FUSE_ROOT_ID ? 0 : ENOTDIR;
}

/* Create the volume for a new file (note 2) and fill e with its entry.
 * Called with fx entered. *out gets a reference when out is not NULL.
 * 0 or an errno. */
static int make_volume(fuse_req_t req, struct vd_fuse_export *fx,
                       const char *name, mode_t mode,
                       struct fuse_entry_param *e, struct vd_volume **out)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct vd_volume_spec spec = {
        .name = name,
        .empty = true,
        .own =
            {
                .has_uid = true,
                .has_gid = true,
                .has_mode = true,
                .uid = ctx->uid,
                .gid = ctx->gid,
                .mode = mode & 0777,
            },
    };
    struct vd_volume_info *info;
    struct vd_error err = {0};
    struct vd_volume *vol;
    int ret;

    if (!S_ISREG(mode)) {
        return EPERM;
    }
    info = malloc(sizeof(*info));
    if (info == NULL) {
        return ENOMEM;
    }
    vd_fuse_in_name_op = true;
    ret = vd_volmgr_create(fx->mgr, &spec, info, &err);
    vd_fuse_in_name_op = false;
    free(info);
    if (ret < 0) {
        vd_debug("FUSE: creating '%s' refused: %s", name, err.msg);
        return to_errno(ret);
    }
    vd_info("volume '%s' was created on the mount by uid %u gid %u", name,
            (unsigned)ctx->uid, (unsigned)ctx->gid);
    vol = vd_volmgr_lookup(fx->mgr, name);
    if (vol == NULL) {
        return ENOENT; /* deleted through the API in between */
    }
    memset(e, 0, sizeof(*e));
    e->ino = vd_volume_ino(vol);
    e->attr_timeout = FN_TIMEOUT;
    e->entry_timeout = FN_TIMEOUT;
    vd_fuse_volume_stat(fx, vol, &e->attr);
    if (out != NULL) {
        *out = vol;
    } else {
        vd_volume_unref(vol);
    }
    return 0;
}

void vd_fuse_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                   mode_t mode, dev_t rdev)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct fuse_entry_param e;
    int ret = check_parent(parent);

    if (ret == 0 && !fx_enter(fx)) {
        ret = ENOENT;
    } else if (ret == 0) {
        ret = make_volume(req, fx, name, mode, &e, NULL);
        fx_leave(fx);
    }
    if (ret != 0) {
        fuse_reply_err(req, ret);
    } else {
        fuse_reply_entry(req, &e);
    }
}

void vd_fuse_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                    mode_t mode, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct fuse_entry_param e;
    struct vd_volume *vol = NULL;
    int ret = check_parent(parent);

    if (ret == 0 && !fx_enter(fx)) {
        ret = ENOENT;
    } else if (ret == 0) {
        ret = make_volume(req, fx, name, S_IFREG | (mode & 07777), &e, &vol);
        if (ret == 0) {
            vd_fuse_open_volume(req, fx, vol, fi, &e); /* leaves fx */
            return;
        }
        fx_leave(fx);
    }
    fuse_reply_err(req, ret);
}

int vd_fuse_truncate(struct vd_fuse_export *fx, fuse_ino_t ino, off_t size,
                     struct stat *st)
{
    char name[VD_NAME_MAX + 1];
    struct vd_error err = {0};
    struct vd_volume *vol;
    int ret = 0;

    if (size < 0) {
        return EINVAL;
    }
    if (!fx_enter(fx)) {
        return ENOENT;
    }
    vol = vd_volmgr_lookup_ino(fx->mgr, ino);
    if (vol == NULL) {
        fx_leave(fx);
        return ENOENT;
    }
    if ((uint64_t)size != vd_volume_size(vol)) { /* note 3 */
        snprintf(name, sizeof(name), "%s", vd_volume_name(vol));
        vd_fuse_in_name_op = true;
        ret = vd_volmgr_resize(fx->mgr, name, (uint64_t)size, &err);
        vd_fuse_in_name_op = false;
        if (ret < 0) {
            vd_debug("FUSE: truncating '%s' to %lld refused: %s", name,
                     (long long)size, err.msg);
            ret = to_errno(ret);
        }
    }
    if (ret == 0) {
        vd_fuse_volume_stat(fx, vol, st);
    }
    vd_volume_unref(vol);
    fx_leave(fx);
    return ret;
}

/* Whether the volume named name has files open (note 4). */
static bool still_open(struct vd_volmgr *mgr, const char *name)
{
    struct vd_volume *vol = vd_volmgr_lookup(mgr, name);
    bool open = vol != NULL && vd_volume_open_count(vol) > 0;
    vd_volume_unref(vol);
    return open;
}

void vd_fuse_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct timespec wait = {.tv_nsec = FN_BUSY_WAIT_NS};
    struct vd_error err = {0};
    int ret = check_parent(parent);

    if (ret == 0 && strcmp(name, VD_FUSE_SNAPDIR) == 0) {
        ret = EISDIR;
    }
    if (ret == 0 && !fx_enter(fx)) {
        ret = ENOENT;
    } else if (ret == 0) {
        for (int i = 0;; i++) {
            vd_fuse_in_name_op = true;
            ret = vd_volmgr_delete(fx->mgr, name, false, &err);
            vd_fuse_in_name_op = false;
            if (ret != -EBUSY || i >= FN_BUSY_RETRIES) {
                break;
            }
            if (!still_open(fx->mgr, name)) {
                break; /* busy for good: a base with clones, a view */
            }
            vd_error_clear(&err);
            nanosleep(&wait, NULL);
        }
        fx_leave(fx);
        if (ret < 0) {
            vd_debug("FUSE: unlinking '%s' refused: %s", name, err.msg);
            ret = to_errno(ret);
        } else {
            vd_info("volume '%s' was deleted on the mount by uid %u", name,
                    (unsigned)fuse_req_ctx(req)->uid);
        }
    }
    fuse_reply_err(req, ret);
}

void vd_fuse_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                    fuse_ino_t newparent, const char *newname,
                    unsigned int flags)
{
    int ret = check_parent(parent);
    if (ret == 0) {
        ret = check_parent(newparent);
    }
    fuse_reply_err(req, ret != 0 ? ret : EPERM); /* note 5 */
}
