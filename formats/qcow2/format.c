/* format.c — the qcow2 on-disk structures: header, header extensions,
 * snapshot table, L2 and refcount entries.
 *
 * The one place where whole big-endian structures are converted, and where
 * every value read from an image is checked against the file size and the
 * fixed maxima before the rest of the driver may trust it. Also the
 * header write and the checks of host offsets against the metadata, which
 * every layer above uses. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "io_util.h"
#include "qcow2-int.h"
#include "vd_error.h"

struct q2_disk_header {
    uint32_t magic;
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
    /* version 3 */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
    uint8_t padding[7];
} __attribute__((packed));

_Static_assert(sizeof(struct q2_disk_header) == QCOW2_OUR_HEADER_LEN,
               "qcow2 header layout");
_Static_assert(offsetof(struct q2_disk_header, incompatible_features) ==
                   QCOW2_V2_HEADER_LEN,
               "qcow2 v2 header length");
_Static_assert(offsetof(struct q2_disk_header, compression_type) ==
                   QCOW2_V3_HEADER_LEN,
               "qcow2 v3 header length");

struct q2_disk_snapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    uint16_t id_str_size;
    uint16_t name_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint32_t vm_state_size;
    uint32_t extra_data_size;
} __attribute__((packed));

_Static_assert(sizeof(struct q2_disk_snapshot) == 40, "snapshot entry");

#define Q2_SNAP_MAX_EXTRA 1024u

static int bad(struct vd_error *err, const char *what)
{
    return vd_error_set(err, -EINVAL, "invalid qcow2 image: %s", what);
}

/* A table of bytes at off must be cluster aligned, clear of the header
 * cluster and inside the file. */
static bool table_ok(uint64_t off, uint64_t bytes, uint64_t cluster_size,
                     uint64_t file_size)
{
    return (off & (cluster_size - 1)) == 0 && off >= cluster_size &&
           vd_range_ok(off, bytes, file_size);
}

static int parse_extensions(const uint8_t *buf, size_t end, size_t pos,
                            struct q2_header *h, struct vd_error *err)
{
    while (pos + 8 <= end) {
        uint32_t type = q2_be32(buf + pos);
        uint32_t len = q2_be32(buf + pos + 4);
        pos += 8;
        if (type == QCOW2_EXT_END) {
            return 0;
        }
        if (len > end - pos) {
            return bad(err, "header extension runs past the first cluster");
        }
        if (type == QCOW2_EXT_BACKING_FORMAT) {
            if (len == 0 || len >= sizeof(h->backing_format)) {
                return bad(err, "backing format extension has a bad length");
            }
            for (uint32_t i = 0; i < len; i++) {
                char c = (char)buf[pos + i];
                if (c < 0x21 || c > 0x7e) {
                    return bad(err, "backing format name is not printable");
                }
                h->backing_format[i] = c;
            }
            h->backing_format[len] = '\0';
        } else if (type == QCOW2_EXT_DATA_FILE) {
            h->has_data_file_ext = true;
        }
        /* Unknown extensions are skipped here and kept on disk: the
         * driver never rewrites the extension area. */
        pos += ((uint64_t)len + 7) & ~7ULL;
    }
    return 0;
}

int q2_header_decode(const uint8_t *buf, size_t len, uint64_t file_size,
                     struct q2_header *h, struct vd_error *err)
{
    struct q2_disk_header d;
    uint64_t cs, l2_entries, needed_l1;

    memset(h, 0, sizeof(*h));
    memset(&d, 0, sizeof(d));
    if (len < QCOW2_V2_HEADER_LEN) {
        return bad(err, "file too short for a header");
    }
    memcpy(&d, buf, len < sizeof(d) ? len : sizeof(d));
    if (be32toh(d.magic) != QCOW_MAGIC) {
        return bad(err, "bad magic");
    }
    h->version = be32toh(d.version);
    h->backing_file_offset = be64toh(d.backing_file_offset);
    h->backing_file_size = be32toh(d.backing_file_size);
    h->cluster_bits = be32toh(d.cluster_bits);
    h->size = be64toh(d.size);
    h->crypt_method = be32toh(d.crypt_method);
    h->l1_size = be32toh(d.l1_size);
    h->l1_table_offset = be64toh(d.l1_table_offset);
    h->refcount_table_offset = be64toh(d.refcount_table_offset);
    h->refcount_table_clusters = be32toh(d.refcount_table_clusters);
    h->nb_snapshots = be32toh(d.nb_snapshots);
    h->snapshots_offset = be64toh(d.snapshots_offset);

    if (h->version != 2 && h->version != 3) {
        return vd_error_set(err, -ENOTSUP, "qcow2 version %u is not supported",
                            h->version);
    }
    if (h->cluster_bits < QCOW_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW_MAX_CLUSTER_BITS) {
        return vd_error_set(err, -EINVAL,
                            "invalid qcow2 image: cluster_bits %u outside "
                            "9..21",
                            h->cluster_bits);
    }
    cs = 1ULL << h->cluster_bits;
    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LEN;
    } else {
        if (len < QCOW2_V3_HEADER_LEN) {
            return bad(err, "file too short for a version 3 header");
        }
        h->incompatible_features = be64toh(d.incompatible_features);
        h->compatible_features = be64toh(d.compatible_features);
        h->autoclear_features = be64toh(d.autoclear_features);
        h->refcount_order = be32toh(d.refcount_order);
        h->header_length = be32toh(d.header_length);
        if (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length > cs ||
            h->header_length > len) {
            return bad(err, "header_length out of range");
        }
        if (h->header_length > QCOW2_V3_HEADER_LEN) {
            h->compression_type = d.compression_type;
        }
        if (h->refcount_order > 6) {
            return vd_error_set(err, -EINVAL,
                                "invalid qcow2 image: refcount_order %u "
                                "above 6",
                                h->refcount_order);
        }
    }
    if (h->crypt_method != 0) {
        return vd_error_set(err, -ENOTSUP,
                            "encrypted qcow2 images (crypt_method %u) are not "
                            "supported",
                            h->crypt_method);
    }
    if (h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN) {
        return vd_error_set(err, -ENOTSUP,
                            "qcow2 image uses unknown incompatible features "
                            "0x%llx",
                            (unsigned long long)(h->incompatible_features &
                                                 ~QCOW2_INCOMPAT_KNOWN));
    }
    if (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) {
        return vd_error_set(err, -ENOTSUP,
                            "qcow2 feature 'external data file' "
                            "(incompatible bit 2) is not supported");
    }
    if (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) {
        return vd_error_set(err, -ENOTSUP,
                            "qcow2 feature 'extended L2 entries' "
                            "(subclusters, incompatible bit 4) is not "
                            "supported");
    }
    if (h->compression_type != QCOW2_COMPRESSION_DEFLATE &&
        h->compression_type != QCOW2_COMPRESSION_ZSTD) {
        return vd_error_set(err, -ENOTSUP,
                            "qcow2 compression type %u is not supported",
                            h->compression_type);
    }
    if (h->compression_type != QCOW2_COMPRESSION_DEFLATE &&
        !(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        return bad(err, "compression type set without its feature bit");
    }

    /* Mapping tables. */
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        return vd_error_set(err, -EFBIG,
                            "invalid qcow2 image: L1 table of %u entries is "
                            "larger than %u bytes",
                            h->l1_size, QCOW2_MAX_L1_BYTES);
    }
    if (h->l1_size > 0 && !table_ok(h->l1_table_offset,
                                    (uint64_t)h->l1_size * 8, cs, file_size)) {
        return bad(err, "L1 table offset unaligned, in the header cluster or "
                        "past the end of the file");
    }
    if (h->size > (1ULL << 62)) {
        return bad(err, "virtual size too large");
    }
    l2_entries = cs / 8;
    needed_l1 = (h->size + cs * l2_entries - 1) / (cs * l2_entries);
    if (needed_l1 > h->l1_size) {
        return bad(err, "L1 table too small for the virtual size");
    }
    /* Refcount table. */
    if (h->refcount_table_clusters == 0) {
        return bad(err, "no refcount table");
    }
    if ((uint64_t)h->refcount_table_clusters * cs > QCOW2_MAX_REFTABLE_BYTES) {
        return bad(err, "refcount table larger than 8 MiB");
    }
    if (!table_ok(h->refcount_table_offset,
                  (uint64_t)h->refcount_table_clusters * cs, cs, file_size)) {
        return bad(err, "refcount table offset unaligned, in the header "
                        "cluster or past the end of the file");
    }
    if (h->l1_size > 0 &&
        h->l1_table_offset < h->refcount_table_offset +
                                 (uint64_t)h->refcount_table_clusters * cs &&
        h->refcount_table_offset <
            h->l1_table_offset + (uint64_t)h->l1_size * 8) {
        return bad(err, "L1 table overlaps the refcount table");
    }
    /* Snapshot table: bounds here, entries in q2_snapshots_decode. */
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        return bad(err, "too many snapshots");
    }
    if (h->nb_snapshots > 0 &&
        !table_ok(h->snapshots_offset, 40ULL * h->nb_snapshots, cs,
                  file_size)) {
        return bad(err, "snapshot table offset unaligned, in the header "
                        "cluster or past the end of the file");
    }
    /* Backing file name: inside the first cluster, after the header. */
    if (h->backing_file_offset != 0) {
        if (h->backing_file_size == 0 ||
            h->backing_file_size > QCOW2_MAX_BACKING_NAME) {
            return bad(err, "backing file name length out of range");
        }
        /* Compare without adding: a hostile offset near 2^64 would wrap. */
        if (h->backing_file_offset < h->header_length ||
            h->backing_file_offset > cs || h->backing_file_offset > len ||
            h->backing_file_size > cs - h->backing_file_offset ||
            h->backing_file_size > len - h->backing_file_offset) {
            return bad(err, "backing file name outside the first cluster");
        }
    }
    if (h->version == 3) {
        size_t end = len < cs ? len : (size_t)cs;
        if (h->backing_file_offset != 0 && h->backing_file_offset < end) {
            end = (size_t)h->backing_file_offset;
        }
        int ret = parse_extensions(buf, end, h->header_length, h, err);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

void q2_header_encode(const struct q2_header *h, uint8_t *raw)
{
    struct q2_disk_header d;
    size_t n = h->version == 2 ? QCOW2_V2_HEADER_LEN
                               : (h->header_length > QCOW2_V3_HEADER_LEN
                                      ? QCOW2_V3_HEADER_LEN + 1
                                      : QCOW2_V3_HEADER_LEN);
    memset(&d, 0, sizeof(d));
    d.magic = htobe32(QCOW_MAGIC);
    d.version = htobe32(h->version);
    d.backing_file_offset = htobe64(h->backing_file_offset);
    d.backing_file_size = htobe32(h->backing_file_size);
    d.cluster_bits = htobe32(h->cluster_bits);
    d.size = htobe64(h->size);
    d.crypt_method = htobe32(h->crypt_method);
    d.l1_size = htobe32(h->l1_size);
    d.l1_table_offset = htobe64(h->l1_table_offset);
    d.refcount_table_offset = htobe64(h->refcount_table_offset);
    d.refcount_table_clusters = htobe32(h->refcount_table_clusters);
    d.nb_snapshots = htobe32(h->nb_snapshots);
    d.snapshots_offset = htobe64(h->snapshots_offset);
    d.incompatible_features = htobe64(h->incompatible_features);
    d.compatible_features = htobe64(h->compatible_features);
    d.autoclear_features = htobe64(h->autoclear_features);
    d.refcount_order = htobe32(h->refcount_order);
    d.header_length = htobe32(h->header_length);
    d.compression_type = h->compression_type;
    /* Only the fields this version has; padding and anything past them
     * (future fields, extensions) stay as they were in raw. */
    memcpy(raw, &d, n);
}

int q2_header_write(struct q2_state *s)
{
    if (s->readonly || s->broken) {
        return -EIO;
    }
    q2_header_encode(&s->hdr, s->hdr_raw);
    return vd_meta_pwrite(s->fd, s->hdr_raw, s->hdr.header_length, 0);
}

void q2_snapshots_free(struct q2_snapshot *snaps, uint32_t nb)
{
    if (snaps == NULL) {
        return;
    }
    for (uint32_t i = 0; i < nb; i++) {
        free(snaps[i].id);
        free(snaps[i].name);
        free(snaps[i].extra_rest);
    }
    free(snaps);
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

int q2_snapshots_decode(const uint8_t *buf, size_t len, uint32_t nb,
                        uint32_t version, uint32_t cluster_bits,
                        uint64_t file_size, struct q2_snapshot **out,
                        uint64_t *used, struct vd_error *err)
{
    uint64_t cs = 1ULL << cluster_bits;
    struct q2_snapshot *snaps = calloc(nb ? nb : 1, sizeof(*snaps));
    size_t pos = 0;
    uint32_t i;

    *out = NULL;
    if (snaps == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    for (i = 0; i < nb; i++) {
        struct q2_disk_snapshot d;
        uint64_t entry;
        struct q2_snapshot *sn = &snaps[i];
        if (pos >= len || len - pos < sizeof(d)) {
            goto bad_table;
        }
        memcpy(&d, buf + pos, sizeof(d));
        uint32_t extra = be32toh(d.extra_data_size);
        uint16_t id_len = be16toh(d.id_str_size);
        uint16_t name_len = be16toh(d.name_size);
        if (extra > Q2_SNAP_MAX_EXTRA || (version >= 3 && extra < 16)) {
            goto bad_table;
        }
        entry = sizeof(d) + (uint64_t)extra + id_len + name_len;
        if (entry > len - pos) {
            goto bad_table;
        }
        /* Entries are padded to 8 bytes; the last one's padding may lie
         * past the end of the file (QEMU does not write it). */
        entry = (entry + 7) & ~7ULL;
        sn->l1_table_offset = be64toh(d.l1_table_offset);
        sn->l1_size = be32toh(d.l1_size);
        sn->date_sec = be32toh(d.date_sec);
        sn->date_nsec = be32toh(d.date_nsec);
        sn->vm_clock_nsec = be64toh(d.vm_clock_nsec);
        sn->vm_state_size = be32toh(d.vm_state_size);
        const uint8_t *x = buf + pos + sizeof(d);
        if (extra >= 8) {
            sn->vm_state_size = q2_be64(x);
        }
        if (extra >= 16) {
            sn->disk_size = q2_be64(x + 8);
        }
        if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
            (sn->l1_size > 0 &&
             !table_ok(sn->l1_table_offset, (uint64_t)sn->l1_size * 8, cs,
                       file_size))) {
            q2_snapshots_free(snaps, nb);
            return vd_error_set(err, -EINVAL,
                                "invalid qcow2 image: snapshot %u has a bad "
                                "L1 table",
                                i);
        }
        sn->id = dup_bytes(x + extra, id_len);
        sn->name = dup_bytes(x + extra + id_len, name_len);
        if (extra > 16) {
            /* Kept as is: unknown extra data survives our rewrites. */
            sn->extra_rest_size = extra - 16;
            sn->extra_rest = (uint8_t *)dup_bytes(x + 16, extra - 16);
        }
        if (sn->id == NULL || sn->name == NULL ||
            (extra > 16 && sn->extra_rest == NULL)) {
            q2_snapshots_free(snaps, nb);
            return vd_error_set(err, -ENOMEM, "out of memory");
        }
        pos += entry;
    }
    *out = snaps;
    *used = pos < len ? pos : len;
    return 0;

bad_table:
    q2_snapshots_free(snaps, nb);
    return vd_error_set(err, -EINVAL,
                        "invalid qcow2 image: snapshot table entry %u runs "
                        "past the table or has bad sizes",
                        i);
}

int q2_snapshots_encode(const struct q2_snapshot *snaps, uint32_t nb,
                        uint8_t **out, uint64_t *len)
{
    uint64_t total = 0, pos = 0;
    uint8_t *buf;
    for (uint32_t i = 0; i < nb; i++) {
        total +=
            (sizeof(struct q2_disk_snapshot) + 16 + snaps[i].extra_rest_size +
             strlen(snaps[i].id) + strlen(snaps[i].name) + 7) &
            ~7ULL;
    }
    buf = calloc(1, total ? total : 8);
    if (buf == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nb; i++) {
        const struct q2_snapshot *sn = &snaps[i];
        struct q2_disk_snapshot d;
        size_t id_len = strlen(sn->id), name_len = strlen(sn->name);
        uint8_t *x = buf + pos + sizeof(d);
        d.l1_table_offset = htobe64(sn->l1_table_offset);
        d.l1_size = htobe32(sn->l1_size);
        d.id_str_size = htobe16((uint16_t)id_len);
        d.name_size = htobe16((uint16_t)name_len);
        d.date_sec = htobe32(sn->date_sec);
        d.date_nsec = htobe32(sn->date_nsec);
        d.vm_clock_nsec = htobe64(sn->vm_clock_nsec);
        d.vm_state_size = htobe32(
            sn->vm_state_size > UINT32_MAX ? 0 : (uint32_t)sn->vm_state_size);
        d.extra_data_size = htobe32(16 + sn->extra_rest_size);
        memcpy(buf + pos, &d, sizeof(d));
        q2_put_be64(x, sn->vm_state_size);
        q2_put_be64(x + 8, sn->disk_size);
        if (sn->extra_rest_size > 0) {
            memcpy(x + 16, sn->extra_rest, sn->extra_rest_size);
        }
        x += 16 + sn->extra_rest_size;
        memcpy(x, sn->id, id_len);
        memcpy(x + id_len, sn->name, name_len);
        pos += (sizeof(d) + 16 + sn->extra_rest_size + id_len + name_len + 7) &
               ~7ULL;
    }
    *out = buf;
    *len = total;
    return 0;
}

int q2_l2_entry_decode(uint64_t entry, uint32_t cluster_bits, struct q2_map *m)
{
    memset(m, 0, sizeof(*m));
    if (entry & QCOW_OFLAG_COMPRESSED) {
        uint32_t shift = 62 - (cluster_bits - 8);
        uint64_t mask = (1ULL << (cluster_bits - 8)) - 1;
        uint64_t nsect;
        if (entry & QCOW_OFLAG_COPIED) {
            return -EIO;
        }
        m->type = Q2_COMPRESSED;
        m->host = entry & ((1ULL << shift) - 1);
        nsect = ((entry >> shift) & mask) + 1;
        m->csize = nsect * 512 - (m->host & 511);
        return 0;
    }
    m->host = entry & L2E_OFFSET_MASK;
    m->copied = (entry & QCOW_OFLAG_COPIED) != 0;
    if (entry & QCOW_OFLAG_ZERO) {
        m->type = m->host ? Q2_ZERO_ALLOC : Q2_ZERO_PLAIN;
    } else {
        m->type = m->host ? Q2_NORMAL : Q2_UNALLOCATED;
    }
    if (m->host & ((1ULL << cluster_bits) - 1)) {
        return -EIO;
    }
    return 0;
}

uint64_t q2_refcount_get_entry(const uint8_t *block, uint64_t i, uint32_t order)
{
    switch (order) {
    case 0:
        return (block[i / 8] >> (i % 8)) & 1;
    case 1:
        return (block[i / 4] >> (2 * (i % 4))) & 3;
    case 2:
        return (block[i / 2] >> (4 * (i % 2))) & 15;
    case 3:
        return block[i];
    case 4:
        return q2_be16(block + 2 * i);
    case 5:
        return q2_be32(block + 4 * i);
    default:
        return q2_be64(block + 8 * i);
    }
}

void q2_refcount_set_entry(uint8_t *block, uint64_t i, uint32_t order,
                           uint64_t v)
{
    unsigned shift, mask;
    switch (order) {
    case 0:
    case 1:
    case 2:
        shift = (unsigned)((i % (8u >> order)) << order);
        mask = ((1u << (1u << order)) - 1) << shift;
        block[(i << order) / 8] = (uint8_t)((block[(i << order) / 8] & ~mask) |
                                            (((unsigned)v << shift) & mask));
        break;
    case 3:
        block[i] = (uint8_t)v;
        break;
    case 4:
        q2_put_be16(block + 2 * i, (uint16_t)v);
        break;
    case 5:
        q2_put_be32(block + 4 * i, (uint32_t)v);
        break;
    default:
        q2_put_be64(block + 8 * i, v);
        break;
    }
}

bool q2_host_cluster_ok(const struct q2_state *s, uint64_t off)
{
    return (off & (s->cluster_size - 1)) == 0 && off >= s->cluster_size &&
           vd_range_ok(off, s->cluster_size, s->host_end);
}

bool q2_overlaps_metadata(const struct q2_state *s, uint64_t off, uint64_t len)
{
    return q2_ranges_overlap(off, len, 0, s->cluster_size) ||
           q2_ranges_overlap(off, len, s->l1_offset,
                             (uint64_t)s->l1_size * 8) ||
           q2_ranges_overlap(off, len, s->reftable_offset,
                             s->reftable_size * 8) ||
           q2_ranges_overlap(off, len, s->hdr.snapshots_offset,
                             s->snap_table_bytes);
}
