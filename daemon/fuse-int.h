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
struct vd_fuse_uring;
struct vd_fuse_loop;
struct iovec;
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
    time_t started_at;     /* times of the .snapshots directory */
    /* mtime and ctime of the root: when a volume last came or went, in
     * nanoseconds since the epoch (started_at's before the first). */
    _Atomic int64_t dir_changed_ns;

    pthread_t loop_thread; /* runs fuse_session_loop_mt */
    bool loop_started;
    atomic_bool loop_done;    /* the loop returned */
    atomic_bool stopping;     /* handlers must not touch mgr any more */
    atomic_int inflight;      /* handlers between fx_enter/fx_leave */
    atomic_int io_busy;       /* reads and writes being served */
    atomic_uint flush_avg_us; /* running mean of inline flushes */

    pthread_mutex_t handles_lock;
    struct vd_fuse_handle handles; /* list head; handles_lock */

    struct vd_fuse_snap *snap;   /* the .snapshots tree (fuse_snap.c) */
    struct vd_fuse_uring *uring; /* FUSE over io_uring; NULL = off */
    struct vd_fuse_pt *pt;       /* kernel passthrough; NULL when off */

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
/* fuse_ops.c: the attributes of a volume's file, its owner and mode
 * among them (which its snapshot directory follows, fuse_snap.c). */
void vd_fuse_volume_stat(struct vd_fuse_export *fx, struct vd_volume *vol,
                         struct stat *st);
/* The prologue of a handler for a volume's inode: enter fx and take a
 * reference to the volume served with inode ino. NULL, with ENOENT
 * answered and fx left, when the export is stopping or no volume is
 * served there; else the caller unrefs the volume and leaves fx. */
struct vd_volume *
vd_fuse_enter_volume(fuse_req_t req, struct vd_fuse_export *fx, fuse_ino_t ino);
void vd_fuse_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Open vol (the caller's reference, taken over) for fi; the caller has
 * entered fx, which is left. created: the entry of a file just created,
 * answered as a CREATE; NULL answers an OPEN. */
void vd_fuse_open_volume(fuse_req_t req, struct vd_fuse_export *fx,
                         struct vd_volume *vol, struct fuse_file_info *fi,
                         const struct fuse_entry_param *created);
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
/* fuse_names.c: files are volumes (DESIGN NOTES there) */
/* Set while a handler changes volumes on behalf of the mount: the
 * kernel holds the directory's lock until the handler answers, so the
 * invalidations the change queues must not be waited for (fuse_export.c
 * note 3); the kernel learns of the change from the answer itself. */
extern _Thread_local bool vd_fuse_in_name_op;
/* truncate/ftruncate of a volume file: 0 or an errno, *st filled. */
int vd_fuse_truncate(struct vd_fuse_export *fx, fuse_ino_t ino, off_t size,
                     struct stat *st);
void vd_fuse_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                   mode_t mode, dev_t rdev);
void vd_fuse_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                    mode_t mode, struct fuse_file_info *fi);
void vd_fuse_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void vd_fuse_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                    fuse_ino_t newparent, const char *newname,
                    unsigned int flags);
/* fuse_seek.c: SEEK_DATA/SEEK_HOLE from block status (DESIGN NOTES there) */
typedef int (*vd_fuse_status_fn)(void *obj, uint64_t off, uint64_t len,
                                 uint64_t *pnum);
/* Where the next data (SEEK_DATA) or hole (SEEK_HOLE) at or after off lies
 * in a file of size bytes whose runs status describes: 0 and *out, or
 * -ENXIO (no data after off, or off outside the file), -EINVAL, -errno. */
int vd_fuse_seek(vd_fuse_status_fn status, void *obj, uint64_t size, off_t off,
                 int whence, off_t *out);
/* Answer an lseek request with vd_fuse_seek over obj (status, size): the
 * reply, or the error. */
void vd_fuse_reply_seek(fuse_req_t req, vd_fuse_status_fn status, void *obj,
                        uint64_t size, off_t off, int whence);
void vd_fuse_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                   struct fuse_file_info *fi);
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

/* Give the loop lp a request that came through the ring (fuse_uring.c),
 * laid out by parts as a read of /dev/fuse would have returned it: served
 * on the I/O thread or queued for the workers. false when out of memory.
 * I/O thread only. */
bool vd_fuse_loop_deliver(struct vd_fuse_loop *lp, const struct iovec *parts,
                          int n);

/* fuse_uring.c: FUSE over io_uring (DESIGN NOTES there) */
/* With --fuse-uring, after the mount: hook the session's replies. 0, or
 * -errno when the ring cannot be used (logged; /dev/fuse then). */
int vd_fuse_uring_setup(struct vd_fuse_export *fx);
/* The loop read the kernel's INIT request (len bytes at req). */
void vd_fuse_uring_init_request(struct vd_fuse_export *fx, const void *req,
                                size_t len);
/* The loop serving ring requests from now on; NULL when it ends. */
void vd_fuse_uring_attach(struct vd_fuse_export *fx, struct vd_fuse_loop *lp);
/* Write libfuse's reply iov to the kernel: through the ring when its
 * request came that way, else to fd; INIT's reply asks for the ring.
 * Returns what writev would. Any thread. */
ssize_t vd_fuse_uring_writev(struct vd_fuse_export *fx, int fd,
                             struct iovec *iov, int count);
/* Answer iov (out header first) if it is for a request that came through
 * the ring; false when it must be written to /dev/fuse. Any thread. */
bool vd_fuse_uring_reply(struct vd_fuse_export *fx, const struct iovec *iov,
                         int count);
/* Whether the ring's commands keep the device open, so that closing the
 * session does not end the connection (stop then aborts it). */
bool vd_fuse_uring_holds_device(const struct vd_fuse_export *fx);
/* After the connection ended; accepts fx->uring NULL. */
void vd_fuse_uring_free(struct vd_fuse_export *fx);
/* fuse_passthrough.c: kernel passthrough (DESIGN NOTES there) */
#define FX_FOPEN_PASSTHROUGH (1u << 7) /* linux/fuse.h 7.40 */
/* After mounting, when cfg.passthrough: amend INIT. 0 or -ENOMEM. */
int vd_fuse_pt_init(struct vd_fuse_export *fx);
/* Before the session (its /dev/fuse descriptor) is destroyed: later
 * releases drop their ids without the kernel (it dropped them too). */
void vd_fuse_pt_detach(struct vd_fuse_export *fx);
void vd_fuse_pt_fini(struct vd_fuse_export *fx); /* accepts none set up */
/* A reply libfuse is about to write: INIT's asks for passthrough. */
void vd_fuse_pt_writing(struct vd_fuse_export *fx, struct iovec *iov,
                        int count);
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
void vd_fuse_snap_lseek(fuse_req_t req, off_t off, int whence,
                        struct fuse_file_info *fi);
/* Drop every snapshot handle the kernel did not release. */
void vd_fuse_snap_release_all(struct vd_fuse_export *fx);

#endif
