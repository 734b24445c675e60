/* fuse_loop.c — the FUSE session loop: requests are read from /dev/fuse
 * by the I/O thread of the export's loop (formats/ioloop.h) and small
 * reads and writes of volume files are served there without any other
 * thread waking; every other request goes to a pool of worker threads
 * that run libfuse's handlers (fuse_session_process_buf).
 *
 * DESIGN NOTES
 * 1. Fast requests: READ and WRITE of up to 128 KiB and FSYNC of volume
 *    files. Why not libfuse's multi-threaded loop: there every request wakes a
 *    worker sleeping in read(2), and a profile of 4k random reads showed
 *    half the daemon's CPU in those sleeps and wake-ups. Here the session
 *    descriptor is non-blocking and one read of it at a time sits in the
 *    I/O thread's ring, which waits for it to become readable; the reply
 *    to a fast request is written by the same thread when the disk I/O
 *    completes. One thread receives, maps, submits and answers, and it
 *    sleeps only when there is nothing at all to do.
 * 2. The I/O thread must never block: a fast request that cannot start
 *    at once (the volume's gate closed for a snapshot, a cluster to
 *    allocate, a metadata cache miss, a write running past the end)
 *    goes to the workers like any other request, and they take the
 *    blocking path (fuse_io.c).
 * 3. Receive buffers hold the largest request (max_write + headers) and
 *    are placed so that a WRITE's payload starts page aligned: large
 *    writes handed to the workers reach an O_DIRECT image without being
 *    copied to an aligned buffer first.
 * 4. A buffer handed to the workers is theirs until the handler returns;
 *    the I/O thread reads the next request into another one (a small free
 *    list keeps them). Fast requests copy what they need out of the
 *    buffer, so it is read into again at once.
 * 5. The loop ends when the read fails (the connection is gone: ENODEV)
 *    or when a request arrives after fuse_session_exit; that last request
 *    is still handed to the workers, so stop's wake-up lookup is answered.
 *    Workers finish the queue before they exit. FUSE_INTERRUPT is ignored:
 *    no handler waits long enough to be worth interrupting.
 * 6. Without an I/O loop (io_uring not available), vd_fuse_loop_run
 *    answers VD_FUSE_LOOP_UNAVAILABLE and the caller runs libfuse's loop.
 * 7. With FUSE over io_uring (fuse_uring.c), most requests arrive as ring
 *    completions instead of reads; vd_fuse_loop_deliver gives them the same
 *    fast path and workers. The read of /dev/fuse stays armed throughout:
 *    FORGET and INTERRUPT still come that way, and so does everything when
 *    the kernel refused the ring. */
#include "vd_assert.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <linux/fuse.h>

#include "fuse-int.h"
#include "hostaio.h"
#include "ioloop.h"
#include "log.h"

#define RB_HEAD 4096               /* page holding struct rbuf */
#define RB_LEN ((1u << 20) + 4096) /* max_write + headers */
#define RB_WRITE_HDR                                                           \
    (sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))
#define RB_FREE_MAX 8

struct vd_fuse_loop;

struct rbuf {
    struct vd_hostio io; /* the read into data */
    struct vd_fuse_loop *lp;
    struct rbuf *next; /* free list or work queue */
    size_t len;        /* bytes of the request read */
    uint8_t *data;     /* where the request starts (note 3) */
};

struct vd_fuse_loop {
    struct vd_fuse_export *fx;
    int fd;
    pthread_mutex_t lock;
    pthread_cond_t work_cond; /* workers: queue not empty, or ending */
    pthread_cond_t done_cond; /* run: receiving ended */
    struct rbuf *q_head, *q_tail;
    struct rbuf *free_list;
    unsigned nfree;
    struct rbuf *ring_rb; /* kept for vd_fuse_loop_deliver; I/O thread */
    bool recv_done;
    bool ending;
    int error; /* why receiving ended; 0 = normally */
};

static struct rbuf *rbuf_get(struct vd_fuse_loop *lp)
{
    struct rbuf *rb;
    void *p = NULL;
    pthread_mutex_lock(&lp->lock);
    rb = lp->free_list;
    if (rb != NULL) {
        lp->free_list = rb->next;
        lp->nfree--;
    }
    pthread_mutex_unlock(&lp->lock);
    if (rb != NULL) {
        return rb;
    }
    /* data + RB_WRITE_HDR must be page aligned; RB_HEAD holds the struct */
    if (posix_memalign(&p, 4096, RB_HEAD + 4096 + RB_LEN) != 0) {
        return NULL;
    }
    rb = p;
    rb->lp = lp;
    rb->data = (uint8_t *)p + RB_HEAD + 4096 - RB_WRITE_HDR;
    return rb;
}

static void rbuf_put(struct vd_fuse_loop *lp, struct rbuf *rb)
{
    pthread_mutex_lock(&lp->lock);
    if (lp->nfree < RB_FREE_MAX) {
        rb->next = lp->free_list;
        lp->free_list = rb;
        lp->nfree++;
        rb = NULL;
    }
    pthread_mutex_unlock(&lp->lock);
    free(rb);
}

static void end_receiving(struct vd_fuse_loop *lp, int error)
{
    pthread_mutex_lock(&lp->lock);
    lp->recv_done = true;
    lp->error = error;
    pthread_cond_broadcast(&lp->done_cond);
    pthread_mutex_unlock(&lp->lock);
}

static void on_request(struct vd_hostio *io, int res);

static int arm(struct vd_fuse_loop *lp, struct rbuf *rb)
{
    rb->io = (struct vd_hostio){
        .fd = lp->fd, .buf = rb->data, .len = RB_LEN, .cb = on_request};
    return vd_ioloop_read_fd(lp->fx->cfg.ioloop, &rb->io);
}

/* Serve a READ, WRITE or FSYNC of a volume file on this thread, if it can start
 * without blocking (note 2). true when answered or in flight. */
static bool fast_path(struct vd_fuse_loop *lp, struct rbuf *rb)
{
    const struct fuse_in_header *in = (const void *)rb->data;
    if (rb->len < sizeof(*in) || in->nodeid == FUSE_ROOT_ID ||
        vd_fuse_snap_ino(in->nodeid)) {
        return false;
    }
    if (in->opcode == FUSE_READ &&
        rb->len >= sizeof(*in) + sizeof(struct fuse_read_in)) {
        const struct fuse_read_in *ri = (const void *)(in + 1);
        return vd_fuse_fast_io(lp->fx, in->unique, ri->fh, NULL, ri->size,
                               (off_t)ri->offset);
    }
    if (in->opcode == FUSE_FSYNC &&
        rb->len >= sizeof(*in) + sizeof(struct fuse_fsync_in)) {
        const struct fuse_fsync_in *fi = (const void *)(in + 1);
        return vd_fuse_fast_fsync(lp->fx, in->unique, fi->fh);
    }
    if (in->opcode == FUSE_WRITE && rb->len >= RB_WRITE_HDR) {
        const struct fuse_write_in *wi = (const void *)(in + 1);
        if (rb->len - RB_WRITE_HDR < wi->size) {
            return false; /* malformed: let libfuse answer it */
        }
        return vd_fuse_fast_io(lp->fx, in->unique, wi->fh,
                               rb->data + RB_WRITE_HDR, wi->size,
                               (off_t)wi->offset);
    }
    return false;
}

/* Hand rb to the workers. */
static void enqueue(struct vd_fuse_loop *lp, struct rbuf *rb)
{
    pthread_mutex_lock(&lp->lock);
    rb->next = NULL;
    if (lp->q_tail != NULL) {
        lp->q_tail->next = rb;
    } else {
        lp->q_head = rb;
    }
    lp->q_tail = rb;
    pthread_cond_signal(&lp->work_cond);
    pthread_mutex_unlock(&lp->lock);
}

bool vd_fuse_loop_deliver(struct vd_fuse_loop *lp, const struct iovec *parts,
                          int n)
{
    struct rbuf *rb = lp->ring_rb != NULL ? lp->ring_rb : rbuf_get(lp);
    size_t len = 0;

    VD_ASSERT(vd_ioloop_self() == lp->fx->cfg.ioloop);
    lp->ring_rb = NULL;
    if (rb == NULL) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (parts[i].iov_len > RB_LEN - len) {
            rbuf_put(lp, rb);
            return false;
        }
        memcpy(rb->data + len, parts[i].iov_base, parts[i].iov_len);
        len += parts[i].iov_len;
    }
    rb->len = len;
    if (!fuse_session_exited(lp->fx->se) && fast_path(lp, rb)) {
        lp->ring_rb = rb; /* nothing kept from it (note 4) */
    } else {
        enqueue(lp, rb);
    }
    return true;
}

/* Runs on the I/O thread for every read of /dev/fuse that completes. */
static void on_request(struct vd_hostio *io, int res)
{
    struct rbuf *rb = (struct rbuf *)io;
    struct vd_fuse_loop *lp = rb->lp;
    const struct fuse_in_header *in = (const void *)rb->data;
    struct rbuf *next;
    bool exited;

    VD_ASSERT(vd_ioloop_self() == lp->fx->cfg.ioloop);
    if (res == -EINTR || res == -EAGAIN) {
        if (arm(lp, rb) < 0) {
            rbuf_put(lp, rb);
            end_receiving(lp, -EIO);
        }
        return;
    }
    if (res <= 0) {
        rbuf_put(lp, rb);
        end_receiving(lp, res == 0 || res == -ENODEV ? 0 : res);
        return;
    }
    rb->len = (size_t)res;
    if (rb->len >= sizeof(*in) && in->opcode == FUSE_INIT) {
        vd_fuse_uring_init_request(lp->fx, rb->data, rb->len);
    }
    exited = fuse_session_exited(lp->fx->se);
    if (!exited && (fast_path(lp, rb) ||
                    (rb->len >= sizeof(*in) && in->opcode == FUSE_INTERRUPT))) {
        next = rb; /* nothing kept from it (note 4) */
    } else {
        next = exited ? NULL : rbuf_get(lp);
        enqueue(lp, rb);
        if (exited) {
            end_receiving(lp, 0);
            return;
        }
    }
    if (next == NULL || arm(lp, next) < 0) {
        vd_err("FUSE: cannot receive more requests (out of memory)");
        if (next != NULL) {
            rbuf_put(lp, next);
        }
        end_receiving(lp, -ENOMEM);
    }
}

static void *worker_main(void *arg)
{
    struct vd_fuse_loop *lp = arg;
    pthread_mutex_lock(&lp->lock);
    for (;;) {
        struct rbuf *rb;
        while (lp->q_head == NULL && !lp->ending) {
            pthread_cond_wait(&lp->work_cond, &lp->lock);
        }
        rb = lp->q_head;
        if (rb == NULL) {
            break; /* ending, and the queue is empty */
        }
        lp->q_head = rb->next;
        if (lp->q_head == NULL) {
            lp->q_tail = NULL;
        }
        pthread_mutex_unlock(&lp->lock);
        {
            struct fuse_buf fb = {.size = rb->len, .mem = rb->data};
            fuse_session_process_buf(lp->fx->se, &fb);
        }
        rbuf_put(lp, rb);
        pthread_mutex_lock(&lp->lock);
    }
    pthread_mutex_unlock(&lp->lock);
    return NULL;
}

int vd_fuse_loop_run(struct vd_fuse_export *fx)
{
    struct vd_fuse_loop lp = {.fx = fx, .fd = fuse_session_fd(fx->se)};
    int nthreads = fx->cfg.threads, started = 0, flags, ret;
    pthread_t *workers = calloc((size_t)nthreads, sizeof(*workers));
    struct rbuf *rb;

    flags = fcntl(lp.fd, F_GETFL);
    if (workers == NULL || fx->cfg.ioloop == NULL || flags < 0 ||
        fcntl(lp.fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        free(workers);
        return VD_FUSE_LOOP_UNAVAILABLE;
    }
    pthread_mutex_init(&lp.lock, NULL);
    pthread_cond_init(&lp.work_cond, NULL);
    pthread_cond_init(&lp.done_cond, NULL);
    while (started < nthreads &&
           pthread_create(&workers[started], NULL, worker_main, &lp) == 0) {
        started++;
    }
    vd_fuse_uring_attach(fx, &lp);
    rb = started > 0 ? rbuf_get(&lp) : NULL;
    ret = rb != NULL ? arm(&lp, rb) : -ENOMEM;
    if (ret < 0) {
        if (rb != NULL) {
            rbuf_put(&lp, rb);
        }
        end_receiving(&lp, 0);
        fcntl(lp.fd, F_SETFL, flags); /* libfuse's loop blocks in read */
    }
    pthread_mutex_lock(&lp.lock);
    while (!lp.recv_done) {
        pthread_cond_wait(&lp.done_cond, &lp.lock);
    }
    pthread_mutex_unlock(&lp.lock);
    /* Nothing comes through the ring any more once this returns, so the
     * workers may end when the queue is empty. */
    vd_fuse_uring_attach(fx, NULL);
    pthread_mutex_lock(&lp.lock);
    lp.ending = true;
    pthread_cond_broadcast(&lp.work_cond);
    pthread_mutex_unlock(&lp.lock);
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i], NULL);
    }
    free(workers);
    free(lp.ring_rb);
    while ((rb = lp.free_list) != NULL) {
        lp.free_list = rb->next;
        free(rb);
    }
    pthread_cond_destroy(&lp.done_cond);
    pthread_cond_destroy(&lp.work_cond);
    pthread_mutex_destroy(&lp.lock);
    return ret < 0 ? VD_FUSE_LOOP_UNAVAILABLE : lp.error;
}
