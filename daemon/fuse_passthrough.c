/* fuse_passthrough.c — kernel passthrough for volume files (Linux 6.9+):
 * the kernel sends an open file's reads and writes straight to the image
 * file, without a round trip to the daemon. Used for volumes whose disk is
 * a host file byte for byte (raw); everything else, and every kernel or
 * file that refuses, is served by the daemon as before.
 *
 * DESIGN NOTES
 * 1. Negotiation: libfuse 3.14 predates FUSE_PASSTHROUGH, so its INIT
 *    reply is amended on the way out (a writev hook installed with
 *    fuse_session_custom_io): FUSE_PASSTHROUGH in flags2 and a
 *    max_stack_depth of 1 (images on an ordinary file system; one on a
 *    stacked one is refused by the kernel, note 4). flags2 is only
 *    written when the reply carries FUSE_INIT_EXT, i.e. the kernel sent
 *    extended flags and libfuse answered them; kernels that do not know
 *    the bit ignore it. The first reply with a request id is INIT's: the
 *    kernel sends nothing else before INIT is answered.
 * 2. One backing id per inode, registered (FUSE_DEV_IOC_BACKING_OPEN) by
 *    the first passthrough open and closed (BACKING_CLOSE) when the
 *    daemon releases the last one. The kernel requires every open of an
 *    inode that has a passthrough open to use the same backing, so while
 *    one exists every new open joins it; direct-I/O opens made before
 *    may stay (the kernel lets them coexist). The kernel keeps its own
 *    reference to the file, so the daemon closes its descriptor at once.
 * 3. The backing descriptor is a fresh open of the image file without
 *    O_DIRECT (vd_volume_host_open): the kernel applies the client's own
 *    flags, so O_DIRECT clients (cache=none) bypass every page cache and
 *    buffered ones use the image's, as on the host file. It is writable
 *    whenever the volume is, so later writers can join (note 2); a
 *    writer cannot join a read-only backing and is refused with EBUSY
 *    (the volume became writable while read-only opens were served).
 * 4. A refused backing-open falls back to normal serving for that open,
 *    logged once. EPERM (the kernel did not take the INIT flag), ENOTTY
 *    or EINVAL (no such ioctl: an older kernel), EOPNOTSUPP (built
 *    without passthrough) turn passthrough off for
 *    the export; other errors (ELOOP: image on a stacked file system)
 *    only for that open.
 * 5. Reads and writes of a passthrough open pass neither the volume's
 *    gate nor its counters; fsync, fallocate, truncate, getattr still
 *    reach the daemon. Nor does the kernel stop them at the end of the
 *    file: a write there grows the image, which the last release cuts
 *    back (vd_volume_host_trim). What must see each request is therefore
 * limited to volumes that qualify (raw has no snapshots to quiesce for), and a
 *    forced delete cannot take the file away from a client that holds it
 *    open: it reads and writes the removed image until it closes (README,
 *    Performance). VDISKD_FAULT_PASSTHROUGH=refuse (tests only) hands the
 *    kernel an invalid descriptor, so it refuses every backing-open. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "fuse-int.h"
#include "log.h"
#include "volume.h"

/* The parts of the kernel's ABI (include/uapi/linux/fuse.h, 7.40) that
 * the build host's headers may predate. */
#define PT_INIT_EXT (1u << 30)
#define PT_FLAGS2_PASSTHROUGH (1u << (37 - 32))
#define PT_STACK_DEPTH 1
struct pt_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define PT_IOC_BACKING_OPEN _IOW(229, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* fuse_init_out as of 7.40; libfuse 3.14 sends this 64-byte layout with
 * the last fields still unused. */
struct pt_init_out {
    uint32_t major, minor, max_readahead, flags;
    uint16_t max_background, congestion_threshold;
    uint32_t max_write, time_gran;
    uint16_t max_pages, map_alignment;
    uint32_t flags2;
    uint32_t max_stack_depth;
    uint32_t unused[6];
};
_Static_assert(sizeof(struct pt_init_out) == 64, "fuse_init_out is 64 bytes");
_Static_assert(sizeof(struct fuse_open_out) == 16, "fuse_open_out");

struct pt_inode {
    struct pt_inode *next;
    uint64_t ino;
    int32_t backing_id;
    int opens;
    bool writable;
};

struct vd_fuse_pt {
    pthread_mutex_t lock;
    struct pt_inode *inodes; /* lock */
    atomic_bool init_seen;   /* INIT's reply went out (note 1) */
    atomic_bool off;         /* refused for the whole export (note 4) */
    atomic_bool logged;      /* a refusal was logged */
    bool fault_refuse;       /* VDISKD_FAULT_PASSTHROUGH=refuse */
    int devfd; /* the session's /dev/fuse; -1 once it is closed; lock */
};

/* ---- INIT (note 1) ------------------------------------------------------ */

static void amend_init(struct vd_fuse_export *fx, struct iovec *iov, int count)
{
    const struct fuse_out_header *oh = iov[0].iov_base;
    struct pt_init_out *out;

    if (count < 2 || iov[0].iov_len != sizeof(*oh) || oh->unique == 0) {
        return; /* a notification: INIT is still to come */
    }
    atomic_store(&fx->pt->init_seen, true);
    out = iov[1].iov_base;
    if (oh->error != 0 || iov[1].iov_len < sizeof(*out) ||
        !(out->flags & PT_INIT_EXT)) {
        vd_info("FUSE passthrough: the kernel offers no extended INIT "
                "flags; every volume is served by the daemon");
        atomic_store(&fx->pt->off, true);
        return;
    }
    out->flags2 |= PT_FLAGS2_PASSTHROUGH;
    out->max_stack_depth = PT_STACK_DEPTH;
}

void vd_fuse_pt_writing(struct vd_fuse_export *fx, struct iovec *iov, int count)
{
    if (!atomic_load_explicit(&fx->pt->init_seen, memory_order_relaxed)) {
        amend_init(fx, iov, count);
    }
}

int vd_fuse_pt_init(struct vd_fuse_export *fx)
{
    const char *fault = getenv("VDISKD_FAULT_PASSTHROUGH");
    struct vd_fuse_pt *pt;

    if (!fx->cfg.passthrough) {
        return 0;
    }
    pt = calloc(1, sizeof(*pt));
    if (pt == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&pt->lock, NULL);
    pt->fault_refuse = fault != NULL && strcmp(fault, "refuse") == 0;
    pt->devfd = fuse_session_fd(fx->se);
    fx->pt = pt; /* fuse_export.c's session writer calls pt_writing */
    return 0;
}

void vd_fuse_pt_detach(struct vd_fuse_export *fx)
{
    if (fx->pt != NULL) {
        pthread_mutex_lock(&fx->pt->lock);
        fx->pt->devfd = -1;
        pthread_mutex_unlock(&fx->pt->lock);
    }
}

void vd_fuse_pt_fini(struct vd_fuse_export *fx)
{
    struct vd_fuse_pt *pt = fx->pt;
    if (pt == NULL) {
        return;
    }
    while (pt->inodes != NULL) { /* the connection is gone with its ids */
        struct pt_inode *e = pt->inodes;
        pt->inodes = e->next;
        free(e);
    }
    pthread_mutex_destroy(&pt->lock);
    free(pt);
    fx->pt = NULL;
}

/* ---- opens (notes 2-4) ------------------------------------------------- */

static struct pt_inode *find(struct vd_fuse_pt *pt, uint64_t ino)
{
    struct pt_inode *e = pt->inodes;
    while (e != NULL && e->ino != ino) {
        e = e->next;
    }
    return e;
}

/* Register the volume's image with the kernel: a backing id > 0, or
 * -errno (logged once) when this open is to be served normally. */
static int backing_open(struct vd_fuse_export *fx, struct vd_volume *vol,
                        bool writable)
{
    struct vd_fuse_pt *pt = fx->pt;
    struct pt_backing_map map = {.fd = -1};
    int fd = vd_volume_host_open(vol, writable);
    int id;

    if (fd < 0) {
        return fd; /* -ENOTSUP: not a host file; -EIO: going away */
    }
    map.fd = pt->fault_refuse ? -1 : fd;
    if (pt->devfd < 0) {
        id = -ENOTCONN; /* stopping */
    } else if ((id = ioctl(pt->devfd, PT_IOC_BACKING_OPEN, &map)) < 0) {
        id = -errno;
    }
    close(fd);
    if (id > 0) {
        return id;
    }
    if (id == 0) {
        id = -EIO; /* ids start at 1 */
    }
    if (id == -EPERM || id == -ENOTTY || id == -EINVAL || id == -EOPNOTSUPP) {
        atomic_store(&pt->off, true);
    }
    if (!atomic_exchange(&pt->logged, true)) {
        vd_warn("FUSE passthrough refused by the kernel for '%s' (%s); "
                "serving %s through the daemon",
                vd_volume_name(vol), strerror(-id),
                atomic_load(&pt->off) ? "every volume" : "such opens");
    }
    return id;
}

int vd_fuse_pt_open(struct vd_fuse_export *fx, struct vd_fuse_handle *h,
                    bool write)
{
    struct vd_fuse_pt *pt = fx->pt;
    uint64_t ino = vd_volume_ino(h->vol);
    struct pt_inode *e;
    int ret = 0;

    h->backing_id = 0;
    if (pt == NULL) {
        return 0;
    }
    pthread_mutex_lock(&pt->lock);
    e = find(pt, ino);
    if (e == NULL) {
        bool writable = !vd_volume_readonly(h->vol);
        int id;
        if (atomic_load(&pt->off) || (write && !writable) ||
            vd_volume_limited(h->vol)) {
            goto out; /* a QoS limit must see every request */
        }
        id = backing_open(fx, h->vol, writable);
        if (id < 0 || (e = calloc(1, sizeof(*e))) == NULL) {
            if (id > 0) {
                ioctl(pt->devfd, PT_IOC_BACKING_CLOSE,
                      &(uint32_t){(uint32_t)id});
            }
            goto out; /* normal serving for this open */
        }
        e->ino = ino;
        e->backing_id = id;
        e->writable = writable;
        e->next = pt->inodes;
        pt->inodes = e;
    } else if (write && !e->writable) {
        ret = -EBUSY; /* note 3 */
        goto out;
    }
    e->opens++;
    h->backing_id = e->backing_id;
    vd_volume_note_passthrough(h->vol, true);
out:
    pthread_mutex_unlock(&pt->lock);
    return ret;
}

void vd_fuse_pt_release(struct vd_fuse_export *fx, struct vd_fuse_handle *h)
{
    struct vd_fuse_pt *pt = fx->pt;
    struct pt_inode **pp;
    bool last = false;

    if (pt == NULL || h->backing_id <= 0) {
        return;
    }
    pthread_mutex_lock(&pt->lock);
    for (pp = &pt->inodes; *pp != NULL; pp = &(*pp)->next) {
        struct pt_inode *e = *pp;
        if (e->backing_id != h->backing_id) {
            continue;
        }
        if (--e->opens == 0) {
            /* Fails only once the connection is gone, with its ids;
             * skipped once the session's descriptor is closed. */
            if (pt->devfd >= 0) {
                ioctl(pt->devfd, PT_IOC_BACKING_CLOSE,
                      &(uint32_t){(uint32_t)e->backing_id});
            }
            *pp = e->next;
            free(e);
            last = true;
        }
        break;
    }
    pthread_mutex_unlock(&pt->lock);
    if (last) {
        /* Note 5; -EIO when the volume is going away: nothing to keep. */
        (void)vd_volume_host_trim(h->vol);
    }
    vd_volume_note_passthrough(h->vol, false);
    h->backing_id = 0;
}

void vd_fuse_pt_open_out(const struct vd_fuse_handle *h,
                         struct fuse_open_out *out)
{
    int32_t id = h->backing_id;
    if (id <= 0) {
        return;
    }
    /* No FOPEN_DIRECT_IO: it would turn passthrough off. */
    out->open_flags &=
        ~(uint32_t)(FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES);
    out->open_flags |= FX_FOPEN_PASSTHROUGH;
    /* backing_id, where older headers have padding */
    memcpy((char *)out + 12, &id, sizeof(id));
}
