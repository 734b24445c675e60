/* registry.c — the one table of block drivers, in probe order.
 *
 * Listed explicitly: a driver that registered itself from a constructor
 * would silently vanish when the static library drops its object file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "io_util.h"
#include "vd_error.h"

extern const struct vd_driver vd_driver_qcow2;
extern const struct vd_driver vd_driver_raw;
#ifdef VD_WITH_NBD
extern const struct vd_driver vd_driver_nbd;
#endif
#ifdef VD_WITH_RBD
extern const struct vd_driver vd_driver_rbd;
#endif

static const struct vd_driver *const drivers[] = {
    &vd_driver_qcow2, /* before raw: raw matches anything */
    &vd_driver_raw,
#ifdef VD_WITH_NBD
    &vd_driver_nbd, /* no probe: only chosen by name */
#endif
#ifdef VD_WITH_RBD
    &vd_driver_rbd, /* no probe: only chosen by name */
#endif
    NULL,
};

const struct vd_driver *const *vd_driver_list(void)
{
    return drivers;
}

unsigned vd_driver_caps(const struct vd_driver *drv)
{
    return drv->caps;
}

void vd_driver_names(unsigned caps, bool is_file, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0) {
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; drivers[i] != NULL; i++) {
        if ((drivers[i]->caps & caps) != caps ||
            drivers[i]->is_file != is_file) {
            continue;
        }
        int w = snprintf(buf + n, cap - n, "%s%s", n > 0 ? ", " : "",
                         drivers[i]->name);
        if (w < 0 || (size_t)w >= cap - n) {
            break; /* truncated: still NUL terminated */
        }
        n += (size_t)w;
    }
}

const struct vd_driver *vd_driver_find(const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; drivers[i] != NULL; i++) {
        if (strcmp(drivers[i]->name, name) == 0) {
            return drivers[i];
        }
    }
    return NULL;
}

const struct vd_driver *vd_driver_probe_file(const char *path,
                                             struct vd_error *err)
{
    uint8_t buf[4096];
    const struct vd_driver *best = NULL;
    int best_score = 0;
    ssize_t n;
    int fd = vd_open_regular(path, O_RDONLY);
    if (fd < 0) {
        vd_error_set(err, fd, "cannot open '%s': %s", path,
                     fd == -EINVAL ? "images are regular files only, "
                                     "and this is not one"
                                   : strerror(-fd));
        return NULL;
    }
    n = pread(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        vd_error_set(err, -errno, "cannot read '%s': %s", path,
                     strerror(errno));
        close(fd);
        return NULL;
    }
    close(fd);
    for (size_t i = 0; drivers[i] != NULL; i++) {
        if (drivers[i]->probe == NULL) {
            continue;
        }
        int score = drivers[i]->probe(buf, (size_t)n);
        if (score > best_score) {
            best_score = score;
            best = drivers[i];
        }
    }
    if (best == NULL) {
        vd_error_set(err, -EINVAL, "'%s' is in no known image format", path);
    }
    return best;
}
