/* router.c — the route table and path matching.
 *
 * A pattern is a list of '/'-separated segments; "{volume}" and
 * "{snapshot}" capture a name (checked with vd_volume_name_valid after
 * percent-decoding), "{id}" a decimal job id. The path is split on raw
 * '/' before decoding, so an encoded "%2F" can never fake a separator. */
#include "router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "problem.h"
#include "volume.h"

struct route {
    const char *pattern;
    const char *allow; /* Allow header for 405 */
    struct api_route_method methods[4];
};

static const struct route routes[] = {
    {"health", "GET, HEAD", {{"GET", api_health_get, false, NULL}}},
    {"metrics", "GET, HEAD", {{"GET", api_metrics_get, false, NULL}}},
    {"openapi.json", "GET, HEAD", {{"GET", api_openapi_get, false, NULL}}},
    {"volumes",
     "GET, HEAD, POST",
     {{"GET", api_volumes_list, false, NULL},
      {"POST", api_volumes_create, true, NULL}}},
    {"volumes/{volume}",
     "GET, HEAD, PATCH, DELETE",
     {{"GET", api_volumes_get, false, NULL},
      {"PATCH", api_volumes_patch, true, NULL},
      {"DELETE", api_volumes_delete, false, "force purge"}}},
    {"volumes/{volume}/takeover",
     "POST",
     {{"POST", api_volumes_takeover, true, NULL}}},
    {"volumes/{volume}/snapshots",
     "GET, HEAD, POST",
     {{"GET", api_snapshots_list, false, NULL},
      {"POST", api_snapshots_create, true, NULL}}},
    {"volumes/{volume}/snapshots/{snapshot}",
     "GET, HEAD, DELETE",
     {{"GET", api_snapshots_get, false, NULL},
      {"DELETE", api_snapshots_delete, false, NULL}}},
    {"volumes/{volume}/snapshots/{snapshot}/revert",
     "POST",
     {{"POST", api_snapshots_revert, true, "force"}}},
    {"volumes/{volume}/snapshots/{snapshot}/changes",
     "GET, HEAD",
     {{"GET", api_snapshots_changes, false, "since"}}},
    {"jobs", "GET, HEAD", {{"GET", api_jobs_list, false, NULL}}},
    {"jobs/{id}", "GET, HEAD", {{"GET", api_jobs_get, false, NULL}}},
    {"qos-groups",
     "GET, HEAD, POST",
     {{"GET", api_qos_groups_list, false, NULL},
      {"POST", api_qos_groups_create, true, NULL}}},
    {"qos-groups/{group}",
     "GET, HEAD, PATCH, DELETE",
     {{"GET", api_qos_groups_get, false, NULL},
      {"PATCH", api_qos_groups_patch, true, NULL},
      {"DELETE", api_qos_groups_delete, false, NULL}}},
};

#define MAX_SEGMENTS 6

/* Split s at '/' into at most max segments; -1 if there are more or one is
 * empty. */
static int split(const char *s, const char *seg[], size_t len[], int max)
{
    int n = 0;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t l = slash != NULL ? (size_t)(slash - s) : strlen(s);
        if (l == 0 || n == max) {
            return -1;
        }
        seg[n] = s;
        len[n++] = l;
        if (slash == NULL) {
            return n;
        }
        s = slash + 1;
    }
}

static bool route_matches(const struct route *rt, const char *seg[],
                          const size_t len[], int n)
{
    const char *pseg[MAX_SEGMENTS];
    size_t plen[MAX_SEGMENTS];
    int pn = split(rt->pattern, pseg, plen, MAX_SEGMENTS);
    if (pn != n) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (pseg[i][0] == '{') {
            continue;
        }
        if (plen[i] != len[i] || memcmp(pseg[i], seg[i], len[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* Decode and check one captured name; 0, or -1 with rep filled. */
static int capture_name(const char *raw, size_t len, char *out, size_t cap,
                        const char *what, struct api_reply *rep)
{
    int r = api_segment_decode(raw, len, out, cap);
    if (r == -ENAMETOOLONG) {
        api_problem(rep, 400, "%s name in path is longer than %d characters",
                    what, VD_API_NAME_MAX);
        return -1;
    }
    if (r < 0) {
        api_problem(rep, 400,
                    "%s name in path has a bad percent-escape, an "
                    "encoded '/' or a NUL",
                    what);
        return -1;
    }
    if (!vd_volume_name_valid(out)) {
        api_problem(rep, 400,
                    "'%s' is not a valid %s name (want "
                    "[a-z0-9][a-z0-9_.-]{0,63})",
                    out, what);
        return -1;
    }
    return 0;
}

static int capture(const struct route *rt, const char *seg[],
                   const size_t len[], int n, struct api_path *path,
                   struct api_reply *rep)
{
    const char *pseg[MAX_SEGMENTS];
    size_t plen[MAX_SEGMENTS];
    split(rt->pattern, pseg, plen, MAX_SEGMENTS);
    for (int i = 0; i < n; i++) {
        if (strncmp(pseg[i], "{volume}", plen[i]) == 0 ||
            strncmp(pseg[i], "{group}", plen[i]) == 0) {
            /* A group's name has a volume's syntax and takes its place. */
            if (capture_name(seg[i], len[i], path->volume, sizeof(path->volume),
                             pseg[i][1] == 'g' ? "qos group" : "volume",
                             rep) < 0) {
                return -1;
            }
        } else if (strncmp(pseg[i], "{snapshot}", plen[i]) == 0) {
            if (capture_name(seg[i], len[i], path->snapshot,
                             sizeof(path->snapshot), "snapshot", rep) < 0) {
                return -1;
            }
        } else if (strncmp(pseg[i], "{id}", plen[i]) == 0) {
            char buf[24];
            char *end;
            if (len[i] >= sizeof(buf)) {
                api_problem(rep, 404, "no job with that id");
                return -1;
            }
            memcpy(buf, seg[i], len[i]);
            buf[len[i]] = '\0';
            errno = 0;
            path->id = strtoull(buf, &end, 10);
            if (errno != 0 || *end != '\0' || buf[0] < '0' || buf[0] > '9') {
                api_problem(rep, 404, "'%s' is not a job id", buf);
                return -1;
            }
            path->has_id = true;
        }
    }
    return 0;
}

const char *api_route_at(size_t i, const char **allow,
                         const struct api_route_method **methods)
{
    if (i >= sizeof(routes) / sizeof(routes[0])) {
        return NULL;
    }
    *allow = routes[i].allow;
    *methods = routes[i].methods;
    return routes[i].pattern;
}

const struct api_route_method *api_route_find(const char *url,
                                              const char *method,
                                              struct api_path *path,
                                              struct api_reply *rep)
{
    const char *seg[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
    const struct route *rt = NULL;
    int n;

    memset(path, 0, sizeof(*path));
    if (url[0] != '/' || (n = split(url + 1, seg, len, MAX_SEGMENTS)) < 0) {
        api_problem(rep, 404, "no resource at this path");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (route_matches(&routes[i], seg, len, n)) {
            rt = &routes[i];
            break;
        }
    }
    if (rt == NULL) {
        api_problem(rep, 404, "no resource at this path");
        return NULL;
    }
    path->route = rt->pattern;
    if (strcmp(method, "HEAD") == 0) {
        method = "GET";
    }
    for (const struct api_route_method *rm = rt->methods; rm->method != NULL;
         rm++) {
        if (strcmp(rm->method, method) == 0) {
            return capture(rt, seg, len, n, path, rep) < 0 ? NULL : rm;
        }
    }
    rep->allow = rt->allow;
    api_problem(rep, 405, "%s is not allowed here; allowed: %s", method,
                rt->allow);
    return NULL;
}
