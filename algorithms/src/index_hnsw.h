#ifndef KNN_ALGORITHMS_INDEX_HNSW_H
#define KNN_ALGORITHMS_INDEX_HNSW_H

/*
 * HNSW over a Flat storage (index_hnsw.c): FAISS's IndexHNSWFlat, graph and search.
 *
 * The graph is kept exactly as FAISS keeps it (faiss/impl/HNSW.h), so index_io.c writes and reads
 * it verbatim and faiss.read_index searches the same graph the same way:
 * - levels[i] = 1 + the top layer of vector i;
 * - cum_nneighbor_per_level[l] = the slots of layers below l (layer 0 has 2M, the others M);
 * - offsets[i] = the first slot of vector i in `neighbors` (offsets[ntotal] = the total); layer l of
 *   vector i is neighbors[offsets[i] + cum[l] .. offsets[i] + cum[l + 1]), padded with -1;
 * - assign_probas[l] = the probability that a vector's top layer is l.
 * Distances inside the graph are "smaller is better": squared L2, or minus the inner product.
 */

#include "index_impl.h"

#include <stddef.h>
#include <stdint.h>

struct knn__hnsw_graph {
    double *assign_probas;
    size_t nprobas;
    int32_t *cum_nneighbor_per_level;
    size_t ncum;
    int32_t *levels;   /* ntotal */
    uint64_t *offsets; /* ntotal + 1 */
    int32_t *neighbors;
    size_t nneighbors; /* offsets[ntotal] */
    int32_t entry_point, max_level, ef_construction, ef_search, upper_beam;
};

int knn__index_hnsw_new(struct knn_index **out, const struct knn_index_options *opts);

/** The graph and the Flat storage of vectors (for index_io.c). */
const struct knn__hnsw_graph *knn__hnsw_graph(const struct knn_index *index);
const struct knn_index *knn__hnsw_storage(const struct knn_index *index);

/**
 * Reader: give an empty HNSW index the graph (its arrays, knn_malloc'ed, are taken and the struct
 * zeroed) and the storage (a Flat index of ntotal vectors, taken) whatever the outcome. The graph
 * is checked: neighbours in [-1, ntotal), offsets increasing by cum[levels[i]], entry point and
 * max level consistent. KNN_EFORMAT otherwise.
 */
int knn__hnsw_install(struct knn_index *index, struct knn__hnsw_graph *graph, struct knn_index *storage);
void knn__hnsw_graph_clean_up(struct knn__hnsw_graph *g);

#endif
