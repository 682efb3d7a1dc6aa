#ifndef KNN_ALGORITHMS_INDEX_FLAT_H
#define KNN_ALGORITHMS_INDEX_FLAT_H

/* Internal accessors of the Flat index (index_flat.c), for index_io.c and the IVF quantizer. */

#include "index_impl.h"

/** A new empty Flat index (opts->type is KNN_INDEX_FLAT; opts were checked by knn_index_new). */
int knn__index_flat_new(struct knn_index **out, const struct knn_index_options *opts);

/** The stored vectors, ntotal * dim floats, row-major, in id order. */
const float *knn__index_flat_vectors(const struct knn_index *flat);

#endif
