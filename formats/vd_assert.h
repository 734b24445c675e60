/* vd_assert.h — invariants that check themselves.
 *
 * VD_ASSERT(cond) and the lock-held helpers are compiled in when the build
 * defines VD_ASSERTS (CMake option VD_ASSERTS: on for Debug and sanitizer
 * builds, off for release builds, where they cost nothing and evaluate
 * nothing). A failure prints file:line, the function and the condition to
 * stderr and aborts: an invariant that does not hold is a bug, and going on
 * could write wrong data to an image. Usable from every layer. */
#ifndef VD_ASSERT_H
#define VD_ASSERT_H

#include <pthread.h>

#ifdef VD_ASSERTS

/* 1 when assertions are compiled in: `x = VD_ASSERTS_ON ? f() : 0` costs
 * nothing in release builds. */
#define VD_ASSERTS_ON 1

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

__attribute__((noreturn, cold)) static inline void
vd_assert_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func,
            cond);
    fflush(stderr);
    abort();
}

#define VD_ASSERT(cond)                                                        \
    ((cond) ? (void)0 : vd_assert_fail(#cond, __FILE__, __LINE__, __func__))

/* Does the calling thread hold mutex m? glibc records the owner's thread
 * id in every mutex it locks, of every kind (also when pthread_cond_wait
 * takes it back) and clears it on unlock; only the owner ever stores its
 * own id there, so comparing it with ours is exact. Elsewhere we can only
 * tell that some thread holds it. */
static inline bool vd_mutex_held(pthread_mutex_t *m)
{
#if defined(__GLIBC__)
    return __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == gettid();
#else
    if (pthread_mutex_trylock(m) == 0) {
        pthread_mutex_unlock(m);
        return false;
    }
    return true;
#endif
}

/* Is rwlock l held (shared or exclusive) by some thread? Readers are not
 * recorded, so this cannot tell whether the caller is one of them; it
 * catches the caller that took nothing while no one else holds it. */
static inline bool vd_rwlock_held_by_someone(pthread_rwlock_t *l)
{
    int r = pthread_rwlock_trywrlock(l);
    if (r == 0) {
        pthread_rwlock_unlock(l);
        return false;
    }
    return r == EBUSY || r == EDEADLK;
}

#define VD_ASSERT_HELD(m) VD_ASSERT(vd_mutex_held(m))
#define VD_ASSERT_NOT_HELD(m) VD_ASSERT(!vd_mutex_held(m))
#define VD_ASSERT_RWLOCK_HELD(l) VD_ASSERT(vd_rwlock_held_by_someone(l))

#else /* !VD_ASSERTS: type-checked, never evaluated */

#define VD_ASSERTS_ON 0

#define VD_ASSERT(cond) ((void)sizeof(!(cond)))
#define VD_ASSERT_HELD(m) ((void)sizeof(pthread_mutex_t *){(m)})
#define VD_ASSERT_NOT_HELD(m) ((void)sizeof(pthread_mutex_t *){(m)})
#define VD_ASSERT_RWLOCK_HELD(l) ((void)sizeof(pthread_rwlock_t *){(l)})

#endif

#endif
