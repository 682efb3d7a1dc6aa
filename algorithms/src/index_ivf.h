#ifndef KNN_ALGORITHMS_INDEX_IVF_H
#define KNN_ALGORITHMS_INDEX_IVF_H

/*
 * IVFFlat, IVFPQ and IVF-SQ8 (index_ivf.c), in FAISS's design: a Flat coarse quantizer holding nlist
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

/* ---- Internal accessors for index_io.c (FAISS files) ---- */

struct knn__pq;

/** The coarse quantizer (a Flat index of nlist centroids; NULL before training). */
const struct knn_index *knn__ivf_quantizer(const struct knn_index *ivf);
/** Bytes per list entry: dim * 4 (IVFFlat) or pq_m (IVFPQ). */
size_t knn__ivf_code_size(const struct knn_index *ivf);
/**
 * List l's entries: their count, codes and ids. The codes are in the index's own layout: row-major
 * (size * code_size bytes) for IVFPQ and wide IVFFlat, blocks of 8 for narrow IVFFlat; use
 * knn__ivf_list_rows for row-major codes whatever the layout.
 */
void knn__ivf_list(const struct knn_index *ivf, size_t l, size_t *size, const uint8_t **codes, const int64_t **ids);
/** List l's codes, row-major (as in FAISS files), into out (size * code_size bytes). */
void knn__ivf_list_rows(const struct knn_index *ivf, size_t l, uint8_t *out);
/** IVFPQ: the product quantizer (NULL for IVFFlat), and whether codes encode residuals. */
const struct knn__pq *knn__ivf_pq(const struct knn_index *ivf);
int knn__ivf_by_residual(const struct knn_index *ivf);
struct knn__sq;
/** IVF-SQ8: the scalar quantizer (NULL for the other types). */
const struct knn__sq *knn__ivf_sq(const struct knn_index *ivf);

/**
 * Reader: make an empty index trained from parts read from a file. Takes ownership of `quantizer`
 * (a Flat index of nlist vectors of dim floats) whatever the outcome; `trained` is copied: IVFPQ's
 * centroids (pq_m * 256 * dim / pq_m floats) or IVF-SQ8's ranges (2 * dim floats, sq.h); NULL for
 * IVFFlat. Marks the index trained.
 */
int knn__ivf_install(struct knn_index *ivf, struct knn_index *quantizer, const float *trained, int by_residual);

/**
 * Reader: give the (empty) list l `size` entries and return where their row-major codes and ids
 * go. The caller fills them, calls knn__ivf_list_finish(l) (which moves the codes into the index's
 * layout), and at the end sets index->ntotal to the total.
 */
int knn__ivf_list_alloc(struct knn_index *ivf, size_t l, size_t size, uint8_t **codes, int64_t **ids);
int knn__ivf_list_finish(struct knn_index *ivf, size_t l);

#endif
