/* refcount.c — reference counts of host clusters and cluster allocation.
 *
 * Refcount blocks live in s->rb_cache; the refcount table is held whole in
 * memory. New refcount blocks describe themselves; a full table is replaced
 * by a larger one placed past the end of the file. Callers hold the lock. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "io_util.h"
#include "qcow2-int.h"
#include "vd_assert.h"

/* The refcount block covering host cluster index `cluster`, or *blk = NULL
 * when the table has no block for it (every refcount there is 0). */
static int rb_for(struct q2_state *s, uint64_t cluster, uint8_t **blk)
{
    uint64_t idx = cluster >> s->rb_bits;
    uint64_t off;
    *blk = NULL;
    if (idx >= s->reftable_size) {
        return 0;
    }
    off = s->reftable[idx] & REFT_OFFSET_MASK;
    if (off == 0) {
        return 0;
    }
    if (!q2_host_cluster_ok(s, off) ||
        q2_overlaps_metadata(s, off, s->cluster_size)) {
        return q2_signal_corruption(
            s,
            "refcount table entry %llu points to an invalid refcount "
            "block offset 0x%llx",
            (unsigned long long)idx, (unsigned long long)off);
    }
    return q2_cache_get(s, &s->rb_cache, off, true, blk);
}

int q2_refcount_of(struct q2_state *s, uint64_t cluster, uint64_t *rc)
{
    uint8_t *blk;
    int ret = rb_for(s, cluster, &blk);
    *rc = 0;
    if (ret < 0 || blk == NULL) {
        return ret;
    }
    *rc = q2_refcount_get_entry(blk, cluster & ((1ULL << s->rb_bits) - 1),
                                s->refcount_order);
    return 0;
}

int q2_refcount_update(struct q2_state *s, uint64_t off, uint64_t len,
                       int delta)
{
    uint64_t first = off >> s->cluster_bits;
    uint64_t last = (off + len - 1) >> s->cluster_bits;
    uint64_t mask = (1ULL << s->rb_bits) - 1;

    if (len == 0) {
        return 0;
    }
    for (uint64_t c = first; c <= last; c++) {
        uint8_t *blk;
        int ret = rb_for(s, c, &blk);
        uint64_t v;
        if (ret < 0) {
            return ret;
        }
        if (blk == NULL) {
            return q2_signal_corruption(
                s, "host cluster 0x%llx is in use but has no refcount block",
                (unsigned long long)(c << s->cluster_bits));
        }
        v = q2_refcount_get_entry(blk, c & mask, s->refcount_order);
        if (delta < 0 && v == 0) {
            return q2_signal_corruption(
                s, "refcount of host cluster 0x%llx would drop below zero",
                (unsigned long long)(c << s->cluster_bits));
        }
        if (delta > 0 && v == s->refcount_max) {
            return -ERANGE;
        }
        v = delta > 0 ? v + 1 : v - 1;
        q2_refcount_set_entry(blk, c & mask, s->refcount_order, v);
        q2_cache_mark_dirty(&s->rb_cache, blk);
        if (v == 0) {
            uint64_t host = c << s->cluster_bits;
            if (host < s->free_hint) {
                s->free_hint = host;
            }
            q2_cache_drop(&s->l2_cache, host);
        }
    }
    return 0;
}

int q2_refcount_lower(struct q2_state *s, uint64_t cluster, uint64_t to)
{
    uint64_t mask = (1ULL << s->rb_bits) - 1;
    uint8_t *blk;
    int ret = rb_for(s, cluster, &blk);
    if (ret < 0 || blk == NULL) {
        return ret; /* no block: the count is 0 already */
    }
    if (q2_refcount_get_entry(blk, cluster & mask, s->refcount_order) <= to) {
        return 0;
    }
    q2_refcount_set_entry(blk, cluster & mask, s->refcount_order, to);
    q2_cache_mark_dirty(&s->rb_cache, blk);
    if (to == 0) {
        uint64_t host = cluster << s->cluster_bits;
        if (host < s->free_hint) {
            s->free_hint = host;
        }
        q2_cache_drop(&s->l2_cache, host);
    }
    return 0;
}

int q2_refcount_extend_host_end(struct q2_state *s)
{
    uint64_t mask = (1ULL << s->rb_bits) - 1;
    uint64_t first = s->host_end >> s->cluster_bits;
    uint64_t end = first;
    uint64_t budget = s->host_end; /* distinct blocks all fit in the file */

    /* Only blocks covering clusters past the end of the file matter; each
     * is validated against the file as it is (host_end not yet raised).
     * A hostile table repeating one block cannot make this read more than
     * the file's size. */
    for (uint64_t i = first >> s->rb_bits;
         i < s->reftable_size && budget >= s->cluster_size; i++) {
        uint64_t off = s->reftable[i] & REFT_OFFSET_MASK;
        uint64_t lo = i << s->rb_bits;
        uint8_t *blk;
        int ret;
        if (off == 0 || !q2_host_cluster_ok(s, off) ||
            q2_overlaps_metadata(s, off, s->cluster_size)) {
            continue; /* no block, or a bad one that rb_for refuses */
        }
        budget -= s->cluster_size;
        ret = q2_cache_get(s, &s->rb_cache, off, true, &blk);
        if (ret < 0) {
            return ret;
        }
        for (uint64_t j = mask + 1; j > 0 && lo + j > end; j--) {
            if (q2_refcount_get_entry(blk, j - 1, s->refcount_order) != 0) {
                end = lo + j;
                break;
            }
        }
    }
    s->host_end = end << s->cluster_bits;
    return 0;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* Replace the refcount table by one with at least min_entries entries,
 * written past the end of the file together with the refcount blocks that
 * describe it. */
static int grow_reftable(struct q2_state *s, uint64_t min_entries)
{
    uint64_t cs = s->cluster_size;
    uint64_t start = q2_align_up(s->host_end, cs) >> s->cluster_bits;
    uint64_t entries = s->reftable_size + s->reftable_size / 2 + 1;
    uint64_t nt = 0, nb = 0, end;
    uint64_t *table = NULL;
    uint8_t *blk = NULL;
    uint64_t old_off = s->reftable_offset;
    uint64_t old_bytes = s->reftable_size * 8;
    uint64_t written_end = 0; /* past the clusters written so far */
    int ret;

    if (entries < min_entries) {
        entries = min_entries;
    }
    for (;;) {
        uint64_t nt2, nb2 = 0;
        end = start + nt + nb;
        if (entries < div_up(end, 1ULL << s->rb_bits)) {
            entries = div_up(end, 1ULL << s->rb_bits);
        }
        nt2 = div_up(entries * 8, cs);
        for (uint64_t i = start >> s->rb_bits; i <= (end - 1) >> s->rb_bits;
             i++) {
            if (i >= s->reftable_size || s->reftable[i] == 0) {
                nb2++;
            }
        }
        if (nt2 == nt && nb2 == nb) {
            break;
        }
        nt = nt2;
        nb = nb2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES) {
        return -EFBIG;
    }
    entries = nt * cs / 8;
    table = calloc(entries, 8);
    blk = malloc(cs);
    if (table == NULL || blk == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    memcpy(table, s->reftable, s->reftable_size * 8);

    /* New blocks first (clusters start..start+nb-1), then the table. */
    uint64_t next_blk = start;
    for (uint64_t i = start >> s->rb_bits; i <= (end - 1) >> s->rb_bits; i++) {
        uint64_t lo = i << s->rb_bits, hi = (i + 1) << s->rb_bits;
        if (i < s->reftable_size && s->reftable[i] != 0) {
            /* Area clusters inside an existing block: count them there. */
            uint64_t a = lo > start ? lo : start, b = hi < end ? hi : end;
            ret = q2_refcount_update(s, a * cs, (b - a) * cs, 1);
            if (ret < 0) {
                goto out;
            }
            continue;
        }
        memset(blk, 0, cs);
        for (uint64_t c = lo > start ? lo : start; c < hi && c < end; c++) {
            q2_refcount_set_entry(blk, c - lo, s->refcount_order, 1);
        }
        written_end = (next_blk + 1) * cs;
        ret = vd_meta_pwrite(s->fd, blk, cs, next_blk * cs);
        if (ret < 0) {
            goto out;
        }
        table[i] = next_blk * cs;
        next_blk++;
    }
    ret = q2_cache_writeback(s, &s->rb_cache);
    if (ret < 0) {
        goto out;
    }
    for (uint64_t i = 0; i < entries; i++) {
        q2_put_be64(&table[i], table[i]); /* to disk order in place */
    }
    written_end = (next_blk + nt) * cs;
    ret = vd_meta_pwrite(s->fd, table, nt * cs, next_blk * cs);
    for (uint64_t i = 0; i < entries; i++) {
        table[i] = q2_be64(&table[i]);
    }
    if (ret < 0) {
        goto out;
    }
    ret = q2_sync(s);
    if (ret < 0) {
        goto out;
    }
    s->hdr.refcount_table_offset = next_blk * cs;
    s->hdr.refcount_table_clusters = (uint32_t)nt;
    ret = q2_header_write(s);
    if (ret == 0) {
        ret = q2_sync(s);
    }
    if (ret < 0) {
        /* The header may or may not point at the new table now. */
        q2_signal_write_failure(s, ret,
                                "switching to the grown refcount "
                                "table");
        goto out;
    }
    free(s->reftable);
    s->reftable = table;
    table = NULL;
    s->reftable_size = entries;
    s->reftable_offset = next_blk * cs;
    s->host_end = end * cs;
    /* The header no longer points at the old table. */
    ret = q2_refcount_update(s, old_off, old_bytes, -1);
out:
    if (written_end > s->host_end) {
        /* Written but unused: not fresh zeroes any more (DESIGN NOTES 9
         * in qcow2.c); they stay free and are reused with a full copy. */
        s->host_end = written_end;
    }
    free(table);
    free(blk);
    return ret;
}

static int find_free_run(struct q2_state *s, uint64_t n, uint64_t *out);

/* Create the missing refcount block for table index i (< table size). It
 * goes to the first free cluster: counted by an existing block when there
 * is one, or describing itself when that cluster lies in its own range.
 * Placing it outside a pending multi-cluster run keeps allocation from
 * chasing the run into ever new block ranges. */
static int new_refblock(struct q2_state *s, uint64_t i)
{
    uint64_t cs = s->cluster_size, c, j;
    uint8_t *blk, raw[8];
    int ret;

    for (;;) {
        ret = find_free_run(s, 1, &c);
        if (ret < 0) {
            return ret;
        }
        j = c >> s->rb_bits;
        if (j >= s->reftable_size) {
            ret = grow_reftable(s, j + 1);
        } else if (j != i && s->reftable[j] == 0) {
            ret = new_refblock(s, j); /* converges: j's range is free */
        } else {
            break;
        }
        if (ret < 0) {
            return ret;
        }
        if (s->reftable[i] != 0) {
            return 0; /* growing the table may have created it */
        }
    }
    ret = q2_cache_get(s, &s->rb_cache, c * cs, false, &blk);
    if (ret < 0) {
        return ret;
    }
    if (j == i) {
        q2_refcount_set_entry(blk, c - (i << s->rb_bits), s->refcount_order, 1);
    }
    ret = vd_meta_pwrite(s->fd, blk, cs, c * cs);
    if ((c + 1) * cs > s->host_end) {
        s->host_end = (c + 1) * cs;
    }
    if (ret == 0 && j != i) {
        /* Its own refcount lives in block j and must be durable before
         * the table points at it (qcow2.c DESIGN NOTES 1). */
        ret = q2_refcount_update(s, c * cs, cs, 1);
        if (ret == 0) {
            ret = q2_cache_writeback(s, &s->rb_cache);
        }
    }
    if (ret == 0) {
        ret = q2_sync(s);
    }
    if (ret < 0) {
        q2_cache_drop(&s->rb_cache, c * cs);
        return ret;
    }
    s->reftable[i] = c * cs;
    q2_put_be64(raw, c * cs);
    ret = vd_meta_pwrite(s->fd, raw, 8, s->reftable_offset + 8 * i);
    if (ret < 0) {
        s->reftable[i] = 0; /* the cluster leaks; nothing points at it */
    }
    return ret;
}

/* Make sure refcount blocks cover [start, start+n) clusters. Sets
 * *changed when it had to use clusters (the caller searches again). */
static int ensure_refblocks(struct q2_state *s, uint64_t start, uint64_t n,
                            bool *changed)
{
    *changed = false;
    for (uint64_t i = start >> s->rb_bits; i <= (start + n - 1) >> s->rb_bits;
         i++) {
        if (i < s->reftable_size && s->reftable[i] != 0) {
            continue;
        }
        *changed = true;
        if (i >= s->reftable_size) {
            return grow_reftable(s, i + 1);
        }
        return new_refblock(s, i);
    }
    return 0;
}

/* First run of n clusters with refcount 0 at or after the free hint. */
static int find_free_run(struct q2_state *s, uint64_t n, uint64_t *out)
{
    uint64_t pos = s->free_hint >> s->cluster_bits;
    uint64_t end = q2_align_up(s->host_end, s->cluster_size) >> s->cluster_bits;
    uint64_t run = 0, run_start = pos;
    if (pos == 0) {
        pos = run_start = 1; /* the header cluster is never free */
    }
    while (pos < end) {
        uint64_t rc;
        int ret = q2_refcount_of(s, pos, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc == 0) {
            if (run == 0) {
                run_start = pos;
            }
            if (++run == n) {
                *out = run_start;
                return 0;
            }
        } else {
            run = 0;
        }
        pos++;
    }
    *out = run > 0 ? run_start : end;
    return 0;
}

int q2_alloc_clusters(struct q2_state *s, uint64_t n, uint64_t *off)
{
    uint64_t start;
    bool changed;
    int ret;

    VD_ASSERT_HELD(&s->lock);
    if (s->broken) {
        return -EIO;
    }
    do {
        ret = find_free_run(s, n, &start);
        if (ret < 0) {
            return ret;
        }
        ret = ensure_refblocks(s, start, n, &changed);
        if (ret < 0) {
            return ret;
        }
    } while (changed);
    ret = q2_refcount_update(s, start << s->cluster_bits, n << s->cluster_bits,
                             1);
    if (ret < 0) {
        return ret;
    }
    if ((start + n) << s->cluster_bits > s->host_end) {
        s->host_end = (start + n) << s->cluster_bits;
    }
    if (n == 1 || (start << s->cluster_bits) == s->free_hint) {
        s->free_hint = (start + n) << s->cluster_bits;
    }
    *off = start << s->cluster_bits;
    return 0;
}

int q2_free_deferred(struct q2_state *s, uint64_t off, uint64_t len)
{
    VD_ASSERT_HELD(&s->lock);
    if (len == 0) {
        return 0;
    }
    if (s->npending == s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap * 2 : 64;
        void *p = realloc(s->pending, cap * sizeof(*s->pending));
        if (p == NULL) {
            return -ENOMEM; /* the cluster leaks; nothing is corrupted */
        }
        s->pending = p;
        s->pending_cap = cap;
    }
    s->pending[s->npending].offset = off;
    s->pending[s->npending].len = len;
    s->npending++;
    return 0;
}

void q2_entry_host_range(const struct q2_state *s, const struct q2_map *m,
                         uint64_t *off, uint64_t *len)
{
    *off = 0;
    *len = 0;
    if (m->type == Q2_NORMAL || m->type == Q2_ZERO_ALLOC) {
        *off = m->host;
        *len = s->cluster_size;
    } else if (m->type == Q2_COMPRESSED) {
        *off = m->host & ~511ULL;
        *len = m->csize + (m->host & 511);
    }
}
