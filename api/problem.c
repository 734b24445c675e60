/* problem.c — replies: JSON bodies, problem+json errors, and the single
 * mapping from -errno to HTTP status.
 *
 * Errors are reported here, at the edge, exactly once: 4xx go back to
 * the client only, 5xx are also logged because they mean a fault. */
#include "problem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "handler.h"
#include "log.h"

unsigned api_status_from_errno(int code)
{
    switch (code) {
    case -EINVAL:
        return 400;
    case -EACCES:
    case -EPERM:
        return 403;
    case -ENOENT:
        return 404;
    case -EEXIST:
    case -EBUSY:
    case -EROFS: /* a read-only image (a linked-clone base): its state */
        return 409;
    case -E2BIG: /* a request body over the limit */
        return 413;
    case -EFBIG:  /* a size the host file system cannot hold: the request
                   * is well formed, the host cannot do it */
    case -ELOOP:  /* a backing chain that loops or runs too deep */
    case -EISDIR: /* a directory where an image file was named */
    case -ENOTSUP:
    case -ENXIO: /* a remote backend that cannot be reached or has no
                  * such export: the request named it, not our fault */
        return 422;
    case -ENOSPC:
        return 507;
    case -ENOMEDIUM: /* the mount is gone: no volume can be served */
        return 503;
    case -ETIMEDOUT: /* a remote cluster or server that did not answer */
        return 504;
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ESHUTDOWN:
        return 502;
    default:
        return 500;
    }
}

const char *api_status_title(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 507:
        return "Insufficient Storage";
    default:
        return "Error";
    }
}

void api_reply_clear(struct api_reply *rep)
{
    json_decref(rep->json);
    free(rep->text);
    free(rep->location);
    *rep = (struct api_reply){0};
}

void api_reply_json(struct api_reply *rep, unsigned status, json_t *json)
{
    api_reply_clear(rep);
    rep->status = status;
    rep->json = json;
}

static void problem_v(struct api_reply *rep, unsigned status, const char *fmt,
                      va_list ap)
{
    char detail[1024];
    const char *allow = rep->allow;
    json_t *d;

    vsnprintf(detail, sizeof(detail), fmt, ap);
    api_reply_clear(rep);
    rep->status = status;
    rep->problem = true;
    rep->allow = allow;
    /* detail may echo client bytes, or be cut inside a UTF-8 sequence:
     * JSON strings must be UTF-8, so fall back to plain ASCII. */
    d = json_string(detail);
    if (d == NULL) {
        for (char *p = detail; *p != '\0'; p++) {
            if ((unsigned char)*p >= 0x80) {
                *p = '?';
            }
        }
        d = json_string(detail);
    }
    /* NULL only when out of memory ("o" consumes d even on failure); the
     * server then sends the status with an empty body. */
    rep->json =
        json_pack("{s:s, s:s, s:i, s:o}", "type", "about:blank", "title",
                  api_status_title(status), "status", (int)status, "detail", d);
    if (status >= 500) {
        vd_err("api: %u %s", status, detail);
    }
}

void api_problem(struct api_reply *rep, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(rep, status, fmt, ap);
    va_end(ap);
}

void api_problem_errno(struct api_reply *rep, int code, const char *msg)
{
    if (msg == NULL || msg[0] == '\0') {
        msg = "operation failed";
    }
    api_problem(rep, api_status_from_errno(code), "%s", msg);
}
