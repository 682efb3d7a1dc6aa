#ifndef KNN_TEST_H
#define KNN_TEST_H

/**
 * The test harness. A test is `int name(void)` returning KNN_TEST_PASS, KNN_TEST_SKIP or a
 * failure (the ASSERT macros return 1 after printing where and why). cmake/KnnTest.cmake generates
 * one driver per suite; `test_<suite> <name>` runs one test, `test_<suite>` with no argument runs
 * them all. After each test the driver checks that every block from knn_malloc() was freed.
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KNN_TEST_PASS 0
#define KNN_TEST_FAIL 1
#define KNN_TEST_SKIP 103

struct knn_test_entry {
    const char *name;
    int (*fn)(void);
};

int knn_test_main(int argc, char **argv, const struct knn_test_entry *tests);

/** Print a failure line "file:line: message" (printf format) to stderr. */
void knn_test_fail_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Skip with a reason, e.g. when a test needs a server or tool that is absent. */
#define SKIP(...)                                                                                                   \
    do {                                                                                                            \
        fprintf(stderr, "SKIP: ");                                                                                  \
        fprintf(stderr, __VA_ARGS__);                                                                               \
        fprintf(stderr, "\n");                                                                                      \
        return KNN_TEST_SKIP;                                                                                       \
    } while (0)

#define FAIL(...)                                                                                                   \
    do {                                                                                                            \
        knn_test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                                          \
        return KNN_TEST_FAIL;                                                                                       \
    } while (0)

#define ASSERT_TRUE(cond)                                                                                           \
    do {                                                                                                            \
        if (!(cond))                                                                                                \
            FAIL("expected %s", #cond);                                                                             \
    } while (0)

#define ASSERT_FALSE(cond) ASSERT_TRUE(!(cond))

/** Asserts an int-returning call succeeded; prints the error message otherwise. */
#define ASSERT_OK(expr)                                                                                             \
    do {                                                                                                            \
        int knn__rc = (expr);                                                                                       \
        if (knn__rc != 0)                                                                                           \
            FAIL("%s returned %d (%s): %s", #expr, knn__rc, knn_test_error_name(knn__rc), knn_test_error_message()); \
    } while (0)

/** Asserts a call failed with exactly `code`. */
#define ASSERT_ERR(code, expr)                                                                                      \
    do {                                                                                                            \
        int knn__rc = (expr);                                                                                       \
        if (knn__rc != (code))                                                                                      \
            FAIL(                                                                                                   \
                "%s returned %d (%s), expected %s: %s", #expr, knn__rc, knn_test_error_name(knn__rc), #code,        \
                knn_test_error_message());                                                                          \
    } while (0)

#define ASSERT_INT_EQ(expected, actual)                                                                             \
    do {                                                                                                            \
        long long knn__e = (long long)(expected), knn__a = (long long)(actual);                                     \
        if (knn__e != knn__a)                                                                                       \
            FAIL("%s == %lld, expected %s == %lld", #actual, knn__a, #expected, knn__e);                            \
    } while (0)

#define ASSERT_UINT_EQ(expected, actual)                                                                            \
    do {                                                                                                            \
        unsigned long long knn__e = (unsigned long long)(expected), knn__a = (unsigned long long)(actual);          \
        if (knn__e != knn__a)                                                                                       \
            FAIL("%s == %llu, expected %s == %llu", #actual, knn__a, #expected, knn__e);                            \
    } while (0)

#define ASSERT_STR_EQ(expected, actual)                                                                             \
    do {                                                                                                            \
        const char *knn__e = (expected), *knn__a = (actual);                                                        \
        if (!knn__a || strcmp(knn__e, knn__a) != 0)                                                                 \
            FAIL("%s == \"%s\", expected \"%s\"", #actual, knn__a ? knn__a : "(null)", knn__e);                     \
    } while (0)

/** Asserts `haystack` contains `needle` (for error messages). */
#define ASSERT_CONTAINS(haystack, needle)                                                                           \
    do {                                                                                                            \
        const char *knn__h = (haystack), *knn__n = (needle);                                                        \
        if (!knn__h || !strstr(knn__h, knn__n))                                                                     \
            FAIL("%s == \"%s\" does not contain \"%s\"", #haystack, knn__h ? knn__h : "(null)", knn__n);            \
    } while (0)

#define ASSERT_MEM_EQ(expected, expected_len, actual, actual_len)                                                   \
    do {                                                                                                            \
        size_t knn__el = (expected_len), knn__al = (actual_len);                                                    \
        if (knn__el != knn__al)                                                                                     \
            FAIL("%s has %zu bytes, expected %zu", #actual, knn__al, knn__el);                                      \
        if (knn__el && memcmp((expected), (actual), knn__el) != 0)                                                  \
            FAIL("%s differs from %s at byte %zu", #actual, #expected,                                              \
                 knn_test_first_difference((expected), (actual), knn__el));                                         \
    } while (0)

/** |expected - actual| <= tol. */
#define ASSERT_NEAR(expected, actual, tol)                                                                          \
    do {                                                                                                            \
        double knn__e = (double)(expected), knn__a = (double)(actual), knn__t = (double)(tol);                      \
        if (!(fabs(knn__e - knn__a) <= knn__t))                                                                     \
            FAIL("%s == %.17g, expected %.17g within %g", #actual, knn__a, knn__e, knn__t);                         \
    } while (0)

size_t knn_test_first_difference(const void *a, const void *b, size_t n);
const char *knn_test_error_name(int code);
const char *knn_test_error_message(void);

/**
 * Path of a file in tests/fixtures (env KNN_FIXTURES_DIR, set by ctest), e.g.
 * knn_test_fixture_path(buf, sizeof buf, "recordio/dense_f32_labels.rec").
 * Returns buf.
 */
const char *knn_test_fixture_path(char *buf, size_t size, const char *relative);
/** Same, for a file in the source tree (env KNN_SOURCE_DIR). */
const char *knn_test_source_path(char *buf, size_t size, const char *relative);

/** Read a whole file into a knn_malloc'ed buffer (tests only). Returns 0 or a KNN_E* code. */
int knn_test_read_file(const char *path, uint8_t **data, size_t *len);

/**
 * Make a fresh empty directory under $TMPDIR (or /tmp) for this test; its path is written to buf.
 * knn_test_rmtree() removes it (and everything in it).
 */
int knn_test_mkdtemp(char *buf, size_t size);
int knn_test_rmtree(const char *path);

#endif
