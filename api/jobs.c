/* jobs.c — GET /jobs/{id}: the state and progress of a long operation
 * (a full clone) started by another request, and the job's JSON form. */
#include <stdio.h>

#include "handler.h"
#include "jobs.h"
#include "parse.h"
#include "problem.h"
#include "vd_error.h"
#include "volume.h"

static json_t *time_or_null(int64_t t)
{
    char buf[API_RFC3339_LEN];
    return t != 0 && api_rfc3339(t, buf, sizeof(buf)) == 0 ? json_string(buf)
                                                           : json_null();
}

static json_t *str_or_null(const char *s)
{
    json_t *j = json_string(s);
    return j != NULL ? j : json_null();
}

json_t *api_job_to_json(const struct vd_job_info *ji)
{
    static const char *const states[] = {
        [VD_JOB_RUNNING] = "running",
        [VD_JOB_SUCCEEDED] = "succeeded",
        [VD_JOB_FAILED] = "failed",
    };
    const char *state = (unsigned)ji->state < sizeof(states) / sizeof(states[0])
                            ? states[ji->state] : "unknown";

    return json_pack("{s:I, s:o, s:o, s:o, s:s, s:I, s:I, s:o, s:o, s:o}",
                     "id", (json_int_t)ji->id,
                     "kind", str_or_null(ji->kind),
                     "target", str_or_null(ji->target),
                     "source", str_or_null(ji->source),
                     "state", state,
                     "done", (json_int_t)ji->done,
                     "total", (json_int_t)ji->total,
                     "error", ji->state == VD_JOB_FAILED
                                  ? str_or_null(ji->error) : json_null(),
                     "started_at", time_or_null(ji->started_at),
                     "finished_at", time_or_null(ji->finished_at));
}

void api_jobs_get(const struct api_request *req, struct api_reply *rep)
{
    struct vd_error err = {0};
    struct vd_job_info ji;
    json_t *j;
    int r;

    r = vd_volmgr_job_get(req->mgr, req->job, &ji, &err);
    if (r < 0) {
        api_problem_errno(rep, r, err.msg);
        return;
    }
    j = api_job_to_json(&ji);
    if (j == NULL) {
        api_problem(rep, 500, "out of memory rendering job");
        return;
    }
    api_reply_json(rep, 200, j);
}
