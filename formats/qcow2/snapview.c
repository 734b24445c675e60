/* snapview.c — read-only uses of internal snapshots: opening an image as
 * one snapshot's view, and listing the clusters that differ between two
 * snapshots (changed-block tracking for incremental backups).
 *
 * DESIGN NOTES
 * 1. While a snapshot exists, everything it reaches — its L1 copy, its L2
 *    tables and their data clusters — has a refcount above one or belongs
 *    to it alone, so a writer of the same file (the served volume, in this
 *    process or not) copies before it writes (qcow2.c DESIGN NOTES 6, 9)
 *    and never frees them. The only bits a writer still changes in a
 *    shared L2 table are QCOW_OFLAG_COPIED flags, which both users here
 *    ignore. So a view may cache its L2 tables for good and read data
 *    without any lock shared with the writer.
 * 2. What a view must not trust is anything else the writer owns: the
 *    active L1, the refcount structures, the header after open. A view
 *    uses none of them after open (read-only: no allocation, no flush).
 * 3. Keeping the snapshot alive while a view or a walk uses it is the
 *    caller's job (the volume manager refuses to delete a snapshot that is
 *    being read, and serialises opens with snapshot changes).
 * 4. Changes are judged per cluster from the two snapshots' tables alone:
 *    an L1 entry that both share names one L2 table, which is skipped
 *    whole; otherwise entries are compared by what they say the cluster
 *    reads as (unallocated, zero, data at a host offset, compressed
 *    bytes), never by reading data. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "qcow2-int.h"
#include "vd_error.h"

/* A snapshot's L1 table, read from the file, in host order. */
struct snap_l1 {
    uint64_t *l1; /* NULL with n == 0 for "an empty image" */
    uint32_t n;
    uint64_t offset;
    uint64_t size; /* the snapshot's virtual disk size */
};

static int read_l1(struct q2_state *s, struct snap_l1 *t)
{
    t->l1 = calloc(t->n ? t->n : 1, 8);
    if (t->l1 == NULL) {
        return -ENOMEM;
    }
    int ret = vd_pread_full(s->fd, t->l1, (size_t)t->n * 8, t->offset);
    for (uint32_t i = 0; ret == 0 && i < t->n; i++) {
        t->l1[i] = q2_be64(&t->l1[i]);
    }
    if (ret < 0) {
        free(t->l1);
        t->l1 = NULL;
    }
    return ret;
}

/* Look name up and read its L1 table; *host_end gets the file's end as
 * the driver knows it, to bound the offsets found in the tables. */
static int load_snap_l1(struct q2_state *s, const char *name, struct snap_l1 *t,
                        uint64_t *host_end, struct vd_error *err)
{
    uint64_t span = s->cluster_size << s->l2_bits;
    int idx, ret;

    pthread_mutex_lock(&s->lock);
    idx = q2_snapshot_find(s, name);
    if (idx >= 0) {
        t->offset = s->snaps[idx].l1_table_offset;
        t->n = s->snaps[idx].l1_size;
        t->size = s->snaps[idx].disk_size;
    }
    *host_end = s->host_end;
    pthread_mutex_unlock(&s->lock);
    if (idx < 0) {
        return vd_error_set(err, -ENOENT,
                            "the image has no snapshot named "
                            "'%s'",
                            name);
    }
    if (t->size == 0 || t->size % 512 != 0 ||
        (t->size + span - 1) / span > t->n) {
        return vd_error_set(err, -EINVAL,
                            "invalid qcow2 image: snapshot "
                            "'%s' has an L1 table of %u entries for %llu "
                            "bytes",
                            name, t->n, (unsigned long long)t->size);
    }
    ret = read_l1(s, t);
    if (ret < 0) {
        return vd_error_set(err, ret,
                            "reading the L1 table of snapshot "
                            "'%s': %s",
                            name, strerror(-ret));
    }
    return 0;
}

int q2_view_select(struct q2_state *s, const char *name, struct vd_error *err)
{
    struct snap_l1 t = {0};
    uint64_t host_end;
    int ret = load_snap_l1(s, name, &t, &host_end, err);
    if (ret < 0) {
        return ret;
    }
    free(s->l1);
    s->l1 = t.l1;
    s->l1_size = t.n;
    s->l1_offset = t.offset;
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    atomic_store(&s->size, t.size);
    return 0;
}

/* What an L2 entry says a cluster reads as, for comparison (note 4). */
struct cstate {
    int kind; /* 0 backing/zero, 1 zero, 2 data, 3 compressed */
    uint64_t host;
    uint64_t csize;
};

enum { CS_UNALLOC, CS_ZERO, CS_DATA, CS_COMPRESSED };

static int entry_state(const struct q2_state *s, const uint8_t *l2, uint64_t j,
                       uint64_t host_end, struct cstate *c)
{
    struct q2_map m;
    memset(c, 0, sizeof(*c));
    if (l2 == NULL) {
        return 0; /* no L2 table: unallocated */
    }
    if (q2_l2_entry_decode(q2_table_get(l2, j), s->cluster_bits, &m) < 0) {
        return -EIO;
    }
    switch (m.type) {
    case Q2_UNALLOCATED:
        break;
    case Q2_ZERO_PLAIN:
    case Q2_ZERO_ALLOC:
        /* Without a backing file, unallocated clusters read as zeroes too. */
        c->kind = s->backing != NULL ? CS_ZERO : CS_UNALLOC;
        break;
    case Q2_NORMAL:
        if (m.host >= host_end) {
            return -EIO;
        }
        c->kind = CS_DATA;
        c->host = m.host;
        break;
    case Q2_COMPRESSED:
        c->kind = CS_COMPRESSED;
        c->host = m.host;
        c->csize = m.csize;
        break;
    }
    return 0;
}

/* Read the L2 table at off into buf, or leave *out NULL for off 0. */
static int load_l2(struct q2_state *s, uint64_t off, uint64_t host_end,
                   uint8_t *buf, uint8_t **out)
{
    *out = NULL;
    if (off == 0) {
        return 0;
    }
    if ((off & (s->cluster_size - 1)) != 0 || off < s->cluster_size ||
        !vd_range_ok(off, s->cluster_size, host_end)) {
        return -EIO;
    }
    int ret = vd_pread_full(s->fd, buf, s->cluster_size, off);
    if (ret == 0) {
        *out = buf;
    }
    return ret;
}

/* Merges touching extents before handing them to the caller's cb. */
struct emitter {
    int (*cb)(void *arg, uint64_t off, uint64_t len);
    void *arg;
    uint64_t off, len;
};

static int emit(struct emitter *e, uint64_t off, uint64_t len)
{
    int ret = 0;
    if (e->len > 0 && e->off + e->len == off) {
        e->len += len;
        return 0;
    }
    if (e->len > 0) {
        ret = e->cb(e->arg, e->off, e->len);
    }
    e->off = off;
    e->len = len;
    return ret;
}

static int emit_end(struct emitter *e)
{
    return e->len > 0 ? e->cb(e->arg, e->off, e->len) : 0;
}

int qcow2_snapshot_changes(struct vd_image *img, const char *since,
                           const char *snap,
                           int (*cb)(void *arg, uint64_t off, uint64_t len),
                           void *arg, struct vd_error *err)
{
    struct q2_state *s = img->opaque;
    struct snap_l1 a = {0}, b = {0};
    struct emitter e = {.cb = cb, .arg = arg};
    uint64_t cs = s->cluster_size, entries = 1ULL << s->l2_bits;
    uint64_t span = cs << s->l2_bits, host_end, he, budget;
    uint8_t *buf_a = NULL, *buf_b = NULL;
    int ret;

    ret = load_snap_l1(s, snap, &b, &host_end, err);
    if (ret == 0 && since != NULL) {
        ret = load_snap_l1(s, since, &a, &he, err);
    }
    if (ret < 0) {
        goto out;
    }
    /* A valid L1 names each L2 table once, so a walk reads at most two
     * per cluster of the file; a hostile one repeating entries would
     * otherwise read gigabytes. */
    budget = 2 * (host_end / cs) + 2;
    buf_a = malloc(cs);
    buf_b = malloc(cs);
    if (buf_a == NULL || buf_b == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t i = 0; ret == 0 && i * span < b.size; i++) {
        uint64_t oa = i < a.n ? a.l1[i] & L1E_OFFSET_MASK : 0;
        uint64_t ob = b.l1[i] & L1E_OFFSET_MASK;
        uint8_t *ta, *tb;
        if (oa == ob) {
            continue; /* one shared L2 table, or none in both */
        }
        uint64_t reads = (uint64_t)(oa != 0) + (uint64_t)(ob != 0);
        if (reads > budget) {
            ret = vd_error_set(err, -EIO,
                               "invalid qcow2 image: snapshot "
                               "L1 tables name more L2 tables than fit "
                               "in the file");
            break;
        }
        budget -= reads;
        if ((ret = load_l2(s, oa, host_end, buf_a, &ta)) < 0 ||
            (ret = load_l2(s, ob, host_end, buf_b, &tb)) < 0) {
            vd_error_set(err, ret, "reading L2 tables for %llu: %s",
                         (unsigned long long)(i * span), strerror(-ret));
            break;
        }
        for (uint64_t j = 0; j < entries; j++) {
            uint64_t vaddr = i * span + j * cs;
            struct cstate ca, cb_;
            if (vaddr >= b.size) {
                break;
            }
            if (entry_state(s, ta, j, host_end, &ca) < 0 ||
                entry_state(s, tb, j, host_end, &cb_) < 0) {
                ret = vd_error_set(err, -EIO,
                                   "invalid qcow2 image: bad L2 "
                                   "entry for guest offset %llu",
                                   (unsigned long long)vaddr);
                break;
            }
            if (ca.kind != cb_.kind || ca.host != cb_.host ||
                ca.csize != cb_.csize) {
                uint64_t len = b.size - vaddr < cs ? b.size - vaddr : cs;
                if ((ret = emit(&e, vaddr, len)) != 0) {
                    goto out;
                }
            }
        }
    }
    if (ret == 0) {
        ret = emit_end(&e);
    }
out:
    free(buf_a);
    free(buf_b);
    free(a.l1);
    free(b.l1);
    return ret;
}
