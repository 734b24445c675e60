/* vd_error.h — a readable error message for the control path.
 *
 * Control-path functions (open, create, catalog, API) take a
 * `struct vd_error *err` last (may be NULL) and set it once, in the
 * function that failed. The data path never allocates messages. */
#ifndef VD_ERROR_H
#define VD_ERROR_H

struct vd_error {
    int code;      /* negative errno, 0 when unset */
    char msg[512]; /* human readable, NUL terminated */
};

/* Record code and message in err (if err is not NULL and not already set).
 * Returns code, so callers can write `return vd_error_set(err, -EINVAL, ...)`.
 */
int vd_error_set(struct vd_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Forget any recorded error. */
void vd_error_clear(struct vd_error *err);

#endif
