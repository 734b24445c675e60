/* schema.h — the catalog migrations compiled into the binary.
 * vd_migrations[i] brings the schema from user_version i to i + 1. */
#ifndef VD_SCHEMA_H
#define VD_SCHEMA_H

struct vd_migration {
    const char *file; /* e.g. "001_init.sql" */
    const char *sql;
};

extern const struct vd_migration vd_migrations[];
extern const int vd_migration_count;

#endif
