/* test_api_problem.c — problem+json documents: fields, the errno
 * mapping applied to volume manager errors, client bytes that are not
 * UTF-8, and replies released without leaks (run under ASan). */
#include <errno.h>
#include <string.h>

#include "handler.h"
#include "problem.h"
#include "vd_test.h"

static const char *str(const struct api_reply *r, const char *key)
{
    const char *s = json_string_value(json_object_get(r->json, key));
    return s != NULL ? s : "";
}

int main(void)
{
    struct api_reply r = {0};

    api_problem(&r, 404, "no volume '%s'", "v1");
    CHECK_EQ(r.status, 404);
    CHECK(r.problem);
    CHECK(strcmp(str(&r, "type"), "about:blank") == 0);
    CHECK(strcmp(str(&r, "title"), "Not Found") == 0);
    CHECK(strcmp(str(&r, "detail"), "no volume 'v1'") == 0);
    CHECK_EQ(json_integer_value(json_object_get(r.json, "status")), 404);
    CHECK_EQ(json_object_size(r.json), 4);

    /* Replacing a reply keeps the Allow header of a 405 in the making. */
    r.allow = "GET, HEAD";
    api_problem(&r, 405, "PUT is not allowed");
    CHECK(r.allow != NULL && strcmp(r.allow, "GET, HEAD") == 0);
    CHECK(strcmp(str(&r, "title"), "Method Not Allowed") == 0);

    api_problem_errno(&r, -EEXIST, "volume 'v1' already exists");
    CHECK_EQ(r.status, 409);
    CHECK(strcmp(str(&r, "detail"), "volume 'v1' already exists") == 0);
    api_problem_errno(&r, -EBUSY, "");
    CHECK_EQ(r.status, 409);
    CHECK(strlen(str(&r, "detail")) > 0); /* never an empty detail */
    api_problem_errno(&r, -ENOSPC, NULL);
    CHECK_EQ(r.status, 507);
    CHECK(strcmp(str(&r, "title"), "Insufficient Storage") == 0);

    /* A detail with bytes that are not UTF-8 still makes a document. */
    api_problem(&r, 400, "'%s' is not a valid volume name", "a\xff\xfe");
    CHECK(r.json != NULL);
    CHECK(strcmp(str(&r, "detail"), "'a?"
                                    "?' is not a valid volume name") == 0);

    /* JSON replies replace problems completely. */
    api_reply_json(&r, 200, json_pack("{s:s}", "status", "ok"));
    CHECK_EQ(r.status, 200);
    CHECK(!r.problem);
    CHECK(strcmp(str(&r, "status"), "ok") == 0);

    api_reply_clear(&r);
    CHECK(r.json == NULL && r.status == 0);
    return vd_test_done("test_api_problem");
}
