/* ioloop.c — the I/O engine: an io_uring and the thread that owns it
 * (see ioloop.h).
 *
 * DESIGN NOTES
 * 1. One ring per loop, owned by its I/O thread, which alone submits and
 *    reaps. Submitters push requests onto a lock-free inbox and write an
 *    eventfd only when the thread has said it is going to sleep; the
 *    thread keeps a read of that eventfd in the ring. Owning the ring
 *    matters: io_uring delivers a completion as task work to the task that
 *    submitted the request, so requests submitted by FUSE workers would
 *    interrupt a worker per completion, and then wake a second thread to
 *    reap it. Here completions wait (DEFER_TASKRUN) until the I/O thread
 *    asks for them, once per loop, together with its next submissions.
 * 2. A short read or write continues from where it stopped; a read that
 *    reaches end of file (0 bytes) fills the rest with zeroes, as
 *    vd_pread_full does. -EAGAIN and -EINTR results are resubmitted.
 * 3. vd_ioloop_free posts a marker the I/O thread turns into a NOP; the
 *    thread ends when that completes. Callbacks run on the I/O thread
 *    under the completion contract of ioloop.h.
 * 4. Polling: after work, the thread looks for more for poll_ns before it
 *    sleeps, saving the wake-up (on a VM, an interrupt to a halted vCPU)
 *    when the next request or completion is due soon. Only while two or
 *    more file requests are in flight: at queue depth 1 the next event is
 *    a whole disk latency away, and a spinning thread would take the CPU
 *    from the kernel threads that complete it. A user that knows better
 *    (the FUSE export after answering a flush, fuse_aio.c) asks for a
 *    window of polling at any depth with vd_ioloop_poll_until.
 * 5. Timers (vd_iotimer) are a list the thread scans once per turn while
 *    any is armed (armed counts them); sleeping, it waits no longer than
 *    the nearest due time. Arming stores the due time and then, like a
 *    post, wakes the thread if it said it sleeps; the thread says so
 *    before it reads the due times, so one of the two sees the other.
 */
#include "ioloop.h"

#include "vd_assert.h"
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "hostaio.h"

#define RING_ENTRIES 512

struct vd_ioloop {
    uint64_t poll_ns;                /* note 4; fixed at creation */
    _Atomic uint64_t poll_any_until; /* note 4; monotonic ns, 0 = none */
    _Atomic uint64_t poll_any_idle_ns;
    pthread_t thread;
    sem_t started; /* the thread set start_ret */
    int start_ret;
    int wake_fd;              /* eventfd */
    struct vd_hostio stop_io; /* posted by vd_ioloop_free */
    /* Submitters hand requests over through these (note 1). */
    _Atomic(struct vd_hostio *) inbox; /* newest first */
    atomic_bool sleeping;
    pthread_mutex_t timers_lock;       /* protects the timers list links */
    struct vd_iotimer *_Atomic timers; /* note 5; newest first */
    atomic_uint armed;                 /* timers with due_ns != 0 */
    /* Everything below belongs to the I/O thread. */
    struct io_uring ring;
    unsigned busy;  /* file requests in the ring */
    bool want_cmds; /* VD_IOLOOP_CMDS; fixed at creation */
    bool sqe128;    /* set by the I/O thread before `started` */
    uint64_t wake_buf;
};

/* user_data tags that are not requests */
static char tag_wake, tag_stop;

/* The loop whose thread this is; whether this thread calls completions. */
static _Thread_local struct vd_ioloop *self;
static _Thread_local bool completer;

struct vd_ioloop *vd_ioloop_self(void)
{
    return self;
}

void vd_ioloop_mark_completer(void)
{
    completer = true;
}

bool vd_ioloop_may_wait(void)
{
    return !completer;
}

uint64_t vd_ioloop_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Hand a chain of requests (first .. last through ->next) to the I/O
 * thread, waking it if it sleeps (note 1). Any thread. */
static void post(struct vd_ioloop *l, struct vd_hostio *first,
                 struct vd_hostio *last)
{
    struct vd_hostio *head = atomic_load(&l->inbox);
    do {
        last->next = head;
    } while (!atomic_compare_exchange_weak(&l->inbox, &head, first));
    if (atomic_exchange(&l->sleeping, false)) {
        uint64_t one = 1;
        while (write(l->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

static struct io_uring_sqe *get_sqe(struct vd_ioloop *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    while (sqe == NULL) {
        io_uring_submit(&l->ring); /* make room */
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

/* An SQE for io's remaining bytes. */
static void queue(struct vd_ioloop *l, struct vd_hostio *io)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    if (io->kind == VD_HOSTIO_CMD) {
        struct vd_ioloop_cmd *c = (struct vd_ioloop_cmd *)io;
        io_uring_prep_rw(IORING_OP_URING_CMD, sqe, io->fd, io->buf,
                         (unsigned)io->len, 0);
        sqe->cmd_op = c->op;
        memcpy(sqe->cmd, c->data, sizeof(c->data));
    } else if (io->kind == VD_HOSTIO_FD) {
        io_uring_prep_read(sqe, io->fd, io->buf, (unsigned)io->len,
                           (uint64_t)-1);
    } else if (io->write) {
        io_uring_prep_write(sqe, io->fd, (const char *)io->buf + io->done,
                            (unsigned)(io->len - io->done), io->off + io->done);
    } else {
        io_uring_prep_read(sqe, io->fd, (char *)io->buf + io->done,
                           (unsigned)(io->len - io->done), io->off + io->done);
    }
    io_uring_sqe_set_data(sqe, io);
}

static void arm_wake(struct vd_ioloop *l)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_read(sqe, l->wake_fd, &l->wake_buf, sizeof(l->wake_buf), 0);
    io_uring_sqe_set_data(sqe, &tag_wake);
}

/* Queue what submitters posted, oldest first. true if anything was. */
static bool take_inbox(struct vd_ioloop *l)
{
    struct vd_hostio *io = atomic_exchange(&l->inbox, NULL), *rev = NULL;
    VD_ASSERT(self == l);
    if (io == NULL) {
        return false;
    }
    while (io != NULL) {
        struct vd_hostio *next = io->next;
        io->next = rev;
        rev = io;
        io = next;
    }
    while (rev != NULL) {
        struct vd_hostio *next = rev->next; /* a call may reuse rev */
        switch (rev->kind) {
        case VD_HOSTIO_STOP: {
            struct io_uring_sqe *sqe = get_sqe(l);
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data(sqe, &tag_stop);
            break;
        }
        case VD_HOSTIO_CALL:
            rev->cb(rev, 0);
            break;
        case VD_HOSTIO_FILE:
            l->busy++;
            queue(l, rev);
            break;
        case VD_HOSTIO_FD:
        case VD_HOSTIO_CMD:
            queue(l, rev);
            break;
        }
        rev = next;
    }
    return true;
}

static void complete(struct vd_ioloop *l, struct vd_hostio *io, int res)
{
    VD_ASSERT(self == l);
    if (io->kind == VD_HOSTIO_FD || io->kind == VD_HOSTIO_CMD) {
        io->cb(io, res);
        return;
    }
    if (res == -EAGAIN || res == -EINTR) {
        queue(l, io);
        return;
    }
    if (res > 0) {
        io->done += (size_t)res;
        if (io->done < io->len) {
            queue(l, io); /* short: continue where it stopped */
            return;
        }
        res = 0;
    } else if (res == 0) {
        if (io->write) {
            res = -EIO;
        } else {
            memset((char *)io->buf + io->done, 0, io->len - io->done);
        }
    }
    l->busy--;
    io->cb(io, res);
}

/* Handle every completion there is; false once told to stop. */
static bool reap(struct vd_ioloop *l, unsigned *count)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    bool run = true;
    io_uring_for_each_cqe(&l->ring, head, cqe)
    {
        void *data = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        seen++;
        if (data == &tag_stop) {
            run = false;
        } else if (data == &tag_wake) {
            arm_wake(l);
        } else {
            complete(l, data, res);
        }
    }
    io_uring_cq_advance(&l->ring, seen);
    *count = seen;
    return run;
}

static int ring_init(struct io_uring *ring, bool want_cmds, bool *sqe128)
{
    struct io_uring_params p = {0};
    /* One issuer, whose completions wait until it asks for them: no
     * interrupt of a busy thread per completion. 128-byte SQEs carry
     * device commands (FUSE over io_uring), only when asked for: twice
     * the memory per SQE for everything else. Older kernels: less. */
    p.flags = IORING_SETUP_CLAMP | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SQE128;
    if (want_cmds && io_uring_queue_init_params(RING_ENTRIES, ring, &p) == 0) {
        *sqe128 = true;
        return 0;
    }
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CLAMP | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(RING_ENTRIES, ring, &p) == 0) {
        return 0;
    }
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CLAMP;
    return io_uring_queue_init_params(RING_ENTRIES, ring, &p);
}

/* Whether to keep looking for work rather than sleep (note 4); busy_at is
 * when the thread last had any. */
static bool keep_polling(struct vd_ioloop *l, uint64_t busy_at)
{
    uint64_t until =
        atomic_load_explicit(&l->poll_any_until, memory_order_relaxed);
    uint64_t now;
    if (l->poll_ns == 0 && until == 0) {
        return false;
    }
    now = vd_ioloop_now_ns();
    if (now < until) {
        return now - busy_at <
               atomic_load_explicit(&l->poll_any_idle_ns, memory_order_relaxed);
    }
    return l->busy >= 2 && now - busy_at < l->poll_ns;
}

/* Run the timers that are due; return the nearest due time of those
 * still armed (0 = none). Note 5. */
static uint64_t run_timers(struct vd_ioloop *l)
{
    uint64_t now, next = 0;
    if (atomic_load(&l->armed) == 0) {
        return 0;
    }
    now = vd_ioloop_now_ns();
    for (struct vd_iotimer *t = atomic_load(&l->timers); t != NULL;
         t = t->next) {
        uint64_t due = atomic_load(&t->due_ns);
        if (due == 0) {
            continue;
        }
        if (due <= now) {
            if (atomic_compare_exchange_strong(&t->due_ns, &due, 0)) {
                atomic_fetch_sub(&l->armed, 1);
                t->cb(t); /* may arm it again */
            }
            due = atomic_load(&t->due_ns);
            if (due == 0) {
                continue;
            }
        }
        if (next == 0 || due < next) {
            next = due;
        }
    }
    return next;
}

/* Sleep until a completion, or until the nearest timer is due. */
static void wait_events(struct vd_ioloop *l, uint64_t due)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts;
    uint64_t now;
    if (due == 0) {
        io_uring_submit_and_wait(&l->ring, 1);
        return;
    }
    now = vd_ioloop_now_ns();
    if (due <= now) {
        return;
    }
    ts.tv_sec = (long long)((due - now) / 1000000000u);
    ts.tv_nsec = (long long)((due - now) % 1000000000u);
    io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
}

/* The ring is set up here, not by vd_ioloop_new: with SINGLE_ISSUER the
 * task that creates it is the only one that may submit. */
static void *io_main(void *arg)
{
    struct vd_ioloop *l = arg;
    uint64_t busy_at = 0;
    l->start_ret = ring_init(&l->ring, l->want_cmds, &l->sqe128);
    sem_post(&l->started);
    if (l->start_ret < 0) {
        return NULL;
    }
    self = l;
    completer = true;
    arm_wake(l);
    for (;;) {
        unsigned n = 0;
        bool posted = take_inbox(l);
        uint64_t due;
        io_uring_submit_and_get_events(&l->ring);
        if (!reap(l, &n)) {
            break;
        }
        due = run_timers(l);
        if (posted || n > 0) {
            busy_at = l->poll_ns > 0 || atomic_load(&l->poll_any_until) != 0
                          ? vd_ioloop_now_ns()
                          : 0;
            continue;
        }
        if (keep_polling(l, busy_at)) {
            continue; /* note 4: stay awake a moment for the next */
        }
        atomic_store(&l->sleeping, true);
        if (atomic_load(&l->inbox) != NULL) {
            atomic_store(&l->sleeping, false);
            continue;
        }
        due = run_timers(l); /* after `sleeping`: note 5 */
        wait_events(l, due);
        atomic_store(&l->sleeping, false);
    }
    VD_ASSERT(l->busy == 0); /* vd_ioloop_free: nothing may be in flight */
    io_uring_queue_exit(&l->ring);
    return NULL;
}

int vd_ioloop_new(unsigned poll_us, unsigned flags, struct vd_ioloop **out)
{
    struct vd_ioloop *l = calloc(1, sizeof(*l));
    int ret;
    *out = NULL;
    if (l == NULL) {
        return -ENOMEM;
    }
    l->poll_ns = (uint64_t)poll_us * 1000u;
    l->want_cmds = (flags & VD_IOLOOP_CMDS) != 0;
    l->stop_io.kind = VD_HOSTIO_STOP;
    l->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (l->wake_fd < 0) {
        ret = -errno;
        free(l);
        return ret;
    }
    sem_init(&l->started, 0, 0);
    pthread_mutex_init(&l->timers_lock, NULL);
    ret = -pthread_create(&l->thread, NULL, io_main, l);
    if (ret == 0) {
        while (sem_wait(&l->started) < 0) {
        }
        ret = l->start_ret;
        if (ret < 0) {
            pthread_join(l->thread, NULL);
        }
    }
    sem_destroy(&l->started);
    if (ret < 0) {
        pthread_mutex_destroy(&l->timers_lock);
        close(l->wake_fd);
        free(l);
        return ret;
    }
    *out = l;
    return 0;
}

void vd_ioloop_free(struct vd_ioloop *l)
{
    if (l == NULL) {
        return;
    }
    VD_ASSERT(self != l);
    post(l, &l->stop_io, &l->stop_io);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->timers_lock);
    close(l->wake_fd);
    free(l);
}

int vd_ioloop_cpu_ns(const struct vd_ioloop *l, uint64_t *ns)
{
    struct timespec ts;
    clockid_t clk;
    int r = pthread_getcpuclockid(l->thread, &clk);
    if (r != 0) {
        return -r;
    }
    if (clock_gettime(clk, &ts) < 0) {
        return -errno;
    }
    *ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return 0;
}

unsigned vd_ioloop_poll_us(const struct vd_ioloop *l)
{
    return (unsigned)(l->poll_ns / 1000u);
}

void vd_ioloop_poll_until(struct vd_ioloop *l, uint64_t until_ns,
                          uint64_t idle_ns)
{
    atomic_store_explicit(&l->poll_any_idle_ns, idle_ns, memory_order_relaxed);
    atomic_store_explicit(&l->poll_any_until, until_ns, memory_order_relaxed);
}

void vd_ioloop_timer_add(struct vd_ioloop *l, struct vd_iotimer *t)
{
    atomic_init(&t->due_ns, 0);
    pthread_mutex_lock(&l->timers_lock);
    t->next = atomic_load(&l->timers);
    atomic_store(&l->timers, t); /* published whole: the thread only reads */
    pthread_mutex_unlock(&l->timers_lock);
}

struct timer_del {
    struct vd_hostio io;
    struct vd_ioloop *l;
    struct vd_iotimer *t;
    sem_t done;
};

/* On the I/O thread, so no scan of the list is under way. */
static void timer_unlink(struct vd_hostio *io, int ret)
{
    struct timer_del *d = io->owner;
    struct vd_ioloop *l = d->l;
    struct vd_iotimer *head;
    (void)ret;
    pthread_mutex_lock(&l->timers_lock);
    head = atomic_load(&l->timers);
    if (head == d->t) {
        atomic_store(&l->timers, head->next);
    } else {
        for (struct vd_iotimer *p = head; p != NULL; p = p->next) {
            if (p->next == d->t) {
                p->next = d->t->next;
                break;
            }
        }
    }
    if (atomic_exchange(&d->t->due_ns, 0) != 0) {
        atomic_fetch_sub(&l->armed, 1);
    }
    pthread_mutex_unlock(&l->timers_lock);
    sem_post(&d->done);
}

void vd_ioloop_timer_del(struct vd_ioloop *l, struct vd_iotimer *t)
{
    struct timer_del d = {.l = l, .t = t};
    VD_ASSERT(self != l);
    sem_init(&d.done, 0, 0);
    d.io.cb = timer_unlink;
    d.io.owner = &d;
    vd_ioloop_call(l, &d.io);
    while (sem_wait(&d.done) < 0) {
    }
    sem_destroy(&d.done);
}

void vd_ioloop_timer_arm(struct vd_ioloop *l, struct vd_iotimer *t,
                         uint64_t due_ns)
{
    uint64_t old = atomic_load(&t->due_ns);
    if (due_ns == 0) {
        due_ns = 1;
    }
    do {
        if (old != 0 && old <= due_ns) {
            return; /* armed for earlier already */
        }
    } while (!atomic_compare_exchange_weak(&t->due_ns, &old, due_ns));
    if (old == 0) {
        atomic_fetch_add(&l->armed, 1);
    }
    if (self != l && atomic_exchange(&l->sleeping, false)) {
        uint64_t one = 1;
        while (write(l->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

void vd_ioloop_call(struct vd_ioloop *l, struct vd_hostio *io)
{
    io->kind = VD_HOSTIO_CALL;
    post(l, io, io);
}

int vd_ioloop_read_fd(struct vd_ioloop *l, struct vd_hostio *io)
{
    if (io->len > UINT32_MAX) {
        return -EINVAL;
    }
    io->kind = VD_HOSTIO_FD;
    io->done = 0;
    post(l, io, io);
    return 0;
}

bool vd_ioloop_has_cmd(const struct vd_ioloop *l)
{
    return l->sqe128;
}

int vd_ioloop_cmd(struct vd_ioloop *l, struct vd_ioloop_cmd *c)
{
    if (!l->sqe128) {
        return -ENOTSUP;
    }
    c->io.kind = VD_HOSTIO_CMD;
    c->io.done = 0;
    post(l, &c->io, &c->io);
    return 0;
}

void vd_ioloop_post_files(struct vd_ioloop *l, struct vd_hostio *first,
                          struct vd_hostio *last)
{
    post(l, first, last);
}
