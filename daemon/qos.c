/* qos.c — token buckets for volume and group limits, and the queues of
 * requests they hold back (see qos.h).
 *
 * DESIGN NOTES
 * 1. A budget has one bucket per limit. A bucket fills at its rate up to
 *    its capacity (rate x burst seconds; a tenth of a second by default)
 *    and a request takes its cost (1, or its bytes) from every bucket that
 *    applies to it. A request may start when none of those is below zero;
 *    it may take one below zero (a 1 MiB write under a 64 KiB/s limit), and
 *    the next request waits until the debt is paid back: the long-run rate
 *    is the limit, whatever the request sizes.
 * 2. A volume has its own budget and may share a group's; a request needs
 *    both. A volume's requests start in arrival order: one that arrives
 *    while others wait joins the tail of the queue. So does one whose
 *    group has requests waiting in any volume, and the timer releases
 *    queued requests one per volume in turn: the volumes of a group share
 *    its budget fairly, whoever asks more often.
 * 3. One lock (the scheduler's) covers every budget, queue and group. Only
 *    volumes with limits or a group take it, once per request; the others
 *    pay one atomic load (vd_qos_active).
 * 4. Queued requests are released by one timer on the I/O loop, armed for
 *    the time the earliest queue head may start; when it fires it walks
 *    the volumes that have queues (`waiting`) and re-arms for the next. A
 *    synchronous waiter also sleeps until its queue head's time and then
 *    runs its queue itself, so it needs no timer (and works without a
 *    loop). Whoever runs a queue releases asynchronous requests after
 *    dropping the lock: release submits I/O, whose completion may run
 *    right there.
 * 5. New limits apply at once: configuring runs the queue again with
 *    them. vd_qos_flush (a drain) releases every queued request whatever
 *    the budget.
 */
#include "qos.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "ioloop.h"
#include "vd_assert.h"
#include "vd_error.h"

#define BURST_DEFAULT 0.1 /* seconds */
#define DUE_SLACK_NS 1000 /* wake a little late rather than too early */

struct bucket {
    double rate, cap, level; /* rate 0: no limit */
};

struct budget {
    struct bucket b[VD_QOS_NLIMITS];
    uint64_t stamp_ns; /* last refill */
};

struct vd_qos_group {
    char name[VD_NAME_MAX + 1];
    struct budget bud;
    int users;  /* volumes configured with it */
    int queued; /* requests waiting in their queues (note 2) */
    struct vd_qos_group *next;
};

struct vd_qos {
    struct vd_qos_sched *s;
    atomic_bool active; /* own limits or a group: ask the throttle */
    /* Everything below: s->lock. */
    struct budget own;
    struct vd_qos_group *group;
    struct vd_qos_req *head, *tail; /* queued requests, oldest first */
    int queued;                     /* how many */
    struct vd_qos *next_waiting;    /* s->waiting */
    bool listed;                    /* on s->waiting */
    _Atomic uint64_t throttled_ns, throttled;
};

struct vd_qos_sched {
    pthread_mutex_t lock;
    pthread_condattr_t cond_attr; /* CLOCK_MONOTONIC, for waiters */
    struct vd_ioloop *loop;       /* NULL: synchronous waits only */
    struct vd_iotimer timer;
    struct vd_qos *waiting; /* volumes with queued requests: lock */
    struct vd_qos_group *groups;
    /* The blocking runner (vd_qos_run_blocking). */
    pthread_mutex_t run_lock;
    pthread_cond_t run_cond;
    struct vd_qos_req *run_head, *run_tail; /* run_lock */
    bool run_stop;                          /* run_lock */
    bool have_runner;
    pthread_t runner;
};

static const char *const limit_names[VD_QOS_NLIMITS] = {
    "iops", "read_iops", "write_iops", "bps", "read_bps", "write_bps"};

const char *vd_qos_limit_name(enum vd_qos_limit i)
{
    return limit_names[i];
}

bool vd_qos_limits_any(const struct vd_qos_limits *lim)
{
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        if (lim->rate[i] != 0) {
            return true;
        }
    }
    return false;
}

void vd_qos_patch_apply(const struct vd_qos_patch *p, struct vd_qos_limits *lim)
{
    if (p->clear) {
        *lim = (struct vd_qos_limits){0};
    }
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        if (p->set[i]) {
            lim->rate[i] = p->rate[i];
        }
    }
    if (p->burst_set) {
        lim->burst_seconds = p->burst_seconds;
    }
}

int vd_qos_limits_check(const struct vd_qos_limits *lim, struct vd_error *err)
{
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        if (lim->rate[i] > VD_QOS_RATE_MAX) {
            return vd_error_set(err, -EINVAL,
                                "'qos.%s' must be at most %llu per second",
                                limit_names[i], VD_QOS_RATE_MAX);
        }
    }
    if (!(lim->burst_seconds >= 0 && lim->burst_seconds <= VD_QOS_BURST_MAX)) {
        return vd_error_set(err, -EINVAL,
                            "'qos.burst_seconds' must be between 0 and %.0f",
                            VD_QOS_BURST_MAX);
    }
    return 0;
}

/* What a request costs in bucket i. */
static double cost(int i, bool write, uint64_t bytes)
{
    switch (i) {
    case VD_QOS_IOPS:
        return 1;
    case VD_QOS_READ_IOPS:
        return write ? 0 : 1;
    case VD_QOS_WRITE_IOPS:
        return write ? 1 : 0;
    case VD_QOS_BPS:
        return (double)bytes;
    case VD_QOS_READ_BPS:
        return write ? 0 : (double)bytes;
    default:
        return write ? (double)bytes : 0;
    }
}

static bool budget_any(const struct budget *bud)
{
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        if (bud->b[i].rate > 0) {
            return true;
        }
    }
    return false;
}

/* New limits: a bucket that was unlimited starts full; the others keep
 * what they had, within their new capacity. */
static void budget_set(struct budget *bud, const struct vd_qos_limits *lim,
                       uint64_t now)
{
    double burst = lim->burst_seconds > 0 ? lim->burst_seconds : BURST_DEFAULT;
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        struct bucket *b = &bud->b[i];
        bool was = b->rate > 0;
        b->rate = (double)lim->rate[i];
        b->cap = b->rate * burst;
        if (!was || b->level > b->cap) {
            b->level = b->cap;
        }
    }
    bud->stamp_ns = now;
}

static void refill(struct budget *bud, uint64_t now)
{
    double dt;
    if (now <= bud->stamp_ns) {
        return;
    }
    dt = (double)(now - bud->stamp_ns) / 1e9;
    bud->stamp_ns = now;
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        struct bucket *b = &bud->b[i];
        if (b->rate > 0) {
            b->level += b->rate * dt;
            if (b->level > b->cap) {
                b->level = b->cap;
            }
        }
    }
}

/* Nanoseconds until bud lets the request start (0: now). */
static uint64_t budget_wait(const struct budget *bud, bool write,
                            uint64_t bytes)
{
    double wait = 0;
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        const struct bucket *b = &bud->b[i];
        if (b->rate > 0 && b->level < 0 && cost(i, write, bytes) > 0) {
            double w = -b->level / b->rate;
            if (w > wait) {
                wait = w;
            }
        }
    }
    return wait > 0 ? (uint64_t)(wait * 1e9) + DUE_SLACK_NS : 0;
}

static void budget_charge(struct budget *bud, bool write, uint64_t bytes)
{
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        if (bud->b[i].rate > 0) {
            bud->b[i].level -= cost(i, write, bytes);
        }
    }
}

/* Refill q's budgets to now; ns until a request may start (0: now). */
static uint64_t qos_wait_locked(struct vd_qos *q, bool write, uint64_t bytes,
                                uint64_t now)
{
    uint64_t w;
    refill(&q->own, now);
    w = budget_wait(&q->own, write, bytes);
    if (q->group != NULL) {
        uint64_t g;
        refill(&q->group->bud, now);
        g = budget_wait(&q->group->bud, write, bytes);
        w = g > w ? g : w;
    }
    return w;
}

static void qos_charge(struct vd_qos *q, bool write, uint64_t bytes)
{
    budget_charge(&q->own, write, bytes);
    if (q->group != NULL) {
        budget_charge(&q->group->bud, write, bytes);
    }
}

/* Start up to max requests (0: no maximum) that q's budget allows
 * (whatever it allows if all), oldest first: synchronous waiters are
 * woken here, asynchronous requests are appended to *rel for release
 * after the lock is dropped (note 4). Sets *due to when the head may
 * start (0: queue empty); returns how many started. Caller holds
 * s->lock. */
static int run_queue(struct vd_qos *q, uint64_t now, struct vd_qos_req ***rel,
                     bool all, int max, uint64_t *due)
{
    struct vd_qos_req *r;
    int n = 0;
    *due = 0;
    while ((r = q->head) != NULL) {
        uint64_t w = qos_wait_locked(q, r->write, r->bytes, now);
        if ((w > 0 && !all) || (max > 0 && n == max)) {
            *due = w > 0 ? now + w : now;
            return n;
        }
        n++;
        qos_charge(q, r->write, r->bytes);
        q->head = r->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        q->queued--;
        if (q->group != NULL) {
            q->group->queued--;
        }
        atomic_fetch_add(&q->throttled_ns, now - r->since_ns);
        atomic_fetch_add(&q->throttled, 1);
        r->next = NULL;
        if (r->release == NULL) {
            r->released = true;
            pthread_cond_signal(r->cond);
        } else {
            **rel = r;
            *rel = &r->next;
        }
    }
    return n;
}

static void release_list(struct vd_qos_req *r)
{
    while (r != NULL) {
        struct vd_qos_req *next = r->next; /* release may reuse r */
        r->release(r);
        r = next;
    }
}

/* Run every waiting queue; returns the earliest head's time (0: none).
 * Caller holds s->lock. */
static uint64_t run_waiting(struct vd_qos_sched *s, uint64_t now,
                            struct vd_qos_req ***rel)
{
    struct vd_qos **pp = &s->waiting;
    uint64_t next = 0, due;
    bool more = true;
    while (more) { /* one request per volume in turn (note 2) */
        more = false;
        for (struct vd_qos *q = s->waiting; q != NULL; q = q->next_waiting) {
            more |= run_queue(q, now, rel, false, 1, &due) > 0;
        }
    }
    /* Whoever went first this time goes last next time. */
    if (s->waiting != NULL && s->waiting->next_waiting != NULL) {
        struct vd_qos *first = s->waiting, *last = first;
        while (last->next_waiting != NULL) {
            last = last->next_waiting;
        }
        s->waiting = first->next_waiting;
        first->next_waiting = NULL;
        last->next_waiting = first;
    }
    while (*pp != NULL) {
        struct vd_qos *q = *pp;
        run_queue(q, now, rel, false, 0, &due);
        if (due == 0) {
            *pp = q->next_waiting;
            q->listed = false;
            continue;
        }
        if (next == 0 || due < next) {
            next = due;
        }
        pp = &q->next_waiting;
    }
    return next;
}

static void arm(struct vd_qos_sched *s, uint64_t due)
{
    if (due != 0 && s->loop != NULL) {
        vd_ioloop_timer_arm(s->loop, &s->timer, due);
    }
}

/* Run every queue and re-arm: the timer, and a change of limits. */
static void kick(struct vd_qos_sched *s)
{
    struct vd_qos_req *rel = NULL, **tail = &rel;
    uint64_t due;
    pthread_mutex_lock(&s->lock);
    due = run_waiting(s, vd_ioloop_now_ns(), &tail);
    pthread_mutex_unlock(&s->lock);
    release_list(rel);
    arm(s, due);
}

static void on_timer(struct vd_iotimer *t)
{
    kick(t->owner);
}

static void enqueue(struct vd_qos *q, struct vd_qos_req *r)
{
    q->queued++;
    if (q->group != NULL) {
        q->group->queued++;
    }
    r->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = r;
    } else {
        q->head = r;
    }
    q->tail = r;
    if (!q->listed) {
        q->listed = true;
        q->next_waiting = q->s->waiting;
        q->s->waiting = q;
    }
}

static void *runner_main(void *arg)
{
    struct vd_qos_sched *s = arg;
    pthread_mutex_lock(&s->run_lock);
    for (;;) {
        struct vd_qos_req *r = s->run_head;
        if (r == NULL) {
            if (s->run_stop) {
                break;
            }
            pthread_cond_wait(&s->run_cond, &s->run_lock);
            continue;
        }
        s->run_head = r->next;
        if (s->run_head == NULL) {
            s->run_tail = NULL;
        }
        pthread_mutex_unlock(&s->run_lock);
        r->release(r);
        pthread_mutex_lock(&s->run_lock);
    }
    pthread_mutex_unlock(&s->run_lock);
    return NULL;
}

int vd_qos_sched_new(struct vd_ioloop *loop, struct vd_qos_sched **out)
{
    struct vd_qos_sched *s = calloc(1, sizeof(*s));
    int ret;
    *out = NULL;
    if (s == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&s->cond_attr);
    pthread_condattr_setclock(&s->cond_attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->run_lock, NULL);
    pthread_cond_init(&s->run_cond, NULL);
    s->loop = loop;
    if (loop != NULL) {
        s->timer.cb = on_timer;
        s->timer.owner = s;
        vd_ioloop_timer_add(loop, &s->timer);
        ret = -pthread_create(&s->runner, NULL, runner_main, s);
        if (ret < 0) {
            vd_qos_sched_free(s);
            return ret;
        }
        s->have_runner = true;
    }
    *out = s;
    return 0;
}

void vd_qos_sched_free(struct vd_qos_sched *s)
{
    if (s == NULL) {
        return;
    }
    if (s->have_runner) {
        pthread_mutex_lock(&s->run_lock);
        s->run_stop = true;
        pthread_cond_signal(&s->run_cond);
        pthread_mutex_unlock(&s->run_lock);
        pthread_join(s->runner, NULL);
    }
    while (s->groups != NULL) {
        struct vd_qos_group *g = s->groups;
        s->groups = g->next;
        free(g);
    }
    if (s->loop != NULL && s->timer.cb != NULL) {
        vd_ioloop_timer_del(s->loop, &s->timer);
    }
    pthread_cond_destroy(&s->run_cond);
    pthread_mutex_destroy(&s->run_lock);
    pthread_condattr_destroy(&s->cond_attr);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static struct vd_qos_group *group_find(struct vd_qos_sched *s, const char *name)
{
    struct vd_qos_group *g = s->groups;
    while (g != NULL && strcmp(g->name, name) != 0) {
        g = g->next;
    }
    return g;
}

int vd_qos_group_set(struct vd_qos_sched *s, const char *name,
                     const struct vd_qos_limits *lim)
{
    struct vd_qos_group *g;
    if (strlen(name) > VD_NAME_MAX) {
        return -EINVAL;
    }
    pthread_mutex_lock(&s->lock);
    g = group_find(s, name);
    if (g == NULL) {
        g = calloc(1, sizeof(*g));
        if (g == NULL) {
            pthread_mutex_unlock(&s->lock);
            return -ENOMEM;
        }
        strcpy(g->name, name);
        g->next = s->groups;
        s->groups = g;
    }
    budget_set(&g->bud, lim, vd_ioloop_now_ns());
    pthread_mutex_unlock(&s->lock);
    kick(s); /* note 5 */
    return 0;
}

int vd_qos_group_remove(struct vd_qos_sched *s, const char *name)
{
    struct vd_qos_group **pp;
    int ret = -ENOENT;
    pthread_mutex_lock(&s->lock);
    for (pp = &s->groups; *pp != NULL; pp = &(*pp)->next) {
        struct vd_qos_group *g = *pp;
        if (strcmp(g->name, name) == 0) {
            ret = g->users > 0 ? -EBUSY : 0;
            if (ret == 0) {
                *pp = g->next;
                free(g);
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

struct vd_qos *vd_qos_new(struct vd_qos_sched *s)
{
    struct vd_qos *q = calloc(1, sizeof(*q));
    if (q != NULL) {
        q->s = s;
        atomic_init(&q->active, false);
    }
    return q;
}

void vd_qos_free(struct vd_qos *q)
{
    struct vd_qos_sched *s;
    if (q == NULL) {
        return;
    }
    s = q->s;
    pthread_mutex_lock(&s->lock);
    VD_ASSERT(q->head == NULL);
    if (q->listed) {
        struct vd_qos **pp = &s->waiting;
        while (*pp != q) {
            pp = &(*pp)->next_waiting;
        }
        *pp = q->next_waiting;
    }
    if (q->group != NULL) {
        q->group->users--;
        q->group->queued -= q->queued;
    }
    pthread_mutex_unlock(&s->lock);
    free(q);
}

int vd_qos_configure(struct vd_qos *q, const struct vd_qos_limits *lim,
                     const char *group)
{
    struct vd_qos_sched *s = q->s;
    struct vd_qos_group *g = NULL;
    pthread_mutex_lock(&s->lock);
    if (group != NULL && (g = group_find(s, group)) == NULL) {
        pthread_mutex_unlock(&s->lock);
        return -ENOENT;
    }
    if (q->group != g) {
        if (q->group != NULL) {
            q->group->users--;
            q->group->queued -= q->queued;
        }
        if (g != NULL) {
            g->users++;
            g->queued += q->queued;
        }
        q->group = g;
    }
    budget_set(&q->own, lim, vd_ioloop_now_ns());
    atomic_store(&q->active, g != NULL || budget_any(&q->own));
    pthread_mutex_unlock(&s->lock);
    kick(s); /* note 5 */
    return 0;
}

bool vd_qos_active(struct vd_qos *q)
{
    return q != NULL && atomic_load_explicit(&q->active, memory_order_relaxed);
}

/* Take the request at once if nothing is queued (note 2) and the budget
 * allows. */
static bool try_now(struct vd_qos *q, bool write, uint64_t bytes, uint64_t now)
{
    if (q->head != NULL || (q->group != NULL && q->group->queued > 0) ||
        qos_wait_locked(q, write, bytes, now) > 0) {
        return false;
    }
    qos_charge(q, write, bytes);
    return true;
}

void vd_qos_wait(struct vd_qos *q, bool write, uint64_t bytes)
{
    struct vd_qos_sched *s = q->s;
    struct vd_qos_req r = {.bytes = bytes, .write = write};
    pthread_cond_t cond;
    uint64_t now = vd_ioloop_now_ns();

    VD_ASSERT(vd_ioloop_may_wait());
    pthread_mutex_lock(&s->lock);
    if (try_now(q, write, bytes, now)) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_cond_init(&cond, &s->cond_attr);
    r.cond = &cond;
    r.since_ns = now;
    enqueue(q, &r);
    for (;;) {
        struct vd_qos_req *rel = NULL, **tail = &rel;
        uint64_t due;
        struct timespec ts;
        run_queue(q, now, &tail, false, 0, &due);
        if (rel != NULL) {
            pthread_mutex_unlock(&s->lock);
            release_list(rel);
            pthread_mutex_lock(&s->lock);
        }
        if (r.released) {
            break;
        }
        arm(s, due);
        ts.tv_sec = (time_t)(due / 1000000000u);
        ts.tv_nsec = (long)(due % 1000000000u);
        while (!r.released &&
               pthread_cond_timedwait(&cond, &s->lock, &ts) == 0) {
        }
        if (r.released) {
            break;
        }
        now = vd_ioloop_now_ns();
    }
    pthread_mutex_unlock(&s->lock);
    pthread_cond_destroy(&cond);
}

bool vd_qos_admit(struct vd_qos *q, struct vd_qos_req *r, bool write,
                  uint64_t bytes)
{
    struct vd_qos_sched *s = q->s;
    uint64_t now, due;
    if (s->loop == NULL) {
        vd_qos_wait(q, write, bytes);
        return true;
    }
    now = vd_ioloop_now_ns();
    pthread_mutex_lock(&s->lock);
    if (try_now(q, write, bytes, now)) {
        pthread_mutex_unlock(&s->lock);
        return true;
    }
    r->bytes = bytes;
    r->write = write;
    r->since_ns = now;
    r->released = false;
    r->cond = NULL;
    enqueue(q, r);
    due = now + qos_wait_locked(q, q->head->write, q->head->bytes, now);
    pthread_mutex_unlock(&s->lock);
    arm(s, due);
    return false;
}

void vd_qos_refund(struct vd_qos *q, bool write, uint64_t bytes)
{
    pthread_mutex_lock(&q->s->lock);
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        double c = cost(i, write, bytes);
        if (q->own.b[i].rate > 0) {
            q->own.b[i].level += c;
        }
        if (q->group != NULL && q->group->bud.b[i].rate > 0) {
            q->group->bud.b[i].level += c;
        }
    }
    pthread_mutex_unlock(&q->s->lock);
}

void vd_qos_run_blocking(struct vd_qos *q, struct vd_qos_req *r)
{
    struct vd_qos_sched *s = q->s;
    VD_ASSERT(s->have_runner);
    r->next = NULL;
    pthread_mutex_lock(&s->run_lock);
    if (s->run_tail != NULL) {
        s->run_tail->next = r;
    } else {
        s->run_head = r;
    }
    s->run_tail = r;
    pthread_cond_signal(&s->run_cond);
    pthread_mutex_unlock(&s->run_lock);
}

void vd_qos_flush(struct vd_qos *q)
{
    struct vd_qos_req *rel = NULL, **tail = &rel;
    uint64_t due;
    if (q == NULL) {
        return;
    }
    pthread_mutex_lock(&q->s->lock);
    run_queue(q, vd_ioloop_now_ns(), &tail, true, 0, &due);
    pthread_mutex_unlock(&q->s->lock);
    release_list(rel);
}

void vd_qos_stats(struct vd_qos *q, struct vd_qos_stats *out)
{
    *out = (struct vd_qos_stats){0};
    if (q != NULL) {
        out->throttled_ns = atomic_load(&q->throttled_ns);
        out->throttled = atomic_load(&q->throttled);
    }
}
