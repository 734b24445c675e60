/* volume.h — the volume manager: the only code that changes volumes.
 *
 * Keeps the catalog and the image files in step, owns every open image,
 * and gives the FUSE export reference-counted volumes whose I/O passes
 * the volume's I/O gate. Called from the API thread and FUSE workers. */
#ifndef VD_VOLUME_H
#define VD_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "catalog.h"
#include "catalog_qos.h"
#include "qos.h"
#include "vd_driver.h"

#include "iostats.h" /* struct vd_iostats_snap */

struct vd_error;
struct vd_ioloop;
struct vd_volmgr;
struct vd_volume;

struct vd_volmgr_config {
    const char *data_dir;               /* canonical path */
    const char *mount_dir;              /* where the FUSE files appear */
    const char *const *import_dirs;     /* NULL-terminated; NULL = none */
    const char *const *nbd_socket_dirs; /* canonical dirs NBD unix sockets
                                           may be in; NULL-terminated;
                                           NULL = no unix sockets */
    const char *const *pool_allow;      /* pools of a distributed store
                                           (RBD) new and attached volumes
                                           may use; NULL-terminated; NULL
                                           = none */
    const char *default_format;         /* a file driver that can create;
                                           NULL = chosen from the registry */
    /* Owner and permission bits of new volumes' files, and of volumes
     * that have none recorded (--owner, --file-mode). */
    uid_t default_uid;
    gid_t default_gid;
    mode_t default_mode;
    bool host_cache;          /* false: image data I/O uses O_DIRECT */
    struct vd_ioloop *ioloop; /* given to every image opened for a
                                 volume; NULL = synchronous I/O */
};

/* A change of a volume file's owner or mode (create, PATCH, chown and
 * chmod on the mount). Unset members keep the current value (on create:
 * the daemon's default). */
struct vd_owner_req {
    const char *owner;               /* "user[:group]", names or numbers; a user
                                        without a group takes its primary group;
                                        NULL = unset */
    bool has_uid, has_gid, has_mode; /* applied after owner */
    uint32_t uid, gid;
    uint32_t mode; /* permission bits, at most 0777 */
};

/* What POST /volumes asks for. Unset strings are NULL, unset numbers 0. */
struct vd_volume_spec {
    const char *name;
    uint64_t size;
    const char *format;       /* NULL = config default */
    const char *backend_type; /* NULL or "file" = local image; else a
                                 remote driver's name ("nbd") */
    const char *backend_uri;  /* for remote backends */
    /* Remote backends addressed by parts (the driver's locate): which of
     * the operator's clusters, pool and image. NULL = not given. */
    const char *backend_cluster;
    const char *backend_pool;
    const char *backend_image;
    uint32_t cluster_size;     /* 0 = driver default */
    const char *base;          /* linked clone of this volume */
    const char *import_path;   /* take in an existing image */
    const char *source_volume; /* full clone of a snapshot of this volume */
    const char *source_snapshot;
    struct vd_owner_req own;        /* zeroed: the defaults */
    const struct vd_qos_patch *qos; /* limits and group; NULL = none */
    /* A local volume of size 0, made by creating its file on the mount;
     * the truncate that follows grows it. Only then is size 0 allowed. */
    bool empty;
};

/* A volume as shown by the API. */
struct vd_volume_info {
    /* Requests inside the I/O gate now; latency histograms and errors by
     * errno (iostats.h). */
    int inflight;
    struct vd_iostats_snap io;
    struct vd_volume_row row;
    char path[VD_LOCATION_MAX]; /* its file on the mount */
    int64_t allocated;          /* host bytes, -1 if unknown */
    int open_count;
    /* row.uid, row.gid and row.mode as in force (defaults filled in),
     * and "user:group" by name where the host knows them. */
    char owner[160];
    uint64_t reads, writes, bytes_read, bytes_written, errors;
    uint64_t async;   /* reads, writes, flushes done asynchronously */
    bool passthrough; /* open files served by kernel passthrough */
    bool local;       /* a local image file (row.location is its
                         path), else a remote backend's URI */
    /* row.state is VD_STATE_CORRUPT while the image reports corruption,
     * with the driver's reason here ("" otherwise). */
    char state_reason[256];
    bool have_backend_state; /* the driver reported backend_state */
    struct vd_backend_state backend_state; /* NBD: connections, server */
    bool have_parts;                /* a remote location named by parts */
    struct vd_location_parts parts; /* cluster, pool, image (RBD) */
    struct vd_qos_row qos;          /* limits and group */
    struct vd_qos_stats qos_stats;  /* time held back by them */
};

/* Change events for the FUSE export (so it can invalidate kernel caches). */
enum vd_volume_event {
    VD_VOLUME_ADDED,
    VD_VOLUME_REMOVED,
    VD_VOLUME_RESIZED,
    VD_VOLUME_CHANGED, /* owner or mode */
};
typedef void (*vd_volume_notify_fn)(void *arg, enum vd_volume_event ev,
                                    uint64_t ino, const char *name);

/* Load the catalog, repair what a crash left half done (logging it), and
 * open every ready volume. */
int vd_volmgr_new(const struct vd_volmgr_config *cfg, struct vd_catalog *cat,
                  struct vd_volmgr **out, struct vd_error *err);
/* Flush and close every volume; accepts NULL. */
void vd_volmgr_free(struct vd_volmgr *mgr);
void vd_volmgr_set_notify(struct vd_volmgr *mgr, vd_volume_notify_fn fn,
                          void *arg);
/* Whether volume files can be served at all: the FUSE export answers
 * 0, or -ENOMEDIUM with a sentence in why (its mount was unmounted from
 * outside, or its session ended). Called on API threads, must not block
 * on the mount. */
typedef int (*vd_volume_export_fn)(void *arg, char *why, size_t len);
void vd_volmgr_set_export_check(struct vd_volmgr *mgr, vd_volume_export_fn fn,
                                void *arg);
/* 0 while the mount serves volume files (or no check was set), else
 * -ENOMEDIUM with why filled. Creates are refused while it fails. */
int vd_volmgr_export_state(struct vd_volmgr *mgr, char *why, size_t len);
/* Flush every volume; returns the first error. */
int vd_volmgr_flush_all(struct vd_volmgr *mgr);

/* Control path (API). All fill err on failure:
 * -EINVAL bad input, -EEXIST duplicate, -ENOENT unknown, -EBUSY in use,
 * -EACCES path or socket not allowed, -ENOTSUP not possible for this
 * format, -ENOMEDIUM the mount is gone (no volume can be served). */
int vd_volmgr_create(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                     struct vd_volume_info *out, struct vd_error *err);
int vd_volmgr_delete(struct vd_volmgr *mgr, const char *name, bool force,
                     struct vd_error *err);
/* Delete, saying what became of the image: a local file and a remote
 * image vdiskd created are removed; a remote image that was attached is
 * only detached, unless purge. *image_removed (may be NULL) tells which.
 * Removing a remote image happens outside the control lock, after its
 * volume has been closed; if that fails the row stays 'deleting' and the
 * next DELETE (or start-up) tries again. */
int vd_volmgr_delete_image(struct vd_volmgr *mgr, const char *name, bool force,
                           bool purge, bool *image_removed,
                           struct vd_error *err);
int vd_volmgr_get(struct vd_volmgr *mgr, const char *name,
                  struct vd_volume_info *out, struct vd_error *err);
/* Returns the count; *out is caller-freed. */
int vd_volmgr_list(struct vd_volmgr *mgr, struct vd_volume_info **out,
                   struct vd_error *err);
int vd_volmgr_resize(struct vd_volmgr *mgr, const char *name, uint64_t size,
                     struct vd_error *err);
/* Change the owner and mode of the volume's file and record them in the
 * catalog (the caller has checked the requester may: the kernel does for
 * the mount, the API's authentication for PATCH). notify: tell the mount
 * (false when the change comes through it). -EINVAL for an unknown user
 * or group or a bad mode, -ENOENT for an unknown volume. */
int vd_volmgr_set_owner(struct vd_volmgr *mgr, const char *name,
                        const struct vd_owner_req *req, bool notify,
                        struct vd_error *err);

/* QoS (qos.h): change a volume's limits and group, stored in the catalog
 * and applied to the running volume at once. -ENOENT for an unknown
 * volume or group, -EINVAL for a bad value. */
int vd_volmgr_qos_set(struct vd_volmgr *mgr, const char *name,
                      const struct vd_qos_patch *p, struct vd_error *err);
/* Whether vd_volmgr_qos_set could take p (its values, its group), for a
 * request that changes more than QoS to check before it changes anything.
 * 0, -EINVAL or -ENXIO (unknown group). */
int vd_volmgr_qos_check(struct vd_volmgr *mgr, const struct vd_qos_patch *p,
                        struct vd_error *err);
/* QoS groups: budgets several volumes share. -EEXIST for a duplicate,
 * -ENOENT for an unknown group, -EBUSY deleting one that volumes use. */
int vd_volmgr_qos_group_create(struct vd_volmgr *mgr, const char *name,
                               const struct vd_qos_patch *p,
                               struct vd_qos_row *out, struct vd_error *err);
int vd_volmgr_qos_group_get(struct vd_volmgr *mgr, const char *name,
                            struct vd_qos_row *out, struct vd_error *err);
/* Returns the count; *out caller-freed. */
int vd_volmgr_qos_group_list(struct vd_volmgr *mgr, struct vd_qos_row **out,
                             struct vd_error *err);
int vd_volmgr_qos_group_update(struct vd_volmgr *mgr, const char *name,
                               const struct vd_qos_patch *p,
                               struct vd_qos_row *out, struct vd_error *err);
int vd_volmgr_qos_group_delete(struct vd_volmgr *mgr, const char *name,
                               struct vd_error *err);

/* Snapshots (qcow2 internal snapshots). A snapshot as the API shows it. */
struct vd_snapshot_view {
    char name[256];
    char id[64];   /* the image's snapshot id */
    uint64_t size; /* virtual size when taken */
    uint64_t vm_state_size;
    int64_t created_at; /* unix seconds */
};

/* Take a consistent snapshot while clients write: the gate closes, I/O in
 * flight drains, the image is flushed, the snapshot taken, the gate opens.
 * *paused_us (may be NULL) gets how long I/O was held. -ENOTSUP for
 * formats without snapshots, -EEXIST for a duplicate name. */
int vd_volmgr_snapshot_create(struct vd_volmgr *mgr, const char *volume,
                              const char *name, struct vd_snapshot_view *out,
                              uint64_t *paused_us, struct vd_error *err);
/* Returns the count; *out caller-freed. */
int vd_volmgr_snapshot_list(struct vd_volmgr *mgr, const char *volume,
                            struct vd_snapshot_view **out,
                            struct vd_error *err);
int vd_volmgr_snapshot_get(struct vd_volmgr *mgr, const char *volume,
                           const char *name, struct vd_snapshot_view *out,
                           struct vd_error *err);
int vd_volmgr_snapshot_delete(struct vd_volmgr *mgr, const char *volume,
                              const char *name, struct vd_error *err);
/* Roll the volume back; -EBUSY while its file is open unless force. */
int vd_volmgr_snapshot_revert(struct vd_volmgr *mgr, const char *volume,
                              const char *name, bool force,
                              struct vd_error *err);

/* Changed blocks between snapshot `since` (NULL = nothing) and `snap`:
 * merged, ascending extents. Returns the count; *out caller-freed. */
struct vd_extent {
    uint64_t offset, length;
};
int vd_volmgr_snapshot_changes(struct vd_volmgr *mgr, const char *volume,
                               const char *snap, const char *since,
                               struct vd_extent **out, struct vd_error *err);

/* Full clone: start a job that copies snapshot src_snapshot of src_volume
 * into a new independent volume named spec->name (format, cluster size
 * from spec). The volume appears when the job succeeds. */
struct vd_job_info;
int vd_volmgr_clone(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                    const char *src_volume, const char *src_snapshot,
                    uint64_t *job_id, struct vd_error *err);
int vd_volmgr_job_get(struct vd_volmgr *mgr, uint64_t id,
                      struct vd_job_info *out, struct vd_error *err);
/* Running jobs and the recent finished ones, newest first. Returns the
 * count; *out is caller-freed. */
int vd_volmgr_job_list(struct vd_volmgr *mgr, struct vd_job_info **out,
                       struct vd_error *err);

/* Read-only views of snapshots (the mount's .snapshots files). A view
 * opens the volume's image a second time as the snapshot, while the
 * volume keeps serving writes; opens of one (volume, snapshot) share one
 * image. While any view of a snapshot is open, deleting the snapshot or
 * its volume answers -EBUSY. -ENOENT for unknown names, -ENOTSUP for
 * volumes without snapshots. */
struct vd_snapview;
int vd_volmgr_snapview_open(struct vd_volmgr *mgr, const char *volume,
                            const char *snapshot, struct vd_snapview **out,
                            struct vd_error *err);
/* Drop one user; the last closes the image. Accepts NULL. */
void vd_snapview_close(struct vd_snapview *v);
uint64_t vd_snapview_size(const struct vd_snapview *v);
int vd_snapview_pread(struct vd_snapview *v, void *buf, size_t len,
                      uint64_t off);
int vd_snapview_block_status(struct vd_snapview *v, uint64_t off, uint64_t len,
                             uint64_t *pnum);

/* true if name matches ^[a-z0-9][a-z0-9_.-]{0,63}$ and is not . or .. */
bool vd_volume_name_valid(const char *name);

/* Volume sizes: whole sectors, at most 64 TiB. */
#define VD_VOLUME_SIZE_ALIGN 512ULL
#define VD_VOLUME_SIZE_MAX (64ULL << 40)
/* The one check of a volume size: non-zero, a multiple of
 * VD_VOLUME_SIZE_ALIGN, at most VD_VOLUME_SIZE_MAX. 0, or -EINVAL with a
 * message naming field (the request member, e.g. "size"). */
int vd_volume_size_check(uint64_t size, const char *field,
                         struct vd_error *err);

/* The data directory (canonical), fixed for the manager's life. */
const char *vd_volmgr_data_dir(const struct vd_volmgr *mgr);

/* Take the volume over from a client that holds its image's lock and
 * does not answer (a dead host): fence it and break its lock
 * (vd_image_takeover). fenced (len bytes) gets the clients fenced, ""
 * when none held the lock. -ENOTSUP for backends without such locks. */
int vd_volmgr_takeover(struct vd_volmgr *mgr, const char *name, char *fenced,
                       size_t len, struct vd_error *err);

/* Data path (FUSE export). Lookups return a new reference or NULL. */
struct vd_volume *vd_volmgr_lookup(struct vd_volmgr *mgr, const char *name);
struct vd_volume *vd_volmgr_lookup_ino(struct vd_volmgr *mgr, uint64_t ino);
/* Call cb on each served volume with ino > after_ino, in ino order, until
 * cb returns non-zero. The volume is valid only during the call. */
void vd_volmgr_foreach(struct vd_volmgr *mgr, uint64_t after_ino,
                       int (*cb)(void *arg, struct vd_volume *vol), void *arg);
struct vd_volume *vd_volume_ref(struct vd_volume *vol);
void vd_volume_unref(struct vd_volume *vol); /* accepts NULL */

uint64_t
vd_volume_ino(const struct vd_volume *vol); /* >= 2, stable while served */
const char *vd_volume_name(const struct vd_volume *vol);
uint64_t vd_volume_size(struct vd_volume *vol);
int64_t vd_volume_created_at(const struct vd_volume *vol);
bool vd_volume_readonly(const struct vd_volume *vol);
/* The owner and permission bits of the volume's file. */
void vd_volume_owner(const struct vd_volume *vol, uid_t *uid, gid_t *gid,
                     mode_t *mode);

/* A client opened / released the volume's file. open fails with -ENOENT
 * once the volume is going away. */
int vd_volume_open_file(struct vd_volume *vol);
void vd_volume_release_file(struct vd_volume *vol);
/* Files open on the volume now. */
int vd_volume_open_count(struct vd_volume *vol);

/* I/O through the volume's gate; 0 or -errno. */
int vd_volume_pread(struct vd_volume *vol, void *buf, size_t len, uint64_t off);
int vd_volume_pwrite(struct vd_volume *vol, const void *buf, size_t len,
                     uint64_t off);
int vd_volume_flush(struct vd_volume *vol);

/* The driver's status of the run at off (VD_BS_* flags, *pnum its
 * length, at most len) through the gate; -errno on failure. */
int vd_volume_block_status(struct vd_volume *vol, uint64_t off, uint64_t len,
                           uint64_t *pnum);
/* Host bytes the volume's image takes (>= 0), or -errno (-ENOTSUP when
 * its driver cannot tell). Never waits: while the gate is closed it
 * answers the last value it found, or -EAGAIN if it found none yet. */
int64_t vd_volume_allocated(struct vd_volume *vol);

/* An asynchronous read or write through the gate. The caller fills
 * aio.op, aio.buf, aio.len, aio.off and done, and keeps the structure
 * alive until done is called. */
struct vd_volume_aio {
    struct vd_aio aio;
    void (*done)(struct vd_volume_aio *va, int ret);
    uint64_t t0;           /* private: when it was submitted */
    struct vd_volume *vol; /* private */
    struct vd_qos_req qos; /* private: its place while a limit holds it */
};
/* 0 when va->done will be called (from any thread, possibly before this
 * returns) with the gate held until then; -EAGAIN when the request must
 * take vd_volume_pread/pwrite instead; or another -errno. */
int vd_volume_submit(struct vd_volume *vol, struct vd_volume_aio *va);
/* The same, but -EAGAIN instead of waiting when the gate is closed. */
int vd_volume_submit_nowait(struct vd_volume *vol, struct vd_volume_aio *va);
/* vd_volume_flush on the caller's thread when the driver promises it
 * waits for nothing (vd_image_flush_nowait): for the I/O thread. -EAGAIN
 * when it would wait, or when the gate is closed. */
int vd_volume_flush_nowait(struct vd_volume *vol);
int vd_volume_discard(struct vd_volume *vol, uint64_t off, uint64_t len);
int vd_volume_write_zeroes(struct vd_volume *vol, uint64_t off, uint64_t len);

/* Kernel passthrough (FUSE export): a new descriptor, caller closes, on
 * the host file that is the volume byte for byte, for writing or only
 * reading; -ENOTSUP when the volume is not such a file (qcow2, remote),
 * -EIO when it is going away. Taken through the gate, so never while a
 * resize or delete holds it closed. */
int vd_volume_host_open(struct vd_volume *vol, bool write);
/* The export counts the opens it serves by passthrough, whose reads and
 * writes never pass the gate nor the counters (README, Performance). */
void vd_volume_note_passthrough(struct vd_volume *vol, bool on);
/* The kernel does not stop a passthrough write at the end of the volume:
 * it grows the image file. When the last such open goes, the file is cut
 * back to the volume's size (what was written past the end is dropped,
 * as a disk would have refused it). */
int vd_volume_host_trim(struct vd_volume *vol);
bool vd_volume_passthrough(struct vd_volume *vol);
/* Whether QoS limits (its own or its group's) hold the volume's requests
 * back: every request must then pass the daemon, so the mount does not
 * hand such a volume to the kernel (passthrough). */
bool vd_volume_limited(struct vd_volume *vol);

#endif
