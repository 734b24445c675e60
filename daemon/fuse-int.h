/* fuse-int.h — private state of the FUSE export, shared by fuse_export.c
 * (session lifecycle, mount point, kernel cache invalidation), fuse_ops.c
 * (the name space) and fuse_io.c (the data path). */
#ifndef VD_FUSE_INT_H
#define VD_FUSE_INT_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "fuse_export.h"

/* Block size the files report (stat, statfs). */
#define FX_BLKSIZE 4096
/* Alignment of data buffers, enough for O_DIRECT images. */
#define FX_BUF_ALIGN 4096

struct vd_volume;
struct vd_fuse_event;
struct vd_fuse_snap;
struct vd_fuse_pt;
struct fuse_open_out;

/* One FUSE open of a volume file; fi->fh points at it. */
struct vd_fuse_handle {
    struct vd_volume *vol;       /* reference held while open */
    atomic_bool dirty;           /* written since the last flush/fsync */
    int32_t backing_id;          /* > 0: served by passthrough */
    struct vd_fuse_handle *prev; /* fx->handles list; fx->handles_lock */
    struct vd_fuse_handle *next;
};

struct vd_fuse_export {
    struct vd_fuse_config cfg; /* cfg.mount_dir points at mount_dir */
    char *mount_dir;
    struct vd_volmgr *mgr;
    struct fuse_session *se;
    unsigned int conn_dev; /* name under /sys/fs/fuse/connections */
    time_t started_at;     /* times of the root directory */

    pthread_t loop_thread; /* runs fuse_session_loop_mt */
    bool loop_started;
    atomic_bool loop_done;    /* the loop returned */
    atomic_bool stopping;     /* handlers must not touch mgr any more */
    atomic_int inflight;      /* handlers between fx_enter/fx_leave */
    atomic_int io_busy;       /* reads and writes being served */
    atomic_uint flush_avg_us; /* running mean of inline flushes */

    pthread_mutex_t handles_lock;
    struct vd_fuse_handle handles; /* list head; handles_lock */

    struct vd_fuse_snap *snap; /* the .snapshots tree (fuse_snap.c) */
    struct vd_fuse_pt *pt;     /* kernel passthrough; NULL when off */

    /* Invalidation worker (fuse_export.c); all under ev_lock. */
    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;      /* worker: queue not empty or ev_stop */
    pthread_cond_t ev_done_cond; /* producers: ev_done advanced */
    struct vd_fuse_event *ev_head, *ev_tail;
    uint64_t ev_queued, ev_done;
    bool ev_stop;
    pthread_t ev_thread;
    bool ev_started;
};

static inline struct vd_fuse_export *req_fx(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* Every handler that touches the volume manager (or a handle's volume)
 * runs between fx_enter and fx_leave, and does not touch it when fx_enter
 * fails: once stop set `stopping` and saw `inflight` reach zero, the volume
 * manager may go away even if the kernel connection outlives the loop. */
static inline bool fx_enter(struct vd_fuse_export *fx)
{
    atomic_fetch_add(&fx->inflight, 1);
    if (atomic_load(&fx->stopping)) {
        atomic_fetch_sub(&fx->inflight, 1);
        return false;
    }
    return true;
}

static inline void fx_leave(struct vd_fuse_export *fx)
{
    atomic_fetch_sub(&fx->inflight, 1);
}

/* fuse_ops.c: the name space and the table of every handler */
extern const struct fuse_lowlevel_ops vd_fuse_ops;

/* fuse_io.c: the data path */
/* An aligned buffer of at least len bytes owned by the calling thread,
 * valid until its next call; NULL when out of memory. */
void *vd_fuse_thread_buf(size_t len);
/* Answer a read of [off, off+size) clamped to vsize with pread(obj, ...)
 * into the thread's buffer; leaves fx (the caller entered it). */
typedef int (*vd_fuse_pread_fn)(void *obj, void *buf, size_t len, uint64_t off);
void vd_fuse_reply_read(fuse_req_t req, struct vd_fuse_export *fx,
                        uint64_t vsize, size_t size, off_t off,
                        vd_fuse_pread_fn pread, void *obj);
/* The prologue of a handler for a volume's inode: enter fx and take a
 * reference to the volume served with inode ino. NULL, with ENOENT
 * answered and fx left, when the export is stopping or no volume is
 * served there; else the caller unrefs the volume and leaves fx. */
struct vd_volume *
vd_fuse_enter_volume(fuse_req_t req, struct vd_fuse_export *fx, fuse_ino_t ino);
void vd_fuse_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vd_fuse_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vd_fuse_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                  struct fuse_file_info *fi);
void vd_fuse_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
                       off_t off, struct fuse_file_info *fi);
void vd_fuse_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void vd_fuse_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                   struct fuse_file_info *fi);
void vd_fuse_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
                       off_t len, struct fuse_file_info *fi);
/* fuse_aio.c: the asynchronous data path (DESIGN NOTES there) */
#define FX_AIO_MAX (128 * 1024) /* larger requests block a worker */
/* From a handler: start a read (bufv NULL) or a write of bufv's payload,
 * size bytes already clamped to the volume, without waiting. true when
 * the request has been or will be answered (fx left then); false when
 * it must take the blocking path, fx still entered. */
bool vd_fuse_try_async(fuse_req_t req, struct vd_fuse_export *fx,
                       struct vd_fuse_handle *h, struct fuse_bufvec *bufv,
                       size_t size, off_t off);
/* Serve a READ (payload NULL) or WRITE of size bytes at off on the open
 * volume file fh for request `unique`, without blocking: true when it is
 * answered or will be from the completion; false when the request must
 * go to libfuse's handler instead (fuse_loop.c). */
bool vd_fuse_fast_io(struct vd_fuse_export *fx, uint64_t unique, uint64_t fh,
                     const void *payload, size_t size, off_t off);
/* The same for an FSYNC of the open volume file fh: a flush the driver
 * can run on the I/O thread (nothing but data to sync). */
bool vd_fuse_fast_fsync(struct vd_fuse_export *fx, uint64_t unique,
                        uint64_t fh);
/* Drop every handle the kernel did not release (after the loop ended). */
void vd_fuse_release_all_handles(struct vd_fuse_export *fx);

/* fuse_loop.c: the session loop (DESIGN NOTES there). Returns when the
 * session ends: 0, -errno, or VD_FUSE_LOOP_UNAVAILABLE without having
 * read anything when io_uring cannot be used. */
#define VD_FUSE_LOOP_UNAVAILABLE 1
int vd_fuse_loop_run(struct vd_fuse_export *fx);

/* fuse_passthrough.c: kernel passthrough (DESIGN NOTES there) */
#define FX_FOPEN_PASSTHROUGH (1u << 7) /* linux/fuse.h 7.40 */
/* After mounting, when cfg.passthrough: amend INIT. 0 or -ENOMEM. */
int vd_fuse_pt_init(struct vd_fuse_export *fx);
/* Before the session (its /dev/fuse descriptor) is destroyed: later
 * releases drop their ids without the kernel (it dropped them too). */
void vd_fuse_pt_detach(struct vd_fuse_export *fx);
void vd_fuse_pt_fini(struct vd_fuse_export *fx); /* accepts none set up */
/* For an open of h->vol (write: for writing), set h->backing_id when the
 * kernel is to serve it (else 0: served normally). -EBUSY when the open
 * cannot agree with the inode's other opens. */
int vd_fuse_pt_open(struct vd_fuse_export *fx, struct vd_fuse_handle *h,
                    bool write);
/* Before h goes: the last open of an inode drops its backing id. */
void vd_fuse_pt_release(struct vd_fuse_export *fx, struct vd_fuse_handle *h);
/* Turn the open reply *out into a passthrough one if h is served so. */
void vd_fuse_pt_open_out(const struct vd_fuse_handle *h,
                         struct fuse_open_out *out);

/* fuse_snap.c: /.snapshots/<volume>/<snapshot>, read-only files */
#define VD_FUSE_SNAPDIR ".snapshots"
int vd_fuse_snap_init(struct vd_fuse_export *fx);
void vd_fuse_snap_fini(struct vd_fuse_export *fx); /* releases handles */
/* true for every inode of the tree (all above volume inodes). */
bool vd_fuse_snap_ino(fuse_ino_t ino);
/* parent is the root (name is VD_FUSE_SNAPDIR) or an inode of the tree. */
void vd_fuse_snap_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
/* getattr (to_set 0) and setattr: only timestamps may be "set". */
void vd_fuse_snap_getattr(fuse_req_t req, fuse_ino_t ino, int to_set);
void vd_fuse_snap_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                          off_t off);
void vd_fuse_snap_open(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi);
void vd_fuse_snap_release(fuse_req_t req, struct fuse_file_info *fi);
void vd_fuse_snap_read(fuse_req_t req, size_t size, off_t off,
                       struct fuse_file_info *fi);
/* Drop every snapshot handle the kernel did not release. */
void vd_fuse_snap_release_all(struct vd_fuse_export *fx);

#endif
