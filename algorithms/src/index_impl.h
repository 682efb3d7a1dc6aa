#ifndef KNN_ALGORITHMS_INDEX_IMPL_H
#define KNN_ALGORITHMS_INDEX_IMPL_H

/*
 * The index base (faiss-like): a vtable per index type, shared state in struct knn_index.
 * Serialization is not in the vtable: index_io.c writes and reads every type in FAISS's format,
 * reaching the data through each type's internal accessors (index_flat.h, index_ivf.h).
 */

#include "knn/algorithms/index.h"

struct knn_index_vtable {
    const char *name; /* "IndexFlatL2", "IndexIVFFlat", ... */
    int (*train)(struct knn_index *index, size_t n, const float *x);
    int (*add)(struct knn_index *index, size_t n, const float *x);
    int (*search)(
        const struct knn_index *index, size_t n, const float *x, size_t k, float *distances, int64_t *labels,
        const struct knn_search_params *params);
    void (*destroy)(struct knn_index *index);
};

struct knn_index {
    const struct knn_index_vtable *vtable;
    void *impl;
    struct knn_index_options opts;
    size_t ntotal;
    int is_trained;
};

#endif
