/* jobs.c — /jobs and /jobs/{id}: long operations (full clones) and their
 * progress. */
#include <stdio.h>
#include <stdlib.h>

#include "handler.h"
#include "jobs.h"
#include "parse.h"
#include "problem.h"
#include "vd_error.h"
#include "volume.h"

static json_t *job_to_json(const struct vd_job_info *j)
{
    static const char *const states[] = {"running", "succeeded", "failed"};
    char started[API_RFC3339_LEN], finished[API_RFC3339_LEN];
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:o, s:o}", "id",
        (json_int_t)j->id, "kind", j->kind, "state", states[j->state], "volume",
        j->target, "source", j->source, "progress", "done", (json_int_t)j->done,
        "total", (json_int_t)j->total, "started_at",
        api_rfc3339(j->started_at, started, sizeof(started)) == 0
            ? json_string(started)
            : json_null(),
        "finished_at",
        j->finished_at != 0 &&
                api_rfc3339(j->finished_at, finished, sizeof(finished)) == 0
            ? json_string(finished)
            : json_null());
    if (o != NULL && j->state == VD_JOB_FAILED) {
        json_object_set_new(o, "error", json_string(j->error));
    }
    return o;
}

void api_jobs_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_job_info j;
    int r = vd_volmgr_job_get(req->mgr, req->id, &j, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    json_t *o = job_to_json(&j);
    if (o == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    api_reply_json(rep, 200, o);
}

void api_jobs_list(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_job_info *jobs = NULL;
    int n = vd_volmgr_job_list(req->mgr, &jobs, &err);
    if (n < 0) {
        api_problem_errno(rep, n, err.msg);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        json_t *o = job_to_json(&jobs[i]);
        if (o == NULL || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(jobs);
    if (arr == NULL) {
        api_problem(rep, 500, "out of memory listing jobs");
        return;
    }
    api_reply_json(rep, 200, json_pack("{s:o}", "jobs", arr));
}

void api_volumes_clone(const struct api_request *req,
                       const struct vd_volume_spec *spec, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_job_info j;
    uint64_t id;
    int r = vd_volmgr_clone(req->mgr, spec, spec->source_volume,
                            spec->source_snapshot, &id, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    json_t *o =
        vd_volmgr_job_get(req->mgr, id, &j, NULL) == 0 ? job_to_json(&j) : NULL;
    if (o == NULL) {
        api_problem(rep, 500, "out of memory");
        return;
    }
    api_reply_json(rep, 202, o);
    if (asprintf(&rep->location, "/jobs/%llu", (unsigned long long)id) < 0) {
        rep->location = NULL;
    }
}
