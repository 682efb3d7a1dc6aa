/*
 * Reservoir sampling, Vitter's Algorithm R: the first `capacity` rows are kept; row t (0-based,
 * t >= capacity) draws j uniform on [0, t] and replaces slot j if j < capacity. After t rows every
 * subset of min(t, capacity) rows is equally likely. One generator draw per row; memory is the
 * sample only.
 *
 * Merge: a uniform sample of size m = min(capacity(dst), seen(dst) + seen(src)) of the combined
 * streams takes X rows from dst's stream and m - X from src's, X hypergeometric (m draws without
 * replacement from seen(dst) + seen(src) items, seen(dst) of them "dst"); given X, the rows are a
 * uniform X-subset of dst's stream, which a uniform X-subset of dst's reservoir is (the reservoir
 * being a uniform subset of the stream), and likewise for src. This needs each reservoir to hold at
 * least the rows drawn from it: true for dst (X <= m <= its capacity, or all its rows), and checked
 * for src (a src with a smaller capacity that has overflowed cannot stand for its stream).
 */
#include "knn/algorithms/sample.h"

#include "rng.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <string.h>

struct knn_reservoir {
    size_t capacity;
    size_t dim;
    size_t count;
    size_t alloc; /* rows allocated (grown up to capacity) */
    uint64_t seen;
    float *rows;   /* capacity * dim */
    float *labels; /* capacity */
    struct knn__rng rng;
};

int knn_reservoir_new(struct knn_reservoir **out, size_t capacity, size_t dim, uint64_t seed)
{
    if (!out)
        return knn_error_set(KNN_EINVAL, "reservoir: NULL argument");
    *out = NULL;
    if (capacity == 0 || dim == 0)
        return knn_error_set(KNN_EINVAL, "reservoir: capacity %zu and dim %zu must be positive", capacity, dim);
    size_t floats;
    if (knn_mul_size(&floats, capacity, dim) != 0)
        return knn_error_set(KNN_ENOMEM, "reservoir: %zu rows of %zu floats overflow", capacity, dim);
    struct knn_reservoir *r = knn_calloc(1, sizeof(*r));
    if (!r)
        return KNN_ENOMEM;
    r->capacity = capacity;
    r->dim = dim;
    knn__rng_seed(&r->rng, seed);
    /* Rows are allocated as they arrive: a short stream with a large capacity costs what it keeps. */
    *out = r;
    return 0;
}

void knn_reservoir_destroy(struct knn_reservoir *r)
{
    if (!r)
        return;
    knn_free(r->rows);
    knn_free(r->labels);
    knn_free(r);
}

/* Make room for `need` rows (<= capacity), growing geometrically. */
static int s_reserve(struct knn_reservoir *r, size_t need)
{
    if (need <= r->alloc)
        return 0;
    size_t alloc = r->alloc * 2 > 1024 ? r->alloc * 2 : 1024;
    if (alloc < need)
        alloc = need;
    if (alloc > r->capacity)
        alloc = r->capacity;
    float *rows = knn_realloc_array(r->rows, alloc * r->dim, sizeof(float));
    if (!rows)
        return knn_error_wrap(KNN_ENOMEM, "reservoir of %zu rows x %zu floats", alloc, r->dim);
    r->rows = rows;
    float *labels = knn_realloc_array(r->labels, alloc, sizeof(float));
    if (!labels)
        return knn_error_wrap(KNN_ENOMEM, "reservoir labels of %zu rows", alloc);
    r->labels = labels;
    r->alloc = alloc;
    return 0;
}

int knn_reservoir_add(struct knn_reservoir *r, size_t n, const float *x, const float *labels)
{
    if (!r || (n > 0 && !x))
        return knn_error_set(KNN_EINVAL, "reservoir add: NULL argument");
    for (size_t i = 0; i < n; i++) {
        size_t slot;
        if (r->count < r->capacity) {
            int rc = s_reserve(r, r->count + 1);
            if (rc != 0)
                return rc;
            slot = r->count++;
        } else {
            uint64_t j = knn__rng_below(&r->rng, r->seen + 1);
            if (j >= r->capacity) {
                r->seen++;
                continue;
            }
            slot = (size_t)j;
        }
        memcpy(r->rows + slot * r->dim, x + i * r->dim, r->dim * sizeof(float));
        r->labels[slot] = labels ? labels[i] : 0.0f;
        r->seen++;
    }
    return 0;
}

static void s_swap_rows(struct knn_reservoir *r, size_t a, size_t b)
{
    if (a == b)
        return;
    float *ra = r->rows + a * r->dim, *rb = r->rows + b * r->dim;
    for (size_t j = 0; j < r->dim; j++) {
        float t = ra[j];
        ra[j] = rb[j];
        rb[j] = t;
    }
    float t = r->labels[a];
    r->labels[a] = r->labels[b];
    r->labels[b] = t;
}

int knn_reservoir_merge(struct knn_reservoir *dst, const struct knn_reservoir *src)
{
    size_t *pick = NULL;
    if (!dst || !src)
        return knn_error_set(KNN_EINVAL, "reservoir merge: NULL argument");
    if (dst == src)
        return knn_error_set(KNN_EINVAL, "reservoir merge: a reservoir cannot be merged into itself");
    if (dst->dim != src->dim)
        return knn_error_set(KNN_EMISMATCH, "reservoir merge: dim %zu into dim %zu", src->dim, dst->dim);
    if (src->seen == 0)
        return 0;
    uint64_t total = dst->seen + src->seen;
    if (total < dst->seen)
        return knn_error_set(KNN_ERANGE, "reservoir merge: row count overflows");
    size_t m = total < dst->capacity ? (size_t)total : dst->capacity;
    if (src->seen > src->count && src->count < m)
        return knn_error_set(
            KNN_EINVAL,
            "reservoir merge: the source kept %zu of %llu rows, fewer than the %zu a uniform merged sample may need "
            "(give it at least the destination's capacity)",
            src->count, (unsigned long long)src->seen, m);

    /* How many of the m come from dst's stream: m draws without replacement. */
    uint64_t left_dst = dst->seen, left_src = src->seen;
    size_t from_dst = 0;
    for (size_t i = 0; i < m; i++) {
        if (knn__rng_below(&dst->rng, left_dst + left_src) < left_dst) {
            from_dst++;
            left_dst--;
        } else {
            left_src--;
        }
    }
    size_t from_src = m - from_dst;

    int rc = s_reserve(dst, m);
    if (rc != 0)
        return rc;
    if (from_src > 0 && !(pick = knn_malloc_array(src->count, sizeof(size_t))))
        return knn_error_wrap(KNN_ENOMEM, "reservoir merge");

    /* A uniform from_dst-subset of dst's rows, moved to the front (partial Fisher-Yates). */
    for (size_t i = 0; i < from_dst; i++)
        s_swap_rows(dst, i, i + (size_t)knn__rng_below(&dst->rng, dst->count - i));
    /* A uniform from_src-subset of src's rows, copied after them. */
    for (size_t i = 0; i < src->count && from_src > 0; i++)
        pick[i] = i;
    for (size_t i = 0; i < from_src; i++) {
        size_t j = i + (size_t)knn__rng_below(&dst->rng, src->count - i);
        size_t t = pick[i];
        pick[i] = pick[j];
        pick[j] = t;
        memcpy(dst->rows + (from_dst + i) * dst->dim, src->rows + pick[i] * src->dim, dst->dim * sizeof(float));
        dst->labels[from_dst + i] = src->labels[pick[i]];
    }
    dst->count = m;
    dst->seen = total;
    knn_free(pick);
    return 0;
}

size_t knn_reservoir_count(const struct knn_reservoir *r)
{
    return r->count;
}

uint64_t knn_reservoir_seen(const struct knn_reservoir *r)
{
    return r->seen;
}

size_t knn_reservoir_dim(const struct knn_reservoir *r)
{
    return r->dim;
}

const float *knn_reservoir_rows(const struct knn_reservoir *r)
{
    return r->rows;
}

const float *knn_reservoir_labels(const struct knn_reservoir *r)
{
    return r->labels;
}

int knn_reservoir_detach(struct knn_reservoir *r, float **rows, float **labels, size_t *count)
{
    if (!r || !rows || !labels || !count)
        return knn_error_set(KNN_EINVAL, "reservoir detach: NULL argument");
    /* Give back the rows allocated but never filled (a stream shorter than the capacity). If a
     * shrink fails the block just stays larger, which is harmless. */
    if (r->count > 0 && r->count < r->alloc) {
        float *x = knn_realloc_array(r->rows, r->count * r->dim, sizeof(float));
        float *l = knn_realloc_array(r->labels, r->count, sizeof(float));
        if (x)
            r->rows = x;
        if (l)
            r->labels = l;
        knn_error_clear();
    }
    *rows = r->rows;
    *labels = r->labels;
    *count = r->count;
    r->rows = NULL;
    r->labels = NULL;
    r->count = 0;
    r->alloc = 0;
    return 0;
}
