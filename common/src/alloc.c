#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_int_fast64_t s_outstanding;
static atomic_uint_fast64_t s_fail_countdown; /* 0: never fail */
static atomic_uint_fast64_t s_calls;

static int s_should_fail(void)
{
    atomic_fetch_add_explicit(&s_calls, 1, memory_order_relaxed);
    uint_fast64_t n = atomic_load_explicit(&s_fail_countdown, memory_order_relaxed);
    if (n == 0)
        return 0;
    /* Decrement; the call that takes it from 1 to 0 fails. */
    while (n > 0 && !atomic_compare_exchange_weak(&s_fail_countdown, &n, n - 1)) {
    }
    return n == 1;
}

static void *s_fail(size_t size)
{
    knn_error_set(KNN_ENOMEM, "out of memory (allocating %zu bytes)", size);
    return NULL;
}

int knn_mul_size(size_t *out, size_t a, size_t b)
{
    if (__builtin_mul_overflow(a, b, out)) {
        *out = 0;
        return knn_error_set(KNN_ENOMEM, "size overflow: %zu x %zu", a, b);
    }
    return 0;
}

int knn_add_size(size_t *out, size_t a, size_t b)
{
    if (__builtin_add_overflow(a, b, out)) {
        *out = 0;
        return knn_error_set(KNN_ENOMEM, "size overflow: %zu + %zu", a, b);
    }
    return 0;
}

void *knn_malloc(size_t size)
{
    if (s_should_fail())
        return s_fail(size);
    void *p = malloc(size ? size : 1);
    if (!p)
        return s_fail(size);
    atomic_fetch_add_explicit(&s_outstanding, 1, memory_order_relaxed);
    return p;
}

void *knn_calloc(size_t count, size_t size)
{
    size_t total;
    if (knn_mul_size(&total, count, size))
        return NULL;
    if (s_should_fail())
        return s_fail(total);
    void *p = calloc(total ? total : 1, 1);
    if (!p)
        return s_fail(total);
    atomic_fetch_add_explicit(&s_outstanding, 1, memory_order_relaxed);
    return p;
}

void *knn_malloc_array(size_t count, size_t size)
{
    size_t total;
    if (knn_mul_size(&total, count, size))
        return NULL;
    return knn_malloc(total);
}

void *knn_realloc_array(void *ptr, size_t count, size_t size)
{
    size_t total;
    if (knn_mul_size(&total, count, size))
        return NULL;
    if (s_should_fail())
        return s_fail(total);
    void *p = realloc(ptr, total ? total : 1);
    if (!p)
        return s_fail(total);
    if (!ptr)
        atomic_fetch_add_explicit(&s_outstanding, 1, memory_order_relaxed);
    return p;
}

void *knn_aligned_alloc(size_t alignment, size_t size)
{
    void *p = NULL;
    if (s_should_fail())
        return s_fail(size);
    if (posix_memalign(&p, alignment, size ? size : 1) != 0)
        return s_fail(size);
    atomic_fetch_add_explicit(&s_outstanding, 1, memory_order_relaxed);
    return p;
}

char *knn_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = knn_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *knn_strdup(const char *s)
{
    return knn_strndup(s, strlen(s));
}

void knn_free(void *ptr)
{
    if (!ptr)
        return;
    atomic_fetch_sub_explicit(&s_outstanding, 1, memory_order_relaxed);
    free(ptr);
}

int64_t knn_alloc_outstanding(void)
{
    return atomic_load(&s_outstanding);
}

uint64_t knn_alloc_fail_after(uint64_t n)
{
    atomic_store(&s_fail_countdown, n);
    return atomic_exchange(&s_calls, 0);
}
