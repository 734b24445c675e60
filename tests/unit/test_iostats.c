/* test_iostats.c — the latency bucket of a request (clz on the latency
 * over 10 us), the errno slots, and that a recorded request lands in its
 * bucket, its sum and, when it failed, its errno. */
#include <errno.h>
#include <string.h>

#include "iostats.h"
#include "vd_test.h"

static void test_buckets(void)
{
    CHECK_EQ(vd_lat_bucket(0), 0);
    CHECK_EQ(vd_lat_bucket(1), 0);
    CHECK_EQ(vd_lat_bucket(10000), 0); /* le="1e-05" is inclusive */
    CHECK_EQ(vd_lat_bucket(10001), 1);
    CHECK_EQ(vd_lat_bucket(20000), 1);
    CHECK_EQ(vd_lat_bucket(20001), 2);
    CHECK_EQ(vd_lat_bucket(40000), 2);
    CHECK_EQ(vd_lat_bucket(40001), 3);
    /* Every bound is in its own bucket and one nanosecond more is not. */
    for (unsigned k = 0; k < VD_LAT_BUCKETS; k++) {
        CHECK_EQ(vd_lat_bucket(vd_lat_bound_ns(k)), k);
        CHECK_EQ(vd_lat_bucket(vd_lat_bound_ns(k) + 1), k + 1);
    }
    CHECK_EQ(vd_lat_bound_ns(0), 10000);
    CHECK_EQ(vd_lat_bound_ns(VD_LAT_BUCKETS - 1), 10485760000ULL);
    CHECK_EQ(vd_lat_bucket(60ULL * 1000000000u), VD_LAT_BUCKETS); /* +Inf */
    CHECK_EQ(vd_lat_bucket(UINT64_MAX), VD_LAT_BUCKETS);
}

static void test_errno_slots(void)
{
    CHECK(strcmp(vd_iostats_errno_name(vd_iostats_errno_slot(-EIO)), "EIO") ==
          0);
    CHECK(strcmp(vd_iostats_errno_name(vd_iostats_errno_slot(-ENOSPC)),
                 "ENOSPC") == 0);
    CHECK(strcmp(vd_iostats_errno_name(vd_iostats_errno_slot(-EXDEV)),
                 "other") == 0);
    CHECK_EQ(vd_iostats_errno_slot(-EXDEV), VD_ERRNO_SLOTS - 1);
    /* Every named slot maps back to itself: no name is listed twice. */
    for (unsigned i = 0; i + 1 < VD_ERRNO_SLOTS; i++) {
        for (unsigned j = i + 1; j < VD_ERRNO_SLOTS; j++) {
            CHECK(strcmp(vd_iostats_errno_name(i), vd_iostats_errno_name(j)) !=
                  0);
        }
    }
}

static void test_record(void)
{
    static struct vd_iostats s; /* zeroed */
    struct vd_iostats_snap snap;
    uint64_t t0 = vd_iostats_now();
    uint64_t total = 0;

    vd_iostats_done(&s, VD_IO_READ, t0, 0);
    vd_iostats_done(&s, VD_IO_WRITE, t0, -ENOSPC);
    vd_iostats_done(&s, VD_IO_WRITE, t0 - 2000000000ULL, 0); /* 2 s ago */
    vd_iostats_read(&s, &snap);
    for (unsigned k = 0; k <= VD_LAT_BUCKETS; k++) {
        total += snap.bucket[VD_IO_READ][k];
    }
    CHECK_EQ(total, 1);
    CHECK(snap.sum_ns[VD_IO_WRITE] >= 2000000000ULL);
    CHECK_EQ(snap.bucket[VD_IO_WRITE][vd_lat_bucket(2000000000ULL)] +
                 snap.bucket[VD_IO_WRITE][vd_lat_bucket(2000000000ULL) + 1],
             1); /* 2 s plus the time the call took */
    CHECK_EQ(snap.errors[vd_iostats_errno_slot(-ENOSPC)], 1);
    CHECK_EQ(snap.errors[vd_iostats_errno_slot(-EIO)], 0);
    CHECK(strcmp(vd_io_op_name(VD_IO_FLUSH), "flush") == 0);
}

int main(void)
{
    test_buckets();
    test_errno_slots();
    test_record();
    return vd_test_done("test_iostats");
}
