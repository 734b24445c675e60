/* parse.h — pure validation helpers for the REST API: sizes, path
 * segments, media types, query booleans, RFC 3339 timestamps.
 *
 * No HTTP here, so every function is unit-tested on its own
 * (tests/unit/test_api_parse.c); the size rules themselves are the
 * volume manager's (vd_volume_size_check). */
#ifndef VD_API_PARSE_H
#define VD_API_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vd_error;

#define API_RFC3339_LEN 21 /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/* Parse a size string: decimal digits and an optional binary unit
 * (K, M, G, T, P, E — optionally followed by "iB" — or "B"), e.g. "10G",
 * "512MiB", "4096". Case-insensitive unit. 0, -EINVAL when malformed,
 * -ERANGE when it does not fit in 64 bits. */
int api_parse_size_string(const char *s, uint64_t *out);

/* Check a volume size by the volume manager's rules (non-zero, a multiple
 * of 512, at most 64 TiB): field names the offending member in the
 * message. 0 or -EINVAL. */
int api_check_size(uint64_t size, const char *field, struct vd_error *err);

/* Read a size member: a JSON integer or a size string, then bounds as
 * api_check_size. 0 or -EINVAL with a message naming field. */
int api_size_from_json(const json_t *v, const char *field, uint64_t *out,
                       struct vd_error *err);

/* Percent-decode one raw path segment of len bytes into out (outlen
 * bytes including the NUL). -EINVAL for a bad escape, an encoded NUL or
 * slash; -ENAMETOOLONG when it does not fit. */
int api_segment_decode(const char *raw, size_t len, char *out, size_t outlen);

/* true if a Content-Type header value names type (case-insensitive,
 * parameters such as "; charset=utf-8" ignored). NULL → false. */
bool api_media_type_is(const char *header, const char *type);

/* "true"/"1" → true, "false"/"0" → false; else -EINVAL. An empty value
 * (as in "?force") counts as true. */
int api_parse_bool(const char *s, bool *out);

/* Format unix seconds as RFC 3339 UTC ("2026-11-22T01:02:03Z") into buf
 * (at least API_RFC3339_LEN bytes). -EINVAL if out of years 0000..9999. */
int api_rfc3339(int64_t t, char *buf, size_t len);

#endif
