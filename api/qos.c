/* qos.c — the QoS members of volumes ("qos", "qos_group") and the
 * /qos-groups routes: parsing, rendering, and the group handlers.
 *
 * A limit is a positive integer per second, or null to clear it; members
 * left out keep their value. The shape is checked here; ranges are the
 * volume manager's (vd_qos_limits_check). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "problem.h"
#include "vd_error.h"
#include "volume.h"

/* A "qos" member's value (object or null) into p. */
static int qos_from_json(const json_t *v, struct vd_qos_patch *p,
                         struct vd_error *err)
{
    const char *key;
    json_t *m;

    if (json_is_null(v)) {
        p->clear = true;
        return 0;
    }
    if (!json_is_object(v)) {
        return vd_error_set(err, -EINVAL, "'qos' must be an object or null");
    }
    json_object_foreach((json_t *)v, key, m)
    {
        int i = 0;
        if (strcmp(key, "burst_seconds") == 0) {
            if (!json_is_null(m) && !json_is_number(m)) {
                return vd_error_set(err, -EINVAL,
                                    "'qos.burst_seconds' must be a number "
                                    "or null");
            }
            p->burst_set = true;
            p->burst_seconds = json_is_null(m) ? 0 : json_number_value(m);
            if (!json_is_null(m) && !(p->burst_seconds > 0)) {
                return vd_error_set(err, -EINVAL,
                                    "'qos.burst_seconds' must be positive "
                                    "(null clears it)");
            }
            continue;
        }
        while (i < VD_QOS_NLIMITS && strcmp(vd_qos_limit_name(i), key) != 0) {
            i++;
        }
        if (i == VD_QOS_NLIMITS) {
            return vd_error_set(err, -EINVAL, "unknown member 'qos.%.64s'",
                                key);
        }
        p->set[i] = true;
        if (json_is_null(m)) {
            p->rate[i] = 0;
        } else if (!json_is_integer(m) || json_integer_value(m) <= 0) {
            return vd_error_set(err, -EINVAL,
                                "'qos.%s' must be a positive integer per "
                                "second, or null",
                                key);
        } else {
            p->rate[i] = (uint64_t)json_integer_value(m);
        }
    }
    return 0;
}

int api_qos_from_body(const json_t *body, struct vd_qos_patch *p, bool *given,
                      struct vd_error *err)
{
    json_t *v = json_object_get(body, "qos");
    json_t *g = json_object_get(body, "qos_group");

    *p = (struct vd_qos_patch){0};
    *given = v != NULL || g != NULL;
    if (v != NULL && qos_from_json(v, p, err) < 0) {
        return -EINVAL;
    }
    if (g != NULL) {
        p->group_set = true;
        if (json_is_string(g) && vd_volume_name_valid(json_string_value(g))) {
            p->group = json_string_value(g);
        } else if (!json_is_null(g)) {
            return vd_error_set(err, -EINVAL,
                                "'qos_group' must be a group name or null");
        }
    }
    return 0;
}

json_t *api_qos_to_json(const struct vd_qos_limits *lim)
{
    json_t *o = json_object();
    for (int i = 0; o != NULL && i < VD_QOS_NLIMITS; i++) {
        json_object_set_new(o, vd_qos_limit_name(i),
                            lim->rate[i] != 0
                                ? json_integer((json_int_t)lim->rate[i])
                                : json_null());
    }
    if (o != NULL) {
        json_object_set_new(o, "burst_seconds",
                            lim->burst_seconds > 0
                                ? json_real(lim->burst_seconds)
                                : json_null());
    }
    return o != NULL ? o : json_null();
}

static json_t *group_to_json(const struct vd_qos_row *row)
{
    return json_pack("{s:s, s:o, s:i}", "name", row->name, "qos",
                     api_qos_to_json(&row->lim), "volumes", row->users);
}

static void reply_group(struct api_reply *rep, unsigned status,
                        const struct vd_qos_row *row)
{
    json_t *j = group_to_json(row);
    if (j == NULL) {
        api_problem(rep, 500, "out of memory rendering a qos group");
        return;
    }
    api_reply_json(rep, status, j);
}

/* A group body: known members only, and no group of a group. */
static int group_body(const json_t *body, bool create, const char **name,
                      struct vd_qos_patch *p, struct vd_error *err)
{
    const char *key;
    json_t *v;
    bool given;

    if (!json_is_object(body)) {
        return vd_error_set(err, -EINVAL, "the body must be a JSON object");
    }
    json_object_foreach((json_t *)body, key, v)
    {
        if (strcmp(key, "qos") != 0 && (!create || strcmp(key, "name") != 0)) {
            return vd_error_set(err, -EINVAL, "unknown member '%.64s'", key);
        }
    }
    if (create) {
        v = json_object_get(body, "name");
        if (!json_is_string(v) || !vd_volume_name_valid(json_string_value(v))) {
            return vd_error_set(err, -EINVAL,
                                "'name' is required and must match "
                                "[a-z0-9][a-z0-9_.-]{0,63}");
        }
        *name = json_string_value(v);
    }
    if (api_qos_from_body(body, p, &given, err) < 0) {
        return -EINVAL;
    }
    if (!create && !given) {
        return vd_error_set(err, -EINVAL, "'qos' is required");
    }
    return 0;
}

void api_qos_groups_list(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_qos_row *rows = NULL;
    json_t *arr;
    int n = vd_volmgr_qos_group_list(req->mgr, &rows, &err);

    if (n < 0) {
        api_problem_errno(rep, n, err.msg);
        return;
    }
    arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        json_t *j = group_to_json(&rows[i]);
        if (j == NULL || json_array_append_new(arr, j) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(rows);
    if (arr == NULL) {
        api_problem(rep, 500, "out of memory listing qos groups");
        return;
    }
    api_reply_json(rep, 200, json_pack("{s:o}", "qos_groups", arr));
}

void api_qos_groups_create(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_qos_patch p;
    struct vd_qos_row row;
    const char *name = NULL;
    int r;

    if (group_body(req->body, true, &name, &p, &err) < 0) {
        api_problem(rep, 400, "%s", err.msg);
        return;
    }
    r = vd_volmgr_qos_group_create(req->mgr, name, &p, &row, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    reply_group(rep, 201, &row);
    if (rep->status == 201 &&
        asprintf(&rep->location, "/qos-groups/%s", name) < 0) {
        rep->location = NULL;
    }
}

void api_qos_groups_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_qos_row row;
    int r = vd_volmgr_qos_group_get(req->mgr, req->name, &row, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    reply_group(rep, 200, &row);
}

void api_qos_groups_patch(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_qos_patch p;
    struct vd_qos_row row;
    int r;

    if (group_body(req->body, false, NULL, &p, &err) < 0) {
        api_problem(rep, 400, "%s", err.msg);
        return;
    }
    r = vd_volmgr_qos_group_update(req->mgr, req->name, &p, &row, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    api_qos_groups_get(req, rep); /* with the count of volumes */
}

void api_qos_groups_delete(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    int r = vd_volmgr_qos_group_delete(req->mgr, req->name, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    api_reply_json(rep, 204, NULL);
}
