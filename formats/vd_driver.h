/* vd_driver.h — the block driver interface every format or backend implements.
 *
 * A driver is a const table of function pointers (formats/registry.c lists
 * them). The core never calls a member directly: formats/image.c checks the
 * contract (open, in range, writable), counts, and then calls the driver.
 * Knows nothing of FUSE, HTTP or SQL. */
#ifndef VD_DRIVER_H
#define VD_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vd_error;
struct vd_image;
struct vd_ioloop;

enum vd_prealloc {
    VD_PREALLOC_OFF = 0,  /* sparse: allocate on first write */
    VD_PREALLOC_METADATA, /* qcow2: write all mapping tables up front */
    VD_PREALLOC_FALLOC,   /* reserve host space with fallocate() */
    VD_PREALLOC_FULL,     /* write zeroes to every byte */
};

struct vd_create_opts {
    uint64_t size;         /* virtual size, bytes, multiple of 512 */
    uint32_t cluster_size; /* 0 = driver default */
    enum vd_prealloc prealloc;
    const char *backing_file;   /* NULL = none; stored as given in the image */
    const char *backing_format; /* NULL = probe the backing file */
};

struct vd_open_opts {
    bool readonly;
    bool direct;          /* host file data I/O bypasses the page
                             cache (O_DIRECT) where the file system
                             allows it */
    uint64_t cache_bytes; /* metadata cache size, 0 = driver default */
    /* Directories (canonical, no trailing slash) a backing file may be
     * opened from, NULL terminated. NULL = no backing files allowed. */
    const char *const *allowed_dirs;
    /* Directories a backing file may never be opened from, even inside
     * an allowed one (the daemon's data directory for an import's
     * chain), NULL terminated. NULL = none. -EACCES when one is. */
    const char *const *denied_dirs;
    /* Directories a chain may leave but never come back to: a backing
     * file inside one is refused (-EACCES) unless the image naming it is
     * inside them too and names it by its canonical path (no symlink or
     * ".." on the way). NULL terminated; NULL = none. */
    const char *const *one_way_dirs;
    int chain_depth; /* how deep in a backing chain this open
                        is; above 0 the image is a backing
                        file, and file drivers lock it so
                        that nobody may write or resize it
                        (VD_LOCK_BACKING, io_util.h) */
    /* Remote backends (is_file == false) only; file drivers ignore these. */
    bool lazy_connect;      /* server down: open anyway, disconnected, sized by
                             * size_hint, and connect in the background */
    uint64_t size_hint;     /* the size last seen (catalog); 0 = unknown, and
                             * then lazy_connect cannot apply */
    uint32_t io_timeout_ms; /* fail I/O with -EIO after this long without a
                             * server; 0 = driver default */
    /* Directories (canonical, no trailing slash) a unix socket may be in,
     * NULL terminated: the socket's directory must resolve into one, and
     * so must the target of a socket that is a symlink. NULL = no unix
     * sockets (-EACCES, whether the path exists or not). */
    const char *const *socket_dirs;
    /* Open read-only as the named internal snapshot's view (the image's
     * contents when it was taken). NULL = the active image. Drivers
     * without snapshots fail with -ENOTSUP. */
    const char *snapshot;
    /* The I/O loop (ioloop.h) submit sends host file I/O to; the driver
     * keeps the pointer while open. NULL = every request takes the
     * synchronous path. */
    struct vd_ioloop *ioloop;
    /* Non-NULL on a writable open: the image may have been left open for
     * writing by a process that died (a crash), so reclaim what that
     * leaked, as "qemu-img check -r leaks" would (never a cluster that
     * is referenced), and store here how many clusters had too high a
     * refcount; the caller zeroes it first. Drivers without such
     * metadata, and images that also show corruption, leave it at 0. */
    uint64_t *leaks_reclaimed;
};

/* Longest backing chain a driver may follow before refusing (loop guard). */
#define VD_MAX_CHAIN_DEPTH 16

/* block_status flags */
#define VD_BS_DATA 0x1u /* the range holds data stored somewhere */
#define VD_BS_ZERO 0x2u /* the range reads as zeroes */
/* The range is allocated in this image, not a backing file. */
#define VD_BS_ALLOCATED 0x4u

/* write_zeroes flags */
/* The driver may deallocate instead of writing. */
#define VD_ZERO_MAY_UNMAP 0x1u

struct vd_snapshot_info {
    char id[64];
    char name[256];
    uint64_t vm_state_size;
    uint64_t disk_size; /* virtual size when the snapshot was taken */
    int64_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
};

/* An asynchronous read or write (vd_driver.submit, vd_image_submit).
 * The caller fills op, buf, len, off and done, and keeps the structure
 * (and buf) alive until done has been called. */
enum vd_aio_op {
    VD_AIO_READ,
    VD_AIO_WRITE,
    VD_AIO_FLUSH, /* as vd_driver.flush; buf, len and off unused. Only
                   * for drivers whose flush needs no thread to wait
                   * (a remote server's command): a host file's
                   * fdatasync would run on an io_uring kernel worker,
                   * which measured slower than a FUSE worker doing it. */
};

struct vd_aio {
    enum vd_aio_op op;
    void *buf;
    size_t len;
    uint64_t off;
    /* Called exactly once with 0 or -errno, from any thread (an I/O
     * loop's, a library's completion thread, or the submitter's own
     * before submit returns), under the completion contract of ioloop.h:
     * short, and never waiting for other requests. */
    void (*done)(struct vd_aio *aio, int ret);
    /* Private to formats/image.c. */
    struct vd_image *img;
    void (*caller_done)(struct vd_aio *aio, int ret);
};

/* What a driver can do (vd_driver.caps). The layers above ask for a
 * capability, never for a format name. */
#define VD_CAP_CREATE 0x01u /* makes new images (create) */
#define VD_CAP_GROW 0x02u   /* the virtual size can grow (truncate) */
/* Internal snapshots: create, list, delete, revert. */
#define VD_CAP_SNAPSHOTS 0x04u
/* Opens a snapshot read-only (vd_open_opts.snapshot) */
#define VD_CAP_SNAPSHOT_VIEWS 0x08u
/* Changed blocks between snapshots (snapshot_changes) */
#define VD_CAP_CHANGES 0x10u
/* Its images can be the backing file of another image (a linked clone's
 * base) */
#define VD_CAP_BASE 0x20u
/* Creates an image over a backing file (vd_create_opts.backing_file): a
 * linked clone. */
#define VD_CAP_CHEAP_CLONE 0x40u

/* open() succeeded, but only for reading although writing was asked (a
 * server that exports read-only, an image marked corrupt): image.c then
 * refuses writes. */
#define VD_OPEN_READONLY 1

/* Live state of a remote backend (vd_driver.backend_state), plain data
 * that the API renders. Strings are NUL terminated and hold no secrets. */
enum vd_backend_link {
    VD_LINK_CONNECTING,   /* never connected yet */
    VD_LINK_CONNECTED,    /* every connection it wants is up */
    VD_LINK_DEGRADED,     /* some, not all */
    VD_LINK_DISCONNECTED, /* lost, reconnecting */
};

struct vd_backend_state {
    enum vd_backend_link link;
    int connections;      /* connections it keeps when all are up */
    int connected;        /* connections up now */
    uint64_t reconnects;  /* successful reconnects since open */
    uint32_t timeout_ms;  /* I/O fails after this long without a server */
    char last_error[256]; /* the last connection error, "" if none */
    bool have_server;     /* the members below are known (a connection
                             was made at least once) */
    struct {
        uint64_t size;
        bool read_only, can_flush, can_trim, can_zero, can_fua;
        bool can_multi_conn;
        bool block_status; /* answers block status queries */
    } server;
    /* Distributed stores (RBD): the image's features, comma separated
     * ("" if none), and whether this host holds its exclusive lock. */
    char features[256];
    bool have_lock;  /* the image has an exclusive lock */
    bool lock_owner; /* ... and this host holds it */
};

/* What a create request names of a remote image (vd_driver.locate): the
 * members of the API's backend object, NULL where not given. */
struct vd_locate_req {
    const char *uri;
    const char *cluster; /* which of the operator's clusters */
    const char *pool;
    const char *image;
    const char *uuid; /* the new volume's: names an image made for it */
    bool create;      /* a new image is to be made (else attach) */
};

/* A remote location split into the parts a create request names them by
 * (vd_driver.location_parts), for showing; "" where a part is absent. */
struct vd_location_parts {
    char cluster[32];
    char pool[128];
    char image[256];
};

struct vd_check_result {
    uint64_t corruptions;
    uint64_t leaks;
    uint64_t check_errors;
};

/* A driver. Members are called only through formats/image.c, which
 * guarantees: the image is open; data ranges lie within [0, length);
 * write-type members are never called on a read-only image; len > 0.
 * Every int member returns 0 (or a count where said) on success and a
 * negative errno on failure. Unless `parallel` is false, every member
 * on one image may be called from several threads at once. */
struct vd_driver {
    const char *name; /* "raw", "qcow2", "nbd" — the catalog's format name */
    size_t instance_size; /* bytes of zeroed private state at img->opaque */
    bool parallel;        /* false: image.c serialises all calls on an image */
    bool is_file;         /* location is a host file path (false for URIs) */
    unsigned caps;        /* VD_CAP_* bits; each names members that must
                             then be present (tests/unit/test_registry.c) */

    /* Score how likely buf (the first len bytes of a file, len may be less
     * than 512 for small files) is this format: 0 = not it, 100 = certain.
     * NULL = never chosen by probing. */
    int (*probe)(const uint8_t *buf, size_t len);

    /* Remote backends addressed by named parts rather than a URI: write
     * the location req names into buf (len bytes) and return its length,
     * or -EINVAL with err naming the offending member ("backend.pool"),
     * -ENOENT for a cluster or store that is not configured. Checks
     * syntax and configuration only, never the network. NULL = the
     * location is req->uri as given. */
    int (*locate)(const struct vd_locate_req *req, char *buf, size_t len,
                  struct vd_error *err);

    /* Split a location made by locate into its parts (0), or -EINVAL.
     * NULL = the location is shown as a URI only. */
    int (*location_parts)(const char *location, struct vd_location_parts *out);

    /* Remove the image at location, with its snapshots (nobody has it
     * open). -ENOENT if it does not exist. NULL = the daemon removes a
     * host file itself, and a remote image cannot be removed. */
    int (*remove)(const char *location, struct vd_error *err);

    /* Make a new image at location. NULL = cannot create. */
    int (*create)(const char *location, const struct vd_create_opts *opts,
                  struct vd_error *err);

    /* The image file at location was copied from directory orig_dir:
     * rewrite references to other files (backing files) that were
     * relative to orig_dir so they still resolve. NULL = nothing to do. */
    int (*relocate)(const char *location, const char *orig_dir,
                    struct vd_error *err);

    /* Open location into img (img->opaque is zeroed). Opens for writing
     * unless opts->readonly; returns 0, VD_OPEN_READONLY when it could
     * open only for reading, or -errno. Must not leave resources behind
     * on failure. Required. */
    int (*open)(struct vd_image *img, const char *location,
                const struct vd_open_opts *opts, struct vd_error *err);

    /* Release everything open() took. Dirty state is flushed first by the
     * caller. Required. */
    void (*close)(struct vd_image *img);

    /* Read len bytes at off into buf. Required. */
    int (*pread)(struct vd_image *img, void *buf, size_t len, uint64_t off);

    /* Write len bytes at off. NULL = read-only driver. */
    int (*pwrite)(struct vd_image *img, const void *buf, size_t len,
                  uint64_t off);

    /* Start aio (a read or write within range, len > 0, or a flush) without
     * waiting for it: return 0 once aio->done is sure to be called, or -errno
     * without calling it. -EAGAIN means "not now, not this way": the
     * request needs work the driver does only synchronously (allocation,
     * a backing file, a cache miss it would block on), and the caller
     * uses pread/pwrite instead. Never called on non-parallel drivers.
     * NULL = every request takes pread/pwrite. */
    int (*submit)(struct vd_image *img, struct vd_aio *aio);

    /* Make every completed write and the metadata that points at it
     * durable. NULL = nothing to do. */
    int (*flush)(struct vd_image *img);

    /* flush, if it needs no waiting for other requests (no drain) and no
     * metadata write: syncing the data is all there is to do. Otherwise
     * -EAGAIN at once, and the caller uses flush on a thread that may
     * wait. Safe on an I/O loop's thread. NULL = always -EAGAIN. */
    int (*flush_nowait)(struct vd_image *img);

    /* Deallocate a range; later reads return zeroes or the backing data.
     * NULL = answered -ENOTSUP. */
    int (*discard)(struct vd_image *img, uint64_t off, uint64_t len);

    /* Make a range read as zeroes. NULL = image.c writes zero buffers. */
    int (*write_zeroes)(struct vd_image *img, uint64_t off, uint64_t len,
                        unsigned flags);

    /* Describe the range starting at off: set *pnum to the length (1..len)
     * of the run that shares one status, and return its VD_BS_* flags (>= 0).
     * NULL = everything is reported as allocated data. */
    int (*block_status)(struct vd_image *img, uint64_t off, uint64_t len,
                        uint64_t *pnum);

    /* Virtual size in bytes. Required. */
    uint64_t (*length)(struct vd_image *img);

    /* Host bytes used by the image (>= 0), or -errno. NULL = unknown. */
    int64_t (*allocated)(struct vd_image *img);

    /* Change the virtual size (only growing need be supported).
     * NULL = answered -ENOTSUP. */
    int (*truncate)(struct vd_image *img, uint64_t size, struct vd_error *err);

    /* Internal snapshots; all NULL for formats without them. The caller
     * has drained I/O on the image before create, delete and revert.
     * snapshot_list returns a count (>= 0) and sets *out (caller frees). */
    int (*snapshot_create)(struct vd_image *img, const char *name,
                           struct vd_error *err);
    int (*snapshot_list)(struct vd_image *img, struct vd_snapshot_info **out);
    int (*snapshot_delete)(struct vd_image *img, const char *name,
                           struct vd_error *err);
    int (*snapshot_revert)(struct vd_image *img, const char *name,
                           struct vd_error *err);

    /* Changed blocks: call cb(arg, off, len) for the extents whose data may
     * differ between internal snapshot `since` (NULL = an empty image) and
     * snapshot `snap`, in ascending order, judged from the mapping tables
     * alone (no data is read). A non-zero cb return stops the walk and is
     * returned. NULL = answered -ENOTSUP. */
    int (*snapshot_changes)(struct vd_image *img, const char *since,
                            const char *snap,
                            int (*cb)(void *arg, uint64_t off, uint64_t len),
                            void *arg, struct vd_error *err);

    /* Consistency check of the image's metadata. NULL = nothing to check. */
    int (*check)(struct vd_image *img, struct vd_check_result *res);

    /* Fill *out (zeroed by the caller) with live driver state, e.g. a
     * remote backend's connections. Called any time the image is open,
     * from any thread. NULL = nothing to report. */
    int (*backend_state)(struct vd_image *img, struct vd_backend_state *out);

    /* Take the image over from another client that holds its lock and no
     * longer answers (a host that died holding it): fence that client so
     * that nothing it still has in flight can ever land (blocklist), then
     * break its lock, so that this host's writes take it. Writes the
     * fenced clients ("" if none held it) into fenced (len bytes). Never
     * called on a read-only image. NULL = answered -ENOTSUP. */
    int (*takeover)(struct vd_image *img, char *fenced, size_t len,
                    struct vd_error *err);
    /* Why the driver stopped trusting the image's metadata: a short text
     * that stays valid while the image is open, or NULL while it has
     * found nothing wrong. Once non-NULL it never changes back. Called
     * any time the image is open, from any thread. NULL = never. */
    const char *(*corruption)(struct vd_image *img);
    /* How many directory entries the host file the image writes still
     * has (vd_hostfile_links): 0 when it was deleted behind the image's
     * back, so that nothing written any more survives its close; or
     * -errno. One fstat: image.c calls it at every flush and about once
     * a second while writes go on, from any thread, the I/O thread
     * included. NULL = no host file of its own (remote backends). */
    int (*host_links)(struct vd_image *img);

    /* The host file descriptor whose bytes are the virtual disk, byte for
     * byte at the same offsets and of the same length (raw), borrowed:
     * valid while the image is open. Lets the daemon hand the file to the
     * kernel (FUSE passthrough). Called any time the image is open, from
     * any thread. NULL = the disk is not a host file. */
    int (*host_fd)(struct vd_image *img);
};

#endif
