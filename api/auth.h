/* auth.h — private to api/: who is asking. Bearer tokens from the token
 * file (--api-token-file) and unix-socket peer credentials. */
#ifndef VD_API_AUTH_H
#define VD_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vd_error;
struct api_tokens;

enum api_role {
    API_ROLE_NONE,  /* not authenticated */
    API_ROLE_READ,  /* GET and HEAD only */
    API_ROLE_ADMIN, /* everything */
};

#define API_TOKEN_NAME_MAX 64
#define API_TOKEN_MAX 256 /* longest token, bytes */
#define API_TOKEN_MIN 16  /* shortest token accepted in the file */

/* Read the token file: one "NAME ROLE TOKEN" a line, '#' comments and
 * blank lines ignored. Refused (-EPERM, message says why) if the file is
 * readable or writable by group or others or not owned by the daemon's
 * user; -EINVAL names the first bad line. *out is caller-freed. */
int api_tokens_load(const char *path, struct api_tokens **out,
                    struct vd_error *err);
void api_tokens_free(struct api_tokens *t); /* accepts NULL */
int api_tokens_count(const struct api_tokens *t);

/* The role of the presented token, its name copied to name (namelen
 * bytes). Every entry is compared, each in time independent of where
 * the bytes differ; API_ROLE_NONE if none matches. */
enum api_role api_tokens_check(const struct api_tokens *t,
                               const char *presented, char *name,
                               size_t namelen);

/* The token of an "Authorization: Bearer TOKEN" header value, or NULL
 * if the header is absent or another scheme. */
const char *api_bearer_token(const char *header);

/* The uid of the process at the other end of unix socket fd; 0 or
 * -errno. */
int api_peer_uid(int fd, uid_t *uid);

#endif
