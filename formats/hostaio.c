/* hostaio.c — batches of host file I/O run by an I/O loop (hostaio.h).
 *
 * Only requests the O_DIRECT descriptor can take as they are go to it;
 * unaligned ones are refused with -EAGAIN and take the synchronous path,
 * which bounces them. Files opened without O_DIRECT use the buffered
 * descriptor for everything. */
#include "hostaio.h"

#include <errno.h>
#include <stdlib.h>

#include "fault.h"
#include "ioloop.h"
#include "vd_driver.h"

bool vd_hostio_suits(const struct vd_hostfile *hf, const void *buf, size_t len,
                     uint64_t off)
{
    if (len > UINT32_MAX) {
        return false;
    }
    return hf->dfd < 0 ||
           (off % hf->off_align == 0 && len % hf->off_align == 0 &&
            (uintptr_t)buf % hf->mem_align == 0);
}

/* Pick the descriptor for io and reset its progress; -EAGAIN when it does
 * not suit asynchronous I/O. */
static int prepare(struct vd_hostio *io)
{
    if (!vd_hostio_suits(io->hf, io->buf, io->len, io->off)) {
        return -EAGAIN;
    }
    io->fd = io->hf->dfd >= 0 ? io->hf->dfd : io->hf->fd;
    io->done = 0;
    io->kind = VD_HOSTIO_FILE;
    return 0;
}

struct vd_hostio_batch *vd_hostio_batch_new(struct vd_aio *aio, unsigned max)
{
    struct vd_hostio_batch *b =
        malloc(sizeof(*b) + (size_t)max * sizeof(struct vd_hostio));
    if (b != NULL) {
        b->aio = aio;
        b->fin = NULL;
        b->arg = NULL;
        b->n = 0;
        __atomic_store_n(&b->pending, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->err, 0, __ATOMIC_RELAXED);
    }
    return b;
}

void vd_hostio_batch_free(struct vd_hostio_batch *b)
{
    free(b);
}

static void batch_put(struct vd_hostio_batch *b, int ret)
{
    int expected = 0;
    if (ret < 0) {
        __atomic_compare_exchange_n(&b->err, &expected, ret, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    if (__atomic_sub_fetch(&b->pending, 1, __ATOMIC_ACQ_REL) == 0) {
        struct vd_aio *aio = b->aio;
        int err = __atomic_load_n(&b->err, __ATOMIC_ACQUIRE);
        if (b->fin != NULL) {
            b->fin(b, err);
        }
        free(b);
        aio->done(aio, err);
    }
}

static void batch_seg_done(struct vd_hostio *io, int ret)
{
    /* io is b->io[i]; walk back to the batch through the stored owner. */
    struct vd_hostio_batch *b = io->owner;
    batch_put(b, vd_fault_complete(
                     io->write ? VD_FAULT_DATA_WRITE : VD_FAULT_READ, ret));
}

int vd_hostio_batch_submit(struct vd_ioloop *l, struct vd_hostio_batch *b)
{
    unsigned i;
    if (l == NULL && b->n > 0) {
        return -EAGAIN;
    }
    for (i = 0; i < b->n; i++) {
        b->io[i].cb = batch_seg_done;
        b->io[i].owner = b;
        if (prepare(&b->io[i]) < 0) {
            return -EAGAIN;
        }
        b->io[i].next = i + 1 < b->n ? &b->io[i + 1] : NULL;
    }
    __atomic_store_n(&b->pending, (int)b->n + 1, __ATOMIC_RELEASE);
    if (b->n > 0) {
        /* the loop wants newest first; order among segments does not matter */
        vd_ioloop_post_files(l, &b->io[0], &b->io[b->n - 1]);
    }
    batch_put(b, 0);
    return 0;
}
