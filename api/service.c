/* service.c — endpoints about the service itself: GET /health (liveness)
 * and GET /openapi.json (the API's description, embedded at build time
 * from api/openapi.json). */
#include "handler.h"

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

void api_health_get(const struct api_request *req, struct api_reply *rep)
{
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
