/* catalog_qos.c — the catalog's record of QoS limits (schema 004, see
 * catalog_qos.h). A limit of 0 (none) is stored as NULL. */
#include "catalog_qos.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog-int.h"
#include "vd_error.h"

#define LIMIT_COLUMNS                                                          \
    "iops, read_iops, write_iops, bps, read_bps, write_bps, burst_seconds"

/* Bind the limits to parameters first .. first + 6. */
static void bind_limits(sqlite3_stmt *st, int first,
                        const struct vd_qos_limits *lim)
{
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        if (lim->rate[i] != 0) {
            sqlite3_bind_int64(st, first + i, (sqlite3_int64)lim->rate[i]);
        } else {
            sqlite3_bind_null(st, first + i);
        }
    }
    if (lim->burst_seconds > 0) {
        sqlite3_bind_double(st, first + VD_QOS_NLIMITS, lim->burst_seconds);
    } else {
        sqlite3_bind_null(st, first + VD_QOS_NLIMITS);
    }
}

/* Read the limits from columns first .. first + 6. */
static void read_limits(sqlite3_stmt *st, int first, struct vd_qos_limits *lim)
{
    for (int i = 0; i < VD_QOS_NLIMITS; i++) {
        sqlite3_int64 v = sqlite3_column_int64(st, first + i);
        lim->rate[i] = v > 0 ? (uint64_t)v : 0;
    }
    lim->burst_seconds = sqlite3_column_double(st, first + VD_QOS_NLIMITS);
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

int vd_catalog_qos_get(struct vd_catalog *cat, const char *volume,
                       struct vd_qos_row *row, struct vd_error *err)
{
    static const char sql[] =
        "SELECT " LIMIT_COLUMNS ", (SELECT name FROM qos_groups g "
        "WHERE g.id = q.group_id) FROM volume_qos q "
        "JOIN volumes v ON v.id = q.volume_id WHERE v.name = ?1";
    sqlite3_stmt *st = NULL;
    int ret = 0, rc;

    memset(row, 0, sizeof(*row));
    snprintf(row->name, sizeof(row->name), "%s", volume);
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare qos get");
        goto out;
    }
    sqlite3_bind_text(st, 1, volume, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_limits(st, 0, &row->lim);
        copy_text(row->group, sizeof(row->group), st, VD_QOS_NLIMITS + 1);
    } else if (rc != SQLITE_DONE) {
        ret = vd_catalog_db_error(cat, err, "qos get");
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

int vd_catalog_qos_put(struct vd_catalog *cat, const struct vd_qos_row *row,
                       struct vd_error *err)
{
    static const char sql[] =
        "INSERT OR REPLACE INTO volume_qos (volume_id, " LIMIT_COLUMNS
        ", group_id) SELECT v.id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
        "(SELECT id FROM qos_groups WHERE name = ?9) "
        "FROM volumes v WHERE v.name = ?1 "
        "AND (?9 IS NULL OR EXISTS (SELECT 1 FROM qos_groups WHERE name = ?9))";
    sqlite3_stmt *st = NULL;
    int ret;

    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare qos put");
        goto out;
    }
    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
    bind_limits(st, 2, &row->lim);
    if (row->group[0] != '\0') {
        sqlite3_bind_text(st, 9, row->group, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 9);
    }
    ret = vd_catalog_step_change(cat, st, err, "qos put");
    if (ret == -ENOENT || ret == -EEXIST) {
        ret = vd_error_set(err, -ENOENT, "no volume '%s' or qos group '%s'",
                           row->name, row->group);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

/* Run one change of a group: sql binds name to ?1 and the limits to ?2..?8
 * when lim is set. */
static int group_change(struct vd_catalog *cat, const char *sql,
                        const char *name, const struct vd_qos_limits *lim,
                        struct vd_error *err, const char *what)
{
    sqlite3_stmt *st = NULL;
    int ret;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, what);
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (lim != NULL) {
        bind_limits(st, 2, lim);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)time(NULL));
    }
    ret = vd_catalog_step_change(cat, st, err, what);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}

int vd_catalog_qos_group_insert(struct vd_catalog *cat,
                                const struct vd_qos_row *row,
                                struct vd_error *err)
{
    int ret = group_change(cat,
                           "INSERT INTO qos_groups (name, " LIMIT_COLUMNS
                           ", created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                           "?7, ?8, ?9)",
                           row->name, &row->lim, err, "qos group insert");
    if (ret == -EEXIST) {
        vd_error_set(err, ret, "a qos group named '%s' exists already",
                     row->name);
    }
    return ret;
}

int vd_catalog_qos_group_update(struct vd_catalog *cat,
                                const struct vd_qos_row *row,
                                struct vd_error *err)
{
    int ret = group_change(cat,
                           "UPDATE qos_groups SET iops = ?2, read_iops = ?3, "
                           "write_iops = ?4, bps = ?5, read_bps = ?6, "
                           "write_bps = ?7, burst_seconds = ?8 "
                           "WHERE name = ?1",
                           row->name, &row->lim, err, "qos group update");
    if (ret == -ENOENT) {
        vd_error_set(err, ret, "no qos group named '%s'", row->name);
    }
    return ret;
}

int vd_catalog_qos_group_delete(struct vd_catalog *cat, const char *name,
                                struct vd_error *err)
{
    int ret = group_change(cat, "DELETE FROM qos_groups WHERE name = ?1", name,
                           NULL, err, "qos group delete");
    if (ret == -ENOENT) {
        vd_error_set(err, ret, "no qos group named '%s'", name);
    } else if (ret == -EEXIST) {
        ret = vd_error_set(err, -EBUSY, "qos group '%s' is used by volumes",
                           name);
    }
    return ret;
}

static void read_group_row(sqlite3_stmt *st, void *elem)
{
    struct vd_qos_row *r = elem;
    copy_text(r->name, sizeof(r->name), st, 0);
    read_limits(st, 1, &r->lim);
    r->group[0] = '\0';
    r->users = sqlite3_column_int(st, 1 + VD_QOS_NLIMITS + 1);
}

int vd_catalog_qos_group_list(struct vd_catalog *cat, const char *name,
                              struct vd_qos_row **rows, struct vd_error *err)
{
    static const char sql[] =
        "SELECT name, " LIMIT_COLUMNS ", (SELECT count(*) FROM volume_qos q "
        "WHERE q.group_id = g.id) FROM qos_groups g "
        "WHERE ?1 IS NULL OR name = ?1 ORDER BY name";
    sqlite3_stmt *st = NULL;
    int ret;

    *rows = NULL;
    pthread_mutex_lock(&cat->lock);
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ret = vd_catalog_db_error(cat, err, "prepare qos group list");
    } else {
        if (name != NULL) {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_null(st, 1);
        }
        ret = vd_catalog_collect(cat, st, sizeof(**rows), read_group_row,
                                 (void **)rows, err, "qos group list");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&cat->lock);
    return ret;
}
