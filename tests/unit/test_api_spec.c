/* test_api_spec.c — POST/PATCH /volumes body validation: what a good
 * body turns into, and that each bad one is refused with a message that
 * names the offending member. */
#include <errno.h>
#include <string.h>

#include "vd_error.h"
#include "vd_test.h"
#include "volume.h"
#include "volume_spec.h"

static json_t *doc;

/* Parse text into spec; returns the result and leaves the message in err. */
static int spec(const char *text, struct vd_volume_spec *s,
                struct vd_error *err)
{
    json_error_t jerr;
    json_decref(doc);
    doc = json_loads(text, JSON_DECODE_ANY, &jerr);
    vd_error_clear(err);
    if (doc == NULL) {
        fprintf(stderr, "test JSON does not parse: %s\n", text);
        return -999;
    }
    return api_spec_from_json(doc, s, err);
}

#define BAD(text, needle)                                                      \
    do {                                                                       \
        struct vd_volume_spec s_;                                              \
        struct vd_error e_ = {0};                                              \
        CHECK_EQ(spec(text, &s_, &e_), -EINVAL);                               \
        CHECK(strstr(e_.msg, needle) != NULL);                                 \
        if (strstr(e_.msg, needle) == NULL) {                                  \
            fprintf(stderr, "  %s -> '%s', want '%s'\n", text, e_.msg,         \
                    needle);                                                   \
        }                                                                      \
    } while (0)

static void test_good(void)
{
    struct vd_volume_spec s;
    struct vd_error err = {0};

    CHECK_EQ(spec("{\"name\": \"v1\", \"size\": \"10G\"}", &s, &err), 0);
    CHECK(strcmp(s.name, "v1") == 0);
    CHECK_EQ(s.size, 10ULL << 30);
    CHECK(s.format == NULL && s.backend_type == NULL && s.base == NULL &&
          s.import_path == NULL && s.backend_uri == NULL);
    CHECK_EQ(s.cluster_size, 0);
    CHECK(s.own.owner == NULL && !s.own.has_uid && !s.own.has_gid &&
          !s.own.has_mode);

    CHECK_EQ(spec("{\"name\": \"v2\", \"size\": 512, \"owner\": \"qemu\", "
                  "\"gid\": 36, \"mode\": \"600\"}",
                  &s, &err),
             0);
    CHECK(s.own.owner != NULL && strcmp(s.own.owner, "qemu") == 0);
    CHECK(s.own.has_gid && s.own.gid == 36 && !s.own.has_uid);
    CHECK(s.own.has_mode && s.own.mode == 0600);

    CHECK_EQ(spec("{\"name\": \"a.b-c_d\", \"size\": 10737418240, "
                  "\"format\": \"qcow2\", \"cluster_size\": 65536, "
                  "\"backend\": {\"type\": \"file\"}}",
                  &s, &err),
             0);
    CHECK_EQ(s.size, 10737418240ULL);
    CHECK(strcmp(s.format, "qcow2") == 0);
    CHECK(strcmp(s.backend_type, "file") == 0);
    CHECK_EQ(s.cluster_size, 65536);

    CHECK_EQ(spec("{\"name\": \"n\", \"size\": \"1T\", \"backend\": "
                  "{\"type\": \"nbd\", \"uri\": \"nbd://h:10809/e\"}}",
                  &s, &err),
             0);
    CHECK(strcmp(s.backend_type, "nbd") == 0);
    CHECK(strcmp(s.backend_uri, "nbd://h:10809/e") == 0);

    /* A distributed store's image by parts; the parse only takes them. */
    CHECK_EQ(spec("{\"name\": \"r\", \"backend\": {\"type\": \"rbd\", "
                  "\"cluster\": \"c1\", \"pool\": \"rbd\", "
                  "\"image\": \"vm-disk\"}}",
                  &s, &err),
             0);
    CHECK(strcmp(s.backend_type, "rbd") == 0 && s.backend_uri == NULL);
    CHECK(strcmp(s.backend_cluster, "c1") == 0);
    CHECK(strcmp(s.backend_pool, "rbd") == 0);
    CHECK(strcmp(s.backend_image, "vm-disk") == 0);
    CHECK_EQ(s.size, 0);

    /* size may be left out for clones and imports */
    CHECK_EQ(spec("{\"name\": \"c\", \"base\": \"tmpl\"}", &s, &err), 0);
    CHECK(strcmp(s.base, "tmpl") == 0);
    CHECK_EQ(s.size, 0);
    CHECK_EQ(spec("{\"name\": \"i\", \"import\": {\"path\": \"/srv/x.img\"}}",
                  &s, &err),
             0);
    CHECK(strcmp(s.import_path, "/srv/x.img") == 0);
    CHECK(s.source_volume == NULL && s.source_snapshot == NULL);
    CHECK_EQ(err.code, 0);

    /* a full clone takes its size from the snapshot */
    CHECK_EQ(spec("{\"name\": \"c\", \"format\": \"qcow2\", \"source\": "
                  "{\"volume\": \"v1\", \"snapshot\": \"s1\"}}",
                  &s, &err),
             0);
    CHECK(s.source_volume != NULL && strcmp(s.source_volume, "v1") == 0);
    CHECK(s.source_snapshot != NULL && strcmp(s.source_snapshot, "s1") == 0);
    CHECK(strcmp(s.format, "qcow2") == 0);
    CHECK_EQ(s.size, 0);

    /* a remote backend's size comes from its server */
    CHECK_EQ(spec("{\"name\": \"n\", \"backend\": {\"type\": \"nbd\", "
                  "\"uri\": \"nbd://h/e\"}}",
                  &s, &err),
             0);
    CHECK_EQ(s.size, 0);
}

static void test_bad(void)
{
    BAD("[]", "JSON object");
    BAD("{\"size\": 512}", "'name' is required");
    BAD("{\"name\": null, \"size\": 512}", "'name' must be a string");
    BAD("{\"name\": \"\", \"size\": 512}", "'name'");
    BAD("{\"name\": \"..\", \"size\": 512}", "'name' must match");
    BAD("{\"name\": \"a/b\", \"size\": 512}", "'name' must match");
    BAD("{\"name\": \"A\", \"size\": 512}", "'name' must match");
    BAD("{\"name\": \"a\", \"size\": 512, \"extra\": 1}", "'extra'");
    BAD("{\"name\": \"a\", \"size\": 0}", "greater than zero");
    BAD("{\"name\": \"a\", \"size\": -1}", "negative");
    BAD("{\"name\": \"a\", \"size\": 100}", "multiple of 512");
    BAD("{\"name\": \"a\", \"size\": \"65T\"}", "64 TiB");
    BAD("{\"name\": \"a\", \"size\": 2.5}", "integer");
    BAD("{\"name\": \"a\", \"size\": \"2.5G\"}", "'size'");
    BAD("{\"name\": \"a\", \"size\": 512, \"format\": \"\"}", "'format'");
    BAD("{\"name\": \"a\", \"size\": 512, \"backend\": []}", "'backend'");
    BAD("{\"name\": \"a\", \"size\": 512, \"backend\": {}}",
        "'backend.type' is required");
    BAD("{\"name\": \"a\", \"size\": 512, \"backend\": {\"type\": \"nbd\", "
        "\"uri\": \"u\", \"port\": 1}}",
        "'backend.port'");
    BAD("{\"name\": \"a\", \"backend\": {\"type\": \"rbd\", "
        "\"pool\": 7}}",
        "'backend.pool' must be a string");
    BAD("{\"name\": \"a\", \"backend\": {\"type\": \"rbd\", "
        "\"pool\": \"p\", \"image\": \"\"}}",
        "'backend.image'");
    BAD("{\"name\": \"a\", \"size\": 512, \"cluster_size\": 0}",
        "'cluster_size'");
    BAD("{\"name\": \"a\", \"size\": 512, \"cluster_size\": 4294967296}",
        "'cluster_size'");
    BAD("{\"name\": \"a\", \"size\": 512, \"cluster_size\": \"64K\"}",
        "'cluster_size' must be an integer");
    BAD("{\"name\": \"a\", \"base\": \"B\"}", "'base' must match");
    BAD("{\"name\": \"a\", \"import\": {\"path\": \"x\"}}", "absolute");
    BAD("{\"name\": \"a\", \"import\": {}}", "'import.path' is required");
    BAD("{\"name\": \"a\", \"import\": {\"path\": \"/x\", \"y\": 1}}",
        "'import.y'");
    BAD("{\"name\": \"a\", \"base\": \"b\", \"import\": {\"path\": \"/x\"}}",
        "together");
    BAD("{\"name\": \"a\", \"source\": \"v1\"}", "'source' must be an object");
    BAD("{\"name\": \"a\", \"source\": {\"volume\": \"v1\"}}", "'snapshot'");
    BAD("{\"name\": \"a\", \"source\": {\"volume\": \"v1\", \"snapshot\": "
        "\"s\", \"x\": 1}}",
        "'source.x'");
    BAD("{\"name\": \"a\", \"source\": {\"volume\": \"..\", \"snapshot\": "
        "\"s\"}}",
        "'source.volume'");
    BAD("{\"name\": \"a\", \"source\": {\"volume\": \"v\", \"snapshot\": "
        "\"S S\"}}",
        "'source.snapshot'");
    BAD("{\"name\": \"a\", \"size\": 512, \"source\": {\"volume\": \"v\", "
        "\"snapshot\": \"s\"}}",
        "size");
    BAD("{\"name\": \"a\", \"base\": \"b\", \"source\": {\"volume\": \"v\", "
        "\"snapshot\": \"s\"}}",
        "together");
    BAD("{\"name\": \"a\", \"backend\": {\"type\": \"nbd\", \"uri\": \"u\"}, "
        "\"source\": {\"volume\": \"v\", \"snapshot\": \"s\"}}",
        "backend");
}

/* Which formats and backend types exist, and what each needs, is the
 * volume manager's to judge (it asks the driver registry; test_volume.c):
 * the parser passes these on untouched. */
static void test_passed_on(void)
{
    struct vd_volume_spec s;
    struct vd_error err = {0};

    CHECK_EQ(spec("{\"name\": \"a\"}", &s, &err), 0);
    CHECK_EQ(s.size, 0);
    CHECK_EQ(
        spec("{\"name\": \"a\", \"size\": 512, \"format\": \"vdi\"}", &s, &err),
        0);
    CHECK(strcmp(s.format, "vdi") == 0);
    CHECK_EQ(spec("{\"name\": \"a\", \"backend\": {\"type\": \"rbd\", "
                  "\"uri\": \"rbd:pool/img\"}}",
                  &s, &err),
             0);
    CHECK(strcmp(s.backend_type, "rbd") == 0);
    CHECK(strcmp(s.backend_uri, "rbd:pool/img") == 0);
    CHECK_EQ(spec("{\"name\": \"a\", \"size\": 512, \"backend\": {\"type\": "
                  "\"file\", \"uri\": \"u\"}}",
                  &s, &err),
             0);
}

static void test_patch(void)
{
    struct vd_error err = {0};
    struct vd_owner_req own;
    json_error_t jerr;
    uint64_t size = 0;
    json_t *j;

    j = json_loads("{\"size\": \"20G\"}", 0, &jerr);
    CHECK_EQ(api_patch_from_json(j, &size, &own, &err), 0);
    CHECK_EQ(size, 20ULL << 30);
    CHECK(own.owner == NULL && !own.has_uid && !own.has_gid && !own.has_mode);
    json_decref(j);

    j = json_loads("{}", 0, &jerr);
    CHECK_EQ(api_patch_from_json(j, &size, &own, &err), -EINVAL);
    CHECK(strstr(err.msg, "'size' is required, or one of") != NULL);
    json_decref(j);

    vd_error_clear(&err);
    j = json_loads("{\"size\": 512, \"name\": \"x\"}", 0, &jerr);
    CHECK_EQ(api_patch_from_json(j, &size, &own, &err), -EINVAL);
    CHECK(strstr(err.msg, "'name'") != NULL);
    json_decref(j);

    vd_error_clear(&err);
    size = 20ULL << 30;
    j = json_loads("{\"size\": 513}", 0, &jerr);
    CHECK_EQ(api_patch_from_json(j, &size, &own, &err), -EINVAL);
    json_decref(j);
    CHECK_EQ(size, 20ULL << 30); /* untouched on failure */

    /* Ownership alone: the size stays (0 = unchanged). */
    vd_error_clear(&err);
    j = json_loads("{\"owner\": \"libvirt-qemu:kvm\", \"mode\": \"0640\", "
                   "\"uid\": 64055}",
                   0, &jerr);
    CHECK_EQ(api_patch_from_json(j, &size, &own, &err), 0);
    CHECK_EQ(size, 0);
    CHECK(own.owner != NULL && strcmp(own.owner, "libvirt-qemu:kvm") == 0);
    CHECK(own.has_mode && own.mode == 0640);
    CHECK(own.has_uid && own.uid == 64055 && !own.has_gid);
    json_decref(j);

    static const char *const bad[] = {
        "{\"mode\": \"0888\"}", "{\"mode\": 420}",     "{\"mode\": \"01777\"}",
        "{\"mode\": \"\"}",     "{\"uid\": -1}",       "{\"gid\": \"0\"}",
        "{\"owner\": 5}",       "{\"mode\": \"07 \"}", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        vd_error_clear(&err);
        j = json_loads(bad[i], 0, &jerr);
        CHECK_EQ(api_patch_from_json(j, &size, &own, &err), -EINVAL);
        json_decref(j);
    }

    /* QoS settings alone: no size to change. */
    vd_error_clear(&err);
    j = json_loads("{\"qos\": {\"iops\": 5}}", 0, &jerr);
    CHECK_EQ(api_patch_from_json(j, &size, &own, &err), 0);
    CHECK_EQ(size, 0);
    json_decref(j);
}

int main(void)
{
    test_good();
    test_bad();
    test_passed_on();
    test_patch();
    json_decref(doc);
    return vd_test_done("test_api_spec");
}
