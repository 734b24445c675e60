/* hostaio.h — asynchronous reads and writes of host files through
 * io_uring, for the drivers' submit members.
 *
 * One process-wide ring, set up on first use, owned by one I/O thread
 * that submits what other threads hand it and calls each request's
 * callback when it completes. Where io_uring cannot be set up (old kernel, seccomp),
 * every submit answers -EAGAIN and drivers fall back to their synchronous
 * path. */
#ifndef VD_HOSTAIO_H
#define VD_HOSTAIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io_util.h"

/* One host I/O; the caller owns it until cb has been called. */
struct vd_hostio {
    struct vd_hostfile *hf;
    bool write;
    void *buf;
    size_t len;
    uint64_t off;
    void (*cb)(struct vd_hostio *io, int ret);   /* 0 or -errno */
    void *owner;   /* for cb's use (a batch sets it to itself) */
    struct vd_hostio *next;   /* private: hand-over list */
    size_t done;   /* private: bytes transferred so far */
    int fd;        /* the descriptor in use (set by the caller only for
                      vd_hostio_read_fd) */
    bool raw;      /* private: a vd_hostio_read_fd request */
};

/* Read up to len bytes from descriptor fd (a device such as /dev/fuse,
 * opened O_NONBLOCK so the ring can wait for it to become readable)
 * into buf on the I/O thread. io->cb gets read(2)'s result: the byte
 * count, or -errno. Fill fd, buf, len and cb; hf is ignored. -EAGAIN
 * when io_uring is not available. */
int vd_hostio_read_fd(struct vd_hostio *io);

/* Whether [off, off+len) at buf can go to hf asynchronously as it is. */
bool vd_hostio_suits(const struct vd_hostfile *hf, const void *buf,
                     size_t len, uint64_t off);

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
struct vd_hostio_batch *vd_hostio_batch_new(struct vd_aio *aio,
                                            unsigned max);
void vd_hostio_batch_free(struct vd_hostio_batch *b);
/* Submit every segment; 0 when aio->done will be called (after all of
 * them, possibly before this returns), -EAGAIN when none could be started
 * (the batch is then still the caller's to free). Segments must suit
 * their file (vd_hostio_suits). A batch of no segments completes at once. */
int vd_hostio_batch_submit(struct vd_hostio_batch *b);

/* After it last had work, the I/O thread keeps looking for more for this
 * long before it sleeps (0 = sleep at once). */
void vd_hostio_set_poll(unsigned us);

/* A flush was just answered: its client usually sends the next request
 * within a round trip, so for the next few milliseconds the I/O thread
 * polls even with nothing in flight, and for longer (hostaio.c note 5). */
void vd_hostio_flush_hint(void);

/* Stop the completion thread and free the ring, once nothing is in flight
 * any more (at process exit; later submits start a new ring). */
void vd_hostio_shutdown(void);

#endif
