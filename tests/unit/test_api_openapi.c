/* test_api_openapi.c — the embedded OpenAPI description is valid JSON,
 * declares OpenAPI 3, and every local $ref in it resolves; its paths and
 * methods are exactly the router's (HEAD wherever the router allows it),
 * with the query parameters each method takes, and every operation
 * declares the 500 any handler may answer (and 401 unless it needs no
 * token). tests/functional/api_openapi_validate.sh holds the answers
 * themselves to it. */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "router.h"
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

/* "volumes/{volume}/snapshots" -> "/volumes/{name}/snapshots": the
 * document names the volume parameter "name". */
static void spec_path(const char *pattern, char *out, size_t cap)
{
    const char *vol = strstr(pattern, "{volume}");
    if (vol != NULL) {
        snprintf(out, cap, "/%.*s{name}%s", (int)(vol - pattern), pattern,
                 vol + strlen("{volume}"));
    } else {
        snprintf(out, cap, "/%s", pattern);
    }
}

/* Is word one of the items of list, separated by any of seps? */
static bool listed(const char *list, const char *seps, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p != NULL && *p != '\0';) {
        size_t l = strcspn(p, seps);
        if (l == n && strncasecmp(p, word, n) == 0) {
            return true;
        }
        p += l;
        p += strspn(p, seps);
    }
    return false;
}

/* The query parameters an operation declares, its path's included, as a
 * space-separated list in out; the number of them. */
static int query_params(json_t *root, json_t *pathitem, json_t *op, char *out,
                        size_t cap)
{
    json_t *lists[2] = {json_object_get(pathitem, "parameters"),
                        json_object_get(op, "parameters")};
    int n = 0;
    size_t i;
    json_t *p;

    out[0] = '\0';
    for (int k = 0; k < 2; k++) {
        json_array_foreach(lists[k], i, p)
        {
            json_t *ref = json_object_get(p, "$ref");
            if (ref != NULL) {
                p = resolve(root, json_string_value(ref));
            }
            if (p != NULL &&
                strcmp(json_string_value(json_object_get(p, "in")) ?: "",
                       "query") == 0) {
                size_t len = strlen(out);
                snprintf(out + len, cap - len, "%s%s", n > 0 ? " " : "",
                         json_string_value(json_object_get(p, "name")) ?: "?");
                n++;
            }
        }
    }
    return n;
}

/* The route's methods and the operations on its path agree. */
static void check_route(json_t *root, const char *pattern, const char *allow,
                        const struct api_route_method *methods)
{
    json_t *paths = json_object_get(root, "paths");
    json_t *item, *op;
    const char *key;
    char path[128], got[256];

    spec_path(pattern, path, sizeof(path));
    item = json_object_get(paths, path);
    CHECK(json_is_object(item));
    if (!json_is_object(item)) {
        fprintf(stderr, "route %s is not in the document\n", path);
        return;
    }
    /* Every method the path's Allow names is an operation, and no other. */
    json_object_foreach(item, key, op)
    {
        if (strcmp(key, "parameters") == 0) {
            continue;
        }
        CHECK(listed(allow, ", ", key));
        if (!listed(allow, ", ", key)) {
            fprintf(stderr, "%s %s is documented, Allow is '%s'\n", key, path,
                    allow);
        }
    }
    for (const char *p = allow; *p != '\0';) {
        size_t l = strcspn(p, ", ");
        char m[16] = "";
        json_t *sec;

        for (size_t j = 0; j < l && j + 1 < sizeof(m); j++) {
            m[j] = (char)(p[j] - 'A' + 'a');
        }
        p += l;
        p += strspn(p, ", ");
        op = json_object_get(item, m);
        CHECK(json_is_object(op));
        if (!json_is_object(op)) {
            fprintf(stderr, "%s %s is answered but not documented\n", m, path);
            continue;
        }
        CHECK(json_object_get(json_object_get(op, "responses"), "500") != NULL);
        sec = json_object_get(op, "security");
        if (!json_is_array(sec) || json_array_size(sec) > 0) {
            CHECK(json_object_get(json_object_get(op, "responses"), "401") !=
                  NULL);
        }
        /* The query parameters the router takes (HEAD takes GET's). */
        for (const struct api_route_method *rm = methods; rm->method != NULL;
             rm++) {
            int n;
            if (!(strcasecmp(rm->method, m) == 0 ||
                  (strcmp(m, "head") == 0 && strcmp(rm->method, "GET") == 0))) {
                continue;
            }
            n = query_params(root, item, op, got, sizeof(got));
            for (const char *q = rm->query; q != NULL && *q != '\0';) {
                size_t ql = strcspn(q, " ");
                char name[32];
                snprintf(name, sizeof(name), "%.*s", (int)ql, q);
                CHECK(listed(got, " ", name));
                n--;
                q += ql;
                q += strspn(q, " ");
            }
            CHECK_EQ(n, 0);
            if (n != 0) {
                fprintf(stderr, "%s %s: document has query '%s', router '%s'\n",
                        m, path, got, rm->query ?: "");
            }
        }
    }
}

int main(void)
{
    json_error_t jerr;
    json_t *doc, *paths, *item;
    const struct api_route_method *methods;
    const char *pattern, *allow, *key;
    size_t i, routes = 0;

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
    for (i = 0; (pattern = api_route_at(i, &allow, &methods)) != NULL; i++) {
        check_route(doc, pattern, allow, methods);
        routes++;
    }
    CHECK(routes >= 10);
    /* ... and the document has no path the router lacks. */
    paths = json_object_get(doc, "paths");
    CHECK_EQ(json_object_size(paths), routes);
    json_object_foreach(paths, key, item)
    {
        bool found = false;
        char path[128];
        for (i = 0; (pattern = api_route_at(i, &allow, &methods)) != NULL;
             i++) {
            spec_path(pattern, path, sizeof(path));
            found = found || strcmp(path, key) == 0;
        }
        CHECK(found);
        if (!found) {
            fprintf(stderr, "%s is documented but not routed\n", key);
        }
    }
    check_refs(doc, doc);
    CHECK(refs_checked > 10);
    json_decref(doc);
    return vd_test_done("test_api_openapi");
}
