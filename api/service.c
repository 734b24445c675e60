/* service.c — endpoints about the service itself: GET /health (liveness)
 * and GET /openapi.json (the API's description, embedded at build time
 * from api/openapi.json). */
#include "handler.h"
#include "problem.h"
#include "volume.h"

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

void api_health_get(const struct api_request *req, struct api_reply *rep)
{
    char why[512];
    /* mgr is NULL only for a server started without volumes (tests) */
    if (req->mgr != NULL &&
        vd_volmgr_export_state(req->mgr, why, sizeof(why)) < 0) {
        /* A problem body, built here rather than by api_problem: probes
         * ask every few seconds, and the export logged the loss once. */
        api_reply_json(rep, 503,
                       json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank",
                                 "title", api_status_title(503), "status", 503,
                                 "detail", why));
        rep->problem = true;
        return;
    }
    api_reply_json(rep, 200, json_pack("{s:s}", "status", "ok"));
}

void api_openapi_get(const struct api_request *req, struct api_reply *rep)
{
    api_reply_clear(rep);
    rep->status = 200;
    rep->static_text = api_openapi_json;
    rep->static_len = api_openapi_json_len;
    rep->content_type = "application/json";
}
