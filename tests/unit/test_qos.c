/* test_qos.c — the QoS token buckets and their queue (daemon/qos.c):
 * rates over a few hundred requests, synchronous and through the I/O
 * loop's timer, arrival order, debt from large requests, a drain and a
 * change of limits that release at once, and what a limit far above the
 * load costs per request. Timings are checked with wide margins: the
 * machine may be loaded. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ioloop.h"
#include "qos.h"
#include "vd_error.h"
#include "vd_test.h"

static double now_s(void)
{
    return (double)vd_ioloop_now_ns() / 1e9;
}

struct tracked {
    struct vd_qos_req r;
    int seq;
};

static atomic_int released, order_ok = 1, last_seq = -1;

static void on_release(struct vd_qos_req *r)
{
    struct tracked *t = (struct tracked *)r;
    int prev = atomic_exchange(&last_seq, t->seq);
    if (prev >= t->seq) {
        atomic_store(&order_ok, 0);
    }
    atomic_fetch_add(&released, 1);
}

static bool wait_released(int n, double timeout)
{
    double end = now_s() + timeout;
    while (atomic_load(&released) < n && now_s() < end) {
        usleep(1000);
    }
    return atomic_load(&released) >= n;
}

static struct vd_qos_limits limit(enum vd_qos_limit i, uint64_t rate)
{
    struct vd_qos_limits lim = {0};
    lim.rate[i] = rate;
    return lim;
}

/* Synchronous waits, no loop: 600 requests at 2000/s, 200 of them from
 * the default burst (0.1 s): about 0.2 s. */
static void test_sync_rate(void)
{
    struct vd_qos_sched *s;
    struct vd_qos *q;
    struct vd_qos_limits lim = limit(VD_QOS_IOPS, 2000);
    double t0;

    CHECK_EQ(vd_qos_sched_new(NULL, &s), 0);
    q = vd_qos_new(s);
    CHECK(!vd_qos_active(q));
    CHECK_EQ(vd_qos_configure(q, &lim, NULL), 0);
    CHECK(vd_qos_active(q));
    t0 = now_s();
    for (int i = 0; i < 600; i++) {
        vd_qos_wait(q, i % 2 == 0, 4096);
    }
    t0 = now_s() - t0;
    fprintf(stderr, "sync: 600 requests at 2000/s in %.3f s\n", t0);
    CHECK(t0 > 0.17 && t0 < 0.8);
    vd_qos_free(q);
    vd_qos_sched_free(s);
}

/* Debt: a request larger than the bucket starts, the next one waits until
 * it is paid for: 40000 bytes at 100000 B/s with 10000 saved up. */
static void test_debt(void)
{
    struct vd_qos_sched *s;
    struct vd_qos *q;
    struct vd_qos_limits lim = limit(VD_QOS_BPS, 100000);
    double t0;

    CHECK_EQ(vd_qos_sched_new(NULL, &s), 0);
    q = vd_qos_new(s);
    CHECK_EQ(vd_qos_configure(q, &lim, NULL), 0);
    t0 = now_s();
    vd_qos_wait(q, true, 40000);
    CHECK(now_s() - t0 < 0.2);
    vd_qos_wait(q, true, 40000);
    t0 = now_s() - t0;
    fprintf(stderr, "debt: the second 40000-byte write waited %.3f s\n", t0);
    CHECK(t0 > 0.27 && t0 < 1.0);
    /* Reads are not held by a write limit. */
    lim = limit(VD_QOS_WRITE_IOPS, 1);
    CHECK_EQ(vd_qos_configure(q, &lim, NULL), 0);
    vd_qos_wait(q, true, 0); /* takes the saved tenth and more */
    t0 = now_s();
    for (int i = 0; i < 100; i++) {
        vd_qos_wait(q, false, 4096);
    }
    CHECK(now_s() - t0 < 0.2);
    vd_qos_free(q);
    vd_qos_sched_free(s);
}

/* Asynchronous admission through the loop's timer: 300 requests at
 * 1000/s, in arrival order, about 0.2 s. */
static void test_async_rate(struct vd_ioloop *l)
{
    static struct tracked req[300];
    struct vd_qos_sched *s;
    struct vd_qos *q;
    struct vd_qos_limits lim = limit(VD_QOS_READ_IOPS, 1000);
    int now = 0;
    double t0;

    CHECK_EQ(vd_qos_sched_new(l, &s), 0);
    q = vd_qos_new(s);
    CHECK_EQ(vd_qos_configure(q, &lim, NULL), 0);
    atomic_store(&released, 0);
    atomic_store(&last_seq, -1);
    t0 = now_s();
    for (int i = 0; i < 300; i++) {
        req[i].seq = i;
        req[i].r.release = on_release;
        if (vd_qos_admit(q, &req[i].r, false, 4096)) {
            now++; /* only while nothing is queued: order kept */
            atomic_store(&last_seq, i);
        }
    }
    CHECK(now >= 95 && now <= 200); /* the tenth saved up, and a stall */
    CHECK(wait_released(300 - now, 5.0));
    t0 = now_s() - t0;
    fprintf(stderr, "async: %d at once, the rest released by %.3f s\n", now,
            t0);
    CHECK(t0 > 0.17 && t0 < 1.0);
    CHECK(atomic_load(&order_ok));
    vd_qos_free(q);
    vd_qos_sched_free(s);
}

/* A drain (vd_qos_flush) and a raised limit both release at once. */
static void test_release_at_once(struct vd_ioloop *l)
{
    static struct tracked req[20];
    struct vd_qos_sched *s;
    struct vd_qos *q;
    struct vd_qos_limits lim = limit(VD_QOS_IOPS, 1);
    int queued = 0;
    double t0;

    CHECK_EQ(vd_qos_sched_new(l, &s), 0);
    q = vd_qos_new(s);
    CHECK_EQ(vd_qos_configure(q, &lim, NULL), 0);
    atomic_store(&released, 0);
    atomic_store(&last_seq, -1);
    for (int i = 0; i < 10; i++) {
        req[i].seq = i;
        req[i].r.release = on_release;
        queued += !vd_qos_admit(q, &req[i].r, true, 512);
    }
    CHECK_EQ(queued, 9);
    t0 = now_s();
    vd_qos_flush(q);
    CHECK_EQ(atomic_load(&released), 9); /* before flush returned */

    atomic_store(&released, 0);
    atomic_store(&last_seq, 9);
    for (int i = 10; i < 20; i++) {
        req[i].seq = i;
        req[i].r.release = on_release;
        CHECK(!vd_qos_admit(q, &req[i].r, true, 512));
    }
    lim = limit(VD_QOS_IOPS, 1000000);
    t0 = now_s();
    CHECK_EQ(vd_qos_configure(q, &lim, NULL), 0);
    CHECK(wait_released(10, 2.0));
    CHECK(now_s() - t0 < 0.5); /* not the 10 s the old limit meant */
    CHECK(atomic_load(&order_ok));
    vd_qos_free(q);
    vd_qos_sched_free(s);
}

/* Groups: unknown names refused, busy groups kept, the budget shared. */
static void test_group(void)
{
    struct vd_qos_sched *s;
    struct vd_qos *a, *b;
    struct vd_qos_limits none = {0}, g = limit(VD_QOS_IOPS, 2000);
    double t0;

    CHECK_EQ(vd_qos_sched_new(NULL, &s), 0);
    a = vd_qos_new(s);
    b = vd_qos_new(s);
    CHECK_EQ(vd_qos_configure(a, &none, "g"), -ENOENT);
    CHECK_EQ(vd_qos_group_set(s, "g", &g), 0);
    CHECK_EQ(vd_qos_configure(a, &none, "g"), 0);
    CHECK_EQ(vd_qos_configure(b, &none, "g"), 0);
    CHECK(vd_qos_active(a) && vd_qos_active(b));
    CHECK_EQ(vd_qos_group_remove(s, "g"), -EBUSY);
    t0 = now_s();
    for (int i = 0; i < 300; i++) { /* 600 together: 0.2 s */
        vd_qos_wait(a, false, 0);
        vd_qos_wait(b, false, 0);
    }
    t0 = now_s() - t0;
    fprintf(stderr, "group: 600 requests of two volumes in %.3f s\n", t0);
    CHECK(t0 > 0.17 && t0 < 0.8);
    CHECK_EQ(vd_qos_configure(a, &none, NULL), 0);
    CHECK(!vd_qos_active(a));
    vd_qos_free(b);
    CHECK_EQ(vd_qos_group_remove(s, "g"), 0);
    CHECK_EQ(vd_qos_group_remove(s, "g"), -ENOENT);
    vd_qos_free(a);
    vd_qos_sched_free(s);
}

/* A limit far above the load: what asking costs per request. */
static void test_cost(struct vd_ioloop *l)
{
    struct vd_qos_sched *s;
    struct vd_qos *q;
    struct vd_qos_limits lim = {0};
    struct vd_qos_req r = {.release = on_release};
    int n = 1000000, late = 0;
    double t0;

    lim.rate[VD_QOS_IOPS] = 1000000000;
    lim.rate[VD_QOS_BPS] = 1ULL << 50;
    CHECK_EQ(vd_qos_sched_new(l, &s), 0);
    q = vd_qos_new(s);
    CHECK_EQ(vd_qos_configure(q, &lim, NULL), 0);
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        late += !vd_qos_admit(q, &r, i % 3 == 0, 4096);
    }
    t0 = now_s() - t0;
    fprintf(stderr, "cost: %.0f ns per request under a limit far above\n",
            t0 * 1e9 / n);
    CHECK_EQ(late, 0);
    CHECK(t0 * 1e9 / n < 2000);
    vd_qos_free(q);
    vd_qos_sched_free(s);
}

int main(void)
{
    struct vd_ioloop *l = NULL;
    struct vd_qos_limits bad = {0};
    struct vd_error err = {0};

    bad.rate[VD_QOS_BPS] = VD_QOS_RATE_MAX + 1;
    CHECK_EQ(vd_qos_limits_check(&bad, &err), -EINVAL);
    bad = (struct vd_qos_limits){.burst_seconds = -1};
    CHECK_EQ(vd_qos_limits_check(&bad, &err), -EINVAL);
    bad.burst_seconds = 3600;
    CHECK_EQ(vd_qos_limits_check(&bad, &err), 0);

    test_sync_rate();
    test_debt();
    test_group();
    CHECK_EQ(vd_ioloop_new(0, 0, &l), 0);
    if (l != NULL) {
        test_async_rate(l);
        test_release_at_once(l);
        test_cost(l);
        vd_ioloop_free(l);
    }
    return vd_test_done("test_qos");
}
