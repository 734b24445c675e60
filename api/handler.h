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
#include <stdint.h>

struct vd_volmgr;

#define VD_API_NAME_MAX 64 /* volume and snapshot names */

struct api_request {
    struct vd_volmgr *mgr;
    const char *name; /* decoded, validated {volume} path segment, or NULL */
    const char *snapshot; /* decoded, validated {snapshot} segment, or NULL */
    uint64_t id;          /* {id} segment (jobs) */
    const char *since;    /* ?since=SNAPSHOT, or NULL */
    json_t *body;         /* parsed JSON object for POST/PATCH, else NULL */
    bool force;           /* ?force=true */
    bool purge;           /* ?purge=true */
};

struct api_reply {
    unsigned status; /* 0 until a handler decides */
    json_t *json;    /* owned; sent as JSON (problem+json if problem) */
    bool problem;
    char *text; /* owned, malloc'd; sent as content_type */
    size_t text_len;
    const char *static_text; /* borrowed, static storage */
    size_t static_len;
    const char *content_type; /* for text / static_text */
    char *location;           /* owned; Location header, or NULL */
    const char *allow;        /* Allow header (405), static */
    const char *image_fate;   /* Vdiskd-Image header (DELETE), static */
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
void api_volumes_takeover(const struct api_request *req, struct api_reply *rep);

/* snapshots.c */
void api_snapshots_list(const struct api_request *req, struct api_reply *rep);
void api_snapshots_create(const struct api_request *req, struct api_reply *rep);
void api_snapshots_get(const struct api_request *req, struct api_reply *rep);
void api_snapshots_delete(const struct api_request *req, struct api_reply *rep);
void api_snapshots_revert(const struct api_request *req, struct api_reply *rep);
void api_snapshots_changes(const struct api_request *req,
                           struct api_reply *rep);

/* jobs.c */
struct vd_volume_spec;
void api_jobs_get(const struct api_request *req, struct api_reply *rep);
void api_jobs_list(const struct api_request *req, struct api_reply *rep);
/* POST /volumes with "source": start a full clone job, 202 + Location. */
void api_volumes_clone(const struct api_request *req,
                       const struct vd_volume_spec *spec,
                       struct api_reply *rep);

/* qos.c */
struct vd_qos_limits;
struct vd_qos_patch;
struct vd_error;
/* The "qos" and "qos_group" members of a volume body into p; *given says
 * whether either was there. 0 or -EINVAL with err set. p borrows from
 * body. */
int api_qos_from_body(const json_t *body, struct vd_qos_patch *p, bool *given,
                      struct vd_error *err);
/* Limits as the API shows them: every member, null when not set. */
json_t *api_qos_to_json(const struct vd_qos_limits *lim);
void api_qos_groups_list(const struct api_request *req, struct api_reply *rep);
void api_qos_groups_create(const struct api_request *req,
                           struct api_reply *rep);
void api_qos_groups_get(const struct api_request *req, struct api_reply *rep);
void api_qos_groups_patch(const struct api_request *req, struct api_reply *rep);
void api_qos_groups_delete(const struct api_request *req,
                           struct api_reply *rep);

/* metrics.c */
void api_metrics_get(const struct api_request *req, struct api_reply *rep);

/* service.c */
void api_openapi_get(const struct api_request *req, struct api_reply *rep);
void api_health_get(const struct api_request *req, struct api_reply *rep);

#endif
