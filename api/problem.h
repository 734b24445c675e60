/* problem.h — errors as RFC 9457 application/problem+json responses.
 *
 * api_status_from_errno is the one place that decides which HTTP status
 * a -errno from the volume manager becomes. */
#ifndef VD_API_PROBLEM_H
#define VD_API_PROBLEM_H

struct api_reply;

/* -EINVAL 400, -EACCES/-EPERM 403, -ENOENT 404, -EEXIST/-EBUSY 409,
 * -E2BIG/-EFBIG 413, -ENOTSUP 422, -ENOSPC 507, anything else 500. */
unsigned api_status_from_errno(int code);

/* The reason phrase for a status ("Not Found"); "Error" if unknown. */
const char *api_status_title(unsigned status);

/* Replace rep with a problem document: type about:blank, title from
 * status, detail formatted. */
void api_problem(struct api_reply *rep, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replace rep with the problem for -errno code and its message (the
 * volume manager's vd_error). Server errors are logged here, once. */
void api_problem_errno(struct api_reply *rep, int code, const char *msg);

#endif
