/* clone.c — full clones: an independent copy of a volume's snapshot,
 * made by a background job.
 *
 * DESIGN NOTES
 * 1. The request is checked and the target's row ('creating') and empty
 *    image are made before 202 is answered; the copy runs as a job.
 * 2. The job opens the source image a second time, read-only, as the
 *    snapshot's view. A snapshot's clusters never change while it exists,
 *    so the copy needs no pause of the source volume's I/O; deleting the
 *    snapshot is refused while a clone of it runs.
 * 3. Only what block_status reports as data is copied: zero and
 *    unallocated runs stay sparse in the target.
 * 4. On success the row turns 'ready' and the volume is published; on
 *    failure the file and row are removed. A crash mid-copy leaves a
 *    'creating' row that start-up removes.
 * 5. The job owns its 'creating' row and file: DELETE refuses a creating
 *    volume (409), and the job names its row by uuid, so it can never
 *    turn ready or remove another volume that took the same name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "jobs.h"
#include "log.h"
#include "vd_error.h"
#include "volume-int.h"

#define COPY_CHUNK (1u << 20)

struct clone_arg {
    struct vd_volmgr *mgr;
    struct vd_volume_row row; /* the target */
    struct vd_volume_row src; /* the source volume */
    char snapshot[256];
};

static int copy_data(struct vd_job *job, struct vd_image *from,
                     struct vd_image *to, struct vd_error *err)
{
    uint64_t size = vd_image_length(from);
    uint64_t off = 0, pnum;
    char *buf = malloc(COPY_CHUNK);
    int ret = 0;

    if (buf == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    vd_job_progress(job, 0, size);
    while (off < size) {
        uint64_t len = size - off < COPY_CHUNK ? size - off : COPY_CHUNK;
        if (vd_job_cancelled(job)) {
            ret = vd_error_set(err, -ECANCELED, "daemon shutting down");
            break;
        }
        int st = vd_image_block_status(from, off, len, &pnum);
        if (st < 0) {
            ret = vd_error_set(err, st,
                               "reading the source's map at %llu: "
                               "%s",
                               (unsigned long long)off, strerror(-st));
            break;
        }
        if (!(st & VD_BS_ZERO)) {
            if ((ret = vd_image_pread(from, buf, pnum, off)) < 0 ||
                (ret = vd_image_pwrite(to, buf, pnum, off)) < 0) {
                vd_error_set(err, ret, "copying at offset %llu: %s",
                             (unsigned long long)off, strerror(-ret));
                break;
            }
        }
        off += pnum;
        vd_job_progress(job, off, size);
    }
    free(buf);
    if (ret == 0 && (ret = vd_image_flush(to)) < 0) {
        vd_error_set(err, ret, "flushing the clone: %s", strerror(-ret));
    }
    return ret;
}

static int clone_job(struct vd_job *job, void *p, struct vd_error *err)
{
    struct clone_arg *a = p;
    struct vd_volmgr *mgr = a->mgr;
    struct vd_image *from = NULL, *to = NULL;
    struct vd_volume *vol = NULL;
    struct vd_open_opts so = {
        .readonly = true,
        .snapshot = a->snapshot,
    };
    int ret;

    vd_volmgr_chain_opts(mgr, &a->src, &so);

    /* Under ctl: no snapshot or resize rewrites the tables being read. */
    pthread_mutex_lock(&mgr->ctl);
    /* a remote source is served by its backend's driver, a file by its
     * format's */
    ret =
        vd_image_open(vd_row_is_file(&a->src) ? a->src.format : a->src.backend,
                      a->src.location, &so, &from, err);
    pthread_mutex_unlock(&mgr->ctl);
    if (ret == 0) {
        ret = vd_volmgr_open_row(mgr, &a->row, false, &to, err);
    }
    if (ret == 0) {
        ret = copy_data(job, from, to, err);
    }
    vd_image_close(from);
    pthread_mutex_lock(&mgr->ctl);
    if (ret == 0 && (ret = vd_catalog_volume_set_state_uuid(
                         mgr->cat, a->row.uuid, VD_STATE_READY, err)) == 0) {
        a->row.state = VD_STATE_READY;
        vol = vd_volume_new(&a->row, to, vd_volmgr_take_ino(mgr));
        if (vol == NULL || vd_volmgr_publish(mgr, vol) < 0) {
            free(vol);
            ret = vd_error_set(err, -ENOMEM, "out of memory");
        } else {
            to = NULL; /* the volume owns it now */
            vd_info("cloned snapshot '%s' of '%s' into volume '%s'",
                    a->snapshot, a->src.name, a->row.name);
        }
    }
    if (ret < 0) {
        vd_image_close(to);
        vd_volmgr_remove_row(mgr, &a->row, NULL);
    }
    pthread_mutex_unlock(&mgr->ctl);
    return ret;
}

int vd_volmgr_clone(struct vd_volmgr *mgr, const struct vd_volume_spec *spec,
                    const char *src_volume, const char *src_snapshot,
                    uint64_t *job_id, struct vd_error *err)
{
    struct vd_volume_row base;
    struct vd_snapshot_view sv;
    struct clone_arg *a = calloc(1, sizeof(*a));
    int ret;

    if (a == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    a->mgr = mgr;
    snprintf(a->snapshot, sizeof(a->snapshot), "%s",
             src_snapshot ? src_snapshot : "");
    ret = vd_volmgr_snapshot_get(mgr, src_volume ? src_volume : "", a->snapshot,
                                 &sv, err);
    if (ret < 0) {
        goto out_free;
    }
    if ((ret = vd_catalog_volume_get(mgr->cat, src_volume, &a->src, err)) < 0) {
        goto out_free;
    }
    struct vd_volume_spec s = *spec;
    s.size = sv.size;
    s.base = NULL;
    s.import_path = NULL;
    if ((ret = vd_volmgr_plan(mgr, &s, &a->row, &base, err)) < 0) {
        goto out_free;
    }
    pthread_mutex_lock(&mgr->ctl);
    ret = vd_catalog_volume_insert(mgr->cat, &a->row, err);
    if (ret == 0) {
        struct vd_create_opts co = {
            .size = a->row.size,
            .cluster_size = spec->cluster_size,
        };
        ret = vd_image_create(a->row.format, a->row.location, &co, err);
        if (ret < 0) {
            vd_catalog_volume_delete_uuid(mgr->cat, a->row.uuid, NULL);
        }
    }
    pthread_mutex_unlock(&mgr->ctl);
    if (ret < 0) {
        goto out_free;
    }
    struct vd_volume_row target = a->row;
    char source[330];
    snprintf(source, sizeof(source), "%s/%s", a->src.name, a->snapshot);
    ret = vd_jobs_start(mgr->jobs, "clone", a->row.name, source, clone_job, a,
                        free, job_id, err);
    if (ret < 0) {
        pthread_mutex_lock(&mgr->ctl);
        vd_volmgr_remove_row(mgr, &target, NULL);
        pthread_mutex_unlock(&mgr->ctl);
        goto out_free;
    }
    return 0;

out_free:
    free(a);
    return ret;
}

int vd_volmgr_job_get(struct vd_volmgr *mgr, uint64_t id,
                      struct vd_job_info *out, struct vd_error *err)
{
    if (vd_jobs_get(mgr->jobs, id, out) < 0) {
        return vd_error_set(err, -ENOENT, "no job with id %llu",
                            (unsigned long long)id);
    }
    return 0;
}

int vd_volmgr_job_list(struct vd_volmgr *mgr, struct vd_job_info **out,
                       struct vd_error *err)
{
    int n = vd_jobs_list(mgr->jobs, out);
    if (n < 0) {
        return vd_error_set(err, n, "out of memory listing jobs");
    }
    return n;
}
