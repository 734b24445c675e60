/* corrupt.c — what the driver does when it stops trusting an image.
 *
 * Metadata found inconsistent (a table entry pointing outside the file or
 * into other metadata, a refcount that would go negative) is corruption:
 * the first reason is kept for vd_image_corruption(), nothing more is
 * written (qcow2.c DESIGN NOTES 7), and a writable v3 image gets the header's
 * corrupt bit, as QEMU sets it, so that no tool opens it for writing again
 * before `qemu-img check -r all` has repaired it. A metadata update that
 * failed half way leaves the file in a state the driver no longer knows:
 * it stops writing too and says why, but the image is not marked, since
 * the file itself may be fine. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io_util.h"
#include "qcow2-int.h"

#define Q2_INCOMPAT_OFFSET 72 /* incompatible_features in a v3 header */

/* Keep the first reason; true when this call set it. */
static bool record_reason(struct q2_state *s, const char *fmt, va_list ap)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&s->corrupt_claimed, &expected, true)) {
        return false;
    }
    vsnprintf(s->corrupt_reason, sizeof(s->corrupt_reason), fmt, ap);
    atomic_store_explicit(&s->corruption, s->corrupt_reason,
                          memory_order_release);
    return true;
}

/* Set the corrupt bit in the file: read the field as it is on disk (the
 * header in memory may hold an update that never reached it), set the
 * bit, write the eight bytes and sync. Once per open. */
static void mark_corrupt(struct q2_state *s)
{
    uint8_t raw[8];
    bool expected = false;
    if (s->readonly || s->hdr.version < 3 ||
        !atomic_compare_exchange_strong(&s->corrupt_marked, &expected, true)) {
        return;
    }
    s->hdr.incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
    if (vd_pread_full(s->fd, raw, sizeof(raw), Q2_INCOMPAT_OFFSET) < 0) {
        return;
    }
    q2_put_be64(raw, q2_be64(raw) | QCOW2_INCOMPAT_CORRUPT);
    if (vd_pwrite_full(s->fd, raw, sizeof(raw), Q2_INCOMPAT_OFFSET) == 0) {
        (void)fdatasync(s->fd);
    }
}

int q2_signal_corruption(struct q2_state *s, const char *fmt, ...)
{
    va_list ap;
    s->broken = true;
    va_start(ap, fmt);
    record_reason(s, fmt, ap);
    va_end(ap);
    mark_corrupt(s);
    return -EIO;
}

int q2_signal_write_failure(struct q2_state *s, int ret, const char *what)
{
    s->broken = true;
    q2_set_reason(s,
                  "%s failed (%s): the metadata on disk may be half "
                  "updated, no more writes",
                  what, strerror(-ret));
    return ret;
}

int q2_sync(struct q2_state *s)
{
    bool before = atomic_load(&s->sync_failed);
    int ret = vd_fdatasync_sticky(s->fd, &s->sync_failed);
    if (ret < 0 && !before) {
        q2_set_reason(s,
                      "fdatasync of the image failed (%s): writes the "
                      "host could not store may be lost, no more writes",
                      strerror(-ret));
    }
    return ret;
}

void q2_set_reason(struct q2_state *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record_reason(s, fmt, ap);
    va_end(ap);
}
