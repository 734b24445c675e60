/* create.c — making a new version 3 qcow2 image.
 *
 * Layout: header cluster (with extensions and backing file name), refcount
 * table, refcount blocks covering all of these, then the L1 table. Any
 * preallocation is then done through the driver itself. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "qcow2-int.h"
#include "vd_error.h"

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* Header extensions and backing file name into the header cluster. */
static int build_header(uint8_t *buf, uint64_t cs, struct q2_header *h,
                        const struct vd_create_opts *o, struct vd_error *err)
{
    size_t pos = QCOW2_OUR_HEADER_LEN;
    if (o->backing_format != NULL) {
        size_t n = strlen(o->backing_format);
        if (n == 0 || n >= sizeof(h->backing_format)) {
            return vd_error_set(err, -EINVAL,
                                "backing format name '%s' is "
                                "too long",
                                o->backing_format);
        }
        q2_put_be32(buf + pos, QCOW2_EXT_BACKING_FORMAT);
        q2_put_be32(buf + pos + 4, (uint32_t)n);
        memcpy(buf + pos + 8, o->backing_format, n);
        pos += 8 + ((n + 7) & ~(size_t)7);
    }
    pos += 8; /* end-of-extensions marker: already zero */
    if (o->backing_file != NULL) {
        size_t n = strlen(o->backing_file);
        if (n == 0 || n > QCOW2_MAX_BACKING_NAME || pos + n > cs) {
            return vd_error_set(err, -EINVAL,
                                "backing file name '%s' does "
                                "not fit in the header cluster",
                                o->backing_file);
        }
        memcpy(buf + pos, o->backing_file, n);
        h->backing_file_offset = pos;
        h->backing_file_size = (uint32_t)n;
    }
    q2_header_encode(h, buf);
    return 0;
}

int qcow2_create(const char *location, const struct vd_create_opts *o,
                 struct vd_error *err)
{
    uint64_t cs =
        o->cluster_size ? o->cluster_size : 1ULL << QCOW_DEFAULT_CLUSTER_BITS;
    uint32_t cb = 0;
    uint64_t l1_entries, l1c, nb = 0, nt = 0, total, per;
    struct q2_header h;
    uint8_t *buf = NULL;
    int fd = -1, ret;

    while ((1ULL << cb) < cs) {
        cb++;
    }
    if ((1ULL << cb) != cs || cb < QCOW_MIN_CLUSTER_BITS ||
        cb > QCOW_MAX_CLUSTER_BITS) {
        return vd_error_set(err, -EINVAL,
                            "cluster size %llu is not a power "
                            "of two between 512 and 2 MiB",
                            (unsigned long long)cs);
    }
    if (o->prealloc != VD_PREALLOC_OFF && o->backing_file != NULL) {
        return vd_error_set(err, -EINVAL,
                            "preallocation cannot be combined "
                            "with a backing file");
    }
    l1_entries = div_up(o->size, cs * (cs / 8));
    if (o->size > (1ULL << 62) || l1_entries * 8 > QCOW2_MAX_L1_BYTES) {
        return vd_error_set(err, -EFBIG,
                            "size %llu is too large for "
                            "%llu-byte clusters",
                            (unsigned long long)o->size,
                            (unsigned long long)cs);
    }
    l1c = div_up(l1_entries * 8, cs);
    per = cs * 8 / 16;
    for (;;) {
        total = 1 + nt + nb + l1c;
        uint64_t nb2 = div_up(total, per), nt2 = div_up(nb2 * 8, cs);
        if (nb2 == nb && nt2 == nt) {
            break;
        }
        nb = nb2;
        nt = nt2;
    }

    memset(&h, 0, sizeof(h));
    h.version = 3;
    h.cluster_bits = cb;
    h.size = o->size;
    h.l1_size = (uint32_t)l1_entries;
    h.l1_table_offset = (1 + nt + nb) * cs;
    h.refcount_table_offset = cs;
    h.refcount_table_clusters = (uint32_t)nt;
    h.refcount_order = 4;
    h.header_length = QCOW2_OUR_HEADER_LEN;
    h.compression_type = QCOW2_COMPRESSION_DEFLATE;

    buf = calloc(1, (size_t)cs);
    if (buf == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    ret = build_header(buf, cs, &h, o, err);
    if (ret < 0) {
        free(buf);
        return ret;
    }
    fd = open(location, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        free(buf);
        return vd_error_set(err, -errno, "cannot create '%s': %s", location,
                            strerror(errno));
    }
    ret = vd_lock_image_fd(fd, true);
    if (ret == 0 && ftruncate(fd, (off_t)(total * cs)) < 0) {
        ret = -errno;
    }
    if (ret == 0) {
        ret = vd_meta_pwrite(fd, buf, cs, 0);
    }
    for (uint64_t i = 0; ret == 0 && i < nb; i++) {
        uint8_t e[8];
        memset(buf, 0, cs);
        for (uint64_t c = i * per; c < (i + 1) * per && c < total; c++) {
            q2_refcount_set_entry(buf, c - i * per, 4, 1);
        }
        ret = vd_meta_pwrite(fd, buf, cs, (1 + nt + i) * cs);
        q2_put_be64(e, (1 + nt + i) * cs);
        if (ret == 0) {
            ret = vd_meta_pwrite(fd, e, 8, cs + 8 * i);
        }
    }
    if (ret == 0 && fsync(fd) < 0) {
        ret = -errno;
    }
    close(fd);
    free(buf);
    if (ret < 0) {
        unlink(location);
        return vd_error_set(err, ret, "cannot write '%s': %s", location,
                            strerror(-ret));
    }

    if (o->prealloc != VD_PREALLOC_OFF) {
        struct vd_open_opts oo = {.readonly = false};
        struct vd_image *img = NULL;
        ret = vd_image_open("qcow2", location, &oo, &img, err);
        if (ret == 0) {
            struct q2_state *s = img->opaque;
            pthread_mutex_lock(&s->lock);
            ret = q2_preallocate(s, (int)o->prealloc);
            pthread_mutex_unlock(&s->lock);
            int r2 = vd_image_close(img);
            ret = ret < 0 ? ret : r2;
            if (ret < 0) {
                vd_error_set(err, ret, "preallocating '%s': %s", location,
                             strerror(-ret));
            }
        }
        if (ret < 0) {
            unlink(location);
            return ret;
        }
    }
    return 0;
}
