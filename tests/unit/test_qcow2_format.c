/* test_qcow2_format.c — pure logic of the qcow2 driver: L2 entry
 * decoding, refcount entry packing, header and snapshot table validation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2/qcow2-int.h"
#include "vd_error.h"
#include "vd_test.h"

static void test_l2_decode(void)
{
    struct q2_map m;
    CHECK_EQ(q2_l2_entry_decode(0, 16, &m), 0);
    CHECK_EQ(m.type, Q2_UNALLOCATED);
    CHECK_EQ(q2_l2_entry_decode(QCOW_OFLAG_COPIED | 0x50000, 16, &m), 0);
    CHECK_EQ(m.type, Q2_NORMAL);
    CHECK_EQ(m.host, 0x50000);
    CHECK(m.copied);
    CHECK_EQ(q2_l2_entry_decode(0x50000, 16, &m), 0);
    CHECK(!m.copied);
    /* unaligned data offset: invalid for 64k clusters, fine for 512 */
    CHECK_EQ(q2_l2_entry_decode(0x50200, 16, &m), -EIO);
    CHECK_EQ(q2_l2_entry_decode(0x50200, 9, &m), 0);
    CHECK_EQ(q2_l2_entry_decode(QCOW_OFLAG_ZERO, 16, &m), 0);
    CHECK_EQ(m.type, Q2_ZERO_PLAIN);
    CHECK_EQ(q2_l2_entry_decode(QCOW_OFLAG_ZERO | QCOW_OFLAG_COPIED | 0x70000,
                                16, &m),
             0);
    CHECK_EQ(m.type, Q2_ZERO_ALLOC);
    CHECK_EQ(m.host, 0x70000);
    /* compressed, 64k clusters: offset in bits 0..53, sectors-1 above */
    uint64_t e = QCOW_OFLAG_COMPRESSED | (3ULL << 54) | 0x12345;
    CHECK_EQ(q2_l2_entry_decode(e, 16, &m), 0);
    CHECK_EQ(m.type, Q2_COMPRESSED);
    CHECK_EQ(m.host, 0x12345);
    CHECK_EQ(m.csize, 4 * 512 - (0x12345 & 511));
    /* 4k clusters: offset bits 0..57 */
    e = QCOW_OFLAG_COMPRESSED | (1ULL << 58) | 0x3000;
    CHECK_EQ(q2_l2_entry_decode(e, 12, &m), 0);
    CHECK_EQ(m.host, 0x3000);
    CHECK_EQ(m.csize, 1024);
    CHECK_EQ(q2_l2_entry_decode(e | QCOW_OFLAG_COPIED, 12, &m), -EIO);
}

static void test_refcount_entries(void)
{
    uint8_t blk[512];
    for (uint32_t order = 0; order <= 6; order++) {
        uint64_t max = order == 6 ? UINT64_MAX : (1ULL << (1u << order)) - 1;
        uint64_t n = 512 * 8 >> order;
        memset(blk, 0, sizeof(blk));
        for (uint64_t i = 0; i < n; i += 3) {
            q2_refcount_set_entry(blk, i, order, (i * 7 + 1) & max);
        }
        int bad = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t want = i % 3 == 0 ? ((i * 7 + 1) & max) : 0;
            bad += q2_refcount_get_entry(blk, i, order) != want;
        }
        CHECK_EQ(bad, 0);
        q2_refcount_set_entry(blk, 1, order, max);
        CHECK(q2_refcount_get_entry(blk, 1, order) == max);
        CHECK(q2_refcount_get_entry(blk, 0, order) == 1);
    }
    /* 1-bit refcounts: least significant bit first (QEMU's layout) */
    memset(blk, 0, sizeof(blk));
    q2_refcount_set_entry(blk, 0, 0, 1);
    q2_refcount_set_entry(blk, 9, 0, 1);
    CHECK_EQ(blk[0], 0x01);
    CHECK_EQ(blk[1], 0x02);
    /* 16-bit: big-endian */
    memset(blk, 0, sizeof(blk));
    q2_refcount_set_entry(blk, 1, 4, 0x1234);
    CHECK_EQ(blk[2], 0x12);
    CHECK_EQ(blk[3], 0x34);
}

/* A valid v3 header in a 64k cluster: file of 1 MiB. */
static void make_header(uint8_t *buf, struct q2_header *h)
{
    memset(h, 0, sizeof(*h));
    h->version = 3;
    h->cluster_bits = 16;
    h->size = 1ULL << 30;
    h->l1_size = 2;
    h->l1_table_offset = 3 << 16;
    h->refcount_table_offset = 1 << 16;
    h->refcount_table_clusters = 1;
    h->refcount_order = 4;
    h->header_length = QCOW2_OUR_HEADER_LEN;
    memset(buf, 0, 65536);
    q2_header_encode(h, buf);
}

static void test_header(void)
{
    static uint8_t buf[65536];
    struct q2_header h, d;
    struct vd_error err = {0};
    const uint64_t fsz = 1 << 20;

    make_header(buf, &h);
    CHECK_EQ(q2_header_decode(buf, sizeof(buf), fsz, &d, &err), 0);
    CHECK_EQ(d.version, 3);
    CHECK_EQ(d.size, 1ULL << 30);
    CHECK_EQ(d.l1_table_offset, 3 << 16);
    CHECK_EQ(d.refcount_order, 4);

    /* backing format extension, then end marker */
    q2_put_be32(buf + 112, QCOW2_EXT_BACKING_FORMAT);
    q2_put_be32(buf + 116, 5);
    memcpy(buf + 120, "qcow2", 5);
    CHECK_EQ(q2_header_decode(buf, sizeof(buf), fsz, &d, &err), 0);
    CHECK(strcmp(d.backing_format, "qcow2") == 0);
    /* extension running past the cluster */
    q2_put_be32(buf + 116, 70000);
    vd_error_clear(&err);
    CHECK_EQ(q2_header_decode(buf, sizeof(buf), fsz, &d, &err), -EINVAL);
    CHECK(strstr(err.msg, "extension") != NULL);

    struct {
        size_t off;
        int width;
        uint64_t val;
        int want;
        const char *msg;
    } cases[] = {
        {20, 4, 22, -EINVAL, "cluster_bits 22"},
        {20, 4, 8, -EINVAL, "cluster_bits 8"},
        {4, 4, 1, -ENOTSUP, "version 1"},
        {40, 8, 1ULL << 20, -EINVAL, "L1 table offset"},      /* at EOF */
        {40, 8, (3 << 16) + 512, -EINVAL, "L1 table offset"}, /* unaligned */
        {36, 4, 1, -EINVAL, "L1 table too small"},
        {36, 4, 0x1000000, -EFBIG, "L1 table of"},
        {48, 8, 0, -EINVAL, "refcount table offset"},
        {56, 4, 0, -EINVAL, "no refcount table"},
        {60, 4, 70000, -EINVAL, "too many snapshots"},
        {72, 8, 1ULL << 9, -ENOTSUP, "unknown incompatible features 0x200"},
        {72, 8, 1ULL << 2, -ENOTSUP, "external data file"},
        {72, 8, 1ULL << 4, -ENOTSUP, "extended L2"},
        {96, 4, 7, -EINVAL, "refcount_order 7"},
        {100, 4, 100, -EINVAL, "header_length"},
        {32, 4, 1, -ENOTSUP, "encrypted"},
        {16, 4, 2000, -EINVAL, "backing file name length"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        make_header(buf, &h);
        if (cases[i].width == 8) {
            q2_put_be64(buf + cases[i].off, cases[i].val);
        } else {
            q2_put_be32(buf + cases[i].off, (uint32_t)cases[i].val);
        }
        if (cases[i].off == 16) {
            q2_put_be64(buf + 8, 200); /* offset set with the length */
        }
        vd_error_clear(&err);
        int r = q2_header_decode(buf, sizeof(buf), fsz, &d, &err);
        CHECK_EQ(r, cases[i].want);
        if (strstr(err.msg, cases[i].msg) == NULL) {
            fprintf(stderr, "case %zu: message '%s' lacks '%s'\n", i, err.msg,
                    cases[i].msg);
            CHECK(0);
        }
    }
    /* too short a file */
    make_header(buf, &h);
    vd_error_clear(&err);
    CHECK_EQ(q2_header_decode(buf, 50, fsz, &d, &err), -EINVAL);
}

static void test_snapshots(void)
{
    uint8_t buf[256];
    struct q2_snapshot *sn;
    struct vd_error err = {0};
    uint64_t used;

    memset(buf, 0, sizeof(buf));
    q2_put_be64(buf, 0x30000);  /* l1 offset */
    q2_put_be32(buf + 8, 4);    /* l1 size */
    q2_put_be16(buf + 12, 1);   /* id length */
    q2_put_be16(buf + 14, 4);   /* name length */
    q2_put_be32(buf + 32, 123); /* vm state size, 32-bit field */
    q2_put_be32(buf + 36, 16);  /* extra data */
    q2_put_be64(buf + 40, 123); /* vm state size */
    q2_put_be64(buf + 48, 1 << 30);
    memcpy(buf + 56, "1snap", 5);
    CHECK_EQ(q2_snapshots_decode(buf, sizeof(buf), 1, 3, 16, 1 << 20, &sn,
                                 &used, &err),
             0);
    CHECK_EQ(used, 64);
    CHECK(strcmp(sn[0].id, "1") == 0 && strcmp(sn[0].name, "snap") == 0);
    CHECK_EQ(sn[0].disk_size, 1 << 30);
    CHECK_EQ(sn[0].vm_state_size, 123);
    q2_snapshots_free(sn, 1);
    /* the last entry's padding may lie past the end of the file */
    CHECK_EQ(q2_snapshots_decode(buf, 61, 1, 3, 16, 1 << 20, &sn, &used, &err),
             0);
    CHECK_EQ(used, 61);
    q2_snapshots_free(sn, 1);
    /* round trip through the encoder */
    CHECK_EQ(q2_snapshots_decode(buf, sizeof(buf), 1, 3, 16, 1 << 20, &sn,
                                 &used, &err),
             0);
    uint8_t *enc;
    uint64_t enc_len;
    CHECK_EQ(q2_snapshots_encode(sn, 1, &enc, &enc_len), 0);
    CHECK_EQ(enc_len, 64);
    CHECK(memcmp(enc, buf, 64) == 0);
    free(enc);
    q2_snapshots_free(sn, 1);
    /* table shorter than the entry claims */
    CHECK_EQ(q2_snapshots_decode(buf, 60, 1, 3, 16, 1 << 20, &sn, &used, &err),
             -EINVAL);
    /* a second entry that is not there */
    vd_error_clear(&err);
    CHECK_EQ(q2_snapshots_decode(buf, 64, 2, 3, 16, 1 << 20, &sn, &used, &err),
             -EINVAL);
    /* snapshot L1 past the end of the file */
    vd_error_clear(&err);
    q2_put_be64(buf, 1ULL << 40);
    CHECK_EQ(q2_snapshots_decode(buf, sizeof(buf), 1, 3, 16, 1 << 20, &sn,
                                 &used, &err),
             -EINVAL);
    CHECK(strstr(err.msg, "snapshot 0 has a bad L1 table") != NULL);
}

int main(void)
{
    test_l2_decode();
    test_refcount_entries();
    test_header();
    test_snapshots();
    return vd_test_done("test_qcow2_format");
}
