#ifndef KNN_COMMON_ALLOC_H
#define KNN_COMMON_ALLOC_H

/**
 * All of our allocations go through these functions (libgit2 / curl style):
 * - element counts are multiplied with an overflow check (knn_malloc_array, knn_realloc_array);
 * - outstanding allocations are counted, so the test driver fails a test that leaks;
 * - tests can make the Nth allocation fail, to prove the error paths clean up (curl torture).
 *
 * On failure these return NULL and set the thread's error message (KNN_ENOMEM), so a caller writes
 * `if (!(p = knn_malloc_array(n, sizeof(*p)))) return KNN_ENOMEM;`.
 * Thread-safe. Memory from these must be released with knn_free(), never free().
 */

#include <stddef.h>
#include <stdint.h>

void *knn_malloc(size_t size);
void *knn_calloc(size_t count, size_t size);
void *knn_malloc_array(size_t count, size_t size);
/** Resize to count*size bytes; on failure the old block is left untouched and NULL returned. */
void *knn_realloc_array(void *ptr, size_t count, size_t size);
/** Memory aligned to `alignment` (a power of two, multiple of sizeof(void *)); free with knn_free(). */
void *knn_aligned_alloc(size_t alignment, size_t size);
char *knn_strdup(const char *s);
char *knn_strndup(const char *s, size_t n);
void knn_free(void *ptr);

/** a*b, or 0 and KNN_ENOMEM if it overflows. */
int knn_mul_size(size_t *out, size_t a, size_t b);
/** a+b, or 0 and KNN_ENOMEM if it overflows. */
int knn_add_size(size_t *out, size_t a, size_t b);

/** Number of blocks allocated through these functions and not yet freed (for leak checks). */
int64_t knn_alloc_outstanding(void);

/**
 * Make the allocation `n` calls from now fail (n = 1: the next one); 0 disables. For tests only.
 * Returns how many allocations have been made since the last call, so a test can first count the
 * allocations of an operation, then fail each of them in turn.
 */
uint64_t knn_alloc_fail_after(uint64_t n);

#endif
