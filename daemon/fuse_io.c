/* fuse_io.c — the data path of the FUSE export: opening and releasing a
 * volume's file, and read, write, flush, fsync and fallocate on it, each
 * mapped to one call on the volume (daemon/volume.h).
 *
 * DESIGN NOTES
 * 1. Files are opened direct_io with keep_cache off: no kernel page cache
 *    sits under cache=none clients, and every read and write reaches the
 *    volume's I/O gate, which is what makes snapshots consistent. They are
 *    also opened for parallel direct writes: without it the kernel holds
 *    the inode lock across each synchronous write, one at a time per file.
 * 2. A volume file behaves like a block device of fixed size: reads stop
 *    at the end (0 at EOF), writes at or past the end fail with ENOSPC and
 *    a write across it is cut short. fallocate may punch or zero inside the
 *    volume; without FALLOC_FL_KEEP_SIZE, a range past the end grows the
 *    volume to the range's end under truncate's rules (fuse_names.c note
 *    3), as fallocate grows any file: libvirt's allocation (vol-resize
 *    --allocate, vol-create-as and vol-clone with an allocation above the
 *    capacity) and QEMU's preallocation=falloc size files that way. With
 *    KEEP_SIZE the part past the end is ignored.
 * 3. FUSE sends FLUSH on every close(). It reaches the volume's flush only
 *    if that open wrote since its last flush or fsync, and read-only opens
 *    ask the kernel not to send it at all (noflush). fsync always flushes.
 * 4. Every open is on fx->handles until released, so stop can release the
 *    ones the kernel never will (clients still holding files).
 * 5. Reads land in a per-thread aligned buffer that grows to the largest
 *    request seen, so the data path does not allocate per request. Write
 *    payloads arrive page aligned from fuse_loop.c's receive buffers and
 *    are used in place; under libfuse's own loop (no io_uring) they sit
 *    80 bytes into its buffer, and sector-aligned ones are copied to the
 *    thread's buffer, because images opened with O_DIRECT would otherwise
 *    bounce them through a fresh allocation.
 *    With --cache host nothing is opened O_DIRECT and the payload is
 *    used in place.
 * 6. Small reads and writes try the asynchronous path first
 *    (fuse_aio.c, vd_fuse_try_async). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse-int.h"
#include "volume.h"

#define FX_BUF_MIN (128 * 1024)

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

void *vd_fuse_thread_buf(size_t len)
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

static void handle_free(struct vd_fuse_export *fx, struct vd_fuse_handle *h)
{
    pthread_mutex_lock(&fx->handles_lock);
    h->prev->next = h->next;
    h->next->prev = h->prev;
    pthread_mutex_unlock(&fx->handles_lock);
    vd_fuse_pt_release(fx, h);
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

/* Answer an open: direct I/O, no cache kept, no FLUSH on close for
 * read-only opens (note 3), and parallel direct writes. libfuse 3.14's
 * fuse_file_info has no bit for the last one (3.15 added it), so the
 * reply is built here from the kernel's ABI (linux/fuse.h); kernels before
 * 6.2 ignore the flag they do not know. */
static int reply_open(fuse_req_t req, struct vd_fuse_handle *h, bool rdonly)
{
    struct fuse_open_out out = {
        .fh = (uintptr_t)h,
        .open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES |
                      (rdonly ? FOPEN_NOFLUSH : 0),
    };
    struct iovec iov = {.iov_base = &out, .iov_len = sizeof(out)};
    vd_fuse_pt_open_out(h, &out);
    return fuse_reply_iov(req, &iov, 1);
}

struct vd_volume *
vd_fuse_enter_volume(fuse_req_t req, struct vd_fuse_export *fx, fuse_ino_t ino)
{
    struct vd_volume *vol;
    if (!fx_enter(fx)) {
        fuse_reply_err(req, ENOENT);
        return NULL;
    }
    vol = vd_volmgr_lookup_ino(fx->mgr, ino);
    if (vol == NULL) {
        fx_leave(fx);
        fuse_reply_err(req, ENOENT);
    }
    return vol;
}

void vd_fuse_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_volume *vol;

    if (ino == FUSE_ROOT_ID) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    vol = vd_fuse_enter_volume(req, fx, ino);
    if (vol == NULL) {
        return;
    }
    vd_fuse_open_volume(req, fx, vol, fi, NULL);
}

void vd_fuse_open_volume(fuse_req_t req, struct vd_fuse_export *fx,
                         struct vd_volume *vol, struct fuse_file_info *fi,
                         const struct fuse_entry_param *created)
{
    struct vd_fuse_handle *h = NULL;
    bool rdonly = (fi->flags & O_ACCMODE) == O_RDONLY;
    int ret;

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
    ret = vd_fuse_pt_open(fx, h, !rdonly);
    if (ret < 0) {
        vd_volume_release_file(h->vol);
        vol = h->vol;
        goto out;
    }
    pthread_mutex_lock(&fx->handles_lock);
    h->next = fx->handles.next;
    h->prev = &fx->handles;
    h->next->prev = h;
    fx->handles.next = h;
    pthread_mutex_unlock(&fx->handles_lock);

    if (created != NULL) {
        /* libfuse 3.14 builds the CREATE reply; it has no bit for
         * parallel direct writes, which only this one handle lacks. */
        fi->fh = (uintptr_t)h;
        fi->direct_io = 1;
        fi->keep_cache = 0;
        fi->noflush = rdonly;
        ret = fuse_reply_create(req, created, fi);
    } else {
        ret = reply_open(req, h, rdonly);
    }
    if (ret == -ENOENT) {
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

void vd_fuse_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    if (fx_enter(fx)) {
        handle_free(fx, h);
        fx_leave(fx);
    }
    fuse_reply_err(req, 0);
}

void vd_fuse_reply_read(fuse_req_t req, struct vd_fuse_export *fx,
                        uint64_t vsize, size_t size, off_t off,
                        vd_fuse_pread_fn pread, void *obj)
{
    void *buf;
    int ret;

    if (off < 0 || (uint64_t)off >= vsize || size == 0) {
        fx_leave(fx);
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > vsize - (uint64_t)off) {
        size = (size_t)(vsize - (uint64_t)off);
    }
    buf = vd_fuse_thread_buf(size);
    ret = buf == NULL ? -ENOMEM : pread(obj, buf, size, (uint64_t)off);
    fx_leave(fx);
    if (ret < 0) {
        fuse_reply_err(req, -ret);
    } else {
        fuse_reply_buf(req, buf, size);
    }
}

static int volume_pread(void *vol, void *buf, size_t len, uint64_t off)
{
    return vd_volume_pread(vol, buf, len, off);
}

void vd_fuse_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                  struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    uint64_t vsize;

    if (!fx_enter(fx)) {
        fuse_reply_err(req, EIO);
        return;
    }
    vsize = vd_volume_size(h->vol);
    if (off >= 0 && (uint64_t)off < vsize && size > 0) {
        if (size > vsize - (uint64_t)off) {
            size = (size_t)(vsize - (uint64_t)off);
        }
        if (vd_fuse_try_async(req, fx, h, NULL, size, off)) {
            return;
        }
    }
    vd_fuse_reply_read(req, fx, vsize, size, off, volume_pread, h->vol);
}

/* Where the payload of a write can be read from: in place when it is
 * aligned, or when it is not a candidate for direct I/O anyway; else copied
 * into the thread's aligned buffer, which spares the image layer an
 * allocation per request to bounce it (note 5). NULL when out of memory. */
static const void *write_payload(struct vd_fuse_export *fx,
                                 struct fuse_bufvec *bufv, size_t size,
                                 off_t off)
{
    const struct fuse_buf *b = &bufv->buf[bufv->idx];
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
    if (bufv->count == 1 && !(b->flags & FUSE_BUF_IS_FD)) {
        const char *p = (const char *)b->mem + bufv->off;
        if (fx->cfg.host_cache || (uintptr_t)p % FX_BUF_ALIGN == 0 ||
            size % 512 != 0 || off % 512 != 0) {
            return p;
        }
    }
    dst.buf[0].mem = vd_fuse_thread_buf(size);
    if (dst.buf[0].mem == NULL ||
        fuse_buf_copy(&dst, bufv, 0) != (ssize_t)size) {
        return NULL;
    }
    return dst.buf[0].mem;
}

void vd_fuse_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
                       off_t off, struct fuse_file_info *fi)
{
    struct vd_fuse_export *fx = req_fx(req);
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fi->fh;
    size_t size = fuse_buf_size(bufv);
    const void *data;
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
        size = (size_t)(vsize - (uint64_t)off); /* short, like a disk */
    }
    atomic_store(&h->dirty, true);
    if (vd_fuse_try_async(req, fx, h, bufv, size, off)) {
        return;
    }
    data = write_payload(fx, bufv, size, off);
    if (data == NULL) {
        fx_leave(fx);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ret = vd_volume_pwrite(h->vol, data, size, (uint64_t)off);
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

void vd_fuse_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

void vd_fuse_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
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

void vd_fuse_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
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
        fuse_reply_err(req, EOPNOTSUPP); /* collapse, insert, unshare */
        return;
    }
    if (!fx_enter(fx)) {
        fuse_reply_err(req, EIO);
        return;
    }
    vsize = vd_volume_size(h->vol);
    end = (uint64_t)off + (uint64_t)len;
    if (end > vsize && !(mode & FALLOC_FL_KEEP_SIZE)) {
        /* Growing the file grows the volume, as truncate does (note 2). */
        struct stat st;
        ret = -vd_fuse_truncate(fx, ino, (off_t)end, &st);
        if (ret < 0) {
            goto out;
        }
        vsize = end;
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
        ret =
            vd_volume_write_zeroes(h->vol, (uint64_t)off, end - (uint64_t)off);
        atomic_store(&h->dirty, true);
    }
    /* mode 0 / KEEP_SIZE inside the volume: the space is the volume's
     * already, nothing to do. */
out:
    fx_leave(fx);
    fuse_reply_err(req, -ret);
}
