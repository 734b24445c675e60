/* aio.c — reads, writes and flushes started without a caller waiting on
 * them (vd_driver.submit): libnbd's callbacks hand a finished request to
 * its connection's I/O thread, which calls done; a timer thread resubmits
 * dropped requests and enforces the deadline (DESIGN NOTES 5-7 in
 * nbd-int.h). Both call done directly, under the completion contract of
 * formats/ioloop.h. */
#include <errno.h>
#include <libnbd.h>
#include <stdlib.h>
#include <time.h>

#include "ioloop.h"
#include "nbd-int.h"
#include "vd_assert.h"
#include "vd_driver.h"

/* One aio in the driver's hands, from submit until done. */
struct nbd_aio_req {
    struct vd_aio *aio;
    struct nbd_state *s;
    int64_t deadline;                /* ms, monotonic, fixed at submission */
    int64_t grace;                   /* timer only: end of the poke wait, 0 =
                                      * not waiting yet (note 4) */
    atomic_int refs;                 /* per attempt: submitter + libnbd */
    int err;                         /* completion callback's errno */
    struct nbd_conn *_Atomic conn;   /* last sent on; NULL while not sent */
    _Atomic uint64_t gen;            /* conn->gen when sent */
    bool timed_out;                  /* s->lock; the timer gave up on it */
    struct nbd_aio_req *prev, *next; /* s->lock; s->aio_head list */
    struct nbd_aio_req *qnext;       /* settle stack, s->aio_wait, or the
                                      * timer's waiting list */
};

/* The connection whose I/O thread this is (NULL elsewhere). */
static _Thread_local struct nbd_conn *io_conn;

void vd_nbd_aio_io_thread(struct nbd_conn *c)
{
    io_conn = c;
    vd_ioloop_mark_completer(); /* it settles: calls done */
}

bool vd_nbd_on_io_thread(const struct nbd_conn *c)
{
    return io_conn == c;
}

/* ---- the outstanding list (s->lock held) ------------------------------ */

static void list_append(struct nbd_state *s, struct nbd_aio_req *r)
{
    VD_ASSERT_HELD(&s->lock);
    r->next = NULL;
    r->prev = s->aio_tail;
    if (s->aio_tail != NULL) {
        s->aio_tail->next = r;
    } else {
        s->aio_head = r;
    }
    s->aio_tail = r;
}

static void list_remove(struct nbd_state *s, struct nbd_aio_req *r)
{
    VD_ASSERT_HELD(&s->lock);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        s->aio_head = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    } else {
        s->aio_tail = r->prev;
    }
}

/* ---- completion ------------------------------------------------------- */

/* Call done exactly once and forget r. Any thread, no locks held. */
static void finish(struct nbd_aio_req *r, int ret)
{
    struct nbd_state *s = r->s;
    struct vd_aio *aio = r->aio;

    VD_ASSERT_NOT_HELD(&s->lock);
    pthread_mutex_lock(&s->lock);
    list_remove(s, r);
    pthread_mutex_unlock(&s->lock);
    free(r);
    aio->done(aio, ret);
}

/* Drop one reference of the current attempt (note 5). */
static void put(struct nbd_aio_req *r)
{
    struct nbd_conn *c = atomic_load(&r->conn);
    if (atomic_fetch_sub(&r->refs, 1) != 1) {
        return;
    }
    r->qnext = atomic_load(&c->settle);
    while (!atomic_compare_exchange_weak(&c->settle, &r->qnext, r)) {
    }
    if (io_conn != c) {
        vd_nbd_wake(c); /* its own thread settles after this callback */
    }
}

static int completion_cb(void *user_data, int *error)
{
    struct nbd_aio_req *r = user_data;
    r->err = *error;
    return 1; /* retire automatically */
}

static void free_cb(void *user_data)
{
    put(user_data);
}

/* Send r on a live connection, round-robin: 0 when libnbd took it,
 * -ENOTCONN when no connection could, another -errno when the request
 * itself was refused. */
static int send_req(struct nbd_state *s, struct nbd_aio_req *r)
{
    unsigned start = atomic_fetch_add(&s->rr, 1);
    struct vd_aio *aio = r->aio;

    for (int i = 0; i < s->n_conns; i++) {
        struct nbd_conn *c =
            &s->conns[(start + (unsigned)i) % (unsigned)s->n_conns];
        if (!atomic_load(&c->up)) {
            continue;
        }
        pthread_rwlock_rdlock(&c->hlock);
        struct nbd_handle *h = c->h;
        if (h == NULL) {
            pthread_rwlock_unlock(&c->hlock);
            continue;
        }
        nbd_completion_callback cb = {
            .callback = completion_cb, .user_data = r, .free = free_cb};
        atomic_store(&r->conn, c);
        atomic_store(&r->gen, atomic_load(&c->gen));
        atomic_store(&r->refs, 2);
        r->err = ENOTCONN; /* what a close without completion means */
        int64_t cookie;
        switch (aio->op) {
        case VD_AIO_READ:
            cookie = nbd_aio_pread(h, aio->buf, aio->len, aio->off, cb, 0);
            break;
        case VD_AIO_WRITE:
            cookie = nbd_aio_pwrite(h, aio->buf, aio->len, aio->off, cb, 0);
            break;
        default: /* with multi-conn, one flush covers every connection */
            cookie = nbd_aio_flush(h, cb, 0);
            break;
        }
        if (cookie == -1) {
            /* libnbd called free_cb already: r is ours alone again. */
            int err = nbd_get_errno();
            if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) || err == 0) {
                err = ENOTCONN;
            }
            pthread_rwlock_unlock(&c->hlock);
            atomic_store(&r->conn, NULL);
            vd_nbd_wake(c);
            if (!vd_nbd_conn_error(err)) {
                return -err;
            }
            continue;
        }
        /* Not all of it fit into the socket: the I/O thread must poll
         * for POLLOUT. */
        bool kick = nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE;
        put(r); /* r may be settled and gone from here on */
        pthread_rwlock_unlock(&c->hlock);
        if (kick) {
            vd_nbd_wake(c);
        }
        return 0;
    }
    return -ENOTCONN;
}

/* The errno done gets for a request that failed with err (note 3). */
static int result(const struct nbd_aio_req *r, int err, bool timed_out)
{
    if (vd_nbd_conn_error(err) || timed_out) {
        return -EIO;
    }
    return err == EPERM && r->aio->op == VD_AIO_WRITE ? -EROFS : -err;
}

/* Hand r to the timer to be sent again. */
static void requeue(struct nbd_aio_req *r)
{
    struct nbd_state *s = r->s;
    atomic_store(&r->conn, NULL);
    pthread_mutex_lock(&s->lock);
    r->qnext = s->aio_wait;
    s->aio_wait = r;
    pthread_cond_signal(&s->aio_cv);
    pthread_mutex_unlock(&s->lock);
}

void vd_nbd_aio_settle(struct nbd_conn *c)
{
    struct nbd_aio_req *r = atomic_exchange(&c->settle, NULL);
    struct nbd_aio_req *fifo = NULL;

    VD_ASSERT(io_conn == c); /* c's I/O thread only (nbd-int.h) */
    while (r != NULL) {      /* the stack is newest first */
        struct nbd_aio_req *next = r->qnext;
        r->qnext = fifo;
        fifo = r;
        r = next;
    }
    for (r = fifo; r != NULL;) {
        struct nbd_aio_req *next = r->qnext;
        struct nbd_state *s = r->s;
        int err = r->err;
        bool timed_out;

        if (err == 0) {
            finish(r, 0); /* a reply that beat the timer still counts */
            r = next;
            continue;
        }
        if (err == ESHUTDOWN) {
            vd_nbd_drop_all(s);
        }
        pthread_mutex_lock(&s->lock);
        timed_out = r->timed_out;
        pthread_mutex_unlock(&s->lock);
        if (vd_nbd_conn_error(err) && !timed_out &&
            !atomic_load(&s->stopping) && vd_nbd_now_ms() < r->deadline) {
            requeue(r);
        } else {
            finish(r, result(r, err, timed_out));
        }
        r = next;
    }
}

/* ---- submission ------------------------------------------------------- */

int vd_nbd_aio_submit(struct nbd_state *s, struct vd_aio *aio)
{
    struct nbd_aio_req *r;

    if (atomic_load(&s->stopping)) {
        return -EAGAIN;
    }
    if (aio->op == VD_AIO_FLUSH ? !(atomic_load(&s->caps) & NBD_CAP_FLUSH)
                                : aio->len > atomic_load(&s->max_request)) {
        /* The synchronous path splits, and answers a flush the server
         * does not offer at once. */
        return -EAGAIN;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -EAGAIN;
    }
    r->aio = aio;
    r->s = s;
    pthread_mutex_lock(&s->lock);
    r->deadline = vd_nbd_now_ms() + s->timeout_ms; /* in list order */
    list_append(s, r);
    pthread_mutex_unlock(&s->lock);
    if (send_req(s, r) < 0) {
        /* Nobody else has seen r: no connection, or a refusal that the
         * synchronous path reports (and retries) its own way. */
        pthread_mutex_lock(&s->lock);
        list_remove(s, r);
        pthread_mutex_unlock(&s->lock);
        free(r);
        return -EAGAIN;
    }
    return 0;
}

/* ---- the timer thread ------------------------------------------------- */

/* Until when r may wait for a connection (note 4); s->lock held. */
static int64_t wait_limit(struct nbd_state *s, struct nbd_aio_req *r,
                          int64_t now)
{
    int64_t limit;
    VD_ASSERT_HELD(&s->lock);
    if (r->grace == 0) {
        vd_nbd_poke(s);
        r->grace = now + NBD_POKE_WAIT_MS;
    }
    if (s->n_up > 0) {
        return now + 1; /* one is being published or retired: look again */
    }
    limit = s->down_since_ms + s->timeout_ms;
    if (limit < r->grace) {
        limit = r->grace;
    }
    return limit < r->deadline ? limit : r->deadline;
}

/* Send every waiting aio, or fail it once its wait is over; keep the
 * rest in *waiting (the timer's own list). No locks held. Returns the
 * earliest time one needs another look, or INT64_MAX. */
static int64_t resend(struct nbd_state *s, struct nbd_aio_req **waiting)
{
    struct nbd_aio_req *list = *waiting, *keep = NULL;
    int64_t next = INT64_MAX;

    while (list != NULL) {
        struct nbd_aio_req *r = list;
        int64_t now = vd_nbd_now_ms(), limit = 0;
        int ret;
        list = r->qnext;
        if (atomic_load(&s->stopping) || now >= r->deadline) {
            finish(r, -EIO);
            continue;
        }
        /* Once sent, a later wait for a connection starts afresh. */
        int64_t grace = r->grace;
        r->grace = 0;
        ret = send_req(s, r);
        if (ret == 0) {
            continue; /* in libnbd's hands again: r is not ours to touch */
        }
        r->grace = grace;
        if (ret != -ENOTCONN) {
            finish(r, result(r, -ret, false));
            continue;
        }
        pthread_mutex_lock(&s->lock);
        limit = wait_limit(s, r, now);
        pthread_mutex_unlock(&s->lock);
        if (now >= limit) {
            finish(r, -EIO);
            continue;
        }
        r->qnext = keep;
        keep = r;
        next = limit < next ? limit : next;
    }
    *waiting = keep;
    return next;
}

/* Kill the connection of every aio past its deadline that is still on
 * the wire (note 3); the kill completes it. s->lock held. Returns the
 * next deadline, or INT64_MAX. */
static int64_t expire(struct nbd_state *s, int64_t now)
{
    struct nbd_aio_req *r;
    VD_ASSERT_HELD(&s->lock);
    for (r = s->aio_head; r != NULL && r->deadline <= now; r = r->next) {
        struct nbd_conn *c = atomic_load(&r->conn);
        if (r->timed_out || c == NULL) {
            continue; /* already given up on, or waiting (resend's job) */
        }
        r->timed_out = true;
        atomic_store(&c->kill_why, NBD_KILL_TIMEOUT);
        atomic_store(&c->kill_gen, atomic_load(&r->gen));
        vd_nbd_wake(c);
    }
    return r != NULL ? r->deadline : INT64_MAX;
}

static void *timer_main(void *arg)
{
    struct nbd_state *s = arg;
    struct nbd_aio_req *waiting = NULL; /* this thread's own */

    vd_ioloop_mark_completer(); /* it fails and retries: calls done */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        int64_t next_resend = INT64_MAX;
        /* Every wake may be a connection that came up: retry them all. */
        while (s->aio_wait != NULL || waiting != NULL) {
            while (s->aio_wait != NULL) {
                struct nbd_aio_req *r = s->aio_wait;
                s->aio_wait = r->qnext;
                r->qnext = waiting;
                waiting = r;
            }
            pthread_mutex_unlock(&s->lock);
            next_resend = resend(s, &waiting);
            pthread_mutex_lock(&s->lock);
            if (s->aio_wait == NULL) {
                break;
            }
        }
        if (s->aio_quit) {
            break; /* stopping was set: resend failed every one */
        }
        int64_t now = vd_nbd_now_ms();
        int64_t next = expire(s, now);
        next = next_resend < next ? next_resend : next;
        /* With nothing due, look again after one timeout: an aio
         * submitted meanwhile is due no sooner than that. */
        if (next > now + s->timeout_ms) {
            next = now + s->timeout_ms;
        }
        struct timespec ts = {.tv_sec = next / 1000,
                              .tv_nsec = (next % 1000) * 1000000};
        pthread_cond_timedwait(&s->aio_cv, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int vd_nbd_aio_start(struct nbd_state *s)
{
    int r = pthread_create(&s->aio_thread, NULL, timer_main, s);
    if (r != 0) {
        return -r;
    }
    s->aio_started = true;
    return 0;
}

void vd_nbd_aio_stop(struct nbd_state *s)
{
    if (!s->aio_started) {
        return;
    }
    /* The I/O threads are gone: every aio libnbd held is settled, and
     * what waits fails on this last pass (stopping is set). */
    pthread_mutex_lock(&s->lock);
    s->aio_quit = true;
    pthread_cond_signal(&s->aio_cv);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->aio_thread, NULL);
    s->aio_started = false;
}
