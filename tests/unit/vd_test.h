/* vd_test.h — the smallest test harness that works: CHECK records a
 * failure with file and line and carries on; vd_test_done() reports and
 * gives main's exit code. */
#ifndef VD_TEST_H
#define VD_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int vd_test_failures;
static int vd_test_checks;

#define CHECK(cond)                                                            \
    do {                                                                       \
        vd_test_checks++;                                                      \
        if (!(cond)) {                                                         \
            vd_test_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long va_ = (long long)(a), vb_ = (long long)(b);                  \
        vd_test_checks++;                                                      \
        if (va_ != vb_) {                                                      \
            vd_test_failures++;                                                \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n",          \
                    __FILE__, __LINE__, #a, #b, va_, vb_);                     \
        }                                                                      \
    } while (0)

static inline int vd_test_done(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, vd_test_checks,
            vd_test_failures);
    return vd_test_failures == 0 && vd_test_checks > 0 ? 0 : 1;
}

#endif
