/* test_registry.c — the driver table keeps its promises: every declared
 * capability has the members it needs, no member is left undeclared,
 * and the name lists in error messages come from the table. */
#include <stdio.h>
#include <string.h>

#include "image.h"
#include "vd_test.h"

static void check_driver(const struct vd_driver *d)
{
    unsigned caps = vd_driver_caps(d);
    bool snaps = d->snapshot_create != NULL && d->snapshot_list != NULL &&
                 d->snapshot_delete != NULL && d->snapshot_revert != NULL;

    fprintf(stderr, "driver %s: caps 0x%x\n", d->name, caps);
    CHECK(d->name != NULL && d->open != NULL && d->close != NULL &&
          d->pread != NULL && d->length != NULL);
    /* declared => present */
    CHECK(!(caps & VD_CAP_CREATE) || d->create != NULL);
    CHECK(!(caps & VD_CAP_GROW) || d->truncate != NULL);
    CHECK(!(caps & VD_CAP_SNAPSHOTS) || snaps);
    CHECK(!(caps & VD_CAP_SNAPSHOT_VIEWS) || d->snapshot_list != NULL);
    CHECK(!(caps & VD_CAP_CHANGES) || d->snapshot_changes != NULL);
    /* a remote clone lives beside its base: located by its parts */
    CHECK(!(caps & (VD_CAP_BASE | VD_CAP_CHEAP_CLONE)) || d->is_file ||
          (d->locate != NULL && d->location_parts != NULL));
    CHECK(!(caps & VD_CAP_CHEAP_CLONE) || (caps & VD_CAP_CREATE));
    /* present => declared: a member nobody may reach is a mistake */
    CHECK(d->create == NULL || (caps & VD_CAP_CREATE));
    CHECK(d->truncate == NULL || (caps & VD_CAP_GROW));
    CHECK(d->snapshot_list == NULL || (caps & VD_CAP_SNAPSHOTS));
    CHECK(d->snapshot_changes == NULL || (caps & VD_CAP_CHANGES));
    /* one lookup by name finds it */
    CHECK(vd_driver_find(d->name) == d);
}

int main(void)
{
    const struct vd_driver *const *d = vd_driver_list();
    char names[256];
    int n = 0;

    for (; d[n] != NULL; n++) {
        check_driver(d[n]);
    }
    CHECK(n >= 2);
    CHECK(vd_driver_find("nosuch") == NULL);
    CHECK(vd_driver_find(NULL) == NULL);

    vd_driver_names(VD_CAP_CREATE, true, names, sizeof(names));
    CHECK(strcmp(names, "qcow2, raw") == 0);
    vd_driver_names(VD_CAP_CREATE | VD_CAP_CHEAP_CLONE, true, names,
                    sizeof(names));
    CHECK(strcmp(names, "qcow2") == 0);
    vd_driver_names(VD_CAP_BASE, true, names, sizeof(names));
    CHECK(strcmp(names, "qcow2, raw") == 0);
    vd_driver_names(0, false, names, sizeof(names));
    {
        /* every remote driver built in, in registry order */
        char want[64] = "";
        const char *remote[] = {"nbd", "rbd"};
        for (size_t i = 0; i < 2; i++) {
            if (vd_driver_find(remote[i]) != NULL) {
                snprintf(want + strlen(want), sizeof(want) - strlen(want),
                         "%s%s", want[0] != '\0' ? ", " : "", remote[i]);
            }
        }
        CHECK(strcmp(names, want) == 0);
    }
    /* a short buffer is cut, never overrun, and stays terminated */
    char small[8];
    memset(small, 'x', sizeof(small));
    vd_driver_names(VD_CAP_CREATE, true, small, 6);
    CHECK(strlen(small) < 6 && small[6] == 'x');
    return vd_test_done("test_registry");
}
