/* cluster.c — the clusters the operator named and their connections.
 *
 * main.c registers each cluster once at start-up (name, ceph.conf, cephx
 * user). The first image opened on a cluster connects its one rados
 * handle, which every later image of that cluster shares; a connect that
 * fails is not remembered, so the next open tries again. Also parses and
 * formats "rbd://CLUSTER/POOL/IMAGE" locations. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rbd-int.h"
#include "vd_error.h"

#define MAX_CLUSTERS 16
#define DEFAULT_CONNECT_TIMEOUT_S 10
#define DEFAULT_OP_TIMEOUT_S 30

struct rbd_cluster {
    char name[VD_RBD_CLUSTER_MAX];
    char *conf_path; /* never shown: the API names clusters only */
    char *client_id;
    pthread_mutex_t lock;
    rados_t rados; /* lock; NULL until connected */
    /* The last failed connect (lock): when (CLOCK_MONOTONIC seconds, 0 =
     * none), its errno and message, for callers that would rather fail
     * at once than wait out another connect timeout (fail_fast). */
    int64_t failed_at;
    int failed_code;
    char failed_msg[256];
    /* A look of one of its images outlived a reader's wait (refresh.c):
     * readers of its other images do not wait either, until a look
     * finishes. */
    atomic_bool stuck;
};

/* Written by vd_rbd_cluster_add while no image opens (start-up, one
 * thread), read without a lock afterwards. */
static struct rbd_cluster clusters[MAX_CLUSTERS];
static int n_clusters;

static struct rbd_cluster *cluster_find(const char *name)
{
    for (int i = 0; i < n_clusters; i++) {
        if (strcmp(clusters[i].name, name) == 0) {
            return &clusters[i];
        }
    }
    return NULL;
}

/* ---- names and locations --------------------------------------------- */

static bool cluster_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= VD_RBD_CLUSTER_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '-' || c == '_'));
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Pool and image names: [A-Za-z0-9_.-], not starting with '.', below max. */
static bool object_name_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n >= max || s[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int vd_rbd_location_parse(const char *location, struct vd_rbd_location *out,
                          struct vd_error *err)
{
    const char *p, *slash1, *slash2;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (strncmp(location, VD_RBD_SCHEME, strlen(VD_RBD_SCHEME)) != 0) {
        return vd_error_set(err, -EINVAL,
                            "RBD location must be rbd://CLUSTER/POOL/IMAGE");
    }
    p = location + strlen(VD_RBD_SCHEME);
    slash1 = strchr(p, '/');
    slash2 = slash1 != NULL ? strchr(slash1 + 1, '/') : NULL;
    if (slash1 == NULL || slash2 == NULL || strchr(slash2 + 1, '/') != NULL) {
        return vd_error_set(err, -EINVAL,
                            "RBD location must be rbd://CLUSTER/POOL/IMAGE");
    }
    n = (size_t)(slash1 - p);
    if (n >= sizeof(out->cluster)) {
        return vd_error_set(err, -EINVAL, "bad cluster name in RBD location");
    }
    memcpy(out->cluster, p, n);
    if (!cluster_name_ok(out->cluster)) {
        return vd_error_set(err, -EINVAL, "bad cluster name in RBD location");
    }
    n = (size_t)(slash2 - slash1 - 1);
    if (!object_name_ok(slash1 + 1, n, sizeof(out->pool))) {
        return vd_error_set(err, -EINVAL, "bad pool name in RBD location");
    }
    memcpy(out->pool, slash1 + 1, n);
    n = strlen(slash2 + 1);
    if (!object_name_ok(slash2 + 1, n, sizeof(out->image))) {
        return vd_error_set(err, -EINVAL, "bad image name in RBD location");
    }
    memcpy(out->image, slash2 + 1, n);
    return 0;
}

int vd_rbd_location_format(char *buf, size_t len, const char *cluster,
                           const char *pool, const char *image)
{
    int n;
    if (!cluster_name_ok(cluster) ||
        !object_name_ok(pool, strlen(pool), VD_RBD_POOL_MAX) ||
        !object_name_ok(image, strlen(image), VD_RBD_IMAGE_MAX)) {
        return -EINVAL;
    }
    n = snprintf(buf, len, VD_RBD_SCHEME "%s/%s/%s", cluster, pool, image);
    return n < 0 || (size_t)n >= len ? -ERANGE : n;
}

/* ---- locations from a create request ---------------------------------- */

/* The registered names as "a, b" (for messages). */
static void cluster_names(char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < n_clusters; i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s%.*s", i ? ", " : "",
                 (int)sizeof(clusters[i].name), clusters[i].name);
    }
}

int vd_rbd_locate(const struct vd_locate_req *req, char *buf, size_t len,
                  struct vd_error *err)
{
    char names[256], image[VD_RBD_IMAGE_MAX];
    const char *cluster = req->cluster;
    int n;

    if (req->uri != NULL) {
        return vd_error_set(err, -EINVAL,
                            "'backend.uri' is not taken by "
                            "type \"rbd\": give 'backend.pool' and "
                            "'backend.image'");
    }
    cluster_names(names, sizeof(names));
    if (n_clusters == 0) {
        return vd_error_set(err, -EINVAL,
                            "no RBD cluster is configured "
                            "(vdiskd --rbd-cluster NAME=CONF)");
    }
    if (cluster == NULL && n_clusters > 1) {
        return vd_error_set(err, -EINVAL,
                            "'backend.cluster' is required: "
                            "several RBD clusters are configured (%s)",
                            names);
    }
    if (cluster == NULL) {
        cluster = clusters[0].name;
    }
    if (cluster_find(cluster) == NULL) {
        return vd_error_set(err, -EINVAL,
                            "unknown RBD cluster \"%.40s\" in "
                            "'backend.cluster'; configured: %s",
                            cluster, names);
    }
    if (req->pool == NULL) {
        return vd_error_set(err, -EINVAL,
                            "'backend.pool' is required with "
                            "type \"rbd\"");
    }
    if (!object_name_ok(req->pool, strlen(req->pool), VD_RBD_POOL_MAX)) {
        return vd_error_set(err, -EINVAL,
                            "bad pool name \"%.140s\" in "
                            "'backend.pool': use A-Z a-z 0-9 _ . -, not "
                            "starting with '.'",
                            req->pool);
    }
    if (req->image == NULL && !req->create) {
        return vd_error_set(err, -EINVAL,
                            "'backend.image' is required to "
                            "attach an existing RBD image (give 'size' to "
                            "create a new one)");
    }
    snprintf(image, sizeof(image), "%s", req->image != NULL ? req->image : "");
    if (req->image == NULL) {
        snprintf(image, sizeof(image), "vdiskd-%s",
                 req->uuid != NULL ? req->uuid : "");
    }
    if (!object_name_ok(image, strlen(image), VD_RBD_IMAGE_MAX)) {
        return vd_error_set(err, -EINVAL,
                            "bad image name \"%.80s\" in "
                            "'backend.image': use A-Z a-z 0-9 _ . -, not "
                            "starting with '.'",
                            image);
    }
    n = vd_rbd_location_format(buf, len, cluster, req->pool, image);
    if (n < 0) {
        return vd_error_set(err, n, "RBD location too long");
    }
    return n;
}

/* ---- the registry ----------------------------------------------------- */

int vd_rbd_cluster_add(const char *name, const char *conf_path,
                       const char *client_id, struct vd_error *err)
{
    struct rbd_cluster *c;

    if (name == NULL || !cluster_name_ok(name)) {
        return vd_error_set(
            err, -EINVAL,
            "bad RBD cluster name '%s' (want [a-z0-9][a-z0-9_-]*, "
            "at most %d characters)",
            name != NULL ? name : "", VD_RBD_CLUSTER_MAX - 1);
    }
    for (int i = 0; i < n_clusters; i++) {
        if (strcmp(clusters[i].name, name) == 0) {
            return vd_error_set(err, -EEXIST, "RBD cluster '%s' given twice",
                                name);
        }
    }
    if (n_clusters == MAX_CLUSTERS) {
        return vd_error_set(err, -ENOSPC, "more than %d RBD clusters",
                            MAX_CLUSTERS);
    }
    if (conf_path == NULL || access(conf_path, R_OK) < 0) {
        int e = conf_path == NULL ? EINVAL : errno;
        return vd_error_set(err, -e, "RBD cluster '%s': cannot read '%s': %s",
                            name, conf_path != NULL ? conf_path : "",
                            strerror(e));
    }
    c = &clusters[n_clusters];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->conf_path = strdup(conf_path);
    c->client_id = strdup(client_id != NULL ? client_id : "admin");
    if (c->conf_path == NULL || c->client_id == NULL) {
        free(c->conf_path);
        free(c->client_id);
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);
    n_clusters++;
    return 0;
}

void vd_rbd_cluster_set_stuck(const char *name, bool stuck)
{
    struct rbd_cluster *c = cluster_find(name);
    if (c != NULL && atomic_load(&c->stuck) != stuck) {
        atomic_store(&c->stuck, stuck);
    }
}

bool vd_rbd_cluster_stuck(const char *name)
{
    struct rbd_cluster *c = cluster_find(name);
    return c != NULL && atomic_load(&c->stuck);
}

int vd_rbd_cluster_count(void)
{
    return n_clusters;
}

const char *vd_rbd_cluster_name(int i)
{
    return i >= 0 && i < n_clusters ? clusters[i].name : NULL;
}

void vd_rbd_clusters_shutdown(void)
{
    for (int i = 0; i < n_clusters; i++) {
        struct rbd_cluster *c = &clusters[i];
        if (c->rados != NULL) {
            rados_shutdown(c->rados);
        }
        pthread_mutex_destroy(&c->lock);
        free(c->conf_path);
        free(c->client_id);
    }
    memset(clusters, 0, sizeof(clusters));
    n_clusters = 0;
}

/* ---- connecting ------------------------------------------------------- */

static unsigned env_secs(const char *var, unsigned def)
{
    const char *v = getenv(var);
    char *end;
    unsigned long n;
    if (v == NULL || *v == '\0') {
        return def;
    }
    n = strtoul(v, &end, 10);
    return *end != '\0' || n < 1 || n > 3600 ? def : (unsigned)n;
}

/* Set option to secs unless the operator's ceph.conf changed it from
 * Ceph's default (unset_value): their setting wins. */
static int set_timeout(rados_t r, const char *option, double unset_value,
                       unsigned secs)
{
    char cur[64], val[32];
    if (rados_conf_get(r, option, cur, sizeof(cur)) == 0 &&
        strtod(cur, NULL) != unset_value) {
        return 0;
    }
    snprintf(val, sizeof(val), "%u", secs);
    return rados_conf_set(r, option, val);
}

static int cluster_connect(struct rbd_cluster *c, struct vd_error *err)
{
    unsigned connect_s =
        env_secs("VD_RBD_CONNECT_TIMEOUT_S", DEFAULT_CONNECT_TIMEOUT_S);
    unsigned op_s = env_secs("VD_RBD_OP_TIMEOUT_S", DEFAULT_OP_TIMEOUT_S);
    rados_t r = NULL;
    int ret;

    ret = rados_create(&r, c->client_id);
    if (ret < 0) {
        return vd_error_set(err, ret,
                            "RBD cluster '%s': cannot create a "
                            "client: %s",
                            c->name, strerror(-ret));
    }
    ret = rados_conf_read_file(r, c->conf_path);
    if (ret < 0) {
        vd_error_set(err, ret,
                     "RBD cluster '%s': cannot read its "
                     "configuration: %s",
                     c->name, strerror(-ret));
        goto out_shutdown;
    }
    /* Note 2 in rbd-int.h; and no client messages on our stderr. */
    if ((ret = rados_conf_set(r, "rbd_cache", "false")) < 0 ||
        (ret = rados_conf_set(r, "log_to_stderr", "false")) < 0 ||
        (ret = rados_conf_set(r, "err_to_stderr", "false")) < 0 ||
        /* By default a connect waits up to 300 s, OSD I/O forever. */
        (ret = set_timeout(r, "client_mount_timeout", 300, connect_s)) < 0 ||
        (ret = set_timeout(r, "rados_mon_op_timeout", 0, connect_s)) < 0 ||
        (ret = set_timeout(r, "rados_osd_op_timeout", 0, op_s)) < 0) {
        vd_error_set(err, ret,
                     "RBD cluster '%s': cannot set client "
                     "options: %s",
                     c->name, strerror(-ret));
        goto out_shutdown;
    }
    ret = rados_connect(r);
    if (ret < 0) {
        const char *why = strerror(-ret);
        if (ret == -ETIMEDOUT) {
            why = "no monitor answered in time";
        } else if (ret == -EACCES || ret == -EPERM) {
            why = "authentication failed";
        } else if (ret == -ENOENT) {
            why = "no keyring for the client";
        }
        vd_error_set(err, ret == -ENOENT ? -EACCES : ret,
                     "cannot connect to RBD cluster '%s' as client.%s: %s",
                     c->name, c->client_id, why);
        ret = ret == -ENOENT ? -EACCES : ret;
        goto out_shutdown;
    }
    c->rados = r;
    return 0;

out_shutdown:
    rados_shutdown(r);
    return ret;
}

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

int vd_rbd_cluster_get(const char *name, bool fail_fast, rados_t *out,
                       struct vd_error *err)
{
    struct rbd_cluster *c = cluster_find(name);
    unsigned connect_s =
        env_secs("VD_RBD_CONNECT_TIMEOUT_S", DEFAULT_CONNECT_TIMEOUT_S);
    int ret = 0;

    *out = NULL;
    if (c == NULL) {
        return vd_error_set(err, -ENOENT, "no RBD cluster named '%s'", name);
    }
    pthread_mutex_lock(&c->lock);
    if (c->rados == NULL && fail_fast && c->failed_at != 0 &&
        mono_s() - c->failed_at < (int64_t)connect_s) {
        ret = vd_error_set(err, c->failed_code, "%s", c->failed_msg);
    } else if (c->rados == NULL) {
        struct vd_error e = {0};
        ret = cluster_connect(c, &e);
        if (ret < 0) {
            c->failed_at = mono_s();
            c->failed_code = ret;
            snprintf(c->failed_msg, sizeof(c->failed_msg), "%.*s",
                     (int)sizeof(c->failed_msg) - 1, e.msg);
            vd_error_set(err, ret, "%s", e.msg);
        } else {
            c->failed_at = 0;
        }
    }
    *out = c->rados;
    pthread_mutex_unlock(&c->lock);
    return ret;
}

int vd_rbd_ioctx(const struct vd_rbd_location *loc, bool fail_fast,
                 rados_ioctx_t *out, struct vd_error *err)
{
    rados_t r;
    int ret = vd_rbd_cluster_get(loc->cluster, fail_fast, &r, err);
    if (ret < 0) {
        return ret;
    }
    ret = rados_ioctx_create(r, loc->pool, out);
    if (ret == -ENOENT) {
        return vd_error_set(err, ret, "RBD cluster '%s' has no pool '%s'",
                            loc->cluster, loc->pool);
    }
    if (ret < 0) {
        return vd_error_set(err, ret,
                            "RBD cluster '%s': cannot use pool "
                            "'%s': %s",
                            loc->cluster, loc->pool, strerror(-ret));
    }
    return 0;
}

int vd_rbd_io_errno(struct rbd_state *s, int64_t r)
{
    if (r >= 0) {
        if (atomic_load_explicit(&s->io_timed_out, memory_order_relaxed)) {
            atomic_store(&s->io_timed_out, false);
        }
        return 0;
    }
    if (r == -ESHUTDOWN) { /* EBLOCKLISTED: fenced by a takeover */
        atomic_store(&s->fenced, true);
    }
    if (r == -ETIMEDOUT || r == -ESHUTDOWN) {
        atomic_store(&s->io_timed_out, true);
        return -EIO;
    }
    return (int)r;
}
