#ifndef KNN_ALGORITHMS_INDEX_FLAT_H
#define KNN_ALGORITHMS_INDEX_FLAT_H

/* Internal accessors of the Flat index (index_flat.c), for index_io.c and the IVF quantizer. */

#include "index_impl.h"

/** A new empty Flat index (opts->type is KNN_INDEX_FLAT; opts were checked by knn_index_new). */
int knn__index_flat_new(struct knn_index **out, const struct knn_index_options *opts);

/**
 * Make `x` (n * dim floats from knn_malloc & co.) the storage of an empty Flat index, without
 * copying it: the index owns and frees it from now on. On failure `x` is not taken.
 */
int knn__index_flat_adopt(struct knn_index *flat, size_t n, float *x);

/** The stored vectors, ntotal * dim floats, row-major, in id order. */
const float *knn__index_flat_vectors(const struct knn_index *flat);

#endif
