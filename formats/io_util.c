/* io_util.c — pread/pwrite loops that never return short, and the host
 * file calls of the drivers, each passing a fault injection hook
 * (fault.h; one relaxed load when nothing is armed). */
#include "io_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"

static int pread_loop(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int pwrite_loop(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int vd_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    int ret = vd_fault_check(VD_FAULT_READ, &len);
    return ret < 0 ? ret : pread_loop(fd, buf, len, off);
}

/* A write of class c: whole, failed, or (fault injection) torn. */
static int pwrite_class(int fd, const void *buf, size_t len, uint64_t off,
                        enum vd_fault_class c)
{
    size_t part = len;
    int ret = vd_fault_check(c, &part);
    if (ret < 0) {
        return ret;
    }
    if (ret > 0) {
        ret = pwrite_loop(fd, buf, part, off);
        return ret < 0 ? ret : -ENOSPC;
    }
    return pwrite_loop(fd, buf, len, off);
}

int vd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    return pwrite_class(fd, buf, len, off, VD_FAULT_DATA_WRITE);
}

int vd_meta_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    return pwrite_class(fd, buf, len, off, VD_FAULT_META_WRITE);
}

int vd_fdatasync(int fd)
{
    size_t len = 0;
    int ret = vd_fault_check(VD_FAULT_FLUSH, &len);
    if (ret < 0) {
        return ret;
    }
    return fdatasync(fd) < 0 ? -errno : 0;
}

int vd_fdatasync_sticky(int fd, _Atomic bool *failed)
{
    int ret;
    if (atomic_load(failed)) {
        return -EIO;
    }
    ret = vd_fdatasync(fd);
    if (ret < 0) {
        atomic_store(failed, true);
    }
    return ret;
}

int vd_ftruncate(int fd, uint64_t size)
{
    size_t len = 0;
    int ret = vd_fault_check(VD_FAULT_RESIZE, &len);
    if (ret < 0) {
        return ret;
    }
    return ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
}

int vd_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
    size_t n = 0;
    int ret = vd_fault_check(VD_FAULT_RESIZE, &n);
    if (ret < 0) {
        return ret;
    }
    return fallocate(fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
}

/* QEMU's file-posix locking: byte 100+i claims permission bit i, byte
 * 200+i refuses to share it. All are read locks; a conflict shows as a
 * write lock that could not be placed. Bits: 0 consistent read, 1 write,
 * 2 write unchanged, 3 resize. */
#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200
#define PERM_CONSISTENT_READ 0x1u
#define PERM_WRITE 0x2u
#define PERM_WRITE_UNCHANGED 0x4u
#define PERM_RESIZE 0x8u
#define PERM_ALL 0xfu

static int ofd_lock(int fd, int cmd, short type, off_t start)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = start,
        .l_len = 1,
    };
    if (fcntl(fd, cmd, &fl) < 0) {
        /* a conflicting lock is "in use", not a retry hint */
        return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
    }
    if (cmd == F_OFD_GETLK && fl.l_type != F_UNLCK) {
        return -EBUSY;
    }
    return 0;
}

int vd_lock_image_fd(int fd, bool write)
{
    return vd_lock_image_fd_mode(fd, write ? VD_LOCK_WRITE : VD_LOCK_READ);
}

int vd_lock_image_fd_mode(int fd, enum vd_lock_mode mode)
{
    unsigned perm = PERM_CONSISTENT_READ;
    unsigned shared = PERM_ALL;
    int ret;
    if (mode == VD_LOCK_WRITE) {
        perm |= PERM_WRITE | PERM_WRITE_UNCHANGED | PERM_RESIZE;
    }
    if (mode != VD_LOCK_READ) {
        shared = PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED;
    }
    for (unsigned i = 0; i < 4; i++) {
        /* Someone refuses to share what we want, or uses what we won't share.
         */
        if ((perm & (1u << i)) && (ret = ofd_lock(fd, F_OFD_GETLK, F_WRLCK,
                                                  LOCK_SHARED_BASE + i)) < 0) {
            return ret;
        }
        if (!(shared & (1u << i)) && (ret = ofd_lock(fd, F_OFD_GETLK, F_WRLCK,
                                                     LOCK_PERM_BASE + i)) < 0) {
            return ret;
        }
    }
    for (unsigned i = 0; i < 4; i++) {
        if ((perm & (1u << i)) && (ret = ofd_lock(fd, F_OFD_SETLK, F_RDLCK,
                                                  LOCK_PERM_BASE + i)) < 0) {
            return ret;
        }
        if (!(shared & (1u << i)) &&
            (ret = ofd_lock(fd, F_OFD_SETLK, F_RDLCK, LOCK_SHARED_BASE + i)) <
                0) {
            return ret;
        }
    }
    return 0;
}

int vd_open_regular(const char *path, int flags)
{
    struct stat st;
    int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK);
    int ret;
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = -EINVAL;
        goto fail;
    }
    if (fcntl(fd, F_SETFL, flags & ~O_NONBLOCK & (O_APPEND | O_DIRECT)) < 0) {
        ret = -errno;
        goto fail;
    }
    return fd;

fail:
    close(fd);
    return ret;
}

int vd_hostfile_open(struct vd_hostfile *hf, const char *path, bool writable,
                     bool direct)
{
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    int fd = vd_open_regular(path, flags);
    hf->fd = -1;
    hf->dfd = -1;
    hf->mem_align = 4096;
    hf->off_align = 4096;
    if (fd < 0) {
        return fd;
    }
    hf->fd = fd;
    if (direct) {
        struct statx stx;
        char self[32];
        /* Reopen the file just checked, not whatever path names now. */
        snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
        hf->dfd = open(self, flags | O_DIRECT); /* EINVAL: not supported */
        if (hf->dfd >= 0 &&
            statx(hf->dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
            (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align != 0 &&
            stx.stx_dio_offset_align != 0) {
            hf->mem_align = stx.stx_dio_mem_align;
            hf->off_align = stx.stx_dio_offset_align;
        }
    }
    return 0;
}

int vd_hostfile_links(const struct vd_hostfile *hf)
{
    struct stat st;
    if (fstat(hf->fd, &st) < 0) {
        return -errno;
    }
    return st.st_nlink > INT_MAX ? INT_MAX : (int)st.st_nlink;
}

void vd_hostfile_close(struct vd_hostfile *hf)
{
    if (hf->dfd >= 0) {
        close(hf->dfd);
    }
    if (hf->fd >= 0) {
        close(hf->fd);
    }
    hf->fd = hf->dfd = -1;
}

/* Which fd suits this request, and whether it needs a bounce buffer. */
static int pick_fd(const struct vd_hostfile *hf, const void *buf, size_t len,
                   uint64_t off, bool *bounce)
{
    *bounce = false;
    if (hf->dfd < 0 || off % hf->off_align != 0 || len % hf->off_align != 0) {
        return hf->fd;
    }
    *bounce = (uintptr_t)buf % hf->mem_align != 0;
    return hf->dfd;
}

#define BOUNCE_MAX (4u << 20)

int vd_hostfile_pread(struct vd_hostfile *hf, void *buf, size_t len,
                      uint64_t off)
{
    bool bounce;
    int fd = pick_fd(hf, buf, len, off, &bounce);
    void *tmp = NULL;
    int ret = vd_fault_check(VD_FAULT_READ, &len);
    if (ret < 0) {
        return ret;
    }
    if (!bounce) {
        ret = pread_loop(fd, buf, len, off);
        /* A direct read that ends short at an unaligned end of file
         * continues unaligned: finish it through the page cache. */
        return ret == -EINVAL && fd != hf->fd
                   ? pread_loop(hf->fd, buf, len, off)
                   : ret;
    }
    if (len > BOUNCE_MAX || posix_memalign(&tmp, hf->mem_align, len) != 0) {
        return pread_loop(hf->fd, buf, len, off);
    }
    ret = pread_loop(fd, tmp, len, off);
    if (ret == 0) {
        memcpy(buf, tmp, len);
    }
    free(tmp);
    return ret;
}

int vd_hostfile_pwrite(struct vd_hostfile *hf, const void *buf, size_t len,
                       uint64_t off)
{
    bool bounce;
    int fd = pick_fd(hf, buf, len, off, &bounce);
    void *tmp = NULL;
    size_t part = len;
    int ret = vd_fault_check(VD_FAULT_DATA_WRITE, &part);
    if (ret < 0) {
        return ret;
    }
    if (ret > 0) { /* injected torn write, through the page cache */
        ret = pwrite_loop(hf->fd, buf, part, off);
        return ret < 0 ? ret : -ENOSPC;
    }
    if (!bounce) {
        return pwrite_loop(fd, buf, len, off);
    }
    if (len > BOUNCE_MAX || posix_memalign(&tmp, hf->mem_align, len) != 0) {
        return pwrite_loop(hf->fd, buf, len, off);
    }
    memcpy(tmp, buf, len);
    ret = pwrite_loop(fd, tmp, len, off);
    free(tmp);
    return ret;
}
