#ifndef KNN_ALGORITHMS_PART_H
#define KNN_ALGORITHMS_PART_H

/**
 * A model split over several processes (sharded serving): part p of P holds about 1/P of the
 * indexed vectors, the whole model's transform and settings, and the labels of the vectors it
 * holds. Each part searches its vectors; the per-part top-k lists are merged into the answer one
 * process with the whole model gives.
 *
 * - Flat: part p holds the rows [lo, hi) (cut at multiples of KNN_PART_FLAT_ALIGN);
 * - IVFFlat / IVFPQ: part p holds the same slice of every inverted list (cut at multiples of
 *   KNN_PART_LIST_ALIGN), and the whole coarse quantizer and product quantizer (every part
 *   probes the same lists for a query).
 * Only the bytes of the part are read (positional reads: a local file, or ranged GETs); the
 * index file is never held whole.
 *
 * Same answers: a vector's distance to a query does not depend on which part holds it (the
 * kernels take rows in groups aligned as in the whole index), and equal distances are ordered by
 * smaller id first everywhere, so the merged top-k equals the whole index's, ties included.
 *
 * Typical use (rank 0 of a world merges; every rank holds a part):
 *     knn_model_part_load(&p, dir, rank, size, NULL);
 *     rank 0: knn_model_part_transform(p, n, x, xt)              -> broadcast xt
 *     every rank: knn_model_part_search(p, n, xt, &o, mine)       -> gather on rank 0
 *     rank 0: knn_neighbours_merge(...); knn_model_part_predict(p, n, merged, &o, &predictions)
 */

#include "knn/algorithms/index.h"
#include "knn/algorithms/model.h"

#include <stddef.h>
#include <stdint.h>

/** Flat parts start at multiples of this many rows (the kernels' row groups and tiles: 8, 16, 256). */
#define KNN_PART_FLAT_ALIGN 256
/** Slices of inverted lists start at multiples of this many entries (narrow IVFFlat blocks). */
#define KNN_PART_LIST_ALIGN 8

/** Reads exactly `len` bytes at `offset` or fails with a KNN_E* code (e.g. pread, a ranged GET). */
typedef int(knn_pread_fn)(void *user, void *data, size_t len, uint64_t offset);

struct knn_index_part_info {
    uint64_t ntotal;    /* vectors in the whole index */
    int64_t id_offset;  /* Flat: the part's local id i is the index's id_offset + i; IVF: 0 */
    uint64_t held;      /* vectors this part holds */
};

/**
 * Read part `part` of `nparts` of a FAISS index file of `total_len` bytes through positional
 * reads, seeking over the other parts. The file is checked as knn_index_read_faiss checks it
 * (sizes before allocations, trailing bytes), ids only for the entries read.
 */
int knn_index_read_faiss_part(
    struct knn_index **out, struct knn_index_part_info *info, knn_pread_fn *pread, void *user, uint64_t total_len,
    size_t part, size_t nparts);

/** One neighbour as a part answers it (16 bytes: the unit of the per-part lists). */
struct knn_neighbour {
    float distance; /* padding: +INFINITY (L2) / -INFINITY (inner product) */
    float label;    /* NaN for padding */
    int64_t id;     /* index id in the whole model; -1 for padding */
};

/**
 * Merge nparts lists into one: `in` holds nparts blocks of n * k neighbours (part-major: part p's
 * query i at in[(p * n + i) * k]), each best first; out gets n * k, best first, with the whole
 * index's order (distance, then smaller id) and padding where fewer than k exist. `ip`: larger
 * distances are better (inner product, COSINE). KNN_ENOMEM only.
 */
int knn_neighbours_merge(
    const struct knn_neighbour *in, size_t nparts, size_t n, size_t k, int ip, struct knn_neighbour *out);

struct knn_model_part;

struct knn_model_part_options {
    int verify; /* check the model's SHA-256 sums (reads each file once more, streaming) */
};

#define KNN_MODEL_PART_OPTIONS_INIT {1}

/**
 * Load part `part` of `nparts` of a model directory (knn_model_load's files and checks; only the
 * part's vectors, codes, ids and labels are kept). `opts` may be NULL.
 */
int knn_model_part_load(
    struct knn_model_part **out, const char *dir, size_t part, size_t nparts,
    const struct knn_model_part_options *opts);
void knn_model_part_destroy(struct knn_model_part *p);

const struct knn_model_config *knn_model_part_config(const struct knn_model_part *p);
/** The model with this part's index (its config and transform; search it through the part). */
const struct knn_model *knn_model_part_model(const struct knn_model_part *p);
/** Vectors in the whole model, and in this part. */
size_t knn_model_part_ntotal(const struct knn_model_part *p);
size_t knn_model_part_held(const struct knn_model_part *p);
/** Bytes of vectors/codes, ids and labels this part holds (the part's share, not the fixed overhead). */
uint64_t knn_model_part_bytes(const struct knn_model_part *p);
/** The k a search uses (the model's k clamped to the whole model's vectors), and the query width after the transform. */
size_t knn_model_part_k(const struct knn_model_part *p);
size_t knn_model_part_query_dim(const struct knn_model_part *p);

/** Check n queries (cfg.feature_dim wide, finite) and transform them: out gets n * query_dim floats. */
int knn_model_part_transform(const struct knn_model_part *p, size_t n, const float *x, float *out);

/** This part's k nearest of n transformed queries: out gets n * k neighbours (opts: nprobe, threads). */
int knn_model_part_search(
    const struct knn_model_part *p, size_t n, const float *xt, const struct knn_predict_options *opts,
    struct knn_neighbour *out);

/** Predictions from merged neighbours (n * k), as knn_model_predict makes them. */
int knn_model_part_predict(
    const struct knn_model_part *p, size_t n, const struct knn_neighbour *merged, const struct knn_predict_options *opts,
    struct knn_predictions *out);

#endif
