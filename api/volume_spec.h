/* volume_spec.h — turn POST/PATCH /volumes (and snapshot) JSON bodies into what the
 * volume manager is asked to do, rejecting anything malformed with a
 * message that names the offending member. Pure: no HTTP, no I/O. */
#ifndef VD_API_VOLUME_SPEC_H
#define VD_API_VOLUME_SPEC_H

#include <jansson.h>
#include <stdint.h>

struct vd_error;
struct vd_volume_spec;

/* A full clone's source: POST /volumes {"clone": {...}}. */
struct api_clone_source {
    const char *volume;     /* NULL when the body asks for no clone */
    const char *snapshot;
};

/* Fill spec (and clone, if the body has a "clone" member) from a POST
 * /volumes body. Strings borrow from body, which must outlive them.
 * 0 or -EINVAL with err set. */
int api_spec_from_json(const json_t *body, struct vd_volume_spec *spec,
                       struct api_clone_source *clone, struct vd_error *err);

/* The new size from a PATCH /volumes/{name} body. 0 or -EINVAL. */
int api_resize_from_json(const json_t *body, uint64_t *size,
                         struct vd_error *err);

/* The snapshot name from a POST /volumes/{name}/snapshots body. */
int api_snapshot_from_json(const json_t *body, const char **name,
                           struct vd_error *err);

#endif
