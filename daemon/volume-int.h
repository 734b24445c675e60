/* volume-int.h — private state of the volume manager, shared by
 * volume_reg.c (the served list), volume.c (lifecycle), volume_ctl.c
 * (control path) and volume_io.c (gate, data path). */
#ifndef VD_VOLUME_INT_H
#define VD_VOLUME_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "volume.h"

struct vd_image;

struct vd_volume {
    atomic_int refs; /* manager's list holds one */
    uint64_t ino;    /* fixed at creation */
    /* Latency and errors of its requests (iostats.h), lock-free. */
    struct vd_iostats io;
    struct vd_volume_row row; /* row.size follows `size`; mgr->lock */
    /* The image. Read only by a request inside the gate, or by a control
     * operation that holds mgr->ctl; replaced only with the gate closed
     * and ctl held, through vd_volume_set_image (or before publishing).
     * Paths that hold neither (FUSE lookup, getattr, open, readdir) use
     * the copies below, never the image. */
    struct vd_image *img;
    _Atomic uint64_t size; /* virtual size, bytes */
    atomic_bool served;    /* img != NULL: the file is on the mount */
    atomic_bool readonly;  /* img refuses writes (or no img) */
    atomic_uint caps;      /* VD_CAP_* of img's driver, 0 if none */
    /* Why the image is no longer trusted: NULL, then set once to a copy
     * of its driver's reason (vd_volume_note_corruption); freed with the
     * volume. */
    _Atomic(char *) corrupt_reason;
    atomic_bool image_lost; /* the reason is vd_image_lost's */
    /* Owner of the file (uid << 32 | gid) and its permission bits: the
     * row's, defaults filled in; set by publish and set_owner, read
     * lock-free by the mount. */
    _Atomic uint64_t owner;
    atomic_uint mode;
    /* Host bytes the image took when last asked (vd_volume_allocated),
     * -1 before that. */
    _Atomic int64_t allocated_seen;

    /* The I/O gate (see volume_io.c DESIGN NOTES). */
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_cond;
    atomic_int inflight;
    atomic_bool gate_closed;
    atomic_bool going_away; /* set under gate_lock */
    int open_count;         /* gate_lock */

    /* Limits (qos.h): set before the volume is published, freed with
     * it; NULL = none. */
    struct vd_qos *qos;
    /* Opens of the file whose reads and writes the kernel sends to the
     * image itself (FUSE passthrough): they bypass the gate. */
    atomic_int passthrough_files;
};

struct vd_volmgr {
    char *data_dir;
    const char *data_dir_list[2]; /* {data_dir, NULL}: backing files
                                     never come from there (deny) */
    char *images_dir;
    char *mount_dir;
    char **allowed_dirs;    /* data dir + import dirs, NULL terminated */
    char **import_dirs;     /* NULL terminated */
    char **nbd_socket_dirs; /* NULL terminated (open_row) */
    char **pool_allow;      /* NULL terminated (plan) */
    char *default_format;
    bool host_cache;
    uid_t default_uid; /* volume.h vd_volmgr_config */
    gid_t default_gid;
    mode_t default_mode;
    struct vd_ioloop *ioloop; /* for open_row (volume.h) */
    struct vd_catalog *cat;
    /* The last daemon on this data dir did not shut down cleanly (its
     * marker was left, volume.c note 6): writable opens reclaim leaks. */
    bool unclean;
    bool marker_made; /* this daemon made the marker */

    pthread_mutex_t ctl;     /* serialises create/delete/resize */
    pthread_mutex_t lock;    /* protects vols, n_vols, next_ino */
    struct vd_volume **vols; /* ordered by ino */
    size_t n_vols, cap_vols;
    uint64_t next_ino;

    struct vd_jobs *jobs; /* full clones in progress */

    pthread_mutex_t views_lock; /* protects views (snapview.c) */
    struct vd_snapview *views;  /* open snapshot views */

    vd_volume_notify_fn notify;
    void *notify_arg;
    vd_volume_export_fn export_check; /* set once before the API starts */
    void *export_arg;

    struct vd_qos_sched *qos; /* volume_qos.c */
};

/* volume_reg.c (the rest of it is in volume.h) */
uint64_t vd_volmgr_take_ino(struct vd_volmgr *mgr);
/* Add to the served list, taking over the caller's reference. */
int vd_volmgr_publish(struct vd_volmgr *mgr, struct vd_volume *vol);
/* Remove from the served list; returns the list's reference or NULL. */
struct vd_volume *vd_volmgr_unpublish(struct vd_volmgr *mgr, const char *name);

/* volume_qos.c */
/* Start the QoS scheduler with every group in the catalog. */
int vd_volmgr_qos_start(struct vd_volmgr *mgr, struct vd_error *err);
void vd_volmgr_qos_stop(struct vd_volmgr *mgr);
/* Give a volume about to be published its throttle, configured from the
 * catalog (problems are logged: the volume is served without). */
void vd_volume_qos_attach(struct vd_volmgr *mgr, struct vd_volume *vol);
/* Free the throttle of a volume whose I/O is shut. */
void vd_volume_qos_detach(struct vd_volume *vol);
/* Store p over the volume's settings in the catalog (out: the result, may
 * be NULL); caller holds ctl. -EINVAL, or -ENOENT for an unknown group. */
int vd_volmgr_qos_store(struct vd_volmgr *mgr, const char *name,
                        const struct vd_qos_patch *p, struct vd_qos_row *out,
                        struct vd_error *err);
/* The settings and throttle figures the API shows (vol may be NULL). */
void vd_volmgr_qos_fill(struct vd_volmgr *mgr, struct vd_volume *vol,
                        struct vd_volume_info *out);

/* volume.c */
int vd_fsync_dir(const char *dir);
bool vd_row_is_file(const struct vd_volume_row *row);
/* Open a row's image. At start-up (lazy) a remote backend that cannot be
 * reached opens disconnected, sized from the catalog, and connects later. */
int vd_volmgr_open_row(struct vd_volmgr *mgr, const struct vd_volume_row *row,
                       bool readonly, struct vd_image **img,
                       struct vd_error *err);
int vd_volmgr_open_row_lazy(struct vd_volmgr *mgr,
                            const struct vd_volume_row *row, bool readonly,
                            struct vd_image **img, struct vd_error *err);
/* Whether any volume names this one as its base (linked clones). */
bool vd_volmgr_has_clones(struct vd_volmgr *mgr, const char *name);
/* A linked-clone base is read-only while clones use it: -EBUSY naming
 * the clones and what (e.g. "resizing it") cannot be done, else 0. */
int vd_volmgr_refuse_base(struct vd_volmgr *mgr, const char *name,
                          const char *what, struct vd_error *err);
/* Where the backing chain of row's image may come from, into o: the
 * data dir and the import dirs, but the data dir only for a linked
 * clone's way to its base (never for a volume without a base, and never
 * again once the chain has left it). */
void vd_volmgr_chain_opts(struct vd_volmgr *mgr,
                          const struct vd_volume_row *row,
                          struct vd_open_opts *o);
/* Swap the volume's image for one opened read-only or read-write, with
 * I/O drained; on failure the old mode is restored if possible. */
int vd_volume_reopen(struct vd_volmgr *mgr, struct vd_volume *vol,
                     bool readonly, struct vd_error *err);
/* Finish removing an unserved row: state 'deleting', file (or the remote
 * image if row->owns_image), then row. */
int vd_volmgr_remove_row(struct vd_volmgr *mgr, const struct vd_volume_row *row,
                         struct vd_error *err);
/* Drain a volume's I/O and close its image. */
int vd_volume_shut(struct vd_volume *vol);

/* volume_owner.c */
/* Fill the owner and mode of a new row from the request, or the
 * defaults. 0 or -EINVAL with err set. */
int vd_volmgr_plan_owner(struct vd_volmgr *mgr, const struct vd_owner_req *req,
                         struct vd_volume_row *row, struct vd_error *err);
/* Replace what a row has not recorded (-1) with the defaults. */
void vd_volmgr_owner_defaults(const struct vd_volmgr *mgr,
                              struct vd_volume_row *row);
/* Set the volume's lock-free copy from its row (defaults filled in). */
void vd_volume_owner_init(struct vd_volmgr *mgr, struct vd_volume *vol);
/* "user:group" for uid and gid, by name where known, else numbers. */
void vd_owner_format(uid_t uid, gid_t gid, char *buf, size_t len);

/* volume_ctl.c */
/* Validate a create request and fill the row it asks for (state
 * 'creating'); base is filled for linked clones. */
int vd_volmgr_plan(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                   struct vd_volume_row *row, struct vd_volume_row *base,
                   struct vd_error *err);
/* volume_rclone.c */
/* Plan a linked clone of spec->base when that is a remote volume whose
 * driver makes the clone (VD_CAP_BASE | VD_CAP_CHEAP_CLONE): fill row
 * and base and return 0, or -errno with err set; 1 when the base is not
 * remote (the local rules apply). */
int vd_volmgr_plan_remote_clone(struct vd_volmgr *mgr,
                                const struct vd_volume_spec *spec,
                                struct vd_volume_row *row,
                                struct vd_volume_row *base,
                                struct vd_error *err);

/* Whether a volume named name is on the mount. A 'creating' row whose
 * volume is, is an empty volume created through the mount (no size yet);
 * any other 'creating' row is a create in progress. */
bool vd_volmgr_served(struct vd_volmgr *mgr, const char *name);

/* volume_view.c */
/* The API's view of a volume: row, and vol's live state when served (vol
 * may be NULL). */
void vd_volmgr_fill_info(struct vd_volmgr *mgr, struct vd_volume *vol,
                         const struct vd_volume_row *row,
                         struct vd_volume_info *out);

/* volume_change.c */
/* Volumes that use name as their base, as "a, b" into buf (empty when
 * none); returns how many. */
int vd_volmgr_clones_of(struct vd_volmgr *mgr, const char *name, char *buf,
                        size_t cap);
/* The last clone of base is gone: serve it writable again (a no-op while
 * it has clones, or for "" ). Under mgr->ctl. */
void vd_volmgr_thaw_base(struct vd_volmgr *mgr, const char *base);

/* volume_import.c */
/* What an import may take: real (a realpath inside an import dir) must
 * be a regular file outside the data directory, of a format whose whole
 * backing chain opens from the import dirs only, and whose virtual size
 * obeys vd_volume_size_check. -EACCES, -EISDIR, -ENOTSUP (422), -ELOOP,
 * -EBUSY (locked by another process) with err set. */
int vd_volmgr_import_check(struct vd_volmgr *mgr, const char *real,
                           struct vd_error *err);
/* -EACCES if real lies inside the data directory (the catalog, volume
 * images): never an import or backing source. */
int vd_volmgr_outside_data(struct vd_volmgr *mgr, const char *real,
                           const char *what, struct vd_error *err);

/* snapshot.c */
/* Make the catalog's snapshot rows match the image's table, logging what
 * changed. */
void vd_volume_sync_snapshots(struct vd_volmgr *mgr, struct vd_volume *vol);

/* snapview.c */
/* Whether a view of volume's snapshot (any snapshot if NULL) is open. */
bool vd_volmgr_snapview_busy(struct vd_volmgr *mgr, const char *volume,
                             const char *snapshot);
/* Close views nobody released (shutdown). */
void vd_volmgr_snapviews_free(struct vd_volmgr *mgr);

/* volume_io.c */
struct vd_volume *vd_volume_new(const struct vd_volume_row *row,
                                struct vd_image *img, uint64_t ino);
/* Install img (may be NULL) and the copies of what lock-free readers
 * need. The caller has the gate closed and holds ctl, or the volume is
 * not published yet. */
void vd_volume_set_image(struct vd_volume *vol, struct vd_image *img);
/* The reason noted by vd_volume_note_corruption, or NULL. Valid while
 * the caller holds a reference. */
const char *vd_volume_corrupt_reason(struct vd_volume *vol);
/* Whether that reason is the image's file being gone (vd_image_lost)
 * rather than corruption: the volume then shows as missing. */
bool vd_volume_image_lost(struct vd_volume *vol);
/* Close the gate and wait until no request is in flight. */
void vd_volume_gate_close(struct vd_volume *vol);
void vd_volume_gate_open(struct vd_volume *vol);
/* Enter the gate as a data request does (waits while it is closed):
 * vol->img stays open until vd_volume_gate_leave. -EIO when the volume
 * is going away or has no image. */
int vd_volume_gate_enter(struct vd_volume *vol);
void vd_volume_gate_leave(struct vd_volume *vol);
/* Mark going away unless a client has the file open and !force (-EBUSY). */
int vd_volume_retire(struct vd_volume *vol, bool force);
/* Note the image's corruption, if it reports any and it was not noted
 * before: keep the reason and log it, once per volume. The caller is
 * inside the gate or holds ctl. */
void vd_volume_note_corruption(struct vd_volume *vol);

#endif
