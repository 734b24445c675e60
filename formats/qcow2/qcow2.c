/* qcow2.c — the qcow2 driver table and its data path: read, write, flush,
 * zeroes, discard, block status, resize.
 *
 * Metadata lives in open.c (loading), cluster.c (L1/L2), refcount.c
 * (allocation), cache.c, write.c (mapping changes) and check.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "qcow2-int.h"
#include "vd_assert.h"
#include "vd_error.h"

/*
 * DESIGN NOTES — allocation order and locking
 *
 * Crash safety. Metadata is cached and written back lazily; what reaches
 * the disk at any instant must describe a consistent image in which at
 * worst some clusters leak (refcount too high), never one where a
 * reachable cluster has too low a refcount or a table points at garbage.
 *
 *  1. A new cluster's refcount is raised (in the refcount-block cache)
 *     before any table points at it, and every dirty refcount block is
 *     written and the file synced before any dirty L2 table is written
 *     (cache.c, l2_barrier). So refcounts precede the L2 entries needing
 *     them.
 *  2. Guest data for a newly allocated cluster is written before its L2
 *     entry is set in memory; the same sync in 1 makes it durable before
 *     the L2 table reaches the disk. Data precedes the entry exposing it.
 *  3. A new L2 table goes through the L2 cache; the L1 entry pointing at it
 *     changes only in memory (dirty range) and is written by flush after
 *     all L2 tables are written and synced. L2 precedes L1.
 *  4. Refcount decrements are never written ahead of the table change that
 *     dropped the reference: they are queued (q2_free_deferred) and applied
 *     only after a flush made the new tables durable. Until then the old
 *     clusters stay allocated and cannot be reused.
 *  5. Structural changes that move a table (refcount table growth, L1
 *     growth) write the new table, sync, switch the header, sync, and only
 *     then free the old table.
 *  6. QCOW_OFLAG_COPIED is set on exactly the active entries whose cluster
 *     has refcount 1: fresh allocations get it; entries of shared clusters
 *     (refcount > 1) never do, and writing to them allocates a copy.
 *  7. Once corruption is detected (s->broken), nothing more is written
 *     but, once, the header's corrupt bit (q2_signal_corruption).
 *
 * Locking. s->lock (a mutex) protects all metadata: header, L1, refcount
 * table, both caches, the pending-free list, host_end. The data path:
 *
 *  8. Reads look up a run under the lock, drop it, and read host clusters,
 *     the backing file or decompress outside it.
 *  9. Writes to clusters already allocated with COPIED look up under the
 *     lock and pwrite outside it. Writes needing allocation or COW re-check
 *     the mapping under the lock, allocate the host clusters (refcount
 *     raised, 1) and put the guest range on s->inflight; then they drop
 *     the lock to read the old contents and write the new cluster, and take
 *     it again to set the L2 entries and leave s->inflight. A writer,
 *     zeroer or discarder of a guest cluster that is in flight waits on
 *     inflight_cond and looks it up again: two writers of one unallocated
 *     cluster therefore never both allocate, and a reader sees the L2
 *     entry only after the data is in place (old contents before, new
 *     after). A crash in between leaks the new clusters, nothing more.
 *     A new cluster past every cluster ever used since open (>= host_end
 *     before the allocation) is known to read as zeroes (a hole or past
 *     end of file), so a partial write into it with nothing to copy
 *     (unallocated without backing, or a zero cluster) writes only the
 *     guest's bytes: no copy-on-write of zeroes, no host space for them.
 * 10. Every data-path call holds s->io_barrier shared for its duration.
 *     Flush takes it exclusively (after dropping s->lock) before applying
 *     the queued decrements of 4, so no read or write still in flight on an
 *     old mapping can have its cluster reused underneath it. Lock order:
 *     io_barrier, then lock; never the other way round, never nested.
 * 11. A flush with no dirty metadata and no queued frees only syncs the
 *     data, without holding the lock, so lookups do not wait on the disk.
 *     That flush, and only that one, is also offered as flush_nowait for
 *     the I/O thread: every other flush writes metadata back or drains
 *     (q2_barrier_drain), and a drain waits for requests that only the
 *     I/O thread completes.
 */

static int qcow2_probe(const uint8_t *buf, size_t len)
{
    if (len >= 8 && q2_be32(buf) == QCOW_MAGIC) {
        uint32_t v = q2_be32(buf + 4);
        return v == 2 || v == 3 ? 100 : 50;
    }
    return 0;
}

static int do_read(struct q2_state *s, uint8_t *buf, size_t len, uint64_t off)
{
    uint8_t *tmp = NULL;
    int ret = 0;
    while (len > 0 && ret == 0) {
        struct q2_map m;
        uint64_t run;
        pthread_mutex_lock(&s->lock);
        ret = q2_get_mapping(s, off, len, &m, &run);
        pthread_mutex_unlock(&s->lock);
        if (ret < 0) {
            break;
        }
        switch (m.type) {
        case Q2_NORMAL:
            ret = vd_hostfile_pread(&s->hf, buf, run,
                                    m.host + (off & (s->cluster_size - 1)));
            break;
        case Q2_UNALLOCATED:
            ret = q2_read_backing(s, buf, run, off);
            break;
        case Q2_COMPRESSED:
            if (tmp == NULL && (tmp = malloc(s->cluster_size)) == NULL) {
                ret = -ENOMEM;
                break;
            }
            ret = q2_read_compressed(s, &m, tmp);
            memcpy(buf, tmp + (off & (s->cluster_size - 1)), run);
            break;
        default:
            memset(buf, 0, run);
            break;
        }
        buf += run;
        off += run;
        len -= run;
    }
    free(tmp);
    return ret;
}

static int qcow2_pread(struct vd_image *img, void *buf, size_t len,
                       uint64_t off)
{
    struct q2_state *s = img->opaque;
    int ret;
    pthread_rwlock_rdlock(&s->io_barrier);
    ret = do_read(s, buf, len, off);
    pthread_rwlock_unlock(&s->io_barrier);
    return ret;
}

/* Caller holds io_barrier shared. */
static int do_write(struct q2_state *s, const uint8_t *buf, uint64_t len,
                    uint64_t off)
{
    int ret = 0;
    VD_ASSERT_RWLOCK_HELD(&s->io_barrier);
    while (len > 0 && ret == 0) {
        struct q2_map m;
        uint64_t run;
        pthread_mutex_lock(&s->lock);
        ret = s->broken ? -EIO : q2_get_mapping(s, off, len, &m, &run);
        if (ret == 0 && m.type == Q2_NORMAL && m.copied) {
            uint64_t host = m.host + (off & (s->cluster_size - 1));
            if (q2_overlaps_metadata(s, host, run)) {
                ret = q2_signal_corruption(
                    s,
                    "L2 entry for guest offset 0x%llx points into "
                    "metadata (host offset 0x%llx); refused to write there",
                    (unsigned long long)off, (unsigned long long)host);
            }
            pthread_mutex_unlock(&s->lock);
            if (ret == 0) {
                ret = vd_hostfile_pwrite(&s->hf, buf, run, host);
            }
        } else {
            if (ret == 0) {
                ret = q2_write_alloc(s, off, buf, len, &run);
            }
            pthread_mutex_unlock(&s->lock);
        }
        if (ret == 0) {
            buf += run;
            off += run;
            len -= run;
        }
    }
    return ret;
}

static int qcow2_pwrite(struct vd_image *img, const void *buf, size_t len,
                        uint64_t off)
{
    struct q2_state *s = img->opaque;
    int ret;
    pthread_rwlock_rdlock(&s->io_barrier);
    ret = do_write(s, buf, len, off);
    pthread_rwlock_unlock(&s->io_barrier);
    return ret;
}

/* Apply queued decrements (DESIGN NOTES 4, 10); punch holes in clusters
 * that became free so the host file shrinks in use. Lock held. */
static int apply_frees(struct q2_state *s, struct q2_pending_free *p, size_t n)
{
    int ret = 0;
    VD_ASSERT_HELD(&s->lock);
    for (size_t i = 0; i < n && ret == 0; i++) {
        ret = q2_refcount_update(s, p[i].offset, p[i].len, -1);
        for (uint64_t c = p[i].offset & ~(s->cluster_size - 1);
             ret == 0 && c < p[i].offset + p[i].len; c += s->cluster_size) {
            uint64_t rc;
            if (q2_refcount_of(s, c >> s->cluster_bits, &rc) == 0 && rc == 0) {
                vd_fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                             c, s->cluster_size);
            }
        }
    }
    if (ret == 0) {
        ret = q2_cache_writeback(s, &s->rb_cache);
    }
    if (ret == 0) {
        ret = q2_sync(s);
    }
    return ret;
}

/* Whether a flush has only data to sync: no dirty metadata, no queued
 * frees (DESIGN NOTES 11). Lock held. */
static bool only_data_locked(struct q2_state *s)
{
    return !s->broken && !atomic_load(&s->sync_failed) && s->npending == 0 &&
           s->l1_dirty_lo >= s->l1_dirty_hi &&
           !q2_cache_has_dirty(&s->l2_cache) &&
           !q2_cache_has_dirty(&s->rb_cache);
}

static int qcow2_flush(struct vd_image *img)
{
    struct q2_state *s = img->opaque;
    struct q2_pending_free *p;
    size_t n;
    int ret;

    pthread_mutex_lock(&s->lock);
    if (only_data_locked(s)) {
        /* The steady state of a VM writing in place: do not stall
         * lookups behind the disk. */
        pthread_mutex_unlock(&s->lock);
        return q2_sync(s);
    }
    ret = q2_metadata_writeback(s);
    p = s->pending;
    n = s->npending;
    if (ret == 0 && n > 0) {
        s->pending = NULL;
        s->npending = s->pending_cap = 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (ret < 0 || n == 0) {
        return ret;
    }
    /* Drain I/O that may still use the old mappings. */
    q2_barrier_drain(s);
    q2_barrier_release(s);
    pthread_mutex_lock(&s->lock);
    ret = apply_frees(s, p, n);
    pthread_mutex_unlock(&s->lock);
    free(p);
    return ret;
}

/* DESIGN NOTES 11's flush, or -EAGAIN: never drains, never writes
 * metadata, so it may run on the I/O thread. The lock is only tried: a
 * holder may be writing metadata back. */
static int qcow2_flush_nowait(struct vd_image *img)
{
    struct q2_state *s = img->opaque;
    bool only_data;
    if (pthread_mutex_trylock(&s->lock) != 0) {
        return -EAGAIN;
    }
    only_data = only_data_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (!only_data) {
        return -EAGAIN;
    }
    return q2_sync(s);
}

/* The part of [off, off+len) made of whole clusters; the image's last
 * cluster counts as whole when the range reaches the virtual end. */
static void whole_clusters(struct q2_state *s, uint64_t off, uint64_t len,
                           uint64_t *a, uint64_t *b)
{
    uint64_t end = off + len;
    *a = q2_align_up(off, s->cluster_size);
    *b = end == atomic_load(&s->size) ? q2_align_up(end, s->cluster_size)
                                      : end & ~(s->cluster_size - 1);
    if (*b < *a) {
        *b = *a;
    }
}

static int qcow2_discard(struct vd_image *img, uint64_t off, uint64_t len)
{
    struct q2_state *s = img->opaque;
    uint64_t a, b;
    int ret = 0;
    whole_clusters(s, off, len, &a, &b);
    if (a < b) {
        pthread_mutex_lock(&s->lock);
        ret = q2_zero_or_discard(s, a, b - a, true, true);
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}

static int write_zero_buf(struct q2_state *s, uint64_t off, uint64_t len)
{
    uint8_t *z;
    int ret;
    if (len == 0) {
        return 0;
    }
    z = calloc(1, len);
    if (z == NULL) {
        return -ENOMEM;
    }
    ret = do_write(s, z, len, off);
    free(z);
    return ret;
}

static int qcow2_write_zeroes(struct vd_image *img, uint64_t off, uint64_t len,
                              unsigned flags)
{
    struct q2_state *s = img->opaque;
    bool unmap = (flags & VD_ZERO_MAY_UNMAP) != 0;
    uint64_t a, b, end = off + len;
    int ret;

    /* v2 has no zero flag: only "unallocated without backing" reads as
     * zeroes. Otherwise let image.c write zero buffers. */
    if (s->hdr.version < 3 && (s->backing != NULL || !unmap)) {
        return -ENOTSUP;
    }
    whole_clusters(s, off, len, &a, &b);
    pthread_rwlock_rdlock(&s->io_barrier);
    if (a >= b) {
        ret = write_zero_buf(s, off, len);
        goto out;
    }
    ret = write_zero_buf(s, off, a - off);
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        ret = q2_zero_or_discard(s, a, b - a, s->hdr.version < 3, unmap);
        pthread_mutex_unlock(&s->lock);
    }
    if (ret == 0 && b < end) {
        ret = write_zero_buf(s, b, end - b);
    }
out:
    pthread_rwlock_unlock(&s->io_barrier);
    return ret;
}

/* Status of the run at off (one lookup); sets *pnum. */
static int status_once(struct q2_state *s, uint64_t off, uint64_t len,
                       uint64_t *pnum)
{
    struct q2_map m;
    uint64_t run;
    int ret;
    pthread_mutex_lock(&s->lock);
    ret = q2_get_mapping(s, off, len, &m, &run);
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    *pnum = run;
    switch (m.type) {
    case Q2_NORMAL:
    case Q2_COMPRESSED:
        return VD_BS_DATA | VD_BS_ALLOCATED;
    case Q2_ZERO_PLAIN:
    case Q2_ZERO_ALLOC:
        return VD_BS_ZERO | VD_BS_ALLOCATED;
    default:
        break;
    }
    if (s->backing == NULL || off >= s->backing_size) {
        return VD_BS_ZERO;
    }
    if (run > s->backing_size - off) {
        *pnum = run = s->backing_size - off;
    }
    ret = vd_image_block_status(s->backing, off, run, pnum);
    return ret < 0 ? ret : (int)(ret & ~VD_BS_ALLOCATED);
}

static int qcow2_block_status(struct vd_image *img, uint64_t off, uint64_t len,
                              uint64_t *pnum)
{
    struct q2_state *s = img->opaque;
    uint64_t n, total;
    int flags = status_once(s, off, len, &total);
    while (flags >= 0 && total < len) {
        int f = status_once(s, off + total, len - total, &n);
        if (f != flags) {
            break;
        }
        total += n;
    }
    *pnum = total;
    return flags;
}

static uint64_t qcow2_length(struct vd_image *img)
{
    struct q2_state *s = img->opaque;
    return atomic_load(&s->size);
}

static int64_t qcow2_allocated(struct vd_image *img)
{
    struct q2_state *s = img->opaque;
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

/* Grow the L1 table to `needed` entries, moving it if its clusters are
 * full (DESIGN NOTES 5). Lock held, metadata written back. */
static int grow_l1(struct q2_state *s, uint32_t needed)
{
    uint64_t cs = s->cluster_size;
    uint64_t cap = q2_align_up((uint64_t)s->l1_size * 8, cs) / 8;
    uint64_t *l1 = realloc(s->l1, (size_t)needed * 8);
    uint64_t old_off = s->l1_offset, old_bytes = (uint64_t)s->l1_size * 8;
    uint64_t new_off = s->l1_offset;
    uint32_t old_size = s->l1_size;
    int ret;

    VD_ASSERT_HELD(&s->lock);

    if (l1 == NULL) {
        return -ENOMEM;
    }
    s->l1 = l1;
    memset(l1 + old_size, 0, (size_t)(needed - old_size) * 8);
    if (needed > cap || old_size == 0) {
        ret = q2_alloc_clusters(s, q2_align_up((uint64_t)needed * 8, cs) / cs,
                                &new_off);
        if (ret < 0) {
            return ret;
        }
        s->l1_offset = new_off;
        s->l1_size = needed;
        ret = q2_l1_write(s, 0, needed);
    } else {
        s->l1_size = needed;
        ret = q2_l1_write(s, old_size, needed);
    }
    if (ret == 0) {
        ret = q2_metadata_writeback(s); /* refcounts of the new L1 */
    }
    if (ret < 0) {
        s->l1_offset = old_off;
        s->l1_size = old_size;
        return ret;
    }
    s->hdr.l1_table_offset = new_off;
    s->hdr.l1_size = needed;
    ret = q2_header_write(s);
    if (ret == 0) {
        ret = q2_sync(s);
    }
    if (ret < 0) {
        return q2_signal_write_failure(s, ret,
                                       "switching to the grown L1 "
                                       "table");
    }
    if (new_off != old_off && old_bytes > 0) {
        ret = q2_refcount_update(s, old_off, old_bytes, -1);
    }
    return ret;
}

static int qcow2_truncate(struct vd_image *img, uint64_t size,
                          struct vd_error *err)
{
    struct q2_state *s = img->opaque;
    uint64_t span = s->cluster_size << s->l2_bits;
    uint64_t needed = (size + span - 1) / span;
    int ret;

    if (size < atomic_load(&s->size)) {
        return vd_error_set(err, -ENOTSUP,
                            "shrinking a qcow2 volume is not supported");
    }
    if (needed * 8 > QCOW2_MAX_L1_BYTES) {
        return vd_error_set(err, -EFBIG,
                            "size %llu needs an L1 table larger "
                            "than qcow2 allows",
                            (unsigned long long)size);
    }
    pthread_mutex_lock(&s->lock);
    ret = q2_metadata_writeback(s);
    if (ret == 0 && needed > s->l1_size) {
        ret = grow_l1(s, (uint32_t)needed);
    }
    if (ret == 0) {
        s->hdr.size = size;
        ret = q2_header_write(s);
        if (ret == 0) {
            ret = q2_sync(s);
        }
        if (ret < 0) {
            /* The caller hears of failure: the next header write (a
             * snapshot, say) must not grow the disk after all. */
            s->hdr.size = atomic_load(&s->size);
        }
    }
    if (ret == 0) {
        atomic_store(&s->size, size);
    }
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) {
        return vd_error_set(err, ret, "resize: %s", strerror(-ret));
    }
    return 0;
}

static int qcow2_check(struct vd_image *img, struct vd_check_result *res)
{
    struct q2_state *s = img->opaque;
    int ret = 0;
    if (!s->readonly) {
        /* Queued frees would otherwise count as leaks. */
        ret = qcow2_flush(img);
        if (ret < 0) {
            return ret;
        }
    }
    pthread_mutex_lock(&s->lock);
    ret = q2_check(s, res);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static int qcow2_host_links(struct vd_image *img)
{
    struct q2_state *s = img->opaque;
    return vd_hostfile_links(&s->hf);
}

static const char *qcow2_corruption(struct vd_image *img)
{
    struct q2_state *s = img->opaque;
    return atomic_load_explicit(&s->corruption, memory_order_acquire);
}

const struct vd_driver vd_driver_qcow2 = {
    .name = "qcow2",
    .instance_size = sizeof(struct q2_state),
    .parallel = true,
    .is_file = true,
    .caps = VD_CAP_CREATE | VD_CAP_GROW | VD_CAP_SNAPSHOTS |
            VD_CAP_SNAPSHOT_VIEWS | VD_CAP_CHANGES | VD_CAP_BASE |
            VD_CAP_CHEAP_CLONE,
    .probe = qcow2_probe,
    .create = qcow2_create,
    .relocate = qcow2_relocate,
    .open = qcow2_open,
    .close = qcow2_close,
    .submit = q2_submit,
    .pread = qcow2_pread,
    .pwrite = qcow2_pwrite,
    .flush = qcow2_flush,
    .flush_nowait = qcow2_flush_nowait,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .block_status = qcow2_block_status,
    .length = qcow2_length,
    .allocated = qcow2_allocated,
    .truncate = qcow2_truncate,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_delete = qcow2_snapshot_delete,
    .snapshot_revert = qcow2_snapshot_revert,
    .snapshot_changes = qcow2_snapshot_changes,
    .check = qcow2_check,
    .corruption = qcow2_corruption,
    .host_links = qcow2_host_links,
};
