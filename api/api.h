/* api.h — the REST management server (libmicrohttpd + jansson).
 *
 * Parses and validates requests, authenticates them (bearer tokens, unix
 * socket peer credentials, TLS), calls the volume manager, renders JSON;
 * errors are application/problem+json. No business rules live here. */
#ifndef VD_API_H
#define VD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vd_error;
struct vd_volmgr;
struct vd_api;

#define VD_API_MAX_LISTEN 9 /* one TCP listener and unix sockets */

struct vd_api_config {
    /* "HOST:PORT" (numeric IPv4, or [IPv6]:PORT; port 0 = any free one,
     * see vd_api_port) or "unix:PATH"; at most one TCP. */
    const char *listen[VD_API_MAX_LISTEN];
    int n_listen;
    const char *token_file; /* NAME ROLE TOKEN lines, or NULL: without
                               it TCP listeners must be loopback */
    bool public_metrics;    /* /metrics and /openapi.json need no token */
    mode_t socket_mode;     /* of unix sockets; 0 = 0660 */
    gid_t socket_gid;       /* group of unix sockets; (gid_t)-1 = keep */
    const char *tls_cert;   /* PEM files: HTTPS on the TCP listener */
    const char *tls_key;
    size_t max_body; /* largest request body accepted, bytes */
};

/* Syntax of one --listen value; 0 or -EINVAL with a message. */
int vd_api_listen_check(const char *spec, struct vd_error *err);

/* Everything about cfg that can be checked before start: listener
 * syntax, the loopback rule, the token file, the TLS files. */
int vd_api_check(const struct vd_api_config *cfg, struct vd_error *err);

int vd_api_start(const struct vd_api_config *cfg, struct vd_volmgr *mgr,
                 struct vd_api **out, struct vd_error *err);
/* The TCP port actually bound, 0 if only unix sockets. */
uint16_t vd_api_port(const struct vd_api *api);
/* "http://127.0.0.1:8080, unix:/run/vdiskd/api.sock" */
const char *vd_api_describe(const struct vd_api *api);
/* Reread the token file (SIGHUP). On failure the old tokens stay. */
int vd_api_reload(struct vd_api *api, struct vd_error *err);
/* Stop accepting requests and wait for those in progress; accepts NULL. */
void vd_api_stop(struct vd_api *api);

#endif
