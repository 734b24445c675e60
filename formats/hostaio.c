/* hostaio.c — io_uring for host file I/O (see hostaio.h).
 *
 * DESIGN NOTES
 * 1. One ring for the process, owned by one I/O thread that alone submits
 *    and reaps. Submitters push requests onto a lock-free inbox and write
 *    an eventfd only when the thread has said it is going to sleep; the
 *    thread keeps a read of that eventfd in the ring. Owning the ring
 *    matters: io_uring delivers a completion as task work to the task that
 *    submitted the request, so requests submitted by FUSE workers would
 *    interrupt a worker per completion, and then wake a second thread to
 *    reap it. Here completions wait (DEFER_TASKRUN) until the I/O thread
 *    asks for them, once per loop, together with its next submissions.
 * 2. A short read or write continues from where it stopped; a read that
 *    reaches end of file (0 bytes) fills the rest with zeroes, as
 *    vd_pread_full does. -EAGAIN and -EINTR results are resubmitted.
 * 3. Only requests the O_DIRECT descriptor can take as they are go to it;
 *    unaligned ones are refused with -EAGAIN and take the synchronous path,
 *    which bounces them. Files opened without O_DIRECT use the buffered
 *    descriptor for everything.
 * 4. Shutdown posts a marker the I/O thread turns into a NOP; the thread
 *    ends when that completes. Callbacks run on the I/O thread and must
 *    not block (they answer FUSE requests).
 * 5. Polling (vd_hostio_set_poll): after work, the thread looks for more
 *    for a moment before it sleeps, saving the wake-up (on a VM, an
 *    interrupt to a halted vCPU) when the next request or completion is
 *    due soon. Only while two or more file requests are in flight: at
 *    queue depth 1 the next event is a whole disk latency away, and a
 *    spinning thread would take the CPU from the kernel threads that
 *    complete it. The exception is a client that flushes one request at
 *    a time (a database's write, fsync, write, ...): for FLUSH_HINT_NS
 *    after a flush was answered (vd_hostio_flush_hint) the thread polls
 *    at any depth, for three times the window, which covers the gap
 *    between a reply and the client's next request. A trace of 4k
 *    writes with fsync at QD1 showed each arrival waking a halted vCPU
 *    (~40 us); polling then gave 4.5k against 3.3k IOPS, for about twice
 *    the daemon CPU per request. 4k reads at QD1 got slower with polling
 *    (10.7k vs 13.1k), which is why only flushes turn it on.
 */
#include "hostaio.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fault.h"
#include "vd_driver.h"

#define RING_ENTRIES 512

/* user_data tags that are not requests */
static char tag_wake, tag_stop;
static struct vd_hostio stop_io;   /* posted by shutdown (note 4) */
static _Atomic uint64_t poll_ns = 0;
static _Atomic uint64_t flush_hint_until;   /* note 5; monotonic ns */
#define FLUSH_HINT_NS 2000000u
static unsigned busy;   /* I/O thread only: file requests in the ring */

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER; /* setup */
static pthread_cond_t ring_cond = PTHREAD_COND_INITIALIZER;
static enum { RING_NONE, RING_STARTING, RING_UP, RING_FAILED } ring_state;
static pthread_t io_thread;

/* Everything below belongs to the I/O thread, except the inbox, `sleeping`
 * and the eventfd, through which submitters hand requests over. */
static struct io_uring ring;
static _Atomic(struct vd_hostio *) inbox;   /* newest first */
static atomic_bool sleeping;
static int wake_fd = -1;
static uint64_t wake_buf;

/* Hand a chain of requests (first .. last through ->next) to the I/O
 * thread, waking it if it sleeps (note 1). */
static void post(struct vd_hostio *first, struct vd_hostio *last)
{
    struct vd_hostio *head = atomic_load(&inbox);
    do {
        last->next = head;
    } while (!atomic_compare_exchange_weak(&inbox, &head, first));
    if (atomic_exchange(&sleeping, false)) {
        uint64_t one = 1;
        while (write(wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

/* Pick the descriptor for io and reset its progress; -EAGAIN when it does
 * not suit asynchronous I/O (note 3). */
static int prepare(struct vd_hostio *io)
{
    if (!vd_hostio_suits(io->hf, io->buf, io->len, io->off)) {
        return -EAGAIN;
    }
    io->fd = io->hf->dfd >= 0 ? io->hf->dfd : io->hf->fd;
    io->done = 0;
    io->raw = false;
    return 0;
}

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    while (sqe == NULL) {
        io_uring_submit(&ring);   /* make room */
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

/* An SQE for io's remaining bytes. */
static void queue(struct vd_hostio *io)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (io->raw) {
        io_uring_prep_read(sqe, io->fd, io->buf, (unsigned)io->len,
                           (uint64_t)-1);
    } else if (io->write) {
        io_uring_prep_write(sqe, io->fd, (const char *)io->buf + io->done,
                            (unsigned)(io->len - io->done),
                            io->off + io->done);
    } else {
        io_uring_prep_read(sqe, io->fd, (char *)io->buf + io->done,
                           (unsigned)(io->len - io->done), io->off + io->done);
    }
    io_uring_sqe_set_data(sqe, io);
}

static void arm_wake(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_read(sqe, wake_fd, &wake_buf, sizeof(wake_buf), 0);
    io_uring_sqe_set_data(sqe, &tag_wake);
}

/* Queue what submitters posted, oldest first. true if anything was. */
static bool take_inbox(void)
{
    struct vd_hostio *io = atomic_exchange(&inbox, NULL), *rev = NULL;
    if (io == NULL) {
        return false;
    }
    while (io != NULL) {
        struct vd_hostio *next = io->next;
        io->next = rev;
        rev = io;
        io = next;
    }
    for (; rev != NULL; rev = rev->next) {
        if (rev == &stop_io) {
            struct io_uring_sqe *sqe = get_sqe();
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data(sqe, &tag_stop);
        } else {
            busy += !rev->raw;
            queue(rev);
        }
    }
    return true;
}

static void complete(struct vd_hostio *io, int res)
{
    if (io->raw) {
        io->cb(io, res);
        return;
    }
    if (res == -EAGAIN || res == -EINTR) {
        queue(io);
        return;
    }
    if (res > 0) {
        io->done += (size_t)res;
        if (io->done < io->len) {
            queue(io);   /* short: continue where it stopped */
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
    busy--;
    io->cb(io, res);
}

/* Handle every completion there is; false once told to stop. */
static bool reap(unsigned *count)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    bool run = true;
    io_uring_for_each_cqe(&ring, head, cqe) {
        void *data = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        seen++;
        if (data == &tag_stop) {
            run = false;
        } else if (data == &tag_wake) {
            arm_wake();
        } else {
            complete(data, res);
        }
    }
    io_uring_cq_advance(&ring, seen);
    *count = seen;
    return run;
}

static int ring_init(void)
{
    struct io_uring_params p = {0};
    /* One issuer, whose completions wait until it asks for them: no
     * interrupt of a busy thread per completion. Older kernels: plain. */
    p.flags = IORING_SETUP_CLAMP | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(RING_ENTRIES, &ring, &p) == 0) {
        return 0;
    }
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CLAMP;
    return io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
}

static void set_state(int state)
{
    pthread_mutex_lock(&ring_lock);
    ring_state = state;
    pthread_cond_broadcast(&ring_cond);
    pthread_mutex_unlock(&ring_lock);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *io_main(void *arg)
{
    (void)arg;
    if (ring_init() < 0) {
        set_state(RING_FAILED);
        return NULL;
    }
    uint64_t busy_at = 0;
    arm_wake();
    set_state(RING_UP);
    for (;;) {
        unsigned n = 0;
        bool posted = take_inbox();
        io_uring_submit_and_get_events(&ring);
        if (!reap(&n)) {
            break;
        }
        if (posted || n > 0) {
            busy_at = poll_ns > 0 ? now_ns() : 0;
            continue;
        }
        if (poll_ns > 0) {
            uint64_t now = now_ns();
            bool hinted = now < atomic_load(&flush_hint_until);
            if ((busy >= 2 || hinted) &&
                now - busy_at < (hinted ? 3 * poll_ns : poll_ns)) {
                continue;   /* note 5: stay awake a moment for the next */
            }
        }
        atomic_store(&sleeping, true);
        if (atomic_load(&inbox) != NULL) {
            atomic_store(&sleeping, false);
            continue;
        }
        io_uring_submit_and_wait(&ring, 1);
        atomic_store(&sleeping, false);
    }
    io_uring_queue_exit(&ring);
    return NULL;
}

/* Start the I/O thread once; false when io_uring is not available. */
static bool ring_up(void)
{
    int state;
    pthread_mutex_lock(&ring_lock);
    if (ring_state == RING_NONE) {
        ring_state = RING_STARTING;
        wake_fd = eventfd(0, EFD_CLOEXEC);
        if (wake_fd < 0 ||
            pthread_create(&io_thread, NULL, io_main, NULL) != 0) {
            ring_state = RING_FAILED;
        }
    }
    while (ring_state == RING_STARTING) {
        pthread_cond_wait(&ring_cond, &ring_lock);
    }
    state = ring_state;
    pthread_mutex_unlock(&ring_lock);
    return state == RING_UP;
}

void vd_hostio_set_poll(unsigned us)
{
    atomic_store(&poll_ns, (uint64_t)us * 1000u);
}

void vd_hostio_flush_hint(void)
{
    if (atomic_load(&poll_ns) > 0) {
        atomic_store(&flush_hint_until, now_ns() + FLUSH_HINT_NS);
    }
}

int vd_hostio_read_fd(struct vd_hostio *io)
{
    if (io->len > UINT32_MAX || !ring_up()) {
        return -EAGAIN;
    }
    io->raw = true;
    io->done = 0;
    post(io, io);
    return 0;
}

void vd_hostio_shutdown(void)
{
    pthread_mutex_lock(&ring_lock);
    if (ring_state == RING_UP) {
        pthread_mutex_unlock(&ring_lock);
        post(&stop_io, &stop_io);
        pthread_join(io_thread, NULL);
        pthread_mutex_lock(&ring_lock);
    } else if (ring_state == RING_FAILED) {
        pthread_join(io_thread, NULL);
    }
    if (wake_fd >= 0) {
        close(wake_fd);
        wake_fd = -1;
    }
    ring_state = RING_NONE;
    pthread_mutex_unlock(&ring_lock);
}

bool vd_hostio_suits(const struct vd_hostfile *hf, const void *buf,
                     size_t len, uint64_t off)
{
    if (len > UINT32_MAX) {
        return false;
    }
    return hf->dfd < 0 ||
           (off % hf->off_align == 0 && len % hf->off_align == 0 &&
            (uintptr_t)buf % hf->mem_align == 0);
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
    batch_put(b, vd_fault_complete(io->write ? VD_FAULT_DATA_WRITE : VD_FAULT_READ, ret));
}

int vd_hostio_batch_submit(struct vd_hostio_batch *b)
{
    unsigned i;
    for (i = 0; i < b->n; i++) {
        b->io[i].cb = batch_seg_done;
        b->io[i].owner = b;
        if (prepare(&b->io[i]) < 0) {
            return -EAGAIN;
        }
        b->io[i].next = i + 1 < b->n ? &b->io[i + 1] : NULL;
    }
    if (b->n > 0 && !ring_up()) {
        return -EAGAIN;
    }
    __atomic_store_n(&b->pending, (int)b->n + 1, __ATOMIC_RELEASE);
    if (b->n > 0) {
        /* post() wants newest first; order among segments does not matter */
        post(&b->io[0], &b->io[b->n - 1]);
    }
    batch_put(b, 0);
    return 0;
}
