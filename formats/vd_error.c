/* vd_error.c — set and clear control-path error messages. */
#include "vd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vd_error_set(struct vd_error *err, int code, const char *fmt, ...)
{
    if (err == NULL || err->code != 0) {
        return code;
    }
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void vd_error_clear(struct vd_error *err)
{
    if (err != NULL) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
