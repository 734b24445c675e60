/* handler.h — private to api/: the contract between the router
 * (server.c) and the route handlers. A handler gets a parsed request and
 * fills a reply; it never touches libmicrohttpd, so status, body and
 * headers are decided in one place and sent in one place.
 *
 * Prototypes are grouped under the file that defines them. */
#ifndef VD_API_HANDLER_H
#define VD_API_HANDLER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct vd_volmgr;

struct api_request {
    struct vd_volmgr *mgr;
    const char *name;     /* decoded, validated {name} path segment, or NULL */
    json_t *body;         /* parsed JSON object for POST/PATCH, else NULL */
    bool force;           /* ?force=true */
};

struct api_reply {
    unsigned status;          /* 0 until a handler decides */
    json_t *json;             /* owned; sent as JSON (problem+json if problem) */
    bool problem;
    char *text;               /* owned, malloc'd; sent as content_type */
    size_t text_len;
    const char *static_text;  /* borrowed, static storage */
    size_t static_len;
    const char *content_type; /* for text / static_text */
    char *location;           /* owned; Location header, or NULL */
    const char *allow;        /* Allow header (405), static */
};

typedef void (*api_handler_fn)(const struct api_request *req,
                               struct api_reply *rep);

/* problem.c — see problem.h for the errno mapping and problem bodies. */
void api_reply_json(struct api_reply *rep, unsigned status, json_t *json);
void api_reply_clear(struct api_reply *rep);

/* volumes.c */
void api_volumes_list(const struct api_request *req, struct api_reply *rep);
void api_volumes_create(const struct api_request *req, struct api_reply *rep);
void api_volumes_get(const struct api_request *req, struct api_reply *rep);
void api_volumes_patch(const struct api_request *req, struct api_reply *rep);
void api_volumes_delete(const struct api_request *req, struct api_reply *rep);

/* metrics.c */
void api_metrics_get(const struct api_request *req, struct api_reply *rep);

/* service.c */
void api_openapi_get(const struct api_request *req, struct api_reply *rep);
void api_health_get(const struct api_request *req, struct api_reply *rep);

#endif
