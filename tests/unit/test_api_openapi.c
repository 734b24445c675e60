/* test_api_openapi.c — the embedded OpenAPI description is valid JSON,
 * declares OpenAPI 3, documents every route the server answers, and
 * every local $ref in it resolves. */
#include <jansson.h>
#include <string.h>

#include "vd_test.h"

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

/* Follow a "#/a/b/c" pointer from the document root. */
static json_t *resolve(json_t *root, const char *ref)
{
    char buf[256], *save = NULL, *tok;
    json_t *cur = root;

    if (strncmp(ref, "#/", 2) != 0 || strlen(ref) >= sizeof(buf)) {
        return NULL;
    }
    strcpy(buf, ref + 2);
    for (tok = strtok_r(buf, "/", &save); tok != NULL && cur != NULL;
         tok = strtok_r(NULL, "/", &save)) {
        cur = json_object_get(cur, tok);
    }
    return cur;
}

static int refs_checked;

static void check_refs(json_t *root, json_t *node)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_object(node)) {
        json_object_foreach(node, key, v)
        {
            if (strcmp(key, "$ref") == 0) {
                refs_checked++;
                CHECK(json_is_string(v) &&
                      resolve(root, json_string_value(v)) != NULL);
                if (!json_is_string(v) ||
                    resolve(root, json_string_value(v)) == NULL) {
                    fprintf(stderr, "unresolved $ref %s\n",
                            json_is_string(v) ? json_string_value(v) : "?");
                }
            } else {
                check_refs(root, v);
            }
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v)
        {
            check_refs(root, v);
        }
    }
}

int main(void)
{
    static const struct {
        const char *path, *method;
    } ops[] = {
        {"/volumes", "get"},
        {"/volumes", "post"},
        {"/volumes/{name}", "get"},
        {"/volumes/{name}", "patch"},
        {"/volumes/{name}", "delete"},
        {"/health", "get"},
        {"/metrics", "get"},
        {"/openapi.json", "get"},
        {"/volumes/{name}/snapshots", "get"},
        {"/volumes/{name}/snapshots", "post"},
        {"/volumes/{name}/snapshots/{snapshot}", "get"},
        {"/volumes/{name}/snapshots/{snapshot}", "delete"},
        {"/volumes/{name}/snapshots/{snapshot}/revert", "post"},
        {"/volumes/{name}/snapshots/{snapshot}/changes", "get"},
        {"/jobs/{id}", "get"},
        {"/qos-groups", "get"},
        {"/qos-groups", "post"},
        {"/qos-groups/{group}", "get"},
        {"/qos-groups/{group}", "patch"},
        {"/qos-groups/{group}", "delete"},
    };
    json_error_t jerr;
    json_t *doc, *paths;

    CHECK_EQ(strlen(api_openapi_json), api_openapi_json_len);
    doc = json_loadb(api_openapi_json, api_openapi_json_len,
                     JSON_REJECT_DUPLICATES, &jerr);
    CHECK(doc != NULL);
    if (doc == NULL) {
        fprintf(stderr, "openapi.json: line %d: %s\n", jerr.line, jerr.text);
        return vd_test_done("test_api_openapi");
    }
    CHECK(strncmp(json_string_value(json_object_get(doc, "openapi")) ?: "",
                  "3.", 2) == 0);
    paths = json_object_get(doc, "paths");
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        json_t *op =
            json_object_get(json_object_get(paths, ops[i].path), ops[i].method);
        CHECK(json_is_object(op));
        CHECK(json_is_object(json_object_get(op, "responses")));
        if (!json_is_object(op)) {
            fprintf(stderr, "missing %s %s\n", ops[i].method, ops[i].path);
        }
    }
    check_refs(doc, doc);
    CHECK(refs_checked > 10);
    json_decref(doc);
    return vd_test_done("test_api_openapi");
}
