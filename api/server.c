/* server.c — the HTTP side of the API: libmicrohttpd daemons, who is
 * asking, routing, request bodies, handler workers, and sending the
 * replies handlers build.
 *
 * DESIGN NOTES
 * 1. Connections are accepted by listen.c and handed to one MHD daemon
 *    per listener, each run by MHD's internal polling threads (a small
 *    pool, epoll), with a total and a per-IP connection limit, an
 *    inactivity timeout, and the whole-request deadline of listen.c.
 *    Idle or slow clients cost a descriptor and a small buffer, never a
 *    thread.
 * 2. Handlers may block for long (a delete drains its volume, a create
 *    writes an image): they never run on a polling thread. The
 *    connection is suspended and the request queued to a fixed pool of
 *    API_WORKERS threads; the worker resumes it with the reply. Only
 *    GET /health and GET /openapi.json, which touch nothing shared, run
 *    inline, so liveness answers even when every worker is busy.
 * 3. Everything that can be decided from the request line and headers
 *    (401, 403, 404, 405, bad name, 413 by Content-Length, 415) is
 *    answered on the first callback, before any body is read. A body
 *    is buffered up to max_body; the chunk that crosses it ends the
 *    connection with 413 at once, however much the client still means
 *    to send. Every reply says "Connection: close" (listen.c note 4).
 *    A request with no body at all (no Content-Type, no Content-Length
 *    or 0, not chunked) is taken as the empty object {}: `curl -X POST
 *    .../revert` asks for the defaults.
 * 4. The path is split on raw '/' before percent-decoding (MHD's own
 *    unescaping is turned off), so "%2F" can never fake a separator and
 *    "%00" never truncates a name; names are then checked with
 *    vd_volume_name_valid before any handler sees them.
 * 5. Who is asking: on a unix socket, the peer's uid (SO_PEERCRED, read
 *    once at accept); uid 0 is admin, anyone else needs a token. Over
 *    TCP, a bearer token when a token file is configured; without one
 *    only loopback listeners are allowed and every client is admin.
 *    The token table is swapped whole on reload, under tokens_lock.
 * 6. Every request other than GET/HEAD is audited: one log line with
 *    who, peer, method, path, status, and the volume's uuid if known.
 * 7. On TLS listeners listen.c cannot screen the request head (it sees
 *    ciphertext), so the first callback applies the same checks to the
 *    head libmicrohttpd parsed (screen_mhd.c). A malformed
 *    Content-Length is the exception: libmicrohttpd 0.9.75 answers it
 *    itself before any callback. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "handler.h"
#include "iostats.h"
#include "listen.h"
#include "log.h"
#include "parse.h"
#include "problem.h"
#include "reqstats.h"
#include "router.h"
#include "server-int.h"
#include "vd_error.h"
#include "volume.h"

#define API_DISCARD_MAX (1024 * 1024) /* read past max_body, then cut */

/* Who is asking (note 5). */
struct ident {
    enum api_role role;
    bool bad_token; /* a token was sent and is wrong */
    char who[96];   /* for the audit log */
    char peer[64];
};

/* Per-request state, freed in api_srv_on_completed. */
struct conn {
    struct api_srv *srv;
    struct api_conn *tc; /* listen.c's entry (socket context) */
    struct MHD_Connection *mc;
    const struct api_route_method *rm;
    struct api_path path;
    struct ident id;
    char *body;
    size_t len, cap;
    bool empty;       /* no body announced: {} (note 3) */
    bool too_big;     /* body over max_body: being discarded */
    bool raw_replied; /* the 413 went out on the socket itself */
    size_t discarded;
    bool queued, done; /* handed to a worker; its reply is ready */
    struct api_request req;
    char since[VD_API_NAME_MAX + 1];
    struct api_reply rep;
    char uuid[40]; /* volume's uuid for the audit log, or "" */
    uint64_t t0;   /* arrival, CLOCK_MONOTONIC ns (metrics) */
    struct conn *q_next;
};

/* ---- query parameters --------------------------------------------------- */

struct query_scan {
    const char *allowed;             /* NULL = none */
    bool force;                      /* ?force=true */
    bool purge;                      /* ?purge=true */
    char since[VD_API_NAME_MAX + 1]; /* ?since=NAME, "" if absent */
    struct api_reply *rep; /* set to a 400 on the first bad parameter */
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
            api_problem(q->rep, 400,
                        "query parameter 'since' must name a "
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
size_t api_srv_unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

/* ---- sending ------------------------------------------------------------ */

static enum MHD_Result send_reply(struct MHD_Connection *c,
                                  struct api_reply *rep, bool bad_token)
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
            rep->text = NULL; /* MHD frees it now */
        }
    } else if (rep->static_text != NULL) {
        resp = MHD_create_response_from_buffer(
            rep->static_len, (void *)rep->static_text, MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        ctype = NULL;
    }
    if (resp == NULL) {
        return MHD_NO; /* out of memory: MHD drops the connection */
    }
    if (ctype != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    }
    if (rep->location != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, rep->location);
    }
    if (rep->allow != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    }
    if (rep->status == 401) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                bad_token ? "Bearer realm=\"vdiskd\", "
                                            "error=\"invalid_token\""
                                          : "Bearer realm=\"vdiskd\"");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (rep->image_fate != NULL) {
        MHD_add_response_header(resp, "Vdiskd-Image", rep->image_fate);
    }
    ret = MHD_queue_response(c, rep->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A copy of s safe for one log line: control bytes and non-ASCII become
 * '?', and it is cut at 200 bytes. */
static void log_safe(char *out, size_t outlen, const char *s)
{
    size_t i = 0;
    for (; s != NULL && *s != '\0' && i + 1 < outlen && i < 200; s++) {
        unsigned char ch = (unsigned char)*s;
        out[i++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
    out[i] = '\0';
}

/* Note 6. */
static void audit(const struct conn *cx, const char *method, const char *url,
                  unsigned status)
{
    char path[256];
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        return;
    }
    log_safe(path, sizeof(path), url);
    vd_info("audit: who=%s peer=%s %.16s %s -> %u%s%s", cx->id.who, cx->id.peer,
            method, path, status, cx->uuid[0] != '\0' ? " volume=" : "",
            cx->uuid);
}

/* Send rep, log it, and release it. */
static enum MHD_Result finish(struct MHD_Connection *c, struct conn *cx,
                              const char *method, const char *url,
                              struct api_reply *rep)
{
    enum MHD_Result ret;
    if (cx->uuid[0] == '\0' && rep->json != NULL && !rep->problem) {
        const char *u = json_string_value(json_object_get(rep->json, "uuid"));
        if (u != NULL) {
            snprintf(cx->uuid, sizeof(cx->uuid), "%s", u);
        }
    }
    ret = send_reply(c, rep, cx->id.bad_token);
    api_reqstats_record(cx->path.route, method, rep->status,
                        vd_iostats_now() - cx->t0);
    audit(cx, method, url, rep->status);
    vd_debug("api: %s %s -> %u", method, url, rep->status);
    api_reply_clear(rep);
    return ret;
}

/* ---- who is asking (note 5) --------------------------------------------- */

static void identify(struct vd_api *api, struct conn *cx,
                     struct MHD_Connection *c)
{
    struct ident *id = &cx->id;
    const char *token = api_bearer_token(MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
    char name[API_TOKEN_NAME_MAX + 1];
    enum api_role role = API_ROLE_NONE;

    id->role = API_ROLE_NONE;
    snprintf(id->who, sizeof(id->who), "-");
    if (cx->srv->l->is_unix) {
        if (cx->tc != NULL && cx->tc->have_uid) {
            snprintf(id->peer, sizeof(id->peer), "uid:%u",
                     (unsigned)cx->tc->uid);
        } else {
            snprintf(id->peer, sizeof(id->peer), "unix:unknown");
        }
    } else {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
        char host[INET6_ADDRSTRLEN] = "?";
        if (sa != NULL && sa->sa_family == AF_INET) {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                      host, sizeof(host));
        } else if (sa != NULL && sa->sa_family == AF_INET6) {
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                      host, sizeof(host));
        }
        snprintf(id->peer, sizeof(id->peer), "%s", host);
    }
    if (token != NULL) {
        pthread_mutex_lock(&api->tokens_lock);
        role = api_tokens_check(api->tokens, token, name, sizeof(name));
        pthread_mutex_unlock(&api->tokens_lock);
        if (role != API_ROLE_NONE) {
            id->role = role;
            snprintf(id->who, sizeof(id->who), "token:%s", name);
            return;
        }
        id->bad_token = true;
    }
    if (cx->srv->l->is_unix) {
        if (cx->tc != NULL && cx->tc->have_uid && cx->tc->uid == 0) {
            id->role = API_ROLE_ADMIN;
            snprintf(id->who, sizeof(id->who), "uid:0");
        }
        return;
    }
    if (api->token_file == NULL && !id->bad_token) {
        /* Loopback only (vd_api_start refuses anything else). */
        id->role = API_ROLE_ADMIN;
        snprintf(id->who, sizeof(id->who), "anonymous");
    }
}

static bool is_read_method(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* Routes anyone may use: /health always, /metrics and /openapi.json
 * with --public-metrics. */
static bool route_is_open(struct vd_api *api, const struct api_route_method *rm)
{
    if (rm == NULL) {
        return false;
    }
    if (rm->fn == api_health_get) {
        return true;
    }
    return api->public_metrics &&
           (rm->fn == api_metrics_get || rm->fn == api_openapi_get);
}

/* ---- requests ----------------------------------------------------------- */

/* First callback of a request: who, route, headers (note 3). Returns
 * true if rep now holds an early reply. */
static bool request_begin(struct vd_api *api, struct MHD_Connection *c,
                          const char *url, const char *method, struct conn *cx,
                          struct api_reply *rep)
{
    const char *clen, *ctype;

    identify(api, cx, c);
    cx->rm = api_route_find(url, method, &cx->path, rep);
    if (cx->id.role == API_ROLE_NONE && !route_is_open(api, cx->rm)) {
        cx->rm = NULL;
        api_problem(rep, 401,
                    cx->id.bad_token ? "the bearer token is not valid"
                                     : "authentication required: send "
                                       "'Authorization: Bearer TOKEN'");
        return true;
    }
    if (cx->rm == NULL) {
        return true;
    }
    if (cx->id.role == API_ROLE_READ && !is_read_method(method)) {
        cx->rm = NULL;
        api_problem(rep, 403,
                    "token '%s' has the read role; %s needs "
                    "admin",
                    cx->id.who + strlen("token:"), method);
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
        if (errno != 0 || end == clen || *end != '\0' || clen[0] == '-') {
            /* listen.c refuses these on plain HTTP; over TLS MHD does. */
            api_problem(rep, 400,
                        "Content-Length must be a decimal number "
                        "of bytes");
            return true;
        }
        if (n > api->max_body) {
            api_problem(rep, 413,
                        "request body of %s bytes is larger than "
                        "the %zu allowed",
                        clen, api->max_body);
            return true;
        }
        cx->cap = (size_t)n;
    }
    ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                        MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype == NULL && cx->cap == 0 &&
        MHD_lookup_connection_value(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) == NULL) {
        cx->empty = true;
        return false;
    }
    if (!api_media_type_is(ctype, "application/json") &&
        !(strcmp(cx->rm->method, "PATCH") == 0 &&
          api_media_type_is(ctype, "application/merge-patch+json"))) {
        api_problem(rep, 415,
                    "Content-Type must be application/json, got "
                    "'%.100s'",
                    ctype != NULL ? ctype : "(none)");
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

/* Take one chunk of body (note 3); false once it is too big. */
static bool request_body(struct vd_api *api, struct conn *cx, const char *data,
                         size_t size)
{
    if (size > api->max_body - cx->len) {
        return false;
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
            return false; /* answered as 413 rather than crash */
        }
        cx->body = p;
        cx->cap = cap;
    }
    memcpy(cx->body + cx->len, data, size);
    cx->len += size;
    return true;
}

/* The whole request is in: parse query and body into cx->req. Returns
 * false with rep filled when the request is refused. Polling thread. */
static bool request_prepare(struct vd_api *api, struct MHD_Connection *c,
                            struct conn *cx, struct api_reply *rep)
{
    struct query_scan q = {.allowed = cx->rm->query, .rep = rep};

    cx->req = (struct api_request){
        .mgr = api->mgr,
        .name = cx->path.volume[0] != '\0' ? cx->path.volume : NULL,
        .snapshot = cx->path.snapshot[0] != '\0' ? cx->path.snapshot : NULL,
        .id = cx->path.id,
    };
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_check, &q);
    if (q.bad) {
        return false;
    }
    cx->req.force = q.force;
    cx->req.purge = q.purge;
    memcpy(cx->since, q.since, sizeof(cx->since));
    cx->req.since = cx->since[0] != '\0' ? cx->since : NULL;
    if (cx->rm->body) {
        json_error_t jerr;
        cx->req.body = cx->empty && cx->len == 0
                           ? json_object()
                           : json_loadb(cx->body != NULL ? cx->body : "",
                                        cx->len, JSON_REJECT_DUPLICATES, &jerr);
        if (cx->req.body == NULL) {
            api_problem(rep, 400,
                        "malformed JSON at line %d, column %d "
                        "(byte %d): %s",
                        jerr.line, jerr.column, jerr.position, jerr.text);
            return false;
        }
    }
    return true;
}

/* Run the handler (a worker, or inline for note 2's routes). */
static void request_run(struct conn *cx)
{
    if (!is_read_method(cx->rm->method) && cx->req.name != NULL) {
        /* The uuid for the audit line, looked up before a delete. */
        struct vd_volume_info *vi = malloc(sizeof(*vi));
        if (vi != NULL &&
            vd_volmgr_get(cx->req.mgr, cx->req.name, vi, NULL) == 0) {
            snprintf(cx->uuid, sizeof(cx->uuid), "%s", vi->row.uuid);
        }
        free(vi);
    }
    cx->rm->fn(&cx->req, &cx->rep);
    json_decref(cx->req.body);
    cx->req.body = NULL;
}

/* ---- handler workers (note 2) ------------------------------------------- */

void *api_srv_worker_main(void *arg)
{
    struct vd_api *api = arg;
    pthread_mutex_lock(&api->q_lock);
    for (;;) {
        struct conn *cx;
        while (api->q_head == NULL && !api->stopping) {
            pthread_cond_wait(&api->q_cond, &api->q_lock);
        }
        if (api->q_head == NULL) {
            break;
        }
        cx = api->q_head;
        api->q_head = cx->q_next;
        if (api->q_head == NULL) {
            api->q_tail = NULL;
        }
        api->q_running++;
        pthread_mutex_unlock(&api->q_lock);

        request_run(cx);
        cx->done = true;
        api_conn_set_busy(api->accept, cx->tc, false);
        MHD_resume_connection(cx->mc);

        pthread_mutex_lock(&api->q_lock);
        api->q_running--;
    }
    pthread_mutex_unlock(&api->q_lock);
    return NULL;
}

/* Queue cx for a worker; false if the server is stopping. */
static bool enqueue(struct vd_api *api, struct conn *cx)
{
    pthread_mutex_lock(&api->q_lock);
    if (api->stopping) {
        pthread_mutex_unlock(&api->q_lock);
        return false;
    }
    cx->q_next = NULL;
    if (api->q_tail != NULL) {
        api->q_tail->q_next = cx;
    } else {
        api->q_head = cx;
    }
    api->q_tail = cx;
    pthread_cond_signal(&api->q_cond);
    pthread_mutex_unlock(&api->q_lock);
    return true;
}

/* The body crossed max_body (note 3). MHD 0.9.75 cannot queue a reply
 * while a body is arriving, so on plain HTTP the 413 is written to the
 * socket at once (nothing else has been sent on it) and the connection
 * ends after at most API_DISCARD_MAX more bytes; over TLS the 413 follows
 * if the body ends within that bound, else the connection is cut. */
static void too_big(struct vd_api *api, struct conn *cx, const char *method,
                    const char *url)
{
    cx->too_big = true;
    free(cx->body);
    cx->body = NULL;
    if (cx->srv->l->screen && cx->tc != NULL) {
        char msg[400], body[200];
        int n, bn;
        bn = snprintf(body, sizeof(body),
                      "{\"type\":\"about:blank\","
                      "\"title\":\"Content Too Large\",\"status\":413,"
                      "\"detail\":\"request body is larger than the %zu "
                      "bytes allowed\"}",
                      api->max_body);
        n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 413 Content Too Large\r\n"
                     "Content-Type: application/problem+json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     bn, body);
        if (send(cx->tc->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) ==
            n) {
            cx->raw_replied = true;
            api_reqstats_record(cx->path.route, method, 413,
                                vd_iostats_now() - cx->t0);
            audit(cx, method, url, 413);
        }
    }
}

enum MHD_Result api_srv_on_request(void *cls, struct MHD_Connection *c,
                                   const char *url, const char *method,
                                   const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct api_srv *srv = cls;
    struct vd_api *api = srv->api;
    struct conn *cx = *con_cls;
    struct api_reply rep = {0};

    if (cx == NULL || ((uintptr_t)cx & 1u) != 0) {
        /* First call: con_cls is NULL, or the target's length from
         * api_srv_on_uri (TLS listeners). */
        const union MHD_ConnectionInfo *ci;
        size_t uri_len = (size_t)((uintptr_t)cx >> 1);
        bool tagged = cx != NULL;
        cx = calloc(1, sizeof(*cx));
        if (cx == NULL) {
            return MHD_NO;
        }
        *con_cls = cx;
        cx->t0 = vd_iostats_now();
        cx->srv = srv;
        cx->mc = c;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        cx->tc = ci != NULL ? ci->socket_context : NULL;
        api_conn_head_seen(api->accept, cx->tc);
        if (!srv->l->screen) {
            /* listen.c could not screen this head (note 7). */
            char msg[256];
            unsigned st = tagged ? api_head_check_mhd(c, method, url, version,
                                                      uri_len, msg, sizeof(msg))
                                 : 0;
            if (st != 0) {
                identify(api, cx, c);
                api_problem(&rep, st, "%s", msg);
                return finish(c, cx, method, url, &rep);
            }
        }
        if (request_begin(api, c, url, method, cx, &rep)) {
            return finish(c, cx, method, url, &rep);
        }
        /* Answer on a later call, once MHD has read the request to its
         * end. */
        return MHD_YES;
    }
    if (cx->done) {
        return finish(c, cx, method, url, &cx->rep);
    }
    if (*upload_data_size != 0) {
        if (cx->too_big) {
            cx->discarded += *upload_data_size;
            *upload_data_size = 0;
            return cx->discarded > API_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (cx->rm->body &&
            !request_body(api, cx, upload_data, *upload_data_size)) {
            too_big(api, cx, method, url);
        } /* else: a body nobody asked for is dropped unread */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cx->too_big) {
        if (cx->raw_replied) {
            return MHD_NO;
        }
        api_problem(&rep, 413,
                    "request body is larger than the %zu bytes "
                    "allowed",
                    api->max_body);
        return finish(c, cx, method, url, &rep);
    }
    if (cx->queued) {
        return MHD_YES; /* spurious call while the worker runs */
    }
    if (!request_prepare(api, c, cx, &rep)) {
        return finish(c, cx, method, url, &rep);
    }
    if (cx->rm->fn == api_health_get || cx->rm->fn == api_openapi_get) {
        request_run(cx);
        return finish(c, cx, method, url, &cx->rep);
    }
    cx->queued = true;
    api_conn_set_busy(api->accept, cx->tc, true);
    MHD_suspend_connection(c);
    if (!enqueue(api, cx)) {
        MHD_resume_connection(c);
        api_conn_set_busy(api->accept, cx->tc, false);
        json_decref(cx->req.body);
        cx->req.body = NULL;
        api_problem(&cx->rep, 503, "the server is shutting down");
        cx->done = true;
    }
    return MHD_YES;
}

void api_srv_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    struct api_srv *srv = cls;
    struct conn *cx = *con_cls;
    if (cx != NULL && ((uintptr_t)cx & 1u) != 0) {
        *con_cls = NULL; /* refused before the first call: nothing held */
    } else if (cx != NULL) {
        api_conn_request_done(srv->api->accept, cx->tc);
        json_decref(cx->req.body);
        api_reply_clear(&cx->rep);
        free(cx->body);
        free(cx);
        *con_cls = NULL;
    }
}

void api_srv_on_connection(void *cls, struct MHD_Connection *c,
                           void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
    struct api_srv *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        int fd = ci != NULL ? ci->connect_fd : -1;
        struct api_conn *tc = api_conn_started(srv->api->accept, fd, srv->l);
        if (tc != NULL && srv->l->is_unix && fd >= 0 &&
            api_peer_uid(fd, &tc->uid) == 0) {
            tc->have_uid = true;
        }
        *socket_context = tc;
    } else {
        api_conn_closed(srv->api->accept, *socket_context);
        *socket_context = NULL;
    }
}

void api_srv_on_mhd_log(void *cls, const char *fmt, va_list ap)
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
