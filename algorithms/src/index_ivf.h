#ifndef KNN_ALGORITHMS_INDEX_IVF_H
#define KNN_ALGORITHMS_INDEX_IVF_H

/*
 * IVFFlat and IVFPQ (index_ivf.c), in FAISS's design: a Flat coarse quantizer holding nlist
 * centroids (trained by k-means, kmeans.c), one inverted list per centroid holding the ids and
 * codes of the vectors assigned to it (IVFFlat: the raw float vectors; IVFPQ: 8-bit product
 * quantizer codes of the residual x - centroid, pq.c). A search probes the nprobe lists whose
 * centroids are nearest to the query and scans them.
 *
 * Default nprobe. FAISS's default (1) finds only ~86% of the true top 10 at nlist = sqrt(N), so
 * models do not use it: a model whose config leaves nprobe at 0 gets knn__ivf_default_nprobe(nlist)
 * (see below; model.c calls it), and stores the value in model_algo-1.json.
 */

#include "index_impl.h"

#include <stddef.h>
#include <stdint.h>

/**
 * A new empty IVFFlat or IVFPQ index (opts->type). Checks: dim >= 1, nlist >= 1, nprobe >= 1;
 * IVFPQ needs pq_m >= 1 dividing dim and the L2 metric. KNN_EINVAL otherwise (message names the
 * option). Called by knn_index_new() for the IVF types.
 */
int knn__index_ivf_new(struct knn_index **out, const struct knn_index_options *opts);

/**
 * The nprobe a model uses when its configuration does not set one: ceil(sqrt(nlist)) clamped to
 * [min(8, nlist), nlist]. With nlist = sqrt(N) ("auto") this scans ~N^(3/4) vectors per query;
 * measured recall@10 against exact search is >= 0.97 on the benchmark data sets
 * (bench/algorithms/ivf/README.md), where FAISS's default of 1 gives 0.86.
 */
size_t knn__ivf_default_nprobe(size_t nlist);

#endif
