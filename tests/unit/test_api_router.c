/* test_api_router.c — path and method resolution: which handler, which
 * decoded parameters, and 404/405/400 for everything else. */
#include <string.h>

#include "router.h"
#include "vd_test.h"

/* Route path/method; returns the status (200 for a match). */
static unsigned route(const char *path, const char *method,
                      struct api_match *m, struct api_reply *rep)
{
    api_reply_clear(rep);
    return api_route(path, method, m, rep) == 0 ? 200 : rep->status;
}

int main(void)
{
    struct api_reply rep = {0};
    struct api_match m;

    CHECK_EQ(route("/health", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_health_get);
    CHECK_EQ(route("/health", "HEAD", &m, &rep), 200);
    CHECK(m.rm->fn == api_health_get);
    CHECK_EQ(route("/metrics", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_metrics_get);
    CHECK_EQ(route("/openapi.json", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_openapi_get);

    CHECK_EQ(route("/volumes", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_volumes_list && !m.has_volume);
    CHECK_EQ(route("/volumes", "POST", &m, &rep), 200);
    CHECK(m.rm->fn == api_volumes_create && m.rm->body);
    CHECK_EQ(route("/volumes/v1", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_volumes_get && m.has_volume);
    CHECK(strcmp(m.volume, "v1") == 0);
    CHECK_EQ(route("/volumes/v1", "PATCH", &m, &rep), 200);
    CHECK(m.rm->fn == api_volumes_patch && m.rm->body);
    CHECK_EQ(route("/volumes/v1", "DELETE", &m, &rep), 200);
    CHECK(m.rm->fn == api_volumes_delete && !m.rm->body);
    CHECK(strcmp(m.rm->query, "force") == 0);
    CHECK_EQ(route("/volumes/%76%31", "GET", &m, &rep), 200);
    CHECK(strcmp(m.volume, "v1") == 0);

    /* Snapshots and jobs. */
    CHECK_EQ(route("/volumes/v1/snapshots", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_snapshots_list && strcmp(m.volume, "v1") == 0);
    CHECK_EQ(route("/volumes/v1/snapshots", "POST", &m, &rep), 200);
    CHECK(m.rm->fn == api_snapshots_create && m.rm->body);
    CHECK_EQ(route("/volumes/v1/snapshots/s%31", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_snapshots_get && m.has_snapshot);
    CHECK(strcmp(m.volume, "v1") == 0 && strcmp(m.snapshot, "s1") == 0);
    CHECK_EQ(route("/volumes/v1/snapshots/s1", "DELETE", &m, &rep), 200);
    CHECK(m.rm->fn == api_snapshots_delete);
    CHECK_EQ(route("/volumes/v1/snapshots/s1/revert", "POST", &m, &rep), 200);
    CHECK(m.rm->fn == api_snapshots_revert && !m.rm->body);
    CHECK(strcmp(m.rm->query, "force") == 0);
    CHECK_EQ(route("/volumes/v1/snapshots/s1/revert", "GET", &m, &rep), 405);
    CHECK(strcmp(rep.allow, "POST") == 0);
    CHECK_EQ(route("/volumes/v1/snapshots/s1", "PATCH", &m, &rep), 405);
    CHECK_EQ(route("/volumes/v1/snapshots/..", "GET", &m, &rep), 400);
    CHECK_EQ(route("/volumes/../snapshots/s1", "GET", &m, &rep), 400);
    CHECK_EQ(route("/jobs/42", "GET", &m, &rep), 200);
    CHECK(m.rm->fn == api_jobs_get && m.has_job);
    CHECK_EQ(m.job, 42);
    CHECK_EQ(route("/jobs/18446744073709551615", "GET", &m, &rep), 200);
    CHECK(m.job == UINT64_MAX);
    CHECK_EQ(route("/jobs/18446744073709551616", "GET", &m, &rep), 400);
    CHECK_EQ(route("/jobs/-1", "GET", &m, &rep), 400);
    CHECK_EQ(route("/jobs/1x", "GET", &m, &rep), 400);
    CHECK_EQ(route("/jobs/%31", "GET", &m, &rep), 400);   /* ids are plain digits */
    CHECK_EQ(route("/jobs", "GET", &m, &rep), 404);
    CHECK_EQ(route("/jobs/1", "DELETE", &m, &rep), 405);

    /* Unknown paths. */
    const char *unknown[] = {"", "/", "//", "/nope", "/volumes/", "//volumes",
                             "/volumes//", "/volumes/v1/", "/volumes/v1/x/y/z",
                             "/Volumes", "/health/", "/healthz", "volumes",
                             "/volumes/v1/snapshotsx"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        CHECK_EQ(route(unknown[i], "GET", &m, &rep), 404);
        CHECK(rep.problem && rep.allow == NULL);
    }

    /* Wrong methods name what is allowed. */
    CHECK_EQ(route("/volumes", "PUT", &m, &rep), 405);
    CHECK(rep.allow != NULL && strcmp(rep.allow, "GET, HEAD, POST") == 0);
    CHECK_EQ(route("/volumes/v1", "POST", &m, &rep), 405);
    CHECK(strcmp(rep.allow, "GET, HEAD, PATCH, DELETE") == 0);
    CHECK_EQ(route("/health", "DELETE", &m, &rep), 405);
    CHECK_EQ(route("/health", "get", &m, &rep), 405);   /* methods are case-sensitive */
    /* a bad name is not looked at before the method is known to be allowed */
    CHECK_EQ(route("/volumes/..", "PUT", &m, &rep), 405);

    /* Names are decoded after splitting, then checked. */
    const char *badnames[] = {"..", "%2e%2e", ".", "a%2fb", "a%2Fb", "a%00",
                              "%zz", "a%2", "UP", "-a", "a%20b", "%ff",
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(badnames) / sizeof(badnames[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/volumes/%s", badnames[i]);
        CHECK_EQ(route(path, "GET", &m, &rep), 400);
        CHECK_EQ(route(path, "DELETE", &m, &rep), 400);
        CHECK(rep.problem);
    }
    api_reply_clear(&rep);
    return vd_test_done("test_api_router");
}
