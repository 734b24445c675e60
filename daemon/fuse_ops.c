/* fuse_ops.c — the FUSE request handlers: one directory (ino 1) holding
 * one regular file per served volume, each request mapped to one call on
 * the volume (daemon/volume.h).
 *
 * DESIGN NOTES
 * 1. Files are opened direct_io with keep_cache off: no kernel page cache
 *    sits under cache=none clients, and every read and write reaches the
 *    volume's I/O gate, which is what makes snapshots consistent.
 * 2. A volume file behaves like a block device of fixed size: reads stop
 *    at the end (0 at EOF), writes at or past the end fail with ENOSPC and
 *    a write across it is cut short. Size, mode and owner cannot be
 *    changed through the file (EPERM); O_TRUNC arrives as such a setattr
 *    because atomic_o_trunc is turned off in init.
 * 3. FUSE sends FLUSH on every close(). It reaches the volume's flush only
 *    if that open wrote since its last flush or fsync, and read-only opens
 *    ask the kernel not to send it at all (noflush). fsync always flushes.
 * 4. Every handler that touches the volume manager runs between fx_enter
 *    and fx_leave, so vd_fuse_export_stop can wait for them even if the
 *    kernel connection outlives the loop (see fuse_export.c).
 * 5. Reads land in a per-thread aligned buffer that grows to the largest
 *    request seen, so the data path does not allocate per request. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "catalog.h"
#include "fuse-int.h"
#include "log.h"
#include "volume.h"

#define FX_TIMEOUT 1.0             /* entry and attribute cache, seconds */
#define FX_BLKSIZE 4096
#define FX_BUF_MIN (128 * 1024)
#define FX_BUF_ALIGN 4096
/* readdir offsets: 1 after ".", 2 after "..", ino + FX_DIR_OFF after a file */
#define FX_DIR_OFF 2

static struct vd_fuse_export *req_fx(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static bool fx_enter(struct vd_fuse_export *fx)
{
    atomic_fetch_add(&fx->inflight, 1);
    if (atomic_load(&fx->stopping)) {
        atomic_fetch_sub(&fx->inflight, 1);
        return false;
    }
    return true;
}

static void fx_leave(struct vd_fuse_export *fx)
{
    atomic_fetch_sub(&fx->inflight, 1);
}

/* ---- per-thread I/O buffer ---------------------------------------------- */

struct thread_buf {
    void *p;
    size_t len;
};

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static bool buf_key_ok;

static void thread_buf_free(void *arg)
{
    struct thread_buf *tb = arg;
    free(tb->p);
    free(tb);
}

static void thread_buf_init(void)
{
    buf_key_ok = pthread_key_create(&buf_key, thread_buf_free) == 0;
}

/* An aligned buffer of at least len bytes owned by the calling thread,
 * valid until its next call; NULL when out of memory. */
static void *thread_buf(size_t len)
{
    struct thread_buf *tb;
    pthread_once(&buf_once, thread_buf_init);
    if (!buf_key_ok) {
        return NULL;
    }
    tb = pthread_getspecific(buf_key);
    if (tb == NULL) {
        tb = calloc(1, sizeof(*tb));
        if (tb == NULL || pthread_setspecific(buf_key, tb) != 0) {
            free(tb);
            return NULL;
        }
    }
    if (tb->len < len) {
        size_t n = len < FX_BUF_MIN ? FX_BUF_MIN : len;
        void *p = NULL;
        n = (n + FX_BUF_ALIGN - 1) & ~(size_t)(FX_BUF_ALIGN - 1);
        if (posix_memalign(&p, FX_BUF_ALIGN, n) != 0) {
            return NULL;
        }
        free(tb->p);
        tb->p = p;
        tb->len = n;
    }
    return tb->p;
}

/* ---- attributes ---------------------------------------------------------- */

static void root_stat(struct vd_fuse_export *fx, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = FUSE_ROOT_ID;
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_blksize = FX_BLKSIZE;
    st->st_atime = st->st_mtime = st->st_ctime = fx->started_at;
}

static void vol_stat(struct vd_fuse_export *fx, struct vd_volume *vol,
                     struct stat *st)
{
    uint64_t size = vd_volume_size(vol);
    mode_t mode = fx->cfg.mode & 07777;
    if (vd_volume_readonly(vol)) {
        mode &= ~(mode_t)0222;
    }
    memset(st, 0, sizeof(*st));
    st->st_ino = vd_volume_ino(vol);
    st->st_mode = S_IFREG | mode;
    st->st_nlink = 1;
    st->st_uid = fx->cfg.uid;
    st->st_gid = fx->cfg.gid;
    st->st_size = (off_t)size;
    st->st_blksize = FX_BLKSIZE;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
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

/* ---- handlers -------------------------------------------------------------- */

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
    /* O_TRUNC must come as a setattr we can refuse (note 2). */
    conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
    /* Data never goes through the page cache (note 1). */
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
        fuse_reply_err(req, ENOENT);   /* not cached: volumes come and go */
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
    fuse_reply_none(req);   /* inode numbers come from the volume manager */
}

static void fx_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
    fuse_reply_none(req);
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
    if (!fx_enter(fx)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    vol = vd_volmgr_lookup_ino(fx->mgr, ino);
    if (vol == NULL) {
        fx_leave(fx);
        fuse_reply_err(req, ENOENT);
        return;
    }
    vol_stat(fx, vol, &st);
    vd_volume_unref(vol);
    fx_leave(fx);
    fuse_reply_attr(req, &st, FX_TIMEOUT);
}

static void fx_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_volume *vol;
    struct stat st;
    int ret = 0;

    /* Timestamps are accepted and ignored; ownership and mode come from
     * the daemon's configuration. */
    if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
        fuse_reply_err(req, EPERM);
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
    if (!fx_enter(fx)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    vol = vd_volmgr_lookup_ino(fx->mgr, ino);
    if (vol == NULL) {
        ret = ENOENT;
    } else if ((to_set & FUSE_SET_ATTR_SIZE) &&
               (attr->st_size < 0 ||
                (uint64_t)attr->st_size != vd_volume_size(vol))) {
        /* Resizing is an API operation (PATCH), never a truncate. */
        ret = EPERM;
    } else {
        vol_stat(fx, vol, &st);
    }
    vd_volume_unref(vol);
    fx_leave(fx);
    if (ret != 0) {
        fuse_reply_err(req, ret);
    } else {
        fuse_reply_attr(req, &st, FX_TIMEOUT);
    }
}

static void handle_free(struct vd_fuse_export *fx, struct vd_fuse_handle *h)
{
    pthread_mutex_lock(&fx->handles_lock);
    h->prev->next = h->next;
    h->next->prev = h->prev;
    pthread_mutex_unlock(&fx->handles_lock);
    vd_volume_release_file(h->vol);
    vd_volume_unref(h->vol);
    free(h);
}

void vd_fuse_release_all_handles(struct vd_fuse_export *fx)
{
    for (;;) {
        struct vd_fuse_handle *h;
        pthread_mutex_lock(&fx->handles_lock);
        h = fx->handles.next;
        pthread_mutex_unlock(&fx->handles_lock);
        if (h == &fx->handles) {
            return;
        }
        handle_free(fx, h);
    }
}

static void fx_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = NULL;
    struct vd_volume *vol;
    bool rdonly = (fi->flags & O_ACCMODE) == O_RDONLY;
    int ret;

    if (ino == FUSE_ROOT_ID) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (!fx_enter(fx)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    vol = vd_volmgr_lookup_ino(fx->mgr, ino);
    if (vol == NULL) {
        ret = -ENOENT;
        goto out;
    }
    if (!rdonly && vd_volume_readonly(vol)) {
        ret = -EROFS;
        goto out;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    ret = vd_volume_open_file(vol);
    if (ret < 0) {
        goto out;
    }
    h->vol = vol;
    vol = NULL;
    atomic_init(&h->dirty, false);
    pthread_mutex_lock(&fx->handles_lock);
    h->next = fx->handles.next;
    h->prev = &fx->handles;
    h->next->prev = h;
    fx->handles.next = h;
    pthread_mutex_unlock(&fx->handles_lock);

    fi->fh = (uintptr_t)h;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    fi->noflush = rdonly;
    if (fuse_reply_open(req, fi) == -ENOENT) {
        /* The open was interrupted: the kernel will never release it. */
        handle_free(fx, h);
    }
    fx_leave(fx);
    return;

out:
    free(h);
    vd_volume_unref(vol);
    fx_leave(fx);
    fuse_reply_err(req, -ret);
}

static void fx_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    if (fx_enter(fx)) {
        handle_free(fx, h);
        fx_leave(fx);
    }
    fuse_reply_err(req, 0);
}

static void fx_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    uint64_t vsize;
    void *buf;
    int ret;

    if (!fx_enter(fx)) {
        fuse_reply_err(req, EIO);
        return;
    }
    vsize = vd_volume_size(h->vol);
    if (off < 0 || (uint64_t)off >= vsize || size == 0) {
        fx_leave(fx);
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > vsize - (uint64_t)off) {
        size = (size_t)(vsize - (uint64_t)off);
    }
    buf = thread_buf(size);
    if (buf == NULL) {
        fx_leave(fx);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ret = vd_volume_pread(h->vol, buf, size, (uint64_t)off);
    fx_leave(fx);
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_buf(req, buf, size);
    }
}

static void fx_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                     size_t size, off_t off, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    uint64_t vsize;
    int ret;

    if (size == 0) {
        fuse_reply_write(req, 0);
        return;
    }
    if (!fx_enter(fx)) {
        fuse_reply_err(req, EIO);
        return;
    }
    vsize = vd_volume_size(h->vol);
    if (off < 0 || (uint64_t)off >= vsize) {
        fx_leave(fx);
        fuse_reply_err(req, off < 0 ? EINVAL : ENOSPC);
        return;
    }
    if (size > vsize - (uint64_t)off) {
        size = (size_t)(vsize - (uint64_t)off);   /* short, like a disk */
    }
    atomic_store(&h->dirty, true);
    ret = vd_volume_pwrite(h->vol, buf, size, (uint64_t)off);
    fx_leave(fx);
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_write(req, size);
    }
}

/* Flush the volume, keeping the handle dirty if that fails. */
static int handle_flush(struct vd_fuse_handle *h, bool always)
{
    int ret;
    if (!atomic_exchange(&h->dirty, false) && !always) {
        return 0;
    }
    ret = vd_volume_flush(h->vol);
    if (ret < 0) {
        atomic_store(&h->dirty, true);
    }
    return ret;
}

static void fx_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    int ret = -EIO;
    if (fx_enter(fx)) {
        ret = handle_flush(h, false);
        fx_leave(fx);
    }
    fuse_reply_err(req, -ret);
}

static void fx_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    int ret = -EIO;
    if (fx_enter(fx)) {
        ret = handle_flush(h, true);
        fx_leave(fx);
    }
    fuse_reply_err(req, -ret);
}

static void fx_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0);   /* the directory has no state of its own */
}

static void fx_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
                         off_t len, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    const int known =
        FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
    uint64_t vsize, end;
    int ret = 0;

    if (off < 0 || len <= 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (mode & ~known) {
        fuse_reply_err(req, EOPNOTSUPP);   /* collapse, insert, unshare */
        return;
    }
    if (!fx_enter(fx)) {
        fuse_reply_err(req, EIO);
        return;
    }
    vsize = vd_volume_size(h->vol);
    end = (uint64_t)off + (uint64_t)len;
    if (end > vsize && !(mode & FALLOC_FL_KEEP_SIZE)) {
        ret = -EFBIG;   /* would grow the file: resize is an API call */
        goto out;
    }
    if (end > vsize) {
        end = vsize;
    }
    if ((uint64_t)off >= end) {
        goto out;
    }
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        /* A punched hole must read back as zeroes; when the volume cannot
         * discard, zero the range instead. */
        ret = vd_volume_discard(h->vol, (uint64_t)off, end - (uint64_t)off);
        if (ret == -ENOTSUP) {
            ret = vd_volume_write_zeroes(h->vol, (uint64_t)off,
                                         end - (uint64_t)off);
        }
        atomic_store(&h->dirty, true);
    } else if (mode & FALLOC_FL_ZERO_RANGE) {
        ret = vd_volume_write_zeroes(h->vol, (uint64_t)off,
                                     end - (uint64_t)off);
        atomic_store(&h->dirty, true);
    }
    /* mode 0 / KEEP_SIZE inside the volume: the space is the volume's
     * already, nothing to do. */
out:
    fx_leave(fx);
    fuse_reply_err(req, -ret);
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
                   (off_t)(ino + FX_DIR_OFF)) ? 0 : 1;
}

static void fx_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct readdir_ctx c = {.req = req, .size = size};

    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    c.buf = thread_buf(size);
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

struct statfs_ctx {
    uint64_t bytes;
    uint64_t files;
};

static int statfs_cb(void *arg, struct vd_volume *vol)
{
    struct statfs_ctx *c = arg;
    c->bytes += vd_volume_size(vol);
    c->files++;
    return 0;
}

static void fx_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct statfs_ctx c = {0};
    struct statvfs sv;

    if (fx_enter(fx)) {
        vd_volmgr_foreach(fx->mgr, 0, statfs_cb, &c);
        fx_leave(fx);
    }
    /* The volumes fill the file system: no file can grow or be added
     * through it. */
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = FX_BLKSIZE;
    sv.f_frsize = FX_BLKSIZE;
    sv.f_blocks = (fsblkcnt_t)((c.bytes + FX_BLKSIZE - 1) / FX_BLKSIZE);
    sv.f_files = (fsfilcnt_t)(c.files + 1);
    sv.f_namemax = VD_NAME_MAX;
    fuse_reply_statfs(req, &sv);
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
    .write = fx_write,
    .flush = fx_flush,
    .fsync = fx_fsync,
    .readdir = fx_readdir,
    .fsyncdir = fx_fsyncdir,
    .statfs = fx_statfs,
    .fallocate = fx_fallocate,
};
