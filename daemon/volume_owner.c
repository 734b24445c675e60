/* volume_owner.c — who owns each volume's file and with which permission
 * bits: chosen at create (or the daemon's --owner and --file-mode),
 * changed by chown/chmod on the mount or by PATCH, kept in the catalog.
 *
 * DESIGN NOTES
 * 1. The catalog is the truth; each served volume keeps a copy the mount
 *    reads without locks (vol->owner, vol->mode). A change writes the
 *    catalog first, then the copy, under mgr->ctl, so two changes never
 *    interleave and a failed write changes nothing.
 * 2. Rows made before ownership was recorded hold NULL (-1 in the row):
 *    they follow the daemon's defaults until first changed, which then
 *    records all three values.
 * 3. Who may change what is decided before this file is reached: the
 *    kernel checks chown and chmod on the mount (default_permissions:
 *    root may chown, the owner may chmod and give the file to one of
 *    its groups), the API's authentication checks PATCH. Only the
 *    permission bits 0777 are kept: set-id and sticky bits mean nothing
 *    for a disk image and are dropped. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

#define OWNER_MAX_ID 4294967294LL /* (uid_t)-1 means "unchanged" to chown */

/* A decimal id, or -1 if s is not one. */
static int64_t parse_id(const char *s)
{
    char *end;
    long long v;
    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    return (errno == 0 && *end == '\0' && v <= OWNER_MAX_ID) ? v : -1;
}

/* A user by name or number: its uid, and its primary group in *gid (-1
 * when the number is no known user). 0 or -EINVAL. */
static int lookup_user(const char *s, int64_t *uid, int64_t *gid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    int64_t id = parse_id(s);

    if (getpwnam_r(s, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
        *uid = res->pw_uid;
        *gid = res->pw_gid;
        return 0;
    }
    if (id < 0) {
        return -EINVAL;
    }
    *uid = id;
    *gid = -1;
    if (getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res) == 0 &&
        res != NULL) {
        *gid = res->pw_gid;
    }
    return 0;
}

static int lookup_group(const char *s, int64_t *gid)
{
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) == 0 && res != NULL) {
        *gid = res->gr_gid;
        return 0;
    }
    *gid = parse_id(s);
    return *gid >= 0 ? 0 : -EINVAL;
}

/* Apply req to *uid, *gid, *mode (the current or default values). */
static int apply_req(const struct vd_owner_req *req, int64_t *uid, int64_t *gid,
                     int *mode, struct vd_error *err)
{
    if (req->owner != NULL) {
        char user[256];
        const char *colon = strchr(req->owner, ':');
        size_t ulen = colon ? (size_t)(colon - req->owner) : strlen(req->owner);
        int64_t u, g;

        if (ulen >= sizeof(user) || (ulen == 0 && colon == NULL)) {
            return vd_error_set(err, -EINVAL, "invalid owner '%.80s'",
                                req->owner);
        }
        memcpy(user, req->owner, ulen);
        user[ulen] = '\0';
        if (ulen > 0) {
            if (lookup_user(user, &u, &g) < 0) {
                return vd_error_set(err, -EINVAL, "unknown user '%.80s'", user);
            }
            *uid = u;
            if (g >= 0) {
                *gid = g;
            }
        }
        if (colon != NULL && colon[1] != '\0') {
            if (lookup_group(colon + 1, &g) < 0) {
                return vd_error_set(err, -EINVAL, "unknown group '%.80s'",
                                    colon + 1);
            }
            *gid = g;
        }
    }
    if ((req->has_uid && req->uid > OWNER_MAX_ID) ||
        (req->has_gid && req->gid > OWNER_MAX_ID)) {
        return vd_error_set(err, -EINVAL, "uid and gid must be at most %lld",
                            OWNER_MAX_ID);
    }
    if (req->has_uid) {
        *uid = req->uid;
    }
    if (req->has_gid) {
        *gid = req->gid;
    }
    if (req->has_mode) {
        if (req->mode > 07777) {
            return vd_error_set(err, -EINVAL,
                                "mode must be octal permission bits, at most "
                                "0777");
        }
        *mode = (int)(req->mode & 0777); /* note 3 */
    }
    return 0;
}

void vd_volmgr_owner_defaults(const struct vd_volmgr *mgr,
                              struct vd_volume_row *row)
{
    if (row->uid < 0) {
        row->uid = mgr->default_uid;
    }
    if (row->gid < 0) {
        row->gid = mgr->default_gid;
    }
    if (row->mode < 0) {
        row->mode = (int)mgr->default_mode;
    }
}

int vd_volmgr_plan_owner(struct vd_volmgr *mgr, const struct vd_owner_req *req,
                         struct vd_volume_row *row, struct vd_error *err)
{
    row->uid = row->gid = -1;
    row->mode = -1;
    vd_volmgr_owner_defaults(mgr, row);
    return apply_req(req, &row->uid, &row->gid, &row->mode, err);
}

static void store_copy(struct vd_volume *vol, int64_t uid, int64_t gid,
                       int mode)
{
    atomic_store(&vol->owner, (uint64_t)uid << 32 | (uint32_t)gid);
    atomic_store(&vol->mode, (unsigned)mode);
}

void vd_volume_owner_init(struct vd_volmgr *mgr, struct vd_volume *vol)
{
    struct vd_volume_row r = vol->row;
    vd_volmgr_owner_defaults(mgr, &r);
    store_copy(vol, r.uid, r.gid, r.mode);
}

void vd_volume_owner(const struct vd_volume *vol, uid_t *uid, gid_t *gid,
                     mode_t *mode)
{
    uint64_t o = atomic_load(&vol->owner);
    *uid = (uid_t)(o >> 32);
    *gid = (gid_t)(uint32_t)o;
    *mode = (mode_t)atomic_load(&vol->mode);
}

void vd_owner_format(uid_t uid, gid_t gid, char *buf, size_t len)
{
    struct passwd pw, *pr = NULL;
    struct group gr, *gres = NULL;
    char pbuf[4096], gbuf[4096], u[64], g[64];

    if (getpwuid_r(uid, &pw, pbuf, sizeof(pbuf), &pr) == 0 && pr != NULL) {
        snprintf(u, sizeof(u), "%s", pr->pw_name);
    } else {
        snprintf(u, sizeof(u), "%u", (unsigned)uid);
    }
    if (getgrgid_r(gid, &gr, gbuf, sizeof(gbuf), &gres) == 0 && gres != NULL) {
        snprintf(g, sizeof(g), "%s", gres->gr_name);
    } else {
        snprintf(g, sizeof(g), "%u", (unsigned)gid);
    }
    snprintf(buf, len, "%s:%s", u, g);
}

int vd_volmgr_set_owner(struct vd_volmgr *mgr, const char *name,
                        const struct vd_owner_req *req, bool notify,
                        struct vd_error *err)
{
    struct vd_volume_row row;
    struct vd_volume *vol = NULL;
    int ret;

    if (!vd_volume_name_valid(name)) {
        return vd_error_set(err, -ENOENT, "no volume named '%s'", name);
    }
    pthread_mutex_lock(&mgr->ctl);
    ret = vd_catalog_volume_get(mgr->cat, name, &row, err);
    if (ret == 0 && row.state == VD_STATE_CREATING &&
        !vd_volmgr_served(mgr, name)) {
        ret = vd_error_set(err, -ENOENT, "volume '%s' is still being created",
                           name);
    }
    if (ret < 0) {
        goto out;
    }
    vd_volmgr_owner_defaults(mgr, &row);
    ret = apply_req(req, &row.uid, &row.gid, &row.mode, err);
    if (ret == 0) {
        ret = vd_catalog_volume_set_owner(mgr->cat, name, row.uid, row.gid,
                                          row.mode, err);
    }
    if (ret < 0) {
        goto out;
    }
    vol = vd_volmgr_lookup(mgr, name);
    if (vol != NULL) {
        pthread_mutex_lock(&mgr->lock);
        vol->row.uid = row.uid;
        vol->row.gid = row.gid;
        vol->row.mode = row.mode;
        pthread_mutex_unlock(&mgr->lock);
        store_copy(vol, row.uid, row.gid, row.mode);
    }
    vd_info("volume '%s': owner %lld:%lld, mode %04o", name, (long long)row.uid,
            (long long)row.gid, (unsigned)row.mode);
out:
    pthread_mutex_unlock(&mgr->ctl);
    if (ret == 0 && notify && vol != NULL && mgr->notify != NULL) {
        mgr->notify(mgr->notify_arg, VD_VOLUME_CHANGED, vol->ino, name);
    }
    vd_volume_unref(vol);
    return ret;
}
