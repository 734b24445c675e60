/* vd_rbd.h — what the layers above formats/ need to know about Ceph RBD:
 * the clusters the operator named, and the location string of an RBD
 * image, "rbd://CLUSTER/POOL/IMAGE".
 *
 * A location names a cluster by the operator's name for it, never by
 * its configuration file or key, so it can be stored and shown. */
#ifndef VD_RBD_H
#define VD_RBD_H

#include <stddef.h>

struct vd_error;

#define VD_RBD_SCHEME "rbd://"
#define VD_RBD_CLUSTER_MAX 32 /* bytes of a cluster name, NUL included */
#define VD_RBD_POOL_MAX 128
#define VD_RBD_IMAGE_MAX 256

/* A parsed location. */
struct vd_rbd_location {
    char cluster[VD_RBD_CLUSTER_MAX];
    char pool[VD_RBD_POOL_MAX];
    char image[VD_RBD_IMAGE_MAX];
};

/* Register a cluster: name is how locations and the API call it
 * ([a-z0-9][a-z0-9_-]*), conf_path a ceph.conf naming the monitors and
 * the keyring, client_id the cephx user without "client." (NULL =
 * "admin"). Nothing connects yet: the first image opened on the cluster
 * does. Call while no other thread opens RBD images (start-up). -EEXIST for a
 * name given twice, -EINVAL for a bad name, -errno if conf_path cannot
 * be read. */
int vd_rbd_cluster_add(const char *name, const char *conf_path,
                       const char *client_id, struct vd_error *err);

/* How many clusters are registered, and the name of the i-th. */
int vd_rbd_cluster_count(void);
const char *vd_rbd_cluster_name(int i);

/* Disconnect and forget every cluster. Only once no RBD image is open
 * (at exit; tests). */
void vd_rbd_clusters_shutdown(void);

/* Remove the RBD image at location (it must have no snapshots and no
 * one may have it open). -ENOENT if there is no such image, -ENOTEMPTY
 * while it has snapshots, -EBUSY while it is open or has clones. */
int vd_rbd_image_remove(const char *location, struct vd_error *err);

/* Parse "rbd://CLUSTER/POOL/IMAGE" into out. Pool and image names are
 * [A-Za-z0-9_.-], not starting with '.'. -EINVAL with err set if the
 * location is malformed; the cluster need not be registered. */
int vd_rbd_location_parse(const char *location, struct vd_rbd_location *out,
                          struct vd_error *err);

/* Write the location of cluster/pool/image into buf: its length, or
 * -EINVAL if a name is invalid, -ERANGE if len is too small. */
int vd_rbd_location_format(char *buf, size_t len, const char *cluster,
                           const char *pool, const char *image);

#endif
