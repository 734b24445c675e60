/* fuse_export.c — the FUSE mount's lifecycle: preparing the mount point,
 * mounting, running the session loop (fuse_loop.c) in the background, and
 * stopping it; plus the worker that tells the kernel when volumes come,
 * go or change size. The request handlers are in fuse_ops.c.
 *
 * DESIGN NOTES
 * 1. The loop runs in its own thread (vd_fuse_loop_run with cfg->threads
 *    workers; libfuse's fuse_session_loop_mt with clone_fd where io_uring
 *    is missing). If the mount disappears from outside (umount -l by an
 *    admin, connection aborted) the read of /dev/fuse fails with ENODEV
 *    and the loop returns: the export is then stopped for good, the rest
 *    of the daemon keeps running.
 * 2. Stop: the loop waits in a read of /dev/fuse and only wakes for a
 *    request or when the connection dies. Unmounting kills the
 *    connection only once no file on the mount is open any more, so stop
 *    first pins the mount root with an O_PATH descriptor, marks the session
 *    exited, unmounts (lazily), and then makes one lookup below the pinned
 *    root from a helper thread: the loop sees the exit flag on that
 *    request, has it answered and ends. Closing the session's /dev/fuse
 *    descriptor (fuse_session_destroy) then ends the connection, and
 *    clients that still hold files get ENOTCONN. If an admin detached the mount
 * while files were open (no path reaches it any more), or the loop does not end
 * within a few seconds, stop aborts the connection through fusectl (mounted
 * privately for the moment if the host has not mounted it), and failing that
 * leaves the loop behind; handlers stop touching the volume manager either way
 * (fx_enter in fuse-int.h).
 * 3. Invalidations are written to /dev/fuse by one worker thread, never by
 *    the caller: the kernel takes the directory's inode lock to drop an
 *    entry, and a lookup holding that lock may be waiting for the volume
 *    manager's lock. The volume manager's callback waits a bounded time
 *    for its event to be delivered, so in the normal case a volume is gone
 *    from the mount when DELETE returns; but not when the change comes
 *    from a handler on the mount (vd_fuse_in_name_op, fuse_names.c),
 *    whose directory lock the delivery would wait for. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "catalog.h"
#include "fuse-int.h"
#include "log.h"
#include "vd_error.h"
#include "volume.h"

#define FX_FSNAME "vdiskd"
#define FX_FSTYPE "fuse." FX_FSNAME
#define FX_NOTIFY_WAIT_MS 500
#define FX_STOP_WAIT_S 3
#define FX_FUSECTL_MAGIC 0x65735543 /* statfs f_type of fusectl */

struct vd_fuse_event {
    struct vd_fuse_event *next;
    enum vd_volume_event ev;
    uint64_t ino;
    uint64_t seq;
    char name[VD_NAME_MAX + 1];
};

/* ---- libfuse's log into ours --------------------------------------------- */

static void fuse_log_to_vd(enum fuse_log_level level, const char *fmt,
                           va_list ap)
{
    char line[512];
    size_t n;
    enum vd_log_level l = level <= FUSE_LOG_ERR       ? VD_LOG_ERROR
                          : level == FUSE_LOG_WARNING ? VD_LOG_WARN
                          : level == FUSE_LOG_DEBUG   ? VD_LOG_DEBUG
                                                      : VD_LOG_INFO;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && line[n - 1] == '\n') {
        line[--n] = '\0';
    }
    vd_log(l, "libfuse: %s", line);
}

/* ---- mount table ------------------------------------------------------- */

struct mount_entry {
    unsigned int major, minor;
    char fstype[64];
    char source[256];
};

/* Undo the octal escapes (\040 ...) of /proc/self/mountinfo in place. */
static void unescape(char *s)
{
    char *d = s;
    while (*s != '\0') {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
            s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *d++ = *s++;
        }
    }
    *d = '\0';
}

/* The topmost mount at path (canonical) in this mount namespace.
 * Returns 1 if found, 0 if path is no mount point, -errno on error. */
static int find_mount(const char *path, struct mount_entry *out)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int found = 0;

    if (f == NULL) {
        return -errno;
    }
    while (getline(&line, &cap, f) > 0) {
        unsigned int major, minor;
        char mnt[PATH_MAX], fstype[64], source[256];
        char *sep = strstr(line, " - ");
        if (sep == NULL ||
            sscanf(line, "%*u %*u %u:%u %*s %4095s", &major, &minor, mnt) !=
                3 ||
            sscanf(sep + 3, "%63s %255s", fstype, source) != 2) {
            continue;
        }
        unescape(mnt);
        if (strcmp(mnt, path) == 0) { /* later lines are mounted on top */
            out->major = major;
            out->minor = minor;
            snprintf(out->fstype, sizeof(out->fstype), "%s", fstype);
            snprintf(out->source, sizeof(out->source), "%s", source);
            found = 1;
        }
    }
    free(line);
    fclose(f);
    return found;
}

static int stat_sync(const char *path, struct stat *st)
{
    struct statx stx;
    if (statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx) <
        0) {
        return -1;
    }
    memset(st, 0, sizeof(*st));
    st->st_mode = stx.stx_mode;
    return 0;
}

int vd_fuse_prepare_mountpoint(const char *mount_dir, struct vd_error *err)
{
    struct mount_entry me;
    char real[PATH_MAX];
    struct stat st;
    int r;

    /* A killed daemon leaves a dead mount (ENOTCONN); stacked ones too.
     * Force a round trip: the kernel may still hold the dead root's
     * attributes and answer a plain stat from its cache. */
    for (int i = 0; stat_sync(mount_dir, &st) < 0; i++) {
        if (errno == ENOENT) {
            if (mkdir(mount_dir, 0755) < 0 && errno != EEXIST) {
                return vd_error_set(err, -errno, "cannot create '%s': %s",
                                    mount_dir, strerror(errno));
            }
            continue;
        }
        if (errno != ENOTCONN || i >= 16) {
            return vd_error_set(err, -errno, "cannot use '%s': %s", mount_dir,
                                strerror(errno));
        }
        if (umount2(mount_dir, MNT_DETACH) < 0) {
            return vd_error_set(err, -errno,
                                "'%s' holds a dead FUSE mount that cannot be "
                                "unmounted: %s",
                                mount_dir, strerror(errno));
        }
        vd_warn("cleaned up a dead FUSE mount at %s (left by a daemon that "
                "did not stop cleanly)",
                mount_dir);
    }
    if (!S_ISDIR(st.st_mode)) {
        return vd_error_set(err, -ENOTDIR, "'%s' is not a directory",
                            mount_dir);
    }
    if (realpath(mount_dir, real) == NULL) {
        return vd_error_set(err, -errno, "cannot resolve '%s': %s", mount_dir,
                            strerror(errno));
    }
    r = find_mount(real, &me);
    if (r < 0) {
        return vd_error_set(err, r, "cannot read the mount table: %s",
                            strerror(-r));
    }
    if (r > 0 && strcmp(me.fstype, FX_FSTYPE) == 0) {
        return vd_error_set(err, -EBUSY,
                            "'%s' is already served by a running vdiskd; "
                            "stop it first",
                            real);
    }
    return 0;
}

/* ---- invalidation worker (note 3) ----------------------------------- */

static void deliver(struct vd_fuse_export *fx, const struct vd_fuse_event *e)
{
    size_t len = strlen(e->name);
    int r = 0;

    switch (e->ev) {
    case VD_VOLUME_ADDED:
        /* Drop a negative entry, if the kernel kept one. */
        r = fuse_lowlevel_notify_inval_entry(fx->se, FUSE_ROOT_ID, e->name,
                                             len);
        break;
    case VD_VOLUME_REMOVED:
        r = fuse_lowlevel_notify_delete(fx->se, FUSE_ROOT_ID, e->ino, e->name,
                                        len);
        if (r == -ENOENT || r == -ENOTDIR) {
            r = fuse_lowlevel_notify_inval_entry(fx->se, FUSE_ROOT_ID, e->name,
                                                 len);
        }
        break;
    case VD_VOLUME_RESIZED:
    case VD_VOLUME_CHANGED:
        r = fuse_lowlevel_notify_inval_inode(fx->se, e->ino, 0, 0);
        break;
    }
    if (e->ev == VD_VOLUME_ADDED || e->ev == VD_VOLUME_REMOVED) {
        /* The root's mtime changed (dir_changed_ns). Dropping an entry
         * drops the root's cached attributes only when the kernel had
         * that entry; this needs no directory lock. */
        int r2 = fuse_lowlevel_notify_inval_inode(fx->se, FUSE_ROOT_ID, 0, 0);
        if (r == 0 || r == -ENOENT) {
            r = r2;
        }
    }
    /* ENOENT: the kernel never looked the name up, nothing to drop. */
    if (r < 0 && r != -ENOENT) {
        vd_debug("FUSE invalidation for '%s' not delivered: %s", e->name,
                 strerror(-r));
    }
}

static void *event_worker(void *arg)
{
    struct vd_fuse_export *fx = arg;
    pthread_mutex_lock(&fx->ev_lock);
    for (;;) {
        struct vd_fuse_event *e;
        while (fx->ev_head == NULL && !fx->ev_stop) {
            pthread_cond_wait(&fx->ev_cond, &fx->ev_lock);
        }
        if (fx->ev_stop) {
            break;
        }
        e = fx->ev_head;
        fx->ev_head = e->next;
        if (fx->ev_head == NULL) {
            fx->ev_tail = NULL;
        }
        pthread_mutex_unlock(&fx->ev_lock);
        if (!atomic_load(&fx->loop_done)) {
            deliver(fx, e);
        }
        pthread_mutex_lock(&fx->ev_lock);
        fx->ev_done = e->seq;
        free(e);
        pthread_cond_broadcast(&fx->ev_done_cond);
    }
    while (fx->ev_head != NULL) { /* stopping: drop what is left */
        struct vd_fuse_event *e = fx->ev_head;
        fx->ev_head = e->next;
        free(e);
    }
    fx->ev_tail = NULL;
    pthread_cond_broadcast(&fx->ev_done_cond);
    pthread_mutex_unlock(&fx->ev_lock);
    return NULL;
}

/* vd_volume_notify_fn, called by the volume manager (API thread). */
static void on_volume_event(void *arg, enum vd_volume_event ev, uint64_t ino,
                            const char *name)
{
    struct vd_fuse_export *fx = arg;
    struct vd_fuse_event *e = calloc(1, sizeof(*e));
    struct timespec deadline;
    uint64_t seq;

    if (e == NULL) {
        return; /* the entry expires after FX_TIMEOUT anyway */
    }
    if (ev == VD_VOLUME_ADDED || ev == VD_VOLUME_REMOVED) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        atomic_store(&fx->dir_changed_ns,
                     (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
    }
    e->ev = ev;
    e->ino = ino;
    snprintf(e->name, sizeof(e->name), "%s", name);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += FX_NOTIFY_WAIT_MS * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;

    pthread_mutex_lock(&fx->ev_lock);
    if (fx->ev_stop) {
        pthread_mutex_unlock(&fx->ev_lock);
        free(e);
        return;
    }
    seq = e->seq = ++fx->ev_queued;
    if (fx->ev_tail != NULL) {
        fx->ev_tail->next = e;
    } else {
        fx->ev_head = e;
    }
    fx->ev_tail = e;
    pthread_cond_signal(&fx->ev_cond);
    /* From a handler on the mount: the kernel holds the directory's lock
     * the delivery needs until the handler answers (fuse_names.c). */
    while (!vd_fuse_in_name_op && fx->ev_done < seq && !fx->ev_stop) {
        if (pthread_cond_timedwait(&fx->ev_done_cond, &fx->ev_lock,
                                   &deadline) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&fx->ev_lock);
}

static void stop_event_worker(struct vd_fuse_export *fx)
{
    if (!fx->ev_started) {
        return;
    }
    pthread_mutex_lock(&fx->ev_lock);
    fx->ev_stop = true;
    pthread_cond_broadcast(&fx->ev_cond);
    pthread_mutex_unlock(&fx->ev_lock);
    pthread_join(fx->ev_thread, NULL);
    fx->ev_started = false;
}

/* ---- session loop ------------------------------------------------------ */

/* libfuse's writes to /dev/fuse, when passthrough or the ring is on:
 * passthrough amends INIT's reply, the ring carries the replies of the
 * requests that came through it. Same descriptor as the session's: it
 * keeps it and closes it once. */
static ssize_t session_writev(int fd, struct iovec *iov, int count,
                              void *userdata)
{
    struct vd_fuse_export *fx = userdata;
    if (fx->pt != NULL) {
        vd_fuse_pt_writing(fx, iov, count);
    }
    if (fx->uring != NULL) {
        return vd_fuse_uring_writev(fx, fd, iov, count);
    }
    return writev(fd, iov, count); /* libfuse reads errno on -1 */
}

static ssize_t session_read(int fd, void *buf, size_t len, void *userdata)
{
    (void)userdata;
    return read(fd, buf, len);
}

static const struct fuse_custom_io session_io = {.writev = session_writev,
                                                 .read = session_read};

static void *loop_main(void *arg)
{
    struct vd_fuse_export *fx = arg;
    struct fuse_loop_config *lc;
    int r = vd_fuse_loop_run(fx);

    if (r != VD_FUSE_LOOP_UNAVAILABLE) {
        goto done;
    }
    vd_warn("FUSE: io_uring is not available; using libfuse's loop");
    lc = fuse_loop_cfg_create();
    if (lc == NULL) {
        vd_err("FUSE: out of memory starting the session loop");
        atomic_store(&fx->loop_done, true);
        return NULL;
    }
    fuse_loop_cfg_set_clone_fd(lc, 1);
    fuse_loop_cfg_set_max_threads(lc, (unsigned int)fx->cfg.threads);
    r = fuse_session_loop_mt(fx->se, lc);
    fuse_loop_cfg_destroy(lc);
done:
    atomic_store(&fx->loop_done, true);
    if (!atomic_load(&fx->stopping)) {
        vd_err("FUSE mount at %s went away (unmounted or aborted from "
               "outside%s%s): volume files are no longer served until vdiskd "
               "is restarted; the API keeps running",
               fx->mount_dir, r != 0 ? "; " : "",
               r != 0 ? strerror(r < 0 ? -r : r) : "");
    }
    return NULL;
}

static int export_state(void *arg, char *why, size_t len);

int vd_fuse_export_start(const struct vd_fuse_config *cfg,
                         struct vd_volmgr *mgr, struct vd_fuse_export **out,
                         struct vd_error *err)
{
    char *argv[] = {"vdiskd", "-o",
                    "allow_other,default_permissions,fsname=" FX_FSNAME
                    ",subtype=" FX_FSNAME,
                    NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    struct vd_fuse_export *fx;
    pthread_condattr_t ca;
    struct mount_entry me;
    bool mounted = false;
    int ret;

    *out = NULL;
    if (cfg->threads < 1) {
        return vd_error_set(err, -EINVAL, "FUSE needs at least one thread");
    }
    fx = calloc(1, sizeof(*fx));
    if (fx == NULL || (fx->mount_dir = strdup(cfg->mount_dir)) == NULL) {
        free(fx);
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    fx->cfg = *cfg;
    fx->cfg.mount_dir = fx->mount_dir;
    fx->mgr = mgr;
    fx->started_at = time(NULL);
    atomic_init(&fx->dir_changed_ns, (int64_t)fx->started_at * 1000000000);
    fx->handles.next = fx->handles.prev = &fx->handles;
    pthread_mutex_init(&fx->handles_lock, NULL);
    if (vd_fuse_snap_init(fx) < 0) {
        pthread_mutex_destroy(&fx->handles_lock);
        free(fx->mount_dir);
        free(fx);
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&fx->ev_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fx->ev_cond, NULL);
    pthread_cond_init(&fx->ev_done_cond, &ca);
    pthread_condattr_destroy(&ca);

    fuse_set_log_func(fuse_log_to_vd);
    fx->se = fuse_session_new(&args, &vd_fuse_ops, sizeof(vd_fuse_ops), fx);
    fuse_opt_free_args(&args);
    if (fx->se == NULL) {
        ret = vd_error_set(err, -EIO, "cannot create the FUSE session");
        goto out_free;
    }
    if (fuse_session_mount(fx->se, fx->mount_dir) != 0) {
        ret = vd_error_set(err, -EIO,
                           "cannot mount FUSE at '%s' (is /dev/fuse "
                           "available? see the libfuse message above)",
                           fx->mount_dir);
        goto out_free;
    }
    mounted = true;
    if (vd_fuse_pt_init(fx) < 0) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out_free;
    }
    if (cfg->fuse_uring) {
        (void)vd_fuse_uring_setup(fx); /* logged; /dev/fuse otherwise */
    }
    if ((fx->pt != NULL || fx->uring != NULL) &&
        fuse_session_custom_io(fx->se, &session_io, fuse_session_fd(fx->se)) !=
            0) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out_free;
    }
    if (find_mount(fx->mount_dir, &me) > 0) {
        fx->conn_dev = (me.major << 20) | me.minor; /* kernel dev_t */
    }
    ret = pthread_create(&fx->ev_thread, NULL, event_worker, fx);
    if (ret != 0) {
        ret =
            vd_error_set(err, -ret, "cannot start a thread: %s", strerror(ret));
        goto out_free;
    }
    fx->ev_started = true;
    ret = pthread_create(&fx->loop_thread, NULL, loop_main, fx);
    if (ret != 0) {
        ret =
            vd_error_set(err, -ret, "cannot start a thread: %s", strerror(ret));
        goto out_free;
    }
    fx->loop_started = true;
    vd_volmgr_set_notify(mgr, on_volume_event, fx);
    vd_volmgr_set_export_check(mgr, export_state, fx);
    vd_info("FUSE export mounted at %s (%d worker threads)", fx->mount_dir,
            cfg->threads);
    *out = fx;
    return 0;

out_free:
    stop_event_worker(fx);
    if (mounted) {
        fuse_session_unmount(fx->se);
    }
    if (fx->se != NULL) {
        fuse_session_destroy(fx->se);
    }
    pthread_cond_destroy(&fx->ev_cond);
    pthread_cond_destroy(&fx->ev_done_cond);
    pthread_mutex_destroy(&fx->ev_lock);
    pthread_mutex_destroy(&fx->handles_lock);
    vd_fuse_snap_fini(fx);
    vd_fuse_pt_fini(fx);
    free(fx->mount_dir);
    free(fx);
    return ret;
}

/* ---- stop (note 2) ----------------------------------------------------- */

static void *wake_loop(void *arg)
{
    int rootfd = (int)(intptr_t)arg;
    struct stat st;
    /* Any name: the lookup itself is the wake-up. It returns once a worker
     * answered or the connection is gone. */
    fstatat(rootfd, ".vdiskd-stop", &st, AT_SYMLINK_NOFOLLOW);
    close(rootfd);
    return NULL;
}

static int join_for(pthread_t t, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return pthread_timedjoin_np(t, NULL, &ts);
}

static int write_abort(const char *ctl_dir, unsigned int dev)
{
    char path[PATH_MAX];
    int fd, ret = 0;
    snprintf(path, sizeof(path), "%s/%u/abort", ctl_dir, dev);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (write(fd, "1", 1) < 0) {
        ret = -errno;
    }
    close(fd);
    return ret;
}

/* Abort the kernel connection, as `echo 1 > .../abort` would. Where the
 * fusectl file system is not mounted (systemd mounts it on most hosts),
 * mount it privately for the moment. */
static void abort_connection(struct vd_fuse_export *fx)
{
    char tmp[] = "/run/vdiskd-fusectl.XXXXXX";
    int r = write_abort("/sys/fs/fuse/connections", fx->conn_dev);
    if (r == -ENOENT && mkdtemp(tmp) != NULL) {
        if (mount("fusectl", tmp, "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  NULL) == 0) {
            r = write_abort(tmp, fx->conn_dev);
            umount2(tmp, MNT_DETACH);
        } else {
            r = -errno;
        }
        rmdir(tmp);
    }
    if (r < 0) {
        vd_warn("cannot abort FUSE connection %u: %s", fx->conn_dev,
                strerror(-r));
    }
}

/* Whether our connection is known to be gone: fusectl is mounted and
 * does not list it. */
static bool connection_gone(struct vd_fuse_export *fx)
{
    char path[PATH_MAX];
    struct statfs sf;
    struct stat st;
    snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u", fx->conn_dev);
    return statfs("/sys/fs/fuse/connections", &sf) == 0 &&
           sf.f_type == FX_FUSECTL_MAGIC && stat(path, &st) < 0 &&
           errno == ENOENT;
}

/* Is our file system still the one mounted at mount_dir? */
static bool still_mounted(struct vd_fuse_export *fx)
{
    struct mount_entry me;
    return find_mount(fx->mount_dir, &me) > 0 &&
           strcmp(me.fstype, FX_FSTYPE) == 0 &&
           (fx->conn_dev == 0 || ((me.major << 20) | me.minor) == fx->conn_dev);
}

/* The volume manager's export check (volume.h): volume files are served
 * only while the session loop runs and our connection is still what is
 * mounted at mount_dir. An admin's `umount -l` while a file is open
 * leaves the loop running on a connection no path reaches, so the mount
 * table is read too; it is read, never the mount itself, which could
 * block an API thread on a stuck FUSE request. */
static int export_state(void *arg, char *why, size_t len)
{
    struct vd_fuse_export *fx = arg;
    if (atomic_load(&fx->loop_done)) {
        snprintf(why, len,
                 "the FUSE session at %s has ended (unmounted or aborted "
                 "from outside); restart vdiskd to mount it again",
                 fx->mount_dir);
        return -ENOMEDIUM;
    }
    if (!still_mounted(fx)) {
        snprintf(why, len,
                 "%s is no longer vdiskd's FUSE mount (unmounted from "
                 "outside); restart vdiskd to mount it again",
                 fx->mount_dir);
        return -ENOMEDIUM;
    }
    return 0;
}

/* Wait until no handler and no asynchronous request is in fx. */
static void wait_handlers(struct vd_fuse_export *fx)
{
    while (atomic_load(&fx->inflight) > 0) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

void vd_fuse_export_stop(struct vd_fuse_export *fx)
{
    pthread_t waker;
    bool waking = false;
    bool joined = true;

    if (fx == NULL) {
        return;
    }
    vd_volmgr_set_notify(fx->mgr, NULL, NULL);
    vd_volmgr_set_export_check(fx->mgr, NULL, NULL);
    stop_event_worker(fx);
    atomic_store(&fx->stopping, true);

    if (fx->loop_started && !atomic_load(&fx->loop_done)) {
        /* Detached from outside while files were open: nothing to unmount
         * and no path to reach the loop by; abort straight away. */
        bool ours = still_mounted(fx);
        int rootfd = -1;
        fuse_session_exit(fx->se);
        if (ours) {
            rootfd = open(fx->mount_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
            fuse_session_unmount(fx->se);
        }
        if (rootfd >= 0) {
            if (pthread_create(&waker, NULL, wake_loop,
                               (void *)(intptr_t)rootfd) == 0) {
                waking = true;
            } else {
                close(rootfd);
            }
        }
        if (waking && vd_fuse_uring_holds_device(fx)) {
            /* The ring keeps the device open (fuse_uring.c note 5), so
             * files still open keep the connection: once the wake-up
             * lookup is answered, end it, and the /dev/fuse read ends. */
            if (join_for(waker, FX_STOP_WAIT_S) == 0) {
                waking = false;
            }
            if (!connection_gone(fx)) {
                abort_connection(fx);
            }
        }
        if (!ours || join_for(fx->loop_thread, FX_STOP_WAIT_S) != 0) {
            vd_warn("FUSE loop for %s still running after unmount; aborting "
                    "its connection",
                    fx->mount_dir);
            abort_connection(fx);
            joined = join_for(fx->loop_thread, FX_STOP_WAIT_S) == 0;
        }
        if (!ours && joined) {
            /* The connection is dead, so this unmounts nothing (whatever
             * is mounted at mount_dir now is not ours); it frees libfuse's
             * record of the mount point. */
            fuse_session_unmount(fx->se);
        }
    } else {
        if (fx->loop_started) {
            pthread_join(fx->loop_thread, NULL);
        }
        fuse_session_unmount(fx->se); /* skips a mount that is gone */
    }

    if (!joined) {
        /* Leave the loop and its session behind (the process is exiting);
         * handlers no longer touch the volume manager. */
        vd_err("FUSE loop for %s could not be stopped; leaving it behind",
               fx->mount_dir);
        pthread_detach(fx->loop_thread);
        if (waking) {
            pthread_detach(waker);
        }
        wait_handlers(fx);
        vd_fuse_release_all_handles(fx);
        vd_fuse_snap_release_all(fx);
        return;
    }
    /* FUSE over io_uring: the ring holds the device open (fuse_uring.c
     * note 5), so closing descriptors ends nothing; abort instead. */
    if (vd_fuse_uring_holds_device(fx) && !connection_gone(fx)) {
        abort_connection(fx);
    }
    /* All /dev/fuse descriptors of the loop are closed now, so the
     * connection is gone and the waker's lookup has returned or will. */
    if (waking) {
        pthread_join(waker, NULL);
    }
    /* Asynchronous requests still answer through the session. */
    wait_handlers(fx);
    vd_fuse_pt_detach(fx);
    fuse_session_destroy(fx->se);
    vd_fuse_uring_free(fx);
    /* Files clients still held were never released by the kernel. */
    vd_fuse_release_all_handles(fx);
    vd_fuse_snap_fini(fx);
    vd_fuse_pt_fini(fx);
    pthread_cond_destroy(&fx->ev_cond);
    pthread_cond_destroy(&fx->ev_done_cond);
    pthread_mutex_destroy(&fx->ev_lock);
    pthread_mutex_destroy(&fx->handles_lock);
    vd_info("FUSE export at %s stopped", fx->mount_dir);
    free(fx->mount_dir);
    free(fx);
}
