/* iostats.c — the slow parts of per-volume request accounting: errno
 * slots and copies for the API (see iostats.h). */
#include "iostats.h"

#include <errno.h>

static const struct {
    int err;
    const char *name;
} errno_slots[VD_ERRNO_SLOTS - 1] = {
    {EIO, "EIO"},
    {ENOSPC, "ENOSPC"},
    {EROFS, "EROFS"},
    {EINVAL, "EINVAL"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ENOTCONN, "ENOTCONN"},
    {ESHUTDOWN, "ESHUTDOWN"},
    {ECONNRESET, "ECONNRESET"},
    {ENOMEM, "ENOMEM"},
    {EAGAIN, "EAGAIN"},
    {EFBIG, "EFBIG"},
};

const char *vd_io_op_name(enum vd_io_op op)
{
    static const char *const names[VD_IO_NOPS] = {"read", "write", "flush"};
    return (unsigned)op < VD_IO_NOPS ? names[op] : "?";
}

unsigned vd_iostats_errno_slot(int ret)
{
    for (unsigned i = 0; i < VD_ERRNO_SLOTS - 1; i++) {
        if (errno_slots[i].err == -ret) {
            return i;
        }
    }
    return VD_ERRNO_SLOTS - 1;
}

const char *vd_iostats_errno_name(unsigned slot)
{
    return slot < VD_ERRNO_SLOTS - 1 ? errno_slots[slot].name : "other";
}

void vd_iostats_error(struct vd_iostats *s, int ret)
{
    atomic_fetch_add_explicit(&s->errors[vd_iostats_errno_slot(ret)], 1,
                              memory_order_relaxed);
}

void vd_iostats_read(struct vd_iostats *s, struct vd_iostats_snap *out)
{
    for (unsigned op = 0; op < VD_IO_NOPS; op++) {
        for (unsigned k = 0; k <= VD_LAT_BUCKETS; k++) {
            out->bucket[op][k] = atomic_load_explicit(&s->op[op].bucket[k],
                                                      memory_order_relaxed);
        }
        out->sum_ns[op] =
            atomic_load_explicit(&s->op[op].sum_ns, memory_order_relaxed);
    }
    for (unsigned i = 0; i < VD_ERRNO_SLOTS; i++) {
        out->errors[i] =
            atomic_load_explicit(&s->errors[i], memory_order_relaxed);
    }
}
