/* listen.c — the API's accept loop (the sockets are listener.c).
 *
 * DESIGN NOTES
 * 1. One thread accepts on every listener (one TCP, any number of unix
 *    sockets) and gives each connection to that listener's MHD daemon
 *    with MHD_add_connection; MHD applies the total and per-IP limits
 *    there and closes what it refuses.
 * 2. accept() failing with EMFILE/ENFILE/ENOBUFS/ENOMEM is a resource
 *    limit, not a transient error: the listeners leave the poll set for
 *    a back-off that doubles from 50 ms up to 1 s, and the condition is
 *    logged once per episode. The thread never spins, and accepting
 *    resumes by itself once descriptors are free again.
 * 3. The same thread enforces the whole-request deadline once a second:
 *    a connection that has not delivered a complete request within the
 *    deadline (from accept, or from the end of its previous request) is
 *    shut down with shutdown(2). MHD then sees end-of-file and closes it
 *    itself; the descriptor is never closed behind MHD's back, and the
 *    table lock is held across shutdown() so MHD's close notification
 *    (which takes the lock before the descriptor is closed) cannot race
 *    with it. Connections whose handler is running are exempt.
 * 4. On a plain-HTTP listener the same thread keeps a new connection until
 *    its request head has arrived (peeked, not read, up to API_HEAD_MAX)
 *    and passes the checks of screen.h; only then does MHD get it. A head
 *    that fails is answered here with a problem+json reply and closed.
 *    Only the first head of a connection can be screened this way, so
 *    every reply ends its connection ("Connection: close", server.c).
 * 5. Connections waiting for their head are limited per listener (the
 *    total limit). When a new one arrives at the limit, the one that has
 *    waited longest goes instead, if it has waited a second or more: a
 *    real client sends its head within milliseconds of connecting, so
 *    idle or trickling connections cannot keep everyone else out until
 *    the deadline; they can only push each other out. Per-address
 *    limits are checked first, so one address cannot evict others.
 * 6. The total limit on connections in MHD is counted here too, from
 *    hand-off to MHD's close notification, and a connection over it is
 *    closed without reaching MHD: libmicrohttpd 0.9.75, with a thread
 *    pool, deadlocks its polling threads when MHD_add_connection goes
 *    over its own limit, and then serves nobody again. MHD's limit is
 *    set above this one (server_start.c) so it is never reached.
 * 7. On a TLS listener, where heads cannot be screened (note 4), note 5
 *    is applied to the connections in MHD: at the limit, the oldest that
 *    has delivered no request head for a second is shut down (MHD then
 *    closes it) and no longer counts. Connections shut down but not yet
 *    closed are bounded: past 1.5 times the limit nothing is let in, so
 *    MHD's own limit (twice ours) stays out of reach. */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "screen.h"
#include "vd_error.h"

#define ACCEPT_BATCH 64 /* per listener per wake-up */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define HANDOFF_SLOTS 64
#define EVICT_AFTER_S 1.0 /* note 5 */

/* A plain-HTTP connection whose request head is still being read
 * (note 4). Owned by the accept thread. */
struct pending {
    int kind; /* EV_PENDING */
    int fd;
    struct api_listener *l;
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct timespec start;
    struct pending *prev, *next;
};

enum { EV_WAKE, EV_LISTENER, EV_PENDING };

struct ev_tag {
    int kind;
    struct api_listener *l;
};

struct api_accept {
    struct api_listener *ls;
    int n;
    struct api_accept_limits lim;
    int wake[2]; /* pipe: write to stop the thread */
    int epfd;
    struct ev_tag wake_tag;
    struct ev_tag *tags; /* one per listener */
    pthread_t thread;
    pthread_mutex_t lock; /* protects the list below */
    struct api_conn *head;
    struct pending *pending; /* accept thread only */
    unsigned n_pending;
    /* Accept times of screened connections on their way into MHD, so
     * that the deadline counts from accept (under lock). */
    struct {
        int fd;
        struct timespec start;
    } handoff[HANDOFF_SLOTS];
    unsigned handoff_next;
};

/* ---- connection table --------------------------------------------------- */

static double elapsed_s(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) +
           (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

struct api_conn *api_conn_started(struct api_accept *a, int fd,
                                  struct api_listener *l)
{
    struct api_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Untracked: it must not hold a slot of the limit forever. */
        pthread_mutex_lock(&a->lock);
        l->n_live--;
        pthread_mutex_unlock(&a->lock);
        return NULL;
    }
    c->fd = fd;
    c->l = l;
    c->is_unix = l->is_unix;
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    pthread_mutex_lock(&a->lock);
    for (unsigned i = 0; i < HANDOFF_SLOTS; i++) {
        if (a->handoff[i].fd == fd) {
            c->start = a->handoff[i].start;
            a->handoff[i].fd = -1;
            break;
        }
    }
    c->next = a->head;
    if (a->head != NULL) {
        a->head->prev = c;
    }
    a->head = c;
    pthread_mutex_unlock(&a->lock);
    return c;
}

void api_conn_closed(struct api_accept *a, struct api_conn *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        a->head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->l->n_live--;
    if (c->cut) {
        c->l->n_cut--;
    }
    pthread_mutex_unlock(&a->lock);
    free(c);
}

void api_conn_set_busy(struct api_accept *a, struct api_conn *c, bool busy)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    c->busy = busy;
    if (!busy) {
        /* The reply still has to be sent: give it a whole deadline. */
        clock_gettime(CLOCK_MONOTONIC, &c->start);
    }
    pthread_mutex_unlock(&a->lock);
}

void api_conn_head_seen(struct api_accept *a, struct api_conn *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    c->head_seen = true;
    pthread_mutex_unlock(&a->lock);
}

void api_conn_request_done(struct api_accept *a, struct api_conn *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    pthread_mutex_unlock(&a->lock);
}

/* Note 3. */
static void reap(struct api_accept *a)
{
    unsigned cut = 0;
    pthread_mutex_lock(&a->lock);
    for (struct api_conn *c = a->head; c != NULL; c = c->next) {
        if (!c->busy && !c->cut && elapsed_s(&c->start) > a->lim.deadline_s) {
            shutdown(c->fd, SHUT_RDWR);
            c->cut = true;
            c->l->n_cut++;
            cut++;
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (cut > 0) {
        vd_debug("api: closed %u connection(s) that sent no complete "
                 "request within %u s",
                 cut, a->lim.deadline_s);
    }
}

/* ---- screening plain-HTTP heads (note 4) -------------------------------- */

static void pending_drop(struct api_accept *a, struct pending *p, bool close_fd)
{
    epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    if (close_fd) {
        close(p->fd);
    }
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        a->pending = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    a->n_pending--;
    p->l->n_pending--;
    free(p);
}

static bool same_ip(const struct sockaddr_storage *x,
                    const struct sockaddr_storage *y)
{
    if (x->ss_family != y->ss_family) {
        return false;
    }
    if (x->ss_family == AF_INET) {
        return ((const struct sockaddr_in *)x)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)y)->sin_addr.s_addr;
    }
    if (x->ss_family == AF_INET6) {
        return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
                      &((const struct sockaddr_in6 *)y)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    }
    return false; /* unix peers: no per-address limit */
}

/* Send one problem+json reply and close. The head is read first so that
 * closing does not reset the connection under the reply. The answer to a
 * HEAD request says how long the body would be and sends none. */
static void reply_and_close(int fd, unsigned status, const char *detail,
                            size_t head_len, bool head_method)
{
    char body[600], out[900], sink[4096];
    const char *title = status == 400   ? "Bad Request"
                        : status == 431 ? "Request Header Fields Too Large"
                        : status == 505 ? "HTTP Version Not Supported"
                                        : "Error";
    int bn, on;

    while (head_len > 0) {
        ssize_t r =
            recv(fd, sink, head_len < sizeof(sink) ? head_len : sizeof(sink),
                 MSG_DONTWAIT);
        if (r <= 0) {
            break;
        }
        head_len -= (size_t)r;
    }
    bn = snprintf(body, sizeof(body),
                  "{\"type\":\"about:blank\",\"title\":"
                  "\"%s\",\"status\":%u,\"detail\":\"%s\"}",
                  title, status, detail);
    on = snprintf(out, sizeof(out),
                  "HTTP/1.1 %u %s\r\nContent-Type: "
                  "application/problem+json\r\nContent-Length: %d\r\n"
                  "Connection: close\r\n\r\n%s",
                  status, title, bn, head_method ? "" : body);
    if (send(fd, out, (size_t)on, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        vd_debug("api: cannot send %u: %s", status, strerror(errno));
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* Note 7: the connection of l in MHD that has waited longest, a second
 * or more, without delivering a request head; the table is newest first.
 * Under a->lock. */
static struct api_conn *conn_oldest_idle(struct api_accept *a,
                                         struct api_listener *l)
{
    struct api_conn *old = NULL;
    for (struct api_conn *c = a->head; c != NULL; c = c->next) {
        if (c->l == l && !c->busy && !c->cut && !c->head_seen) {
            old = c;
        }
    }
    return old != NULL && elapsed_s(&old->start) >= EVICT_AFTER_S ? old : NULL;
}

static void hand_to_mhd(struct api_accept *a, struct api_listener *l, int fd,
                        const struct sockaddr_storage *ss, socklen_t len,
                        const struct timespec *start)
{
    pthread_mutex_lock(&a->lock);
    if (l->n_live - l->n_cut >= a->lim.max_conns) {
        /* Notes 6 and 7. */
        struct api_conn *old =
            l->screen || l->n_live >= a->lim.max_conns * 3 / 2
                ? NULL
                : conn_oldest_idle(a, l);
        if (old == NULL) {
            pthread_mutex_unlock(&a->lock);
            vd_debug("api: %s: %u connections open, refused one", l->desc,
                     a->lim.max_conns);
            close(fd);
            return;
        }
        shutdown(old->fd, SHUT_RDWR);
        old->cut = true;
        l->n_cut++;
    }
    l->n_live++;
    if (start != NULL) {
        a->handoff[a->handoff_next].fd = fd;
        a->handoff[a->handoff_next].start = *start;
        a->handoff_next = (a->handoff_next + 1) % HANDOFF_SLOTS;
    }
    pthread_mutex_unlock(&a->lock);
    if (MHD_add_connection(l->mhd, fd, (const struct sockaddr *)ss, len) !=
        MHD_YES) {
        /* Out of memory, or the per-address limit: MHD closed it. */
        vd_debug("api: %s: connection refused: %s", l->desc, strerror(errno));
        pthread_mutex_lock(&a->lock);
        l->n_live--;
        pthread_mutex_unlock(&a->lock);
    }
}

/* New data on a pending connection (edge-triggered). */
static void pending_ready(struct api_accept *a, struct pending *p)
{
    char buf[API_HEAD_MAX + 1], msg[256];
    ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    size_t head;
    unsigned status;
    bool is_head;

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        pending_drop(a, p, true);
        return;
    }
    if (n < 0) {
        return;
    }
    is_head = n >= 5 && memcmp(buf, "HEAD ", 5) == 0;
    head = api_head_length(buf, (size_t)n);
    if (head == 0) {
        if ((size_t)n > API_HEAD_MAX) {
            reply_and_close(p->fd, 431,
                            "the request head is larger than "
                            "16384 bytes",
                            0, is_head);
            pending_drop(a, p, false);
        }
        return; /* wait for more */
    }
    status = api_head_check(buf, head, msg, sizeof(msg));
    if (status != 0) {
        vd_debug("api: %s: refused a request head: %s", p->l->desc, msg);
        reply_and_close(p->fd, status, msg, head, is_head);
        pending_drop(a, p, false);
        return;
    }
    hand_to_mhd(a, p->l, p->fd, &p->ss, p->sslen, &p->start);
    pending_drop(a, p, false);
}

/* The connection of l that has waited longest for its head, if that is
 * at least EVICT_AFTER_S (note 5); the list is newest first. */
static struct pending *pending_oldest(struct api_accept *a,
                                      struct api_listener *l)
{
    struct pending *old = NULL;
    for (struct pending *p = a->pending; p != NULL; p = p->next) {
        if (p->l == l) {
            old = p;
        }
    }
    return old != NULL && elapsed_s(&old->start) >= EVICT_AFTER_S ? old : NULL;
}

static void pending_add(struct api_accept *a, struct api_listener *l, int fd,
                        const struct sockaddr_storage *ss, socklen_t len)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET};
    struct pending *p;
    unsigned same = 0;

    for (p = a->pending; p != NULL; p = p->next) {
        if (same_ip(&p->ss, ss) && ++same >= a->lim.per_ip) {
            close(fd);
            return;
        }
    }
    if (l->n_pending >= a->lim.max_conns) {
        /* Note 5. */
        struct pending *old = pending_oldest(a, l);
        if (old == NULL) {
            close(fd);
            return;
        }
        vd_debug("api: %s: at %u connections without a request head; "
                 "closed the oldest",
                 l->desc, a->lim.max_conns);
        pending_drop(a, old, true);
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        close(fd);
        return;
    }
    p->kind = EV_PENDING;
    p->fd = fd;
    p->l = l;
    memcpy(&p->ss, ss, len);
    p->sslen = len;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    ev.data.ptr = p;
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        free(p);
        return;
    }
    p->next = a->pending;
    if (a->pending != NULL) {
        a->pending->prev = p;
    }
    a->pending = p;
    a->n_pending++;
    l->n_pending++;
    /* Data may already be there: edge-triggered epoll reports only what
     * arrives from now on. */
    pending_ready(a, p);
}

static void pending_reap(struct api_accept *a)
{
    struct pending *p = a->pending, *next;
    for (; p != NULL; p = next) {
        next = p->next;
        if (elapsed_s(&p->start) > a->lim.deadline_s) {
            pending_drop(a, p, true);
        }
    }
}

/* ---- the accept thread -------------------------------------------------- */

static bool low_resources(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* Accept what is pending on l; returns 0, or the errno of a resource
 * limit. */
static int accept_some(struct api_accept *a, struct api_listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
                continue;
            }
            return low_resources(errno) ? errno : 0; /* EAGAIN: done */
        }
        if (l->screen) {
            pending_add(a, l, fd, &ss, len);
        } else {
            hand_to_mhd(a, l, fd, &ss, len, NULL);
        }
    }
    return 0;
}

static void listeners_arm(struct api_accept *a, bool on)
{
    for (int i = 0; i < a->n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &a->tags[i]};
        epoll_ctl(a->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, a->ls[i].fd,
                  &ev);
    }
}

static void *accept_main(void *arg)
{
    struct api_accept *a = arg;
    struct epoll_event evs[64];
    struct timespec last_reap, resume = {0};
    unsigned backoff_ms = 0;
    bool armed = true;

    clock_gettime(CLOCK_MONOTONIC, &last_reap);
    for (;;) {
        int timeout = 1000, n, limit_errno = 0;

        if (!armed) {
            double left = -elapsed_s(&resume);
            if (left <= 0) {
                listeners_arm(a, true);
                armed = true;
            } else if (left * 1000 < timeout) {
                timeout = (int)(left * 1000) + 1;
            }
        }
        n = epoll_wait(a->epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR) {
            vd_err("api: epoll_wait: %s", strerror(errno));
            usleep(100000);
            continue;
        }
        for (int i = 0; i < n; i++) {
            struct ev_tag *t = evs[i].data.ptr;
            if (t->kind == EV_WAKE) {
                return NULL;
            }
            if (t->kind == EV_LISTENER) {
                int e = accept_some(a, t->l);
                if (e != 0) {
                    limit_errno = e;
                }
            } else {
                pending_ready(a, (struct pending *)t);
            }
        }
        if (elapsed_s(&last_reap) >= 1.0) {
            reap(a);
            pending_reap(a);
            clock_gettime(CLOCK_MONOTONIC, &last_reap);
        }
        if (limit_errno != 0) {
            /* Note 2: leave the listeners out of the set for a while. */
            if (backoff_ms == 0) {
                vd_warn("api: cannot accept connections: %s; backing off "
                        "until descriptors are free",
                        strerror(limit_errno));
                backoff_ms = BACKOFF_MIN_MS;
            } else if (backoff_ms < BACKOFF_MAX_MS) {
                backoff_ms *= 2;
            }
            if (armed) {
                listeners_arm(a, false);
                armed = false;
            }
            clock_gettime(CLOCK_MONOTONIC, &resume);
            resume.tv_nsec += (long)backoff_ms * 1000000L;
            resume.tv_sec += resume.tv_nsec / 1000000000L;
            resume.tv_nsec %= 1000000000L;
        } else if (backoff_ms > 0 && armed && n > 0) {
            vd_info("api: accepting connections again");
            backoff_ms = 0;
        }
    }
}

int api_accept_start(struct api_listener *ls, int n,
                     const struct api_accept_limits *lim,
                     struct api_accept **out, struct vd_error *err)
{
    struct api_accept *a = calloc(1, sizeof(*a));
    struct epoll_event ev = {.events = EPOLLIN};
    int r;
    if (a == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    a->ls = ls;
    a->n = n;
    a->lim = *lim;
    a->wake[0] = a->wake[1] = a->epfd = -1;
    for (unsigned i = 0; i < HANDOFF_SLOTS; i++) {
        a->handoff[i].fd = -1;
    }
    pthread_mutex_init(&a->lock, NULL);
    a->tags = calloc((size_t)n, sizeof(*a->tags));
    if (a->tags == NULL) {
        r = vd_error_set(err, -ENOMEM, "out of memory");
        goto out_free;
    }
    if (pipe2(a->wake, O_CLOEXEC) < 0 ||
        (a->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        r = vd_error_set(err, -errno, "pipe/epoll: %s", strerror(errno));
        goto out_free;
    }
    a->wake_tag.kind = EV_WAKE;
    ev.data.ptr = &a->wake_tag;
    epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->wake[0], &ev);
    for (int i = 0; i < n; i++) {
        a->tags[i] = (struct ev_tag){.kind = EV_LISTENER, .l = &ls[i]};
    }
    listeners_arm(a, true);
    /* Published before the thread runs: the first connection it hands
     * over reaches the connection callbacks, which find it through *out. */
    *out = a;
    r = pthread_create(&a->thread, NULL, accept_main, a);
    if (r != 0) {
        *out = NULL;
        r = vd_error_set(err, -r, "cannot start the accept thread: %s",
                         strerror(r));
        goto out_free;
    }
    return 0;

out_free:
    if (a->wake[0] >= 0) {
        close(a->wake[0]);
        close(a->wake[1]);
    }
    if (a->epfd >= 0) {
        close(a->epfd);
    }
    free(a->tags);
    free(a);
    return r;
}

void api_accept_stop(struct api_accept *a)
{
    if (a == NULL) {
        return;
    }
    if (write(a->wake[1], "x", 1) < 0) {
        vd_err("api: cannot stop the accept thread: %s", strerror(errno));
    }
    pthread_join(a->thread, NULL);
    while (a->pending != NULL) {
        pending_drop(a, a->pending, true);
    }
    close(a->wake[0]);
    close(a->wake[1]);
    close(a->epfd);
}

void api_accept_free(struct api_accept *a)
{
    if (a == NULL) {
        return;
    }
    pthread_mutex_destroy(&a->lock);
    free(a->tags);
    free(a);
}
