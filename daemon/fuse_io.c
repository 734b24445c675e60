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
 *    a write across it is cut short; fallocate may punch or zero inside the
 *    volume but never grow it (EFBIG).
 * 3. FUSE sends FLUSH on every close(). It reaches the volume's flush only
 *    if that open wrote since its last flush or fsync, and read-only opens
 *    ask the kernel not to send it at all (noflush). fsync always flushes.
 * 4. Every open is on fx->handles until released, so stop can release the
 *    ones the kernel never will (clients still holding files).
 * 5. Reads land in a per-thread aligned buffer that grows to the largest
 *    request seen, so the data path does not allocate per request. Write
 *    payloads sit 80 bytes into libfuse's receive buffer; sector-aligned
 *    ones are copied into that buffer too, because images opened with
 *    O_DIRECT would otherwise bounce them through a fresh allocation.
 *    With --cache host nothing is opened O_DIRECT and the payload is
 *    used in place.
 * 6. Reads and writes up to FX_AIO_MAX go to the volume asynchronously
 *    (vd_volume_submit): the worker returns to the kernel for the next
 *    request at once and the driver's completion answers this one, so a
 *    few workers keep many I/Os in flight. Each such request carries an
 *    aligned buffer from a small pool; a write's payload is copied into
 *    it, since libfuse reuses its receive buffer once the handler
 *    returns. Requests the driver cannot start without blocking
 *    (-EAGAIN) run on the worker from that same buffer, and so does a
 *    request that finds no other read or write in progress (io_busy):
 *    at queue depth 1 the hand-over to the I/O thread would only add a
 *    wake-up to the latency. Larger requests
 *    keep the blocking path of note 5: they are few, and copying them
 *    would cost more than the waiting. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse-int.h"
#include "volume.h"

#define FX_BUF_MIN (128 * 1024)
#define FX_BUF_ALIGN 4096
#define FX_AIO_MAX (128 * 1024)   /* larger requests block a worker */
#define FX_POOL_MAX 128           /* idle request buffers kept */

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
    return fuse_reply_iov(req, &iov, 1);
}

void vd_fuse_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

    if (reply_open(req, h, rdonly) == -ENOENT) {
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

void vd_fuse_release(fuse_req_t req, fuse_ino_t ino,
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

/* ---- asynchronous reads and writes (note 6) ---------------------------- */

struct fx_aio {
    struct vd_volume_aio va;
    fuse_req_t req;             /* NULL: answer `unique` directly */
    uint64_t unique;
    struct vd_fuse_handle *h;   /* flushes: dirty again if it fails */
    struct vd_fuse_export *fx;
    struct fx_aio *next_free;   /* pool list */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fx_aio *pool;
static unsigned pool_len;

static void *aio_buf(struct fx_aio *a)
{
    return (char *)a + FX_BUF_ALIGN;
}

static struct fx_aio *aio_get(void)
{
    struct fx_aio *a;
    void *p = NULL;
    pthread_mutex_lock(&pool_lock);
    a = pool;
    if (a != NULL) {
        pool = a->next_free;
        pool_len--;
    }
    pthread_mutex_unlock(&pool_lock);
    if (a == NULL &&
        posix_memalign(&p, FX_BUF_ALIGN, FX_BUF_ALIGN + FX_AIO_MAX) == 0) {
        a = p;
    }
    return a;
}

static void aio_put(struct fx_aio *a)
{
    pthread_mutex_lock(&pool_lock);
    if (pool_len < FX_POOL_MAX) {
        a->next_free = pool;
        pool = a;
        pool_len++;
        a = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    free(a);
}

/* Answer request `unique` on the session's descriptor without libfuse's
 * request object (fuse_loop.c's fast path). A failed write means the
 * kernel no longer waits for the answer (connection gone, request
 * interrupted); there is nobody else to tell. */
static void reply_raw(struct vd_fuse_export *fx, uint64_t unique, int ret,
                      const void *data, size_t len)
{
    struct fuse_out_header oh = {.unique = unique};
    struct iovec iov[2] = {{&oh, sizeof(oh)}, {(void *)data, len}};
    int n = 1;
    if (ret < 0) {
        oh.error = ret;
    } else if (len > 0) {
        n = 2;
    }
    oh.len = (uint32_t)(sizeof(oh) + (n == 2 ? len : 0));
    (void)!writev(fuse_session_fd(fx->se), iov, n);
}

static void aio_done(struct vd_volume_aio *va, int ret)
{
    struct fx_aio *a = (struct fx_aio *)va;
    if (va->aio.op == VD_AIO_FLUSH) {
        if (ret < 0) {
            atomic_store(&a->h->dirty, true);
        }
        reply_raw(a->fx, a->unique, ret, NULL, 0);
    } else if (a->req == NULL) {
        struct fuse_write_out wo = {.size = (uint32_t)va->aio.len};
        bool rd = va->aio.op == VD_AIO_READ;
        reply_raw(a->fx, a->unique, ret, rd ? aio_buf(a) : (void *)&wo,
                  rd ? va->aio.len : sizeof(wo));
    } else if (ret < 0) {
        fuse_reply_err(a->req, -ret);
    } else if (va->aio.op == VD_AIO_READ) {
        fuse_reply_buf(a->req, aio_buf(a), va->aio.len);
    } else {
        fuse_reply_write(a->req, va->aio.len);
    }
    atomic_fetch_sub(&a->fx->io_busy, 1);
    fx_leave(a->fx);
    aio_put(a);
}

/* Start a read, or a write of bufv's payload, of size bytes (already
 * clamped to the volume) without waiting for it. true when the request
 * has been or will be answered (fx left then); false when it must take
 * the blocking path, fx still entered. */
static bool try_async(fuse_req_t req, struct vd_fuse_export *fx,
                      struct vd_fuse_handle *h, struct fuse_bufvec *bufv,
                      size_t size, off_t off)
{
    struct fx_aio *a;
    int ret;
    if (size > FX_AIO_MAX || (a = aio_get()) == NULL) {
        return false;
    }
    a->va.aio = (struct vd_aio){.op = bufv != NULL ? VD_AIO_WRITE : VD_AIO_READ,
                                .buf = aio_buf(a),
                                .len = size,
                                .off = (uint64_t)off};
    a->va.done = aio_done;
    a->req = req;
    a->fx = fx;
    if (bufv != NULL) {
        struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
        dst.buf[0].mem = aio_buf(a);
        if (fuse_buf_copy(&dst, bufv, 0) != (ssize_t)size) {
            aio_put(a);
            return false;
        }
    }
    /* Alone, the request is quickest done right here: handing it to the
     * I/O thread would add a wake-up to its latency (note 6). */
    ret = atomic_fetch_add(&fx->io_busy, 1) == 0
              ? -EAGAIN : vd_volume_submit(h->vol, &a->va);
    if (ret == -EAGAIN) {
        /* Not for the fast path (allocation, a cache miss, ...): run it
         * here, blocking, from the copy already made. */
        ret = bufv != NULL ? vd_volume_pwrite(h->vol, aio_buf(a), size,
                                              (uint64_t)off)
                           : vd_volume_pread(h->vol, aio_buf(a), size,
                                             (uint64_t)off);
        if (ret == 0) {
            aio_done(&a->va, 0);
            return true;
        }
    }
    if (ret < 0) {
        atomic_fetch_sub(&fx->io_busy, 1);
        aio_put(a);
        fx_leave(fx);
        fuse_reply_err(req, -ret);
    }
    return true;
}

bool vd_fuse_fast_io(struct vd_fuse_export *fx, uint64_t unique,
                     uint64_t fh, const void *payload, size_t size,
                     off_t off)
{
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fh;
    struct fx_aio *a = NULL;
    uint64_t vsize;

    if (size == 0 || size > FX_AIO_MAX || off < 0 || !fx_enter(fx)) {
        return false;
    }
    vsize = vd_volume_size(h->vol);
    if ((uint64_t)off >= vsize) {
        goto slow;   /* EOF or ENOSPC: answered by the handlers */
    }
    if (size > vsize - (uint64_t)off) {
        if (payload != NULL) {
            goto slow;   /* a short write */
        }
        size = (size_t)(vsize - (uint64_t)off);
    }
    if ((a = aio_get()) == NULL) {
        goto slow;
    }
    a->va.aio = (struct vd_aio){.op = payload != NULL ? VD_AIO_WRITE
                                                      : VD_AIO_READ,
                                .buf = aio_buf(a),
                                .len = size,
                                .off = (uint64_t)off};
    a->va.done = aio_done;
    a->req = NULL;
    a->unique = unique;
    a->fx = fx;
    if (payload != NULL) {
        memcpy(aio_buf(a), payload, size);
        atomic_store(&h->dirty, true);
    }
    atomic_fetch_add(&fx->io_busy, 1);
    if (vd_volume_submit_nowait(h->vol, &a->va) == 0) {
        return true;
    }
    atomic_fetch_sub(&fx->io_busy, 1);
slow:
    if (a != NULL) {
        aio_put(a);
    }
    fx_leave(fx);
    return false;
}

bool vd_fuse_fast_fsync(struct vd_fuse_export *fx, uint64_t unique,
                        uint64_t fh)
{
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fh;
    struct fx_aio *a;
    bool was_dirty;

    if (!fx_enter(fx)) {
        return false;
    }
    if ((a = aio_get()) == NULL) {
        fx_leave(fx);
        return false;
    }
    a->va.aio = (struct vd_aio){.op = VD_AIO_FLUSH};
    a->va.done = aio_done;
    a->req = NULL;
    a->unique = unique;
    a->h = h;
    a->fx = fx;
    was_dirty = atomic_exchange(&h->dirty, false);
    atomic_fetch_add(&fx->io_busy, 1);
    if (vd_volume_submit_nowait(h->vol, &a->va) == 0) {
        return true;
    }
    atomic_fetch_sub(&fx->io_busy, 1);
    if (was_dirty) {
        atomic_store(&h->dirty, true);
    }
    aio_put(a);
    fx_leave(fx);
    return false;
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
        if (try_async(req, fx, h, NULL, size, off)) {
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

void vd_fuse_write_buf(fuse_req_t req, fuse_ino_t ino,
                         struct fuse_bufvec *bufv, off_t off,
                         struct fuse_file_info *fi)
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
        size = (size_t)(vsize - (uint64_t)off);   /* short, like a disk */
    }
    atomic_store(&h->dirty, true);
    if (try_async(req, fx, h, bufv, size, off)) {
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
