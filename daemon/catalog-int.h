/* catalog-int.h — private state of the catalog, shared by catalog.c
 * (connection, migrations, volumes) and catalog_snap.c (snapshots). */
#ifndef VD_CATALOG_INT_H
#define VD_CATALOG_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "catalog.h"

struct vd_catalog {
    sqlite3 *db;
    pthread_mutex_t lock; /* protects db and every statement on it */
};

/* Record SQLite's last message as an -EIO error about `what`. */
int vd_catalog_db_error(struct vd_catalog *cat, struct vd_error *err,
                        const char *what);

/* Run a change statement to its end (caller holds lock). Returns 0 when
 * it changed at least one row, -ENOENT when it changed none, -EEXIST when
 * it broke a constraint (the caller words both messages), or -EIO with
 * SQLite's message in err. */
int vd_catalog_step_change(struct vd_catalog *cat, sqlite3_stmt *st,
                           struct vd_error *err, const char *what);

/* Step a prepared query (caller holds lock) to its end, decoding each row
 * with read_row into a growing array of elem_size elements. Returns the
 * row count with *out set (caller frees), or -errno with err set. */
int vd_catalog_collect(struct vd_catalog *cat, sqlite3_stmt *st,
                       size_t elem_size,
                       void (*read_row)(sqlite3_stmt *st, void *elem),
                       void **out, struct vd_error *err, const char *what);

#endif
