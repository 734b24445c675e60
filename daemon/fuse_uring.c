/* fuse_uring.c — FUSE over io_uring (kernel 6.14+, opt-in with
 * --fuse-uring): the kernel hands requests to ring entries the daemon
 * registered on the I/O thread's ring, and takes each answer with the
 * command that also asks for the next request, so no read or write of
 * /dev/fuse is left on the data path.
 *
 * DESIGN NOTES
 * 1. Negotiation: the kernel offers FUSE_OVER_IO_URING in INIT only while
 *    the fuse module's enable_uring is on. The loop shows us the INIT
 *    request (vd_fuse_uring_init_request); libfuse writes the INIT reply
 *    through our session hook (fu_writev), which adds the flag only if it
 *    was offered, the ring takes commands and every entry's buffers could
 *    be allocated. Nothing that can fail in user space is left after the
 *    reply: once the kernel took the flag, every new request waits until
 *    all queues are registered.
 * 2. Registration: one queue per possible CPU (the kernel picks the queue
 *    of the CPU a request comes from), FU_DEPTH entries each, posted to the
 *    I/O thread right after the INIT reply. The count is the kernel's own,
 *    the weight of /sys/devices/system/cpu/possible: a queue left out
 *    would keep the ring from ever being ready, and every request waiting;
 *    one too many is refused, which falls back as below. A REGISTER the kernel
 * refuses comes back at once with an error, and the kernel then turns the ring
 *    off for the connection and serves through /dev/fuse again; the
 *    /dev/fuse loop keeps running in every case (FORGET and INTERRUPT
 *    always come that way), so a failed set-up never hangs the mount.
 *    VDISKD_FUSE_URING_FAULT=register makes every REGISTER invalid, for
 *    the tests of that fallback.
 * 3. A request arrives as the completion of its entry's command, on the
 *    I/O thread. It is laid out again as /dev/fuse would have delivered
 *    it (in header, per-opcode header, payload) and given to the loop
 *    (vd_fuse_loop_deliver): the fast path serves it there, anything else
 *    goes to the workers. Until answered, the entry is in a table keyed
 *    by the request's unique.
 * 4. Answers: every writer of replies (libfuse through fu_writev, the fast
 *    path through vd_fuse_uring_reply) asks the table first. A ring
 *    request's answer is copied into its entry (out header in the header
 *    buffer, the rest in the payload) and committed with
 *    COMMIT_AND_FETCH, posted to the I/O thread from any thread. Anything
 *    else (requests read from /dev/fuse, notifications) is written to
 *    /dev/fuse as before.
 * 5. End: the entries use a descriptor of their own (libfuse closes the
 *    session's at unmount, before stop's wake-up lookup is answered), and
 *    their commands hold the device open: closing descriptors no longer
 *    ends the connection, so stop aborts it once the loop has ended
 *    (vd_fuse_uring_holds_device). When the connection goes (unmount,
 *    abort) the kernel completes every waiting command with an error.
 *    The buffers are freed only once no command is left with the kernel;
 *    if that never comes, they stay allocated rather than be freed under
 *    the kernel. Without the ring, that descriptor is closed right after
 *    the INIT reply and nothing changes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "fuse-int.h"
#include "ioloop.h"
#include "log.h"

/* The kernel's interface (include/uapi/linux/fuse.h, protocol 7.42);
 * system headers may predate it. */
#define FU_OVER_IO_URING (1ULL << 41)
#define FU_INIT_EXT (1u << 30)
#define FU_MAX_PAGES (1u << 22)
#define FU_CMD_REGISTER 1u
#define FU_CMD_COMMIT_AND_FETCH 2u

struct fu_ent_in_out {
    uint64_t flags;
    uint64_t commit_id; /* the request's unique, echoed on commit */
    uint32_t payload_sz;
    uint32_t padding;
    uint64_t reserved;
};

struct fu_req_header {
    uint8_t in_out[128]; /* fuse_in_header in, fuse_out_header out */
    uint8_t op_in[128];  /* the opcode's own header (first argument) */
    struct fu_ent_in_out ent;
};

struct fu_cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

_Static_assert(sizeof(struct fu_ent_in_out) == 32, "uapi size");
_Static_assert(sizeof(struct fu_req_header) == 288, "uapi size");
_Static_assert(sizeof(struct fu_cmd_req) <= VD_IOLOOP_CMD_LEN, "uapi size");

#define FU_DEPTH 32      /* entries per queue: a QD32 client on one CPU */
#define FU_MAX_QUEUES 64 /* larger hosts: no ring (memory per entry) */
#define FU_HASH 256
#define FU_FREE_WAIT_MS 5000

struct vd_fuse_uring;

struct fu_ent {
    struct vd_ioloop_cmd cmd; /* first: the completion finds the entry */
    struct vd_fuse_uring *ur;
    struct fu_req_header *hdr; /* page aligned */
    uint8_t *payload;
    struct iovec iov[2]; /* the REGISTER's buffers */
    uint16_t qid;
    uint64_t unique;    /* request being served; hash_lock */
    uint64_t commit_id; /* its commit id */
    struct fu_ent *hnext;
};

struct vd_fuse_uring {
    struct vd_fuse_export *fx;
    int fd;
    bool fault_register; /* note 2 */
    /* INIT (note 1): set by the loop, read by the INIT reply's writer. */
    _Atomic uint64_t init_unique;
    atomic_bool offered;
    atomic_bool live; /* the kernel took the flag */
    unsigned nq;
    size_t payload_len;
    struct fu_ent *ents;  /* nq * FU_DEPTH */
    atomic_int in_kernel; /* commands the kernel holds (note 5) */
    atomic_int failed;    /* REGISTERs refused */
    atomic_ulong served;  /* requests that came through the ring */
    pthread_mutex_t hash_lock;
    struct fu_ent *hash[FU_HASH]; /* note 3 */
    pthread_mutex_t loop_lock;
    struct vd_fuse_loop *loop; /* the loop serving; loop_lock */
};

/* The kernel's num_possible_cpus(): queues it expects. 0 when unknown. */
static unsigned possible_cpus(void)
{
    char line[256];
    unsigned n = 0;
    FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
    char *p = line;
    if (f == NULL) {
        return 0;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    while (*p >= '0' && *p <= '9') {
        char *end;
        unsigned long a = strtoul(p, &end, 10), b = a;
        if (*end == '-') {
            b = strtoul(end + 1, &end, 10);
        }
        if (b < a || b - a >= 4096) {
            return 0;
        }
        n += (unsigned)(b - a + 1);
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void ents_free(struct vd_fuse_uring *ur)
{
    if (ur->ents == NULL) {
        return;
    }
    for (unsigned i = 0; i < ur->nq * FU_DEPTH; i++) {
        free(ur->ents[i].hdr);
        free(ur->ents[i].payload);
    }
    free(ur->ents);
    ur->ents = NULL;
}

static void on_cmd(struct vd_hostio *io, int res);

/* Every entry's buffers, sized for the connection's largest request. */
static int ents_alloc(struct vd_fuse_uring *ur, size_t payload_len)
{
    unsigned n = ur->nq * FU_DEPTH;
    ur->ents = calloc(n, sizeof(*ur->ents));
    if (ur->ents == NULL) {
        return -ENOMEM;
    }
    ur->payload_len = payload_len;
    for (unsigned i = 0; i < n; i++) {
        struct fu_ent *e = &ur->ents[i];
        void *h = NULL, *p = NULL;
        if (posix_memalign(&h, 4096, sizeof(*e->hdr)) != 0 ||
            posix_memalign(&p, 4096, payload_len) != 0) {
            free(h);
            ents_free(ur);
            return -ENOMEM;
        }
        e->ur = ur;
        e->hdr = h;
        e->payload = p;
        e->qid = (uint16_t)(i / FU_DEPTH);
        e->iov[0] = (struct iovec){h, ur->fault_register ? 1 : sizeof(*e->hdr)};
        e->iov[1] = (struct iovec){p, payload_len};
        e->cmd.io.fd = ur->fd;
        e->cmd.io.cb = on_cmd;
        e->cmd.io.owner = e;
    }
    return 0;
}

static void post_cmd(struct fu_ent *e, uint32_t op, void *buf, size_t len)
{
    struct fu_cmd_req req = {.commit_id = e->commit_id, .qid = e->qid};
    e->cmd.op = op;
    e->cmd.io.buf = buf;
    e->cmd.io.len = len;
    memset(e->cmd.data, 0, sizeof(e->cmd.data));
    memcpy(e->cmd.data, &req, sizeof(req));
    atomic_fetch_add(&e->ur->in_kernel, 1);
    /* Only set up with a ring that takes commands (note 1). */
    (void)vd_ioloop_cmd(e->ur->fx->cfg.ioloop, &e->cmd);
}

static void register_all(struct vd_fuse_uring *ur)
{
    for (unsigned i = 0; i < ur->nq * FU_DEPTH; i++) {
        struct fu_ent *e = &ur->ents[i];
        e->commit_id = 0;
        post_cmd(e, FU_CMD_REGISTER, e->iov, 2);
    }
}

static struct fu_ent **bucket(struct vd_fuse_uring *ur, uint64_t unique)
{
    return &ur->hash[(unique ^ (unique >> 8)) % FU_HASH];
}

/* The entry serving request `unique`, taken out of the table; NULL when
 * that request did not come through the ring. */
static struct fu_ent *take(struct vd_fuse_uring *ur, uint64_t unique)
{
    struct fu_ent **pp, *e = NULL;
    pthread_mutex_lock(&ur->hash_lock);
    for (pp = bucket(ur, unique); *pp != NULL; pp = &(*pp)->hnext) {
        if ((*pp)->unique == unique) {
            e = *pp;
            *pp = e->hnext;
            break;
        }
    }
    pthread_mutex_unlock(&ur->hash_lock);
    return e;
}

/* Copy an answer (out header first) into e and commit it (note 4). */
static void commit(struct fu_ent *e, const struct iovec *iov, int n)
{
    struct fuse_out_header oh;
    size_t at = 0, skip = sizeof(oh);
    memcpy(&oh, iov[0].iov_base, sizeof(oh));
    for (int i = 0; i < n; i++) {
        const uint8_t *src = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        src += skip;
        len -= skip;
        skip = 0;
        if (len > e->ur->payload_len - at) {
            oh.error = -EIO; /* cannot happen: payload_len >= max_write */
            at = 0;
            break;
        }
        memcpy(e->payload + at, src, len);
        at += len;
    }
    memcpy(e->hdr->in_out, &oh, sizeof(oh));
    e->hdr->ent.payload_sz = (uint32_t)at;
    post_cmd(e, FU_CMD_COMMIT_AND_FETCH, NULL, 0);
}

static void answer_err(struct fu_ent *e, int err)
{
    struct fuse_out_header oh = {
        .len = sizeof(oh), .error = err, .unique = e->unique};
    struct iovec iov = {&oh, sizeof(oh)};
    if (take(e->ur, e->unique) == e) {
        commit(e, &iov, 1);
    }
}

/* A request arrived in e (note 3); I/O thread. */
static void deliver(struct fu_ent *e)
{
    struct vd_fuse_uring *ur = e->ur;
    struct fuse_in_header in;
    uint32_t psz = e->hdr->ent.payload_sz;
    size_t oplen;
    bool ok = false;

    memcpy(&in, e->hdr->in_out, sizeof(in));
    e->unique = in.unique;
    e->commit_id = e->hdr->ent.commit_id;
    pthread_mutex_lock(&ur->hash_lock);
    e->hnext = *bucket(ur, in.unique);
    *bucket(ur, in.unique) = e;
    pthread_mutex_unlock(&ur->hash_lock);
    if (in.len < sizeof(in) + (size_t)psz || psz > ur->payload_len ||
        (oplen = in.len - sizeof(in) - psz) > sizeof(e->hdr->op_in)) {
        answer_err(e, -EIO);
        return;
    }
    {
        struct iovec parts[3] = {
            {&in, sizeof(in)}, {e->hdr->op_in, oplen}, {e->payload, psz}};
        pthread_mutex_lock(&ur->loop_lock);
        if (ur->loop != NULL) {
            ok = vd_fuse_loop_deliver(ur->loop, parts, 3);
        }
        pthread_mutex_unlock(&ur->loop_lock);
    }
    if (!ok) {
        answer_err(e, -ENOMEM);
    }
}

/* Completion of an entry's command: a request, or the end (note 5). */
static void on_cmd(struct vd_hostio *io, int res)
{
    struct fu_ent *e = io->owner;
    struct vd_fuse_uring *ur = e->ur;
    atomic_fetch_sub(&ur->in_kernel, 1);
    if (res == 0) {
        atomic_fetch_add_explicit(&ur->served, 1, memory_order_relaxed);
        deliver(e);
        return;
    }
    if (e->cmd.op == FU_CMD_REGISTER && res != -ENOTCONN &&
        res != -ECONNABORTED && atomic_fetch_add(&ur->failed, 1) == 0) {
        vd_warn("FUSE over io_uring: the kernel refused queue %u (%s); "
                "requests are served through /dev/fuse",
                (unsigned)e->qid, strerror(-res));
    } else if (e->cmd.op == FU_CMD_COMMIT_AND_FETCH && res != -ENOTCONN &&
               res != -ECONNABORTED && res != -ECANCELED && res != -ENOENT) {
        vd_warn("FUSE over io_uring: a commit on queue %u failed (%s); "
                "the entry is not used any more",
                (unsigned)e->qid, strerror(-res));
    }
}

/* Whether the kernel's INIT request offers the ring (note 1). */
void vd_fuse_uring_init_request(struct vd_fuse_export *fx, const void *req,
                                size_t len)
{
    struct vd_fuse_uring *ur = fx->uring;
    struct fuse_in_header in;
    struct fuse_init_in ii = {0};
    if (ur == NULL || len < sizeof(in)) {
        return;
    }
    memcpy(&in, req, sizeof(in));
    memcpy(&ii, (const uint8_t *)req + sizeof(in),
           len - sizeof(in) < sizeof(ii) ? len - sizeof(in) : sizeof(ii));
    atomic_store(&ur->offered,
                 (ii.flags & FU_INIT_EXT) != 0 &&
                     ((uint64_t)ii.flags2 << 32 & FU_OVER_IO_URING) != 0);
    atomic_store(&ur->init_unique, in.unique);
}

/* The INIT reply: ask for the ring if everything is ready for it. */
static ssize_t init_reply(struct vd_fuse_uring *ur, int fd, struct iovec *iov,
                          int count)
{
    struct fuse_init_out io;
    struct iovec out[2];
    bool want = false;
    ssize_t res;

    if (count != 2 || iov[1].iov_len != sizeof(io) ||
        ((const struct fuse_out_header *)iov[0].iov_base)->error != 0) {
        return writev(fd, iov, count);
    }
    memcpy(&io, iov[1].iov_base, sizeof(io));
    if (!atomic_load(&ur->offered)) {
        vd_warn("FUSE over io_uring was asked for, but the kernel does not "
                "offer it (kernel 6.14+ with the fuse module's enable_uring "
                "on): requests are served through /dev/fuse");
    } else {
        long page = sysconf(_SC_PAGESIZE);
        size_t pages = (io.flags & FU_MAX_PAGES) ? io.max_pages : 256;
        size_t len =
            (size_t)(page > 0 ? page : 4096) * (pages < 32 ? 32 : pages);
        if (len < io.max_write) {
            len = io.max_write;
        }
        if (ents_alloc(ur, len) < 0) {
            vd_warn("FUSE over io_uring: out of memory for its buffers; "
                    "requests are served through /dev/fuse");
        } else {
            want = true;
            io.flags |= FU_INIT_EXT;
            io.flags2 |= (uint32_t)(FU_OVER_IO_URING >> 32);
        }
    }
    out[0] = iov[0];
    out[1] = (struct iovec){&io, sizeof(io)};
    res = writev(fd, out, 2);
    if (!want || res < 0) {
        ents_free(ur);
        close(ur->fd); /* note 5: the session's descriptor alone */
        ur->fd = -1;
    } else {
        atomic_store(&ur->live, true);
        vd_info("FUSE over io_uring: %u queues of %u entries, %zu KiB each",
                ur->nq, FU_DEPTH, ur->payload_len / 1024);
        register_all(ur);
    }
    return res;
}

bool vd_fuse_uring_reply(struct vd_fuse_export *fx, const struct iovec *iov,
                         int count)
{
    struct vd_fuse_uring *ur = fx->uring;
    struct fuse_out_header oh;
    struct fu_ent *e;
    if (ur == NULL || !atomic_load(&ur->live) || count < 1 ||
        iov[0].iov_len < sizeof(oh)) {
        return false;
    }
    memcpy(&oh, iov[0].iov_base, sizeof(oh));
    if (oh.unique == 0 || (e = take(ur, oh.unique)) == NULL) {
        return false;
    }
    commit(e, iov, count);
    return true;
}

/* libfuse's writes to the session (note 4). */
ssize_t vd_fuse_uring_writev(struct vd_fuse_export *fx, int fd,
                             struct iovec *iov, int count)
{
    struct vd_fuse_uring *ur = fx->uring;
    const struct fuse_out_header *oh = iov[0].iov_base;
    uint64_t init = atomic_load(&ur->init_unique);
    ssize_t total = 0;
    if (count >= 1 && iov[0].iov_len >= sizeof(*oh) && init != 0 &&
        oh->unique == init) {
        atomic_store(&ur->init_unique, 0);
        return init_reply(ur, fd, iov, count);
    }
    if (vd_fuse_uring_reply(fx, iov, count)) {
        for (int i = 0; i < count; i++) {
            total += (ssize_t)iov[i].iov_len;
        }
        return total;
    }
    return writev(fd, iov, count);
}

int vd_fuse_uring_setup(struct vd_fuse_export *fx)
{
    struct vd_fuse_uring *ur;
    const char *fault = getenv("VDISKD_FUSE_URING_FAULT");
    unsigned nq = possible_cpus();

    if (fx->cfg.ioloop == NULL || !vd_ioloop_has_cmd(fx->cfg.ioloop)) {
        vd_warn("FUSE over io_uring: the I/O ring cannot carry its commands "
                "(io_uring with 128-byte entries missing); requests are "
                "served through /dev/fuse");
        return -ENOTSUP;
    }
    if (nq == 0 || nq > FU_MAX_QUEUES) {
        vd_warn("FUSE over io_uring: %u possible CPUs, not supported; "
                "requests are served through /dev/fuse",
                nq);
        return -ENOTSUP;
    }
    ur = calloc(1, sizeof(*ur));
    if (ur == NULL) {
        return -ENOMEM;
    }
    ur->fx = fx;
    /* Its own descriptor: libfuse closes the session's at unmount, and
     * the answer to stop's wake-up lookup still has to be committed. */
    ur->fd = fcntl(fuse_session_fd(fx->se), F_DUPFD_CLOEXEC, 0);
    if (ur->fd < 0) {
        free(ur);
        return -errno;
    }
    ur->nq = nq;
    ur->fault_register = fault != NULL && strcmp(fault, "register") == 0;
    pthread_mutex_init(&ur->hash_lock, NULL);
    pthread_mutex_init(&ur->loop_lock, NULL);
    fx->uring = ur; /* fuse_export.c's session writer calls uring_writev */
    return 0;
}

void vd_fuse_uring_attach(struct vd_fuse_export *fx, struct vd_fuse_loop *lp)
{
    struct vd_fuse_uring *ur = fx->uring;
    if (ur != NULL) {
        pthread_mutex_lock(&ur->loop_lock);
        ur->loop = lp;
        pthread_mutex_unlock(&ur->loop_lock);
    }
}

bool vd_fuse_uring_holds_device(const struct vd_fuse_export *fx)
{
    return fx->uring != NULL && fx->uring->fd >= 0;
}

void vd_fuse_uring_free(struct vd_fuse_export *fx)
{
    struct vd_fuse_uring *ur = fx->uring;
    int waited = 0;
    if (ur == NULL) {
        return;
    }
    if (atomic_load(&ur->live)) {
        vd_info("FUSE over io_uring: %lu requests came through the ring",
                atomic_load(&ur->served));
    }
    while (atomic_load(&ur->in_kernel) > 0 && waited < FU_FREE_WAIT_MS) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        waited++;
    }
    if (atomic_load(&ur->in_kernel) > 0) {
        vd_warn("FUSE over io_uring: %d commands still with the kernel; "
                "their buffers stay allocated",
                atomic_load(&ur->in_kernel));
        return; /* note 5 */
    }
    fx->uring = NULL;
    if (ur->fd >= 0) {
        close(ur->fd);
    }
    ents_free(ur);
    pthread_mutex_destroy(&ur->hash_lock);
    pthread_mutex_destroy(&ur->loop_lock);
    free(ur);
}
