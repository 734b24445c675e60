/* test_api_parse.c — the API's pure helpers: size strings and bounds,
 * sizes from JSON, path segment decoding, media types, query booleans,
 * RFC 3339 timestamps, and the errno → HTTP status mapping. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "parse.h"
#include "problem.h"
#include "vd_error.h"
#include "vd_test.h"

static void test_size_string(void)
{
    uint64_t v = 0;

    CHECK_EQ(api_parse_size_string("0", &v), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(api_parse_size_string("4096", &v), 0);
    CHECK_EQ(v, 4096);
    CHECK_EQ(api_parse_size_string("512B", &v), 0);
    CHECK_EQ(v, 512);
    CHECK_EQ(api_parse_size_string("1K", &v), 0);
    CHECK_EQ(v, 1024);
    CHECK_EQ(api_parse_size_string("512M", &v), 0);
    CHECK_EQ(v, 512ULL << 20);
    CHECK_EQ(api_parse_size_string("10G", &v), 0);
    CHECK_EQ(v, 10ULL << 30);
    CHECK_EQ(api_parse_size_string("10g", &v), 0);
    CHECK_EQ(v, 10ULL << 30);
    CHECK_EQ(api_parse_size_string("10GiB", &v), 0);
    CHECK_EQ(v, 10ULL << 30);
    CHECK_EQ(api_parse_size_string("1T", &v), 0);
    CHECK_EQ(v, 1ULL << 40);
    CHECK_EQ(api_parse_size_string("64T", &v), 0);
    CHECK_EQ(v, 64ULL << 40);
    CHECK_EQ(api_parse_size_string("2P", &v), 0);
    CHECK_EQ(v, 2ULL << 50);

    v = 77;
    CHECK_EQ(api_parse_size_string("", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string("G", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string("-1", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string("+1", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string(" 1G", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string("1G ", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string("1.5G", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string("10X", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string("10GB", &v),
             -EINVAL); /* decimal unit: refuse */
    CHECK_EQ(api_parse_size_string("0x10", &v), -EINVAL);
    CHECK_EQ(api_parse_size_string(NULL, &v), -EINVAL);
    CHECK_EQ(v, 77); /* untouched on failure */

    CHECK_EQ(api_parse_size_string("18446744073709551615", &v), 0);
    CHECK(v == UINT64_MAX);
    CHECK_EQ(api_parse_size_string("18446744073709551616", &v), -ERANGE);
    CHECK_EQ(api_parse_size_string("16E", &v), -ERANGE);
    CHECK_EQ(api_parse_size_string("17179869184G", &v), -ERANGE);
    CHECK_EQ(api_parse_size_string("17179869183G", &v), 0);
}

static void test_size_bounds(void)
{
    struct vd_error err = {0};

    CHECK_EQ(api_check_size(512, "size", &err), 0);
    CHECK_EQ(api_check_size(64ULL << 40, "size", &err), 0);
    CHECK_EQ(err.code, 0);

    CHECK_EQ(api_check_size(0, "size", &err), -EINVAL);
    CHECK(strstr(err.msg, "'size'") != NULL);
    vd_error_clear(&err);
    CHECK_EQ(api_check_size(511, "size", &err), -EINVAL);
    CHECK(strstr(err.msg, "512") != NULL);
    vd_error_clear(&err);
    CHECK_EQ(api_check_size(1000, "size", &err), -EINVAL);
    CHECK_EQ(api_check_size((64ULL << 40) + 512, "size", &err), -EINVAL);
    CHECK_EQ(api_check_size(UINT64_MAX - 511, "size", &err), -EINVAL);
}

static int size_json(const char *text, uint64_t *out, struct vd_error *err)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    int r;
    if (j == NULL) {
        return -999;
    }
    vd_error_clear(err);
    r = api_size_from_json(j, "size", out, err);
    json_decref(j);
    return r;
}

static void test_size_json(void)
{
    struct vd_error err = {0};
    uint64_t v = 0;

    CHECK_EQ(size_json("10737418240", &v, &err), 0);
    CHECK_EQ(v, 10ULL << 30);
    CHECK_EQ(size_json("\"10G\"", &v, &err), 0);
    CHECK_EQ(v, 10ULL << 30);
    CHECK_EQ(size_json("\"512M\"", &v, &err), 0);
    CHECK_EQ(v, 512ULL << 20);

    CHECK_EQ(size_json("0", &v, &err), -EINVAL);
    CHECK_EQ(size_json("-512", &v, &err), -EINVAL);
    CHECK(strstr(err.msg, "negative") != NULL);
    CHECK_EQ(size_json("1000", &v, &err), -EINVAL);
    CHECK_EQ(size_json("1.5", &v, &err), -EINVAL);
    CHECK(strstr(err.msg, "integer") != NULL);
    CHECK_EQ(size_json("1024.0", &v, &err), -EINVAL);
    CHECK_EQ(size_json("\"1.5G\"", &v, &err), -EINVAL);
    CHECK_EQ(size_json("\"ten\"", &v, &err), -EINVAL);
    CHECK_EQ(size_json("\"\"", &v, &err), -EINVAL);
    CHECK_EQ(size_json("\"65T\"", &v, &err), -EINVAL);
    CHECK(strstr(err.msg, "64 TiB") != NULL);
    CHECK_EQ(size_json("\"99999999999999999999999\"", &v, &err), -EINVAL);
    CHECK_EQ(size_json("true", &v, &err), -EINVAL);
    CHECK_EQ(size_json("null", &v, &err), -EINVAL);
    CHECK_EQ(size_json("[512]", &v, &err), -EINVAL);
    CHECK_EQ(size_json("{}", &v, &err), -EINVAL);
    CHECK(strstr(err.msg, "'size'") != NULL);
    CHECK_EQ(size_json("9223372036854775807", &v, &err), -EINVAL);
}

static void test_segment(void)
{
    char out[8];

    CHECK_EQ(api_segment_decode("v1", 2, out, sizeof(out)), 0);
    CHECK(strcmp(out, "v1") == 0);
    CHECK_EQ(api_segment_decode("%2e%2E", 6, out, sizeof(out)), 0);
    CHECK(strcmp(out, "..") == 0);
    CHECK_EQ(api_segment_decode("a%2fb", 5, out, sizeof(out)), -EINVAL);
    CHECK_EQ(api_segment_decode("a%2Fb", 5, out, sizeof(out)), -EINVAL);
    CHECK_EQ(api_segment_decode("a%00b", 5, out, sizeof(out)), -EINVAL);
    CHECK_EQ(api_segment_decode("a%", 2, out, sizeof(out)), -EINVAL);
    CHECK_EQ(api_segment_decode("a%4", 3, out, sizeof(out)), -EINVAL);
    CHECK_EQ(api_segment_decode("a%zz", 4, out, sizeof(out)), -EINVAL);
    /* only len bytes are read: the escape is cut by the length */
    CHECK_EQ(api_segment_decode("a%41", 3, out, sizeof(out)), -EINVAL);
    CHECK_EQ(api_segment_decode("a%41", 4, out, sizeof(out)), 0);
    CHECK(strcmp(out, "aA") == 0);
    CHECK_EQ(api_segment_decode("1234567", 7, out, sizeof(out)), 0);
    CHECK_EQ(api_segment_decode("12345678", 8, out, sizeof(out)),
             -ENAMETOOLONG);
    CHECK_EQ(api_segment_decode("", 0, out, sizeof(out)), 0);
    CHECK(out[0] == '\0');
}

static void test_media_type(void)
{
    CHECK(api_media_type_is("application/json", "application/json"));
    CHECK(api_media_type_is("Application/JSON", "application/json"));
    CHECK(api_media_type_is("application/json; charset=utf-8",
                            "application/json"));
    CHECK(api_media_type_is(" application/json ;charset=utf-8",
                            "application/json"));
    CHECK(!api_media_type_is(NULL, "application/json"));
    CHECK(!api_media_type_is("", "application/json"));
    CHECK(!api_media_type_is("text/plain", "application/json"));
    CHECK(!api_media_type_is("application/jsonx", "application/json"));
    CHECK(!api_media_type_is("application/json-seq", "application/json"));
    CHECK(!api_media_type_is("application/x-www-form-urlencoded",
                             "application/json"));
}

static void test_bool(void)
{
    bool b = false;

    CHECK_EQ(api_parse_bool("true", &b), 0);
    CHECK(b);
    CHECK_EQ(api_parse_bool("false", &b), 0);
    CHECK(!b);
    CHECK_EQ(api_parse_bool("1", &b), 0);
    CHECK(b);
    CHECK_EQ(api_parse_bool("0", &b), 0);
    CHECK(!b);
    CHECK_EQ(api_parse_bool(NULL, &b), 0);
    CHECK(b);
    CHECK_EQ(api_parse_bool("yes", &b), -EINVAL);
    CHECK_EQ(api_parse_bool("TRUE1", &b), -EINVAL);
}

static void test_rfc3339(void)
{
    char buf[API_RFC3339_LEN];
    char small[API_RFC3339_LEN - 1];

    CHECK_EQ(api_rfc3339(0, buf, sizeof(buf)), 0);
    CHECK(strcmp(buf, "1970-01-01T00:00:00Z") == 0);
    CHECK_EQ(api_rfc3339(1795309323, buf, sizeof(buf)), 0);
    CHECK(strcmp(buf, "2026-11-22T01:02:03Z") == 0);
    CHECK_EQ(api_rfc3339(951782400, buf, sizeof(buf)), 0); /* leap day */
    CHECK(strcmp(buf, "2000-02-29T00:00:00Z") == 0);
    CHECK_EQ(api_rfc3339(253402300799, buf, sizeof(buf)), 0);
    CHECK(strcmp(buf, "9999-12-31T23:59:59Z") == 0);
    CHECK_EQ(api_rfc3339(253402300800, buf, sizeof(buf)), -EINVAL);
    CHECK_EQ(api_rfc3339(INT64_MAX, buf, sizeof(buf)), -EINVAL);
    CHECK(buf[0] == '\0');
    CHECK_EQ(api_rfc3339(0, small, sizeof(small)), -EINVAL);
}

static void test_errno_status(void)
{
    CHECK_EQ(api_status_from_errno(-EINVAL), 400);
    CHECK_EQ(api_status_from_errno(-EACCES), 403);
    CHECK_EQ(api_status_from_errno(-EPERM), 403);
    CHECK_EQ(api_status_from_errno(-ENOENT), 404);
    CHECK_EQ(api_status_from_errno(-EEXIST), 409);
    CHECK_EQ(api_status_from_errno(-EBUSY), 409);
    CHECK_EQ(api_status_from_errno(-E2BIG), 413);
    CHECK_EQ(api_status_from_errno(-EFBIG), 422);
    CHECK_EQ(api_status_from_errno(-ELOOP), 422);
    CHECK_EQ(api_status_from_errno(-EISDIR), 422);
    CHECK_EQ(api_status_from_errno(-EROFS), 409);
    CHECK_EQ(api_status_from_errno(-ENOMEDIUM), 503);
    CHECK_EQ(api_status_from_errno(-ENOTSUP), 422);
    CHECK_EQ(api_status_from_errno(-ENXIO), 422);
    CHECK_EQ(api_status_from_errno(-ENOSPC), 507);
    CHECK_EQ(api_status_from_errno(-ETIMEDOUT), 504);
    CHECK_EQ(api_status_from_errno(-ECONNREFUSED), 502);
    CHECK_EQ(api_status_from_errno(-EHOSTUNREACH), 502);
    CHECK_EQ(api_status_from_errno(-EIO), 500);
    CHECK_EQ(api_status_from_errno(-ENOMEM), 500);
    CHECK_EQ(api_status_from_errno(0), 500);
    CHECK_EQ(api_status_from_errno(EINVAL), 500); /* positive: a bug */
    CHECK(strcmp(api_status_title(404), "Not Found") == 0);
    CHECK(strcmp(api_status_title(504), "Gateway Timeout") == 0);
    CHECK(strcmp(api_status_title(409), "Conflict") == 0);
    CHECK(strcmp(api_status_title(799), "Error") == 0);
}

int main(void)
{
    test_size_string();
    test_size_bounds();
    test_size_json();
    test_segment();
    test_media_type();
    test_bool();
    test_rfc3339();
    test_errno_status();
    return vd_test_done("test_api_parse");
}
