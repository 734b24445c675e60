/* jobs.c — a registry of long operations, each on its own thread.
 *
 * DESIGN NOTES
 * 1. `lock` protects the list, the counts and every job's info; the
 *    worker writes its progress under it and the API reads a copy.
 * 2. Job threads are detached: a finished thread gives its stack back at
 *    once, so a daemon that runs many jobs does not grow. vd_jobs_free
 *    waits on `idle` until `running` is 0 instead of joining.
 * 3. A worker's last touch of the registry is under `lock`, where it also
 *    drops `running` and signals `idle`; after unlocking it uses only its
 *    own copy of the info, so the registry may be freed at once.
 * 4. Running jobs always stay listed; of the finished ones only the
 *    VD_JOBS_HISTORY newest are kept, older ones are freed. */
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
    vd_job_fn fn;
    void *arg;
    void (*free_arg)(void *);
    struct vd_job *next; /* jobs->lock */
};

struct vd_jobs {
    pthread_mutex_t lock;
    pthread_cond_t idle; /* signalled when running drops */
    struct vd_job *list; /* newest first; lock */
    uint64_t next_id;    /* lock */
    unsigned running;    /* threads not yet done with the registry; lock */
    atomic_bool stopping;
};

struct vd_jobs *vd_jobs_new(void)
{
    struct vd_jobs *jobs = calloc(1, sizeof(*jobs));
    if (jobs != NULL) {
        pthread_mutex_init(&jobs->lock, NULL);
        pthread_cond_init(&jobs->idle, NULL);
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
    pthread_mutex_lock(&jobs->lock);
    while (jobs->running > 0) {
        pthread_cond_wait(&jobs->idle, &jobs->lock);
    }
    pthread_mutex_unlock(&jobs->lock);
    for (struct vd_job *j = jobs->list, *next; j != NULL; j = next) {
        next = j->next;
        free(j);
    }
    pthread_cond_destroy(&jobs->idle);
    pthread_mutex_destroy(&jobs->lock);
    free(jobs);
}

/* Free finished jobs beyond the history's length. Under lock. */
static void trim_history(struct vd_jobs *jobs)
{
    unsigned kept = 0;
    for (struct vd_job **pj = &jobs->list; *pj != NULL;) {
        struct vd_job *j = *pj;
        if (j->info.state != VD_JOB_RUNNING && ++kept > VD_JOBS_HISTORY) {
            *pj = j->next;
            free(j);
        } else {
            pj = &j->next;
        }
    }
}

static void *job_main(void *p)
{
    struct vd_job *job = p;
    struct vd_jobs *jobs = job->jobs;
    struct vd_error err = {0};
    struct vd_job_info info;
    int ret = job->fn(job, job->arg, &err);

    if (job->free_arg != NULL) {
        job->free_arg(job->arg);
    }
    pthread_mutex_lock(&jobs->lock);
    job->info.finished_at = (int64_t)time(NULL);
    if (ret < 0) {
        job->info.state = VD_JOB_FAILED;
        snprintf(job->info.error, sizeof(job->info.error), "%s",
                 err.code ? err.msg : strerror(-ret));
    } else {
        job->info.state = VD_JOB_SUCCEEDED;
        job->info.done = job->info.total;
    }
    info = job->info;
    trim_history(jobs); /* may free job: not used below */
    jobs->running--;
    pthread_cond_broadcast(&jobs->idle);
    pthread_mutex_unlock(&jobs->lock);
    /* Note 3: from here on, only the local copy. */
    if (ret < 0) {
        vd_err("job %llu (%s of '%s') failed: %s", (unsigned long long)info.id,
               info.kind, info.target, info.error);
    } else {
        vd_info("job %llu (%s of '%s') finished", (unsigned long long)info.id,
                info.kind, info.target);
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

    pthread_attr_t attr;
    pthread_t thread;
    if ((r = pthread_attr_init(&attr)) != 0) {
        free(job);
        return vd_error_set(err, -r, "cannot start a job thread: %s",
                            strerror(r));
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&jobs->lock);
    job->info.id = jobs->next_id++;
    /* Listed before the thread runs: it may finish (and trim) at once. */
    job->next = jobs->list;
    jobs->list = job;
    jobs->running++;
    *id = job->info.id;
    r = pthread_create(&thread, &attr, job_main, job);
    if (r != 0) {
        jobs->list = job->next;
        jobs->running--;
    }
    pthread_mutex_unlock(&jobs->lock);
    pthread_attr_destroy(&attr);
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

int vd_jobs_list(struct vd_jobs *jobs, struct vd_job_info **out)
{
    int n = 0, k = 0;
    *out = NULL;
    pthread_mutex_lock(&jobs->lock);
    for (struct vd_job *j = jobs->list; j != NULL; j = j->next) {
        n++;
    }
    struct vd_job_info *v = calloc(n > 0 ? (size_t)n : 1, sizeof(*v));
    for (struct vd_job *j = jobs->list; v != NULL && j != NULL; j = j->next) {
        v[k++] = j->info;
    }
    pthread_mutex_unlock(&jobs->lock);
    if (v == NULL) {
        return -ENOMEM;
    }
    *out = v;
    return k;
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
