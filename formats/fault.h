/* fault.h — fault injection for the drivers' host-file I/O. TEST ONLY.
 *
 * In the spirit of QEMU's blkdebug and SQLite's fault simulation: a test
 * arms one rule, "the nth operation of this class fails with this error",
 * runs a workload, and sees how the driver copes. Every host-file
 * operation of the file drivers passes a hook (io_util.c, and completions
 * of asynchronous requests in hostaio.c) that costs one relaxed atomic
 * load while nothing is armed. Production code never arms it; the daemon
 * arms it only from VDISKD_FAULT (vd_fault_arm_env), for functional tests.
 *
 * Counting starts at arming: with nth = 0 nothing fails and
 * vd_fault_count tells how many operations of each class a workload
 * performs, so a test can then fail each of them in turn. */
#ifndef VD_FAULT_H
#define VD_FAULT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vd_fault_class {
    VD_FAULT_READ,       /* vd_pread_full, vd_hostfile_pread, async reads */
    VD_FAULT_DATA_WRITE, /* guest data and other plain writes:
                            vd_hostfile_pwrite, vd_pwrite_full, async
                            writes */
    VD_FAULT_META_WRITE, /* image metadata: vd_meta_pwrite */
    VD_FAULT_FLUSH,      /* vd_fdatasync */
    VD_FAULT_RESIZE,     /* vd_ftruncate, vd_fallocate */
    VD_FAULT_NCLASSES
};

/* An error value besides a positive errno (EIO, ENOSPC, ...): a write stores
 * its first half (whole 512-byte sectors; nothing when shorter than two) and
 * then fails with ENOSPC, as a file system that fills up mid-write. */
#define VD_FAULT_SHORT (-1)

/* Rule flag: from the fault on, every later write, flush and resize (any class)
 * fails with EIO too: the disk is gone, and what it holds is what a crash at
 * that point would leave (short of lost page cache) */
#define VD_FAULT_STICKY 1u

/* Count operations from now on, and make the nth (1-based) operation of
 * class c fail with error; nth = 0 only counts. Replaces any earlier rule
 * and resets the counts. Not to be called while I/O is in flight. */
void vd_fault_arm(enum vd_fault_class c, uint64_t nth, int error,
                  unsigned flags);
/* Stop counting and failing. */
void vd_fault_disarm(void);
/* Operations of class c seen since arming. */
uint64_t vd_fault_count(enum vd_fault_class c);
/* Whether the armed rule has fired. */
bool vd_fault_fired(void);
/* Arm from a text rule "class:nth:error[:sticky]", class one of read,
 * data-write, meta-write, flush, resize; error EIO, ENOSPC or short.
 * NULL or "" arms nothing. 0, or -EINVAL for a malformed rule. */
int vd_fault_arm_spec(const char *spec);
/* vd_fault_arm_spec(getenv("VDISKD_FAULT")). */
int vd_fault_arm_env(void);
const char *vd_fault_class_name(enum vd_fault_class c);

/* ---- hooks, for io_util.c and hostaio.c ---- */
extern int vd_fault_armed_; /* nonzero while a rule is armed */
/* Slow path: count one operation of class c; 0 to let it run, -errno to
 * fail it, or 1 for a write that is to store only *len (shortened here)
 * and then fail with -ENOSPC. */
int vd_fault_hit_(enum vd_fault_class c, size_t *len);

static inline int vd_fault_check(enum vd_fault_class c, size_t *len)
{
    if (__builtin_expect(__atomic_load_n(&vd_fault_armed_, __ATOMIC_RELAXED),
                         0)) {
        return vd_fault_hit_(c, len);
    }
    return 0;
}

/* For a completed asynchronous request of class c that returned ret:
 * the error to report instead (the operation itself has run). */
static inline int vd_fault_complete(enum vd_fault_class c, int ret)
{
    size_t len = 0;
    int f = vd_fault_check(c, &len);
    return ret < 0 || f == 0 ? ret : f > 0 ? -ENOSPC : f;
}

#endif
