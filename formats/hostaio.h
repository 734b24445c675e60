/* hostaio.h — asynchronous reads and writes of host files, for the
 * drivers' submit members: requests and batches of them, run by an I/O
 * loop (ioloop.h) that calls each request's callback when it completes.
 * A driver opened without a loop, and any request the O_DIRECT
 * descriptor cannot take as it is, use the synchronous path instead. */
#ifndef VD_HOSTAIO_H
#define VD_HOSTAIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io_util.h"

struct vd_ioloop;

/* What the I/O thread does with a struct vd_hostio (private). */
enum vd_hostio_kind {
    VD_HOSTIO_FILE, /* read or write hf (vd_hostio_batch_submit) */
    VD_HOSTIO_FD,   /* one read(2) of fd (vd_ioloop_read_fd) */
    VD_HOSTIO_CALL, /* run cb (vd_ioloop_call) */
    VD_HOSTIO_STOP, /* end the loop (vd_ioloop_free) */
    VD_HOSTIO_CMD,  /* a device command (vd_ioloop_cmd) */
};

/* One host I/O; the caller owns it until cb has been called. */
struct vd_hostio {
    struct vd_hostfile *hf;
    bool write;
    void *buf;
    size_t len;
    uint64_t off;
    void (*cb)(struct vd_hostio *io, int ret); /* 0 or -errno */
    void *owner;            /* for cb's use (a batch sets it to itself) */
    struct vd_hostio *next; /* private: hand-over list */
    size_t done;            /* private: bytes transferred so far */
    int fd;                 /* the descriptor in use (set by the caller only for
                               vd_ioloop_read_fd) */
    enum vd_hostio_kind kind; /* private */
};

/* Whether [off, off+len) at buf can go to hf asynchronously as it is. */
bool vd_hostio_suits(const struct vd_hostfile *hf, const void *buf, size_t len,
                     uint64_t off);

/* Several host I/Os completing one driver request (struct vd_aio): each
 * segment is one contiguous host range. When the last segment is done,
 * fin (if set) runs, then aio->done with the first error or 0, then the
 * batch is freed. */
struct vd_aio;
struct vd_hostio_batch {
    struct vd_aio *aio;
    void (*fin)(struct vd_hostio_batch *b, int ret);
    void *arg;             /* for fin */
    int pending;           /* atomic: segments in flight + 1 while submitting */
    int err;               /* atomic: first error */
    unsigned n;            /* segments used */
    struct vd_hostio io[]; /* fill hf, write, buf, len, off of io[0..n) */
};

/* A batch with room for max segments (n = 0), or NULL. */
struct vd_hostio_batch *vd_hostio_batch_new(struct vd_aio *aio, unsigned max);
void vd_hostio_batch_free(struct vd_hostio_batch *b);
/* Submit every segment to loop l; 0 when aio->done will be called (after
 * all of them, possibly before this returns), -EAGAIN when none could be
 * started (l is NULL, or a segment does not suit its file; the batch is
 * then still the caller's to free). A batch of no segments completes at
 * once. */
int vd_hostio_batch_submit(struct vd_ioloop *l, struct vd_hostio_batch *b);

#endif
