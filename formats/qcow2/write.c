/* write.c — writes that change the mapping: allocation with copy-on-write,
 * zero clusters, discard and metadata preallocation.
 *
 * Mapping changes run with the metadata lock held; the guest data of an
 * allocating write is written with the lock dropped while its guest
 * clusters sit on s->inflight, so other writers of them wait and no reader
 * sees an L2 entry before the data it exposes (DESIGN NOTES 9, qcow2.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "io_util.h"
#include "qcow2-int.h"
#include "vd_assert.h"
#include "vd_driver.h"

/* How far ahead the host file is grown for fresh clusters. */
#define Q2_GROW_STEP (1ULL << 20)

int q2_read_backing(struct q2_state *s, uint8_t *buf, size_t len, uint64_t off)
{
    size_t n = 0;
    int ret = 0;
    if (s->backing != NULL && off < s->backing_size) {
        n = s->backing_size - off < len ? (size_t)(s->backing_size - off) : len;
        ret = vd_image_pread(s->backing, buf, n, off);
    }
    memset(buf + n, 0, len - n);
    return ret;
}

int q2_read_cluster(struct q2_state *s, uint64_t vaddr, const struct q2_map *m,
                    uint8_t *out)
{
    VD_ASSERT_RWLOCK_HELD(&s->io_barrier);
    switch (m->type) {
    case Q2_NORMAL:
        return vd_hostfile_pread(&s->hf, out, s->cluster_size, m->host);
    case Q2_COMPRESSED:
        return q2_read_compressed(s, m, out);
    case Q2_UNALLOCATED:
        return q2_read_backing(s, out, s->cluster_size, vaddr);
    default:
        memset(out, 0, s->cluster_size);
        return 0;
    }
}

static int entry_at(struct q2_state *s, uint64_t l2_off, uint64_t idx,
                    uint8_t **l2, struct q2_map *m)
{
    int ret = q2_cache_get(s, &s->l2_cache, l2_off, true, l2);
    if (ret < 0) {
        return ret;
    }
    if (q2_l2_entry_decode(q2_table_get(*l2, idx), s->cluster_bits, m) < 0) {
        return q2_signal_corruption(
            s,
            "invalid entry 0x%016llx at index %llu of the L2 table at "
            "0x%llx",
            (unsigned long long)q2_table_get(*l2, idx), (unsigned long long)idx,
            (unsigned long long)l2_off);
    }
    return 0;
}

/* Replace entry idx by `entry`; the old entry's clusters are freed once
 * the new table is durable. */
static int set_entry(struct q2_state *s, uint8_t *l2, uint64_t idx,
                     const struct q2_map *old, uint64_t entry)
{
    uint64_t off, len;
    q2_table_set(l2, idx, entry);
    q2_cache_mark_dirty(&s->l2_cache, l2);
    q2_entry_host_range(s, old, &off, &len);
    if ((entry & L2E_OFFSET_MASK) == off && !(entry & QCOW_OFLAG_COMPRESSED)) {
        return 0; /* same host cluster kept */
    }
    return q2_free_deferred(s, off, len);
}

static bool inflight_overlaps(const struct q2_state *s, uint64_t vaddr,
                              uint64_t len)
{
    for (const struct q2_inflight *f = s->inflight; f != NULL; f = f->next) {
        if (q2_ranges_overlap(vaddr, len, f->vaddr, f->len)) {
            return true;
        }
    }
    return false;
}

static void inflight_remove(struct q2_state *s, struct q2_inflight *me)
{
    for (struct q2_inflight **pp = &s->inflight; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == me) {
            *pp = me->next;
            break;
        }
    }
    pthread_cond_broadcast(&s->inflight_cond);
}

/* Make the host file reach at least end (the end of clusters just
 * allocated, so host_end), growing it ahead in steps: a direct write past
 * end of file is an extending write, which the file system runs
 * synchronously with an inode update every time (ext4: orphan list and
 * size change in the journal). Nothing was ever written at or past
 * host_end, so the new size never cuts data off. Failure only means the
 * data write extends the file itself. Lock held. */
static void grow_file(struct q2_state *s, uint64_t end)
{
    uint64_t to;
    VD_ASSERT_HELD(&s->lock);
    if (end <= s->file_size) {
        return;
    }
    to = q2_align_up(end, Q2_GROW_STEP);
    if (vd_ftruncate(s->fd, to) == 0) {
        s->file_size = to;
    }
}

/* Point guest clusters [idx, idx+k) of the L2 table for l1_index at the
 * host clusters from host on. The table is looked up again: it may have
 * been evicted or copied while the lock was dropped. */
static int map_new_clusters(struct q2_state *s, uint32_t l1_index, uint64_t idx,
                            uint64_t k, uint64_t host)
{
    uint64_t l2_off;
    uint8_t *l2;
    int ret = s->broken ? -EIO : q2_l2_for_write(s, l1_index, &l2_off);
    for (uint64_t i = 0; i < k && ret == 0; i++) {
        struct q2_map old;
        ret = entry_at(s, l2_off, idx + i, &l2, &old);
        if (ret == 0) {
            ret = set_entry(s, l2, idx + i, &old,
                            (host + i * s->cluster_size) | QCOW_OFLAG_COPIED);
        }
    }
    return ret;
}

int q2_write_alloc(struct q2_state *s, uint64_t vaddr, const uint8_t *buf,
                   uint64_t len, uint64_t *done)
{
    uint64_t cs = s->cluster_size;
    VD_ASSERT_HELD(&s->lock);
    uint64_t l2_entries = 1ULL << s->l2_bits;
    uint32_t l1_index = (uint32_t)(vaddr >> (s->cluster_bits + s->l2_bits));
    uint64_t idx = (vaddr >> s->cluster_bits) & (l2_entries - 1);
    uint64_t in = vaddr & (cs - 1);
    uint64_t l2_off, host, fresh_from, k = 1;
    uint8_t *l2, *cbuf = NULL;
    struct q2_inflight me = {.vaddr = vaddr - in, .len = cs};
    struct q2_map m;
    bool fresh;
    int ret;

    *done = 0;
    if (s->broken) {
        return -EIO;
    }
    if (inflight_overlaps(s, me.vaddr, cs)) {
        /* Another writer is allocating this cluster: wait, look again. */
        pthread_cond_wait(&s->inflight_cond, &s->lock);
        return 0;
    }
    ret = q2_l2_for_write(s, l1_index, &l2_off);
    if (ret < 0) {
        return ret;
    }
    ret = entry_at(s, l2_off, idx, &l2, &m);
    if (ret < 0) {
        return ret;
    }
    if (m.type == Q2_NORMAL && m.copied) {
        return 0; /* allocated since the caller looked: write in place */
    }

    if (in == 0 && len >= cs) {
        /* Whole clusters: no old content to keep. */
        struct q2_map n;
        while ((k + 1) * cs <= len && idx + k < l2_entries &&
               !inflight_overlaps(s, me.vaddr + k * cs, cs)) {
            if (q2_l2_entry_decode(q2_table_get(l2, idx + k), s->cluster_bits,
                                   &n) < 0 ||
                (n.type == Q2_NORMAL && n.copied)) {
                break;
            }
            k++;
        }
        ret = q2_alloc_clusters(s, k, &host);
        if (ret < 0) {
            return ret;
        }
        grow_file(s, host + k * cs);
        me.len = k * cs;
        me.next = s->inflight;
        s->inflight = &me;
        pthread_mutex_unlock(&s->lock);
        ret = vd_hostfile_pwrite(&s->hf, buf, k * cs, host);
        pthread_mutex_lock(&s->lock);
        if (ret == 0) {
            ret = map_new_clusters(s, l1_index, idx, k, host);
        } else {
            q2_refcount_update(s, host, k * cs, -1); /* unreferenced */
        }
        inflight_remove(s, &me);
        if (ret == 0) {
            *done = k * cs;
        }
        return ret;
    }

    /* Part of one cluster: build the whole cluster (copy-on-write), unless
     * it is fresh and would only copy zeroes (DESIGN NOTES 9). */
    uint64_t n = len < cs - in ? len : cs - in;
    bool reuse = m.type == Q2_ZERO_ALLOC && m.copied &&
                 q2_host_cluster_ok(s, m.host) &&
                 !q2_overlaps_metadata(s, m.host, cs);
    if (reuse) {
        host = m.host;
        fresh = false;
    } else {
        fresh_from = s->host_end;
        ret = q2_alloc_clusters(s, 1, &host);
        if (ret < 0) {
            return ret;
        }
        fresh = host >= fresh_from &&
                (m.type == Q2_ZERO_PLAIN ||
                 (m.type == Q2_UNALLOCATED && s->backing == NULL));
        if (fresh) {
            grow_file(s, host + cs);
        }
    }
    me.next = s->inflight;
    s->inflight = &me;
    pthread_mutex_unlock(&s->lock);
    if (fresh) {
        ret = vd_hostfile_pwrite(&s->hf, buf, n, host + in);
    } else if (posix_memalign((void **)&cbuf, s->hf.mem_align, cs) != 0) {
        cbuf = NULL;
        ret = -ENOMEM;
    } else {
        ret = q2_read_cluster(s, vaddr - in, &m, cbuf);
        if (ret == 0) {
            memcpy(cbuf + in, buf, n);
            ret = vd_hostfile_pwrite(&s->hf, cbuf, cs, host);
        }
    }
    free(cbuf);
    pthread_mutex_lock(&s->lock);
    if (ret == 0) {
        ret = map_new_clusters(s, l1_index, idx, 1, host);
    } else if (!reuse) {
        q2_refcount_update(s, host, cs, -1);
    }
    inflight_remove(s, &me);
    if (ret == 0) {
        *done = n;
    }
    return ret;
}

int q2_zero_or_discard(struct q2_state *s, uint64_t off, uint64_t len,
                       bool discard, bool may_unmap)
{
    uint64_t cs = s->cluster_size;
    uint64_t l2_entries = 1ULL << s->l2_bits;
    VD_ASSERT_HELD(&s->lock);

    while (inflight_overlaps(s, off, len)) {
        pthread_cond_wait(&s->inflight_cond, &s->lock);
    }
    while (len > 0) {
        uint32_t l1_index = (uint32_t)(off >> (s->cluster_bits + s->l2_bits));
        uint64_t idx = (off >> s->cluster_bits) & (l2_entries - 1);
        uint64_t n = (l2_entries - idx) * cs;
        uint64_t l2_off;
        uint8_t *l2;
        int ret;

        if (n > len) {
            n = len;
        }
        if (s->broken) {
            return -EIO;
        }
        if ((s->l1[l1_index] & L1E_OFFSET_MASK) == 0 &&
            (discard || s->backing == NULL)) {
            goto next; /* nothing mapped: already reads as wanted */
        }
        ret = q2_l2_for_write(s, l1_index, &l2_off);
        if (ret < 0) {
            return ret;
        }
        for (uint64_t i = 0; i < n / cs; i++) {
            struct q2_map m;
            uint64_t entry;
            ret = entry_at(s, l2_off, idx + i, &l2, &m);
            if (ret < 0) {
                return ret;
            }
            if (discard) {
                entry = 0;
            } else if (!may_unmap && m.copied &&
                       (m.type == Q2_NORMAL || m.type == Q2_ZERO_ALLOC)) {
                entry = m.host | QCOW_OFLAG_ZERO | QCOW_OFLAG_COPIED;
            } else if (m.type == Q2_UNALLOCATED && s->backing == NULL) {
                continue;
            } else {
                entry = QCOW_OFLAG_ZERO;
            }
            if (q2_table_get(l2, idx + i) == entry) {
                continue;
            }
            ret = set_entry(s, l2, idx + i, &m, entry);
            if (ret < 0) {
                return ret;
            }
        }
    next:
        off += n;
        len -= n;
    }
    return 0;
}

/* Reserve or zero the data clusters [host, host+len) (create only). */
static int prealloc_data(struct q2_state *s, uint64_t host, uint64_t len,
                         int mode)
{
    if (mode == VD_PREALLOC_FALLOC) {
        int r = posix_fallocate(s->fd, (off_t)host, (off_t)len);
        return -r;
    }
    if (mode == VD_PREALLOC_FULL) {
        const uint64_t chunk = 1u << 20;
        uint8_t *z = calloc(1, chunk);
        int ret = 0;
        if (z == NULL) {
            return -ENOMEM;
        }
        for (uint64_t o = 0; o < len && ret == 0; o += chunk) {
            ret = vd_pwrite_full(s->fd, z, len - o < chunk ? len - o : chunk,
                                 host + o);
        }
        free(z);
        return ret;
    }
    return 0;
}

int q2_preallocate(struct q2_state *s, int mode)
{
    uint64_t cs = s->cluster_size;
    uint64_t l2_entries = 1ULL << s->l2_bits;
    uint64_t clusters = q2_align_up(atomic_load(&s->size), cs) / cs;

    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t first = (uint64_t)i * l2_entries;
        uint64_t k =
            clusters - first < l2_entries ? clusters - first : l2_entries;
        uint64_t l2_off, host;
        uint8_t *l2;
        int ret;
        if (first >= clusters) {
            break;
        }
        ret = q2_l2_for_write(s, i, &l2_off);
        if (ret == 0) {
            ret = q2_alloc_clusters(s, k, &host);
        }
        if (ret == 0) {
            ret = q2_cache_get(s, &s->l2_cache, l2_off, true, &l2);
        }
        if (ret < 0) {
            return ret;
        }
        for (uint64_t j = 0; j < k; j++) {
            q2_table_set(l2, j, (host + j * cs) | QCOW_OFLAG_COPIED);
        }
        q2_cache_mark_dirty(&s->l2_cache, l2);
        ret = prealloc_data(s, host, k * cs, mode);
        if (ret < 0) {
            return ret;
        }
    }
    /* The file covers every cluster now mapped. */
    return vd_ftruncate(s->fd, s->host_end);
}
