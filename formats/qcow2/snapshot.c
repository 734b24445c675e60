/* snapshot.c — internal snapshots, compatible with qemu-img snapshot.
 *
 * A snapshot is a copy of the L1 table plus one more reference on every
 * L2 table and data cluster it reaches. Order on disk: refcounts rise
 * before anything new points at the clusters, and fall only after the
 * table that dropped the reference (snapshot table, header, L1) is
 * durable — a crash leaks clusters, never loses them (qcow2.c DESIGN
 * NOTES 1, 4, 5). "Copied" flags are recomputed after every change. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "qcow2-int.h"
#include "vd_error.h"

static int sync_fd(struct q2_state *s)
{
    return q2_sync(s);
}

/* Add delta to the refcount of every L2 table and data cluster reachable
 * from the l1 table (n entries, host order). */
static int update_reachable(struct q2_state *s, const uint64_t *l1, uint32_t n,
                            int delta)
{
    uint8_t *l2 = malloc(s->cluster_size);
    int ret = 0;
    if (l2 == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n && ret == 0; i++) {
        uint64_t l2_off = l1[i] & L1E_OFFSET_MASK;
        if (l2_off == 0) {
            continue;
        }
        if (!q2_host_cluster_ok(s, l2_off)) {
            ret = q2_signal_corruption(
                s,
                "L1 entry %u of a snapshot table points to an invalid L2 "
                "table offset 0x%llx",
                i, (unsigned long long)l2_off);
            break;
        }
        ret = vd_pread_full(s->fd, l2, s->cluster_size, l2_off);
        for (uint64_t j = 0; ret == 0 && j < (1ULL << s->l2_bits); j++) {
            struct q2_map m;
            uint64_t off, len;
            if (q2_l2_entry_decode(q2_table_get(l2, j), s->cluster_bits, &m) <
                0) {
                ret = q2_signal_corruption(
                    s,
                    "invalid entry 0x%016llx at index %llu of the L2 "
                    "table at 0x%llx",
                    (unsigned long long)q2_table_get(l2, j),
                    (unsigned long long)j, (unsigned long long)l2_off);
                break;
            }
            q2_entry_host_range(s, &m, &off, &len);
            ret = q2_refcount_update(s, off, len, delta);
        }
        if (ret == 0) {
            ret = q2_refcount_update(s, l2_off, s->cluster_size, delta);
        }
    }
    free(l2);
    return ret;
}

/* Make QCOW_OFLAG_COPIED exact in the active tables (qcow2.c DESIGN
 * NOTES 6). */
static int update_copied(struct q2_state *s)
{
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2_off = s->l1[i] & L1E_OFFSET_MASK, rc, e;
        uint64_t want;
        uint8_t *l2;
        bool dirty = false;
        int ret;
        if (l2_off == 0) {
            continue;
        }
        ret = q2_refcount_of(s, l2_off >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        want = rc == 1 ? (l2_off | QCOW_OFLAG_COPIED) : l2_off;
        if (s->l1[i] != want) {
            s->l1[i] = want;
            if (s->l1_dirty_lo >= s->l1_dirty_hi || i < s->l1_dirty_lo) {
                s->l1_dirty_lo = i;
            }
            if (i + 1 > s->l1_dirty_hi) {
                s->l1_dirty_hi = i + 1;
            }
        }
        /* Entries are fixed even in a shared table: the flags describe
         * the clusters, which every table sharing it sees alike. */
        ret = q2_cache_get(s, &s->l2_cache, l2_off, true, &l2);
        for (uint64_t j = 0; ret == 0 && j < (1ULL << s->l2_bits); j++) {
            struct q2_map m;
            e = q2_table_get(l2, j);
            if (q2_l2_entry_decode(e, s->cluster_bits, &m) < 0 ||
                (m.type != Q2_NORMAL && m.type != Q2_ZERO_ALLOC)) {
                continue;
            }
            ret = q2_refcount_of(s, m.host >> s->cluster_bits, &rc);
            want = rc == 1 ? (e | QCOW_OFLAG_COPIED) : (e & ~QCOW_OFLAG_COPIED);
            if (ret == 0 && want != e) {
                q2_table_set(l2, j, want);
                dirty = true;
            }
        }
        if (ret < 0) {
            return ret;
        }
        if (dirty) {
            q2_cache_mark_dirty(&s->l2_cache, l2);
        }
    }
    return 0;
}

/* update_reachable or update_copied stopped half way (ret < 0): some
 * refcounts changed in memory, and the next writeback would store them
 * under "copied" flags that no longer match. Make the flags follow, so
 * the changes can only leak; if even that fails, write nothing more.
 * Returns ret. */
static int settle_flags(struct q2_state *s, int ret)
{
    if (ret < 0 && update_copied(s) < 0) {
        s->broken = true;
    }
    return ret;
}

/* Write snaps as the new snapshot table and point the header at it; the
 * old table is freed afterwards. Takes ownership of snaps. */
static int write_snapshot_table(struct q2_state *s, struct q2_snapshot *snaps,
                                uint32_t nb)
{
    uint64_t old_off = s->hdr.snapshots_offset, old_len = s->snap_table_bytes;
    uint64_t off = 0, len;
    uint8_t *buf;
    int ret = q2_snapshots_encode(snaps, nb, &buf, &len);
    if (ret < 0) {
        q2_snapshots_free(snaps, nb);
        return ret;
    }
    if (nb > 0) {
        ret = q2_alloc_clusters(
            s, q2_align_up(len, s->cluster_size) / s->cluster_size, &off);
        if (ret == 0) {
            ret = vd_meta_pwrite(s->fd, buf, len, off);
        }
        if (ret == 0) {
            ret = q2_metadata_writeback(s); /* refcounts, then sync */
        }
    }
    free(buf);
    if (ret < 0) {
        q2_snapshots_free(snaps, nb);
        return ret;
    }
    s->hdr.nb_snapshots = nb;
    s->hdr.snapshots_offset = off;
    ret = q2_header_write(s);
    if (ret == 0) {
        ret = sync_fd(s);
    }
    if (ret < 0) {
        q2_signal_write_failure(s, ret,
                                "switching to the new snapshot "
                                "table");
        q2_snapshots_free(snaps, nb);
        return ret;
    }
    q2_snapshots_free(s->snaps, s->nsnaps);
    s->snaps = snaps;
    s->nsnaps = nb;
    s->snap_table_bytes = nb > 0 ? len : 0;
    if (old_len > 0) {
        ret = q2_refcount_update(s, old_off, old_len, -1);
    }
    return ret;
}

static struct q2_snapshot *copy_snaps(const struct q2_snapshot *src, uint32_t n,
                                      uint32_t extra)
{
    struct q2_snapshot *d = calloc(n + extra ? n + extra : 1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        d[i] = src[i];
        d[i].id = strdup(src[i].id);
        d[i].name = strdup(src[i].name);
        d[i].extra_rest = NULL;
        if (src[i].extra_rest_size > 0) {
            d[i].extra_rest = malloc(src[i].extra_rest_size);
            if (d[i].extra_rest != NULL) {
                memcpy(d[i].extra_rest, src[i].extra_rest,
                       src[i].extra_rest_size);
            }
        }
        if (d[i].id == NULL || d[i].name == NULL ||
            (src[i].extra_rest_size > 0 && d[i].extra_rest == NULL)) {
            q2_snapshots_free(d, i + 1);
            return NULL;
        }
    }
    return d;
}

int q2_snapshot_find(const struct q2_state *s, const char *name)
{
    for (uint32_t i = 0; i < s->nsnaps; i++) {
        if (strcmp(s->snaps[i].name, name) == 0) {
            return (int)i;
        }
    }
    for (uint32_t i = 0; i < s->nsnaps; i++) {
        if (strcmp(s->snaps[i].id, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int read_l1(struct q2_state *s, uint64_t off, uint32_t n, uint64_t **out)
{
    uint64_t *t = calloc(n ? n : 1, 8);
    int ret;
    if (t == NULL) {
        return -ENOMEM;
    }
    ret = vd_pread_full(s->fd, t, (size_t)n * 8, off);
    for (uint32_t i = 0; ret == 0 && i < n; i++) {
        t[i] = q2_be64(&t[i]);
    }
    if (ret < 0) {
        free(t);
        return ret;
    }
    *out = t;
    return 0;
}

/* Snapshot ops run with I/O drained by the caller; take both locks anyway
 * so a stray request cannot see a half-switched table. */
static void enter(struct q2_state *s)
{
    q2_barrier_drain(s);
    pthread_mutex_lock(&s->lock);
}

static void leave(struct q2_state *s)
{
    pthread_mutex_unlock(&s->lock);
    q2_barrier_release(s);
}

static int fail(struct vd_error *err, int ret, const char *what)
{
    return vd_error_set(err, ret, "%s: %s", what, strerror(-ret));
}

int qcow2_snapshot_create(struct vd_image *img, const char *name,
                          struct vd_error *err)
{
    struct q2_state *s = img->opaque;
    struct q2_snapshot *snaps = NULL, *sn;
    uint64_t l1_off = 0, l1_bytes = (uint64_t)s->l1_size * 8, next_id = 1;
    uint8_t *buf = NULL;
    struct timespec ts;
    int ret;

    if (s->refcount_order == 0) {
        return vd_error_set(err, -ENOTSUP,
                            "snapshots need refcounts wider "
                            "than 1 bit");
    }
    if (name[0] == '\0' || strlen(name) > 0xffff) {
        return vd_error_set(err, -EINVAL, "bad snapshot name");
    }
    enter(s);
    if (q2_snapshot_find(s, name) >= 0) {
        ret = vd_error_set(err, -EEXIST, "snapshot '%s' exists", name);
        goto out;
    }
    if (s->nsnaps >= QCOW2_MAX_SNAPSHOTS) {
        ret = vd_error_set(err, -ENOSPC, "too many snapshots");
        goto out;
    }
    ret = q2_metadata_writeback(s);
    if (ret < 0) {
        fail(err, ret, "flushing before snapshot");
        goto out;
    }
    /* 1. The L1 copy, flags cleared (they only matter in the active one). */
    buf = calloc(1, l1_bytes ? l1_bytes : 8);
    if (buf == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        q2_table_set(buf, i, s->l1[i] & ~QCOW_OFLAG_COPIED);
    }
    if (l1_bytes > 0) {
        ret = q2_alloc_clusters(
            s, q2_align_up(l1_bytes, s->cluster_size) / s->cluster_size,
            &l1_off);
        if (ret == 0) {
            ret = vd_meta_pwrite(s->fd, buf, l1_bytes, l1_off);
        }
    }
    /* 2. One more reference on everything reachable; flags follow. */
    if (ret == 0) {
        ret = update_reachable(s, s->l1, s->l1_size, 1);
        if (ret == 0) {
            ret = update_copied(s);
        }
        ret = settle_flags(s, ret);
    }
    if (ret == 0) {
        ret = q2_metadata_writeback(s);
    }
    if (ret < 0) {
        fail(err, ret, "snapshot create");
        goto out;
    }
    /* 3. The table entry. */
    for (uint32_t i = 0; i < s->nsnaps; i++) {
        uint64_t v = strtoull(s->snaps[i].id, NULL, 10);
        if (v >= next_id) {
            next_id = v + 1;
        }
    }
    snaps = copy_snaps(s->snaps, s->nsnaps, 1);
    if (snaps == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    sn = &snaps[s->nsnaps];
    clock_gettime(CLOCK_REALTIME, &ts);
    sn->l1_table_offset = l1_off;
    sn->l1_size = s->l1_size;
    sn->date_sec = (uint32_t)ts.tv_sec;
    sn->date_nsec = (uint32_t)ts.tv_nsec;
    sn->disk_size = atomic_load(&s->size);
    sn->name = strdup(name);
    if (asprintf(&sn->id, "%llu", (unsigned long long)next_id) < 0) {
        sn->id = NULL;
    }
    if (sn->name == NULL || sn->id == NULL) {
        q2_snapshots_free(snaps, s->nsnaps + 1);
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    ret = write_snapshot_table(s, snaps, s->nsnaps + 1);
    if (ret < 0) {
        fail(err, ret, "writing snapshot table");
    }
out:
    free(buf);
    leave(s);
    return ret;
}

int qcow2_snapshot_delete(struct vd_image *img, const char *name,
                          struct vd_error *err)
{
    struct q2_state *s = img->opaque;
    struct q2_snapshot *snaps;
    uint64_t *l1 = NULL, l1_off;
    uint32_t l1_size;
    int idx, ret;

    enter(s);
    idx = q2_snapshot_find(s, name);
    if (idx < 0) {
        ret = vd_error_set(err, -ENOENT, "no snapshot '%s'", name);
        goto out;
    }
    l1_off = s->snaps[idx].l1_table_offset;
    l1_size = s->snaps[idx].l1_size;
    ret = q2_metadata_writeback(s);
    if (ret == 0) {
        ret = read_l1(s, l1_off, l1_size, &l1);
    }
    if (ret < 0) {
        fail(err, ret, "snapshot delete");
        goto out;
    }
    /* 1. Drop the entry; durable before any refcount falls. */
    snaps = copy_snaps(s->snaps, s->nsnaps, 0);
    if (snaps == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    free(snaps[idx].id);
    free(snaps[idx].name);
    free(snaps[idx].extra_rest);
    memmove(&snaps[idx], &snaps[idx + 1],
            (s->nsnaps - (uint32_t)idx - 1) * sizeof(*snaps));
    ret = write_snapshot_table(s, snaps, s->nsnaps - 1);
    /* 2. Release what it referenced, then its L1 copy. */
    if (ret == 0) {
        ret = update_reachable(s, l1, l1_size, -1);
        if (ret == 0 && l1_size > 0) {
            ret = q2_refcount_update(s, l1_off, (uint64_t)l1_size * 8, -1);
        }
        if (ret == 0) {
            ret = update_copied(s);
        }
        ret = settle_flags(s, ret);
    }
    if (ret == 0) {
        ret = q2_metadata_writeback(s);
    }
    if (ret < 0) {
        fail(err, ret, "snapshot delete");
    }
out:
    free(l1);
    leave(s);
    return ret;
}

int qcow2_snapshot_revert(struct vd_image *img, const char *name,
                          struct vd_error *err)
{
    struct q2_state *s = img->opaque;
    uint64_t *sl1 = NULL, *old = NULL;
    struct q2_snapshot *sn;
    int idx, ret;

    enter(s);
    idx = q2_snapshot_find(s, name);
    if (idx < 0) {
        ret = vd_error_set(err, -ENOENT, "no snapshot '%s'", name);
        goto out;
    }
    sn = &s->snaps[idx];
    if (sn->l1_size > s->l1_size ||
        (sn->disk_size != 0 && sn->disk_size != atomic_load(&s->size))) {
        ret = vd_error_set(err, -ENOTSUP,
                           "snapshot '%s' has another disk "
                           "size; reverting across a resize is not "
                           "supported",
                           name);
        goto out;
    }
    ret = q2_metadata_writeback(s);
    if (ret == 0) {
        ret = read_l1(s, sn->l1_table_offset, sn->l1_size, &sl1);
    }
    old = malloc((size_t)s->l1_size * 8 + 8);
    if (ret == 0 && old == NULL) {
        ret = -ENOMEM;
    }
    /* 1. References for the snapshot's tables as the new active ones. */
    if (ret == 0) {
        ret = settle_flags(s, update_reachable(s, sl1, sn->l1_size, 1));
    }
    if (ret == 0) {
        ret = q2_metadata_writeback(s);
    }
    if (ret < 0) {
        fail(err, ret, "snapshot revert");
        goto out;
    }
    /* 2. Switch the active L1 in place. */
    memcpy(old, s->l1, (size_t)s->l1_size * 8);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1[i] = i < sn->l1_size ? sl1[i] & ~QCOW_OFLAG_COPIED : 0;
    }
    ret = q2_l1_write(s, 0, s->l1_size);
    if (ret == 0) {
        ret = sync_fd(s);
    }
    if (ret < 0) {
        /* the on-disk L1 may be half written */
        q2_signal_write_failure(s, ret, "writing the reverted L1 table");
        fail(err, ret, "snapshot revert");
        goto out;
    }
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    /* 3. Release the old active tables; fix the flags. */
    ret = update_reachable(s, old, s->l1_size, -1);
    if (ret == 0) {
        ret = update_copied(s);
    }
    ret = settle_flags(s, ret);
    if (ret == 0) {
        ret = q2_metadata_writeback(s);
    }
    if (ret < 0) {
        fail(err, ret, "snapshot revert");
    }
out:
    free(sl1);
    free(old);
    leave(s);
    return ret;
}

int qcow2_snapshot_list(struct vd_image *img, struct vd_snapshot_info **out)
{
    struct q2_state *s = img->opaque;
    struct vd_snapshot_info *v;
    int n;
    pthread_mutex_lock(&s->lock);
    n = (int)s->nsnaps;
    v = calloc(n ? (size_t)n : 1, sizeof(*v));
    if (v == NULL) {
        pthread_mutex_unlock(&s->lock);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        const struct q2_snapshot *sn = &s->snaps[i];
        snprintf(v[i].id, sizeof(v[i].id), "%s", sn->id);
        snprintf(v[i].name, sizeof(v[i].name), "%s", sn->name);
        v[i].vm_state_size = sn->vm_state_size;
        v[i].disk_size = sn->disk_size;
        v[i].date_sec = sn->date_sec;
        v[i].date_nsec = sn->date_nsec;
        v[i].vm_clock_nsec = sn->vm_clock_nsec;
    }
    pthread_mutex_unlock(&s->lock);
    *out = v;
    return n;
}
