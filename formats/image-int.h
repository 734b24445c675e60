/* image-int.h — struct vd_image, private to formats/.
 *
 * The dispatcher (image.c) and the drivers see an image's members; every
 * layer above formats/ holds an opaque pointer and uses the accessors in
 * image.h, so that what the core owns (readonly, the counters, the
 * location) cannot be changed behind its back. */
#ifndef VD_IMAGE_INT_H
#define VD_IMAGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "image.h"

struct vd_image_counters {
    atomic_uint_fast64_t reads, writes, flushes, discards;
    atomic_uint_fast64_t bytes_read, bytes_written;
    atomic_uint_fast64_t errors;
    atomic_uint_fast64_t async; /* reads, writes, flushes done asynchronously */
};

struct vd_image {
    const struct vd_driver *drv; /* fixed while open */
    void *opaque;                /* drv->instance_size bytes of driver state */
    bool readonly;               /* image.c's: from the open options, or the
                                    driver's VD_OPEN_READONLY; fixed while open */
    char *location;              /* path or URI it was opened from */
    pthread_mutex_t serial;      /* held around calls when !drv->parallel */
    struct vd_image_counters stats;
    /* The host file was found deleted (drv->host_links said 0): every
     * request fails with -EIO from then on. Never cleared. */
    atomic_bool unlinked;
    /* CLOCK_MONOTONIC_COARSE, ns, of the last periodic look at the
     * links (image.c, links_due). */
    atomic_int_fast64_t links_checked_ns;
};

#endif
