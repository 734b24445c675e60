/* router.h — private to api/: maps a request line to a handler, and the
 * path's parameters ({volume}, {snapshot}, {id}) to checked values. */
#ifndef VD_API_ROUTER_H
#define VD_API_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handler.h"

struct api_route_method {
    const char *method;
    api_handler_fn fn;
    bool body;         /* takes a JSON body */
    const char *query; /* the query parameters accepted, separated by
                          spaces, or NULL */
};

/* Path parameters of a matched route. */
struct api_path {
    char volume[VD_API_NAME_MAX + 1]; /* "" when the route has none */
    char snapshot[VD_API_NAME_MAX + 1];
    uint64_t id;
    bool has_id;
    const char *route; /* the matched template (metrics), or NULL */
};

/* Find the route for url (raw, not yet percent-decoded) and method. On
 * failure fills rep (404, 405 or 400) and returns NULL. */
const struct api_route_method *api_route_find(const char *url,
                                              const char *method,
                                              struct api_path *path,
                                              struct api_reply *rep);

/* The route table, for the test that holds api/openapi.json to it: the
 * i-th route's pattern ("volumes/{volume}"), its Allow header and its
 * methods (ending with method NULL), or NULL past the last route. */
const char *api_route_at(size_t i, const char **allow,
                         const struct api_route_method **methods);

#endif
