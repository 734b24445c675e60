/* test_catalog.c — migrations, CRUD, duplicate names and reopen. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "schema.h"
#include "vd_error.h"
#include "vd_test.h"

static void make_row(struct vd_volume_row *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->uuid, sizeof(r->uuid), "uuid-%s", name);
    snprintf(r->format, sizeof(r->format), "raw");
    snprintf(r->backend, sizeof(r->backend), "file");
    snprintf(r->location, sizeof(r->location), "/x/%s.raw", name);
    r->state = VD_STATE_CREATING;
    r->size = 1 << 20;
}

int main(void)
{
    char dir[] = "/tmp/vdcat.XXXXXX";
    char path[64];
    struct vd_catalog *cat = NULL;
    struct vd_error err = {0};
    struct vd_volume_row r, got, *rows = NULL;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/catalog.db", dir);
    CHECK_EQ(vd_catalog_open(path, &cat, &err), 0);
    CHECK_EQ(vd_catalog_schema_version(cat), vd_migration_count);
    CHECK(vd_migration_count >= 1);

    make_row(&r, "a");
    CHECK_EQ(vd_catalog_volume_insert(cat, &r, &err), 0);
    CHECK(r.id > 0 && r.created_at > 0);
    make_row(&r, "a");
    snprintf(r.uuid, sizeof(r.uuid), "other");
    CHECK_EQ(vd_catalog_volume_insert(cat, &r, &err), -EEXIST);
    make_row(&r, "b");
    snprintf(r.base, sizeof(r.base), "a");
    CHECK_EQ(vd_catalog_volume_insert(cat, &r, NULL), 0);

    CHECK_EQ(vd_catalog_volume_get(cat, "b", &got, NULL), 0);
    CHECK(strcmp(got.base, "a") == 0);
    CHECK_EQ(vd_catalog_volume_get(cat, "zz", &got, NULL), -ENOENT);
    CHECK_EQ(vd_catalog_volume_set_state(cat, "a", VD_STATE_READY, NULL), 0);
    /* Every stored state reads back as itself; corrupt is never stored. */
    for (int st = VD_STATE_CREATING; st <= VD_STATE_MISSING; st++) {
        CHECK_EQ(vd_catalog_volume_set_state(cat, "a", st, NULL), 0);
        CHECK_EQ(vd_catalog_volume_get(cat, "a", &got, NULL), 0);
        CHECK_EQ(got.state, st);
    }
    CHECK_EQ(vd_catalog_volume_set_state(cat, "a", VD_STATE_CORRUPT, NULL),
             -EINVAL);
    CHECK_EQ(vd_catalog_volume_get(cat, "a", &got, NULL), 0);
    CHECK_EQ(got.state, VD_STATE_MISSING);
    CHECK(strcmp(vd_volume_state_name(VD_STATE_CORRUPT), "corrupt") == 0);
    CHECK(strcmp(vd_volume_state_name(VD_STATE_READY), "ready") == 0);
    CHECK_EQ(vd_catalog_volume_set_state(cat, "a", VD_STATE_READY, NULL), 0);
    CHECK_EQ(vd_catalog_volume_set_size(cat, "a", 2 << 20, NULL), 0);
    CHECK_EQ(vd_catalog_volume_set_state(cat, "zz", VD_STATE_READY, NULL),
             -ENOENT);
    /* Snapshot records belong to a volume and go with it. */
    struct vd_snapshot_row sr = {.name = "s1", .size = 1 << 20};
    struct vd_snapshot_row *srows = NULL;
    CHECK_EQ(vd_catalog_snapshot_insert(cat, "b", &sr, NULL), 0);
    CHECK_EQ(vd_catalog_snapshot_insert(cat, "b", &sr, NULL), -EEXIST);
    CHECK_EQ(vd_catalog_snapshot_insert(cat, "a", &sr, NULL), 0);
    CHECK_EQ(vd_catalog_snapshot_insert(cat, "zz", &sr, NULL), -ENOENT);
    CHECK_EQ(vd_catalog_snapshot_list(cat, "b", &srows, NULL), 1);
    CHECK(srows != NULL && strcmp(srows[0].name, "s1") == 0);
    free(srows);
    CHECK_EQ(vd_catalog_snapshot_delete(cat, "a", "s1", NULL), 0);
    CHECK_EQ(vd_catalog_snapshot_delete(cat, "a", "s1", NULL), -ENOENT);

    /* A base with a clone cannot be removed (foreign key). */
    CHECK(vd_catalog_volume_delete(cat, "a", NULL) < 0);
    vd_catalog_close(cat);

    /* Reopen: migrations do not run twice, rows persist. */
    cat = NULL;
    CHECK_EQ(vd_catalog_open(path, &cat, &err), 0);
    CHECK_EQ(vd_catalog_volume_list(cat, &rows, NULL), 2);
    CHECK(strcmp(rows[0].name, "a") == 0 && rows[0].size == 2 << 20);
    CHECK_EQ(rows[0].state, VD_STATE_READY);
    free(rows);
    CHECK_EQ(vd_catalog_volume_delete(cat, "b", NULL), 0); /* cascades */
    CHECK_EQ(vd_catalog_snapshot_list(cat, "b", &srows, NULL), 0);
    free(srows);
    CHECK_EQ(vd_catalog_volume_delete(cat, "a", NULL), 0);
    CHECK_EQ(vd_catalog_volume_delete(cat, "a", NULL), -ENOENT);
    CHECK_EQ(vd_catalog_volume_list(cat, &rows, NULL), 0);
    free(rows);
    vd_catalog_close(cat);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    return vd_test_done("test_catalog");
}
