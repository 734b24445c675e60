/* jobs.c — a registry of long operations, each on its own thread.
 * `lock` protects the list and every job's info; the worker writes its
 * progress under it and the API reads a copy. */
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "vd_error.h"

struct vd_job {
    struct vd_jobs *jobs;
    struct vd_job_info info; /* jobs->lock */
    pthread_t thread;
    vd_job_fn fn;
    void *arg;
    void (*free_arg)(void *);
    struct vd_job *next;
};

struct vd_jobs {
    pthread_mutex_t lock;
    struct vd_job *list; /* newest first */
    uint64_t next_id;
    atomic_bool stopping;
};

struct vd_jobs *vd_jobs_new(void)
{
    struct vd_jobs *jobs = calloc(1, sizeof(*jobs));
    if (jobs != NULL) {
        pthread_mutex_init(&jobs->lock, NULL);
        jobs->next_id = 1;
    }
    return jobs;
}

void vd_jobs_free(struct vd_jobs *jobs)
{
    if (jobs == NULL) {
        return;
    }
    atomic_store(&jobs->stopping, true);
    for (struct vd_job *j = jobs->list, *next; j != NULL; j = next) {
        next = j->next;
        pthread_join(j->thread, NULL);
        free(j);
    }
    pthread_mutex_destroy(&jobs->lock);
    free(jobs);
}

static void *job_main(void *p)
{
    struct vd_job *job = p;
    struct vd_error err = {0};
    int ret = job->fn(job, job->arg, &err);

    if (job->free_arg != NULL) {
        job->free_arg(job->arg);
    }
    pthread_mutex_lock(&job->jobs->lock);
    job->info.finished_at = (int64_t)time(NULL);
    if (ret < 0) {
        job->info.state = VD_JOB_FAILED;
        snprintf(job->info.error, sizeof(job->info.error), "%s",
                 err.code ? err.msg : strerror(-ret));
    } else {
        job->info.state = VD_JOB_SUCCEEDED;
        job->info.done = job->info.total;
    }
    pthread_mutex_unlock(&job->jobs->lock);
    if (ret < 0) {
        vd_err("job %llu (%s of '%s') failed: %s",
               (unsigned long long)job->info.id, job->info.kind,
               job->info.target, job->info.error);
    } else {
        vd_info("job %llu (%s of '%s') finished",
                (unsigned long long)job->info.id, job->info.kind,
                job->info.target);
    }
    return NULL;
}

int vd_jobs_start(struct vd_jobs *jobs, const char *kind, const char *target,
                  const char *source, vd_job_fn fn, void *arg,
                  void (*free_arg)(void *), uint64_t *id, struct vd_error *err)
{
    struct vd_job *job = calloc(1, sizeof(*job));
    int r;
    if (job == NULL) {
        return vd_error_set(err, -ENOMEM, "out of memory");
    }
    job->jobs = jobs;
    job->fn = fn;
    job->arg = arg;
    job->free_arg = free_arg;
    snprintf(job->info.kind, sizeof(job->info.kind), "%s", kind);
    snprintf(job->info.target, sizeof(job->info.target), "%s", target);
    snprintf(job->info.source, sizeof(job->info.source), "%s", source);
    job->info.state = VD_JOB_RUNNING;
    job->info.started_at = (int64_t)time(NULL);

    pthread_mutex_lock(&jobs->lock);
    job->info.id = jobs->next_id++;
    r = pthread_create(&job->thread, NULL, job_main, job);
    if (r == 0) {
        job->next = jobs->list;
        jobs->list = job;
        *id = job->info.id;
    }
    pthread_mutex_unlock(&jobs->lock);
    if (r != 0) {
        free(job);
        return vd_error_set(err, -r, "cannot start a job thread: %s",
                            strerror(r));
    }
    return 0;
}

bool vd_jobs_source_busy(struct vd_jobs *jobs, const char *source)
{
    bool busy = false;
    pthread_mutex_lock(&jobs->lock);
    for (struct vd_job *j = jobs->list; j != NULL && !busy; j = j->next) {
        busy = j->info.state == VD_JOB_RUNNING &&
               strcmp(j->info.source, source) == 0;
    }
    pthread_mutex_unlock(&jobs->lock);
    return busy;
}

int vd_jobs_get(struct vd_jobs *jobs, uint64_t id, struct vd_job_info *out)
{
    int ret = -ENOENT;
    pthread_mutex_lock(&jobs->lock);
    for (struct vd_job *j = jobs->list; j != NULL; j = j->next) {
        if (j->info.id == id) {
            *out = j->info;
            ret = 0;
            break;
        }
    }
    pthread_mutex_unlock(&jobs->lock);
    return ret;
}

void vd_job_progress(struct vd_job *job, uint64_t done, uint64_t total)
{
    pthread_mutex_lock(&job->jobs->lock);
    job->info.done = done;
    job->info.total = total;
    pthread_mutex_unlock(&job->jobs->lock);
}

bool vd_job_cancelled(struct vd_job *job)
{
    return atomic_load(&job->jobs->stopping);
}

void vd_jobs_count(struct vd_jobs *jobs, uint64_t *counts, unsigned n)
{
    pthread_mutex_lock(&jobs->lock);
    for (struct vd_job *j = jobs->list; j != NULL; j = j->next) {
        if ((unsigned)j->info.state < n) {
            counts[j->info.state]++;
        }
    }
    pthread_mutex_unlock(&jobs->lock);
}
