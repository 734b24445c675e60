/* fuse_snap.c — the mount's snapshot tree, /.snapshots/<volume>/<snapshot>:
 * read-only files that read a snapshot while the volume keeps being
 * written, for backup tools. The data comes from the volume manager's
 * snapshot views (daemon/snapview.c).
 *
 * DESIGN NOTES
 * 1. `.snapshots` is found by lookup but not listed in the root (like
 *    ZFS's hidden .zfs), so whatever walks the mount sees only volumes;
 *    volume names start with [a-z0-9], so it never clashes with one. It
 *    lists one directory per served volume that has snapshots, and each
 *    of those one file per snapshot.
 * 2. Inode numbers lie above every volume's (volume_reg.c counts those up
 *    from 2): FX_SNAP_BASE + 1 is .snapshots, FX_SNAP_BASE + a volume's
 *    ino that volume's directory, FX_FILE_BASE + k + 1 the k-th snapshot
 *    this export has seen. The table behind k never forgets and is keyed
 *    by volume ino, name, id and creation time, so a snapshot deleted and
 *    taken again under the same name gets a new inode.
 * 3. Every request reads the snapshot list from the volume manager.
 *    Entries are not cached by the kernel (timeout 0), so a snapshot
 *    taken or deleted shows at once without invalidations; a file's
 *    attributes never change, so they are cached like a volume's.
 * 4. Opens for writing fail with EROFS (root passes the mode check, so
 *    the missing write bits alone would not stop it). Opens of one
 *    snapshot share one view; the last release closes it. Handles sit on
 *    a list of their own, so stop can release those the kernel never will.
 * 5. Unlike volumes, files go through the kernel's page cache (keep_cache,
 *    no direct_io): a snapshot's contents never change while its inode
 *    exists (note 2), so cached pages stay true, and the kernel's
 *    readahead keeps sequential readers that ask 128 KiB at a time (cp)
 *    from waiting on every request. O_DIRECT readers still reach the view
 *    with each read.
 * 6. A file's st_blocks counts the bytes of the snapshot that hold data
 *    (the view's block status), so cp and backup tools see it is sparse
 *    and seek over its holes (fuse_seek.c). A snapshot never changes, so
 *    the count is taken once per inode, at its first stat.
 * 7. A snapshot is the volume's data: whoever may not read the volume's
 *    file may neither list nor open its snapshots. A volume's directory
 *    has the file's owner, and r-x for each class (owner, group, other)
 *    that may read the file, nothing for the others; the kernel checks
 *    it (default_permissions). `.snapshots` itself lists only volume
 *    names, which the mount's root shows anyway. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog.h"
#include "fuse-int.h"
#include "volume.h"

#define FX_SNAP_BASE (1ULL << 62)
#define FX_FILE_BASE (3ULL << 62)
#define FX_SNAP_ROOT (FX_SNAP_BASE + 1)
#define FX_SNAP_ATTR_TIMEOUT 1.0

/* One snapshot file's identity (note 2). */
struct snap_ino {
    uint64_t vol_ino;
    int64_t created_at;
    char id[64];
    char name[256];
    int64_t data_bytes; /* bytes holding data, -1 until counted (note 6) */
};

/* One open snapshot file; fi->fh points at it. */
struct snap_handle {
    struct vd_snapview *view;
    struct snap_handle *prev, *next; /* vd_fuse_snap.handles; lock */
};

struct vd_fuse_snap {
    pthread_mutex_t lock; /* protects everything below */
    struct snap_ino *inos;
    size_t n_inos, cap_inos;
    struct snap_handle handles; /* list head */
};

int vd_fuse_snap_init(struct vd_fuse_export *fx)
{
    fx->snap = calloc(1, sizeof(*fx->snap));
    if (fx->snap == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&fx->snap->lock, NULL);
    fx->snap->handles.next = fx->snap->handles.prev = &fx->snap->handles;
    return 0;
}

void vd_fuse_snap_fini(struct vd_fuse_export *fx)
{
    if (fx->snap == NULL) {
        return;
    }
    vd_fuse_snap_release_all(fx);
    pthread_mutex_destroy(&fx->snap->lock);
    free(fx->snap->inos);
    free(fx->snap);
    fx->snap = NULL;
}

bool vd_fuse_snap_ino(fuse_ino_t ino)
{
    return ino >= FX_SNAP_BASE;
}

/* ---- inode table (note 2) ------------------------------------------- */

/* The inode of a snapshot of volume vol_ino; 0 when out of memory. */
static fuse_ino_t file_ino(struct vd_fuse_snap *fs, uint64_t vol_ino,
                           const struct vd_snapshot_view *sv)
{
    fuse_ino_t ino = 0;
    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < fs->n_inos; i++) {
        const struct snap_ino *e = &fs->inos[i];
        if (e->vol_ino == vol_ino && e->created_at == sv->created_at &&
            strcmp(e->id, sv->id) == 0 && strcmp(e->name, sv->name) == 0) {
            ino = FX_FILE_BASE + i + 1;
            goto out;
        }
    }
    if (fs->n_inos == fs->cap_inos) {
        size_t ncap = fs->cap_inos ? fs->cap_inos * 2 : 16;
        struct snap_ino *n = realloc(fs->inos, ncap * sizeof(*n));
        if (n == NULL) {
            goto out;
        }
        fs->inos = n;
        fs->cap_inos = ncap;
    }
    struct snap_ino *e = &fs->inos[fs->n_inos];
    e->vol_ino = vol_ino;
    e->created_at = sv->created_at;
    snprintf(e->id, sizeof(e->id), "%s", sv->id);
    snprintf(e->name, sizeof(e->name), "%s", sv->name);
    e->data_bytes = -1;
    ino = FX_FILE_BASE + ++fs->n_inos;
out:
    pthread_mutex_unlock(&fs->lock);
    return ino;
}

static bool file_ino_get(struct vd_fuse_snap *fs, fuse_ino_t ino,
                         struct snap_ino *out)
{
    bool ok = false;
    pthread_mutex_lock(&fs->lock);
    if (ino > FX_FILE_BASE && ino - FX_FILE_BASE <= fs->n_inos) {
        *out = fs->inos[ino - FX_FILE_BASE - 1];
        ok = true;
    }
    pthread_mutex_unlock(&fs->lock);
    return ok;
}

/* ---- what the volume manager says ------------------------------------ */

/* Whether a snapshot's name can be a file name (qemu-img allows any). */
static bool name_ok(const char *n)
{
    return n[0] != '\0' && strchr(n, '/') == NULL && strcmp(n, ".") != 0 &&
           strcmp(n, "..") != 0;
}

/* Snapshots of the served volume with that ino whose names can be file
 * names; the volume's name into name. Returns the count (0 for volumes
 * without snapshots), -ENOENT if no such volume is served. *out is
 * caller-freed. */
static int volume_snaps(struct vd_fuse_export *fx, uint64_t vol_ino, char *name,
                        struct vd_snapshot_view **out)
{
    struct vd_volume *vol = vd_volmgr_lookup_ino(fx->mgr, vol_ino);
    int n;
    *out = NULL;
    if (vol == NULL) {
        return -ENOENT;
    }
    snprintf(name, VD_NAME_MAX + 1, "%s", vd_volume_name(vol));
    vd_volume_unref(vol);
    n = vd_volmgr_snapshot_list(fx->mgr, name, out, NULL);
    if (n < 0) {
        free(*out);
        *out = NULL;
        return n == -ENOENT ? -ENOENT : 0;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (name_ok((*out)[i].name)) {
            (*out)[k++] = (*out)[i];
        }
    }
    return k;
}

/* The snapshot a file inode stands for, if it still exists: its view
 * (sv) and its volume's name. 0 or -ENOENT. */
static int resolve_file(struct vd_fuse_export *fx, fuse_ino_t ino,
                        char *volname, struct vd_snapshot_view *sv)
{
    struct vd_snapshot_view *v = NULL;
    struct snap_ino e;
    int n, ret = -ENOENT;
    if (!file_ino_get(fx->snap, ino, &e)) {
        return -ENOENT;
    }
    n = volume_snaps(fx, e.vol_ino, volname, &v);
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i].name, e.name) == 0 && strcmp(v[i].id, e.id) == 0 &&
            v[i].created_at == e.created_at) {
            *sv = v[i];
            ret = 0;
            break;
        }
    }
    free(v);
    return ret;
}

/* ---- attributes ------------------------------------------------------ */

/* .snapshots, or (vol_ino != 0) a volume's directory in it (note 7). */
static void dir_stat(struct vd_fuse_export *fx, fuse_ino_t ino,
                     uint64_t vol_ino, struct stat *st)
{
    struct vd_volume *vol =
        vol_ino != 0 ? vd_volmgr_lookup_ino(fx->mgr, vol_ino) : NULL;
    struct stat fst = {
        .st_mode = 0, .st_uid = fx->cfg.uid, .st_gid = fx->cfg.gid};
    mode_t mode = 0;
    if (vol != NULL) {
        vd_fuse_volume_stat(fx, vol, &fst);
        vd_volume_unref(vol);
    }
    if (vol_ino == 0) {
        mode = 0555;
    } else {
        mode |= (fst.st_mode & S_IRUSR) ? 0500 : 0;
        mode |= (fst.st_mode & S_IRGRP) ? 0050 : 0;
        mode |= (fst.st_mode & S_IROTH) ? 0005 : 0;
    }
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = S_IFDIR | mode;
    st->st_nlink = 2;
    st->st_uid = fst.st_uid;
    st->st_gid = fst.st_gid;
    st->st_blksize = FX_BLKSIZE;
    st->st_atime = st->st_mtime = st->st_ctime = fx->started_at;
}

/* Bytes of the snapshot that hold data (note 6); -errno when it cannot
 * be read, and then the file counts as fully allocated. */
static int64_t snap_data_bytes(struct vd_fuse_export *fx, fuse_ino_t ino,
                               const char *volname,
                               const struct vd_snapshot_view *sv)
{
    struct vd_fuse_snap *fs = fx->snap;
    struct vd_snapview *view = NULL;
    uint64_t off, size, pnum;
    int64_t total = 0;
    int ret;

    pthread_mutex_lock(&fs->lock);
    total = fs->inos[ino - FX_FILE_BASE - 1].data_bytes;
    pthread_mutex_unlock(&fs->lock);
    if (total >= 0) {
        return total;
    }
    ret = vd_volmgr_snapview_open(fx->mgr, volname, sv->name, &view, NULL);
    if (ret < 0) {
        return ret;
    }
    size = vd_snapview_size(view);
    total = 0;
    for (off = 0; off < size; off += pnum) {
        ret = vd_snapview_block_status(view, off, size - off, &pnum);
        if (ret < 0) {
            break;
        }
        if (!(ret & VD_BS_ZERO)) {
            total += (int64_t)pnum;
        }
    }
    vd_snapview_close(view);
    if (ret < 0) {
        return ret;
    }
    pthread_mutex_lock(&fs->lock);
    fs->inos[ino - FX_FILE_BASE - 1].data_bytes = total;
    pthread_mutex_unlock(&fs->lock);
    return total;
}

static void file_stat(struct vd_fuse_export *fx, fuse_ino_t ino,
                      const char *volname, const struct vd_snapshot_view *sv,
                      struct stat *st)
{
    int64_t data = snap_data_bytes(fx, ino, volname, sv);
    uint64_t used = data >= 0 ? (uint64_t)data : sv->size;
    struct vd_volume *vol = vd_volmgr_lookup(fx->mgr, volname);
    uid_t uid = fx->cfg.uid;
    gid_t gid = fx->cfg.gid;
    mode_t mode = fx->cfg.mode;

    if (vol != NULL) { /* a snapshot is readable by whom its volume is */
        vd_volume_owner(vol, &uid, &gid, &mode);
        vd_volume_unref(vol);
    }
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = S_IFREG | (mode & 0555); /* no write bits */
    st->st_nlink = 1;
    st->st_uid = uid;
    st->st_gid = gid;
    st->st_size = (off_t)sv->size;
    st->st_blksize = FX_BLKSIZE;
    st->st_blocks = (blkcnt_t)((used + 511) / 512);
    st->st_atime = st->st_mtime = st->st_ctime = (time_t)sv->created_at;
}

/* Attributes of any inode of the tree. 0 or -ENOENT. */
static int snap_stat(struct vd_fuse_export *fx, fuse_ino_t ino, struct stat *st)
{
    char name[VD_NAME_MAX + 1];
    struct vd_snapshot_view sv, *v = NULL;
    int n;
    if (ino == FX_SNAP_ROOT) {
        dir_stat(fx, ino, 0, st);
        return 0;
    }
    if (ino < FX_FILE_BASE) {
        n = volume_snaps(fx, ino - FX_SNAP_BASE, name, &v);
        free(v);
        if (n <= 0) {
            return -ENOENT;
        }
        dir_stat(fx, ino, ino - FX_SNAP_BASE, st);
        return 0;
    }
    if (resolve_file(fx, ino, name, &sv) < 0) {
        return -ENOENT;
    }
    file_stat(fx, ino, name, &sv, st);
    return 0;
}

void vd_fuse_snap_getattr(fuse_req_t req, fuse_ino_t ino, int to_set)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct stat st;
    int ret = -ENOENT;
    if (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
                  FUSE_SET_ATTR_GID)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (fx_enter(fx)) { /* timestamps: accepted and ignored */
        ret = snap_stat(fx, ino, &st);
        fx_leave(fx);
    }
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_attr(req, &st, FX_SNAP_ATTR_TIMEOUT);
    }
}

/* ---- lookup ---------------------------------------------------------- */

static int lookup_in(struct vd_fuse_export *fx, fuse_ino_t parent,
                     const char *name, struct fuse_entry_param *e)
{
    char volname[VD_NAME_MAX + 1];
    struct vd_snapshot_view *v = NULL;
    int n, ret = -ENOENT;

    if (parent == FUSE_ROOT_ID) {
        e->ino = FX_SNAP_ROOT;
        dir_stat(fx, e->ino, 0, &e->attr);
        return 0;
    }
    if (parent == FX_SNAP_ROOT) {
        struct vd_volume *vol =
            vd_volume_name_valid(name) ? vd_volmgr_lookup(fx->mgr, name) : NULL;
        uint64_t vino = vol != NULL ? vd_volume_ino(vol) : 0;
        vd_volume_unref(vol);
        if (vino == 0) {
            return -ENOENT;
        }
        n = volume_snaps(fx, vino, volname, &v);
        free(v);
        if (n <= 0 || strcmp(volname, name) != 0) {
            return -ENOENT;
        }
        e->ino = FX_SNAP_BASE + vino;
        dir_stat(fx, e->ino, vino, &e->attr);
        return 0;
    }
    if (parent >= FX_FILE_BASE) {
        return -ENOTDIR;
    }
    n = volume_snaps(fx, parent - FX_SNAP_BASE, volname, &v);
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0) {
            e->ino = file_ino(fx->snap, parent - FX_SNAP_BASE, &v[i]);
            ret = e->ino != 0 ? 0 : -ENOMEM;
            if (ret == 0) {
                file_stat(fx, e->ino, volname, &v[i], &e->attr);
            }
            break;
        }
    }
    free(v);
    return ret;
}

void vd_fuse_snap_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct fuse_entry_param e;
    int ret = -ENOENT;

    memset(&e, 0, sizeof(e));
    if (fx_enter(fx)) {
        ret = lookup_in(fx, parent, name, &e);
        fx_leave(fx);
    }
    if (ret < 0) {
        fuse_reply_err(req, -ret); /* not cached: snapshots come and go */
        return;
    }
    e.entry_timeout = 0; /* note 3 */
    e.attr_timeout = e.ino >= FX_FILE_BASE ? FX_SNAP_ATTR_TIMEOUT : 0;
    fuse_reply_entry(req, &e);
}

/* ---- readdir --------------------------------------------------------- */

struct dir_buf {
    fuse_req_t req;
    char *buf;
    size_t size, pos;
};

static bool dir_add(struct dir_buf *d, const char *name, fuse_ino_t ino,
                    mode_t type, off_t next)
{
    struct stat st = {.st_ino = ino, .st_mode = type};
    size_t n = fuse_add_direntry(d->req, d->buf + d->pos, d->size - d->pos,
                                 name, &st, next);
    if (n > d->size - d->pos) {
        return false;
    }
    d->pos += n;
    return true;
}

/* Served volumes, as (ino, name) pairs, collected outside mgr's lock. */
struct vol_list {
    uint64_t *inos;
    size_t n, cap;
};

static int collect_vol(void *arg, struct vd_volume *vol)
{
    struct vol_list *l = arg;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 32;
        uint64_t *p = realloc(l->inos, ncap * sizeof(*p));
        if (p == NULL) {
            return 1;
        }
        l->inos = p;
        l->cap = ncap;
    }
    l->inos[l->n++] = vd_volume_ino(vol);
    return 0;
}

/* .snapshots: offset vol ino + 2 after a volume's directory. */
static void list_root(struct vd_fuse_export *fx, struct dir_buf *d, off_t off)
{
    struct vol_list l = {0};
    uint64_t after = off > 2 ? (uint64_t)off - 2 : 0;
    vd_volmgr_foreach(fx->mgr, after, collect_vol, &l);
    for (size_t i = 0; i < l.n; i++) {
        char name[VD_NAME_MAX + 1];
        struct vd_snapshot_view *v = NULL;
        int n = volume_snaps(fx, l.inos[i], name, &v);
        free(v);
        if (n > 0 && !dir_add(d, name, FX_SNAP_BASE + l.inos[i], S_IFDIR,
                              (off_t)(l.inos[i] + 2))) {
            break;
        }
    }
    free(l.inos);
}

static int by_ino(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* A volume's directory: snapshots in inode order, offset ino - FILE_BASE
 * + 2 after each, so a listing resumes where it stopped. */
static int list_volume(struct vd_fuse_export *fx, struct dir_buf *d,
                       fuse_ino_t dir, off_t off)
{
    char volname[VD_NAME_MAX + 1];
    struct vd_snapshot_view *v = NULL;
    uint64_t vino = dir - FX_SNAP_BASE;
    int n = volume_snaps(fx, vino, volname, &v);
    uint64_t(*order)[2]; /* (file ino, index in v) */

    if (n <= 0) {
        free(v);
        return -ENOENT;
    }
    order = calloc((size_t)n, sizeof(*order));
    if (order == NULL) {
        free(v);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        order[i][0] = file_ino(fx->snap, vino, &v[i]);
        order[i][1] = (uint64_t)i;
    }
    qsort(order, (size_t)n, sizeof(*order), by_ino);
    for (int i = 0; i < n; i++) {
        uint64_t ino = order[i][0];
        off_t next = (off_t)(ino - FX_FILE_BASE + 2);
        if (ino == 0 || next <= off) {
            continue;
        }
        if (!dir_add(d, v[order[i][1]].name, ino, S_IFREG, next)) {
            break;
        }
    }
    free(order);
    free(v);
    return 0;
}

void vd_fuse_snap_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                          off_t off)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct dir_buf d = {.req = req, .size = size};
    int ret = 0;

    if (ino >= FX_FILE_BASE) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    d.buf = vd_fuse_thread_buf(size);
    if (d.buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (off < 1 && !dir_add(&d, ".", ino, S_IFDIR, 1)) {
        goto reply;
    }
    if (off < 2 &&
        !dir_add(&d, "..", ino == FX_SNAP_ROOT ? FUSE_ROOT_ID : FX_SNAP_ROOT,
                 S_IFDIR, 2)) {
        goto reply;
    }
    if (!fx_enter(fx)) {
        goto reply;
    }
    if (ino == FX_SNAP_ROOT) {
        list_root(fx, &d, off);
    } else {
        ret = list_volume(fx, &d, ino, off);
    }
    fx_leave(fx);
    if (ret < 0 && d.pos == 0) {
        fuse_reply_err(req, -ret);
        return;
    }
reply:
    fuse_reply_buf(req, d.buf, d.pos);
}

/* ---- files ----------------------------------------------------------- */

static void handle_free(struct vd_fuse_snap *fs, struct snap_handle *h)
{
    pthread_mutex_lock(&fs->lock);
    h->prev->next = h->next;
    h->next->prev = h->prev;
    pthread_mutex_unlock(&fs->lock);
    vd_snapview_close(h->view);
    free(h);
}

void vd_fuse_snap_release_all(struct vd_fuse_export *fx)
{
    struct vd_fuse_snap *fs = fx->snap;
    for (;;) {
        struct snap_handle *h;
        pthread_mutex_lock(&fs->lock);
        h = fs->handles.next;
        pthread_mutex_unlock(&fs->lock);
        if (h == &fs->handles) {
            return;
        }
        handle_free(fs, h);
    }
}

void vd_fuse_snap_open(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_snap *fs = fx->snap;
    char volname[VD_NAME_MAX + 1];
    struct vd_snapshot_view sv;
    struct snap_handle *h = NULL;
    int ret;

    if (ino < FX_FILE_BASE) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (!fx_enter(fx)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    ret = resolve_file(fx, ino, volname, &sv);
    if (ret == 0 && (h = calloc(1, sizeof(*h))) == NULL) {
        ret = -ENOMEM;
    }
    if (ret == 0) {
        ret =
            vd_volmgr_snapview_open(fx->mgr, volname, sv.name, &h->view, NULL);
    }
    if (ret < 0) {
        free(h);
        fx_leave(fx);
        fuse_reply_err(req, -ret);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    h->next = fs->handles.next;
    h->prev = &fs->handles;
    h->next->prev = h;
    fs->handles.next = h;
    pthread_mutex_unlock(&fs->lock);
    fi->fh = (uintptr_t)h;
    fi->direct_io = 0; /* note 5 */
    fi->keep_cache = 1;
    fi->noflush = 1;
    if (fuse_reply_open(req, fi) == -ENOENT) {
        handle_free(fs, h); /* interrupted: never released */
    }
    fx_leave(fx);
}

void vd_fuse_snap_release(fuse_req_t req, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct snap_handle *h = (struct snap_handle *)(uintptr_t)fi->fh;
    if (fx_enter(fx)) {
        handle_free(fx->snap, h);
        fx_leave(fx);
    }
    fuse_reply_err(req, 0);
}

static int view_pread(void *view, void *buf, size_t len, uint64_t off)
{
    return vd_snapview_pread(view, buf, len, off);
}

void vd_fuse_snap_read(fuse_req_t req, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct snap_handle *h = (struct snap_handle *)(uintptr_t)fi->fh;

    if (!fx_enter(fx)) {
        fuse_reply_err(req, EIO);
        return;
    }
    vd_fuse_reply_read(req, fx, vd_snapview_size(h->view), size, off,
                       view_pread, h->view);
}

static int view_status(void *view, uint64_t off, uint64_t len, uint64_t *pnum)
{
    return vd_snapview_block_status(view, off, len, pnum);
}

void vd_fuse_snap_lseek(fuse_req_t req, off_t off, int whence,
                        struct fuse_file_info *fi)
{
    struct snap_handle *h = (struct snap_handle *)(uintptr_t)fi->fh;
    vd_fuse_reply_seek(req, view_status, h->view, vd_snapview_size(h->view),
                       off, whence);
}
