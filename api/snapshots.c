/* snapshots.c — /volumes/{name}/snapshots: take, list, show, delete,
 * revert, and the changed-block list between two snapshots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "parse.h"
#include "problem.h"
#include "vd_error.h"
#include "volume.h"

/* Snapshot names and ids come from the image, which other tools may
 * have written: bytes that are not UTF-8 show as null rather than fail
 * the whole document. */
static json_t *str_or_null(const char *s)
{
    json_t *j = json_string(s);
    return j != NULL ? j : json_null();
}

static json_t *snapshot_to_json(const char *volume,
                                const struct vd_snapshot_view *s)
{
    char created[API_RFC3339_LEN];
    return json_pack("{s:o, s:o, s:s, s:I, s:I, s:o}", "name",
                     str_or_null(s->name), "id", str_or_null(s->id), "volume",
                     volume, "size", (json_int_t)s->size, "vm_state_size",
                     (json_int_t)s->vm_state_size, "created_at",
                     api_rfc3339(s->created_at, created, sizeof(created)) == 0
                         ? json_string(created)
                         : json_null());
}

/* Accept exactly the members in known (a NULL-terminated list). */
static int only_members(const json_t *body, const char *const *known,
                        struct api_reply *rep)
{
    const char *key;
    json_t *v;
    if (!json_is_object(body)) {
        api_problem(rep, 400, "the body must be a JSON object");
        return -1;
    }
    json_object_foreach((json_t *)body, key, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++) {
            ok = strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            api_problem(rep, 400, "unknown member '%s'", key);
            return -1;
        }
    }
    return 0;
}

void api_snapshots_create(const struct api_request *req, struct api_reply *rep)
{
    static const char *const known[] = {"name", NULL};
    struct vd_error err = {0};
    struct vd_snapshot_view sv;
    uint64_t paused = 0;
    const char *name;
    json_t *o;
    int r;

    if (only_members(req->body, known, rep) < 0) {
        return;
    }
    name = json_string_value(json_object_get(req->body, "name"));
    if (name == NULL) {
        api_problem(rep, 400, "'name' is required and must be a string");
        return;
    }
    r = vd_volmgr_snapshot_create(req->mgr, req->name, name, &sv, &paused,
                                  &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    o = snapshot_to_json(req->name, &sv);
    if (o == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    json_object_set_new(o, "io_paused_us", json_integer((json_int_t)paused));
    api_reply_json(rep, 201, o);
    if (asprintf(&rep->location, "/volumes/%s/snapshots/%s", req->name,
                 sv.name) < 0) {
        rep->location = NULL;
    }
}

void api_snapshots_list(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_snapshot_view *v = NULL;
    int n = vd_volmgr_snapshot_list(req->mgr, req->name, &v, &err);
    json_t *arr;

    if (n < 0) {
        api_problem_errno(rep, n, err.msg);
        return;
    }
    arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        json_t *j = snapshot_to_json(req->name, &v[i]);
        if (j == NULL || json_array_append_new(arr, j) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(v);
    if (arr == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    api_reply_json(rep, 200, json_pack("{s:o}", "snapshots", arr));
}

void api_snapshots_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_snapshot_view sv;
    int r =
        vd_volmgr_snapshot_get(req->mgr, req->name, req->snapshot, &sv, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    json_t *o = snapshot_to_json(req->name, &sv);
    if (o == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    api_reply_json(rep, 200, o);
}

void api_snapshots_delete(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    int r = vd_volmgr_snapshot_delete(req->mgr, req->name, req->snapshot, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    api_reply_json(rep, 204, NULL);
}

void api_snapshots_revert(const struct api_request *req, struct api_reply *rep)
{
    static const char *const known[] = {"force", NULL};
    struct vd_error err = {0};
    bool force = false;
    json_t *f;
    int r;

    if (only_members(req->body, known, rep) < 0) {
        return;
    }
    f = json_object_get(req->body, "force");
    if (f != NULL && !json_is_boolean(f)) {
        api_problem(rep, 400, "'force' must be true or false");
        return;
    }
    /* force in the query too, as DELETE /volumes/{volume} takes it */
    force = req->force || (f != NULL && json_is_true(f));
    r = vd_volmgr_snapshot_revert(req->mgr, req->name, req->snapshot, force,
                                  &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    api_volumes_get(req, rep);
}

void api_snapshots_changes(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_extent *ext = NULL;
    uint64_t total = 0;
    json_t *arr;
    int n = vd_volmgr_snapshot_changes(req->mgr, req->name, req->snapshot,
                                       req->since, &ext, &err);
    if (n < 0) {
        api_problem_errno(rep, n, err.msg);
        return;
    }
    arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        json_t *e = json_pack("{s:I, s:I}", "offset", (json_int_t)ext[i].offset,
                              "length", (json_int_t)ext[i].length);
        total += ext[i].length;
        if (e == NULL || json_array_append_new(arr, e) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(ext);
    if (arr == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    api_reply_json(rep, 200,
                   json_pack("{s:s, s:o, s:o, s:I}", "snapshot", req->snapshot,
                             "since",
                             req->since ? json_string(req->since) : json_null(),
                             "extents", arr, "bytes", (json_int_t)total));
}
