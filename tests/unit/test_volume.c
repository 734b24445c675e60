/* test_volume.c — the volume manager without FUSE or HTTP: create,
 * validation, I/O through the gate, delete while open, resize, and
 * start-up repair of what a crash left half done, and the empty volumes
 * files created on the mount make. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "image.h"
#include "vd_error.h"
#include "vd_test.h"
#include "volume-int.h"
#include "volume.h"

static char dir[] = "/tmp/vdvol.XXXXXX";
static char db[128];

static struct vd_volmgr *start(struct vd_catalog **cat)
{
    struct vd_error err = {0};
    struct vd_volmgr *mgr = NULL;
    struct vd_volmgr_config cfg = {
        .data_dir = dir,
        .mount_dir = "/mnt/test",
        .default_format = "raw",
    };
    CHECK_EQ(vd_catalog_open(db, cat, &err), 0);
    CHECK_EQ(vd_volmgr_new(&cfg, *cat, &mgr, &err), 0);
    return mgr;
}

static void stop(struct vd_volmgr *mgr, struct vd_catalog *cat)
{
    vd_volmgr_free(mgr);
    vd_catalog_close(cat);
}

struct writer_arg {
    struct vd_volume *vol;
    int id;
    int errors;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    char buf[4096];
    memset(buf, a->id, sizeof(buf));
    for (int i = 0; i < 2000; i++) {
        if (vd_volume_pwrite(a->vol, buf, sizeof(buf),
                             (uint64_t)(a->id * 64 + i % 64) * 4096) < 0) {
            a->errors++;
        }
    }
    return NULL;
}

int main(void)
{
    struct vd_catalog *cat = NULL;
    struct vd_volmgr *mgr;
    struct vd_error err = {0};
    struct vd_volume_info info, *list = NULL;
    char buf[4096];

    CHECK(mkdtemp(dir) != NULL);
    snprintf(db, sizeof(db), "%s/catalog.db", dir);
    mgr = start(&cat);

    struct vd_volume_spec spec = {.name = "v1", .size = 4 << 20};
    CHECK_EQ(vd_volmgr_create(mgr, &spec, &info, &err), 0);
    CHECK_EQ(info.row.state, VD_STATE_READY);
    CHECK(strcmp(info.path, "/mnt/test/v1") == 0);
    CHECK(strncmp(info.row.location, dir, strlen(dir)) == 0);
    CHECK_EQ(access(info.row.location, F_OK), 0);

    /* Bad input is refused and creates nothing. */
    const char *bad_names[] = {
        "",
        ".",
        "..",
        "A",
        "a/b",
        "-x",
        "_x",
        "0123456789012345678901234567890123456789012345678901234567890123x",
        NULL};
    for (int i = 0; bad_names[i] != NULL; i++) {
        struct vd_volume_spec b = {.name = bad_names[i], .size = 1 << 20};
        vd_error_clear(&err);
        CHECK_EQ(vd_volmgr_create(mgr, &b, &info, &err), -EINVAL);
    }
    struct vd_volume_spec b2 = {.name = "v2", .size = 1000};
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, NULL), -EINVAL);
    b2.size = 0;
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, NULL), -EINVAL);
    b2.size = 1ULL << 60;
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, NULL), -EINVAL);
    b2.size = 1 << 20;
    b2.format = "vmdk";
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, NULL), -EINVAL);
    vd_error_clear(&err);
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
    CHECK(strstr(err.msg, "unknown format \"vmdk\" in 'format'; known: "
                          "qcow2, raw") != NULL);
    b2.format = NULL;

    /* The rules the API leaves to the volume manager: which backend
     * types exist (from the registry), what each needs. */
    vd_error_clear(&err);
    b2.backend_type = "iscsi";
    b2.backend_uri = "iscsi://host/x";
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
    CHECK(strstr(err.msg, "unknown backend type \"iscsi\" in "
                          "'backend.type'; known: file") != NULL);
#ifdef VD_WITH_RBD
    /* RBD names its images by cluster, pool and image, never a uri. */
    vd_error_clear(&err);
    b2.backend_type = "rbd";
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
    CHECK(strstr(err.msg, "'backend.uri' is not taken") != NULL);
    b2.backend_uri = NULL;
    b2.backend_pool = "rbd";
    vd_error_clear(&err);
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
    CHECK(strstr(err.msg, "no RBD cluster is configured") != NULL);
    b2.backend_pool = NULL;
    b2.backend_uri = "rbd:pool/x";
#endif
    vd_error_clear(&err);
    b2.backend_type = "qcow2"; /* a file format is not a backend type */
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
    b2.backend_type = "file";
    vd_error_clear(&err);
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
    CHECK(strstr(err.msg, "'backend.uri' is not allowed") != NULL);
    b2.backend_uri = NULL;
    if (vd_driver_find("nbd") != NULL) {
        b2.backend_type = "nbd";
        vd_error_clear(&err);
        CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
        CHECK(strstr(err.msg, "'backend.uri' is required") != NULL);
    }
    b2.backend_type = NULL;
    b2.size = 0;
    vd_error_clear(&err);
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -EINVAL);
    CHECK(strstr(err.msg, "'size' is required") != NULL);
    b2.size = 1 << 20;

    /* Linked clones ask capabilities: raw cannot hold a backing file. */
    b2.base = "v1";
    vd_error_clear(&err);
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, &err), -ENOTSUP);
    CHECK(strstr(err.msg, "format 'raw' cannot make linked clones") != NULL);
    CHECK(strstr(err.msg, "qcow2") != NULL);
    b2.base = NULL;

    b2.import_path = "/etc/passwd";
    CHECK_EQ(vd_volmgr_create(mgr, &b2, &info, NULL), -EACCES);
    b2.import_path = NULL;
    CHECK_EQ(vd_volmgr_create(mgr, &spec, &info, NULL), -EEXIST);
    CHECK_EQ(vd_volmgr_list(mgr, &list, NULL), 1);
    free(list);

    /* I/O from several threads through the gate, one closing it midway. */
    struct vd_volume *vol = vd_volmgr_lookup(mgr, "v1");
    CHECK(vol != NULL);
    CHECK(vd_volmgr_lookup(mgr, "nope") == NULL);
    CHECK(vd_volmgr_lookup_ino(mgr, vd_volume_ino(vol)) == vol);
    vd_volume_unref(vol);
    pthread_t th[4];
    struct writer_arg wa[4];
    for (int i = 0; i < 4; i++) {
        wa[i] = (struct writer_arg){.vol = vol, .id = i + 1};
        pthread_create(&th[i], NULL, writer, &wa[i]);
    }
    for (int i = 0; i < 20; i++) {
        vd_volume_gate_close(vol);
        CHECK_EQ(atomic_load(&vol->inflight), 0);
        vd_volume_gate_open(vol);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(wa[i].errors, 0);
    }
    CHECK_EQ(vd_volume_pread(vol, buf, sizeof(buf), 3 * 64 * 4096), 0);
    CHECK_EQ(buf[0], 3);

    /* Open file blocks delete unless forced. */
    CHECK_EQ(vd_volume_open_file(vol), 0);
    CHECK_EQ(vd_volmgr_get(mgr, "v1", &info, NULL), 0);
    CHECK_EQ(info.open_count, 1);
    CHECK(info.writes >= 8000);
    vd_error_clear(&err);
    CHECK_EQ(vd_volmgr_delete(mgr, "v1", false, &err), -EBUSY);
    CHECK(strstr(err.msg, "open") != NULL);
    vd_volume_release_file(vol);

    /* Raw volumes have no snapshots: a clear -ENOTSUP, nothing changes. */
    vd_error_clear(&err);
    CHECK_EQ(vd_volmgr_snapshot_create(mgr, "v1", "s1", NULL, NULL, &err),
             -ENOTSUP);
    CHECK(strstr(err.msg, "no snapshots") != NULL);
    CHECK_EQ(vd_volmgr_snapshot_create(mgr, "v1", "../x", NULL, NULL, NULL),
             -EINVAL);
    CHECK_EQ(vd_volmgr_snapshot_create(mgr, "nope", "s1", NULL, NULL, NULL),
             -ENOENT);
    struct vd_snapshot_view *snaps = NULL;
    CHECK_EQ(vd_volmgr_snapshot_list(mgr, "v1", &snaps, NULL), -ENOTSUP);
    CHECK_EQ(vd_volmgr_snapshot_revert(mgr, "v1", "s1", true, NULL), -ENOTSUP);

    /* Resize grows, refuses to shrink. */
    CHECK_EQ(vd_volmgr_resize(mgr, "v1", 8 << 20, NULL), 0);
    CHECK_EQ(vd_volume_size(vol), 8 << 20);
    CHECK_EQ(vd_volmgr_resize(mgr, "v1", 1 << 20, NULL), -EINVAL);
    vd_volume_unref(vol);
    stop(mgr, cat);

    /* Restart: the volume is back with its size and data. */
    mgr = start(&cat);
    CHECK_EQ(vd_volmgr_get(mgr, "v1", &info, NULL), 0);
    CHECK_EQ(info.row.size, 8 << 20);
    vol = vd_volmgr_lookup(mgr, "v1");
    CHECK(vol != NULL);
    CHECK_EQ(vd_volume_pread(vol, buf, sizeof(buf), 2 * 64 * 4096), 0);
    CHECK_EQ(buf[100], 2);
    vd_volume_unref(vol);

    /* A crash mid-create: a 'creating' row with its file. Start-up removes
     * both. A crash mid-delete: a 'deleting' row; start-up finishes it. */
    struct vd_volume_row row = {0};
    snprintf(row.name, sizeof(row.name), "half");
    snprintf(row.uuid, sizeof(row.uuid),
             "11111111-2222-3333-4444-555555555555");
    snprintf(row.format, sizeof(row.format), "raw");
    snprintf(row.backend, sizeof(row.backend), "file");
    snprintf(row.location, sizeof(row.location), "%s/images/half.raw", dir);
    row.state = VD_STATE_CREATING;
    row.size = 1 << 20;
    CHECK_EQ(vd_catalog_volume_insert(cat, &row, NULL), 0);
    FILE *f = fopen(row.location, "w");
    CHECK(f != NULL);
    fclose(f);
    CHECK_EQ(vd_catalog_volume_set_state(cat, "v1", VD_STATE_DELETING, NULL),
             0);
    CHECK_EQ(vd_volmgr_get(mgr, "v1", &info, NULL), 0);
    char v1_location[VD_LOCATION_MAX];
    snprintf(v1_location, sizeof(v1_location), "%s", info.row.location);
    stop(mgr, cat);

    mgr = start(&cat);
    CHECK_EQ(vd_volmgr_get(mgr, "half", &info, NULL), -ENOENT);
    CHECK(access(row.location, F_OK) != 0);
    CHECK_EQ(vd_volmgr_get(mgr, "v1", &info, NULL), -ENOENT);
    CHECK(access(v1_location, F_OK) != 0);

    /* A ready volume whose image vanished is kept and marked missing. */
    struct vd_volume_spec s3 = {.name = "v3", .size = 1 << 20};
    CHECK_EQ(vd_volmgr_create(mgr, &s3, &info, NULL), 0);
    stop(mgr, cat);
    CHECK_EQ(unlink(info.row.location), 0);
    mgr = start(&cat);
    CHECK_EQ(vd_volmgr_get(mgr, "v3", &info, NULL), 0);
    CHECK_EQ(info.row.state, VD_STATE_MISSING);
    vol = vd_volmgr_lookup(mgr, "v3");
    CHECK(vol != NULL && vd_volmgr_lookup_ino(mgr, vd_volume_ino(vol)) == NULL);
    CHECK_EQ(vd_volume_pread(vol, buf, 512, 0), -EIO);
    vd_volume_unref(vol);
    CHECK_EQ(vd_volmgr_delete(mgr, "v3", false, NULL), 0);
    CHECK_EQ(vd_volmgr_list(mgr, &list, NULL), 0);
    free(list);
    stop(mgr, cat);

    /* A file created on the mount: an empty volume, served but 'creating'
     * until a resize gives it a size; a restart before that removes it. */
    mgr = start(&cat);
    const char *fmts[] = {"raw", "qcow2"};
    for (int i = 0; i < 2; i++) {
        struct vd_volume_spec se = {
            .name = "e1", .format = fmts[i], .empty = true};
        CHECK_EQ(vd_volmgr_create(mgr, &se, &info, &err), 0);
        CHECK_EQ(info.row.size, 0);
        CHECK_EQ(info.row.state, VD_STATE_CREATING);
        CHECK_EQ(vd_volmgr_get(mgr, "e1", &info, NULL), 0);
        CHECK_EQ(vd_volmgr_list(mgr, &list, NULL), 1);
        free(list);
        CHECK_EQ(vd_volmgr_create(mgr, &se, &info, NULL), -EEXIST);
        CHECK_EQ(vd_volmgr_resize(mgr, "e1", 1 << 20, NULL), 0);
        CHECK_EQ(vd_volmgr_get(mgr, "e1", &info, NULL), 0);
        CHECK_EQ(info.row.state, VD_STATE_READY);
        CHECK_EQ(info.row.size, 1 << 20);
        vol = vd_volmgr_lookup(mgr, "e1");
        CHECK(vol != NULL);
        memset(buf, 0x3c, sizeof(buf));
        CHECK_EQ(vd_volume_pwrite(vol, buf, 4096, (1 << 20) - 4096), 0);
        memset(buf, 0, sizeof(buf));
        CHECK_EQ(vd_volume_pread(vol, buf, 4096, (1 << 20) - 4096), 0);
        CHECK_EQ(buf[4095], 0x3c);
        vd_volume_unref(vol);
        CHECK_EQ(vd_volmgr_delete(mgr, "e1", false, NULL), 0);
    }
    struct vd_volume_spec se2 = {.name = "e2", .empty = true};
    CHECK_EQ(vd_volmgr_create(mgr, &se2, &info, NULL), 0);
    char e2_location[VD_LOCATION_MAX];
    snprintf(e2_location, sizeof(e2_location), "%s", info.row.location);
    stop(mgr, cat);
    mgr = start(&cat);
    CHECK_EQ(vd_volmgr_get(mgr, "e2", &info, NULL), -ENOENT);
    CHECK(access(e2_location, F_OK) != 0);
    stop(mgr, cat);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    return vd_test_done("test_volume");
}
