/* refresh.c — an RBD image's watcher thread (notes 6 and 7 in rbd-int.h).
 *
 * It opens a lazily opened image once its cluster answers, then does the
 * calls into librbd that may wait on an OSD for what the API and getattr
 * show (allocated bytes, the exclusive-lock owner), so that those
 * readers never wait longer than VD_RBD_LOOK_WAIT_MS, whatever the
 * cluster does. While the last I/O timed out it probes the image every
 * VD_RBD_RETRY_S, so the link state comes back without any I/O. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rbd-int.h"
#include "vd_error.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static int sum_extent(uint64_t off, size_t len, int exists, void *arg)
{
    (void)off;
    if (exists) {
        *(uint64_t *)arg += len;
    }
    return 0;
}

static bool link_down(struct rbd_state *s)
{
    return atomic_load(&s->io_timed_out);
}

/* One look, without conn_lock: each call may wait an op timeout. */
static void look(struct rbd_state *s)
{
    uint64_t sum = 0;
    int owner = 0;

    if (link_down(s)) {
        /* One small read: an answer clears io_timed_out (aio.c's rule),
         * a timeout leaves the rest for the next round. */
        char buf[512];
        uint64_t size = atomic_load(&s->size);
        size_t n = size < sizeof(buf) ? (size_t)size : sizeof(buf);
        if (vd_rbd_io_errno(s, rbd_read2(s->image, 0, n, buf, 0)) < 0) {
            return;
        }
    }
    /* Only where the object map answers (fast-diff); otherwise unknown
     * rather than an OSD op per object. */
    if ((s->features & RBD_FEATURE_FAST_DIFF) &&
        rbd_diff_iterate2(s->image, NULL, 0, atomic_load(&s->size), 0, 1,
                          sum_extent, &sum) == 0) {
        atomic_store(&s->allocated, (int64_t)sum);
    }
    /* It asks the OSD whether the header is still locked by us. */
    if ((s->features & RBD_FEATURE_EXCLUSIVE_LOCK) && !s->readonly &&
        rbd_is_exclusive_lock_owner(s->image, &owner) == 0) {
        atomic_store(&s->lock_owner, owner != 0);
    }
}

static void *watcher_main(void *arg)
{
    struct rbd_state *s = arg;
    struct timespec until;

    pthread_mutex_lock(&s->conn_lock);
    while (!s->conn_stop) {
        if (!vd_rbd_up(s)) {
            struct vd_error e = {0};
            pthread_mutex_unlock(&s->conn_lock);
            int ret = vd_rbd_open_image(s, false, &e);
            pthread_mutex_lock(&s->conn_lock);
            if (ret == 0) {
                s->last_error[0] = '\0';
                atomic_store_explicit(&s->up, true, memory_order_release);
                pthread_cond_broadcast(&s->conn_cv);
                continue;
            }
            snprintf(s->last_error, sizeof(s->last_error), "%.*s",
                     (int)sizeof(s->last_error) - 1, e.msg);
            deadline_in(&until, VD_RBD_RETRY_S * 1000);
            pthread_cond_timedwait(&s->conn_cv, &s->conn_lock, &until);
            continue;
        }
        bool probe = link_down(s) && !atomic_load(&s->fenced);
        if (s->look_want > s->look_done || probe) {
            uint64_t want = s->look_want;
            s->look_busy = true;
            s->look_started_ms = mono_ms();
            pthread_mutex_unlock(&s->conn_lock);
            look(s);
            pthread_mutex_lock(&s->conn_lock);
            s->look_busy = false;
            if (!link_down(s)) {
                vd_rbd_cluster_set_stuck(s->loc.cluster, false);
            }
            s->look_done = want;
            s->look_done_ms = mono_ms();
            pthread_cond_broadcast(&s->conn_cv);
            if (link_down(s) && !s->conn_stop) {
                deadline_in(&until, VD_RBD_RETRY_S * 1000);
                pthread_cond_timedwait(&s->conn_cv, &s->conn_lock, &until);
            }
            continue;
        }
        pthread_cond_wait(&s->conn_cv, &s->conn_lock);
    }
    pthread_mutex_unlock(&s->conn_lock);
    return NULL;
}

int vd_rbd_watcher_start(struct rbd_state *s)
{
    int ret;
    if (s->watcher_started) {
        return 0;
    }
    ret = -pthread_create(&s->watcher, NULL, watcher_main, s);
    if (ret == 0) {
        s->watcher_started = true;
    }
    return ret;
}

void vd_rbd_watcher_stop(struct rbd_state *s)
{
    pthread_mutex_lock(&s->conn_lock);
    s->conn_stop = true;
    pthread_cond_broadcast(&s->conn_cv);
    bool started = s->watcher_started;
    s->watcher_started = false;
    pthread_mutex_unlock(&s->conn_lock);
    if (started) {
        pthread_join(s->watcher, NULL);
    }
}

void vd_rbd_refresh(struct rbd_state *s, int64_t max_age_ms)
{
    struct timespec until;
    int64_t now = mono_ms();
    uint64_t mine;

    if (!vd_rbd_up(s)) {
        return; /* the watcher is still connecting */
    }
    pthread_mutex_lock(&s->conn_lock);
    if (s->conn_stop || vd_rbd_watcher_start(s) < 0 ||
        (s->look_done_ms != 0 && now - s->look_done_ms <= max_age_ms)) {
        pthread_mutex_unlock(&s->conn_lock);
        return;
    }
    mine = ++s->look_want;
    pthread_cond_broadcast(&s->conn_cv);
    /* Known down, or a look already waits on the cluster: the last
     * values are the answer; the look asked for updates them later. */
    if (link_down(s) || vd_rbd_cluster_stuck(s->loc.cluster) ||
        (s->look_busy && now - s->look_started_ms >= VD_RBD_LOOK_WAIT_MS)) {
        pthread_mutex_unlock(&s->conn_lock);
        return;
    }
    deadline_in(&until, VD_RBD_LOOK_WAIT_MS);
    while (s->look_done < mine && !s->conn_stop &&
           pthread_cond_timedwait(&s->conn_cv, &s->conn_lock, &until) == 0) {
    }
    if (s->look_done < mine) {
        vd_rbd_cluster_set_stuck(s->loc.cluster, true);
    }
    pthread_mutex_unlock(&s->conn_lock);
}
