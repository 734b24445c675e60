/* router.h — private to api/: which handler answers a method and path.
 *
 * The route table lives in router.c; matching is pure string work (no
 * HTTP library), so it is unit-tested on its own. */
#ifndef VD_API_ROUTER_H
#define VD_API_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "handler.h"

struct api_route_method {
    const char *method;
    api_handler_fn fn;
    bool body;          /* takes a JSON body */
    const char *query;  /* the one query parameter accepted, or NULL */
};

/* What a request's path resolved to. */
struct api_match {
    const struct api_route_method *rm;
    char volume[VD_NAME_MAX + 1];     /* {volume}, "" when the route has none */
    char snapshot[VD_NAME_MAX + 1];   /* {snapshot} */
    uint64_t job;                     /* {job} */
    bool has_volume, has_snapshot, has_job;
};

/* Resolve a raw (still percent-encoded) path and a method; HEAD is
 * answered as GET. Returns 0 with *m filled, or -1 with rep holding the
 * problem: 404 unknown path, 405 (with Allow) wrong method, 400 a path
 * parameter that is not a valid name or id. Parameters are decoded after
 * the path is split, so an encoded '/' or NUL never reaches a handler. */
int api_route(const char *path, const char *method, struct api_match *m,
              struct api_reply *rep);

#endif
