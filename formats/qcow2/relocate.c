/* relocate.c — keep a copied qcow2 image's backing reference working.
 *
 * A backing file name may be relative to the image's own directory. When
 * an image is copied elsewhere (an import into the data directory), such
 * a name is rewritten as the absolute path it meant in the directory the
 * image came from. The name stays in the first cluster, where QEMU keeps
 * it; the header is rewritten in place and synced. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_util.h"
#include "vd_error.h"

#define Q2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define OFF_BACKING_OFFSET 8
#define OFF_BACKING_SIZE 16
#define OFF_CLUSTER_BITS 20
#define HEADER_MIN 72

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int qcow2_relocate(const char *location, const char *orig_dir,
                   struct vd_error *err)
{
    uint8_t hdr[HEADER_MIN];
    char name[1024], abs[PATH_MAX + 1024];
    int fd, ret = 0;

    fd = open(location, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return vd_error_set(err, -errno, "cannot open '%s': %s", location,
                            strerror(errno));
    }
    if ((ret = vd_pread_full(fd, hdr, sizeof(hdr), 0)) < 0) {
        vd_error_set(err, ret, "reading '%s': %s", location, strerror(-ret));
        goto out;
    }
    uint64_t boff = be64(hdr + OFF_BACKING_OFFSET);
    uint32_t bsize = be32(hdr + OFF_BACKING_SIZE);
    uint32_t cbits = be32(hdr + OFF_CLUSTER_BITS);
    if (be32(hdr) != Q2_MAGIC || boff == 0) {
        goto out; /* not qcow2 (open reports it) or no backing file */
    }
    uint64_t cs = cbits >= 9 && cbits <= 21 ? 1ull << cbits : 0;
    if (cs == 0 || bsize == 0 || bsize >= sizeof(name) || boff > cs ||
        bsize > cs - boff) {
        ret = vd_error_set(err, -EINVAL,
                           "'%s': backing file name lies "
                           "outside the first cluster",
                           location);
        goto out;
    }
    if ((ret = vd_pread_full(fd, name, bsize, boff)) < 0) {
        vd_error_set(err, ret, "reading '%s': %s", location, strerror(-ret));
        goto out;
    }
    name[bsize] = '\0';
    if (memchr(name, '\0', bsize) != NULL) {
        ret = vd_error_set(err, -EINVAL,
                           "'%s': backing file name holds a "
                           "NUL byte",
                           location);
        goto out;
    }
    if (name[0] == '/' || strstr(name, "://") != NULL || strchr(name, ':')) {
        goto out; /* absolute, or a protocol the driver will refuse */
    }
    int n = snprintf(abs, sizeof(abs), "%s/%s", orig_dir, name);
    if (n < 0 || (size_t)n >= sizeof(abs) || (uint64_t)n > cs - boff) {
        ret = vd_error_set(err, -ENAMETOOLONG,
                           "'%s': the absolute backing "
                           "file name does not fit the first cluster",
                           location);
        goto out;
    }
    if ((ret = vd_meta_pwrite(fd, abs, (size_t)n, boff)) < 0) {
        vd_error_set(err, ret, "rewriting '%s': %s", location, strerror(-ret));
        goto out;
    }
    put_be32(hdr + OFF_BACKING_SIZE, (uint32_t)n);
    if ((ret = vd_meta_pwrite(fd, hdr + OFF_BACKING_SIZE, 4,
                              OFF_BACKING_SIZE)) < 0 ||
        fsync(fd) < 0) {
        ret = vd_error_set(err, ret < 0 ? ret : -errno, "rewriting '%s'",
                           location);
    }
out:
    close(fd);
    return ret;
}
