#ifndef KNN_ALGORITHMS_INDEX_IMPL_H
#define KNN_ALGORITHMS_INDEX_IMPL_H

/*
 * The index base (faiss-like): a vtable per index type, shared state in struct knn_index.
 * Serialization is not in the vtable: index_io.c writes and reads every type in FAISS's format,
 * reaching the data through each type's internal accessors (index_flat.h, index_ivf.h).
 *
 * Contract between index.c and the types:
 * - a type's constructor allocates the struct knn_index (knn_calloc) and its impl, and fills opts,
 *   vtable and is_trained; vtable->destroy releases both (knn_index_destroy only dispatches);
 * - index.c checks the public arguments (NULL pointers, k >= 1, finite values, "trained before
 *   add") before dispatching, and answers n == 0 and empty indexes itself (padding);
 * - add appends with ids ntotal.. and updates ntotal; train sets is_trained (train may be NULL:
 *   nothing to train);
 * - search fills distances/labels per index.h, with equal distances ordered by smaller id first;
 *   params is never NULL (index.c passes zeros for "the index's own setting").
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
