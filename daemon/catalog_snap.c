/* catalog_snap.c — the catalog's record of snapshots (schema 002). */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog-int.h"
#include "vd_error.h"

int vd_catalog_snapshot_insert(struct vd_catalog *cat, const char *volume,
                               const struct vd_snapshot_row *row,
                               struct vd_error *err)
{
    static const char sql[] =
        "INSERT INTO snapshots (volume_id, name, size, created_at) "
        "SELECT id, ?2, ?3, ?4 FROM volumes WHERE name = ?1";
    sqlite3_stmt *st = NULL;
    int ret = 0;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare snapshot insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, volume, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)row->size);
    sqlite3_bind_int64(st, 4,
                       row->created_at ? row->created_at : (int64_t)time(NULL));
    ret = vd_catalog_step_change(cat, st, err, "snapshot insert");
    if (ret == -EEXIST) {
        vd_error_set(err, ret,
                     "volume '%s' already has a snapshot named "
                     "'%s'",
                     volume, row->name);
    } else if (ret == -ENOENT) {
        vd_error_set(err, ret, "no volume named '%s'", volume);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

int vd_catalog_snapshot_delete(struct vd_catalog *cat, const char *volume,
                               const char *name, struct vd_error *err)
{
    static const char sql[] =
        "DELETE FROM snapshots WHERE name = ?2 AND volume_id = "
        "(SELECT id FROM volumes WHERE name = ?1)";
    sqlite3_stmt *st = NULL;
    int ret = 0;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare snapshot delete");
        goto out;
    }
    sqlite3_bind_text(st, 1, volume, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    ret = vd_catalog_step_change(cat, st, err, "snapshot delete");
    if (ret == -ENOENT) {
        vd_error_set(err, ret, "volume '%s' has no snapshot named '%s'", volume,
                     name);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

static void read_snapshot_row(sqlite3_stmt *st, void *elem)
{
    struct vd_snapshot_row *r = elem;
    const unsigned char *name = sqlite3_column_text(st, 0);
    snprintf(r->name, sizeof(r->name), "%s", name ? (const char *)name : "");
    r->size = (uint64_t)sqlite3_column_int64(st, 1);
    r->created_at = sqlite3_column_int64(st, 2);
}

int vd_catalog_snapshot_list(struct vd_catalog *cat, const char *volume,
                             struct vd_snapshot_row **rows,
                             struct vd_error *err)
{
    static const char sql[] =
        "SELECT s.name, s.size, s.created_at FROM snapshots s "
        "JOIN volumes v ON v.id = s.volume_id WHERE v.name = ?1 "
        "ORDER BY s.id";
    sqlite3_stmt *st = NULL;
    int ret;

    *rows = NULL;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare snapshot list");
    } else {
        sqlite3_bind_text(st, 1, volume, -1, SQLITE_STATIC);
        ret = vd_catalog_collect(cat, st, sizeof(**rows), read_snapshot_row,
                                 (void **)rows, err, "snapshot list");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}
