// Minimal test harness: CHECK macros count passes and failures; each test
// binary ends with `return test_report();` which prints "N passed, N failed".
// Tests run from the repository root; shared data live at $COLLM_SHARED
// (default ../shared).
#ifndef COLLM_TEST_H
#define COLLM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_count, test_failed_count;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (cond) test_passed_count++;                                                  \
        else {                                                                          \
            test_failed_count++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
        }                                                                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                            \
    do {                                                                                \
        if (cond) test_passed_count++;                                                  \
        else {                                                                          \
            test_failed_count++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                               \
            fprintf(stderr, "\n");                                                      \
        }                                                                               \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                           \
    do {                                                                                \
        double check_a_ = (a), check_b_ = (b);                                          \
        if (fabs(check_a_ - check_b_) <= (tol)) test_passed_count++;                    \
        else {                                                                          \
            test_failed_count++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s = %.9g, %s = %.9g (tol %g)\n", __FILE__,    \
                    __LINE__, #a, check_a_, #b, check_b_, (double)(tol));               \
        }                                                                               \
    } while (0)

#define CHECK_STR(a, b)                                                                 \
    do {                                                                                \
        const char *check_a_ = (a), *check_b_ = (b);                                    \
        if (check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0) test_passed_count++; \
        else {                                                                          \
            test_failed_count++;                                                        \
            fprintf(stderr, "FAIL %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,       \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");    \
        }                                                                               \
    } while (0)

static inline const char *test_shared_dir(void) {
    const char *s = getenv("COLLM_SHARED");
    return s && *s ? s : "../shared";
}

// Builds "$COLLM_SHARED/<rel>" in a static rotating buffer.
static inline const char *test_shared_path(const char *rel) {
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", test_shared_dir(), rel);
    return b;
}

// A scratch directory under build/ for files a test writes.
static inline const char *test_tmp_dir(void) {
    const char *b = getenv("COLLM_TEST_TMP");
    return b && *b ? b : "build/test-tmp";
}

static inline int test_report(void) {
    printf("%d passed, %d failed\n", test_passed_count, test_failed_count);
    return test_failed_count ? 1 : 0;
}

#endif
