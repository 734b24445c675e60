/* volume_spec.h — turn POST/PATCH /volumes JSON bodies into what the
 * volume manager is asked to do, rejecting anything malformed with a
 * message that names the offending member. Pure: no HTTP, no I/O. */
#ifndef VD_API_VOLUME_SPEC_H
#define VD_API_VOLUME_SPEC_H

#include <jansson.h>
#include <stdint.h>

struct vd_error;
struct vd_volume_spec;

/* Fill spec from a POST /volumes body. Strings in spec borrow from body,
 * which must outlive spec. 0 or -EINVAL with err set. */
int api_spec_from_json(const json_t *body, struct vd_volume_spec *spec,
                       struct vd_error *err);

/* The new size from a PATCH /volumes/{name} body (0 when the body
 * changes only QoS settings). 0 or -EINVAL; *size untouched on failure. */
int api_resize_from_json(const json_t *body, uint64_t *size,
                         struct vd_error *err);

#endif
