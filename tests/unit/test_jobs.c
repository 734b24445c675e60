/* test_jobs.c — the job registry releases what a finished job held: many
 * jobs leave neither threads nor their stacks behind (VmSize), only the
 * newest VD_JOBS_HISTORY finished jobs stay listed, and freeing the
 * registry stops a running job and waits for it. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"
#include "vd_error.h"
#include "vd_test.h"

#define N_JOBS 100

static long status_field(const char *field)
{
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = atol(line + n + 1);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

/* Thread stacks still mapped: 8 MiB read-write right above a guard page
 * (the C library's default); an unreleased thread keeps one. Counted
 * directly, as VmSize under a sanitizer moves with its allocator too. */
static int stacks_mapped(void)
{
    char line[512], perm[8];
    unsigned long a, b, prev_end = 0;
    bool prev_guard = false;
    int n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perm) != 3) {
            continue;
        }
        if (perm[0] == 'r' && perm[1] == 'w' && prev_guard && prev_end == a &&
            b - a == 8ul << 20) {
            n++;
        }
        prev_end = b;
        prev_guard = strncmp(perm, "---", 3) == 0;
    }
    if (f != NULL) {
        fclose(f);
    }
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int quick_job(struct vd_job *job, void *arg, struct vd_error *err)
{
    vd_job_progress(job, 1, 1);
    if (arg != NULL) {
        return vd_error_set(err, -EIO, "failed on purpose");
    }
    return 0;
}

static atomic_bool slow_started, slow_freed;

static int slow_job(struct vd_job *job, void *arg, struct vd_error *err)
{
    (void)arg;
    atomic_store(&slow_started, true);
    while (!vd_job_cancelled(job)) {
        sleep_ms(1);
    }
    return vd_error_set(err, -ECANCELED, "stopped");
}

static void slow_free(void *arg)
{
    (void)arg;
    atomic_store(&slow_freed, true);
}

/* Wait until job id has left 'running' (10 s at most). */
static int wait_done(struct vd_jobs *jobs, uint64_t id, struct vd_job_info *j)
{
    for (int i = 0; i < 10000; i++) {
        int r = vd_jobs_get(jobs, id, j);
        if (r < 0 || j->state != VD_JOB_RUNNING) {
            return r;
        }
        sleep_ms(1);
    }
    return -ETIMEDOUT;
}

int main(void)
{
    struct vd_jobs *jobs = vd_jobs_new();
    struct vd_job_info j, *list = NULL;
    uint64_t id = 0;
    int n;

    CHECK(jobs != NULL);
    /* Warm up: the allocator's arenas and the thread stack cache. */
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(vd_jobs_start(jobs, "test", "t", "s", quick_job, NULL, NULL,
                               &id, NULL),
                 0);
        CHECK_EQ(wait_done(jobs, id, &j), 0);
    }
    sleep_ms(50);
    long vm0 = status_field("VmSize"), th0 = status_field("Threads");
    int st0 = stacks_mapped();
    for (int i = 0; i < N_JOBS; i++) {
        /* every tenth fails, so failed jobs are trimmed too */
        CHECK_EQ(vd_jobs_start(jobs, "test", "t", "s", quick_job,
                               i % 10 == 0 ? (void *)1 : NULL, NULL, &id, NULL),
                 0);
        CHECK_EQ(wait_done(jobs, id, &j), 0);
        CHECK(j.state == (i % 10 == 0 ? VD_JOB_FAILED : VD_JOB_SUCCEEDED));
    }
    sleep_ms(50);
    long vm1 = status_field("VmSize"), th1 = status_field("Threads");
    int st1 = stacks_mapped();
    fprintf(stderr,
            "%d jobs: VmSize %ld -> %ld kB, threads %ld -> %ld, "
            "stacks %d -> %d\n",
            N_JOBS, vm0, vm1, th0, th1, st0, st1);
    /* An unreleased thread keeps its 8 MiB stack: 100 stacks and 800 MiB
     * here; a few may wait in the C library's stack cache. */
    CHECK(st1 - st0 < N_JOBS / 4);
    if (vm0 < (1l << 30)) { /* not under a sanitizer's terabytes */
        CHECK(vm1 - vm0 < N_JOBS * 8192 / 4);
    }
    CHECK(th1 <= th0);

    n = vd_jobs_list(jobs, &list);
    CHECK_EQ(n, VD_JOBS_HISTORY);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(list[i].id, id - (uint64_t)i); /* newest first */
    }
    free(list);
    CHECK_EQ(vd_jobs_get(jobs, 1, &j), -ENOENT);
    CHECK_EQ(vd_jobs_get(jobs, id, &j), 0);
    CHECK(strcmp(j.kind, "test") == 0);

    /* Freeing the registry cancels a running job and waits for it. */
    CHECK_EQ(vd_jobs_start(jobs, "test", "slow", "s", slow_job, NULL, slow_free,
                           &id, NULL),
             0);
    while (!atomic_load(&slow_started)) {
        sleep_ms(1);
    }
    n = vd_jobs_list(jobs, &list);
    CHECK_EQ(n, VD_JOBS_HISTORY + 1); /* running jobs are always listed */
    CHECK(n > 0 && list[0].id == id && list[0].state == VD_JOB_RUNNING);
    free(list);
    vd_jobs_free(jobs);
    CHECK(atomic_load(&slow_freed));
    return vd_test_done("test_jobs");
}
