/* catalog.h — the SQLite catalog: which volumes exist and in what state.
 *
 * The only code in vdiskd that speaks SQL. Schema migrations live in
 * schema/NNN_*.sql and are compiled in; PRAGMA user_version records how
 * many have run. All functions are safe to call from several threads
 * (one connection, serialised by an internal mutex). */
#ifndef VD_CATALOG_H
#define VD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vd_catalog;
struct vd_error;

#define VD_NAME_MAX 64
#define VD_LOCATION_MAX 4096

/* Volume lifecycle states. The catalog stores the first four as text
 * (catalog.c converts, nowhere else); `corrupt` is never stored: it is a
 * ready volume whose open image reports corruption, and follows from the
 * image again after a restart. */
enum vd_volume_state {
    VD_STATE_CREATING, /* row first, file next: not yet visible */
    VD_STATE_READY,    /* served on the mount */
    VD_STATE_DELETING, /* going away: file next, row last */
    VD_STATE_MISSING,  /* ready row whose image is gone or unopenable */
    VD_STATE_CORRUPT,  /* served, but its image reports corruption */
};

/* The state's name as the catalog and the API spell it. */
const char *vd_volume_state_name(enum vd_volume_state state);

/* The backend column of a volume on a local image file (its format
 * column names the driver); any other value names a remote driver. */
#define VD_BACKEND_FILE "file"

struct vd_volume_row {
    int64_t id;
    char name[VD_NAME_MAX + 1];
    char uuid[37];
    char format[16];                /* "raw", "qcow2", "nbd" ... */
    char backend[16];               /* "file", "nbd" */
    char location[VD_LOCATION_MAX]; /* image path, or backend URI */
    char base[VD_NAME_MAX + 1];     /* linked clone's base volume, "" = none */
    uint64_t size;
    enum vd_volume_state state;
    int64_t created_at; /* unix seconds */
    int64_t updated_at;
    bool owns_image; /* vdiskd made the image: deleting the
                        volume removes it (false: an
                        attached remote image, detached) */
    /* Owner and permission bits (0..0777) of the volume's file; -1 =
     * not recorded (older rows): the daemon's defaults apply. */
    int64_t uid, gid;
    int mode;
};

/* Open (creating if needed) the catalog at path and run pending
 * migrations. Caller closes. */
int vd_catalog_open(const char *path, struct vd_catalog **out,
                    struct vd_error *err);
void vd_catalog_close(struct vd_catalog *cat);

/* Schema version now in force (PRAGMA user_version). */
int vd_catalog_schema_version(struct vd_catalog *cat);

/* Insert a new row (id and timestamps are filled in). -EEXIST if the
 * name is taken. */
int vd_catalog_volume_insert(struct vd_catalog *cat, struct vd_volume_row *row,
                             struct vd_error *err);
/* -ENOENT if no such volume. */
int vd_catalog_volume_get(struct vd_catalog *cat, const char *name,
                          struct vd_volume_row *row, struct vd_error *err);
/* -EINVAL for VD_STATE_CORRUPT, which is not stored. */
int vd_catalog_volume_set_state(struct vd_catalog *cat, const char *name,
                                enum vd_volume_state state,
                                struct vd_error *err);
/* The same, for the row with this uuid (-ENOENT if it is gone). */
int vd_catalog_volume_set_state_uuid(struct vd_catalog *cat, const char *uuid,
                                     enum vd_volume_state state,
                                     struct vd_error *err);
int vd_catalog_volume_delete_uuid(struct vd_catalog *cat, const char *uuid,
                                  struct vd_error *err);
int vd_catalog_volume_set_size(struct vd_catalog *cat, const char *name,
                               uint64_t size, struct vd_error *err);
/* Record the owner and mode of the volume's file (-1 stores NULL). */
int vd_catalog_volume_set_owner(struct vd_catalog *cat, const char *name,
                                int64_t uid, int64_t gid, int mode,
                                struct vd_error *err);
int vd_catalog_volume_delete(struct vd_catalog *cat, const char *name,
                             struct vd_error *err);
/* All rows ordered by id; *rows is caller-freed. Returns the count. */
int vd_catalog_volume_list(struct vd_catalog *cat, struct vd_volume_row **rows,
                           struct vd_error *err);

struct vd_snapshot_row {
    char name[256];
    uint64_t size;      /* virtual size when taken */
    int64_t created_at; /* unix seconds */
};

/* Record a snapshot of volume (-EEXIST if recorded already). */
int vd_catalog_snapshot_insert(struct vd_catalog *cat, const char *volume,
                               const struct vd_snapshot_row *row,
                               struct vd_error *err);
int vd_catalog_snapshot_delete(struct vd_catalog *cat, const char *volume,
                               const char *name, struct vd_error *err);
/* The volume's snapshot rows by creation; *rows caller-freed; count. */
int vd_catalog_snapshot_list(struct vd_catalog *cat, const char *volume,
                             struct vd_snapshot_row **rows,
                             struct vd_error *err);

#endif
