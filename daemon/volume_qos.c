/* volume_qos.c — the volume manager's side of QoS: volume limits and
 * groups kept in the catalog (catalog_qos.h) and applied to the served
 * volumes' throttles (qos.h) at once.
 *
 * The catalog is the truth: a change is stored first, then applied; at
 * start every group is loaded before any volume is published, and each
 * volume gets its settings as it is published, so its first request
 * already meets its limits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

int vd_volmgr_qos_start(struct vd_volmgr *mgr, struct vd_error *err)
{
    struct vd_qos_row *rows = NULL;
    int n, ret = vd_qos_sched_new(mgr->ioloop, &mgr->qos);
    if (ret < 0) {
        return vd_error_set(err, ret, "cannot start the QoS scheduler");
    }
    n = vd_catalog_qos_group_list(mgr->cat, NULL, &rows, err);
    if (n < 0) {
        return n;
    }
    for (int i = 0; i < n && ret == 0; i++) {
        ret = vd_qos_group_set(mgr->qos, rows[i].name, &rows[i].lim);
    }
    free(rows);
    return ret < 0 ? vd_error_set(err, ret, "cannot load QoS groups") : 0;
}

void vd_volmgr_qos_stop(struct vd_volmgr *mgr)
{
    vd_qos_sched_free(mgr->qos);
    mgr->qos = NULL;
}

/* Apply a stored row to a volume's throttle. */
static int configure(struct vd_volume *vol, const struct vd_qos_row *row)
{
    return vd_qos_configure(vol->qos, &row->lim,
                            row->group[0] != '\0' ? row->group : NULL);
}

void vd_volume_qos_attach(struct vd_volmgr *mgr, struct vd_volume *vol)
{
    struct vd_error err = {0};
    struct vd_qos_row row;
    if (mgr->qos == NULL || vol->qos != NULL) {
        return;
    }
    vol->qos = vd_qos_new(mgr->qos);
    if (vol->qos == NULL) {
        vd_err("volume '%s': out of memory for its QoS limits", vol->row.name);
        return;
    }
    if (vd_catalog_qos_get(mgr->cat, vol->row.name, &row, &err) < 0 ||
        configure(vol, &row) < 0) {
        vd_err("volume '%s': QoS limits not applied: %s", vol->row.name,
               err.msg[0] != '\0' ? err.msg : "unknown group");
    }
}

void vd_volume_qos_detach(struct vd_volume *vol)
{
    vd_qos_free(vol->qos);
    vol->qos = NULL;
}

int vd_volmgr_qos_store(struct vd_volmgr *mgr, const char *name,
                        const struct vd_qos_patch *p, struct vd_qos_row *out,
                        struct vd_error *err)
{
    struct vd_qos_row row;
    int ret = vd_catalog_qos_get(mgr->cat, name, &row, err);
    if (ret < 0) {
        return ret;
    }
    vd_qos_patch_apply(p, &row.lim);
    if (p->group_set) {
        snprintf(row.group, sizeof(row.group), "%s",
                 p->group != NULL ? p->group : "");
    }
    if ((ret = vd_qos_limits_check(&row.lim, err)) < 0) {
        return ret;
    }
    ret = vd_catalog_qos_put(mgr->cat, &row, err);
    if (ret == -ENOENT && row.group[0] != '\0') {
        ret = vd_error_set(err, -ENXIO, "no qos group named '%s'", row.group);
    }
    if (ret == 0 && out != NULL) {
        *out = row;
    }
    return ret;
}

int vd_volmgr_qos_check(struct vd_volmgr *mgr, const struct vd_qos_patch *p,
                        struct vd_error *err)
{
    struct vd_qos_limits given = {0};
    struct vd_qos_row row;
    int ret;
    vd_qos_patch_apply(p, &given); /* what is kept was checked before */
    if ((ret = vd_qos_limits_check(&given, err)) < 0) {
        return ret;
    }
    if (p->group_set && p->group != NULL) {
        ret = vd_volmgr_qos_group_get(mgr, p->group, &row, err);
        if (ret == -ENOENT) {
            ret =
                vd_error_set(err, -ENXIO, "no qos group named '%s'", p->group);
        }
    }
    return ret;
}

int vd_volmgr_qos_set(struct vd_volmgr *mgr, const char *name,
                      const struct vd_qos_patch *p, struct vd_error *err)
{
    struct vd_volume_row vrow;
    struct vd_qos_row row;
    struct vd_volume *vol;
    int ret;

    pthread_mutex_lock(&mgr->ctl);
    ret = vd_catalog_volume_get(mgr->cat, name, &vrow, err);
    if (ret == 0 && (vol = vd_volmgr_lookup(mgr, name)) != NULL) {
        if (vd_volume_passthrough(vol)) {
            ret = vd_error_set(err, -EBUSY,
                               "volume '%s' is open through kernel "
                               "passthrough: its reads and writes do not pass "
                               "the daemon, so QoS settings can change only "
                               "once every open of its file is closed",
                               name);
        }
        vd_volume_unref(vol);
    }
    if (ret == 0) {
        ret = vd_volmgr_qos_store(mgr, name, p, &row, err);
    }
    if (ret == 0 && (vol = vd_volmgr_lookup(mgr, name)) != NULL) {
        if (vol->qos != NULL && configure(vol, &row) < 0) {
            ret =
                vd_error_set(err, -ENXIO, "no qos group named '%s'", row.group);
        }
        vd_volume_unref(vol);
    }
    pthread_mutex_unlock(&mgr->ctl);
    if (ret == 0) {
        vd_info("volume '%s': QoS limits changed", name);
    }
    return ret;
}

void vd_volmgr_qos_fill(struct vd_volmgr *mgr, struct vd_volume *vol,
                        struct vd_volume_info *out)
{
    if (vd_catalog_qos_get(mgr->cat, out->row.name, &out->qos, NULL) < 0) {
        memset(&out->qos, 0, sizeof(out->qos));
    }
    vd_qos_stats(vol != NULL ? vol->qos : NULL, &out->qos_stats);
}

int vd_volmgr_qos_group_get(struct vd_volmgr *mgr, const char *name,
                            struct vd_qos_row *out, struct vd_error *err)
{
    struct vd_qos_row *rows = NULL;
    int n = vd_catalog_qos_group_list(mgr->cat, name, &rows, err);
    if (n == 0) {
        n = vd_error_set(err, -ENOENT, "no qos group named '%s'", name);
    } else if (n > 0) {
        *out = rows[0];
        n = 0;
    }
    free(rows);
    return n;
}

int vd_volmgr_qos_group_list(struct vd_volmgr *mgr, struct vd_qos_row **out,
                             struct vd_error *err)
{
    return vd_catalog_qos_group_list(mgr->cat, NULL, out, err);
}

int vd_volmgr_qos_group_create(struct vd_volmgr *mgr, const char *name,
                               const struct vd_qos_patch *p,
                               struct vd_qos_row *out, struct vd_error *err)
{
    struct vd_qos_row row = {0};
    int ret;
    if (!vd_volume_name_valid(name)) {
        return vd_error_set(err, -EINVAL,
                            "'name' must match [a-z0-9][a-z0-9_.-]{0,63}");
    }
    snprintf(row.name, sizeof(row.name), "%s", name);
    vd_qos_patch_apply(p, &row.lim);
    if ((ret = vd_qos_limits_check(&row.lim, err)) < 0) {
        return ret;
    }
    pthread_mutex_lock(&mgr->ctl);
    ret = vd_catalog_qos_group_insert(mgr->cat, &row, err);
    if (ret == 0 && (ret = vd_qos_group_set(mgr->qos, name, &row.lim)) < 0) {
        vd_catalog_qos_group_delete(mgr->cat, name, NULL);
        vd_error_set(err, ret, "out of memory");
    }
    pthread_mutex_unlock(&mgr->ctl);
    if (ret == 0) {
        *out = row;
        vd_info("created qos group '%s'", name);
    }
    return ret;
}

int vd_volmgr_qos_group_update(struct vd_volmgr *mgr, const char *name,
                               const struct vd_qos_patch *p,
                               struct vd_qos_row *out, struct vd_error *err)
{
    struct vd_qos_row row;
    int ret;
    pthread_mutex_lock(&mgr->ctl);
    ret = vd_volmgr_qos_group_get(mgr, name, &row, err);
    if (ret == 0) {
        vd_qos_patch_apply(p, &row.lim);
        ret = vd_qos_limits_check(&row.lim, err);
    }
    if (ret == 0) {
        ret = vd_catalog_qos_group_update(mgr->cat, &row, err);
    }
    if (ret == 0 && (ret = vd_qos_group_set(mgr->qos, name, &row.lim)) < 0) {
        vd_error_set(err, ret, "out of memory");
    }
    pthread_mutex_unlock(&mgr->ctl);
    if (ret == 0) {
        *out = row;
        vd_info("qos group '%s': limits changed", name);
    }
    return ret;
}

int vd_volmgr_qos_group_delete(struct vd_volmgr *mgr, const char *name,
                               struct vd_error *err)
{
    int ret;
    pthread_mutex_lock(&mgr->ctl);
    ret = vd_catalog_qos_group_delete(mgr->cat, name, err);
    if (ret == 0 && vd_qos_group_remove(mgr->qos, name) == -EBUSY) {
        /* The catalog said no volume names it: a volume still being
         * configured does; the catalog is the truth for the next start. */
        vd_err("qos group '%s' deleted while a volume still used it", name);
    }
    pthread_mutex_unlock(&mgr->ctl);
    if (ret == 0) {
        vd_info("deleted qos group '%s'", name);
    }
    return ret;
}
