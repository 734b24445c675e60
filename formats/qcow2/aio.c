/* aio.c — the asynchronous data path of the qcow2 driver: reads of
 * allocated or zero clusters and overwrites of clusters this image owns
 * (QCOW_OFLAG_COPIED), mapped under the lock and sent to the host file
 * through io_uring (formats/hostaio.h). Everything else — allocation,
 * copy-on-write, compressed clusters, backing files — answers -EAGAIN and
 * takes the synchronous path in qcow2.c.
 *
 * DESIGN NOTES
 * 1. The mapping is looked up exactly as the synchronous path does (DESIGN
 *    NOTES 8 and 9 in qcow2.c), so an asynchronous request sees the same
 *    tables a blocking one would at that moment.
 * 2. A blocking request holds io_barrier shared for its whole duration;
 *    an asynchronous one cannot (the lock would be released by another
 *    thread). It holds the barrier only while it looks up and submits
 *    (tryrdlock: if a drain is waiting, it falls back and queues behind
 *    it), and counts itself in aio_inflight until it completes.
 *    q2_barrier_drain takes the barrier exclusively, so no new request can
 *    start, and then waits for that count to reach zero: the guarantee of
 *    qcow2.c DESIGN NOTES 10 (no freed cluster is reused under an I/O)
 *    holds for both paths. The completions it waits for run on the I/O thread,
 * so a drain there would wait for itself: it asserts it is not there, and the
 * I/O thread flushes only through flush_nowait (qcow2.c).
 * 3. At most MAX_SEGS host ranges per request; a request spread wider is
 *    rare and takes the synchronous path. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hostaio.h"
#include "image.h"
#include "ioloop.h"
#include "qcow2-int.h"
#include "vd_assert.h"

#define MAX_SEGS 16

struct seg {
    bool host; /* read or write at host_off; else zero-fill buf */
    uint64_t host_off;
    uint8_t *buf;
    uint64_t len;
};

/* Map [off, off+len) into segs; -EAGAIN when some part needs the
 * synchronous path. Caller holds lock. */
static int map_locked(struct q2_state *s, bool write, uint8_t *buf,
                      uint64_t len, uint64_t off, struct seg *segs,
                      unsigned *nsegs)
{
    unsigned n = 0;
    VD_ASSERT_HELD(&s->lock);
    if (write && s->broken) {
        return -EAGAIN; /* the blocking path reports it */
    }
    while (len > 0) {
        struct q2_map m;
        uint64_t run, host = 0;
        bool data;
        int ret = q2_get_mapping(s, off, len, &m, &run);
        if (ret < 0) {
            return -EAGAIN;
        }
        if (m.type == Q2_NORMAL) {
            host = m.host + (off & (s->cluster_size - 1));
            if (write && (!m.copied || q2_overlaps_metadata(s, host, run))) {
                return -EAGAIN;
            }
            data = true;
        } else if (!write &&
                   (m.type == Q2_ZERO_PLAIN || m.type == Q2_ZERO_ALLOC ||
                    (m.type == Q2_UNALLOCATED && s->backing == NULL))) {
            data = false;
        } else {
            return -EAGAIN;
        }
        if (n > 0 && segs[n - 1].host == data &&
            (!data || segs[n - 1].host_off + segs[n - 1].len == host)) {
            segs[n - 1].len += run; /* contiguous with the last one */
        } else if (n == MAX_SEGS) {
            return -EAGAIN;
        } else {
            segs[n++] = (struct seg){
                .host = data, .host_off = host, .buf = buf, .len = run};
        }
        buf += run;
        off += run;
        len -= run;
    }
    *nsegs = n;
    return 0;
}

static void aio_fin(struct vd_hostio_batch *b, int ret)
{
    struct q2_state *s = b->arg;
    (void)ret;
    if (atomic_fetch_sub(&s->aio_inflight, 1) == 1 &&
        atomic_load(&s->aio_draining)) {
        pthread_mutex_lock(&s->aio_lock);
        pthread_cond_broadcast(&s->aio_cond);
        pthread_mutex_unlock(&s->aio_lock);
    }
}

int q2_submit(struct vd_image *img, struct vd_aio *aio)
{
    struct q2_state *s = img->opaque;
    bool write = aio->op == VD_AIO_WRITE;
    struct seg segs[MAX_SEGS];
    struct vd_hostio_batch *b;
    unsigned n = 0, i;
    int ret;

    if (aio->op == VD_AIO_FLUSH || s->loop == NULL) {
        return -EAGAIN; /* flush: write-back and fdatasync block */
    }
    if (pthread_rwlock_tryrdlock(&s->io_barrier) != 0) {
        return -EAGAIN; /* a drain is waiting (note 2) */
    }
    pthread_mutex_lock(&s->lock);
    ret = map_locked(s, write, aio->buf, aio->len, aio->off, segs, &n);
    pthread_mutex_unlock(&s->lock);
    b = ret == 0 ? vd_hostio_batch_new(aio, n) : NULL;
    if (b == NULL) {
        pthread_rwlock_unlock(&s->io_barrier);
        return -EAGAIN;
    }
    b->fin = aio_fin;
    b->arg = s;
    for (i = 0; i < n; i++) {
        if (!segs[i].host) {
            memset(segs[i].buf, 0, segs[i].len);
            continue;
        }
        if (!vd_hostio_suits(&s->hf, segs[i].buf, segs[i].len,
                             segs[i].host_off)) {
            break;
        }
        b->io[b->n++] = (struct vd_hostio){.hf = &s->hf,
                                           .write = write,
                                           .buf = segs[i].buf,
                                           .len = segs[i].len,
                                           .off = segs[i].host_off};
    }
    if (i < n) {
        ret = -EAGAIN;
    } else {
        atomic_fetch_add(&s->aio_inflight, 1);
        ret = vd_hostio_batch_submit(s->loop, b);
        if (ret < 0) {
            atomic_fetch_sub(&s->aio_inflight, 1);
        }
    }
    pthread_rwlock_unlock(&s->io_barrier);
    if (ret < 0) {
        vd_hostio_batch_free(b);
    }
    return ret;
}

void q2_barrier_drain(struct q2_state *s)
{
    VD_ASSERT_NOT_HELD(&s->lock); /* lock order: io_barrier, then lock */
    /* The I/O thread completes what this waits for (note 2). */
    VD_ASSERT(vd_ioloop_may_wait());
    pthread_rwlock_wrlock(&s->io_barrier);
    atomic_store(&s->aio_draining, true);
    pthread_mutex_lock(&s->aio_lock);
    while (atomic_load(&s->aio_inflight) > 0) {
        pthread_cond_wait(&s->aio_cond, &s->aio_lock);
    }
    pthread_mutex_unlock(&s->aio_lock);
    atomic_store(&s->aio_draining, false);
}

void q2_barrier_release(struct q2_state *s)
{
    pthread_rwlock_unlock(&s->io_barrier);
}
