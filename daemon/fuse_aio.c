/* fuse_aio.c — reads, writes and fsyncs of volume files that complete
 * asynchronously: from libfuse's handlers (vd_fuse_try_async) and from the
 * session loop's fast path on the I/O thread (vd_fuse_fast_io,
 * vd_fuse_fast_fsync, called by fuse_loop.c).
 *
 * DESIGN NOTES
 * 1. From a libfuse handler (a worker), reads and writes up to FX_AIO_MAX
 *    go to the volume with vd_volume_submit and the worker returns at
 *    once; the completion answers. A write's payload is copied first:
 *    libfuse reuses its receive buffer once the handler returns. Requests
 *    the driver cannot start without blocking (-EAGAIN) run on the worker
 *    from that same buffer, and so does a request that finds no other
 *    read or write in progress (io_busy): at queue depth 1 the hand-over
 *    would only add a wake-up to its latency. Larger requests keep the
 *    blocking path in fuse_io.c.
 * 2. Each request carries a buffer from a small pool of FX_AIO_MAX bytes,
 *    aligned for O_DIRECT, so the data path does not allocate per
 *    request. Requests of the fast path have no libfuse request object:
 *    they are answered by writing the reply to the session's descriptor
 *    with the kernel's request id (reply_raw).
 * 3. A flush of a host file blocks (fdatasync). The fast path runs it on
 *    the I/O thread itself when the driver promises that it needs no
 *    waiting for other requests (vd_volume_flush_nowait: qcow2 with only
 *    data to sync, raw), nothing else is being served and flushes have
 *    taken under FX_FLUSH_INLINE_US on average: a VM that writes and
 *    flushes one request at a time then waits for the disk alone, not
 *    also for a worker to wake. Otherwise the flush goes to the workers,
 *    so a slow disk never stalls the other requests behind it. Only the
 *    driver's promise keeps the I/O thread out of a drain that waits for
 *    its own completions; io_busy is a guess that may be stale at once (a
 *    worker may submit right after it was read) and only decides speed.
 * 4. After a flush is answered, the I/O thread polls at any queue depth
 *    for FX_FLUSH_POLL_NS, going to sleep only after three times its
 *    poll_us without work: a client that flushes one request at a time
 *    (a database's write, fsync, write, ...) sends the next one within a
 *    round trip. A trace of 4k writes with fsync at QD1 showed each
 *    arrival waking a halted vCPU (~40 us); polling then gave 4.5k
 *    against 3.3k IOPS, for about twice the daemon CPU per request. 4k
 *    reads at QD1 got slower with polling (10.7k vs 13.1k), which is why
 *    only flushes turn it on. */
#include "vd_assert.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/fuse.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fuse-int.h"
#include "ioloop.h"
#include "volume.h"

#define FX_POOL_MAX 128           /* idle request buffers kept */
#define FX_FLUSH_INLINE_US 2000   /* note 3 */
#define FX_FLUSH_POLL_NS 2000000u /* note 4 */

struct fx_aio {
    struct vd_volume_aio va;
    fuse_req_t req; /* NULL: answer `unique` directly */
    uint64_t unique;
    struct vd_fuse_handle *h; /* flushes: dirty again if it fails */
    struct vd_fuse_export *fx;
    struct fx_aio *next_free; /* pool list */
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

static void aio_done(struct vd_volume_aio *va, int ret);

/* A flush was answered: poll for the client's next request (note 4). */
static void poll_after_flush(struct vd_fuse_export *fx)
{
    struct vd_ioloop *l = fx->cfg.ioloop;
    uint64_t poll_ns = (uint64_t)vd_ioloop_poll_us(l) * 1000u;
    if (poll_ns > 0) {
        vd_ioloop_poll_until(l, vd_ioloop_now_ns() + FX_FLUSH_POLL_NS,
                             3 * poll_ns);
    }
}

/* A request of op on size bytes at off, answered by aio_done through
 * libfuse (set req) or directly (set unique); NULL when out of memory. */
static struct fx_aio *aio_new(struct vd_fuse_export *fx, enum vd_aio_op op,
                              size_t size, off_t off)
{
    struct fx_aio *a = aio_get();
    if (a != NULL) {
        a->va.aio = (struct vd_aio){
            .op = op, .buf = aio_buf(a), .len = size, .off = (uint64_t)off};
        a->va.done = aio_done;
        a->req = NULL;
        a->unique = 0;
        a->h = NULL;
        a->fx = fx;
    }
    return a;
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
    if (!vd_fuse_uring_reply(fx, iov, n)) {
        (void)!writev(fuse_session_fd(fx->se), iov, n);
    }
}

static void aio_done(struct vd_volume_aio *va, int ret)
{
    struct fx_aio *a = (struct fx_aio *)va;
    if (va->aio.op == VD_AIO_FLUSH) {
        if (ret < 0) {
            atomic_store(&a->h->dirty, true);
        }
        reply_raw(a->fx, a->unique, ret, NULL, 0);
        poll_after_flush(a->fx);
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

/* See fuse-int.h. */
bool vd_fuse_try_async(fuse_req_t req, struct vd_fuse_export *fx,
                       struct vd_fuse_handle *h, struct fuse_bufvec *bufv,
                       size_t size, off_t off)
{
    struct fx_aio *a;
    int ret;
    if (size > FX_AIO_MAX ||
        (a = aio_new(fx, bufv != NULL ? VD_AIO_WRITE : VD_AIO_READ, size,
                     off)) == NULL) {
        return false;
    }
    a->req = req;
    if (bufv != NULL) {
        struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
        dst.buf[0].mem = aio_buf(a);
        if (fuse_buf_copy(&dst, bufv, 0) != (ssize_t)size) {
            aio_put(a);
            return false;
        }
    }
    /* Alone, the request is quickest done right here: handing it to the
     * I/O thread would add a wake-up to its latency (note 1). */
    ret = atomic_fetch_add(&fx->io_busy, 1) == 0
              ? -EAGAIN
              : vd_volume_submit(h->vol, &a->va);
    if (ret == -EAGAIN) {
        /* Not for the fast path (allocation, a cache miss, ...): run it
         * here, blocking, from the copy already made. */
        ret = bufv != NULL
                  ? vd_volume_pwrite(h->vol, aio_buf(a), size, (uint64_t)off)
                  : vd_volume_pread(h->vol, aio_buf(a), size, (uint64_t)off);
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

bool vd_fuse_fast_io(struct vd_fuse_export *fx, uint64_t unique, uint64_t fh,
                     const void *payload, size_t size, off_t off)
{
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fh;
    struct fx_aio *a = NULL;
    uint64_t vsize;

    VD_ASSERT(vd_ioloop_self() == fx->cfg.ioloop);
    if (size == 0 || size > FX_AIO_MAX || off < 0 || !fx_enter(fx)) {
        return false;
    }
    vsize = vd_volume_size(h->vol);
    if ((uint64_t)off >= vsize) {
        goto slow; /* EOF or ENOSPC: answered by the handlers */
    }
    if (size > vsize - (uint64_t)off) {
        if (payload != NULL) {
            goto slow; /* a short write */
        }
        size = (size_t)(vsize - (uint64_t)off);
    }
    a = aio_new(fx, payload != NULL ? VD_AIO_WRITE : VD_AIO_READ, size, off);
    if (a == NULL) {
        goto slow;
    }
    a->unique = unique;
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

/* Whether to try a flush on the I/O thread (note 3): nothing else is
 * being served, and flushes have been quick. Speed only: whether it may
 * run there at all is the driver's to say (flush_inline). Flushes sent to
 * the workers are not timed, so each one refused for slowness lets the
 * average decay by an eighth: after a slow spell, flushes are tried
 * inline again. */
static bool flush_inline_ok(struct vd_fuse_export *fx)
{
    unsigned avg;
    if (atomic_load(&fx->io_busy) != 1) {
        return false;
    }
    avg = atomic_load(&fx->flush_avg_us);
    if (avg < FX_FLUSH_INLINE_US) {
        return true;
    }
    atomic_store(&fx->flush_avg_us, avg - avg / 8);
    return false;
}

/* Flush on this thread if the driver promises it waits for nothing
 * (-EAGAIN otherwise), keeping the running average of flush times. */
static int flush_inline(struct vd_fuse_export *fx, struct vd_volume *vol)
{
    struct timespec t0, t1;
    unsigned us, avg;
    int ret;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ret = vd_volume_flush_nowait(vol);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (ret == -EAGAIN) {
        return ret; /* not timed: nothing was done */
    }
    us = (unsigned)((t1.tv_sec - t0.tv_sec) * 1000000 +
                    (t1.tv_nsec - t0.tv_nsec) / 1000);
    avg = atomic_load(&fx->flush_avg_us);
    atomic_store(&fx->flush_avg_us, (avg * 7 + us) / 8);
    return ret;
}

bool vd_fuse_fast_fsync(struct vd_fuse_export *fx, uint64_t unique, uint64_t fh)
{
    struct vd_fuse_handle *h = (struct vd_fuse_handle *)(uintptr_t)fh;
    struct fx_aio *a;
    bool was_dirty;
    int ret;

    VD_ASSERT(vd_ioloop_self() == fx->cfg.ioloop);
    if (!fx_enter(fx)) {
        return false;
    }
    if ((a = aio_new(fx, VD_AIO_FLUSH, 0, 0)) == NULL) {
        fx_leave(fx);
        return false;
    }
    a->unique = unique;
    a->h = h;
    was_dirty = atomic_exchange(&h->dirty, false);
    atomic_fetch_add(&fx->io_busy, 1);
    ret = vd_volume_submit_nowait(h->vol, &a->va);
    if (ret == -EAGAIN && flush_inline_ok(fx)) {
        ret = flush_inline(fx, h->vol);
        if (ret != -EAGAIN) {
            aio_done(&a->va, ret);
            return true;
        }
    }
    if (ret == 0) {
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
