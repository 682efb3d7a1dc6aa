/*
 * The public knn_index_* functions: argument checks, then dispatch through the type's vtable
 * (index_impl.h). FAISS file reading and writing live in index_io.c.
 */
#include "index_flat.h"
#include "index_hnsw.h"
#include "index_impl.h"
#include "index_ivf.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <string.h>

/* The first non-finite value of x (n rows, d wide) at (*row, *col); returns 0 if all are finite. */
static int s_find_nonfinite(const float *x, size_t n, size_t d, size_t *row, size_t *col)
{
    size_t total = n * d;
    for (size_t i0 = 0; i0 < total; i0 += 4096) {
        size_t m = total - i0 < 4096 ? total - i0 : 4096;
        uint32_t bad = 0;
        for (size_t i = 0; i < m; i++) {
            uint32_t u;
            memcpy(&u, x + i0 + i, sizeof(u));
            bad |= (u & 0x7f800000u) == 0x7f800000u; /* exponent all ones: Inf or NaN */
        }
        if (bad) {
            for (size_t i = i0; i < i0 + m; i++) {
                if (!isfinite(x[i])) {
                    *row = i / d;
                    *col = i % d;
                    return 1;
                }
            }
        }
    }
    return 0;
}

int knn_index_new(struct knn_index **out, const struct knn_index_options *opts)
{
    if (!out || !opts)
        return knn_error_set(KNN_EINVAL, "index: NULL argument");
    *out = NULL;
    if (opts->dim == 0 || opts->dim > INT32_MAX)
        return knn_error_set(KNN_EINVAL, "index: dimension %zu is not in 1..2^31-1", opts->dim);
    if (opts->metric != KNN_METRIC_L2 && opts->metric != KNN_METRIC_INNER_PRODUCT)
        return knn_error_set(KNN_EINVAL, "index: unknown metric %d", (int)opts->metric);
    switch (opts->type) {
        case KNN_INDEX_FLAT:
            return knn__index_flat_new(out, opts);
        case KNN_INDEX_IVFFLAT:
        case KNN_INDEX_IVFPQ:
        case KNN_INDEX_IVFSQ8:
            return knn__index_ivf_new(out, opts);
        case KNN_INDEX_HNSW:
            return knn__index_hnsw_new(out, opts);
    }
    return knn_error_set(KNN_EINVAL, "index: unknown index type %d", (int)opts->type);
}

void knn_index_destroy(struct knn_index *index)
{
    if (index)
        index->vtable->destroy(index);
}

int knn_index_train(struct knn_index *index, size_t n, const float *x)
{
    if (!index || (n > 0 && !x))
        return knn_error_set(KNN_EINVAL, "index train: NULL argument");
    size_t row, col;
    if (s_find_nonfinite(x, n, index->opts.dim, &row, &col))
        return knn_error_set(KNN_ERANGE, "index train: row %zu, column %zu is not a finite number", row, col);
    if (!index->vtable->train)
        return 0;
    return index->vtable->train(index, n, x);
}

int knn_index_add(struct knn_index *index, size_t n, const float *x)
{
    if (!index || (n > 0 && !x))
        return knn_error_set(KNN_EINVAL, "index add: NULL argument");
    if (!index->is_trained)
        return knn_error_set(KNN_EINDEX_NOT_TRAINED, "index add: %s must be trained first", index->vtable->name);
    if (n == 0)
        return 0;
    size_t row, col;
    if (s_find_nonfinite(x, n, index->opts.dim, &row, &col))
        return knn_error_set(KNN_ERANGE, "index add: row %zu, column %zu is not a finite number", row, col);
    if (index->ntotal + n > (size_t)INT64_MAX)
        return knn_error_set(KNN_ETOOBIG, "index add: more than 2^63 vectors");
    return index->vtable->add(index, n, x);
}

int knn_index_search(
    const struct knn_index *index, size_t n, const float *x, size_t k, float *distances, int64_t *labels,
    const struct knn_search_params *params)
{
    static const struct knn_search_params s_defaults = KNN_SEARCH_PARAMS_INIT;
    if (!index)
        return knn_error_set(KNN_EINVAL, "index search: NULL index");
    if (k == 0)
        return knn_error_set(KNN_EINVAL, "index search: k must be at least 1");
    if (n == 0)
        return 0;
    if (!x || !distances || !labels)
        return knn_error_set(KNN_EINVAL, "index search: NULL argument");
    size_t total;
    if (knn_mul_size(&total, n, k) != 0)
        return knn_error_set(KNN_ETOOBIG, "index search: %zu queries x k=%zu overflows", n, k);
    size_t row, col;
    if (s_find_nonfinite(x, n, index->opts.dim, &row, &col))
        return knn_error_set(KNN_ERANGE, "index search: query %zu, column %zu is not a finite number", row, col);
    if (!index->is_trained)
        return knn_error_set(KNN_EINDEX_NOT_TRAINED, "index search: %s is not trained", index->vtable->name);
    if (index->ntotal == 0) {
        float pad = index->opts.metric == KNN_METRIC_INNER_PRODUCT ? -INFINITY : INFINITY;
        for (size_t i = 0; i < total; i++) {
            distances[i] = pad;
            labels[i] = -1;
        }
        return 0;
    }
    return index->vtable->search(index, n, x, k, distances, labels, params ? params : &s_defaults);
}

const struct knn_index_options *knn_index_get_options(const struct knn_index *index)
{
    return &index->opts;
}

size_t knn_index_ntotal(const struct knn_index *index)
{
    return index->ntotal;
}

int knn_index_is_trained(const struct knn_index *index)
{
    return index->is_trained;
}

int knn_index_set_nprobe(struct knn_index *index, size_t nprobe)
{
    if (!index)
        return knn_error_set(KNN_EINVAL, "index: NULL index");
    if (index->opts.type == KNN_INDEX_FLAT || index->opts.type == KNN_INDEX_HNSW)
        return knn_error_set(KNN_EINVAL, "index: nprobe does not apply to a %s index", index->vtable->name);
    if (nprobe == 0)
        return knn_error_set(KNN_EINVAL, "index: nprobe must be at least 1");
    index->opts.nprobe = nprobe;
    return 0;
}

int knn_index_set_ef_search(struct knn_index *index, size_t ef_search)
{
    if (!index)
        return knn_error_set(KNN_EINVAL, "index: NULL index");
    if (index->opts.type != KNN_INDEX_HNSW)
        return knn_error_set(KNN_EINVAL, "index: efSearch does not apply to a %s index", index->vtable->name);
    if (ef_search == 0 || ef_search > INT32_MAX)
        return knn_error_set(KNN_EINVAL, "index: efSearch %zu is not in 1..2^31-1", ef_search);
    index->opts.ef_search = ef_search;
    return 0;
}
