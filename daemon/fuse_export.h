/* fuse_export.h — the FUSE mount: one regular file per served volume.
 *
 * Lowlevel libfuse API with a multi-threaded session loop; every request
 * maps to one call on the volume (daemon/volume.h). */
#ifndef VD_FUSE_EXPORT_H
#define VD_FUSE_EXPORT_H

#include <stdbool.h>
#include <sys/types.h>

struct vd_error;
struct vd_ioloop;
struct vd_volmgr;
struct vd_fuse_export;

struct vd_fuse_config {
    const char *mount_dir;
    uid_t uid; /* owner of the volume files */
    gid_t gid;
    mode_t mode;      /* permission bits of the volume files, e.g. 0660 */
    int threads;      /* worker threads for the session loop */
    bool passthrough; /* let the kernel serve raw volumes' reads and
                         writes from their image files (Linux 6.9+) */
    bool host_cache;  /* images use the host page cache (no O_DIRECT):
                         write payloads need no aligned copy */
    struct vd_ioloop *ioloop; /* reads /dev/fuse and serves the fast
                                 path (fuse_loop.c); NULL = libfuse's
                                 own loop */
    bool fuse_uring;          /* ask the kernel for FUSE over io_uring
                                 (fuse_uring.c); falls back to /dev/fuse */
};

/* Clean a dead mount a killed daemon left at mount_dir (ENOTCONN), and
 * refuse (-EBUSY) if a live filesystem is mounted there. Creates the
 * directory if missing. */
int vd_fuse_prepare_mountpoint(const char *mount_dir, struct vd_error *err);

/* Mount and start serving in background threads. */
int vd_fuse_export_start(const struct vd_fuse_config *cfg,
                         struct vd_volmgr *mgr, struct vd_fuse_export **out,
                         struct vd_error *err);
/* Unmount, stop the loop and join its threads; accepts NULL. */
void vd_fuse_export_stop(struct vd_fuse_export *fx);

#endif
