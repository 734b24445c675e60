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
 * 4. The fast path takes no lock: two atomic operations per request.
 * 5. open_count and going_away change together under gate_lock, so a delete
 *    cannot race with an open: either the open sees going_away and fails,
 *    or the delete sees the open and answers -EBUSY.
 * 6. Paths that neither enter the gate nor hold ctl (FUSE lookup, getattr,
 *    open, readdir) never touch img: they read served, readonly, caps and
 *    size, which vd_volume_set_image changes together with img.
 * 7. Nothing that may wait runs on the I/O thread (formats/ioloop.h): it
 *    completes the asynchronous requests a closer waits for. It uses only
 *    the _nowait calls; the waiting ones assert they are elsewhere. */
#include <errno.h>
#include <fcntl.h>
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

int vd_volume_pread(struct vd_volume *vol, void *buf, size_t len, uint64_t off)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_pread(vol->img, buf, len, off);
        if (ret == -EIO) {
            vd_volume_note_corruption(vol); /* say why, once, right away */
        }
        gate_leave(vol);
    }
    return ret;
}

int vd_volume_pwrite(struct vd_volume *vol, const void *buf, size_t len,
                     uint64_t off)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_pwrite(vol->img, buf, len, off);
        if (ret == -EIO) {
            vd_volume_note_corruption(vol);
        }
        gate_leave(vol);
    }
    return ret;
}

int vd_volume_flush(struct vd_volume *vol)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_flush(vol->img);
        gate_leave(vol);
    }
    return ret;
}

int vd_volume_discard(struct vd_volume *vol, uint64_t off, uint64_t len)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_discard(vol->img, off, len);
        gate_leave(vol);
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

int vd_volume_write_zeroes(struct vd_volume *vol, uint64_t off, uint64_t len)
{
    int ret = gate_enter(vol);
    if (ret == 0) {
        ret = vd_image_write_zeroes(vol->img, off, len, 0);
        gate_leave(vol);
    }
    return ret;
}

static void volume_aio_done(struct vd_aio *aio, int ret)
{
    struct vd_volume_aio *va = (struct vd_volume_aio *)aio;
    /* Leave first: once done has replied, nothing keeps vol alive. */
    gate_leave(va->vol);
    va->done(va, ret);
}

static int submit_entered(struct vd_volume *vol, struct vd_volume_aio *va)
{
    int ret;
    va->vol = vol;
    va->aio.done = volume_aio_done;
    ret = vd_image_submit(vol->img, &va->aio);
    if (ret < 0) {
        gate_leave(vol);
    }
    return ret;
}

int vd_volume_submit(struct vd_volume *vol, struct vd_volume_aio *va)
{
    int ret = gate_enter(vol);
    return ret < 0 ? ret : submit_entered(vol, va);
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
    return gate_try_enter(vol) ? submit_entered(vol, va) : -EAGAIN;
}

int vd_volume_flush_nowait(struct vd_volume *vol)
{
    int ret;
    if (!gate_try_enter(vol)) {
        return -EAGAIN;
    }
    ret = vd_image_flush_nowait(vol->img);
    gate_leave(vol);
    return ret;
}

void vd_volume_note_corruption(struct vd_volume *vol)
{
    const char *why;
    char *copy, *none = NULL;

    if (vol->img == NULL || atomic_load(&vol->corrupt_reason) != NULL ||
        (why = vd_image_corruption(vol->img)) == NULL) {
        return;
    }
    copy = strdup(why);
    if (copy == NULL) {
        return; /* noted on a later look */
    }
    if (!atomic_compare_exchange_strong(&vol->corrupt_reason, &none, copy)) {
        free(copy); /* another thread noted it first */
        return;
    }
    vd_err("volume '%s' is corrupt: %s", vol->row.name, copy);
}
