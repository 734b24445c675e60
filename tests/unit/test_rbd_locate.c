/* test_rbd_locate.c — how the RBD driver turns a create request's
 * cluster, pool and image into a location (vd_driver.locate), splits it
 * back (location_parts), and which requests it refuses, with which
 * message. Needs no cluster: registering one only reads its ceph.conf. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "vd_error.h"
#include "vd_rbd.h"
#include "vd_test.h"

static char loc[512];

static int locate(const char *cluster, const char *pool, const char *image,
                  bool create, struct vd_error *err)
{
    struct vd_locate_req r = {
        .cluster = cluster,
        .pool = pool,
        .image = image,
        .uuid = "0b9c",
        .create = create,
    };
    vd_error_clear(err);
    return vd_image_locate("rbd", &r, loc, sizeof(loc), err);
}

int main(void)
{
    struct vd_error err = {0};
    struct vd_location_parts parts;
    char conf[] = "/tmp/vdrbdconf.XXXXXX";
    int fd = mkstemp(conf);

    CHECK(fd >= 0);
    close(fd);

    /* No cluster configured: refused before anything else is looked at. */
    CHECK_EQ(locate(NULL, "rbd", NULL, true, &err), -EINVAL);
    CHECK(strstr(err.msg, "no RBD cluster is configured") != NULL);

    CHECK_EQ(vd_rbd_cluster_add("c1", conf, NULL, &err), 0);
    /* One cluster: it may be left out; a new image is named by uuid. */
    CHECK(locate(NULL, "rbd", NULL, true, &err) > 0);
    CHECK(strcmp(loc, "rbd://c1/rbd/vdiskd-0b9c") == 0);
    CHECK(locate("c1", "rbd", "vm-disk", false, &err) > 0);
    CHECK(strcmp(loc, "rbd://c1/rbd/vm-disk") == 0);
    CHECK_EQ(vd_image_location_parts("rbd", loc, &parts), 0);
    CHECK(strcmp(parts.cluster, "c1") == 0 && strcmp(parts.pool, "rbd") == 0 &&
          strcmp(parts.image, "vm-disk") == 0);

    /* Attaching needs the image's name. */
    CHECK_EQ(locate(NULL, "rbd", NULL, false, &err), -EINVAL);
    CHECK(strstr(err.msg, "'backend.image' is required") != NULL);
    CHECK_EQ(locate(NULL, NULL, "x", false, &err), -EINVAL);
    CHECK(strstr(err.msg, "'backend.pool' is required") != NULL);
    CHECK_EQ(locate(NULL, "bad/pool", NULL, true, &err), -EINVAL);
    CHECK(strstr(err.msg, "bad pool name \"bad/pool\" in 'backend.pool'") !=
          NULL);
    CHECK_EQ(locate(NULL, ".hidden", NULL, true, &err), -EINVAL);
    CHECK_EQ(locate(NULL, "rbd", "a b", true, &err), -EINVAL);
    CHECK(strstr(err.msg, "'backend.image'") != NULL);
    CHECK_EQ(locate("c9", "rbd", NULL, true, &err), -EINVAL);
    CHECK(strstr(err.msg, "unknown RBD cluster \"c9\"") != NULL &&
          strstr(err.msg, "configured: c1") != NULL);
    {
        struct vd_locate_req r = {.uri = "rbd://c1/rbd/x", .pool = "rbd"};
        vd_error_clear(&err);
        CHECK_EQ(vd_image_locate("rbd", &r, loc, sizeof(loc), &err), -EINVAL);
        CHECK(strstr(err.msg, "'backend.uri' is not taken") != NULL);
    }

    /* Two clusters: the request must say which. */
    CHECK_EQ(vd_rbd_cluster_add("c2", conf, "other", &err), 0);
    CHECK_EQ(locate(NULL, "rbd", NULL, true, &err), -EINVAL);
    CHECK(strstr(err.msg, "'backend.cluster' is required") != NULL &&
          strstr(err.msg, "c1, c2") != NULL);
    CHECK(locate("c2", "rbd", NULL, true, &err) > 0);
    CHECK(strcmp(loc, "rbd://c2/rbd/vdiskd-0b9c") == 0);

    /* A URI driver has no locate and no parts. */
    CHECK_EQ(vd_image_location_parts("raw", "/x", &parts), -ENOTSUP);

    vd_rbd_clusters_shutdown();
    unlink(conf);
    return vd_test_done("test_rbd_locate");
}
