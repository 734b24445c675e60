/* fault.c — test-only fault injection for host-file I/O (see fault.h). */
#include "fault.h"

#include <stdlib.h>
#include <string.h>

int vd_fault_armed_;

static struct {
    enum vd_fault_class cls;
    uint64_t nth; /* 0: count only */
    int error;    /* errno, or VD_FAULT_SHORT */
    unsigned flags;
    int fired;                         /* atomic */
    uint64_t count[VD_FAULT_NCLASSES]; /* atomic */
} rule;

static const char *const class_names[VD_FAULT_NCLASSES] = {
    [VD_FAULT_READ] = "read",
    [VD_FAULT_DATA_WRITE] = "data-write",
    [VD_FAULT_META_WRITE] = "meta-write",
    [VD_FAULT_FLUSH] = "flush",
    [VD_FAULT_RESIZE] = "resize",
};

const char *vd_fault_class_name(enum vd_fault_class c)
{
    return (unsigned)c < VD_FAULT_NCLASSES ? class_names[c] : "?";
}

void vd_fault_arm(enum vd_fault_class c, uint64_t nth, int error,
                  unsigned flags)
{
    __atomic_store_n(&vd_fault_armed_, 0, __ATOMIC_SEQ_CST);
    rule.cls = c;
    rule.nth = nth;
    rule.error = error;
    rule.flags = flags;
    rule.fired = 0;
    memset(rule.count, 0, sizeof(rule.count));
    __atomic_store_n(&vd_fault_armed_, 1, __ATOMIC_SEQ_CST);
}

void vd_fault_disarm(void)
{
    __atomic_store_n(&vd_fault_armed_, 0, __ATOMIC_SEQ_CST);
}

uint64_t vd_fault_count(enum vd_fault_class c)
{
    return (unsigned)c < VD_FAULT_NCLASSES
               ? __atomic_load_n(&rule.count[c], __ATOMIC_RELAXED)
               : 0;
}

bool vd_fault_fired(void)
{
    return __atomic_load_n(&rule.fired, __ATOMIC_ACQUIRE) != 0;
}

int vd_fault_hit_(enum vd_fault_class c, size_t *len)
{
    uint64_t n = __atomic_add_fetch(&rule.count[c], 1, __ATOMIC_RELAXED);
    if (rule.nth == 0) {
        return 0;
    }
    if (c == rule.cls && n == rule.nth) {
        __atomic_store_n(&rule.fired, 1, __ATOMIC_RELEASE);
        if (rule.error != VD_FAULT_SHORT) {
            return -rule.error;
        }
        if (c != VD_FAULT_DATA_WRITE && c != VD_FAULT_META_WRITE) {
            return -ENOSPC;
        }
        *len = *len >= 1024 ? *len / 2 / 512 * 512 : 0;
        return 1;
    }
    if ((rule.flags & VD_FAULT_STICKY) && c != VD_FAULT_READ &&
        __atomic_load_n(&rule.fired, __ATOMIC_ACQUIRE)) {
        return -EIO;
    }
    return 0;
}

int vd_fault_arm_spec(const char *spec)
{
    static const struct {
        const char *name;
        int error;
    } errors[] = {
        {"EIO", EIO},
        {"ENOSPC", ENOSPC},
        {"short", VD_FAULT_SHORT},
    };
    char buf[64], *save = NULL, *cls, *nth, *error, *flag, *end;
    unsigned flags = 0;
    unsigned long long n;
    int c, e = 0; /* 0: not found */

    if (spec == NULL || spec[0] == '\0') {
        return 0;
    }
    if (strlen(spec) >= sizeof(buf)) {
        return -EINVAL;
    }
    strcpy(buf, spec);
    cls = strtok_r(buf, ":", &save);
    nth = strtok_r(NULL, ":", &save);
    error = strtok_r(NULL, ":", &save);
    flag = strtok_r(NULL, ":", &save);
    if (cls == NULL || nth == NULL || error == NULL ||
        strtok_r(NULL, ":", &save) != NULL) {
        return -EINVAL;
    }
    for (c = 0; c < VD_FAULT_NCLASSES; c++) {
        if (strcmp(cls, class_names[c]) == 0) {
            break;
        }
    }
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        if (strcmp(error, errors[i].name) == 0) {
            e = errors[i].error;
        }
    }
    n = strtoull(nth, &end, 10);
    if (c == VD_FAULT_NCLASSES || e == 0 || *end != '\0' || nth[0] == '\0') {
        return -EINVAL;
    }
    if (flag != NULL) {
        if (strcmp(flag, "sticky") != 0) {
            return -EINVAL;
        }
        flags |= VD_FAULT_STICKY;
    }
    vd_fault_arm((enum vd_fault_class)c, n, e, flags);
    return 0;
}

int vd_fault_arm_env(void)
{
    return vd_fault_arm_spec(getenv("VDISKD_FAULT"));
}
