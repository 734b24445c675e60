/* catalog.c — the SQLite catalog of volumes.
 *
 * DESIGN NOTES
 * 1. One connection, WAL mode, foreign keys on, synchronous=FULL: a row
 *    change that returned is on disk before the caller touches files.
 * 2. Migrations: vd_migrations[i] takes user_version i to i + 1. Each runs
 *    in its own transaction together with the user_version bump, so a crash
 *    mid-migration leaves the previous version intact.
 * 3. A catalog newer than this binary (user_version > known migrations) is
 *    refused rather than guessed at.
 * 4. Every access holds `lock`; SQLite's own serialisation is not relied on
 *    for multi-statement sequences. */
#include "catalog-int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "schema.h"
#include "vd_assert.h"
#include "vd_error.h"

/* The errno for the database's last error: a full file system is the
 * host's condition (507), not a fault of the daemon. */
static int db_errno(struct vd_catalog *cat)
{
    switch (sqlite3_errcode(cat->db) & 0xff) {
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

int vd_catalog_db_error(struct vd_catalog *cat, struct vd_error *err,
                        const char *what)
{
    return vd_error_set(err, db_errno(cat), "catalog: %s: %s", what,
                        sqlite3_errmsg(cat->db));
}

int vd_catalog_step_change(struct vd_catalog *cat, sqlite3_stmt *st,
                           struct vd_error *err, const char *what)
{
    VD_ASSERT_HELD(&cat->lock);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT) {
        return -EEXIST;
    }
    if (rc != SQLITE_DONE) {
        return vd_catalog_db_error(cat, err, what);
    }
    return sqlite3_changes(cat->db) > 0 ? 0 : -ENOENT;
}

int vd_catalog_collect(struct vd_catalog *cat, sqlite3_stmt *st,
                       size_t elem_size,
                       void (*read_row)(sqlite3_stmt *st, void *elem),
                       void **out, struct vd_error *err, const char *what)
{
    char *v = NULL;
    size_t n = 0, cap = 0;
    VD_ASSERT_HELD(&cat->lock);
    int rc;

    *out = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char *nv = realloc(v, ncap * elem_size);
            if (nv == NULL) {
                free(v);
                return vd_error_set(err, -ENOMEM, "out of memory");
            }
            v = nv;
            cap = ncap;
        }
        read_row(st, v + n++ * elem_size);
    }
    if (rc != SQLITE_DONE) {
        free(v);
        return vd_catalog_db_error(cat, err, what);
    }
    *out = v;
    return (int)n;
}

static int exec_sql(struct vd_catalog *cat, const char *sql,
                    struct vd_error *err, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(cat->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int ret = vd_error_set(err, db_errno(cat), "catalog: %s: %s", what,
                               msg ? msg : "unknown error");
        sqlite3_free(msg);
        return ret;
    }
    return 0;
}

int vd_catalog_schema_version(struct vd_catalog *cat)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, "PRAGMA user_version", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return v;
}

static int migrate(struct vd_catalog *cat, struct vd_error *err)
{
    int version = vd_catalog_schema_version(cat);
    char sql[64];
    if (version < 0) {
        return vd_catalog_db_error(cat, err, "reading user_version");
    }
    if (version > vd_migration_count) {
        return vd_error_set(err, -EPROTO,
                            "catalog schema version %d is newer than this "
                            "vdiskd knows (%d)",
                            version, vd_migration_count);
    }
    for (int i = version; i < vd_migration_count; i++) {
        int ret = exec_sql(cat, "BEGIN IMMEDIATE", err, "begin migration");
        if (ret < 0) {
            return ret;
        }
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", i + 1);
        if ((ret = exec_sql(cat, vd_migrations[i].sql, err,
                            vd_migrations[i].file)) < 0 ||
            (ret = exec_sql(cat, sql, err, "user_version")) < 0 ||
            (ret = exec_sql(cat, "COMMIT", err, "commit migration")) < 0) {
            exec_sql(cat, "ROLLBACK", NULL, "rollback");
            return ret;
        }
        vd_info("catalog: applied migration %s", vd_migrations[i].file);
    }
    return 0;
}

/* The catalog is for root's eyes only: create it 0600 before SQLite
 * opens it (SQLite gives -wal and -shm the main file's mode), and
 * tighten files an older version left 0644. */
static int restrict_mode(const char *path, struct vd_error *err)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char p[4096];
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return vd_error_set(err, -e,
                            "cannot create catalog '%s' mode "
                            "0600: %s",
                            path, strerror(e));
    }
    close(fd);
    for (int i = 1; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        if (chmod(p, 0600) < 0 && errno != ENOENT) {
            return vd_error_set(err, -errno, "cannot chmod '%s': %s", p,
                                strerror(errno));
        }
    }
    return 0;
}

int vd_catalog_open(const char *path, struct vd_catalog **out,
                    struct vd_error *err)
{
    struct vd_catalog *cat = calloc(1, sizeof(*cat));
    int ret;
    *out = NULL;
    if (cat == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&cat->lock, NULL);
    if ((ret = restrict_mode(path, err)) < 0) {
        goto out_close;
    }
    if (sqlite3_open_v2(path, &cat->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        ret = vd_error_set(err, -EIO, "cannot open catalog '%s': %s", path,
                           cat->db ? sqlite3_errmsg(cat->db) : "no memory");
        goto out_close;
    }
    sqlite3_busy_timeout(cat->db, 5000);
    if ((ret = exec_sql(cat, "PRAGMA journal_mode=WAL", err, "WAL")) < 0 ||
        (ret = exec_sql(cat, "PRAGMA foreign_keys=ON", err, "foreign keys")) <
            0 ||
        (ret = exec_sql(cat, "PRAGMA synchronous=FULL", err, "synchronous")) <
            0 ||
        (ret = migrate(cat, err)) < 0) {
        goto out_close;
    }
    *out = cat;
    return 0;

out_close:
    vd_catalog_close(cat);
    return ret;
}

void vd_catalog_close(struct vd_catalog *cat)
{
    if (cat == NULL) {
        return;
    }
    sqlite3_close(cat->db);
    pthread_mutex_destroy(&cat->lock);
    free(cat);
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

#define ROW_COLUMNS                                                            \
    "v.id, v.name, v.uuid, v.format, v.backend, v.location, "                  \
    "COALESCE(b.name, ''), v.size, v.state, v.created_at, v.updated_at, "      \
    "v.owns_image, COALESCE(v.uid, -1), COALESCE(v.gid, -1), "                 \
    "COALESCE(v.mode, -1) "                                                    \
    "FROM volumes v LEFT JOIN volumes b ON b.id = v.base_id"

static const char *const state_names[] = {
    [VD_STATE_CREATING] = "creating", [VD_STATE_READY] = "ready",
    [VD_STATE_DELETING] = "deleting", [VD_STATE_MISSING] = "missing",
    [VD_STATE_CORRUPT] = "corrupt",
};

const char *vd_volume_state_name(enum vd_volume_state state)
{
    if ((size_t)state >= sizeof(state_names) / sizeof(state_names[0])) {
        return "unknown";
    }
    return state_names[state];
}

/* The catalog's text to a state. The schema's CHECK admits only the
 * stored states; anything else (a hand-edited file) reads as missing,
 * which is not served and is logged at start-up. */
static enum vd_volume_state state_from_text(const unsigned char *t)
{
    for (size_t i = 0;
         t != NULL && i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (i != VD_STATE_CORRUPT &&
            strcmp((const char *)t, state_names[i]) == 0) {
            return (enum vd_volume_state)i;
        }
    }
    return VD_STATE_MISSING;
}

static void read_row(sqlite3_stmt *st, struct vd_volume_row *row)
{
    memset(row, 0, sizeof(*row));
    row->id = sqlite3_column_int64(st, 0);
    copy_text(row->name, sizeof(row->name), st, 1);
    copy_text(row->uuid, sizeof(row->uuid), st, 2);
    copy_text(row->format, sizeof(row->format), st, 3);
    copy_text(row->backend, sizeof(row->backend), st, 4);
    copy_text(row->location, sizeof(row->location), st, 5);
    copy_text(row->base, sizeof(row->base), st, 6);
    row->size = (uint64_t)sqlite3_column_int64(st, 7);
    row->state = state_from_text(sqlite3_column_text(st, 8));
    row->created_at = sqlite3_column_int64(st, 9);
    row->updated_at = sqlite3_column_int64(st, 10);
    row->owns_image = sqlite3_column_int(st, 11) != 0;
    row->uid = sqlite3_column_int64(st, 12);
    row->gid = sqlite3_column_int64(st, 13);
    row->mode = sqlite3_column_int(st, 14);
}

/* Bind v, or NULL when it is negative (not recorded). */
static void bind_or_null(sqlite3_stmt *st, int i, int64_t v)
{
    if (v >= 0) {
        sqlite3_bind_int64(st, i, v);
    } else {
        sqlite3_bind_null(st, i);
    }
}

int vd_catalog_volume_insert(struct vd_catalog *cat, struct vd_volume_row *row,
                             struct vd_error *err)
{
    static const char sql[] =
        "INSERT INTO volumes (name, uuid, format, backend, location, base_id, "
        "size, state, created_at, updated_at, owns_image, uid, gid, mode) "
        "VALUES (?1, ?2, ?3, ?4, ?5, (SELECT id FROM volumes WHERE name = "
        "?6), ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13)";
    sqlite3_stmt *st = NULL;
    int ret = 0;

    row->created_at = row->updated_at = (int64_t)time(NULL);
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, row->uuid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, row->format, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, row->backend, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, row->location, -1, SQLITE_STATIC);
    if (row->base[0] != '\0') {
        sqlite3_bind_text(st, 6, row->base, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 6);
    }
    sqlite3_bind_int64(st, 7, (sqlite3_int64)row->size);
    if (row->state == VD_STATE_CORRUPT) {
        ret = vd_error_set(err, -EINVAL, "state 'corrupt' is not stored");
        goto out;
    }
    sqlite3_bind_text(st, 8, vd_volume_state_name(row->state), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, row->created_at);
    sqlite3_bind_int(st, 10, row->owns_image ? 1 : 0);
    bind_or_null(st, 11, row->uid);
    bind_or_null(st, 12, row->gid);
    bind_or_null(st, 13, row->mode);
    ret = vd_catalog_step_change(cat, st, err, "insert");
    if (ret == -EEXIST) {
        vd_error_set(err, ret, "volume '%s' already exists", row->name);
    } else if (ret == 0) {
        row->id = sqlite3_last_insert_rowid(cat->db);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

int vd_catalog_volume_get(struct vd_catalog *cat, const char *name,
                          struct vd_volume_row *row, struct vd_error *err)
{
    static const char sql[] = "SELECT " ROW_COLUMNS " WHERE v.name = ?1";
    sqlite3_stmt *st = NULL;
    int ret = 0;
    int rc;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare get");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_row(st, row);
    } else if (rc == SQLITE_DONE) {
        ret = vd_error_set(err, -ENOENT, "no volume named '%s'", name);
    } else {
        ret = vd_catalog_db_error(cat, err, "get");
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

/* Run one UPDATE/DELETE that must touch exactly one named row. */
static int change_one(struct vd_catalog *cat, const char *sql, const char *name,
                      const char *text, int64_t num, struct vd_error *err)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare update");
        goto out;
    }
    /* Statements take ?1 name, and optionally ?2 value and ?3 timestamp. */
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 3) {
        if (text != NULL) {
            sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_int64(st, 2, num);
        }
        sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
    }
    ret = vd_catalog_step_change(cat, st, err, "update");
    if (ret == -EEXIST) {
        ret = vd_error_set(err, -EBUSY, "volume '%s' is still referenced: %s",
                           name, sqlite3_errmsg(cat->db));
    } else if (ret == -ENOENT) {
        vd_error_set(err, ret, "no volume named '%s'", name);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

/* A volume's state, on the row whose key column (name or uuid) is key.
 * 'corrupt' is a served volume's condition, never stored. */
static int set_state(struct vd_catalog *cat, const char *sql, const char *key,
                     enum vd_volume_state state, struct vd_error *err)
{
    if (state == VD_STATE_CORRUPT) {
        return vd_error_set(err, -EINVAL, "state 'corrupt' is not stored");
    }
    return change_one(cat, sql, key, vd_volume_state_name(state), 0, err);
}

int vd_catalog_volume_set_state(struct vd_catalog *cat, const char *name,
                                enum vd_volume_state state,
                                struct vd_error *err)
{
    return set_state(cat,
                     "UPDATE volumes SET state = ?2, updated_at = ?3 "
                     "WHERE name = ?1",
                     name, state, err);
}

/* By uuid: a job or a removal acts on the row it made or read, never on
 * a newer volume that took the same name. */
int vd_catalog_volume_set_state_uuid(struct vd_catalog *cat, const char *uuid,
                                     enum vd_volume_state state,
                                     struct vd_error *err)
{
    return set_state(cat,
                     "UPDATE volumes SET state = ?2, updated_at = ?3 "
                     "WHERE uuid = ?1",
                     uuid, state, err);
}

int vd_catalog_volume_delete_uuid(struct vd_catalog *cat, const char *uuid,
                                  struct vd_error *err)
{
    return change_one(cat, "DELETE FROM volumes WHERE uuid = ?1", uuid, NULL, 0,
                      err);
}

int vd_catalog_volume_set_size(struct vd_catalog *cat, const char *name,
                               uint64_t size, struct vd_error *err)
{
    return change_one(cat,
                      "UPDATE volumes SET size = ?2, updated_at = ?3 "
                      "WHERE name = ?1",
                      name, NULL, (int64_t)size, err);
}

int vd_catalog_volume_set_owner(struct vd_catalog *cat, const char *name,
                                int64_t uid, int64_t gid, int mode,
                                struct vd_error *err)
{
    static const char sql[] = "UPDATE volumes SET uid = ?2, gid = ?3, "
                              "mode = ?4, updated_at = ?5 WHERE name = ?1";
    sqlite3_stmt *st = NULL;
    int ret;

    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare owner update");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    bind_or_null(st, 2, uid);
    bind_or_null(st, 3, gid);
    bind_or_null(st, 4, mode);
    sqlite3_bind_int64(st, 5, (int64_t)time(NULL));
    ret = vd_catalog_step_change(cat, st, err, "owner update");
    if (ret == -ENOENT) {
        vd_error_set(err, ret, "no volume named '%s'", name);
    } else if (ret == -EEXIST) {
        vd_error_set(err, -EINVAL, "owner or mode out of range");
        ret = -EINVAL;
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

int vd_catalog_volume_delete(struct vd_catalog *cat, const char *name,
                             struct vd_error *err)
{
    return change_one(cat, "DELETE FROM volumes WHERE name = ?1", name, NULL, 0,
                      err);
}

static void read_volume_row(sqlite3_stmt *st, void *elem)
{
    read_row(st, elem);
}

int vd_catalog_volume_list(struct vd_catalog *cat, struct vd_volume_row **rows,
                           struct vd_error *err)
{
    static const char sql[] = "SELECT " ROW_COLUMNS " ORDER BY v.id";
    sqlite3_stmt *st = NULL;
    int ret;

    *rows = NULL;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare list");
    } else {
        ret = vd_catalog_collect(cat, st, sizeof(**rows), read_volume_row,
                                 (void **)rows, err, "list");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}
