/* qos.h — per-volume and per-group I/O limits: token buckets that hold
 * requests back, in the daemon, until the volume's (and its group's)
 * budget allows them. Requests are delayed, never failed.
 *
 * The volume manager owns one scheduler (vd_qos_sched) and gives each
 * volume a vd_qos; volume_io.c asks it on the data path. Asynchronous
 * requests wait in a queue that a timer on the I/O loop releases;
 * synchronous ones (a worker thread's blocking read) sleep on a condition
 * variable. */
#ifndef VD_QOS_H
#define VD_QOS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vd_error;
struct vd_ioloop;
struct vd_qos;
struct vd_qos_sched;

/* The limits, in the order the API, the catalog and vd_qos_limit_name
 * use. */
enum vd_qos_limit {
    VD_QOS_IOPS,
    VD_QOS_READ_IOPS,
    VD_QOS_WRITE_IOPS,
    VD_QOS_BPS,
    VD_QOS_READ_BPS,
    VD_QOS_WRITE_BPS,
    VD_QOS_NLIMITS
};

/* The highest rate accepted (requests or bytes per second), and the
 * longest burst. */
#define VD_QOS_RATE_MAX (1ULL << 50)
#define VD_QOS_BURST_MAX 3600.0

struct vd_qos_limits {
    uint64_t rate[VD_QOS_NLIMITS]; /* per second; 0 = no limit */
    /* How many seconds of each rate an idle volume may save up and then
     * spend at full speed; 0 = the default (a tenth of a second). */
    double burst_seconds;
};

/* A change of limits as the API asks for it: members not given stay as
 * they are, null ones go. */
struct vd_qos_patch {
    bool clear;               /* every limit goes first ("qos": null) */
    bool set[VD_QOS_NLIMITS]; /* member given: rate[i], 0 = clear */
    uint64_t rate[VD_QOS_NLIMITS];
    bool burst_set; /* burst_seconds given, 0 = clear */
    double burst_seconds;
    bool group_set;    /* volumes: "qos_group" given */
    const char *group; /* the group to share, NULL = leave it */
};
void vd_qos_patch_apply(const struct vd_qos_patch *p,
                        struct vd_qos_limits *lim);

/* "iops", "read_iops", ... "write_bps". */
const char *vd_qos_limit_name(enum vd_qos_limit i);
/* Whether any rate is set. */
bool vd_qos_limits_any(const struct vd_qos_limits *lim);
/* Check ranges: rates in 1..VD_QOS_RATE_MAX (or 0), burst in
 * 0..VD_QOS_BURST_MAX. 0 or -EINVAL naming the member. */
int vd_qos_limits_check(const struct vd_qos_limits *lim, struct vd_error *err);

/* One request's place in a volume's queue (private to qos.c but for
 * release, which the owner fills for asynchronous requests). */
struct vd_qos_req {
    void (*release)(struct vd_qos_req *r); /* runs when the budget allows */
    struct vd_qos_req *next;
    uint64_t bytes;
    uint64_t since_ns;
    bool write;
    bool released;        /* synchronous waiters: sched lock */
    pthread_cond_t *cond; /* synchronous waiters */
};

/* The scheduler: loop runs the timer that releases queued requests (NULL:
 * no loop, every wait is synchronous). */
int vd_qos_sched_new(struct vd_ioloop *loop, struct vd_qos_sched **out);
/* Every volume's vd_qos is freed first. Accepts NULL. */
void vd_qos_sched_free(struct vd_qos_sched *s);

/* Groups: budgets shared by several volumes, by name. */
int vd_qos_group_set(struct vd_qos_sched *s, const char *name,
                     const struct vd_qos_limits *lim);
/* -EBUSY while a volume uses it; -ENOENT if unknown. */
int vd_qos_group_remove(struct vd_qos_sched *s, const char *name);

/* A volume's throttle: no limits, no group. */
struct vd_qos *vd_qos_new(struct vd_qos_sched *s);
/* Nothing may be queued (the gate drained). Accepts NULL. */
void vd_qos_free(struct vd_qos *q);
/* Apply new limits and group (NULL = none; -ENOENT if unknown) at once:
 * queued requests are looked at again with them. */
int vd_qos_configure(struct vd_qos *q, const struct vd_qos_limits *lim,
                     const char *group);

/* Whether requests must ask the throttle at all: one atomic load, the
 * only cost for a volume without limits. */
bool vd_qos_active(struct vd_qos *q);
/* Synchronous admission: sleep until the budget allows the request (a
 * worker thread; never the I/O thread). */
void vd_qos_wait(struct vd_qos *q, bool write, uint64_t bytes);
/* Asynchronous admission: true when the request may start now; false when
 * it was queued and r->release will run once the budget allows (on the I/O
 * thread, or on the thread that changed the limits). Without a loop this
 * waits, like vd_qos_wait, and returns true. */
bool vd_qos_admit(struct vd_qos *q, struct vd_qos_req *r, bool write,
                  uint64_t bytes);
/* Give back what an admitted request took, when it did not start after
 * all (its caller retries it through vd_qos_wait). */
void vd_qos_refund(struct vd_qos *q, bool write, uint64_t bytes);
/* Run r->release on the scheduler's own thread, where it may block: for a
 * released request its driver could not start without waiting (one
 * thread for all of them, not one per request). */
void vd_qos_run_blocking(struct vd_qos *q, struct vd_qos_req *r);
/* Release everything queued at once, whatever the budget: a drain (the
 * I/O gate closing) does not wait for the limit. */
void vd_qos_flush(struct vd_qos *q);

/* Time requests spent held back, and how many were, since start. */
struct vd_qos_stats {
    uint64_t throttled_ns;
    uint64_t throttled;
};
void vd_qos_stats(struct vd_qos *q, struct vd_qos_stats *out);

#endif
