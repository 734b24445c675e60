/* iostats.h — per-volume request accounting on the data path: latency
 * histograms of reads, writes and flushes, errors by errno, and the time
 * requests spent held by a rate limit.
 *
 * DESIGN NOTES
 * 1. Recording costs two clock reads per request (start and end, both
 *    CLOCK_MONOTONIC) and two relaxed atomic additions; no lock. A scrape
 *    reads the counters without stopping writers, so a bucket and the sum
 *    may be one request apart; every value only grows.
 * 2. Bucket k (0 <= k < VD_LAT_BUCKETS) counts requests that took at most
 *    VD_LAT_BASE_NS << k: 10 us, 20 us, ... 10.49 s. Anything slower goes
 *    to the last slot (+Inf). The index is the bit length of
 *    (ns - 1) / VD_LAT_BASE_NS, one division by a constant and one clz.
 * 3. Errors are counted in a fixed set of errno slots (vd_iostats_errno),
 *    so a scrape has a bounded number of series whatever a driver returns;
 *    anything else lands in the last slot, "other". */
#ifndef VD_IOSTATS_H
#define VD_IOSTATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

enum vd_io_op { VD_IO_READ, VD_IO_WRITE, VD_IO_FLUSH, VD_IO_NOPS };

#define VD_LAT_BASE_NS 10000ULL /* the first bucket's bound: 10 us */
#define VD_LAT_BUCKETS 21       /* finite bounds; note 2 */
#define VD_ERRNO_SLOTS 13       /* note 3; the last one is "other" */

struct vd_iostats {
    struct {
        _Atomic uint64_t bucket[VD_LAT_BUCKETS + 1]; /* last: +Inf */
        _Atomic uint64_t sum_ns;
    } op[VD_IO_NOPS];
    _Atomic uint64_t errors[VD_ERRNO_SLOTS];
};

/* A plain copy of the counters, for the API. */
struct vd_iostats_snap {
    uint64_t bucket[VD_IO_NOPS][VD_LAT_BUCKETS + 1];
    uint64_t sum_ns[VD_IO_NOPS];
    uint64_t errors[VD_ERRNO_SLOTS];
};

/* The op's name as the metrics spell it: "read", "write", "flush". */
const char *vd_io_op_name(enum vd_io_op op);
/* Upper bound of bucket k in nanoseconds (k < VD_LAT_BUCKETS). */
static inline uint64_t vd_lat_bound_ns(unsigned k)
{
    return VD_LAT_BASE_NS << k;
}
/* The bucket a latency of ns nanoseconds is counted in (note 2). */
static inline unsigned vd_lat_bucket(uint64_t ns)
{
    uint64_t q = ns > 0 ? (ns - 1) / VD_LAT_BASE_NS : 0;
    unsigned k = q == 0 ? 0 : 64u - (unsigned)__builtin_clzll(q);
    return k < VD_LAT_BUCKETS ? k : VD_LAT_BUCKETS;
}

/* The slot of -errno ret (note 3), and the name of slot i ("EIO", ...,
 * "other"). */
unsigned vd_iostats_errno_slot(int ret);
const char *vd_iostats_errno_name(unsigned slot);

/* CLOCK_MONOTONIC in nanoseconds: a request's start. */
static inline uint64_t vd_iostats_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void vd_iostats_error(struct vd_iostats *s, int ret);

/* A request of op that started at t0 (vd_iostats_now) ended with ret. */
static inline void vd_iostats_done(struct vd_iostats *s, enum vd_io_op op,
                                   uint64_t t0, int ret)
{
    uint64_t ns = vd_iostats_now() - t0;
    atomic_fetch_add_explicit(&s->op[op].bucket[vd_lat_bucket(ns)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->op[op].sum_ns, ns, memory_order_relaxed);
    if (ret < 0) {
        vd_iostats_error(s, ret);
    }
}

void vd_iostats_read(struct vd_iostats *s, struct vd_iostats_snap *out);

#endif
