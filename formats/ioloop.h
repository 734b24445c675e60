/* ioloop.h — the I/O engine: one io_uring owned by one I/O thread.
 *
 * daemon/main.c creates one loop and hands it to the FUSE export (which
 * reads /dev/fuse through it) and, through vd_open_opts.ioloop, to the
 * drivers, which submit host file I/O to it (hostaio.h). A driver given
 * no loop uses only its synchronous path. The loop knows nothing of FUSE:
 * when to poll harder is its users' decision (vd_ioloop_poll_until).
 *
 * COMPLETION CONTRACT (every driver's vd_aio.done, every vd_hostio.cb)
 * 1. A completion runs on the thread that saw the request finish: this
 *    loop's I/O thread for host files, a library's own thread for remote
 *    backends (the NBD driver's connection threads today, librbd's
 *    callback thread next), or the submitter's thread before its submit
 *    returns. It answers the request there, directly: no hand-over to
 *    another thread (for librbd at 4k QD32, completing the FUSE request
 *    from the callback gave 29.7k IOPS, handing it over 26.1k).
 * 2. So a completion must be short, and it must never wait: no drain,
 *    no flush, no synchronous image or volume call, no lock that is held
 *    across I/O, no sleep. It may submit more requests (submission never
 *    waits) and write a reply. Waiting there deadlocks: the thread that
 *    waits is the one that would complete what it waits for. Drains
 *    assert they are not on such a thread (vd_ioloop_may_wait).
 * 3. A library may forbid calls back into itself from its callback
 *    (libnbd does, on the same handle); a driver then finishes the
 *    request from the library's thread once the callback returned (the
 *    NBD driver's settle list), still on that thread.
 * 4. vd_ioloop_call hands work to the I/O thread instead. Use it only
 *    for what must run there (state only the I/O thread owns), not for
 *    completions: it costs a wake-up and a thread switch per request.
 */
#ifndef VD_IOLOOP_H
#define VD_IOLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "hostaio.h"

struct vd_ioloop;

/* Set up the ring and start the I/O thread. poll_us: after its last
 * event the thread keeps looking for more this long before it sleeps,
 * while two or more file requests are in flight (0 = sleep at once).
 * flags: VD_IOLOOP_CMDS for a ring that also takes device commands
 * (vd_ioloop_cmd; 128-byte SQEs where the kernel has them).
 * 0, or -errno when io_uring is not available (old kernel, seccomp):
 * then run without a loop. */
#define VD_IOLOOP_CMDS 1u
int vd_ioloop_new(unsigned poll_us, unsigned flags, struct vd_ioloop **out);

/* Stop the thread and free the ring; nothing may be in flight any more
 * (every image that was given the loop is closed). Accepts NULL. */
void vd_ioloop_free(struct vd_ioloop *l);

/* The loop whose I/O thread is calling, or NULL on any other thread. */
struct vd_ioloop *vd_ioloop_self(void);

/* A library's thread that calls completions (note 1 above) says so
 * once, at its start; a loop's I/O thread is one already. */
void vd_ioloop_mark_completer(void);
/* false on a thread that calls completions: there, nothing may wait for
 * other requests (note 2 above). For assertions in drains. */
bool vd_ioloop_may_wait(void);

/* CPU time the I/O thread has used (serving, or polling for work) into
 * *ns; 0 or -errno. Any thread. */
int vd_ioloop_cpu_ns(const struct vd_ioloop *l, uint64_t *ns);

/* The poll_us the loop was created with. */
unsigned vd_ioloop_poll_us(const struct vd_ioloop *l);

/* CLOCK_MONOTONIC in nanoseconds, the clock of vd_ioloop_poll_until. */
uint64_t vd_ioloop_now_ns(void);

/* Until monotonic time until_ns, poll at any queue depth, and go to
 * sleep only after idle_ns without an event. A later call replaces an
 * earlier one. Any thread. */
void vd_ioloop_poll_until(struct vd_ioloop *l, uint64_t until_ns,
                          uint64_t idle_ns);

/* Run io->cb(io, 0) on the I/O thread, soon (note 4 above). Fill cb and
 * owner; the caller keeps io until cb ran. Any thread. */
void vd_ioloop_call(struct vd_ioloop *l, struct vd_hostio *io);

/* Read up to len bytes from descriptor fd (a device such as /dev/fuse,
 * opened O_NONBLOCK so the ring can wait for it to become readable)
 * into buf on the I/O thread. io->cb gets read(2)'s result: the byte
 * count, or -errno. Fill fd, buf, len and cb; hf is ignored. -EINVAL
 * when len does not fit one read. */
int vd_ioloop_read_fd(struct vd_ioloop *l, struct vd_hostio *io);

/* A timer whose callback runs on the I/O thread once its due time has
 * come: how work that must wait (a request held back by a QoS limit)
 * waits without a thread of its own. Timers cost the loop nothing while
 * none is armed. cb runs under the completion contract above; a timer
 * may be re-armed from its own callback. */
struct vd_iotimer {
    void (*cb)(struct vd_iotimer *t);
    void *owner;             /* for cb's use */
    _Atomic uint64_t due_ns; /* private: 0 = not armed */
    struct vd_iotimer *next; /* private: the loop's list */
};

/* Register t with the loop (fill cb and owner first). The timer stays
 * registered until the loop is freed. Any thread. */
void vd_ioloop_timer_add(struct vd_ioloop *l, struct vd_iotimer *t);
/* Take t off the loop; when this returns its callback is not running and
 * will not run again. Not on the I/O thread. */
void vd_ioloop_timer_del(struct vd_ioloop *l, struct vd_iotimer *t);
/* Run t->cb at monotonic time due_ns (vd_ioloop_now_ns), or earlier if it
 * is armed for an earlier time already: the earliest wins. Any thread. */
void vd_ioloop_timer_arm(struct vd_ioloop *l, struct vd_iotimer *t,
                         uint64_t due_ns);

/* A command to a device's io_uring interface (IORING_OP_URING_CMD): the
 * SQE gets fd, buf as its address, len as its length, op as its cmd_op and
 * data as its 80-byte command area. io.cb gets the CQE's result; a command
 * the device keeps (it answers when it has something) completes later. */
#define VD_IOLOOP_CMD_LEN 80
struct vd_ioloop_cmd {
    struct vd_hostio io; /* fill fd, buf, len, cb (and owner) */
    uint32_t op;
    unsigned char data[VD_IOLOOP_CMD_LEN];
};

/* Whether the ring takes commands (128-byte SQEs: kernel 5.19+). */
bool vd_ioloop_has_cmd(const struct vd_ioloop *l);

/* Submit c on the I/O thread; the caller keeps c until c->io.cb ran.
 * -ENOTSUP when the ring takes no commands. Any thread. */
int vd_ioloop_cmd(struct vd_ioloop *l, struct vd_ioloop_cmd *c);

/* For hostaio.c: hand the file requests first .. last (linked through
 * ->next, fd and done prepared) to the I/O thread. */
void vd_ioloop_post_files(struct vd_ioloop *l, struct vd_hostio *first,
                          struct vd_hostio *last);

#endif
