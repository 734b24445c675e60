/* main.c — vdiskd: wires every layer together.
 *
 * Parses the command line, opens the catalog, starts the volume manager,
 * the FUSE export and the API, then waits for SIGTERM/SIGINT and shuts
 * down in reverse order: stop taking requests, flush, unmount, close. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "catalog.h"
#include "fault.h"
#include "fuse_export.h"
#include "ioloop.h"
#include "log.h"
#include "notify.h"
#ifdef VD_WITH_RBD
#include "vd_rbd.h"
#endif
#include "vd_error.h"
#include "volume.h"

#define MAX_IMPORT_DIRS 32
#define MAX_SOCKET_DIRS 32
#define MAX_RBD_CLUSTERS 16
#define MAX_RBD_POOLS 32

/* API flags: listeners, tokens, TLS (api/api.h). */
struct api_options {
    const char *listen[VD_API_MAX_LISTEN];
    int n_listen;
    const char *token_file;
    bool public_metrics;
    mode_t socket_mode;
    gid_t socket_gid;
    const char *tls_cert, *tls_key;
};

struct options {
    const char *data_dir;
    const char *mount_dir;
    struct api_options api;
    const char *format;
    const char *import_dirs[MAX_IMPORT_DIRS + 1];
    int n_import_dirs;
    const char *socket_dirs[MAX_SOCKET_DIRS + 1];
    int n_socket_dirs;
    uid_t uid;
    gid_t gid;
    mode_t mode;
    int threads;
    int poll_us;
    bool verbose;
    bool host_cache;
    bool fuse_uring;
    bool passthrough; /* --passthrough auto */
    /* RBD: --rbd-cluster NAME=CONF, --rbd-id, --rbd-pool-allow */
    const char *rbd_clusters[MAX_RBD_CLUSTERS];
    int n_rbd_clusters;
    const char *rbd_id;
    const char *rbd_pools[MAX_RBD_POOLS + 1];
    int n_rbd_pools;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: vdiskd [OPTION]...\n"
        "Serve virtual disks as files on a FUSE mount, managed over a REST "
        "API.\n"
        "\n"
        "  --data-dir DIR      catalog and images (default: ./vdiskd-data,\n"
        "                      env VDISKD_DATA_DIR)\n"
        "  --mount DIR         where volume files appear (default: ./vols,\n"
        "                      env VDISKD_MOUNT)\n"
        "  --listen HOST:PORT  API address (default: 127.0.0.1:8080,\n"
        "                      env VDISKD_LISTEN); without --api-token-file "
        "only\n"
        "                      loopback addresses are allowed\n"
        "  --listen unix:PATH  API on a unix socket, where root needs no "
        "token\n"
        "                      (repeatable, together with one HOST:PORT)\n"
        "  --api-token-file FILE  'NAME ROLE TOKEN' lines (role admin or "
        "read),\n"
        "                      mode 0600; clients send 'Authorization: Bearer\n"
        "                      TOKEN'; SIGHUP rereads it\n"
        "                      (env VDISKD_API_TOKEN_FILE)\n"
        "  --public-metrics    /metrics and /openapi.json need no token\n"
        "  --api-socket-mode MODE  octal mode of unix sockets (default: 0660)\n"
        "  --api-socket-group GROUP  group of unix sockets\n"
        "  --tls-cert FILE --tls-key FILE  HTTPS on the TCP listener (PEM)\n"
        "  --format FMT        default format of new volumes: qcow2 or raw\n"
        "                      (default: qcow2 when built in, else raw)\n"
        "  --import-dir DIR    allow imports and backing files from DIR "
        "(repeatable)\n"
        "  --nbd-socket-dir DIR allow NBD volumes on unix sockets in DIR "
        "(repeatable;\n"
        "                      default: none, env VDISKD_NBD_SOCKET_DIR)\n"
        "  --owner USER[:GROUP] owner of new volumes' files (default: "
        "root:root)\n"
        "  --file-mode MODE    octal mode of new volumes' files (default: "
        "0660)\n"
        "  --threads N         FUSE worker threads (default: 32)\n"
        "  --poll-us N         after its last request the I/O thread looks "
        "for\n"
        "                      the next one this long before it sleeps; 0 "
        "saves\n"
        "                      CPU, more saves wake-ups (default: 50,\n"
        "                      env VDISKD_POLL_US)\n"
        "  --cache MODE        image I/O: 'direct' bypasses the host page "
        "cache\n"
        "                      (O_DIRECT), 'host' uses it (default: direct,\n"
        "                      env VDISKD_CACHE)\n"
        "  --fuse-uring        take FUSE requests through io_uring queues "
        "when the\n"
        "                      kernel offers them (6.14+, fuse module "
        "parameter\n"
        "                      enable_uring=Y); /dev/fuse otherwise\n"
        "  --passthrough MODE  'auto' lets the kernel serve raw volumes' "
        "reads and\n"
        "                      writes from their image files where it can "
        "(Linux\n"
        "                      6.9+), 'off' never (default: auto, env\n"
        "                      VDISKD_PASSTHROUGH)\n"
        "  --rbd-cluster NAME=CONF  serve RBD volumes from the Ceph cluster "
        "that\n"
        "                      ceph.conf CONF names, called NAME in the API\n"
        "                      (repeatable)\n"
        "  --rbd-id ID         cephx client of the RBD clusters (default: "
        "admin)\n"
        "  --rbd-pool-allow POOL  allow RBD volumes in POOL (repeatable; "
        "default:\n"
        "                      none)\n"
        "  --verbose           log debug messages\n"
        "  --log-format FMT    text (default) or json: one object a line "
        "(env\n"
        "                      VDISKD_LOG_FORMAT)\n"
        "  --help              show this help and exit\n"
        "  --version           show the version and exit\n");
}

static int parse_owner(const char *s, struct options *o)
{
    char buf[256];
    char *group;
    snprintf(buf, sizeof(buf), "%s", s);
    group = strchr(buf, ':');
    if (group != NULL) {
        *group++ = '\0';
    }
    if (buf[0] != '\0') {
        struct passwd *pw = getpwnam(buf);
        char *end;
        long v = strtol(buf, &end, 10);
        if (pw != NULL) {
            o->uid = pw->pw_uid;
            o->gid = pw->pw_gid;
        } else if (*end == '\0' && v >= 0) {
            o->uid = (uid_t)v;
        } else {
            return -1;
        }
    }
    if (group != NULL && group[0] != '\0') {
        struct group *gr = getgrnam(group);
        char *end;
        long v = strtol(group, &end, 10);
        if (gr != NULL) {
            o->gid = gr->gr_gid;
        } else if (*end == '\0' && v >= 0) {
            o->gid = (gid_t)v;
        } else {
            return -1;
        }
    }
    return 0;
}

static int parse_passthrough(const char *s, struct options *o)
{
    if (strcmp(s, "auto") == 0 || strcmp(s, "off") == 0) {
        o->passthrough = strcmp(s, "auto") == 0;
        return 0;
    }
    fprintf(stderr, "vdiskd: --passthrough must be 'auto' or 'off', got '%s'\n",
            s);
    return -1;
}

static int parse_cache(const char *s, struct options *o)
{
    if (strcmp(s, "direct") == 0 || strcmp(s, "host") == 0) {
        o->host_cache = strcmp(s, "host") == 0;
        return 0;
    }
    fprintf(stderr, "vdiskd: --cache must be 'direct' or 'host', got '%s'\n",
            s);
    return -1;
}

static int parse_poll(const char *s, struct options *o)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 10000) {
        fprintf(stderr, "vdiskd: --poll-us must be 0..10000, got '%s'\n", s);
        return -1;
    }
    o->poll_us = (int)v;
    return 0;
}

/* The log format takes effect at once: the first lines (bad options
 * included) already use it. */
static int parse_log_format(const char *s)
{
    enum vd_log_format f;
    if (vd_log_format_parse(s, &f) < 0) {
        fprintf(stderr, "vdiskd: --log-format must be text or json\n");
        return -1;
    }
    vd_log_set_format(f);
    return 0;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

/* The API's flags; returns 1 if c was one of them, -1 if its value is
 * bad, 0 if c is not an API flag. */
enum {
    OPT_TOKEN_FILE = 512,
    OPT_PUBLIC_METRICS,
    OPT_SOCKET_MODE,
    OPT_SOCKET_GROUP,
    OPT_TLS_CERT,
    OPT_TLS_KEY
};

static int parse_api_opt(int c, const char *arg, struct api_options *a)
{
    char *end;
    long v;
    switch (c) {
    case OPT_TOKEN_FILE:
        a->token_file = arg;
        return 1;
    case OPT_PUBLIC_METRICS:
        a->public_metrics = true;
        return 1;
    case OPT_TLS_CERT:
        a->tls_cert = arg;
        return 1;
    case OPT_TLS_KEY:
        a->tls_key = arg;
        return 1;
    case OPT_SOCKET_MODE:
        v = strtol(arg, &end, 8);
        if (*arg == '\0' || *end != '\0' || v <= 0 || v > 0777) {
            fprintf(stderr, "vdiskd: bad --api-socket-mode '%s'\n", arg);
            return -1;
        }
        a->socket_mode = (mode_t)v;
        return 1;
    case OPT_SOCKET_GROUP: {
        struct group *gr = getgrnam(arg);
        v = strtol(arg, &end, 10);
        if (gr != NULL) {
            a->socket_gid = gr->gr_gid;
        } else if (*arg != '\0' && *end == '\0' && v >= 0) {
            a->socket_gid = (gid_t)v;
        } else {
            fprintf(stderr, "vdiskd: unknown --api-socket-group '%s'\n", arg);
            return -1;
        }
        return 1;
    }
    default:
        return 0;
    }
}

/* Returns 0 to run, 1 to exit successfully (help/version), -1 on error. */
static int parse_args(int argc, char **argv, struct options *o)
{
    enum {
        OPT_DATA = 256,
        OPT_MOUNT,
        OPT_LISTEN,
        OPT_FORMAT,
        OPT_IMPORT,
        OPT_SOCKET_DIR,
        OPT_OWNER,
        OPT_MODE,
        OPT_THREADS,
        OPT_CACHE,
        OPT_PASSTHROUGH,
        OPT_VERBOSE,
        OPT_LOG_FORMAT,
        OPT_HELP,
        OPT_VERSION,
        OPT_POLL,
        OPT_RBD_CLUSTER,
        OPT_RBD_ID,
        OPT_RBD_POOL,
        OPT_FUSE_URING
    };
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA},
        {"mount", required_argument, NULL, OPT_MOUNT},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"api-token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"public-metrics", no_argument, NULL, OPT_PUBLIC_METRICS},
        {"api-socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
        {"api-socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"import-dir", required_argument, NULL, OPT_IMPORT},
        {"nbd-socket-dir", required_argument, NULL, OPT_SOCKET_DIR},
        {"owner", required_argument, NULL, OPT_OWNER},
        {"file-mode", required_argument, NULL, OPT_MODE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"cache", required_argument, NULL, OPT_CACHE},
        {"passthrough", required_argument, NULL, OPT_PASSTHROUGH},
        {"poll-us", required_argument, NULL, OPT_POLL},
        {"rbd-cluster", required_argument, NULL, OPT_RBD_CLUSTER},
        {"rbd-id", required_argument, NULL, OPT_RBD_ID},
        {"rbd-pool-allow", required_argument, NULL, OPT_RBD_POOL},
        {"fuse-uring", no_argument, NULL, OPT_FUSE_URING},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;

    o->data_dir = env_or("VDISKD_DATA_DIR", "./vdiskd-data");
    o->mount_dir = env_or("VDISKD_MOUNT", "./vols");
    o->api.token_file = env_or("VDISKD_API_TOKEN_FILE", NULL);
    o->api.socket_gid = (gid_t)-1;
    o->format = env_or("VDISKD_FORMAT", NULL);
    o->mode = 0660;
    if (parse_cache(env_or("VDISKD_CACHE", "direct"), o) < 0 ||
        parse_passthrough(env_or("VDISKD_PASSTHROUGH", "auto"), o) < 0) {
        return -1;
    }
    /* Small reads and writes of allocated data are served by the I/O
     * thread (daemon/fuse_loop.c); workers take the rest, blocking, so
     * their count caps how many allocating writes are in flight. */
    o->threads = 32;
    if (parse_poll(env_or("VDISKD_POLL_US", "50"), o) < 0) {
        return -1;
    }
    if (parse_log_format(env_or("VDISKD_LOG_FORMAT", "text")) < 0) {
        return -1;
    }
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA:
            o->data_dir = optarg;
            break;
        case OPT_MOUNT:
            o->mount_dir = optarg;
            break;
        case OPT_LISTEN:
            if (o->api.n_listen == VD_API_MAX_LISTEN) {
                fprintf(stderr, "vdiskd: at most %d --listen\n",
                        VD_API_MAX_LISTEN);
                return -1;
            }
            o->api.listen[o->api.n_listen++] = optarg;
            break;
        case OPT_FORMAT:
            o->format = optarg;
            break;
        case OPT_IMPORT:
            if (o->n_import_dirs == MAX_IMPORT_DIRS) {
                fprintf(stderr, "vdiskd: at most %d --import-dir\n",
                        MAX_IMPORT_DIRS);
                return -1;
            }
            o->import_dirs[o->n_import_dirs++] = optarg;
            break;
        case OPT_SOCKET_DIR:
            if (o->n_socket_dirs == MAX_SOCKET_DIRS) {
                fprintf(stderr, "vdiskd: at most %d --nbd-socket-dir\n",
                        MAX_SOCKET_DIRS);
                return -1;
            }
            o->socket_dirs[o->n_socket_dirs++] = optarg;
            break;
        case OPT_OWNER:
            if (parse_owner(optarg, o) < 0) {
                fprintf(stderr, "vdiskd: unknown owner '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_MODE: {
            long v = strtol(optarg, &end, 8);
            if (*end != '\0' || v < 0 || v > 0777) {
                fprintf(stderr, "vdiskd: bad --file-mode '%s'\n", optarg);
                return -1;
            }
            o->mode = (mode_t)v;
            break;
        }
        case OPT_THREADS: {
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 1 || v > 256) {
                fprintf(stderr, "vdiskd: --threads must be 1..256\n");
                return -1;
            }
            o->threads = (int)v;
            break;
        }
        case OPT_FUSE_URING:
            o->fuse_uring = true;
            break;
        case OPT_POLL:
            if (parse_poll(optarg, o) < 0) {
                return -1;
            }
            break;
        case OPT_CACHE:
            if (parse_cache(optarg, o) < 0) {
                return -1;
            }
            break;
        case OPT_PASSTHROUGH:
            if (parse_passthrough(optarg, o) < 0) {
                return -1;
            }
            break;
        case OPT_RBD_CLUSTER:
            if (o->n_rbd_clusters == MAX_RBD_CLUSTERS ||
                strchr(optarg, '=') == NULL) {
                fprintf(stderr,
                        "vdiskd: --rbd-cluster wants NAME=CONF "
                        "(at most %d)\n",
                        MAX_RBD_CLUSTERS);
                return -1;
            }
            o->rbd_clusters[o->n_rbd_clusters++] = optarg;
            break;
        case OPT_RBD_ID:
            o->rbd_id = optarg;
            break;
        case OPT_RBD_POOL:
            if (o->n_rbd_pools == MAX_RBD_POOLS) {
                fprintf(stderr, "vdiskd: at most %d --rbd-pool-allow\n",
                        MAX_RBD_POOLS);
                return -1;
            }
            o->rbd_pools[o->n_rbd_pools++] = optarg;
            break;
        case OPT_VERBOSE:
            o->verbose = true;
            break;
        case OPT_LOG_FORMAT:
            if (parse_log_format(optarg) < 0) {
                return -1;
            }
            break;
        case OPT_HELP:
        case 'h':
            usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("vdiskd %s\n", VD_VERSION);
            return 1;
        default: {
            int r = parse_api_opt(c, optarg, &o->api);
            if (r < 0) {
                return -1;
            }
            if (r == 0) {
                usage(stderr);
                return -1;
            }
        }
        }
    }
    if (o->api.n_listen == 0) {
        o->api.listen[o->api.n_listen++] =
            env_or("VDISKD_LISTEN", "127.0.0.1:8080");
    }
    for (int i = 0; i < o->api.n_listen; i++) {
        struct vd_error lerr = {0};
        if (vd_api_listen_check(o->api.listen[i], &lerr) < 0) {
            fprintf(stderr, "vdiskd: %s\n", lerr.msg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vdiskd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->n_socket_dirs == 0 && env_or("VDISKD_NBD_SOCKET_DIR", NULL)) {
        o->socket_dirs[o->n_socket_dirs++] = getenv("VDISKD_NBD_SOCKET_DIR");
    }
    return 0;
}

/* mkdir -p for one level below an existing parent, then canonicalise. */
static int prepare_dir(const char *dir, char *out, const char *what)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        vd_err("cannot create %s directory '%s': %s", what, dir,
               strerror(errno));
        return -1;
    }
    if (realpath(dir, out) == NULL) {
        vd_err("cannot resolve %s directory '%s': %s", what, dir,
               strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    struct vd_error err = {0};
    char data_dir[PATH_MAX], mount_dir[PATH_MAX], db_path[PATH_MAX + 16];
    char *import_real[MAX_IMPORT_DIRS + 1] = {0};
    char *socket_real[MAX_SOCKET_DIRS + 1] = {0};
    struct vd_catalog *cat = NULL;
    struct vd_volmgr *mgr = NULL;
    struct vd_fuse_export *fx = NULL;
    struct vd_api *api = NULL;
    struct vd_ioloop *ioloop = NULL;
    sigset_t sigs;
    int sig = 0;
    int rc = 1;

    int r = parse_args(argc, argv, &o);
    if (r != 0) {
        return r > 0 ? 0 : 2;
    }
    vd_log_set_level(o.verbose ? VD_LOG_DEBUG : VD_LOG_INFO);
    /* API settings are checked before anything is mounted. */
    struct vd_api_config acfg = {
        .n_listen = o.api.n_listen,
        .token_file = o.api.token_file,
        .public_metrics = o.api.public_metrics,
        .socket_mode = o.api.socket_mode,
        .socket_gid = o.api.socket_gid,
        .tls_cert = o.api.tls_cert,
        .tls_key = o.api.tls_key,
        .max_body = 64 * 1024,
    };
    memcpy(acfg.listen, o.api.listen, sizeof(acfg.listen));
    if (vd_api_check(&acfg, &err) < 0) {
        fprintf(stderr, "vdiskd: %s\n", err.msg);
        return 2;
    }
    vd_error_clear(&err);
    {
        /* Descriptors: volumes, images and API connections all need
         * them; take what the hard limit allows. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    for (int i = 0; i < o.n_import_dirs; i++) {
        import_real[i] = realpath(o.import_dirs[i], NULL);
        if (import_real[i] == NULL) {
            fprintf(stderr, "vdiskd: --import-dir '%s': %s\n", o.import_dirs[i],
                    strerror(errno));
            goto out;
        }
    }
    for (int i = 0; i < o.n_socket_dirs; i++) {
        socket_real[i] = realpath(o.socket_dirs[i], NULL);
        if (socket_real[i] == NULL) {
            fprintf(stderr, "vdiskd: --nbd-socket-dir '%s': %s\n",
                    o.socket_dirs[i], strerror(errno));
            goto out;
        }
    }

    /* RBD clusters: registered only; the first volume opened on one
     * connects it, so a cluster that is down does not stop the daemon. */
    for (int i = 0; i < o.n_rbd_clusters; i++) {
#ifdef VD_WITH_RBD
        char name[64];
        const char *eq = strchr(o.rbd_clusters[i], '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq - o.rbd_clusters[i]),
                 o.rbd_clusters[i]);
        if (vd_rbd_cluster_add(name, eq + 1, o.rbd_id, &err) < 0) {
            fprintf(stderr, "vdiskd: --rbd-cluster: %s\n", err.msg);
            goto out;
        }
#else
        fprintf(stderr, "vdiskd: --rbd-cluster: built without RBD\n");
        goto out;
#endif
    }

    /* Block the stop signals in every thread; main waits for them below. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Functional tests make host I/O fail on purpose (formats/fault.h). */
    if (vd_fault_arm_env() < 0) {
        fprintf(stderr, "vdiskd: VDISKD_FAULT: not class:nth:error[:sticky]\n");
        goto out;
    }

    if (prepare_dir(o.data_dir, data_dir, "data") < 0) {
        goto out;
    }
    if (vd_fuse_prepare_mountpoint(o.mount_dir, &err) < 0 ||
        realpath(o.mount_dir, mount_dir) == NULL) {
        vd_err("mount point: %s", err.code ? err.msg : strerror(errno));
        goto out;
    }
    /* The I/O engine, for the export and every volume's image. Without
     * io_uring, images take their synchronous paths and the export runs
     * libfuse's own loop. */
    r = vd_ioloop_new((unsigned)o.poll_us, o.fuse_uring ? VD_IOLOOP_CMDS : 0,
                      &ioloop);
    if (r < 0) {
        vd_info("io_uring not available (%s): synchronous I/O only",
                strerror(-r));
    }
    snprintf(db_path, sizeof(db_path), "%s/catalog.db", data_dir);
    if (vd_catalog_open(db_path, &cat, &err) < 0) {
        vd_err("catalog: %s", err.msg);
        goto out;
    }

    struct vd_volmgr_config mcfg = {
        .data_dir = data_dir,
        .mount_dir = mount_dir,
        .import_dirs = (const char *const *)import_real,
        .nbd_socket_dirs = (const char *const *)socket_real,
        .pool_allow = o.rbd_pools,
        .default_format = o.format,
        .default_uid = o.uid,
        .default_gid = o.gid,
        .default_mode = o.mode,
        .host_cache = o.host_cache,
        .ioloop = ioloop,
    };
    if (vd_volmgr_new(&mcfg, cat, &mgr, &err) < 0) {
        vd_err("volumes: %s", err.msg);
        goto out;
    }

    struct vd_fuse_config fcfg = {
        .mount_dir = mount_dir,
        .uid = o.uid,
        .gid = o.gid,
        .mode = o.mode,
        .threads = o.threads,
        .host_cache = o.host_cache,
        .passthrough = o.passthrough,
        .ioloop = ioloop,
        .fuse_uring = o.fuse_uring,
    };
    if (vd_fuse_export_start(&fcfg, mgr, &fx, &err) < 0) {
        vd_err("fuse: %s", err.msg);
        goto out;
    }

    if (vd_api_start(&acfg, mgr, &api, &err) < 0) {
        vd_err("api: %s", err.msg);
        goto out;
    }
    vd_info("vdiskd %s serving %s on %s, API on %s", VD_VERSION, data_dir,
            mount_dir, vd_api_describe(api));
    vd_notify("READY=1");

    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        vd_info("SIGHUP: flushing every volume, rereading API tokens");
        vd_volmgr_flush_all(mgr);
        if (vd_api_reload(api, &err) < 0) {
            vd_err("api: tokens not reloaded, the old ones stay: %s", err.msg);
        }
    }
    vd_info("signal %d: shutting down", sig);
    vd_notify("STOPPING=1");
    rc = 0;

out:
    vd_api_stop(api);
    if (mgr != NULL && vd_volmgr_flush_all(mgr) < 0) {
        vd_err("flushing volumes at shutdown failed");
        rc = 1;
    }
    vd_fuse_export_stop(fx);
    vd_volmgr_free(mgr);
    vd_ioloop_free(ioloop); /* nothing is in flight once volumes closed */
#ifdef VD_WITH_RBD
    vd_rbd_clusters_shutdown();
#endif
    vd_catalog_close(cat);
    for (int i = 0; i < o.n_import_dirs; i++) {
        free(import_real[i]);
    }
    for (int i = 0; i < o.n_socket_dirs; i++) {
        free(socket_real[i]);
    }
    if (rc == 0) {
        vd_info("stopped cleanly");
    }
    return rc;
}
