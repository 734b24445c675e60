/* volumes.c — the /volumes routes: list, create, show, grow, delete, and
 * the volume's JSON form.
 *
 * Each handler validates, makes one volume manager call, and renders the
 * outcome; errors from the volume manager go through api_problem_errno. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "parse.h"
#include "problem.h"
#include "vd_error.h"
#include "volume.h"
#include "volume_spec.h"

/* json_t for a catalog string that should be UTF-8 but is not trusted to
 * be; null rather than a failed document. */
static json_t *str_or_null(const char *s)
{
    json_t *j = s != NULL ? json_string(s) : NULL;
    return j != NULL ? j : json_null();
}

static const char *link_name(enum vd_backend_link link)
{
    switch (link) {
    case VD_LINK_CONNECTING:
        return "connecting";
    case VD_LINK_CONNECTED:
        return "connected";
    case VD_LINK_DEGRADED:
        return "degraded";
    case VD_LINK_DISCONNECTED:
        return "disconnected";
    }
    return "unknown";
}

/* A remote backend's live state (struct vd_backend_state) as members of
 * the backend object. Members already there (type, uri) win. */
static void add_backend_state(json_t *backend,
                              const struct vd_backend_state *st)
{
    json_t *server = json_null();
    json_t *o;

    if (st->have_server) {
        server = json_pack(
            "{s:I, s:b, s:b, s:b, s:b, s:b, s:b, s:b}", "size",
            (json_int_t)st->server.size, "read_only", st->server.read_only,
            "can_flush", st->server.can_flush, "can_trim", st->server.can_trim,
            "can_zero", st->server.can_zero, "can_fua", st->server.can_fua,
            "can_multi_conn", st->server.can_multi_conn, "block_status",
            st->server.block_status);
    }
    o = json_pack(
        "{s:s, s:o, s:i, s:i, s:I, s:I, s:o}", "state", link_name(st->link),
        "server", server != NULL ? server : json_null(), "connections",
        st->connections, "connected", st->connected, "reconnects",
        (json_int_t)st->reconnects, "timeout_ms", (json_int_t)st->timeout_ms,
        "last_error",
        st->last_error[0] != '\0' ? str_or_null(st->last_error) : json_null());
    if (o != NULL && st->features[0] != '\0') {
        json_object_set_new(o, "features", json_string(st->features));
    }
    if (o != NULL && st->have_lock) {
        json_object_set_new(o, "lock_owner", json_boolean(st->lock_owner));
    }
    if (o != NULL) {
        json_object_update_missing(backend, o);
    }
    json_decref(o);
}

static json_t *volume_to_json(const struct vd_volume_info *vi)
{
    const struct vd_volume_row *r = &vi->row;
    bool local = vi->local;
    char created[API_RFC3339_LEN];
    json_t *backend, *stats, *j;

    backend = json_pack("{s:o}", "type", str_or_null(r->backend));
    if (backend != NULL && !local) {
        json_object_set_new(backend, "uri", str_or_null(r->location));
    }
    if (backend != NULL && vi->have_parts) {
        json_object_set_new(backend, "cluster", str_or_null(vi->parts.cluster));
        json_object_set_new(backend, "pool", str_or_null(vi->parts.pool));
        json_object_set_new(backend, "image", str_or_null(vi->parts.image));
        json_object_set_new(backend, "created_by_vdiskd",
                            json_boolean(r->owns_image));
    }
    if (backend != NULL && vi->have_backend_state) {
        add_backend_state(backend, &vi->backend_state);
    }
    stats = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "reads",
                      (json_int_t)vi->reads, "writes", (json_int_t)vi->writes,
                      "bytes_read", (json_int_t)vi->bytes_read, "bytes_written",
                      (json_int_t)vi->bytes_written, "errors",
                      (json_int_t)vi->errors, "async_requests",
                      (json_int_t)vi->async, "throttled_requests",
                      (json_int_t)vi->qos_stats.throttled, "throttled_seconds",
                      (double)vi->qos_stats.throttled_ns / 1e9);
    j = json_pack(
        "{s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:s, s:o, "
        "s:i, s:b, s:o, s:o, s:o, s:o, s:o}",
        "name", str_or_null(r->name), "uuid", str_or_null(r->uuid), "size",
        (json_int_t)r->size, "format", str_or_null(r->format), "backend",
        backend != NULL ? backend : json_null(), "path", str_or_null(vi->path),
        "image", local ? str_or_null(r->location) : json_null(), "allocated",
        vi->allocated >= 0 ? json_integer(vi->allocated) : json_null(), "state",
        vd_volume_state_name(r->state), "state_reason",
        vi->state_reason[0] != '\0' ? str_or_null(vi->state_reason)
                                    : json_null(),
        "open_count", vi->open_count, "passthrough", vi->passthrough,
        "created_at",
        api_rfc3339(r->created_at, created, sizeof(created)) == 0
            ? json_string(created)
            : json_null(),
        "base", r->base[0] != '\0' ? str_or_null(r->base) : json_null(),
        "stats", stats != NULL ? stats : json_null(), "qos",
        api_qos_to_json(&vi->qos.lim), "qos_group",
        vi->qos.group[0] != '\0' ? str_or_null(vi->qos.group) : json_null());
    if (j != NULL) {
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)r->mode & 0777);
        json_object_set_new(j, "owner", json_string(vi->owner));
        json_object_set_new(j, "uid", json_integer(r->uid));
        json_object_set_new(j, "gid", json_integer(r->gid));
        json_object_set_new(j, "mode", json_string(mode));
    }
    return j;
}

/* Reply 'status' with the volume, or 500 if rendering ran out of memory. */
static void reply_volume(struct api_reply *rep, unsigned status,
                         const struct vd_volume_info *vi)
{
    json_t *j = volume_to_json(vi);
    if (j == NULL) {
        api_problem(rep, 500, "out of memory rendering volume '%s'",
                    vi->row.name);
        return;
    }
    api_reply_json(rep, status, j);
}

void api_volumes_list(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_volume_info *vols = NULL;
    json_t *arr = NULL;
    int n;

    n = vd_volmgr_list(req->mgr, &vols, &err);
    if (n < 0) {
        api_problem_errno(rep, n, err.msg);
        return;
    }
    arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        json_t *j = volume_to_json(&vols[i]);
        if (j == NULL || json_array_append_new(arr, j) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(vols);
    if (arr == NULL) {
        api_problem(rep, 500, "out of memory listing volumes");
        return;
    }
    api_reply_json(rep, 200, json_pack("{s:o}", "volumes", arr));
}

void api_volumes_create(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_volume_spec spec;
    struct vd_volume_info *vi;
    struct vd_qos_patch qp;
    bool qos;
    int r;

    if (api_spec_from_json(req->body, &spec, &err) < 0 ||
        api_qos_from_body(req->body, &qp, &qos, &err) < 0) {
        api_problem(rep, 400, "%s", err.msg);
        return;
    }
    if (qos && spec.source_volume != NULL) {
        api_problem(rep, 400,
                    "a clone from 'source' takes QoS settings with PATCH "
                    "once it exists");
        return;
    }
    spec.qos = qos ? &qp : NULL;
    if (spec.source_volume != NULL) {
        api_volumes_clone(req, &spec, rep);
        return;
    }
    /* vd_volume_info carries two 4 KiB paths: keep it off thread stacks. */
    vi = calloc(1, sizeof(*vi));
    if (vi == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    r = vd_volmgr_create(req->mgr, &spec, vi, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        goto out;
    }
    reply_volume(rep, 201, vi);
    if (rep->status == 201 &&
        asprintf(&rep->location, "/volumes/%s", spec.name) < 0) {
        rep->location = NULL;
    }
out:
    free(vi);
}

void api_volumes_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_volume_info *vi = calloc(1, sizeof(*vi));
    int r;

    if (vi == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    r = vd_volmgr_get(req->mgr, req->name, vi, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
    } else {
        reply_volume(rep, 200, vi);
    }
    free(vi);
}

void api_volumes_patch(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_owner_req own;
    struct vd_qos_patch qp;
    uint64_t size;
    bool qos, owner;
    int r = 0;

    if (api_patch_from_json(req->body, &size, &own, &err) < 0 ||
        api_qos_from_body(req->body, &qp, &qos, &err) < 0) {
        api_problem(rep, 400, "%s", err.msg);
        return;
    }
    owner = own.owner != NULL || own.has_uid || own.has_gid || own.has_mode;
    if ((size != 0 || owner) && qos) { /* nothing changes unless all can */
        r = vd_volmgr_qos_check(req->mgr, &qp, &err);
    }
    if (r == 0 && size != 0) {
        r = vd_volmgr_resize(req->mgr, req->name, size, &err);
    }
    if (r == 0 && owner) {
        r = vd_volmgr_set_owner(req->mgr, req->name, &own, true, &err);
    }
    if (r == 0 && qos) {
        r = vd_volmgr_qos_set(req->mgr, req->name, &qp, &err);
    }
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    api_volumes_get(req, rep);
}

void api_volumes_delete(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    bool removed = false;
    int r = vd_volmgr_delete_image(req->mgr, req->name, req->force, req->purge,
                                   &removed, &err);

    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    /* 204 as ever; the header says whether the image went too. */
    api_reply_json(rep, 204, NULL);
    rep->image_fate = removed ? "removed" : "detached";
}

/* POST /volumes/{name}/takeover: fence the client that holds the
 * volume's image lock and break the lock (a dead host's). */
void api_volumes_takeover(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    char fenced[1024];
    json_t *list, *body;

    if (req->body != NULL && !json_is_object(req->body)) {
        api_problem(rep, 400, "the body must be a JSON object");
        return;
    }
    if (req->body != NULL && json_object_size(req->body) > 0) {
        api_problem(rep, 400, "unknown member '%s'",
                    json_object_iter_key(json_object_iter(req->body)));
        return;
    }
    int r =
        vd_volmgr_takeover(req->mgr, req->name, fenced, sizeof(fenced), &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    list = json_array();
    for (char *p = fenced, *tok; list != NULL && *p != '\0'; p = tok) {
        tok = strstr(p, ", ");
        size_t n = tok != NULL ? (size_t)(tok - p) : strlen(p);
        json_array_append_new(list, json_stringn(p, n));
        tok = tok != NULL ? tok + 2 : p + n;
    }
    body = json_pack("{s:s, s:o*}", "name", req->name, "fenced", list);
    api_reply_json(rep, 200, body);
}
