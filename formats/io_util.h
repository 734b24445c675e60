/* io_util.h — full-length pread/pwrite and checked arithmetic shared by
 * the file-based drivers. All return 0 or -errno. */
#ifndef VD_IO_UTIL_H
#define VD_IO_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read exactly len bytes; bytes past end of file read as zeroes. */
int vd_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* Write exactly len bytes, retrying short writes and EINTR. */
int vd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* The same for an image's metadata (tables, header): fault injection
 * (fault.h) counts these apart from guest data writes. */
int vd_meta_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/* fdatasync, ftruncate and fallocate as 0 or -errno, with the fault
 * injection hooks of their class. */
int vd_fdatasync(int fd);
/* vd_fdatasync whose failure sticks: once it failed, *failed is set and
 * every later call answers -EIO without syncing. After a failed
 * fdatasync the kernel may have dropped the pages it could not write and
 * marked them clean, so a later fdatasync that succeeds would vouch for
 * data that is gone. *failed belongs to the open file; any thread. */
int vd_fdatasync_sticky(int fd, _Atomic bool *failed);
int vd_ftruncate(int fd, uint64_t size);
int vd_fallocate(int fd, int mode, uint64_t off, uint64_t len);

/* A host file opened twice: buffered, and with O_DIRECT where the file
 * system allows it. Requests whose offset and length suit the device go
 * to the direct fd (through an aligned bounce buffer when the caller's
 * memory is not aligned); others take the buffered fd, which the kernel
 * keeps coherent with direct I/O. */
struct vd_hostfile {
    int fd;             /* buffered, always open; -1 when closed */
    int dfd;            /* O_DIRECT, or -1 when not in use */
    uint32_t mem_align; /* buffer alignment direct I/O needs */
    uint32_t off_align; /* offset and length alignment direct I/O needs */
};

/* Open a regular file for images and imports: flags | O_CLOEXEC, opened
 * without blocking (a FIFO or device would stall the caller in open or
 * read), and refused with -EINVAL unless it is a regular file. Returns
 * the fd (blocking mode again) or -errno. */
int vd_open_regular(const char *path, int flags);

/* Open path read-only or read-write; direct asks for the O_DIRECT fd
 * (silently not used when the file system refuses it). 0 or -errno;
 * -EINVAL when path is not a regular file. */
int vd_hostfile_open(struct vd_hostfile *hf, const char *path, bool writable,
                     bool direct);
void vd_hostfile_close(struct vd_hostfile *hf);
/* How many directory entries the open file still has (st_nlink): 0 once
 * it was deleted, or -errno. One fstat. */
int vd_hostfile_links(const struct vd_hostfile *hf);
int vd_hostfile_pread(struct vd_hostfile *hf, void *buf, size_t len,
                      uint64_t off);
int vd_hostfile_pwrite(struct vd_hostfile *hf, const void *buf, size_t len,
                       uint64_t off);

/* Take QEMU-compatible byte-range (OFD) locks on an image file so QEMU's
 * tools see it as in use: readers claim consistent-read; writers also
 * claim write and refuse to share write and resize. -EBUSY (with a
 * message naming the conflict left to the caller) when another process
 * holds a conflicting lock. */
int vd_lock_image_fd(int fd, bool write);

/* The same locks by role. A backing file is read like a reader's, but
 * refuses to share write and resize as QEMU does for backing files: an
 * image under a live overlay must not change. Readers (such as a snapshot
 * view beside the volume's writer) share everything. */
enum vd_lock_mode {
    VD_LOCK_READ,    /* consistent read; others may do anything */
    VD_LOCK_BACKING, /* consistent read; refuses others' write, resize */
    VD_LOCK_WRITE,   /* everything; shares only read, write-unchanged */
};
int vd_lock_image_fd_mode(int fd, enum vd_lock_mode mode);

/* a + b into *out; false on overflow. */
static inline bool vd_add_overflows(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

/* true when [off, off+len) lies within [0, limit). */
static inline bool vd_range_ok(uint64_t off, uint64_t len, uint64_t limit)
{
    uint64_t end;
    return !vd_add_overflows(off, len, &end) && end <= limit;
}

#endif
