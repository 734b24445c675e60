/* volume_spec.c — validate POST/PATCH /volumes bodies (see
 * volume_spec.h).
 *
 * Checks are about the shape of the request only: types, known members,
 * name syntax, size bounds. Which formats and backend types exist, what
 * each needs (a size, a uri), whether a base exists or an import path is
 * allowed is the volume manager's business. */
#include "volume_spec.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "vd_error.h"
#include "volume.h"

#define CLUSTER_SIZE_MAX (1U << 30)

/* -EINVAL naming the first member of obj not in the NULL-terminated
 * list; where prefixes nested members ("backend."). */
static int check_members(const json_t *obj, const char *const *known,
                         const char *where, struct vd_error *err)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        const char *const *k = known;
        while (*k != NULL && strcmp(*k, key) != 0) {
            k++;
        }
        if (*k == NULL) {
            return vd_error_set(err, -EINVAL, "unknown member '%s%.64s'", where,
                                key);
        }
    }
    return 0;
}

/* A string member; absent → *out untouched. Empty strings and strings
 * with embedded NULs are rejected. */
static int get_string(const json_t *obj, const char *key, const char *label,
                      const char **out, struct vd_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v)) {
        return vd_error_set(err, -EINVAL, "'%s' must be a string", label);
    }
    if (json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return vd_error_set(err, -EINVAL, "'%s' must be a non-empty string",
                            label);
    }
    *out = json_string_value(v);
    return 0;
}

static int check_name(const char *name, const char *label, struct vd_error *err)
{
    if (!vd_volume_name_valid(name)) {
        return vd_error_set(err, -EINVAL,
                            "'%s' must match [a-z0-9][a-z0-9_.-]{0,63}, got "
                            "\"%.80s\"",
                            label, name);
    }
    return 0;
}

static int parse_backend(const json_t *b, struct vd_volume_spec *spec,
                         struct vd_error *err)
{
    static const char *const known[] = {"type", "uri",   "cluster",
                                        "pool", "image", NULL};
    const char *type = NULL;

    if (!json_is_object(b)) {
        return vd_error_set(err, -EINVAL, "'backend' must be an object");
    }
    if (check_members(b, known, "backend.", err) < 0 ||
        get_string(b, "type", "backend.type", &type, err) < 0 ||
        get_string(b, "uri", "backend.uri", &spec->backend_uri, err) < 0 ||
        get_string(b, "cluster", "backend.cluster", &spec->backend_cluster,
                   err) < 0 ||
        get_string(b, "pool", "backend.pool", &spec->backend_pool, err) < 0 ||
        get_string(b, "image", "backend.image", &spec->backend_image, err) <
            0) {
        return -EINVAL;
    }
    if (type == NULL) {
        return vd_error_set(err, -EINVAL, "'backend.type' is required");
    }
    /* Which types exist and whether they take a uri or cluster, pool and
     * image (a distributed store such as RBD) is the volume manager's
     * business: it asks the driver registry, whose driver checks the
     * names (vd_driver.locate). */
    spec->backend_type = type;
    return 0;
}

static int parse_import(const json_t *imp, struct vd_volume_spec *spec,
                        struct vd_error *err)
{
    static const char *const known[] = {"path", NULL};
    const char *path = NULL;

    if (!json_is_object(imp)) {
        return vd_error_set(err, -EINVAL, "'import' must be an object");
    }
    if (check_members(imp, known, "import.", err) < 0 ||
        get_string(imp, "path", "import.path", &path, err) < 0) {
        return -EINVAL;
    }
    if (path == NULL) {
        return vd_error_set(err, -EINVAL, "'import.path' is required");
    }
    if (path[0] != '/') {
        return vd_error_set(err, -EINVAL,
                            "'import.path' must be an absolute path");
    }
    if (strlen(path) >= PATH_MAX) {
        return vd_error_set(err, -EINVAL, "'import.path' is too long");
    }
    spec->import_path = path;
    return 0;
}

/* "source": {"volume": V, "snapshot": S} — a full clone. */
static int parse_source(const json_t *src, struct vd_volume_spec *spec,
                        struct vd_error *err)
{
    static const char *const known[] = {"volume", "snapshot", NULL};
    if (!json_is_object(src)) {
        return vd_error_set(err, -EINVAL, "'source' must be an object");
    }
    if (check_members(src, known, "source.", err) < 0 ||
        get_string(src, "volume", "source.volume", &spec->source_volume, err) <
            0 ||
        get_string(src, "snapshot", "source.snapshot", &spec->source_snapshot,
                   err) < 0) {
        return -EINVAL;
    }
    if (spec->source_volume == NULL || spec->source_snapshot == NULL) {
        return vd_error_set(err, -EINVAL,
                            "'source' needs both 'volume' and "
                            "'snapshot'");
    }
    if (check_name(spec->source_volume, "source.volume", err) < 0 ||
        check_name(spec->source_snapshot, "source.snapshot", err) < 0) {
        return -EINVAL;
    }
    return 0;
}

/* A uid or gid member: an integer that names an id (not -1). */
static int get_id(const json_t *obj, const char *key, bool *has, uint32_t *out,
                  struct vd_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 4294967294LL) {
        return vd_error_set(
            err, -EINVAL, "'%s' must be an integer from 0 to 4294967294", key);
    }
    *has = true;
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

/* "owner": "user[:group]", "uid", "gid" and "mode": "0640" (octal
 * permission bits in a string, as chmod takes them). Who the names are
 * is the volume manager's to resolve. */
static int parse_owner(const json_t *body, struct vd_owner_req *own,
                       struct vd_error *err)
{
    const char *mode = NULL;
    if (get_string(body, "owner", "owner", &own->owner, err) < 0 ||
        get_id(body, "uid", &own->has_uid, &own->uid, err) < 0 ||
        get_id(body, "gid", &own->has_gid, &own->gid, err) < 0 ||
        get_string(body, "mode", "mode", &mode, err) < 0) {
        return -EINVAL;
    }
    if (own->owner != NULL && strlen(own->owner) > 256) {
        return vd_error_set(err, -EINVAL, "'owner' is too long");
    }
    if (mode != NULL) {
        size_t n = strspn(mode, "01234567");
        char *end;
        unsigned long m = strtoul(mode, &end, 8);
        if (n == 0 || n > 4 || mode[n] != '\0' || m > 0777) {
            return vd_error_set(err, -EINVAL,
                                "'mode' must be octal permission bits from "
                                "\"0000\" to \"0777\", got \"%.16s\"",
                                mode);
        }
        own->has_mode = true;
        own->mode = (uint32_t)m;
    }
    return 0;
}

int api_spec_from_json(const json_t *body, struct vd_volume_spec *spec,
                       struct vd_error *err)
{
    static const char *const known[] = {
        "name", "size",   "format", "backend",   "cluster_size",
        "base", "import", "source", "owner",     "uid",
        "gid",  "mode",   "qos",    "qos_group", NULL};
    json_t *v;

    *spec = (struct vd_volume_spec){0};
    if (!json_is_object(body)) {
        return vd_error_set(err, -EINVAL, "the body must be a JSON object");
    }
    if (check_members(body, known, "", err) < 0) {
        return -EINVAL;
    }

    if (get_string(body, "name", "name", &spec->name, err) < 0) {
        return -EINVAL;
    }
    if (spec->name == NULL) {
        return vd_error_set(err, -EINVAL, "'name' is required");
    }
    if (check_name(spec->name, "name", err) < 0) {
        return -EINVAL;
    }

    if (get_string(body, "format", "format", &spec->format, err) < 0) {
        return -EINVAL;
    }

    v = json_object_get(body, "backend");
    if (v != NULL && parse_backend(v, spec, err) < 0) {
        return -EINVAL;
    }

    v = json_object_get(body, "cluster_size");
    if (v != NULL) {
        json_int_t cs;
        if (!json_is_integer(v)) {
            return vd_error_set(err, -EINVAL,
                                "'cluster_size' must be an integer");
        }
        cs = json_integer_value(v);
        if (cs <= 0 || cs > CLUSTER_SIZE_MAX) {
            return vd_error_set(err, -EINVAL,
                                "'cluster_size' must be between 1 and %u, got "
                                "%" JSON_INTEGER_FORMAT,
                                CLUSTER_SIZE_MAX, cs);
        }
        spec->cluster_size = (uint32_t)cs;
    }

    if (get_string(body, "base", "base", &spec->base, err) < 0) {
        return -EINVAL;
    }
    if (spec->base != NULL && check_name(spec->base, "base", err) < 0) {
        return -EINVAL;
    }

    v = json_object_get(body, "import");
    if (v != NULL && parse_import(v, spec, err) < 0) {
        return -EINVAL;
    }
    v = json_object_get(body, "source");
    if (v != NULL && parse_source(v, spec, err) < 0) {
        return -EINVAL;
    }
    if ((spec->base != NULL) + (spec->import_path != NULL) +
            (spec->source_volume != NULL) >
        1) {
        return vd_error_set(err, -EINVAL,
                            "'base', 'import' and 'source' "
                            "cannot be used together");
    }
    if (spec->source_volume != NULL &&
        (spec->backend_type != NULL || json_object_get(body, "size"))) {
        return vd_error_set(err, -EINVAL,
                            "a clone from 'source' takes its "
                            "size and backend from the snapshot");
    }

    if (parse_owner(body, &spec->own, err) < 0) {
        return -EINVAL;
    }

    v = json_object_get(body, "size");
    if (v != NULL && api_size_from_json(v, "size", &spec->size, err) < 0) {
        return -EINVAL;
    }
    /* A missing size is the volume manager's to judge: a remote
     * backend's size comes from its server. */
    return 0;
}

int api_patch_from_json(const json_t *body, uint64_t *size,
                        struct vd_owner_req *own, struct vd_error *err)
{
    static const char *const known[] = {"size", "owner", "uid",       "gid",
                                        "mode", "qos",   "qos_group", NULL};
    struct vd_owner_req o = {0};
    uint64_t sz = 0;
    json_t *v;

    if (!json_is_object(body)) {
        return vd_error_set(err, -EINVAL, "the body must be a JSON object");
    }
    if (check_members(body, known, "", err) < 0) {
        return -EINVAL;
    }
    v = json_object_get(body, "size");
    if (v != NULL && api_size_from_json(v, "size", &sz, err) < 0) {
        return -EINVAL;
    }
    if (parse_owner(body, &o, err) < 0) {
        return -EINVAL;
    }
    if (v == NULL && o.owner == NULL && !o.has_uid && !o.has_gid &&
        !o.has_mode && json_object_get(body, "qos") == NULL &&
        json_object_get(body, "qos_group") == NULL) {
        return vd_error_set(err, -EINVAL,
                            "'size' is required, or one of 'owner', 'uid', "
                            "'gid', 'mode', 'qos', 'qos_group'");
    }
    *size = sz;
    *own = o;
    return 0;
}
