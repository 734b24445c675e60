/* conn.c — the NBD driver's connections: dial, drive and reconnect
 * (see the DESIGN NOTES in nbd-int.h).
 *
 * Each connection has an I/O thread that polls the libnbd socket next to
 * an eventfd and re-dials with capped exponential backoff when the server
 * goes away. request.c submits on them. */
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "nbd-int.h"
#include "vd_assert.h"

/* NBD's safe default request size when the server sets no limit. */
#define MAX_REQUEST (32u << 20)

int64_t vd_nbd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vd_nbd_wake(struct nbd_conn *c)
{
    uint64_t one = 1;
    if (write(c->wake_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is already non-zero, the thread will wake */
    }
}

static void drain(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing pending */
    }
}

/* Hand a ready socket event to libnbd. -1 with libnbd's error set. */
static int notify(struct nbd_handle *h, short revents, unsigned dir)
{
    bool rd = (revents & POLLIN) || ((revents & (POLLHUP | POLLERR)) &&
                                     (dir & LIBNBD_AIO_DIRECTION_READ));
    bool wr = (revents & POLLOUT) || ((revents & (POLLHUP | POLLERR)) && !rd);
    if (rd && nbd_aio_notify_read(h) == -1) {
        return -1;
    }
    if (wr && nbd_aio_notify_write(h) == -1) {
        return -1;
    }
    return 0;
}

static short poll_events(unsigned dir)
{
    short ev = 0;
    if (dir & LIBNBD_AIO_DIRECTION_READ) {
        ev |= POLLIN;
    }
    if (dir & LIBNBD_AIO_DIRECTION_WRITE) {
        ev |= POLLOUT;
    }
    return ev;
}

static struct nbd_handle *dial_uri(struct nbd_state *s, const char *uri,
                                   uint32_t timeout_ms, int wake_fd, int *code,
                                   char *msg, size_t len)
{
    int64_t deadline = vd_nbd_now_ms() + timeout_ms;
    struct nbd_handle *h = nbd_create();

    *code = -ENXIO;
    if (h == NULL) {
        *code = -ENOMEM;
        snprintf(msg, len, "%s", nbd_get_error());
        return NULL;
    }
    /* No TLS, vsock or local files: a URI reaches a socket and no more. */
    if (nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP |
                                            LIBNBD_ALLOW_TRANSPORT_UNIX) ==
            -1 ||
        nbd_set_uri_allow_tls(h, LIBNBD_TLS_DISABLE) == -1 ||
        nbd_set_uri_allow_local_file(h, false) == -1 ||
        nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        nbd_set_pread_initialize(h, false) == -1) {
        snprintf(msg, len, "%s", nbd_get_error());
        goto fail;
    }
    if (nbd_aio_connect_uri(h, uri) == -1) {
        int e = nbd_get_errno();
        if (nbd_aio_is_created(h) &&
            (e == EINVAL || e == EPERM || e == ENOTSUP)) {
            *code = -EINVAL; /* refused before any connection attempt */
        }
        snprintf(msg, len, "%s", nbd_get_error());
        goto fail;
    }
    for (;;) {
        if (nbd_aio_is_ready(h)) {
            return h;
        }
        if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) ||
            nbd_aio_is_created(h)) {
            snprintf(msg, len, "connection closed during the handshake");
            goto fail;
        }
        int64_t left = deadline - vd_nbd_now_ms();
        if (left <= 0) {
            snprintf(msg, len, "no answer within %u ms", timeout_ms);
            goto fail;
        }
        unsigned dir = nbd_aio_get_direction(h);
        struct pollfd p[2] = {
            {.fd = nbd_aio_get_fd(h), .events = poll_events(dir)},
            {.fd = wake_fd, .events = POLLIN},
        };
        if (p[0].fd < 0) {
            snprintf(msg, len, "%s", nbd_get_error());
            goto fail;
        }
        int n = poll(p, wake_fd >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno != EINTR) {
            snprintf(msg, len, "poll: %s", strerror(errno));
            goto fail;
        }
        if (n <= 0) {
            continue;
        }
        if (wake_fd >= 0 && (p[1].revents & POLLIN)) {
            drain(wake_fd);
            if (atomic_load(&s->stopping)) {
                *code = -ECANCELED;
                snprintf(msg, len, "closing");
                goto fail;
            }
        }
        if (notify(h, p[0].revents, dir) == -1) {
            snprintf(msg, len, "%s", nbd_get_error());
            goto fail;
        }
    }

fail:
    nbd_close(h);
    return NULL;
}

/* A unix socket is confined at every dial, not only at open: while the
 * server is down its socket may be replaced by a symlink to somewhere
 * else, and a redial must not follow it. */
struct nbd_handle *vd_nbd_dial(struct nbd_state *s, uint32_t timeout_ms,
                               int wake_fd, int *code, char *msg, size_t len)
{
    char uri[PATH_MAX + 64];
    int pin;
    int ret = vd_nbd_socket_pin(s->uri, (const char *const *)s->socket_dirs,
                                &pin, uri, sizeof(uri), msg, len);
    if (ret < 0) {
        /* Outside the allowed dirs is a refusal; no socket there (yet) is
         * a server that cannot be reached, like a failed connect. */
        *code = ret == -EACCES ? -EACCES : -ENXIO;
        return NULL;
    }
    struct nbd_handle *h =
        dial_uri(s, uri, timeout_ms, wake_fd, code, msg, len);
    if (pin >= 0) {
        close(pin); /* the connection, if any, is made */
    }
    return h;
}

void vd_nbd_read_info(struct nbd_handle *h, struct nbd_server_info *info)
{
    int64_t size = nbd_get_size(h);
    int64_t max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);

    memset(info, 0, sizeof(*info));
    info->size = size > 0 ? (uint64_t)size : 0;
    info->read_only = nbd_is_read_only(h) == 1;
    info->can_flush = nbd_can_flush(h) == 1;
    info->can_trim = nbd_can_trim(h) == 1;
    info->can_zero = nbd_can_zero(h) == 1;
    info->can_fua = nbd_can_fua(h) == 1;
    info->can_multi_conn = nbd_can_multi_conn(h) == 1;
    info->can_extents =
        nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    info->max_request =
        max > 0 && max < MAX_REQUEST ? (uint64_t)max : MAX_REQUEST;
}

void vd_nbd_set_info(struct nbd_state *s, const struct nbd_server_info *info)
{
    unsigned caps = NBD_CAP_KNOWN;
    VD_ASSERT_HELD(&s->lock);
    caps |= info->can_flush ? NBD_CAP_FLUSH : 0;
    caps |= info->can_trim ? NBD_CAP_TRIM : 0;
    caps |= info->can_zero ? NBD_CAP_ZERO : 0;
    caps |= info->can_extents ? NBD_CAP_EXTENTS : 0;
    caps |= info->read_only ? NBD_CAP_RO : 0;
    s->info = *info;
    s->have_info = true;
    atomic_store(&s->max_request, info->max_request);
    atomic_store(&s->caps, caps);
}

static void set_last_error(struct nbd_state *s, const char *msg)
{
    pthread_mutex_lock(&s->lock);
    snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
    pthread_mutex_unlock(&s->lock);
}

/* Check a fresh handle against what this image already knows. */
static int conn_accept(struct nbd_state *s, struct nbd_handle *h, char *msg,
                       size_t len)
{
    struct nbd_server_info info;
    int ret = 0;

    vd_nbd_read_info(h, &info);
    pthread_mutex_lock(&s->lock);
    if (info.size != s->size) {
        /* Another disk, or a resized one: do not attach it silently. */
        snprintf(msg, len, "export size %llu differs from the volume size %llu",
                 (unsigned long long)info.size, (unsigned long long)s->size);
        ret = -ENXIO;
    } else if (!s->have_info) {
        vd_nbd_set_info(s, &info);
        pthread_cond_broadcast(&s->changed);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Put a connected handle in service; false (h closed) if impossible. */
static bool conn_publish(struct nbd_conn *c, struct nbd_handle *h, bool again)
{
    struct nbd_state *s = c->s;
    /* Our own reference to the socket: polling it never races with a
     * submitter's failed send closing (and the kernel reusing) libnbd's. */
    int fd = fcntl(nbd_aio_get_fd(h), F_DUPFD_CLOEXEC, 0);

    VD_ASSERT(vd_nbd_on_io_thread(c)); /* sole writer of h, sock_fd */
    if (fd < 0) {
        set_last_error(s, "cannot duplicate the NBD socket");
        nbd_close(h);
        return false;
    }
    pthread_rwlock_wrlock(&c->hlock);
    c->h = h;
    c->sock_fd = fd;
    atomic_fetch_add(&c->gen, 1);
    pthread_rwlock_unlock(&c->hlock);
    atomic_store(&c->up, true);

    pthread_mutex_lock(&s->lock);
    s->connects++;
    if (again) {
        s->reconnects++;
    }
    s->n_up++;
    pthread_cond_broadcast(&s->changed);
    pthread_cond_signal(&s->aio_cv); /* aios waiting for a connection */
    pthread_mutex_unlock(&s->lock);
    return true;
}

/* Take h out of service and close it; pending requests complete with
 * ENOTCONN (note 1) and their callers retry or fail (aios: after the
 * caller's next vd_nbd_aio_settle). */
static void conn_retire(struct nbd_conn *c, const char *why)
{
    struct nbd_state *s = c->s;
    struct nbd_handle *h;

    VD_ASSERT(vd_nbd_on_io_thread(c)); /* sole writer of h, sock_fd */
    atomic_store(&c->up, false);
    pthread_rwlock_wrlock(&c->hlock);
    h = c->h;
    c->h = NULL;
    pthread_rwlock_unlock(&c->hlock);
    if (why == NULL) {
        nbd_aio_disconnect(h, 0); /* polite goodbye when closing */
    }
    nbd_close(h);
    if (c->sock_fd >= 0) {
        close(c->sock_fd);
        c->sock_fd = -1;
    }

    pthread_mutex_lock(&s->lock);
    if (--s->n_up == 0) {
        s->down_since_ms = vd_nbd_now_ms();
    }
    if (why != NULL) {
        snprintf(s->last_error, sizeof(s->last_error), "%s", why);
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* Drive a published handle until it dies, is killed, or we stop.
 * Returns NULL when stopping, else why the connection ended. */
static const char *conn_drive(struct nbd_conn *c, char *buf, size_t len)
{
    struct nbd_state *s = c->s;
    struct nbd_handle *h = c->h; /* only this thread changes c->h */
    uint64_t gen = atomic_load(&c->gen);

    VD_ASSERT(vd_nbd_on_io_thread(c));

    for (;;) {
        vd_nbd_aio_settle(c); /* what the last notify finished (note 5) */
        if (atomic_load(&s->stopping)) {
            return NULL;
        }
        if (atomic_load(&c->kill_gen) == gen) {
            return atomic_load(&c->kill_why) == NBD_KILL_SHUTDOWN
                       ? "the server is shutting down; connection dropped"
                       : "a request got no reply in time; connection dropped";
        }
        if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h)) {
            return "connection to the server lost";
        }
        unsigned dir = nbd_aio_get_direction(h);
        struct pollfd p[2] = {
            {.fd = c->sock_fd, .events = poll_events(dir)},
            {.fd = c->wake_fd, .events = POLLIN},
        };
        int n = poll(p, 2, 1000);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(buf, len, "poll: %s", strerror(errno));
            return buf;
        }
        if (p[1].revents & POLLIN) {
            drain(c->wake_fd);
        }
        if (notify(h, p[0].revents, dir) == -1) {
            snprintf(buf, len, "%s", nbd_get_error());
            return buf;
        }
    }
}

/* Back off for ms, or less when a request pokes (note 4); true when
 * stopping. */
static bool conn_sleep(struct nbd_conn *c, uint32_t ms)
{
    struct pollfd p = {.fd = c->wake_fd, .events = POLLIN};
    int64_t start = vd_nbd_now_ms();
    int64_t until = start + ms;
    int64_t left;
    while (!atomic_load(&c->s->stopping) &&
           (left = until - vd_nbd_now_ms()) > 0) {
        if (poll(&p, 1, (int)left) > 0) {
            drain(c->wake_fd);
        }
        if (atomic_exchange(&c->poked, false) &&
            until > start + NBD_BACKOFF_MIN_MS) {
            until = start + NBD_BACKOFF_MIN_MS;
        }
    }
    return atomic_load(&c->s->stopping);
}

/* Connections after the first are only used when the server promises
 * that they see each other's writes (multi-conn), or nothing is written. */
static bool conn_wanted(struct nbd_conn *c)
{
    struct nbd_state *s = c->s;
    bool wanted;

    if (c->index == 0) {
        return true;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->have_info && !atomic_load(&s->stopping)) {
        pthread_cond_wait(&s->changed, &s->lock);
    }
    wanted = !atomic_load(&s->stopping) &&
             (s->info.can_multi_conn || s->info.read_only || s->readonly);
    pthread_mutex_unlock(&s->lock);
    return wanted;
}

static uint32_t next_backoff(const struct nbd_state *s, uint32_t cur)
{
    uint32_t next = cur == 0 ? NBD_BACKOFF_MIN_MS : cur * 2;
    return next > s->backoff_max_ms ? s->backoff_max_ms : next;
}

static void *conn_main(void *arg)
{
    struct nbd_conn *c = arg;
    struct nbd_state *s = c->s;
    uint32_t backoff = 0;
    bool ever_up = false;
    char msg[256];

    vd_nbd_aio_io_thread(c);
    if (!conn_wanted(c)) {
        return NULL;
    }
    if (c->preset != NULL) {
        ever_up = conn_publish(c, c->preset, false);
        c->preset = NULL;
    }
    while (!atomic_load(&s->stopping)) {
        if (c->h == NULL) {
            int code;
            struct nbd_handle *h;
            if (backoff > 0 && conn_sleep(c, backoff)) {
                break;
            }
            atomic_store(&c->poked, false); /* this dial answers them */
            h = vd_nbd_dial(s, s->connect_timeout_ms, c->wake_fd, &code, msg,
                            sizeof(msg));
            if (h != NULL && conn_accept(s, h, msg, sizeof(msg)) < 0) {
                nbd_close(h);
                h = NULL;
            }
            if (h == NULL) {
                if (!atomic_load(&s->stopping)) {
                    set_last_error(s, msg);
                }
                backoff = next_backoff(s, backoff);
                continue;
            }
            if (!conn_publish(c, h, ever_up)) {
                backoff = next_backoff(s, backoff);
                continue;
            }
            ever_up = true;
            backoff = 0;
        }
        const char *why = conn_drive(c, msg, sizeof(msg));
        if (why == NULL) {
            break;
        }
        conn_retire(c, why);
        vd_nbd_aio_settle(c); /* retry or fail what the close completed */
        backoff = next_backoff(s, 0);
    }
    if (c->h != NULL) {
        conn_retire(c, NULL);
    }
    vd_nbd_aio_settle(c); /* stopping: they fail */
    return NULL;
}

int vd_nbd_conns_start(struct nbd_state *s)
{
    pthread_rwlockattr_t ra;
    int ret = 0;

    pthread_rwlockattr_init(&ra);
    /* Retiring a dead handle must not wait behind a stream of readers. */
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (int i = 0; i < s->n_conns; i++) {
        struct nbd_conn *c = &s->conns[i];
        c->s = s;
        c->index = i;
        c->sock_fd = -1;
        pthread_rwlock_init(&c->hlock, &ra);
        c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (c->wake_fd < 0) {
            ret = -errno;
            break;
        }
        int r = pthread_create(&c->thread, NULL, conn_main, c);
        if (r != 0) {
            ret = -r;
            break;
        }
        c->thread_started = true;
    }
    pthread_rwlockattr_destroy(&ra);
    if (ret == 0) {
        ret = vd_nbd_aio_start(s);
    }
    if (ret < 0) {
        vd_nbd_conns_stop(s);
    }
    return ret;
}

void vd_nbd_conns_stop(struct nbd_state *s)
{
    atomic_store(&s->stopping, true);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->n_conns; i++) {
        if (s->conns[i].wake_fd >= 0) {
            vd_nbd_wake(&s->conns[i]);
        }
    }
    for (int i = 0; i < s->n_conns; i++) {
        struct nbd_conn *c = &s->conns[i];
        if (c->thread_started) {
            pthread_join(c->thread, NULL);
            c->thread_started = false;
        }
    }
    vd_nbd_aio_stop(s); /* after the I/O threads, before their fds go */
    for (int i = 0; i < s->n_conns; i++) {
        struct nbd_conn *c = &s->conns[i];
        if (c->preset != NULL) { /* thread never took it over */
            nbd_close(c->preset);
            c->preset = NULL;
        }
        if (c->wake_fd >= 0) {
            close(c->wake_fd);
            c->wake_fd = -1;
        }
        if (c->s != NULL) {
            pthread_rwlock_destroy(&c->hlock);
            c->s = NULL;
        }
    }
}
