/* volume_import.c — what an import may take in. The import dirs the
 * operator named are the only sources; the data directory (the catalog,
 * other volumes' images) never is, even when an import dir contains it;
 * and an imported image must be one a create could have made: a regular
 * file whose whole backing chain opens from the import dirs, of a size
 * that vd_volume_size_check accepts. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"
#include "vd_error.h"
#include "volume-int.h"

int vd_volmgr_outside_data(struct vd_volmgr *mgr, const char *real,
                           const char *what, struct vd_error *err)
{
    size_t n = strlen(mgr->data_dir);
    /* data_dir is canonical, as real is: a prefix test on a path
     * boundary is enough ("/" as a data dir contains everything). */
    if (strncmp(real, mgr->data_dir, n) == 0 &&
        (real[n] == '/' || real[n] == '\0' || n == 1)) {
        return vd_error_set(err, -EACCES,
                            "%s path '%s' lies inside vdiskd's data directory "
                            "'%s' (the catalog and volume images), which is "
                            "never a source, whatever --import-dir allows",
                            what, real, mgr->data_dir);
    }
    return 0;
}

int vd_volmgr_import_check(struct vd_volmgr *mgr, const char *real,
                           struct vd_error *err)
{
    struct vd_open_opts o = {
        .readonly = true,
        .allowed_dirs = (const char *const *)mgr->import_dirs,
        .denied_dirs = mgr->data_dir_list,
    };
    struct vd_image *img = NULL;
    struct vd_error why = {0};
    struct stat st;
    uint64_t size;
    int ret;

    if ((ret = vd_volmgr_outside_data(mgr, real, "import", err)) < 0) {
        return ret;
    }
    /* stat, not open: opening a FIFO would wait for a writer. */
    if (stat(real, &st) < 0) {
        return vd_error_set(err, -EACCES, "import path '%s': %s", real,
                            strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        return vd_error_set(err, -EISDIR,
                            "import '%s' is a directory, not an image file",
                            real);
    }
    if (!S_ISREG(st.st_mode)) {
        return vd_error_set(err, -ENOTSUP,
                            "import '%s' is not a regular file; only image "
                            "files can be imported",
                            real);
    }
    /* Open it as it will be served: a backing chain that loops, runs
     * deeper than the drivers allow, or leaves the import dirs is refused
     * here, before anything is copied. */
    ret = vd_image_open(NULL, real, &o, &img, &why);
    if (ret < 0) {
        /* A backing file that does not exist is the image's fault, not
         * a missing resource of the API (404 would name the URL). */
        return vd_error_set(err, ret == -ENOENT ? -ENOTSUP : ret, "%s",
                            why.code != 0 ? why.msg : strerror(-ret));
    }
    size = vd_image_length(img);
    vd_image_close(img);
    vd_error_clear(&why);
    if (vd_volume_size_check(size, "size", &why) < 0) {
        return vd_error_set(err, -ENOTSUP,
                            "import '%s' holds an image of %" PRIu64
                            " bytes, which cannot be a volume: %s",
                            real, size, why.msg);
    }
    return 0;
}
