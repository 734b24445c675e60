/* qcow2-int.h — private state and cross-file prototypes of the qcow2 driver.
 *
 * Prototypes are grouped under the file that defines them. On-disk values
 * are big-endian; the only conversions live in the "on-disk byte order"
 * section below and in format.c, which decodes whole structures.
 *
 * Files call down one order, never back: format.c, corrupt.c, cache.c,
 * compress.c -> refcount.c -> cluster.c -> write.c -> aio.c, check.c ->
 * snapshot.c, create.c -> snapview.c -> open.c -> qcow2.c (driver table). */
#ifndef VD_QCOW2_INT_H
#define VD_QCOW2_INT_H

#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "image-int.h"
#include "io_util.h"

struct vd_error;
struct vd_image;
struct vd_check_result;
struct vd_create_opts;
struct vd_snapshot_info;

/* ---- Constants from docs/interop/qcow2.txt ---- */
#define QCOW_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW_MIN_CLUSTER_BITS 9
#define QCOW_MAX_CLUSTER_BITS 21
#define QCOW_DEFAULT_CLUSTER_BITS 16

#define QCOW_OFLAG_COPIED (1ULL << 63)
#define QCOW_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW_OFLAG_ZERO (1ULL << 0)
#define L1E_OFFSET_MASK 0x00fffffffffffe00ULL
#define L2E_OFFSET_MASK 0x00fffffffffffe00ULL
#define REFT_OFFSET_MASK 0xfffffffffffffe00ULL

#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1fULL
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)

#define QCOW2_COMPRESSION_DEFLATE 0
#define QCOW2_COMPRESSION_ZSTD 1

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_DATA_FILE 0x44415441u
#define QCOW2_EXT_CRYPTO 0x0537be77u

/* Fixed maxima, the same as QEMU's, so hostile counts cannot make us
 * allocate unbounded memory. */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_SNAPSHOT_TABLE (64u << 20)
#define QCOW2_MAX_BACKING_NAME 1023u
#define QCOW2_V2_HEADER_LEN 72u
#define QCOW2_V3_HEADER_LEN 104u
#define QCOW2_OUR_HEADER_LEN 112u /* v3 + compression type + padding */

/* ---- On-disk byte order: every big-endian access goes through here ---- */
static inline uint64_t q2_be64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}
static inline uint32_t q2_be32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}
static inline uint16_t q2_be16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return be16toh(v);
}
static inline void q2_put_be64(void *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}
static inline void q2_put_be32(void *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
}
static inline void q2_put_be16(void *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, 2);
}

/* ---- Decoded structures (host byte order) ---- */
struct q2_header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
    /* From header extensions: */
    char backing_format[32]; /* "" when the extension is absent */
    bool has_data_file_ext;
};

struct q2_snapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id;
    char *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    uint8_t *extra_rest; /* extra data past the 16 bytes we know */
    uint32_t extra_rest_size;
};

/* What one L2 entry says about a guest cluster. */
enum q2_ctype {
    Q2_UNALLOCATED, /* read from backing file, or zeroes */
    Q2_ZERO_PLAIN,  /* reads zeroes, no host cluster */
    Q2_ZERO_ALLOC,  /* reads zeroes, host cluster reserved */
    Q2_NORMAL,      /* data at host */
    Q2_COMPRESSED,  /* compressed bytes at host, csize long */
};

struct q2_map {
    enum q2_ctype type;
    uint64_t host;  /* cluster offset, or byte offset when compressed */
    uint64_t csize; /* compressed byte count (COMPRESSED only) */
    bool copied;    /* QCOW_OFLAG_COPIED was set */
};

/* ---- Metadata cache (cache.c) ---- */
struct q2_cache_slot {
    uint64_t offset; /* host offset of the table; 0 = empty slot */
    uint8_t *data;   /* one cluster */
    uint64_t lru;
    bool dirty;
};

struct q2_cache {
    struct q2_cache_slot *slots;
    size_t nslots;
    uint64_t tick;
    bool is_l2; /* dirty L2 tables wait for refcounts and data */
};

/* ---- Driver state ---- */
struct q2_pending_free {
    uint64_t offset;
    uint64_t len;
};

/* A guest cluster range whose new host clusters are being written outside
 * the lock (write.c); it lives on the writer's stack. */
struct q2_inflight {
    uint64_t vaddr, len; /* guest range, whole clusters */
    struct q2_inflight *next;
};

struct q2_state {
    /* The image file. hf.fd (also `fd`) is buffered and carries metadata,
     * made durable by explicit fdatasync in the order of qcow2.c DESIGN
     * NOTES 1-5;
     * hf.dfd is the O_DIRECT descriptor for guest data when the volume was
     * opened with vd_open_opts.direct (-1 otherwise). The kernel keeps the
     * two coherent: a direct write drops cached pages in its range. */
    struct vd_hostfile hf;
    int fd; /* == hf.fd; -1 when closed */
    bool readonly;
    struct vd_ioloop *loop; /* aio.c submits here; NULL = never */

    /* Geometry, fixed after open. */
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint32_t l2_bits; /* log2 of entries per L2 table */
    uint32_t refcount_order;
    uint32_t rb_bits; /* log2 of entries per refcount block */
    uint64_t refcount_max;
    uint32_t csize_shift;
    uint64_t csize_mask;
    uint64_t cluster_offset_mask;

    /* --- Everything below is protected by `lock` --- */
    pthread_mutex_t lock;
    struct q2_header hdr;  /* as on disk (our edits applied) */
    uint8_t *hdr_raw;      /* header_length bytes as read */
    _Atomic uint64_t size; /* virtual size; atomic for length() */
    uint64_t *l1;          /* l1_size entries, host order */
    uint32_t l1_size;
    uint64_t l1_offset;
    uint32_t l1_dirty_lo, l1_dirty_hi; /* dirty entry range [lo, hi) */
    uint64_t *reftable;                /* host order */
    uint64_t reftable_size;            /* entries */
    uint64_t reftable_offset;
    struct q2_cache l2_cache;
    struct q2_cache rb_cache;
    uint64_t host_end;               /* offset past every cluster in use and
                                        every nonzero refcount (may lie past
                                        EOF after a crash) */
    uint64_t file_size;              /* host file size as far as we grew it */
    uint64_t free_hint;              /* no free cluster below this */
    struct q2_pending_free *pending; /* frees waiting for a flush */
    size_t npending, pending_cap;
    bool broken; /* corruption seen: no more writes */
    struct q2_snapshot *snaps;
    uint32_t nsnaps;
    uint64_t snap_table_bytes;

    /* Held shared by every data-path call for its whole duration; taken
     * exclusively by flush before freed clusters become reusable, so no
     * in-flight read or write still targets them. */
    pthread_rwlock_t io_barrier;
    /* Asynchronous requests (aio.c) hold the barrier only while they look
     * up and submit; until they complete they are counted here instead,
     * and whoever takes io_barrier exclusively also waits for this count
     * to reach zero (q2_barrier_drain). */
    _Atomic int aio_inflight;
    _Atomic bool aio_draining;
    pthread_mutex_t aio_lock;
    pthread_cond_t aio_cond;

    /* Allocations whose data is being written outside the lock (qcow2.c
     * DESIGN NOTES 9); inflight_cond is signalled (with lock) when one ends. */
    struct q2_inflight *inflight;
    pthread_cond_t inflight_cond;

    struct vd_image *backing; /* NULL = none; read-only, own locks */
    uint64_t backing_size;

    /* Why the image is no longer trusted (corrupt.c): the first reason,
     * published through `corruption` (NULL until then) and never changed
     * while the image is open; readable from any thread. */
    _Atomic bool corrupt_claimed;
    _Atomic bool corrupt_marked; /* corrupt bit set in the file (or was) */
    _Atomic bool sync_failed;    /* an fdatasync failed (q2_sync) */
    _Atomic(const char *) corruption;
    char corrupt_reason[256];
};

static inline uint64_t q2_align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static inline bool q2_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
                                     uint64_t blen)
{
    return alen > 0 && blen > 0 && a < b + blen && b < a + alen;
}

/* ---- format.c: header, extensions, snapshot table, entry decoding,
 * header write, host offset checks ---- */
/* Decode and validate a header from buf (len bytes, the first cluster or
 * as much of the file as exists). file_size bounds every offset. */
int q2_header_decode(const uint8_t *buf, size_t len, uint64_t file_size,
                     struct q2_header *h, struct vd_error *err);
/* Write h's fixed fields into raw (at least h->header_length bytes). */
void q2_header_encode(const struct q2_header *h, uint8_t *raw);
/* Parse the snapshot table in buf (len bytes, nb entries); validates
 * each entry against file_size. On success *out holds nb entries and
 * *used the table's length in bytes. Caller frees with q2_snapshots_free. */
int q2_snapshots_decode(const uint8_t *buf, size_t len, uint32_t nb,
                        uint32_t version, uint32_t cluster_bits,
                        uint64_t file_size, struct q2_snapshot **out,
                        uint64_t *used, struct vd_error *err);
void q2_snapshots_free(struct q2_snapshot *snaps, uint32_t nb);
/* Encode nb entries into a new buffer (caller frees); *len its size. */
int q2_snapshots_encode(const struct q2_snapshot *snaps, uint32_t nb,
                        uint8_t **out, uint64_t *len);
/* Classify an L2 entry. -EIO when it cannot be valid (unaligned data
 * offset, compressed with the copied flag). */
int q2_l2_entry_decode(uint64_t entry, uint32_t cluster_bits, struct q2_map *m);
/* Refcount entry i of a block with 2^order-bit entries. */
uint64_t q2_refcount_get_entry(const uint8_t *block, uint64_t i,
                               uint32_t order);
void q2_refcount_set_entry(uint8_t *block, uint64_t i, uint32_t order,
                           uint64_t v);
static inline uint64_t q2_table_get(const uint8_t *table, uint64_t i)
{
    return q2_be64(table + 8 * i);
}
static inline void q2_table_set(uint8_t *table, uint64_t i, uint64_t v)
{
    q2_put_be64(table + 8 * i, v);
}

/* Write header fields from s->hdr (no sync). */
int q2_header_write(struct q2_state *s);
/* Validate a host offset taken from a table: cluster aligned, past the
 * header, and inside the file. */
bool q2_host_cluster_ok(const struct q2_state *s, uint64_t off);
/* true when [off, off+len) touches the header, L1 table, refcount table
 * or snapshot table: a data write there would destroy metadata. */
bool q2_overlaps_metadata(const struct q2_state *s, uint64_t off, uint64_t len);

/* ---- cache.c ---- */
int q2_cache_init(struct q2_cache *c, size_t nslots, uint64_t cluster_size,
                  bool is_l2);
void q2_cache_destroy(struct q2_cache *c);
/* Pointer to the cluster-sized table at off, read from disk when load is
 * true, zero-filled otherwise. Valid until the next call on this cache. */
int q2_cache_get(struct q2_state *s, struct q2_cache *c, uint64_t off,
                 bool load, uint8_t **out);
void q2_cache_mark_dirty(struct q2_cache *c, const uint8_t *table);
/* Write every dirty table (no sync). */
int q2_cache_writeback(struct q2_state *s, struct q2_cache *c);
/* Forget the table at off without writing it (its cluster was freed). */
void q2_cache_drop(struct q2_cache *c, uint64_t off);
/* Forget every table, dirty or not. */
void q2_cache_clear(struct q2_cache *c);
bool q2_cache_has_dirty(const struct q2_cache *c);

/* ---- refcount.c ---- */
int q2_refcount_of(struct q2_state *s, uint64_t cluster, uint64_t *rc);
/* Add delta to the refcount of every cluster overlapping [off, off+len). */
int q2_refcount_update(struct q2_state *s, uint64_t off, uint64_t len,
                       int delta);
/* Set the refcount of host cluster `cluster` to `to` if it is higher
 * (leak repair: q2_reclaim_leaks). */
int q2_refcount_lower(struct q2_state *s, uint64_t cluster, uint64_t to);
/* Raise host_end past every cluster with a nonzero refcount. After a
 * crash the refcount blocks may count clusters past the end of the file
 * (allocated, refcount written, never written themselves); allocation
 * takes every cluster at or past host_end for free, so a writable open
 * must call this before the first allocation. */
int q2_refcount_extend_host_end(struct q2_state *s);
/* Find n contiguous free clusters, set their refcounts to 1. */
int q2_alloc_clusters(struct q2_state *s, uint64_t n, uint64_t *off);
/* Queue a decrement to run once the tables no longer pointing at the
 * range are durable (see DESIGN NOTES in qcow2.c). */
int q2_free_deferred(struct q2_state *s, uint64_t off, uint64_t len);
/* The range an L2 entry's data occupies (0 length if none). */
void q2_entry_host_range(const struct q2_state *s, const struct q2_map *m,
                         uint64_t *off, uint64_t *len);

/* ---- cluster.c: L1/L2 mapping ---- */
/* Mapping of the guest cluster holding vaddr, and the number of bytes
 * from vaddr (<= maxlen) that share it (contiguous host for data). */
int q2_get_mapping(struct q2_state *s, uint64_t vaddr, uint64_t maxlen,
                   struct q2_map *m, uint64_t *run);
/* An L2 table for l1_index that may be modified in place: allocates a new
 * one or copies a shared one. *l2_off receives its host offset. */
int q2_l2_for_write(struct q2_state *s, uint32_t l1_index, uint64_t *l2_off);
/* Write l1 entries [lo, hi) from memory to disk (no sync). */
int q2_l1_write(struct q2_state *s, uint32_t lo, uint32_t hi);
/* Make dirty metadata durable in crash-safe order. Lock held. */
int q2_metadata_writeback(struct q2_state *s);

/* ---- compress.c ---- */
int q2_decompress(uint8_t type, const uint8_t *src, size_t slen, uint8_t *dst,
                  size_t dlen);
/* Read and decompress the compressed cluster m into out (one cluster).
 * Uses only the file descriptor: safe without the lock. */
int q2_read_compressed(struct q2_state *s, const struct q2_map *m,
                       uint8_t *out);

/* ---- write.c: allocating writes, zeroes, discard ---- */
/* Write [vaddr, vaddr+len) where at least the first cluster needs
 * allocation or copy-on-write; called with the lock held, which it drops
 * while guest data is written and holds again on return. Sets *done to
 * the bytes handled: 0 when it waited for another writer of the cluster
 * (the caller looks the mapping up again), else at least the rest of the
 * first cluster or len. */
int q2_write_alloc(struct q2_state *s, uint64_t vaddr, const uint8_t *buf,
                   uint64_t len, uint64_t *done);
/* Read the guest cluster at cluster-aligned vaddr as it reads now. Needs
 * no lock: the mapping m was looked up by the caller, and its clusters
 * stay allocated while the caller holds io_barrier (qcow2.c DESIGN
 * NOTES 10). */
int q2_read_cluster(struct q2_state *s, uint64_t vaddr, const struct q2_map *m,
                    uint8_t *out);
/* Zero or discard the whole clusters in [off, off+len) (cluster aligned)
 * by changing L2 entries only. Lock held; waits (dropping it) for
 * allocations in flight in the range. */
int q2_zero_or_discard(struct q2_state *s, uint64_t off, uint64_t len,
                       bool discard, bool may_unmap);
/* Map every guest cluster to a host cluster (create with preallocation);
 * mode is a vd_prealloc: FALLOC reserves and FULL zeroes the data. */
int q2_preallocate(struct q2_state *s, int mode);
/* Read [off, off+len) of the backing file; zeroes past its end or
 * without one. */
int q2_read_backing(struct q2_state *s, uint8_t *buf, size_t len, uint64_t off);

/* ---- aio.c ---- */
struct vd_aio;
struct vd_image;
int q2_submit(struct vd_image *img, struct vd_aio *aio);
/* Take io_barrier exclusively and wait until no asynchronous request is
 * in flight either; q2_barrier_release gives it back. */
void q2_barrier_drain(struct q2_state *s);
void q2_barrier_release(struct q2_state *s);

/* ---- corrupt.c ---- */
/* Metadata found inconsistent: keep the first reason (fmt, naming what was
 * wrong and where), stop writing (s->broken), and set the header's
 * corrupt bit once if the image is writable. Returns -EIO. */
int q2_signal_corruption(struct q2_state *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A metadata update (what) failed with ret half way: stop writing and
 * keep the reason, without marking the image. Returns ret. */
int q2_signal_write_failure(struct q2_state *s, int ret, const char *what);
/* fdatasync the image file. A failure sticks (vd_fdatasync_sticky): every
 * later flush fails, metadata write-back stops (what the kernel dropped
 * may be metadata that later tables would point into) and the reason is
 * kept. Any thread, lock held or not. */
int q2_sync(struct q2_state *s);
/* Keep fmt as the reason if there is none yet (nothing else). */
void q2_set_reason(struct q2_state *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- open.c ---- */
struct vd_open_opts;
int qcow2_open(struct vd_image *img, const char *location,
               const struct vd_open_opts *o, struct vd_error *err);
void qcow2_close(struct vd_image *img);

/* ---- snapshot.c ---- */
int qcow2_snapshot_create(struct vd_image *img, const char *name,
                          struct vd_error *err);
int qcow2_snapshot_list(struct vd_image *img, struct vd_snapshot_info **out);
int qcow2_snapshot_delete(struct vd_image *img, const char *name,
                          struct vd_error *err);
int qcow2_snapshot_revert(struct vd_image *img, const char *name,
                          struct vd_error *err);
/* Index of the snapshot named (or, failing that, with the id) name in
 * s->snaps, or -1. Lock held or snapshots otherwise stable. */
int q2_snapshot_find(const struct q2_state *s, const char *name);

/* ---- snapview.c: read-only uses of snapshots ---- */
/* During open: make the named snapshot's L1 table the mapping and its
 * disk size the virtual size (read-only opens only). -ENOENT if absent. */
int q2_view_select(struct q2_state *s, const char *name, struct vd_error *err);
/* vd_driver.snapshot_changes. */
int qcow2_snapshot_changes(struct vd_image *img, const char *since,
                           const char *snap,
                           int (*cb)(void *arg, uint64_t off, uint64_t len),
                           void *arg, struct vd_error *err);

/* ---- check.c ---- */
int q2_check(struct q2_state *s, struct vd_check_result *res);
/* Free the clusters whose refcount exceeds their references (leaks a
 * crash left); *freed = how many clusters had too high a count.
 * -EUCLEAN, touching nothing, when the image also has corruption.
 * Lock held, or the image not yet shared (open). */
int q2_reclaim_leaks(struct q2_state *s, uint64_t *freed);
/* Rebuild the refcount structure from the mapping tables (dirty image). */
int q2_rebuild_refcounts(struct q2_state *s, struct vd_error *err);

/* ---- create.c ---- */
int qcow2_create(const char *location, const struct vd_create_opts *opts,
                 struct vd_error *err);

/* relocate.c */
int qcow2_relocate(const char *location, const char *orig_dir,
                   struct vd_error *err);

#endif
