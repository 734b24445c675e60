/* fuse_ops.c — the FUSE export's name space: one directory (ino 1)
 * holding one regular file per served volume, with its attributes, and the
 * table of every request handler (the data path is in fuse_io.c).
 *
 * DESIGN NOTES
 * 1. chown and chmod change the volume's owner and mode, kept in the
 *    catalog (volume_owner.c); the kernel has checked the caller may
 *    (default_permissions). A new size resizes the volume through the
 *    volume manager (fuse_names.c, as do create, unlink and rename).
 *    O_TRUNC arrives as such a setattr because atomic_o_trunc is turned
 *    off in init, and is refused unless the volume is empty.
 * 2. Entries and attributes are cached for FX_TIMEOUT; the volume
 *    manager's events invalidate them at once (fuse_export.c), the root's
 *    too: its mtime is when a volume last came or went. Failed lookups
 *    are not cached, so a new volume is visible immediately.
 * 3. readdir offsets: 1 after ".", 2 after "..", ino + FX_DIR_OFF after a
 *    volume; volumes are walked in ino order, so a listing resumes right
 *    after the last entry it returned even if volumes came or went.
 * 4. The snapshot tree (/.snapshots, fuse_snap.c) has inodes of its own
 *    above all volume inodes; each handler below hands those to it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "catalog.h"
#include "fuse-int.h"
#include "log.h"
#include "volume.h"

#define FX_TIMEOUT 1.0 /* entry and attribute cache, seconds */
#define FX_DIR_OFF 2

static void root_stat(struct vd_fuse_export *fx, struct stat *st)
{
    int64_t ns = atomic_load(&fx->dir_changed_ns);
    memset(st, 0, sizeof(*st));
    st->st_ino = FUSE_ROOT_ID;
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_blksize = FX_BLKSIZE;
    st->st_atime = fx->started_at;
    /* when a volume last came or went, as a directory's mtime says */
    st->st_mtim.tv_sec = st->st_ctim.tv_sec = (time_t)(ns / 1000000000);
    st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = (long)(ns % 1000000000);
}

static void vol_stat(struct vd_fuse_export *fx, struct vd_volume *vol,
                     struct stat *st)
{
    uint64_t size = vd_volume_size(vol);
    int64_t alloc;
    uid_t uid;
    gid_t gid;
    mode_t mode;
    vd_volume_owner(vol, &uid, &gid, &mode);
    mode &= 0777; /* never set-id bits */
    if (vd_volume_readonly(vol)) {
        mode &= ~(mode_t)0222;
    }
    memset(st, 0, sizeof(*st));
    st->st_ino = vd_volume_ino(vol);
    st->st_mode = S_IFREG | mode;
    st->st_nlink = 1;
    st->st_uid = uid;
    st->st_gid = gid;
    st->st_size = (off_t)size;
    st->st_blksize = FX_BLKSIZE;
    /* What the image really takes on the host, so du, qemu-img info and
     * cp's sparse detection see the holes; a backend that cannot tell
     * counts as fully allocated. */
    alloc = vd_volume_allocated(vol);
    st->st_blocks = (blkcnt_t)(alloc >= 0 ? ((uint64_t)alloc + 511) / 512
                                          : (size + 511) / 512);
    st->st_atime = st->st_mtime = st->st_ctime =
        (time_t)vd_volume_created_at(vol);
}

/* A served volume by name, or NULL. vd_volmgr_lookup also finds volumes
 * whose image is missing; lookup_ino only returns served ones. */
static struct vd_volume *lookup_served(struct vd_volmgr *mgr, const char *name)
{
    struct vd_volume *vol;
    uint64_t ino;
    if (!vd_volume_name_valid(name)) {
        return NULL;
    }
    vol = vd_volmgr_lookup(mgr, name);
    if (vol == NULL) {
        return NULL;
    }
    ino = vd_volume_ino(vol);
    vd_volume_unref(vol);
    vol = vd_volmgr_lookup_ino(mgr, ino);
    if (vol != NULL && strcmp(vd_volume_name(vol), name) != 0) {
        vd_volume_unref(vol);
        vol = NULL;
    }
    return vol;
}

static void fx_init(void *userdata, struct fuse_conn_info *conn)
{
    const unsigned want_write = 1024 * 1024;

    /* libfuse has already capped max_write to its buffer (256 pages when
     * the kernel supports max_pages); max_pages follows max_write. */
    if (conn->max_write > want_write) {
        conn->max_write = want_write;
    }
    conn->max_background = 256;
    conn->congestion_threshold = 192;
    if (conn->capable & FUSE_CAP_ASYNC_DIO) {
        conn->want |= FUSE_CAP_ASYNC_DIO;
    }
    if (conn->capable & FUSE_CAP_ASYNC_READ) {
        conn->want |= FUSE_CAP_ASYNC_READ;
    }
    /* O_TRUNC must come as a setattr we can refuse (note 1). */
    conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
    /* Data never goes through the page cache (fuse_io.c note 1). */
    conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ |
                              FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    vd_info("FUSE connection: protocol 7.%u, max_write %u, max_background "
            "%u, async dio %s",
            conn->proto_minor, conn->max_write, conn->max_background,
            (conn->want & FUSE_CAP_ASYNC_DIO) ? "on" : "off");
}

static void fx_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct fuse_entry_param e;
    struct vd_volume *vol;

    if (vd_fuse_snap_ino(parent) ||
        (parent == FUSE_ROOT_ID && strcmp(name, VD_FUSE_SNAPDIR) == 0)) {
        vd_fuse_snap_lookup(req, parent, name);
        return;
    }
    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (!fx_enter(fx)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    vol = lookup_served(fx->mgr, name);
    if (vol == NULL) {
        fx_leave(fx);
        fuse_reply_err(req, ENOENT); /* not cached: volumes come and go */
        return;
    }
    memset(&e, 0, sizeof(e));
    e.ino = vd_volume_ino(vol);
    e.attr_timeout = FX_TIMEOUT;
    e.entry_timeout = FX_TIMEOUT;
    vol_stat(fx, vol, &e.attr);
    vd_volume_unref(vol);
    fx_leave(fx);
    fuse_reply_entry(req, &e);
}

static void fx_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    fuse_reply_none(req); /* inode numbers come from the volume manager */
}

static void fx_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
    fuse_reply_none(req);
}

void vd_fuse_volume_stat(struct vd_fuse_export *fx, struct vd_volume *vol,
                         struct stat *st)
{
    vol_stat(fx, vol, st);
}

static void fx_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_volume *vol;
    struct stat st;

    if (ino == FUSE_ROOT_ID) {
        root_stat(fx, &st);
        fuse_reply_attr(req, &st, FX_TIMEOUT);
        return;
    }
    if (vd_fuse_snap_ino(ino)) {
        vd_fuse_snap_getattr(req, ino, 0);
        return;
    }
    vol = vd_fuse_enter_volume(req, fx, ino);
    if (vol == NULL) {
        return;
    }
    vol_stat(fx, vol, &st);
    vd_volume_unref(vol);
    fx_leave(fx);
    fuse_reply_attr(req, &st, FX_TIMEOUT);
}

#define FX_SET_OWNER                                                           \
    (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)

/* chown and chmod of a volume file (note 1): an errno, or 0. */
static int set_owner(struct vd_fuse_export *fx, fuse_ino_t ino,
                     const struct stat *attr, int to_set)
{
    struct vd_owner_req want = {
        .has_uid = (to_set & FUSE_SET_ATTR_UID) != 0,
        .has_gid = (to_set & FUSE_SET_ATTR_GID) != 0,
        .has_mode = (to_set & FUSE_SET_ATTR_MODE) != 0,
        .uid = attr->st_uid,
        .gid = attr->st_gid,
        .mode = attr->st_mode & 07777,
    };
    struct vd_volume *vol;
    char name[VD_NAME_MAX + 1];
    int ret;

    if (!fx_enter(fx)) {
        return ENOENT;
    }
    vol = vd_volmgr_lookup_ino(fx->mgr, ino);
    if (vol == NULL) {
        fx_leave(fx);
        return ENOENT;
    }
    snprintf(name, sizeof(name), "%s", vd_volume_name(vol));
    vd_volume_unref(vol);
    /* The reply carries the new attributes: no invalidation needed. */
    ret = vd_volmgr_set_owner(fx->mgr, name, &want, false, NULL);
    fx_leave(fx);
    return -ret;
}

static void fx_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_volume *vol;
    struct stat st;
    int ret = 0;

    /* Timestamps are accepted and ignored (note 1). */
    if (vd_fuse_snap_ino(ino)) {
        vd_fuse_snap_getattr(req, ino, to_set);
        return;
    }
    if ((to_set & FX_SET_OWNER) && ino == FUSE_ROOT_ID) {
        fuse_reply_err(req, EPERM);
        return;
    }
    if ((to_set & FX_SET_OWNER) && (ret = set_owner(fx, ino, attr, to_set))) {
        fuse_reply_err(req, ret);
        return;
    }
    if (ino == FUSE_ROOT_ID) {
        if (to_set & FUSE_SET_ATTR_SIZE) {
            fuse_reply_err(req, EISDIR);
            return;
        }
        root_stat(fx, &st);
        fuse_reply_attr(req, &st, FX_TIMEOUT);
        return;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        /* truncate resizes the volume (fuse_names.c note 3) */
        ret = vd_fuse_truncate(fx, ino, attr->st_size, &st);
    } else {
        vol = vd_fuse_enter_volume(req, fx, ino);
        if (vol == NULL) {
            return;
        }
        vol_stat(fx, vol, &st);
        vd_volume_unref(vol);
        fx_leave(fx);
    }
    if (ret != 0) {
        fuse_reply_err(req, ret);
    } else {
        fuse_reply_attr(req, &st, FX_TIMEOUT);
    }
}

struct readdir_ctx {
    fuse_req_t req;
    char *buf;
    size_t size;
    size_t pos;
};

static bool dir_add(struct readdir_ctx *c, const char *name, fuse_ino_t ino,
                    mode_t type, off_t next)
{
    struct stat st = {.st_ino = ino, .st_mode = type};
    size_t n = fuse_add_direntry(c->req, c->buf + c->pos, c->size - c->pos,
                                 name, &st, next);
    if (n > c->size - c->pos) {
        return false;
    }
    c->pos += n;
    return true;
}

static int readdir_cb(void *arg, struct vd_volume *vol)
{
    struct readdir_ctx *c = arg;
    uint64_t ino = vd_volume_ino(vol);
    return dir_add(c, vd_volume_name(vol), ino, S_IFREG,
                   (off_t)(ino + FX_DIR_OFF))
               ? 0
               : 1;
}

static void fx_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct readdir_ctx c = {.req = req, .size = size};

    if (vd_fuse_snap_ino(ino)) {
        vd_fuse_snap_readdir(req, ino, size, off);
        return;
    }
    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    c.buf = vd_fuse_thread_buf(size);
    if (c.buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (off < 1 && !dir_add(&c, ".", FUSE_ROOT_ID, S_IFDIR, 1)) {
        goto reply;
    }
    if (off < 2 && !dir_add(&c, "..", FUSE_ROOT_ID, S_IFDIR, 2)) {
        goto reply;
    }
    if (fx_enter(fx)) {
        uint64_t after = off > FX_DIR_OFF ? (uint64_t)off - FX_DIR_OFF : 0;
        vd_volmgr_foreach(fx->mgr, after, readdir_cb, &c);
        fx_leave(fx);
    }
reply:
    fuse_reply_buf(req, c.buf, c.pos);
}

/* The data directory's file system: the images live there, so its size,
 * free space and inodes are what volumes can still take (a libvirt pool
 * on the mount shows real capacity and free space). */
static void fx_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct statvfs sv;
    int ret = -EIO;

    if (fx_enter(fx)) {
        ret = statvfs(vd_volmgr_data_dir(fx->mgr), &sv) < 0 ? -errno : 0;
        fx_leave(fx);
    }
    if (ret < 0) {
        fuse_reply_err(req, -ret);
        return;
    }
    sv.f_namemax = VD_NAME_MAX;
    fuse_reply_statfs(req, &sv);
}

static void fx_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0); /* the directory has no state of its own */
}

/* Files: snapshot files are read-only and handled by fuse_snap.c; write,
 * fallocate and flush never reach them (read-only opens, noflush), but a
 * stray one is refused rather than handed a handle of the wrong kind. */
static void fx_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        vd_fuse_snap_open(req, ino, fi);
    } else {
        vd_fuse_open(req, ino, fi);
    }
}

static void fx_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        vd_fuse_snap_release(req, fi);
    } else {
        vd_fuse_release(req, ino, fi);
    }
}

static void fx_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        vd_fuse_snap_read(req, size, off, fi);
    } else {
        vd_fuse_read(req, ino, size, off, fi);
    }
}

static void fx_write_buf(fuse_req_t req, fuse_ino_t ino,
                         struct fuse_bufvec *bufv, off_t off,
                         struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        fuse_reply_err(req, EROFS);
    } else {
        vd_fuse_write_buf(req, ino, bufv, off, fi);
    }
}

static void fx_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        fuse_reply_err(req, 0);
    } else {
        vd_fuse_flush(req, ino, fi);
    }
}

static void fx_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        fuse_reply_err(req, 0); /* nothing of a snapshot is ever dirty */
    } else {
        vd_fuse_fsync(req, ino, datasync, fi);
    }
}

static void fx_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
                         off_t len, struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        fuse_reply_err(req, EROFS);
    } else {
        vd_fuse_fallocate(req, ino, mode, off, len, fi);
    }
}

static void fx_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    if (vd_fuse_snap_ino(ino)) {
        vd_fuse_snap_lseek(req, off, whence, fi);
    } else {
        vd_fuse_lseek(req, ino, off, whence, fi);
    }
}

const struct fuse_lowlevel_ops vd_fuse_ops = {
    .init = fx_init,
    .lookup = fx_lookup,
    .forget = fx_forget,
    .forget_multi = fx_forget_multi,
    .getattr = fx_getattr,
    .setattr = fx_setattr,
    .open = fx_open,
    .release = fx_release,
    .read = fx_read,
    .write_buf = fx_write_buf,
    .flush = fx_flush,
    .fsync = fx_fsync,
    .readdir = fx_readdir,
    .fsyncdir = fx_fsyncdir,
    .statfs = fx_statfs,
    .fallocate = fx_fallocate,
    .lseek = fx_lseek,
    .mknod = vd_fuse_mknod,
    .create = vd_fuse_create,
    .unlink = vd_fuse_unlink,
    .rename = vd_fuse_rename,
};
