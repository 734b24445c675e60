/* volume_io.c — a served volume: references, open count, and the I/O gate
 * every data request passes.
 *
 * DESIGN NOTES (the I/O gate)
 * 1. A request enters by incrementing `inflight`, then checking
 *    `gate_closed`. If open, it runs; the image cannot be closed or swapped
 *    under it, because closing waits for inflight == 0.
 * 2. If closed, the request backs out (decrement, waking a closer that waits
 *    for zero) and sleeps on gate_cond until the gate reopens, or fails with
 *    -EIO if the volume is going away. Requests that meet a closed gate wait;
 *    they do not fail (snapshot, resize and revert reopen it).
 * 3. The closer sets gate_closed under gate_lock, then waits on gate_cond
 *    until inflight == 0. A leaver that brings inflight to zero while the
 *    gate is closed takes gate_lock to broadcast, so no wake-up is lost.
 * 4. The fast path takes no lock: two atomic operations per request, and
 *    for the accounting (iostats.h) two relaxed ones and two clock reads:
 *    a request is timed from before it enters to its completion.
 * 5. open_count and going_away change together under gate_lock, so a delete
 *    cannot race with an open: either the open sees going_away and fails,
 *    or the delete sees the open and answers -EBUSY.
 * 6. Paths that neither enter the gate nor hold ctl (FUSE lookup, getattr,
 *    open, readdir) never touch img: they read served, readonly, caps and
 *    size, which vd_volume_set_image changes together with img.
 * 7. Nothing that may wait runs on the I/O thread (formats/ioloop.h): it
 *    completes the asynchronous requests a closer waits for. It uses only
 *    the _nowait calls; the waiting ones assert they are elsewhere.
 * 8. QoS limits (qos.h) hold requests back inside the gate, after it let
 *    them in: reads, writes, discards and zeroing count, flushes do not.
 *    A synchronous request sleeps in vd_qos_wait; an asynchronous one is
 *    queued and submitted when released, by the blocking runner if its
 *    driver cannot start it without waiting. Closing the gate releases
 *    the queue at once, so a drain never waits for a limit. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "ioloop.h"
#include "log.h"
#include "vd_assert.h"
#include "volume-int.h"

struct vd_volume *vd_volume_new(const struct vd_volume_row *row,
                                struct vd_image *img, uint64_t ino)
{
    struct vd_volume *vol = calloc(1, sizeof(*vol));
    if (vol == NULL) {
        return NULL;
    }
    atomic_init(&vol->refs, 1);
    vol->ino = ino;
    vol->row = *row;
    atomic_init(&vol->size, row->size);
    atomic_init(&vol->corrupt_reason, NULL);
    atomic_init(&vol->allocated_seen, -1);
    vd_volume_set_image(vol, img);
    pthread_mutex_init(&vol->gate_lock, NULL);
    pthread_cond_init(&vol->gate_cond, NULL);
    return vol;
}

void vd_volume_set_image(struct vd_volume *vol, struct vd_image *img)
{
    vol->img = img;
    if (img != NULL) {
        atomic_store(&vol->size, vd_image_length(img));
    }
    atomic_store(&vol->readonly, img == NULL || vd_image_readonly(img));
    atomic_store(&vol->caps, img != NULL ? vd_image_caps(img) : 0);
    atomic_store(&vol->served, img != NULL);
}

const char *vd_volume_corrupt_reason(struct vd_volume *vol)
{
    return atomic_load(&vol->corrupt_reason);
}

bool vd_volume_image_lost(struct vd_volume *vol)
{
    return vd_volume_corrupt_reason(vol) != NULL &&
           atomic_load(&vol->image_lost);
}

struct vd_volume *vd_volume_ref(struct vd_volume *vol)
{
    atomic_fetch_add(&vol->refs, 1);
    return vol;
}

void vd_volume_unref(struct vd_volume *vol)
{
    if (vol == NULL || atomic_fetch_sub(&vol->refs, 1) != 1) {
        return;
    }
    vd_image_close(vol->img); /* normally closed already by the manager */
    vd_qos_free(vol->qos);
    free(atomic_load(&vol->corrupt_reason));
    pthread_cond_destroy(&vol->gate_cond);
    pthread_mutex_destroy(&vol->gate_lock);
    free(vol);
}

uint64_t vd_volume_ino(const struct vd_volume *vol)
{
    return vol->ino;
}

const char *vd_volume_name(const struct vd_volume *vol)
{
    return vol->row.name;
}

uint64_t vd_volume_size(struct vd_volume *vol)
{
    return atomic_load(&vol->size);
}

int64_t vd_volume_created_at(const struct vd_volume *vol)
{
    return vol->row.created_at;
}

/* Lock-free: FUSE getattr and open ask without entering the gate, while
 * a reopen may be replacing the image (vd_volume_set_image). */
bool vd_volume_readonly(const struct vd_volume *vol)
{
    return atomic_load(&vol->readonly);
}

int vd_volume_open_file(struct vd_volume *vol)
{
    int ret = 0;
    pthread_mutex_lock(&vol->gate_lock);
    if (atomic_load(&vol->going_away)) {
        ret = -ENOENT;
    } else {
        vol->open_count++;
    }
    pthread_mutex_unlock(&vol->gate_lock);
    return ret;
}

void vd_volume_release_file(struct vd_volume *vol)
{
    pthread_mutex_lock(&vol->gate_lock);
    if (vol->open_count > 0) {
        vol->open_count--;
    }
    pthread_mutex_unlock(&vol->gate_lock);
}

int vd_volume_open_count(struct vd_volume *vol)
{
    pthread_mutex_lock(&vol->gate_lock);
    int n = vol->open_count;
    pthread_mutex_unlock(&vol->gate_lock);
    return n;
}

int vd_volume_retire(struct vd_volume *vol, bool force)
{
    int ret = 0;
    pthread_mutex_lock(&vol->gate_lock);
    if (vol->open_count > 0 && !force) {
        ret = -EBUSY;
    } else {
        atomic_store(&vol->going_away, true);
        pthread_cond_broadcast(&vol->gate_cond);
    }
    pthread_mutex_unlock(&vol->gate_lock);
    return ret;
}

void vd_volume_gate_close(struct vd_volume *vol)
{
    VD_ASSERT(vd_ioloop_may_wait()); /* note 7 */
    pthread_mutex_lock(&vol->gate_lock);
    atomic_store(&vol->gate_closed, true);
    pthread_mutex_unlock(&vol->gate_lock);
    vd_qos_flush(vol->qos); /* note 8 */
    pthread_mutex_lock(&vol->gate_lock);
    while (atomic_load(&vol->inflight) > 0) {
        pthread_cond_wait(&vol->gate_cond, &vol->gate_lock);
    }
    pthread_mutex_unlock(&vol->gate_lock);
}

void vd_volume_gate_open(struct vd_volume *vol)
{
    pthread_mutex_lock(&vol->gate_lock);
    atomic_store(&vol->gate_closed, false);
    pthread_cond_broadcast(&vol->gate_cond);
    pthread_mutex_unlock(&vol->gate_lock);
}

static void gate_leave(struct vd_volume *vol)
{
    if (atomic_fetch_sub(&vol->inflight, 1) == 1 &&
        atomic_load(&vol->gate_closed)) {
        pthread_mutex_lock(&vol->gate_lock);
        pthread_cond_broadcast(&vol->gate_cond);
        pthread_mutex_unlock(&vol->gate_lock);
    }
}

static int gate_enter(struct vd_volume *vol)
{
    VD_ASSERT(vd_ioloop_may_wait()); /* may wait: note 7 */
    for (;;) {
        atomic_fetch_add(&vol->inflight, 1);
        if (!atomic_load(&vol->gate_closed)) {
            if (vol->img == NULL) {
                gate_leave(vol);
                return -EIO;
            }
            return 0;
        }
        gate_leave(vol);
        pthread_mutex_lock(&vol->gate_lock);
        while (atomic_load(&vol->gate_closed) &&
               !atomic_load(&vol->going_away)) {
            pthread_cond_wait(&vol->gate_cond, &vol->gate_lock);
        }
        pthread_mutex_unlock(&vol->gate_lock);
        if (atomic_load(&vol->going_away)) {
            return -EIO;
        }
    }
}

int vd_volume_gate_enter(struct vd_volume *vol)
{
    return gate_enter(vol);
}

void vd_volume_gate_leave(struct vd_volume *vol)
{
    gate_leave(vol);
}

/* Hold a synchronous request back while the volume's limits say so. */
static void throttle(struct vd_volume *vol, bool write, uint64_t bytes)
{
    if (vd_qos_active(vol->qos)) {
        vd_qos_wait(vol->qos, write, bytes);
    }
}

int vd_volume_pread(struct vd_volume *vol, void *buf, size_t len, uint64_t off)
{
    uint64_t t0 = vd_iostats_now();
    int ret = gate_enter(vol);
    if (ret == 0) {
        throttle(vol, false, len);
        ret = vd_image_pread(vol->img, buf, len, off);
        if (ret == -EIO) {
            vd_volume_note_corruption(vol); /* say why, once, right away */
        }
        gate_leave(vol);
    }
    vd_iostats_done(&vol->io, VD_IO_READ, t0, ret);
    return ret;
}

int vd_volume_pwrite(struct vd_volume *vol, const void *buf, size_t len,
                     uint64_t off)
{
    uint64_t t0 = vd_iostats_now();
    int ret = gate_enter(vol);
    if (ret == 0) {
        throttle(vol, true, len);
        ret = vd_image_pwrite(vol->img, buf, len, off);
        if (ret == -EIO) {
            vd_volume_note_corruption(vol);
        }
        gate_leave(vol);
    }
    vd_iostats_done(&vol->io, VD_IO_WRITE, t0, ret);
    return ret;
}

int vd_volume_flush(struct vd_volume *vol)
{
    uint64_t t0 = vd_iostats_now();
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_flush(vol->img);
        if (ret == -EIO) {
            vd_volume_note_corruption(vol);
        }
        gate_leave(vol);
    }
    vd_iostats_done(&vol->io, VD_IO_FLUSH, t0, ret);
    return ret;
}

int vd_volume_discard(struct vd_volume *vol, uint64_t off, uint64_t len)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        throttle(vol, true, 0);
        ret = vd_image_discard(vol->img, off, len);
        gate_leave(vol);
    }
    if (ret < 0) {
        vd_iostats_error(&vol->io, ret);
    }
    return ret;
}

int vd_volume_host_open(struct vd_volume *vol, bool write)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_host_reopen(vol->img, write ? O_RDWR : O_RDONLY);
        gate_leave(vol);
    }
    return ret;
}

void vd_volume_note_passthrough(struct vd_volume *vol, bool on)
{
    atomic_fetch_add(&vol->passthrough_files, on ? 1 : -1);
}

int vd_volume_host_trim(struct vd_volume *vol)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_host_trim(vol->img);
        gate_leave(vol);
    }
    return ret;
}

bool vd_volume_passthrough(struct vd_volume *vol)
{
    return atomic_load(&vol->passthrough_files) > 0;
}

bool vd_volume_limited(struct vd_volume *vol)
{
    return vd_qos_active(vol->qos);
}

int vd_volume_write_zeroes(struct vd_volume *vol, uint64_t off, uint64_t len)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        throttle(vol, true, 0);
        ret = vd_image_write_zeroes(vol->img, off, len, 0);
        gate_leave(vol);
    }
    if (ret < 0) {
        vd_iostats_error(&vol->io, ret);
    }
    return ret;
}

/* The histogram a request of this aio op counts in. */
static enum vd_io_op aio_io_op(const struct vd_aio *aio)
{
    switch (aio->op) {
    case VD_AIO_READ:
        return VD_IO_READ;
    case VD_AIO_WRITE:
        return VD_IO_WRITE;
    default:
        return VD_IO_FLUSH;
    }
}

/* The result of a submission. A request that started is counted when it
 * completes (va may be gone already). One that did not: -EAGAIN sends it
 * to the synchronous path, which counts it; any other error is its end. */
static int submit_counted(struct vd_volume *vol, struct vd_volume_aio *va,
                          int ret)
{
    if (ret < 0 && ret != -EAGAIN) {
        vd_iostats_done(&vol->io, aio_io_op(&va->aio), va->t0, ret);
    }
    return ret;
}

int vd_volume_block_status(struct vd_volume *vol, uint64_t off, uint64_t len,
                           uint64_t *pnum)
{
    int ret = gate_enter(vol);
    *pnum = 0;
    if (ret == 0) {
        ret = vd_image_block_status(vol->img, off, len, pnum);
        gate_leave(vol);
    }
    return ret;
}

static void volume_aio_done(struct vd_aio *aio, int ret)
{
    struct vd_volume_aio *va = (struct vd_volume_aio *)aio;
    vd_iostats_done(&va->vol->io, aio_io_op(aio), va->t0, ret);
    /* Leave first: once done has replied, nothing keeps vol alive. */
    gate_leave(va->vol);
    va->done(va, ret);
}

/* A released request its driver cannot start without waiting: the
 * scheduler's runner does it the blocking way (note 8). */
static void run_blocking(struct vd_qos_req *r)
{
    struct vd_volume_aio *va =
        (struct vd_volume_aio *)((char *)r -
                                 offsetof(struct vd_volume_aio, qos));
    struct vd_volume *vol = va->vol;
    struct vd_aio *aio = &va->aio;
    int ret;
    if (aio->op == VD_AIO_READ) {
        ret = vd_image_pread(vol->img, aio->buf, aio->len, aio->off);
    } else {
        ret = vd_image_pwrite(vol->img, aio->buf, aio->len, aio->off);
    }
    if (ret == -EIO) {
        vd_volume_note_corruption(vol);
    }
    volume_aio_done(aio, ret);
}

/* A queued request's turn came (note 8). */
static void release_aio(struct vd_qos_req *r)
{
    struct vd_volume_aio *va =
        (struct vd_volume_aio *)((char *)r -
                                 offsetof(struct vd_volume_aio, qos));
    int ret = vd_image_submit(va->vol->img, &va->aio);
    if (ret == -EAGAIN) {
        r->release = run_blocking;
        vd_qos_run_blocking(va->vol->qos, r);
    } else if (ret < 0) {
        volume_aio_done(&va->aio, ret);
    }
}

static int submit_entered(struct vd_volume *vol, struct vd_volume_aio *va)
{
    bool limited = va->aio.op != VD_AIO_FLUSH && vd_qos_active(vol->qos);
    bool write = va->aio.op == VD_AIO_WRITE;
    int ret;
    va->vol = vol;
    va->aio.done = volume_aio_done;
    if (limited) {
        va->qos.release = release_aio;
        if (!vd_qos_admit(vol->qos, &va->qos, write, va->aio.len)) {
            return 0; /* queued: release_aio submits it */
        }
    }
    ret = vd_image_submit(vol->img, &va->aio);
    if (ret < 0) {
        if (ret == -EAGAIN && limited) {
            /* The caller retries the blocking way, which asks again. */
            vd_qos_refund(vol->qos, write, va->aio.len);
        }
        gate_leave(vol);
    }
    return ret;
}

int vd_volume_submit(struct vd_volume *vol, struct vd_volume_aio *va)
{
    int ret;
    va->t0 = vd_iostats_now();
    ret = gate_enter(vol);
    return submit_counted(vol, va, ret < 0 ? ret : submit_entered(vol, va));
}

/* gate_enter that does not wait: false (and not entered) while the gate
 * is closed or the image gone. */
static bool gate_try_enter(struct vd_volume *vol)
{
    atomic_fetch_add(&vol->inflight, 1);
    if (atomic_load(&vol->gate_closed) || vol->img == NULL) {
        gate_leave(vol);
        return false;
    }
    return true;
}

int vd_volume_submit_nowait(struct vd_volume *vol, struct vd_volume_aio *va)
{
    va->t0 = vd_iostats_now();
    return gate_try_enter(vol)
               ? submit_counted(vol, va, submit_entered(vol, va))
               : -EAGAIN;
}

int vd_volume_flush_nowait(struct vd_volume *vol)
{
    uint64_t t0 = vd_iostats_now();
    int ret;
    if (!gate_try_enter(vol)) {
        return -EAGAIN;
    }
    ret = vd_image_flush_nowait(vol->img);
    gate_leave(vol);
    if (ret != -EAGAIN) {
        vd_iostats_done(&vol->io, VD_IO_FLUSH, t0, ret);
    }
    return ret;
}

void vd_volume_note_corruption(struct vd_volume *vol)
{
    const char *why;
    char *copy, *none = NULL;
    bool lost = false;

    if (vol->img == NULL || atomic_load(&vol->corrupt_reason) != NULL) {
        return;
    }
    why = vd_image_corruption(vol->img);
    if (why == NULL) {
        why = vd_image_lost(vol->img);
        lost = why != NULL;
    }
    if (why == NULL) {
        return;
    }
    copy = strdup(why);
    if (copy == NULL) {
        return; /* noted on a later look */
    }
    atomic_store(&vol->image_lost, lost); /* before the reason shows */
    if (!atomic_compare_exchange_strong(&vol->corrupt_reason, &none, copy)) {
        free(copy); /* another thread noted it first */
        return;
    }
    vd_err("volume '%s' is %s: %s", vol->row.name, lost ? "missing" : "corrupt",
           copy);
}

/* Called by getattr, which must not wait behind a snapshot or resize
 * (the kernel may hold the inode's lock meanwhile): while the gate is
 * closed, the last value seen stands in. */
int64_t vd_volume_allocated(struct vd_volume *vol)
{
    int64_t ret;
    if (!gate_try_enter(vol)) {
        ret = atomic_load(&vol->allocated_seen);
        return ret >= 0 ? ret : -EAGAIN;
    }
    ret = vd_image_allocated(vol->img);
    gate_leave(vol);
    if (ret >= 0) {
        atomic_store(&vol->allocated_seen, ret);
    }
    return ret;
}
