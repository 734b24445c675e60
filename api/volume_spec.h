/* volume_spec.h — turn POST/PATCH /volumes JSON bodies into what the
 * volume manager is asked to do, rejecting anything malformed with a
 * message that names the offending member. Pure: no HTTP, no I/O. */
#ifndef VD_API_VOLUME_SPEC_H
#define VD_API_VOLUME_SPEC_H

#include <jansson.h>
#include <stdint.h>

struct vd_error;
struct vd_owner_req;
struct vd_volume_spec;

/* Fill spec from a POST /volumes body. Strings in spec borrow from body,
 * which must outlive spec. 0 or -EINVAL with err set. */
int api_spec_from_json(const json_t *body, struct vd_volume_spec *spec,
                       struct vd_error *err);

/* What a PATCH /volumes/{name} body asks for: a new size (*size, 0 =
 * unchanged) and a new owner or mode (own, zeroed = unchanged); its QoS
 * members are api_qos_from_body's. At least one member is required. Strings in
 * own borrow from body. 0 or -EINVAL. */
int api_patch_from_json(const json_t *body, uint64_t *size,
                        struct vd_owner_req *own, struct vd_error *err);

#endif
