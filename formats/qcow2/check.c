/* check.c — reference counts recomputed from the tables: the consistency
 * check (leaks and corruptions), and the rebuild a dirty image (lazy
 * refcounts) needs before it may be written. The check also verifies
 * the copied flags of the active tables, as qemu-img check does.
 *
 * Walks the header, the active and every snapshot's L1/L2 tables, the
 * snapshot table and the refcount structures, reading tables straight
 * from the file. Callers hold the metadata lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "qcow2-int.h"
#include "vd_error.h"

#define Q2_CHECK_MAX_CLUSTERS (1ULL << 28)

struct refmap {
    uint32_t *rc;
    uint64_t n;   /* clusters covered */
    uint64_t bad; /* references that cannot be right */
};

static void ref_inc(const struct q2_state *s, struct refmap *r, uint64_t off,
                    uint64_t len)
{
    if (len == 0) {
        return;
    }
    for (uint64_t c = off >> s->cluster_bits;
         c <= (off + len - 1) >> s->cluster_bits; c++) {
        if (c >= r->n) {
            r->bad++;
            return;
        }
        if (r->rc[c] != UINT32_MAX) {
            r->rc[c]++;
        }
    }
}

static int walk_l1(struct q2_state *s, struct refmap *r, uint64_t l1_off,
                   uint32_t l1_size, uint8_t *buf)
{
    uint64_t cs = s->cluster_size;
    uint8_t *l1;
    int ret;

    if (l1_size == 0) {
        return 0;
    }
    ref_inc(s, r, l1_off, (uint64_t)l1_size * 8);
    l1 = malloc((size_t)l1_size * 8);
    if (l1 == NULL) {
        return -ENOMEM;
    }
    ret = vd_pread_full(s->fd, l1, (size_t)l1_size * 8, l1_off);
    for (uint32_t i = 0; ret == 0 && i < l1_size; i++) {
        uint64_t l2_off = q2_table_get(l1, i) & L1E_OFFSET_MASK;
        if (l2_off == 0) {
            continue;
        }
        if (!q2_host_cluster_ok(s, l2_off)) {
            r->bad++;
            continue;
        }
        ref_inc(s, r, l2_off, cs);
        ret = vd_pread_full(s->fd, buf, cs, l2_off);
        for (uint64_t j = 0; ret == 0 && j < (1ULL << s->l2_bits); j++) {
            struct q2_map m;
            uint64_t off, len;
            if (q2_l2_entry_decode(q2_table_get(buf, j), s->cluster_bits, &m) <
                0) {
                r->bad++;
                continue;
            }
            q2_entry_host_range(s, &m, &off, &len);
            ref_inc(s, r, off, len);
        }
    }
    free(l1);
    return ret;
}

/* Count every reference; with_refstructs adds the refcount table and
 * blocks themselves. Caller frees r->rc. */
static int compute(struct q2_state *s, struct refmap *r, bool with_refstructs)
{
    uint8_t *buf;
    int ret;

    r->n = s->host_end >> s->cluster_bits;
    r->bad = 0;
    if (r->n > Q2_CHECK_MAX_CLUSTERS) {
        return -EFBIG;
    }
    r->rc = calloc(r->n ? r->n : 1, sizeof(*r->rc));
    buf = malloc(s->cluster_size);
    if (r->rc == NULL || buf == NULL) {
        free(buf);
        free(r->rc);
        r->rc = NULL;
        return -ENOMEM;
    }
    ref_inc(s, r, 0, s->cluster_size);
    ret = walk_l1(s, r, s->l1_offset, s->l1_size, buf);
    for (uint32_t i = 0; ret == 0 && i < s->nsnaps; i++) {
        ret = walk_l1(s, r, s->snaps[i].l1_table_offset, s->snaps[i].l1_size,
                      buf);
    }
    if (s->nsnaps > 0) {
        ref_inc(s, r, s->hdr.snapshots_offset, s->snap_table_bytes);
    }
    if (with_refstructs) {
        ref_inc(s, r, s->reftable_offset, s->reftable_size * 8);
        for (uint64_t i = 0; i < s->reftable_size; i++) {
            uint64_t off = s->reftable[i] & REFT_OFFSET_MASK;
            if (off == 0) {
                continue;
            }
            if (!q2_host_cluster_ok(s, off)) {
                r->bad++;
                continue;
            }
            ref_inc(s, r, off, s->cluster_size);
        }
    }
    free(buf);
    if (ret < 0) {
        free(r->rc);
        r->rc = NULL;
    }
    return ret;
}

/* Active entries must carry QCOW_OFLAG_COPIED exactly when the cluster's
 * refcount is 1; count those that do not. */
static int check_copied(struct q2_state *s, struct vd_check_result *res)
{
    uint8_t *l2 = malloc(s->cluster_size);
    int ret = 0;
    if (l2 == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->l1_size && ret == 0; i++) {
        uint64_t l2_off = s->l1[i] & L1E_OFFSET_MASK, rc;
        if (l2_off == 0 || !q2_host_cluster_ok(s, l2_off)) {
            continue; /* counted by the reference walk */
        }
        if (q2_refcount_of(s, l2_off >> s->cluster_bits, &rc) < 0) {
            res->check_errors++;
            continue;
        }
        if ((rc == 1) != ((s->l1[i] & QCOW_OFLAG_COPIED) != 0)) {
            res->corruptions++;
        }
        ret = vd_pread_full(s->fd, l2, s->cluster_size, l2_off);
        for (uint64_t j = 0; ret == 0 && j < (1ULL << s->l2_bits); j++) {
            struct q2_map m;
            if (q2_l2_entry_decode(q2_table_get(l2, j), s->cluster_bits, &m) <
                    0 ||
                (m.type != Q2_NORMAL && m.type != Q2_ZERO_ALLOC) ||
                q2_refcount_of(s, m.host >> s->cluster_bits, &rc) < 0) {
                continue;
            }
            if ((rc == 1) != m.copied) {
                res->corruptions++;
            }
        }
    }
    free(l2);
    return ret;
}

int q2_check(struct q2_state *s, struct vd_check_result *res)
{
    struct refmap r;
    int ret = q2_metadata_writeback(s);
    if (ret < 0) {
        return ret;
    }
    ret = compute(s, &r, true);
    if (ret < 0) {
        return ret;
    }
    res->corruptions += r.bad;
    for (uint64_t c = 0; c < r.n; c++) {
        uint64_t disk;
        if (q2_refcount_of(s, c, &disk) < 0) {
            res->check_errors++;
            continue;
        }
        if (disk > r.rc[c]) {
            res->leaks++;
        } else if (disk < r.rc[c]) {
            res->corruptions++;
        }
    }
    free(r.rc);
    return check_copied(s, res);
}

/* Lower the refcount of every cluster counted more often than it is
 * referenced, as "qemu-img check -r leaks" does. Any reference that
 * cannot be right, or a refcount below its references, means the walk
 * cannot be trusted to know every owner: then nothing is touched. Only
 * decrements of clusters nobody references are written, in any order,
 * so a crash part way leaves at worst some of the leaks. */
int q2_reclaim_leaks(struct q2_state *s, uint64_t *freed)
{
    struct refmap r;
    uint64_t n = 0;
    int ret;

    *freed = 0;
    ret = compute(s, &r, true);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t c = 0; c < r.n && r.bad == 0; c++) {
        uint64_t disk;
        ret = q2_refcount_of(s, c, &disk);
        if (ret < 0) {
            goto out;
        }
        if (disk < r.rc[c]) {
            r.bad++;
        }
    }
    if (r.bad > 0) {
        ret = -EUCLEAN;
        goto out;
    }
    for (uint64_t c = 0; c < r.n; c++) {
        uint64_t disk;
        ret = q2_refcount_of(s, c, &disk);
        /* A saturated count (ref_inc) is not an exact one: leave it. */
        if (ret < 0 || disk <= r.rc[c] || r.rc[c] == UINT32_MAX) {
            if (ret < 0) {
                goto out;
            }
            continue;
        }
        ret = q2_refcount_lower(s, c, r.rc[c]);
        if (ret < 0) {
            goto out;
        }
        n++;
        if (r.rc[c] == 0) {
            /* Give the space back to the host file system too; a crash
             * before the count is written leaves a leak of zeroes. */
            vd_fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         c << s->cluster_bits, s->cluster_size);
        }
    }
    if (n > 0) {
        ret = q2_cache_writeback(s, &s->rb_cache);
        if (ret == 0) {
            ret = q2_sync(s);
        }
    }
    *freed = n;
out:
    free(r.rc);
    return ret;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

int q2_rebuild_refcounts(struct q2_state *s, struct vd_error *err)
{
    uint64_t cs = s->cluster_size, per = 1ULL << s->rb_bits;
    uint64_t start, end, nb = 0, nt = 0;
    uint64_t *table = NULL;
    uint8_t *blk = NULL;
    struct refmap r;
    int ret;

    ret = compute(s, &r, false);
    if (ret < 0) {
        return vd_error_set(err, ret, "rebuilding refcounts: %s",
                            strerror(-ret));
    }
    if (r.bad > 0) {
        ret = vd_error_set(err, -EIO,
                           "image marked dirty has %llu invalid "
                           "references; refusing to repair it",
                           (unsigned long long)r.bad);
        goto out;
    }
    start = r.n;
    for (;;) {
        end = start + nb + nt;
        uint64_t nb2 = div_up(end, per), nt2 = div_up(nb2 * 8, cs);
        if (nb2 == nb && nt2 == nt) {
            break;
        }
        nb = nb2;
        nt = nt2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES) {
        ret = vd_error_set(err, -EFBIG, "refcount table too large");
        goto out;
    }
    table = calloc(nt * cs / 8, 8);
    blk = malloc(cs);
    if (table == NULL || blk == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    /* New blocks at start.., table after them; all describe themselves. */
    for (uint64_t i = 0; i < nb; i++) {
        memset(blk, 0, cs);
        for (uint64_t c = i * per; c < (i + 1) * per && c < end; c++) {
            uint64_t v = c >= start ? 1 : r.rc[c];
            if (v > s->refcount_max) {
                ret = vd_error_set(err, -ERANGE,
                                   "refcount of cluster %llu "
                                   "exceeds the image's refcount width",
                                   (unsigned long long)c);
                goto out;
            }
            q2_refcount_set_entry(blk, c - i * per, s->refcount_order, v);
        }
        ret = vd_meta_pwrite(s->fd, blk, cs, (start + i) * cs);
        if (ret < 0) {
            goto io_err;
        }
        q2_put_be64(&table[i], (start + i) * cs);
    }
    ret = vd_meta_pwrite(s->fd, table, nt * cs, (start + nb) * cs);
    if (ret == 0) {
        ret = q2_sync(s);
    }
    if (ret < 0) {
        goto io_err;
    }
    s->hdr.refcount_table_offset = (start + nb) * cs;
    s->hdr.refcount_table_clusters = (uint32_t)nt;
    s->hdr.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
    ret = q2_header_write(s);
    if (ret == 0) {
        ret = q2_sync(s);
    }
    if (ret < 0) {
        q2_signal_write_failure(s, ret,
                                "switching to the rebuilt refcount "
                                "table");
        goto io_err;
    }
    for (uint64_t i = 0; i < nt * cs / 8; i++) {
        table[i] = q2_be64(&table[i]);
    }
    free(s->reftable);
    s->reftable = table;
    table = NULL;
    s->reftable_offset = (start + nb) * cs;
    s->reftable_size = nt * cs / 8;
    s->host_end = end * cs;
    s->free_hint = cs;
    q2_cache_clear(&s->rb_cache);
    ret = 0;
    goto out;

io_err:
    vd_error_set(err, ret, "writing rebuilt refcounts: %s", strerror(-ret));
out:
    free(table);
    free(blk);
    free(r.rc);
    return ret;
}
