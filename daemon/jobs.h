/* jobs.h — long operations (full clones, imports) that run in a thread of
 * their own and report progress through GET /jobs/{id}. Jobs live in
 * memory, finished ones in a bounded history: a daemon restart forgets
 * finished jobs, and start-up reconciliation removes the half-made volume
 * of an interrupted one. */
#ifndef VD_JOBS_H
#define VD_JOBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vd_error;
struct vd_jobs;

/* How many finished jobs stay listed (GET /jobs, /jobs/{id}). */
#define VD_JOBS_HISTORY 32
struct vd_job;

enum vd_job_state { VD_JOB_RUNNING, VD_JOB_SUCCEEDED, VD_JOB_FAILED };

struct vd_job_info {
    uint64_t id;
    char kind[16];    /* "clone" */
    char target[65];  /* the volume it makes */
    char source[330]; /* what it reads, e.g. "volume/snapshot" */
    enum vd_job_state state;
    uint64_t done, total;            /* bytes */
    char error[512];                 /* when failed */
    int64_t started_at, finished_at; /* unix seconds; 0 = not yet */
};

/* The work of a job. It reports progress with vd_job_progress, stops early
 * when vd_job_cancelled, and returns 0 or -errno (with err set). */
typedef int (*vd_job_fn)(struct vd_job *job, void *arg, struct vd_error *err);

struct vd_jobs *vd_jobs_new(void);
/* Ask running jobs to stop, wait for them, free everything; accepts NULL. */
void vd_jobs_free(struct vd_jobs *jobs);

/* Start fn(arg) in a new thread; free_arg (may be NULL) runs after it. */
int vd_jobs_start(struct vd_jobs *jobs, const char *kind, const char *target,
                  const char *source, vd_job_fn fn, void *arg,
                  void (*free_arg)(void *), uint64_t *id, struct vd_error *err);
/* true while a running job reads source. */
bool vd_jobs_source_busy(struct vd_jobs *jobs, const char *source);
/* -ENOENT if there is no such job (or it left the history). */
int vd_jobs_get(struct vd_jobs *jobs, uint64_t id, struct vd_job_info *out);
/* Every running job and the VD_JOBS_HISTORY newest finished ones, newest
 * first. Returns the count or -ENOMEM; *out is caller-freed. */
int vd_jobs_list(struct vd_jobs *jobs, struct vd_job_info **out);

void vd_job_progress(struct vd_job *job, uint64_t done, uint64_t total);
bool vd_job_cancelled(struct vd_job *job);

/* Add the number of jobs kept in each state s < n to counts[s]. */
void vd_jobs_count(struct vd_jobs *jobs, uint64_t *counts, unsigned n);

#endif
