/* server.c — the HTTP side of the API: libmicrohttpd daemon, routing,
 * request bodies, and sending the replies handlers build.
 *
 * DESIGN NOTES
 * 1. One thread per connection (MHD_USE_THREAD_PER_CONNECTION), at most
 *    API_MAX_CONNECTIONS, idle ones closed after API_CONN_TIMEOUT s.
 * 2. Everything that can be decided from the request line and headers
 *    (404, 405, bad name, 413 by Content-Length, 415) is answered on the
 *    first callback, before any body is read; MHD then closes the
 *    connection instead of reading the rest.
 * 3. A body is buffered only up to max_body; beyond that the rest is
 *    dropped and the request ends in 413. Routes without a body drop
 *    any body sent. Good requests are answered after the whole request
 *    is read, so the connection stays open for the next one. A request
 *    with no body at all (no Content-Type, no Content-Length or 0, not
 *    chunked) is taken as the empty object {}: `curl -X POST .../revert`
 *    asks for the defaults, and a route that needs members says which.
 * 4. The path is split on raw '/' before percent-decoding (MHD's own
 *    unescaping is turned off), so "%2F" can never fake a separator and
 *    "%00" never truncates a name; names are then checked with
 *    vd_volume_name_valid before any handler sees them.
 * 5. Handlers call the volume manager from several connection threads at
 *    once; it serialises its own changes (volume.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "handler.h"
#include "log.h"
#include "parse.h"
#include "problem.h"
#include "router.h"
#include "vd_error.h"
#include "volume.h"

#define API_MAX_CONNECTIONS 64
#define API_CONN_TIMEOUT 30   /* seconds */

struct vd_api {
    struct MHD_Daemon *mhd;
    struct vd_volmgr *mgr;
    size_t max_body;
    uint16_t port;
};

/* Per-request state, freed in request_completed. */
struct conn {
    const struct api_route_method *rm;
    struct api_path path;
    char *body;
    size_t len, cap;
    bool too_big;
    bool empty;             /* no body announced: {} (note 3) */
};

/* ---- query parameters --------------------------------------------------- */

struct query_scan {
    const char *allowed;    /* NULL = none */
    bool force;             /* ?force=true */
    bool purge;             /* ?purge=true */
    char since[VD_API_NAME_MAX + 1];   /* ?since=NAME, "" if absent */
    struct api_reply *rep;  /* set to a 400 on the first bad parameter */
    bool bad;
};

/* Whether key is one of the space-separated names in allowed. */
static bool query_allowed(const char *allowed, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = allowed; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, key, n) == 0) {
            return true;
        }
        p = end != NULL ? end + 1 : p + len;
    }
    return false;
}

static enum MHD_Result query_check(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    struct query_scan *q = cls;
    char k[64], v[64];

    if (api_segment_decode(key, strlen(key), k, sizeof(k)) < 0) {
        api_problem(q->rep, 400, "bad query parameter name");
        q->bad = true;
        return MHD_NO;
    }
    if (!query_allowed(q->allowed, k)) {
        api_problem(q->rep, 400, "unknown query parameter '%s'", k);
        q->bad = true;
        return MHD_NO;
    }
    if (strcmp(k, "since") == 0) {
        if (value == NULL ||
            api_segment_decode(value, strlen(value), q->since,
                               sizeof(q->since)) < 0 ||
            !vd_volume_name_valid(q->since)) {
            api_problem(q->rep, 400, "query parameter 'since' must name a "
                        "snapshot");
            q->bad = true;
            return MHD_NO;
        }
        return MHD_YES;
    }
    if ((value != NULL &&
         api_segment_decode(value, strlen(value), v, sizeof(v)) < 0) ||
        api_parse_bool(value != NULL ? v : NULL,
                       strcmp(k, "purge") == 0 ? &q->purge : &q->force) < 0) {
        api_problem(q->rep, 400, "query parameter '%s' must be true or false",
                    k);
        q->bad = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* MHD would percent-decode the path before we can split it (note 4). */
static size_t unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

/* ---- sending ------------------------------------------------------------ */

static enum MHD_Result send_reply(struct MHD_Connection *c,
                                  struct api_reply *rep)
{
    struct MHD_Response *resp = NULL;
    const char *ctype = rep->content_type;
    enum MHD_Result ret;

    if (rep->status == 0) {
        api_problem(rep, 500, "handler gave no reply");
    }
    if (rep->json != NULL) {
        char *s = json_dumps(rep->json, JSON_COMPACT);
        if (s != NULL) {
            resp = MHD_create_response_from_buffer(strlen(s), s,
                                                   MHD_RESPMEM_MUST_FREE);
            if (resp == NULL) {
                free(s);
            }
        }
        ctype = rep->problem ? "application/problem+json" : "application/json";
    } else if (rep->text != NULL) {
        resp = MHD_create_response_from_buffer(rep->text_len, rep->text,
                                               MHD_RESPMEM_MUST_FREE);
        if (resp != NULL) {
            rep->text = NULL;   /* MHD frees it now */
        }
    } else if (rep->static_text != NULL) {
        resp = MHD_create_response_from_buffer(rep->static_len,
                                               (void *)rep->static_text,
                                               MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(0, NULL,
                                               MHD_RESPMEM_PERSISTENT);
        ctype = NULL;
    }
    if (resp == NULL) {
        return MHD_NO;   /* out of memory: MHD drops the connection */
    }
    if (ctype != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    }
    if (rep->location != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION,
                                rep->location);
    }
    if (rep->allow != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    }
    if (rep->image_fate != NULL) {
        MHD_add_response_header(resp, "Vdiskd-Image", rep->image_fate);
    }
    ret = MHD_queue_response(c, rep->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Send rep, log it at debug level, and release it. */
static enum MHD_Result finish(struct MHD_Connection *c, const char *method,
                              const char *url, struct api_reply *rep)
{
    enum MHD_Result ret = send_reply(c, rep);
    vd_debug("api: %s %s -> %u", method, url, rep->status);
    api_reply_clear(rep);
    return ret;
}

/* ---- requests ----------------------------------------------------------- */

/* First callback of a request: route and check headers (note 2). Returns
 * true if rep now holds an early reply. */
static bool request_begin(struct vd_api *api, struct MHD_Connection *c,
                          const char *url, const char *method,
                          struct conn *cx, struct api_reply *rep)
{
    const char *clen, *ctype;

    cx->rm = api_route_find(url, method, &cx->path, rep);
    if (cx->rm == NULL) {
        return true;
    }
    if (!cx->rm->body) {
        return false;
    }
    clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen != NULL) {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(clen, &end, 10);
        if (errno != 0 || end == clen || n > api->max_body) {
            api_problem(rep, 413, "request body of %s bytes is larger than "
                        "the %zu allowed", clen, api->max_body);
            return true;
        }
        cx->cap = (size_t)n;
    }
    ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                        MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype == NULL && cx->cap == 0 &&
        MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_TRANSFER_ENCODING) ==
            NULL) {
        cx->empty = true;
        return false;
    }
    if (!api_media_type_is(ctype, "application/json") &&
        !(strcmp(cx->rm->method, "PATCH") == 0 &&
          api_media_type_is(ctype, "application/merge-patch+json"))) {
        api_problem(rep, 415, "Content-Type must be application/json, got "
                    "'%.100s'", ctype != NULL ? ctype : "(none)");
        return true;
    }
    if (cx->cap > 0) {
        cx->body = malloc(cx->cap);
        if (cx->body == NULL) {
            api_problem(rep, 500, "out of memory");
            return true;
        }
    }
    return false;
}

/* Take one chunk of body (note 3). */
static void request_body(struct vd_api *api, struct conn *cx,
                         const char *data, size_t size)
{
    if (cx->too_big || size > api->max_body - cx->len) {
        cx->too_big = true;
        free(cx->body);
        cx->body = NULL;
        return;
    }
    if (cx->len + size > cx->cap) {
        size_t cap = cx->cap > 0 ? cx->cap : 4096;
        char *p;
        while (cap < cx->len + size) {
            cap *= 2;
        }
        if (cap > api->max_body) {
            cap = api->max_body;
        }
        p = realloc(cx->body, cap);
        if (p == NULL) {
            cx->too_big = true;   /* answered as 413 rather than crash */
            free(cx->body);
            cx->body = NULL;
            return;
        }
        cx->body = p;
        cx->cap = cap;
    }
    memcpy(cx->body + cx->len, data, size);
    cx->len += size;
}

/* The whole request is in: parse, run the handler, fill rep. */
static void request_run(struct vd_api *api, struct MHD_Connection *c,
                        struct conn *cx, struct api_reply *rep)
{
    struct api_request req = {
        .mgr = api->mgr,
        .name = cx->path.volume[0] != '\0' ? cx->path.volume : NULL,
        .snapshot = cx->path.snapshot[0] != '\0' ? cx->path.snapshot : NULL,
        .id = cx->path.id,
    };
    struct query_scan q = {.allowed = cx->rm->query, .rep = rep};

    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_check, &q);
    if (q.bad) {
        return;
    }
    req.force = q.force;
    req.purge = q.purge;
    req.since = q.since[0] != '\0' ? q.since : NULL;
    if (cx->rm->body) {
        json_error_t jerr;
        if (cx->too_big) {
            api_problem(rep, 413, "request body is larger than the %zu bytes "
                        "allowed", api->max_body);
            return;
        }
        req.body = cx->empty && cx->len == 0
                       ? json_object()
                       : json_loadb(cx->body != NULL ? cx->body : "", cx->len,
                                    JSON_REJECT_DUPLICATES, &jerr);
        if (req.body == NULL) {
            api_problem(rep, 400, "malformed JSON at line %d, column %d "
                        "(byte %d): %s", jerr.line, jerr.column,
                        jerr.position, jerr.text);
            return;
        }
    }
    cx->rm->fn(&req, rep);
    json_decref(req.body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct vd_api *api = cls;
    struct conn *cx = *con_cls;
    struct api_reply rep = {0};

    if (cx == NULL) {
        cx = calloc(1, sizeof(*cx));
        if (cx == NULL) {
            return MHD_NO;
        }
        *con_cls = cx;
        if (request_begin(api, c, url, method, cx, &rep)) {
            return finish(c, method, url, &rep);
        }
        /* Answer on a later call, once MHD has read the request to its
         * end: replying now would make MHD close the connection. */
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        if (cx->rm->body) {
            request_body(api, cx, upload_data, *upload_data_size);
        }   /* else: a body nobody asked for is dropped unread */
        *upload_data_size = 0;
        return MHD_YES;
    }
    request_run(api, c, cx, &rep);
    return finish(c, method, url, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn *cx = *con_cls;
    if (cx != NULL) {
        free(cx->body);
        free(cx);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n') {
        msg[--n] = '\0';
    }
    vd_debug("api: libmicrohttpd: %s", msg);
}

/* ---- start and stop ----------------------------------------------------- */

/* A non-blocking listening socket on host:port; returns the fd or -errno. */
static int listen_on(const char *host, uint16_t port, bool *v6,
                     uint16_t *bound, struct vd_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char portstr[8];
    int one = 1, fd = -1, r, ret;

    snprintf(portstr, sizeof(portstr), "%u", port);
    r = getaddrinfo(host, portstr, &hints, &ai);
    if (r != 0) {
        return vd_error_set(err, -EINVAL, "'%s' is not a numeric IPv4 or "
                            "IPv6 address: %s", host, gai_strerror(r));
    }
    *v6 = ai->ai_family == AF_INET6;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ret = vd_error_set(err, -errno, "socket: %s", strerror(errno));
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (*v6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, API_MAX_CONNECTIONS) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        ret = vd_error_set(err, -errno, "cannot listen on %s port %u: %s",
                           host, port, strerror(errno));
        goto out_close;
    }
    *bound = ntohs(ss.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    return fd;

out_close:
    close(fd);
out:
    freeaddrinfo(ai);
    return ret;
}

int vd_api_start(const struct vd_api_config *cfg, struct vd_volmgr *mgr,
                 struct vd_api **out, struct vd_error *err)
{
    struct vd_api *api;
    bool v6 = false;
    int fd, ret;

    api = calloc(1, sizeof(*api));
    if (api == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    api->mgr = mgr;
    api->max_body = cfg->max_body;

    fd = listen_on(cfg->host, cfg->port, &v6, &api->port, err);
    if (fd < 0) {
        ret = fd;
        goto out_free;
    }
    api->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
            MHD_USE_AUTO | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, on_request, api,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, api,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, api,
        MHD_OPTION_END);
    if (api->mhd == NULL) {
        /* MHD may or may not have closed fd; leaking it on this fatal
         * start-up path is safer than closing someone else's. */
        ret = vd_error_set(err, -EIO, "cannot start the HTTP server on %s "
                           "port %u", cfg->host, api->port);
        goto out_free;
    }
    *out = api;
    return 0;

out_free:
    free(api);
    return ret;
}

uint16_t vd_api_port(const struct vd_api *api)
{
    return api->port;
}

void vd_api_stop(struct vd_api *api)
{
    if (api == NULL) {
        return;
    }
    MHD_stop_daemon(api->mhd);
    free(api);
}
