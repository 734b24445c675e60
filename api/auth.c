/* auth.c — API tokens and peer credentials.
 *
 * A token file holds "NAME ROLE TOKEN" lines. It is a secret: a file
 * that group or others can read (or write, or that another user owns
 * and could chmod) is refused rather than trusted. Tokens are compared
 * in constant time: every entry, every byte of a fixed-size buffer, no
 * early exit, so the time taken says nothing about how much of a guess
 * was right or which entry it was close to. */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd_error.h"

struct api_token {
    char name[API_TOKEN_NAME_MAX + 1];
    enum api_role role;
    unsigned char secret[API_TOKEN_MAX]; /* zero-padded */
    size_t len;
};

struct api_tokens {
    struct api_token *v;
    int n;
};

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > API_TOKEN_NAME_MAX) {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char)*s) && strchr("_.-@", *s) == NULL) {
            return false;
        }
    }
    return true;
}

/* Tokens are visible ASCII; anything else in a header would be refused
 * by HTTP anyway. */
static bool secret_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s <= ' ' || *s > '~') {
            return false;
        }
    }
    return true;
}

static int parse_line(struct api_tokens *t, char *line, const char *path,
                      int lineno, struct vd_error *err)
{
    char *save = NULL;
    char *name = strtok_r(line, " \t\r\n", &save);
    char *role = name != NULL ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    char *secret = role != NULL ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    struct api_token *e;

    if (name == NULL || name[0] == '#') {
        return 0;
    }
    if (secret == NULL || strtok_r(NULL, " \t\r\n", &save) != NULL) {
        return vd_error_set(err, -EINVAL,
                            "%s line %d: want 'NAME ROLE "
                            "TOKEN' (three words)",
                            path, lineno);
    }
    if (!name_ok(name)) {
        return vd_error_set(err, -EINVAL,
                            "%s line %d: bad token name (want "
                            "1-%d letters, digits, '_.-@')",
                            path, lineno, API_TOKEN_NAME_MAX);
    }
    if (strcmp(role, "admin") != 0 && strcmp(role, "read") != 0) {
        return vd_error_set(err, -EINVAL,
                            "%s line %d: role must be 'admin' "
                            "or 'read', got '%.32s'",
                            path, lineno, role);
    }
    if (strlen(secret) < API_TOKEN_MIN || strlen(secret) >= API_TOKEN_MAX ||
        !secret_ok(secret)) {
        return vd_error_set(err, -EINVAL,
                            "%s line %d: token of '%s' must be "
                            "%d to %d visible ASCII characters (e.g. "
                            "openssl rand -hex 32)",
                            path, lineno, name, API_TOKEN_MIN,
                            API_TOKEN_MAX - 1);
    }
    for (int i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].name, name) == 0 ||
            (t->v[i].len == strlen(secret) &&
             memcmp(t->v[i].secret, secret, t->v[i].len) == 0)) {
            return vd_error_set(err, -EINVAL,
                                "%s line %d: token name or "
                                "token repeated",
                                path, lineno);
        }
    }
    e = realloc(t->v, (size_t)(t->n + 1) * sizeof(*e));
    if (e == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    t->v = e;
    e = &t->v[t->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->role = strcmp(role, "admin") == 0 ? API_ROLE_ADMIN : API_ROLE_READ;
    e->len = strlen(secret);
    memcpy(e->secret, secret, e->len);
    return 0;
}

int api_tokens_load(const char *path, struct api_tokens **out,
                    struct vd_error *err)
{
    struct api_tokens *t = NULL;
    struct stat st;
    char line[1024];
    FILE *f = NULL;
    int fd, lineno = 0, ret;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return vd_error_set(err, -errno, "cannot open token file '%s': %s",
                            path, strerror(errno));
    }
    if (fstat(fd, &st) < 0) {
        ret = vd_error_set(err, -errno, "token file '%s': %s", path,
                           strerror(errno));
        close(fd);
        return ret;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vd_error_set(err, -EINVAL,
                            "token file '%s' is not a regular "
                            "file",
                            path);
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        return vd_error_set(err, -EPERM,
                            "token file '%s' is readable or "
                            "writable by group or others (mode %04o): "
                            "refusing to use it; run chmod 600 '%s'",
                            path, (unsigned)(st.st_mode & 07777), path);
    }
    if (st.st_uid != geteuid()) {
        close(fd);
        return vd_error_set(err, -EPERM,
                            "token file '%s' is owned by uid "
                            "%u, not by the daemon's user (uid %u): refusing "
                            "to use it",
                            path, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    f = fdopen(fd, "r");
    if (f == NULL) {
        close(fd);
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        ret = vd_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            ret = vd_error_set(err, -EINVAL, "%s line %d is too long", path,
                               lineno);
            goto out;
        }
        if ((ret = parse_line(t, line, path, lineno, err)) < 0) {
            goto out;
        }
    }
    if (ferror(f)) {
        ret = vd_error_set(err, -EIO, "reading token file '%s' failed", path);
        goto out;
    }
    if (t->n == 0) {
        ret = vd_error_set(err, -EINVAL, "token file '%s' has no tokens", path);
        goto out;
    }
    explicit_bzero(line, sizeof(line));
    fclose(f);
    *out = t;
    return 0;

out:
    explicit_bzero(line, sizeof(line));
    fclose(f);
    api_tokens_free(t);
    return ret;
}

void api_tokens_free(struct api_tokens *t)
{
    if (t == NULL) {
        return;
    }
    if (t->v != NULL) {
        explicit_bzero(t->v, (size_t)t->n * sizeof(*t->v));
    }
    free(t->v);
    free(t);
}

int api_tokens_count(const struct api_tokens *t)
{
    return t != NULL ? t->n : 0;
}

enum api_role api_tokens_check(const struct api_tokens *t,
                               const char *presented, char *name,
                               size_t namelen)
{
    unsigned char buf[API_TOKEN_MAX] = {0};
    size_t plen;
    int found = -1;

    if (t == NULL || presented == NULL) {
        return API_ROLE_NONE;
    }
    plen = strlen(presented);
    if (plen == 0 || plen >= API_TOKEN_MAX) {
        return API_ROLE_NONE;
    }
    memcpy(buf, presented, plen);
    for (int i = 0; i < t->n; i++) {
        unsigned diff = (unsigned)(t->v[i].len ^ plen);
        for (size_t k = 0; k < API_TOKEN_MAX; k++) {
            diff |= (unsigned)(t->v[i].secret[k] ^ buf[k]);
        }
        /* Branch-free select: mask is all ones when diff == 0. */
        int mask = -(int)(((diff | (0u - diff)) >> 31) ^ 1u);
        found = (found & ~mask) | (i & mask);
    }
    explicit_bzero(buf, sizeof(buf));
    if (found < 0) {
        return API_ROLE_NONE;
    }
    snprintf(name, namelen, "%s", t->v[found].name);
    return t->v[found].role;
}

const char *api_bearer_token(const char *header)
{
    if (header == NULL || strncasecmp(header, "Bearer", 6) != 0 ||
        (header[6] != ' ' && header[6] != '\t')) {
        return NULL;
    }
    header += 6;
    while (*header == ' ' || *header == '\t') {
        header++;
    }
    return header;
}

int api_peer_uid(int fd, uid_t *uid)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        return -errno;
    }
    *uid = cr.uid;
    return 0;
}
