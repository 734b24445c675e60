/* router.c — the route table and path matching (see router.h).
 *
 * A pattern is a path whose {volume}, {snapshot} and {job} segments match
 * any one non-empty raw segment; the values are decoded and checked only
 * once the method is known to be allowed. */
#include "router.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "problem.h"
#include "volume.h"

struct route {
    const char *pattern;
    const char *allow;    /* Allow header for 405 */
    struct api_route_method methods[4];
};

static const struct route routes[] = {
    {"/health", "GET, HEAD", {{"GET", api_health_get, false, NULL}}},
    {"/metrics", "GET, HEAD", {{"GET", api_metrics_get, false, NULL}}},
    {"/openapi.json", "GET, HEAD", {{"GET", api_openapi_get, false, NULL}}},
    {"/volumes", "GET, HEAD, POST",
     {{"GET", api_volumes_list, false, NULL},
      {"POST", api_volumes_create, true, NULL}}},
    {"/volumes/{volume}", "GET, HEAD, PATCH, DELETE",
     {{"GET", api_volumes_get, false, NULL},
      {"PATCH", api_volumes_patch, true, NULL},
      {"DELETE", api_volumes_delete, false, "force"}}},
    {"/volumes/{volume}/snapshots", "GET, HEAD, POST",
     {{"GET", api_snapshots_list, false, NULL},
      {"POST", api_snapshots_create, true, NULL}}},
    {"/volumes/{volume}/snapshots/{snapshot}", "GET, HEAD, DELETE",
     {{"GET", api_snapshots_get, false, NULL},
      {"DELETE", api_snapshots_delete, false, NULL}}},
    {"/volumes/{volume}/snapshots/{snapshot}/revert", "POST",
     {{"POST", api_snapshots_revert, false, "force"}}},
    {"/jobs/{job}", "GET, HEAD", {{"GET", api_jobs_get, false, NULL}}},
};

enum { P_VOLUME, P_SNAPSHOT, P_JOB, P_COUNT };
static const char *const param_names[P_COUNT] = {"{volume}", "{snapshot}",
                                                 "{job}"};

struct raw_params {
    const char *val[P_COUNT];
    size_t len[P_COUNT];
};

/* Next segment after *p (which points at '/' or the end). */
static bool next_segment(const char **p, const char **seg, size_t *len)
{
    if (**p != '/') {
        return false;
    }
    *seg = *p + 1;
    *len = strcspn(*seg, "/");
    *p = *seg + *len;
    return true;
}

static bool match(const char *pattern, const char *path, struct raw_params *rp)
{
    const char *pp = pattern, *ps = path, *a, *b;
    size_t alen, blen;

    memset(rp, 0, sizeof(*rp));
    for (;;) {
        bool more_a = next_segment(&pp, &a, &alen);
        bool more_b = next_segment(&ps, &b, &blen);
        if (!more_a || !more_b) {
            return !more_a && !more_b && *ps == '\0';
        }
        if (blen == 0) {
            return false;   /* "//" or a trailing '/' */
        }
        if (a[0] == '{') {
            for (int i = 0; i < P_COUNT; i++) {
                if (strlen(param_names[i]) == alen &&
                    memcmp(param_names[i], a, alen) == 0) {
                    rp->val[i] = b;
                    rp->len[i] = blen;
                }
            }
        } else if (alen != blen || memcmp(a, b, alen) != 0) {
            return false;
        }
    }
}

/* Decode and check a {volume} or {snapshot} segment into out. */
static int decode_name(const char *raw, size_t len, char *out, size_t outlen,
                       const char *what, struct api_reply *rep)
{
    int r = api_segment_decode(raw, len, out, outlen);
    if (r == -ENAMETOOLONG) {
        api_problem(rep, 400, "%s name in path is longer than %d characters",
                    what, VD_NAME_MAX);
        return -1;
    }
    if (r < 0) {
        api_problem(rep, 400, "%s name in path has a bad percent-escape, an "
                    "encoded '/' or a NUL", what);
        return -1;
    }
    if (!vd_volume_name_valid(out)) {
        api_problem(rep, 400, "'%s' is not a valid %s name (want "
                    "[a-z0-9][a-z0-9_.-]{0,63})", out, what);
        return -1;
    }
    return 0;
}

static int decode_job(const char *raw, size_t len, uint64_t *out,
                      struct api_reply *rep)
{
    uint64_t v = 0;
    if (len == 0 || len > 20) {
        goto bad;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(raw[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            goto bad;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
bad:
    api_problem(rep, 400, "job id in path must be a decimal number");
    return -1;
}

static int decode_params(const struct raw_params *rp, struct api_match *m,
                         struct api_reply *rep)
{
    if (rp->val[P_VOLUME] != NULL) {
        if (decode_name(rp->val[P_VOLUME], rp->len[P_VOLUME], m->volume,
                        sizeof(m->volume), "volume", rep) < 0) {
            return -1;
        }
        m->has_volume = true;
    }
    if (rp->val[P_SNAPSHOT] != NULL) {
        if (decode_name(rp->val[P_SNAPSHOT], rp->len[P_SNAPSHOT],
                        m->snapshot, sizeof(m->snapshot), "snapshot",
                        rep) < 0) {
            return -1;
        }
        m->has_snapshot = true;
    }
    if (rp->val[P_JOB] != NULL) {
        if (decode_job(rp->val[P_JOB], rp->len[P_JOB], &m->job, rep) < 0) {
            return -1;
        }
        m->has_job = true;
    }
    return 0;
}

int api_route(const char *path, const char *method, struct api_match *m,
              struct api_reply *rep)
{
    const struct route *rt = NULL;
    struct raw_params rp;

    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (match(routes[i].pattern, path, &rp)) {
            rt = &routes[i];
            break;
        }
    }
    if (rt == NULL) {
        api_problem(rep, 404, "no resource at this path");
        return -1;
    }
    if (strcmp(method, "HEAD") == 0) {
        method = "GET";
    }
    for (const struct api_route_method *rm = rt->methods; rm->method != NULL;
         rm++) {
        if (strcmp(rm->method, method) == 0) {
            if (decode_params(&rp, m, rep) < 0) {
                return -1;
            }
            m->rm = rm;
            return 0;
        }
    }
    rep->allow = rt->allow;
    api_problem(rep, 405, "%.32s is not allowed here; allowed: %s", method,
                rt->allow);
    return -1;
}
