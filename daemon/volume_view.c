/* volume_view.c — what the API shows of volumes: one volume or the list,
 * from the catalog's rows and, for served volumes, their live state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

void vd_volmgr_fill_info(struct vd_volmgr *mgr, struct vd_volume *vol,
                         const struct vd_volume_row *row,
                         struct vd_volume_info *out)
{
    memset(out, 0, sizeof(*out));
    out->row = *row;
    snprintf(out->path, sizeof(out->path), "%s/%s", mgr->mount_dir, row->name);
    out->local = vd_row_is_file(row);
    out->allocated = -1;
    vd_volmgr_owner_defaults(mgr, &out->row);
    vd_owner_format((uid_t)out->row.uid, (gid_t)out->row.gid, out->owner,
                    sizeof(out->owner));
    vd_volmgr_qos_fill(mgr, vol, out);
    out->have_parts =
        !out->local &&
        vd_image_location_parts(row->backend, row->location, &out->parts) == 0;
    if (vol == NULL) {
        return;
    }
    out->row.size = vd_volume_size(vol);
    out->open_count = vd_volume_open_count(vol);
    out->passthrough = vd_volume_passthrough(vol);
    /* Through the gate: a reopen (linked clone base) or delete must not
     * close the image while it is read here. */
    if (vd_volume_gate_enter(vol) == 0) {
        struct vd_image_stats s;
        int64_t a = vd_image_allocated(vol->img);
        out->allocated = a >= 0 ? a : -1;
        vd_image_stats(vol->img, &s);
        out->reads = s.reads;
        out->writes = s.writes;
        out->bytes_read = s.bytes_read;
        out->bytes_written = s.bytes_written;
        out->errors = s.errors;
        out->async = s.async;
        out->have_backend_state =
            vd_image_backend_state(vol->img, &out->backend_state) == 0;
        vd_volume_note_corruption(vol);
        vd_volume_gate_leave(vol);
    }
    vd_iostats_read(&vol->io, &out->io);
    out->inflight = atomic_load(&vol->inflight); /* this call has left */
    const char *why = vd_volume_corrupt_reason(vol);
    if (why != NULL && out->row.state == VD_STATE_READY) {
        out->row.state =
            vd_volume_image_lost(vol) ? VD_STATE_MISSING : VD_STATE_CORRUPT;
        snprintf(out->state_reason, sizeof(out->state_reason), "%s", why);
    }
}

int vd_volmgr_get(struct vd_volmgr *mgr, const char *name,
                  struct vd_volume_info *out, struct vd_error *err)
{
    struct vd_volume_row row;
    int ret;
    if (!vd_volume_name_valid(name)) {
        return vd_error_set(err, -ENOENT, "no volume named '%s'", name);
    }
    ret = vd_catalog_volume_get(mgr->cat, name, &row, err);
    if (ret < 0) {
        return ret;
    }
    if (row.state == VD_STATE_CREATING && !vd_volmgr_served(mgr, name)) {
        return vd_error_set(err, -ENOENT,
                            "volume '%s' is still being "
                            "created",
                            name);
    }
    struct vd_volume *vol = vd_volmgr_lookup(mgr, name);
    vd_volmgr_fill_info(mgr, vol, &row, out);
    vd_volume_unref(vol);
    return 0;
}

int vd_volmgr_list(struct vd_volmgr *mgr, struct vd_volume_info **out,
                   struct vd_error *err)
{
    struct vd_volume_row *rows = NULL;
    int n = vd_catalog_volume_list(mgr->cat, &rows, err);
    *out = NULL;
    if (n < 0) {
        return n;
    }
    struct vd_volume_info *v = calloc(n > 0 ? (size_t)n : 1, sizeof(*v));
    if (v == NULL) {
        free(rows);
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].state == VD_STATE_CREATING &&
            !vd_volmgr_served(mgr, rows[i].name)) {
            continue; /* appears once made (a clone job may be running) */
        }
        struct vd_volume *vol = vd_volmgr_lookup(mgr, rows[i].name);
        vd_volmgr_fill_info(mgr, vol, &rows[i], &v[k++]);
        vd_volume_unref(vol);
    }
    free(rows);
    *out = v;
    return k;
}
