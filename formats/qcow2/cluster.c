/* cluster.c — guest-to-host mapping through the L1 and L2 tables.
 *
 * Lookups validate every offset taken from a table before it is used;
 * q2_l2_for_write hands out L2 tables that may be changed in place,
 * allocating or copying them first. Callers hold the metadata lock. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "io_util.h"
#include "qcow2-int.h"
#include "vd_assert.h"

/* Why q2_host_cluster_ok(s, off) failed, in words. */
static const char *host_cluster_problem(const struct q2_state *s, uint64_t off)
{
    if (off & (s->cluster_size - 1)) {
        return "is not cluster aligned";
    }
    if (off < s->cluster_size) {
        return "points into the header";
    }
    if (!vd_range_ok(off, s->cluster_size, s->host_end)) {
        return "points past the end of the file";
    }
    return "points into other metadata";
}

/* Host offset of the L2 table for l1_index (0 = none). */
static int l2_offset(struct q2_state *s, uint32_t l1_index, uint64_t *off,
                     bool *copied)
{
    uint64_t e;
    VD_ASSERT_HELD(&s->lock);
    if (l1_index >= s->l1_size) {
        return q2_signal_corruption(s,
                                    "L1 index %u is past the L1 table "
                                    "(%u entries)",
                                    l1_index, s->l1_size);
    }
    e = s->l1[l1_index];
    *off = e & L1E_OFFSET_MASK;
    *copied = (e & QCOW_OFLAG_COPIED) != 0;
    if (*off != 0 && (!q2_host_cluster_ok(s, *off) ||
                      q2_overlaps_metadata(s, *off, s->cluster_size))) {
        return q2_signal_corruption(
            s, "L1 entry %u (L2 table offset 0x%llx) %s", l1_index,
            (unsigned long long)*off, host_cluster_problem(s, *off));
    }
    return 0;
}

int q2_get_mapping(struct q2_state *s, uint64_t vaddr, uint64_t maxlen,
                   struct q2_map *m, uint64_t *run)
{
    uint64_t cs = s->cluster_size;
    uint64_t l2_entries = 1ULL << s->l2_bits;
    uint32_t l1_index = (uint32_t)(vaddr >> (s->cluster_bits + s->l2_bits));
    uint64_t l2_index = (vaddr >> s->cluster_bits) & (l2_entries - 1);
    uint64_t bytes = cs - (vaddr & (cs - 1));
    uint64_t l2_off;
    uint8_t *l2;
    bool copied;
    int ret;

    memset(m, 0, sizeof(*m));
    ret = l2_offset(s, l1_index, &l2_off, &copied);
    if (ret < 0) {
        return ret;
    }
    if (l2_off == 0) {
        /* Unmapped: the run extends over every following empty L1 entry,
         * so sparse images are walked per L1 entry, not per L2 range. */
        bytes += (l2_entries - l2_index - 1) * cs;
        while (bytes < maxlen && ++l1_index < s->l1_size &&
               (s->l1[l1_index] & L1E_OFFSET_MASK) == 0) {
            bytes += cs << s->l2_bits;
        }
        *run = bytes < maxlen ? bytes : maxlen;
        return 0;
    }
    ret = q2_cache_get(s, &s->l2_cache, l2_off, true, &l2);
    if (ret < 0) {
        return ret;
    }
    ret = q2_l2_entry_decode(q2_table_get(l2, l2_index), s->cluster_bits, m);
    if (ret < 0) {
        uint64_t e = q2_table_get(l2, l2_index);
        return q2_signal_corruption(
            s,
            "L2 entry 0x%016llx for guest offset 0x%llx (L2 table at "
            "0x%llx) %s",
            (unsigned long long)e, (unsigned long long)vaddr,
            (unsigned long long)l2_off,
            (e & QCOW_OFLAG_COMPRESSED) ? "is compressed with the copied flag"
                                        : "is not cluster aligned");
    }
    if ((m->type == Q2_NORMAL || m->type == Q2_ZERO_ALLOC) &&
        !q2_host_cluster_ok(s, m->host)) {
        return q2_signal_corruption(
            s, "L2 entry for guest offset 0x%llx (host offset 0x%llx) %s",
            (unsigned long long)vaddr, (unsigned long long)m->host,
            host_cluster_problem(s, m->host));
    }
    if (m->type == Q2_COMPRESSED && (m->host < cs || m->host >= s->host_end)) {
        return q2_signal_corruption(
            s,
            "compressed cluster for guest offset 0x%llx (host offset "
            "0x%llx) lies outside the file",
            (unsigned long long)vaddr, (unsigned long long)m->host);
    }
    while (bytes < maxlen && m->type != Q2_COMPRESSED &&
           ++l2_index < l2_entries) {
        struct q2_map n;
        if (q2_l2_entry_decode(q2_table_get(l2, l2_index), s->cluster_bits,
                               &n) < 0 ||
            n.type != m->type) {
            break;
        }
        if (n.type == Q2_NORMAL &&
            (n.host != m->host + bytes + (vaddr & (cs - 1)) ||
             n.copied != m->copied || !q2_host_cluster_ok(s, n.host))) {
            break;
        }
        bytes += cs;
    }
    *run = bytes < maxlen ? bytes : maxlen;
    return 0;
}

int q2_l1_write(struct q2_state *s, uint32_t lo, uint32_t hi)
{
    uint8_t *buf;
    int ret;
    if (lo >= hi) {
        return 0;
    }
    if (s->broken || s->readonly) {
        return -EIO;
    }
    buf = malloc((size_t)(hi - lo) * 8);
    if (buf == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = lo; i < hi; i++) {
        q2_table_set(buf, i - lo, s->l1[i]);
    }
    ret = vd_meta_pwrite(s->fd, buf, (size_t)(hi - lo) * 8,
                         s->l1_offset + 8ULL * lo);
    free(buf);
    return ret;
}

int q2_metadata_writeback(struct q2_state *s)
{
    int ret;
    VD_ASSERT_HELD(&s->lock);
    if (s->readonly) {
        return 0;
    }
    if (s->broken || atomic_load(&s->sync_failed)) {
        return -EIO;
    }
    ret = q2_cache_writeback(s, &s->rb_cache);
    if (ret == 0) {
        ret = q2_cache_writeback(s, &s->l2_cache); /* syncs first */
    }
    if (ret == 0 && s->l1_dirty_lo < s->l1_dirty_hi) {
        ret = q2_sync(s);
        if (ret < 0) {
            return ret;
        }
        ret = q2_l1_write(s, s->l1_dirty_lo, s->l1_dirty_hi);
        if (ret == 0) {
            s->l1_dirty_lo = s->l1_dirty_hi = 0;
        }
    }
    if (ret == 0) {
        ret = q2_sync(s);
    }
    return ret;
}

static void l1_mark_dirty(struct q2_state *s, uint32_t i)
{
    if (s->l1_dirty_lo >= s->l1_dirty_hi) {
        s->l1_dirty_lo = i;
        s->l1_dirty_hi = i + 1;
        return;
    }
    if (i < s->l1_dirty_lo) {
        s->l1_dirty_lo = i;
    }
    if (i + 1 > s->l1_dirty_hi) {
        s->l1_dirty_hi = i + 1;
    }
}

int q2_l2_for_write(struct q2_state *s, uint32_t l1_index, uint64_t *l2_out)
{
    uint64_t old, new_off;
    uint8_t *tbl, *copy = NULL;
    bool copied;
    int ret = l2_offset(s, l1_index, &old, &copied);

    if (ret < 0) {
        return ret; /* signalled */
    }
    if (old != 0 && copied) {
        *l2_out = old;
        return 0;
    }
    if (old != 0) {
        /* Shared with a snapshot: the copy keeps the entries as they are,
         * the data clusters' refcounts already count both tables. */
        copy = malloc(s->cluster_size);
        if (copy == NULL) {
            return -ENOMEM;
        }
        ret = q2_cache_get(s, &s->l2_cache, old, true, &tbl);
        if (ret < 0) {
            free(copy);
            return ret;
        }
        memcpy(copy, tbl, s->cluster_size);
    }
    ret = q2_alloc_clusters(s, 1, &new_off);
    if (ret < 0) {
        free(copy);
        return ret;
    }
    ret = q2_cache_get(s, &s->l2_cache, new_off, false, &tbl);
    if (ret < 0) {
        free(copy);
        return ret;
    }
    if (copy != NULL) {
        memcpy(tbl, copy, s->cluster_size);
        free(copy);
    }
    q2_cache_mark_dirty(&s->l2_cache, tbl);
    s->l1[l1_index] = new_off | QCOW_OFLAG_COPIED;
    l1_mark_dirty(s, l1_index);
    if (old != 0) {
        ret = q2_free_deferred(s, old, s->cluster_size);
        if (ret < 0) {
            return ret;
        }
    }
    *l2_out = new_off;
    return 0;
}
