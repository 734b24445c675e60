/* catalog_qos.h — the catalog's record of QoS limits (schema 004): each
 * volume's own limits and group, and the groups themselves. Part of the
 * catalog (catalog.h), apart because only the QoS code needs it. */
#ifndef VD_CATALOG_QOS_H
#define VD_CATALOG_QOS_H

#include "catalog.h"
#include "qos.h"

/* A volume's QoS settings, or a group's (group is then ""). */
struct vd_qos_row {
    char name[VD_NAME_MAX + 1]; /* the volume's or the group's */
    struct vd_qos_limits lim;
    char group[VD_NAME_MAX + 1]; /* the volume's group, "" = none */
    int users;                   /* groups: volumes naming it */
};

/* The volume's settings: no limits and no group if none were stored. */
int vd_catalog_qos_get(struct vd_catalog *cat, const char *volume,
                       struct vd_qos_row *row, struct vd_error *err);
/* Store the volume's settings (row->name); -ENOENT for an unknown volume
 * or group. */
int vd_catalog_qos_put(struct vd_catalog *cat, const struct vd_qos_row *row,
                       struct vd_error *err);

/* Groups. -EEXIST for a duplicate name, -ENOENT for an unknown one,
 * -EBUSY when deleting one that volumes name. */
int vd_catalog_qos_group_insert(struct vd_catalog *cat,
                                const struct vd_qos_row *row,
                                struct vd_error *err);
int vd_catalog_qos_group_update(struct vd_catalog *cat,
                                const struct vd_qos_row *row,
                                struct vd_error *err);
int vd_catalog_qos_group_delete(struct vd_catalog *cat, const char *name,
                                struct vd_error *err);
/* All groups by name (name NULL) or the one named; *rows caller-freed;
 * returns the count. */
int vd_catalog_qos_group_list(struct vd_catalog *cat, const char *name,
                              struct vd_qos_row **rows, struct vd_error *err);

#endif
