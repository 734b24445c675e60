/* test_volume_race.c — what the FUSE export asks of a volume without
 * entering its I/O gate (lookup, readonly, size: getattr and open) races
 * linked-clone creates and deletes, which reopen the base read-only and
 * writable again. The image a reopen closes must never be read by those
 * paths: under AddressSanitizer a read of the old image is a
 * heap-use-after-free, and the readers must never see a served base
 * vanish from lookups. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "vd_error.h"
#include "vd_test.h"
#include "volume.h"

#define ROUNDS 150
#define READERS 3

static char dir[] = "/tmp/vdrace.XXXXXX";

struct reader {
    struct vd_volmgr *mgr;
    uint64_t ino;
    atomic_bool *stop;
    unsigned long looks, readonly_seen, lost;
};

/* What getattr, lookup and open do: find the volume, ask its mode and
 * size, drop the reference. */
static void *reader(void *p)
{
    struct reader *r = p;
    while (!atomic_load(r->stop)) {
        struct vd_volume *vol = vd_volmgr_lookup_ino(r->mgr, r->ino);
        if (vol == NULL) {
            r->lost++;
            continue;
        }
        if (vd_volume_readonly(vol)) {
            r->readonly_seen++;
        }
        if (vd_volume_size(vol) != 4 << 20) {
            r->lost++;
        }
        vd_volume_unref(vol);
        vol = vd_volmgr_lookup(r->mgr, "base");
        if (vol != NULL) {
            (void)vd_volume_readonly(vol);
            vd_volume_unref(vol);
        }
        r->looks++;
    }
    return NULL;
}

int main(void)
{
    struct vd_catalog *cat = NULL;
    struct vd_volmgr *mgr = NULL;
    struct vd_error err = {0};
    struct vd_volume_info *info = calloc(1, sizeof(*info));
    char db[128];
    atomic_bool stop = false;

    CHECK(info != NULL && mkdtemp(dir) != NULL);
    snprintf(db, sizeof(db), "%s/catalog.db", dir);
    struct vd_volmgr_config cfg = {
        .data_dir = dir,
        .mount_dir = "/mnt/test",
        .default_format = "qcow2",
    };
    CHECK_EQ(vd_catalog_open(db, &cat, &err), 0);
    CHECK_EQ(vd_volmgr_new(&cfg, cat, &mgr, &err), 0);

    struct vd_volume_spec base = {.name = "base", .size = 4 << 20};
    CHECK_EQ(vd_volmgr_create(mgr, &base, info, &err), 0);
    struct vd_volume *bv = vd_volmgr_lookup(mgr, "base");
    CHECK(bv != NULL && !vd_volume_readonly(bv));

    pthread_t th[READERS];
    struct reader rd[READERS];
    for (int i = 0; i < READERS; i++) {
        rd[i] = (struct reader){
            .mgr = mgr, .ino = vd_volume_ino(bv), .stop = &stop};
        pthread_create(&th[i], NULL, reader, &rd[i]);
    }
    /* Each create freezes the base (reopened read-only), each delete of
     * its only clone thaws it (reopened writable). */
    struct vd_volume_spec clone = {.name = "clone", .base = "base"};
    int failures = 0;
    for (int i = 0; i < ROUNDS; i++) {
        vd_error_clear(&err);
        if (vd_volmgr_create(mgr, &clone, info, &err) < 0) {
            fprintf(stderr, "create: %s\n", err.msg);
            failures++;
            continue;
        }
        if (!vd_volume_readonly(bv)) {
            failures++; /* a base with clones must be read-only */
        }
        if (vd_volmgr_delete(mgr, "clone", false, &err) < 0) {
            fprintf(stderr, "delete: %s\n", err.msg);
            failures++;
        }
        if (vd_volume_readonly(bv)) {
            failures++; /* and writable again without them */
        }
    }
    atomic_store(&stop, true);
    unsigned long looks = 0, ro = 0, lost = 0;
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        looks += rd[i].looks;
        ro += rd[i].readonly_seen;
        lost += rd[i].lost;
    }
    fprintf(stderr,
            "test_volume_race: %d reopen pairs, %lu looks (%lu saw "
            "read-only), %lu lost\n",
            ROUNDS, looks, ro, lost);
    CHECK_EQ(failures, 0);
    CHECK_EQ(lost, 0); /* a reopen never hides the base */
    CHECK(ro > 0);     /* the readers did overlap the frozen phases */

    vd_volume_unref(bv);
    vd_volmgr_free(mgr);
    vd_catalog_close(cat);
    free(info);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    return vd_test_done("test_volume_race");
}
