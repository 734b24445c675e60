/* snapshots.c — /volumes/{name}/snapshots routes: take, list, show,
 * delete and revert to a snapshot, and the snapshot's JSON form.
 *
 * Consistency while clients write (gate, drain, flush) is the volume
 * manager's job; these handlers only validate, call and render. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "handler.h"
#include "parse.h"
#include "problem.h"
#include "vd_error.h"
#include "volume.h"
#include "volume_spec.h"

static json_t *str_or_null(const char *s)
{
    json_t *j = json_string(s);   /* NULL for bytes that are not UTF-8 */
    return j != NULL ? j : json_null();
}

static json_t *snapshot_to_json(const char *volume,
                                const struct vd_snapshot_view *sv)
{
    char created[API_RFC3339_LEN];

    return json_pack("{s:o, s:o, s:s, s:I, s:I, s:o}",
                     "name", str_or_null(sv->name),
                     "id", str_or_null(sv->id),
                     "volume", volume,
                     "size", (json_int_t)sv->size,
                     "vm_state_size", (json_int_t)sv->vm_state_size,
                     "created_at",
                     api_rfc3339(sv->created_at, created,
                                 sizeof(created)) == 0
                         ? json_string(created)
                         : json_null());
}

void api_snapshots_list(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_snapshot_view *snaps = NULL;
    json_t *arr;
    int n;

    n = vd_volmgr_snapshot_list(req->mgr, req->name, &snaps, &err);
    if (n < 0) {
        api_problem_errno(rep, n, err.msg);
        return;
    }
    arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        json_t *j = snapshot_to_json(req->name, &snaps[i]);
        if (j == NULL || json_array_append_new(arr, j) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(snaps);
    if (arr == NULL) {
        api_problem(rep, 500, "out of memory listing snapshots");
        return;
    }
    api_reply_json(rep, 200, json_pack("{s:o}", "snapshots", arr));
}

void api_snapshots_create(const struct api_request *req,
                          struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_snapshot_view sv;
    uint64_t paused_us = 0;
    const char *name;
    json_t *j;
    int r;

    if (api_snapshot_from_json(req->body, &name, &err) < 0) {
        api_problem(rep, 400, "%s", err.msg);
        return;
    }
    r = vd_volmgr_snapshot_create(req->mgr, req->name, name, &sv, &paused_us,
                                  &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    j = snapshot_to_json(req->name, &sv);
    if (j == NULL) {
        api_problem(rep, 500, "out of memory rendering snapshot");
        return;
    }
    json_object_set_new(j, "io_paused_us", json_integer((json_int_t)paused_us));
    api_reply_json(rep, 201, j);
    if (asprintf(&rep->location, "/volumes/%s/snapshots/%s", req->name,
                 name) < 0) {
        rep->location = NULL;
    }
}

void api_snapshots_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_snapshot_view sv;
    json_t *j;
    int r;

    r = vd_volmgr_snapshot_get(req->mgr, req->name, req->snapshot, &sv, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    j = snapshot_to_json(req->name, &sv);
    if (j == NULL) {
        api_problem(rep, 500, "out of memory rendering snapshot");
        return;
    }
    api_reply_json(rep, 200, j);
}

void api_snapshots_delete(const struct api_request *req,
                          struct api_reply *rep)
{
    struct vd_error err = {0};
    int r = vd_volmgr_snapshot_delete(req->mgr, req->name, req->snapshot,
                                      &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    api_reply_json(rep, 204, NULL);
}

void api_snapshots_revert(const struct api_request *req,
                          struct api_reply *rep)
{
    struct vd_error err = {0};
    int r = vd_volmgr_snapshot_revert(req->mgr, req->name, req->snapshot,
                                      req->force, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    api_volumes_get(req, rep);   /* the volume as it is now */
}
