/* request.c — run one NBD request to completion on some live connection:
 * submit with nbd_aio_*, sleep until libnbd's callbacks say it is done,
 * retry on another connection after a drop, fail at the deadline (see the
 * DESIGN NOTES in nbd-int.h). */
#include "vd_assert.h"
#include <errno.h>
#include <libnbd.h>
#include <string.h>
#include <time.h>

#include "ioloop.h"
#include "nbd-int.h"

static struct timespec abs_time(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000};
    return ts;
}

/* One caller waiting for one command (lives on the caller's stack). */
struct nbd_wait {
    pthread_mutex_t lk;
    pthread_cond_t cv;
    bool done; /* lk; the free callback has run */
    int err;   /* the completion callback's errno */
    struct nbd_req *r;
};

static int completion_cb(void *user_data, int *error)
{
    struct nbd_wait *w = user_data;
    w->err = *error;
    return 1; /* retire automatically */
}

static void free_cb(void *user_data)
{
    struct nbd_wait *w = user_data;
    pthread_mutex_lock(&w->lk);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->lk); /* w may be gone after this */
}

static int extent_cb(void *user_data, const char *context, uint64_t offset,
                     uint32_t *entries, size_t nr_entries, int *error)
{
    struct nbd_wait *w = user_data;
    if (!w->r->bs_got && nr_entries >= 2 &&
        strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0) {
        w->r->bs_len = entries[0];
        w->r->bs_flags = entries[1];
        w->r->bs_got = true;
    }
    return 0;
}

static int64_t submit(struct nbd_handle *h, struct nbd_req *r,
                      struct nbd_wait *w)
{
    nbd_completion_callback cb = {
        .callback = completion_cb,
        .user_data = w,
        .free = free_cb,
    };
    nbd_extent_callback ecb = {.callback = extent_cb, .user_data = w};

    switch (r->op) {
    case NBD_OP_READ:
        return nbd_aio_pread(h, r->buf, r->count, r->off, cb, 0);
    case NBD_OP_WRITE:
        return nbd_aio_pwrite(h, r->buf, r->count, r->off, cb, r->flags);
    case NBD_OP_FLUSH:
        return nbd_aio_flush(h, cb, 0);
    case NBD_OP_TRIM:
        return nbd_aio_trim(h, r->count, r->off, cb, r->flags);
    case NBD_OP_ZERO:
        return nbd_aio_zero(h, r->count, r->off, cb, r->flags);
    case NBD_OP_BLOCK_STATUS:
        return nbd_aio_block_status(h, r->count, r->off, ecb, cb, r->flags);
    }
    free_cb(w);
    return -1;
}

bool vd_nbd_conn_error(int err)
{
    return err == ENOTCONN || err == ESHUTDOWN || err == ECONNRESET ||
           err == EPIPE || err == ECONNABORTED;
}

void vd_nbd_poke(struct nbd_state *s)
{
    for (int i = 0; i < s->n_conns; i++) {
        struct nbd_conn *c = &s->conns[i];
        if (!atomic_exchange(&c->poked, true)) {
            vd_nbd_wake(c);
        }
    }
}

/* The server is stopping and waits for its clients to hang up: drop
 * every connection so it can, and redial. */
void vd_nbd_drop_all(struct nbd_state *s)
{
    for (int i = 0; i < s->n_conns; i++) {
        atomic_store(&s->conns[i].kill_why, NBD_KILL_SHUTDOWN);
        atomic_store(&s->conns[i].kill_gen, atomic_load(&s->conns[i].gen));
        vd_nbd_wake(&s->conns[i]);
    }
}

/* A live connection, round-robin; NULL when none comes up in time. */
static struct nbd_conn *pick(struct nbd_state *s, int64_t deadline)
{
    int64_t grace = 0;

    for (;;) {
        unsigned start = atomic_fetch_add(&s->rr, 1);
        for (int i = 0; i < s->n_conns; i++) {
            struct nbd_conn *c =
                &s->conns[(start + (unsigned)i) % (unsigned)s->n_conns];
            if (atomic_load(&c->up)) {
                return c;
            }
        }
        if (grace == 0) {
            vd_nbd_poke(s);
            grace = vd_nbd_now_ms() + NBD_POKE_WAIT_MS;
        }
        pthread_mutex_lock(&s->lock);
        if (s->n_up == 0) {
            /* note 4: wait out the outage's first timeout, and after that
             * only as long as a poked redial takes. */
            int64_t limit = s->down_since_ms + s->timeout_ms;
            if (limit < grace) {
                limit = grace;
            }
            if (limit > deadline) {
                limit = deadline;
            }
            if (atomic_load(&s->stopping) || vd_nbd_now_ms() >= limit) {
                pthread_mutex_unlock(&s->lock);
                return NULL;
            }
            struct timespec ts = abs_time(limit);
            pthread_cond_timedwait(&s->changed, &s->lock, &ts);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

int vd_nbd_run(struct nbd_state *s, struct nbd_req *r)
{
    int64_t deadline = vd_nbd_now_ms() + s->timeout_ms;
    struct nbd_wait w = {.r = r};
    pthread_condattr_t ca;
    int ret;

    /* It sleeps until a connection's I/O thread completes r. */
    VD_ASSERT(vd_ioloop_may_wait());
    pthread_mutex_init(&w.lk, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &ca);
    pthread_condattr_destroy(&ca);

    for (;;) {
        struct nbd_conn *c = pick(s, deadline);
        bool timed_out = false;
        int err;
        if (c == NULL) {
            ret = -EIO;
            break;
        }
        pthread_rwlock_rdlock(&c->hlock);
        struct nbd_handle *h = c->h;
        if (h == NULL) { /* retired since pick() looked */
            pthread_rwlock_unlock(&c->hlock);
            continue;
        }
        uint64_t gen = atomic_load(&c->gen);
        w.done = false;
        w.err = ENOTCONN; /* what a close without completion means */
        r->bs_got = false;
        int64_t cookie = submit(h, r, &w);
        if (cookie == -1) {
            err = nbd_get_errno();
            if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) || err == 0) {
                err = ENOTCONN;
            }
            pthread_rwlock_unlock(&c->hlock);
            vd_nbd_wake(c);
        } else {
            /* If the request did not fit into the socket at once, the I/O
             * thread must start polling for POLLOUT. */
            bool kick = nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE;
            pthread_rwlock_unlock(&c->hlock);
            if (kick) {
                vd_nbd_wake(c);
            }
            struct timespec ts = abs_time(deadline);
            pthread_mutex_lock(&w.lk);
            while (!w.done) {
                if (pthread_cond_timedwait(&w.cv, &w.lk, &ts) == ETIMEDOUT &&
                    !w.done) {
                    timed_out = true;
                    break;
                }
            }
            if (timed_out) { /* note 3: kill it, then it completes */
                atomic_store(&c->kill_why, NBD_KILL_TIMEOUT);
                atomic_store(&c->kill_gen, gen);
                vd_nbd_wake(c);
                while (!w.done) {
                    pthread_cond_wait(&w.cv, &w.lk);
                }
            }
            err = w.err;
            pthread_mutex_unlock(&w.lk);
        }
        if (err == 0) {
            ret = 0;
            break;
        }
        if (err == ESHUTDOWN) {
            vd_nbd_drop_all(s);
        }
        if (vd_nbd_conn_error(err) && !timed_out &&
            vd_nbd_now_ms() < deadline) {
            struct timespec pause = {.tv_nsec = 1000000};
            nanosleep(&pause, NULL); /* let the I/O thread retire it */
            continue;
        }
        ret = vd_nbd_conn_error(err) || timed_out ? -EIO : -err;
        break;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.lk);
    return ret;
}
