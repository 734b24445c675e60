/* test_api_router.c — path and method resolution: which handler, which
 * decoded parameters, and 404/405/400 for everything else. */
#include <stdio.h>
#include <string.h>

#include "router.h"
#include "vd_test.h"

static struct api_path path;
static const struct api_route_method *rm;

/* Route p/method; returns the status (200 for a match). */
static unsigned route(const char *p, const char *method, struct api_reply *rep)
{
    api_reply_clear(rep);
    rm = api_route_find(p, method, &path, rep);
    return rm != NULL ? 200 : rep->status;
}

int main(void)
{
    struct api_reply rep = {0};

    CHECK_EQ(route("/health", "GET", &rep), 200);
    CHECK(rm->fn == api_health_get);
    CHECK_EQ(route("/health", "HEAD", &rep), 200);
    CHECK(rm->fn == api_health_get);
    CHECK_EQ(route("/metrics", "GET", &rep), 200);
    CHECK(rm->fn == api_metrics_get);
    CHECK_EQ(route("/openapi.json", "GET", &rep), 200);
    CHECK(rm->fn == api_openapi_get);

    CHECK_EQ(route("/volumes", "GET", &rep), 200);
    CHECK(rm->fn == api_volumes_list && path.volume[0] == '\0');
    CHECK_EQ(route("/volumes", "POST", &rep), 200);
    CHECK(rm->fn == api_volumes_create && rm->body);
    CHECK_EQ(route("/volumes/v1", "GET", &rep), 200);
    CHECK(rm->fn == api_volumes_get && strcmp(path.volume, "v1") == 0);
    CHECK_EQ(route("/volumes/v1", "PATCH", &rep), 200);
    CHECK(rm->fn == api_volumes_patch && rm->body);
    CHECK_EQ(route("/volumes/v1", "DELETE", &rep), 200);
    CHECK(rm->fn == api_volumes_delete && !rm->body);
    CHECK(rm->query != NULL && strcmp(rm->query, "force purge") == 0);
    CHECK_EQ(route("/volumes/%76%31", "GET", &rep), 200);
    CHECK(strcmp(path.volume, "v1") == 0);

    /* Snapshots and jobs. */
    CHECK_EQ(route("/volumes/v1/snapshots", "GET", &rep), 200);
    CHECK(rm->fn == api_snapshots_list && strcmp(path.volume, "v1") == 0);
    CHECK_EQ(route("/volumes/v1/snapshots", "POST", &rep), 200);
    CHECK(rm->fn == api_snapshots_create && rm->body);
    CHECK_EQ(route("/volumes/v1/snapshots/s%31", "GET", &rep), 200);
    CHECK(rm->fn == api_snapshots_get);
    CHECK(strcmp(path.volume, "v1") == 0 && strcmp(path.snapshot, "s1") == 0);
    CHECK_EQ(route("/volumes/v1/snapshots/s1", "DELETE", &rep), 200);
    CHECK(rm->fn == api_snapshots_delete);
    CHECK_EQ(route("/volumes/v1/snapshots/s1/revert", "POST", &rep), 200);
    CHECK(rm->fn == api_snapshots_revert);
    CHECK_EQ(route("/volumes/v1/snapshots/s1/changes", "GET", &rep), 200);
    CHECK(rm->fn == api_snapshots_changes);
    CHECK_EQ(route("/volumes/v1/snapshots/s1/revert", "GET", &rep), 405);
    CHECK(rep.allow != NULL && strcmp(rep.allow, "POST") == 0);
    CHECK_EQ(route("/volumes/v1/snapshots/s1", "PATCH", &rep), 405);
    CHECK_EQ(route("/volumes/v1/snapshots/..", "GET", &rep), 400);
    CHECK_EQ(route("/volumes/../snapshots/s1", "GET", &rep), 400);
    CHECK_EQ(route("/jobs/42", "GET", &rep), 200);
    CHECK(rm->fn == api_jobs_get && path.has_id);
    CHECK_EQ(path.id, 42);
    CHECK_EQ(route("/jobs/18446744073709551615", "GET", &rep), 200);
    CHECK(path.id == UINT64_MAX);
    CHECK_EQ(route("/jobs/18446744073709551616", "GET", &rep), 404);
    CHECK_EQ(route("/jobs/-1", "GET", &rep), 404);
    CHECK_EQ(route("/jobs/1x", "GET", &rep), 404);
    CHECK_EQ(route("/jobs", "GET", &rep), 200);
    CHECK(rm->fn == api_jobs_list && !path.has_id);
    CHECK_EQ(route("/jobs", "POST", &rep), 405);
    CHECK_EQ(route("/jobs/", "GET", &rep), 404);
    CHECK_EQ(route("/jobs/1", "DELETE", &rep), 405);

    /* Unknown paths. */
    const char *unknown[] = {"",
                             "/",
                             "//",
                             "/nope",
                             "/volumes/",
                             "//volumes",
                             "/volumes//",
                             "/volumes/v1/",
                             "/volumes/v1/x/y/z",
                             "/Volumes",
                             "/health/",
                             "/healthz",
                             "volumes",
                             "/volumes/v1/snapshotsx",
                             "/a/b/c/d/e/f/g/h"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        CHECK_EQ(route(unknown[i], "GET", &rep), 404);
        CHECK(rep.problem && rep.allow == NULL);
    }

    /* Wrong methods name what is allowed. */
    CHECK_EQ(route("/volumes", "PUT", &rep), 405);
    CHECK(rep.allow != NULL && strcmp(rep.allow, "GET, HEAD, POST") == 0);
    CHECK_EQ(route("/volumes/v1", "POST", &rep), 405);
    CHECK(strcmp(rep.allow, "GET, HEAD, PATCH, DELETE") == 0);
    CHECK_EQ(route("/health", "DELETE", &rep), 405);
    CHECK_EQ(route("/health", "get", &rep),
             405); /* methods are case-sensitive */
    /* a bad name is not looked at before the method is known to be allowed */
    CHECK_EQ(route("/volumes/..", "PUT", &rep), 405);

    /* Names are decoded after splitting, then checked. */
    const char *badnames[] = {"..",
                              "%2e%2e",
                              ".",
                              "a%2fb",
                              "a%2Fb",
                              "a%00",
                              "%zz",
                              "a%2",
                              "UP",
                              "-a",
                              "a%20b",
                              "%ff",
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(badnames) / sizeof(badnames[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "/volumes/%s", badnames[i]);
        CHECK_EQ(route(p, "GET", &rep), 400);
        CHECK_EQ(route(p, "DELETE", &rep), 400);
        CHECK(rep.problem);
        snprintf(p, sizeof(p), "/volumes/v1/snapshots/%s", badnames[i]);
        CHECK_EQ(route(p, "GET", &rep), 400);
    }
    api_reply_clear(&rep);
    return vd_test_done("test_api_router");
}
