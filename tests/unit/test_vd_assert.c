/* test_vd_assert.c — the assertion helpers tell the truth.
 *
 * vd_mutex_held must say yes only to the thread that holds the mutex
 * (also after pthread_cond_wait took it back), and a failed VD_ASSERT
 * must print file:line and the condition and abort. Built with the
 * assertions on whatever the build type. */
#ifndef VD_ASSERTS
#define VD_ASSERTS 1
#endif

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vd_assert.h"
#include "vd_test.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static bool go, held_after_wait;

/* to_main: "I hold it"; to_other: "you may let go". */
static int to_main[2], to_other[2];

static void *other_holds(void *arg)
{
    char c;
    pthread_mutex_lock(&m);
    CHECK(vd_mutex_held(&m));
    CHECK_EQ(write(to_main[1], "x", 1), 1);
    CHECK_EQ(read(to_other[0], &c, 1), 1);
    pthread_mutex_unlock(&m);
    return arg;
}

static void *signaller(void *arg)
{
    pthread_mutex_lock(&m);
    go = true;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&m);
    return arg;
}

int main(void)
{
    pthread_t t;
    char c;

    /* Unlocked, held by us, released. */
    CHECK(!vd_mutex_held(&m));
    pthread_mutex_lock(&m);
    CHECK(vd_mutex_held(&m));
    pthread_mutex_unlock(&m);
    CHECK(!vd_mutex_held(&m));

    /* Held by another thread: not ours. */
    CHECK_EQ(pipe(to_main), 0);
    CHECK_EQ(pipe(to_other), 0);
    pthread_create(&t, NULL, other_holds, NULL);
    CHECK_EQ(read(to_main[0], &c, 1), 1);
    CHECK(!vd_mutex_held(&m));
    CHECK_EQ(write(to_other[1], "y", 1), 1);
    pthread_join(t, NULL);
    close(to_main[0]);
    close(to_main[1]);
    close(to_other[0]);
    close(to_other[1]);

    /* pthread_cond_wait gives it back to us. */
    pthread_mutex_lock(&m);
    pthread_create(&t, NULL, signaller, NULL);
    while (!go) {
        pthread_cond_wait(&cv, &m);
    }
    held_after_wait = vd_mutex_held(&m);
    pthread_mutex_unlock(&m);
    pthread_join(t, NULL);
    CHECK(held_after_wait);

    /* The rwlock check: nobody, a reader, a writer. */
    CHECK(!vd_rwlock_held_by_someone(&rw));
    pthread_rwlock_rdlock(&rw);
    CHECK(vd_rwlock_held_by_someone(&rw));
    pthread_rwlock_unlock(&rw);
    pthread_rwlock_wrlock(&rw);
    CHECK(vd_rwlock_held_by_someone(&rw));
    pthread_rwlock_unlock(&rw);
    CHECK(!vd_rwlock_held_by_someone(&rw));

    /* A failed assertion: message on stderr, then SIGABRT. */
    int err[2];
    CHECK_EQ(pipe(err), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(err[1], 2);
        VD_ASSERT_HELD(&m);
        _exit(0);
    }
    close(err[1]);
    char msg[512] = "";
    ssize_t n = read(err[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(err[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(msg, "test_vd_assert.c:") != NULL);
    CHECK(strstr(msg, "vd_mutex_held(&m)") != NULL);
    return vd_test_done("test_vd_assert");
}
