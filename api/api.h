/* api.h — the REST management server (libmicrohttpd + jansson).
 *
 * Parses and validates requests, calls the volume manager, renders JSON;
 * errors are application/problem+json. No business rules live here. */
#ifndef VD_API_H
#define VD_API_H

#include <stddef.h>
#include <stdint.h>

struct vd_error;
struct vd_volmgr;
struct vd_api;

struct vd_api_config {
    const char *host;       /* numeric IPv4/IPv6 address to bind */
    uint16_t port;          /* 0 = any free port (see vd_api_port) */
    size_t max_body;        /* largest request body accepted, bytes */
};

int vd_api_start(const struct vd_api_config *cfg, struct vd_volmgr *mgr,
                 struct vd_api **out, struct vd_error *err);
/* The port actually bound. */
uint16_t vd_api_port(const struct vd_api *api);
/* Stop accepting requests and wait for those in progress; accepts NULL. */
void vd_api_stop(struct vd_api *api);

#endif
