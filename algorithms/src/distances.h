#ifndef KNN_ALGORITHMS_DISTANCES_H
#define KNN_ALGORITHMS_DISTANCES_H

/*
 * Distance kernels shared by the index types (owned by the search work: distances.c).
 * Vectors are float32, d wide. Accumulation is in float, as FAISS does.
 */

#include "topk.h"

#include <stddef.h>
#include <stdint.h>

/** Squared L2 distance between two vectors. */
float knn__l2sqr(const float *a, const float *b, size_t d);
/** Inner product of two vectors. */
float knn__dot(const float *a, const float *b, size_t d);
/** out[i] = ||x_i||^2 for n rows. */
void knn__norms_sqr(const float *x, size_t n, size_t d, float *out);
/** Scale each of n rows to unit L2 norm (a zero row stays zero). */
void knn__normalize_rows(float *x, size_t n, size_t d);

/**
 * Exact k-NN of nq queries against nb base vectors by tiled sgemm (||x||^2 + ||y||^2 - 2 x.y for L2,
 * x.y for inner product), single-threaded (the caller parallelizes over query blocks or base
 * ranges). Results are merged into per-query top-k arrays (distances/labels, nq*k, best first after
 * the final call); base ids are offset by `id_offset`. `base_norms` (nb floats) may be NULL for IP.
 * `ip` selects inner product (largest best) instead of L2 (smallest best).
 * Call with `init` non-zero for the first range to reset the result arrays.
 */
int knn__exact_search_block(
    const float *queries, size_t nq, const float *base, const float *base_norms, size_t nb, size_t d, int ip, size_t k,
    float *distances, int64_t *labels, int64_t id_offset, int init);

/**
 * The base packed once for the register-blocked kernel (panels of 8 vectors, dimension-major,
 * zero-padded to a multiple of 16 vectors): knn__packed_floats is the size in floats, 0 when the
 * kernel does not apply (d > 128, or no x86); knn__pack_base fills it (32-byte aligned memory).
 */
size_t knn__packed_floats(size_t nb, size_t d);
void knn__pack_base(const float *base, size_t nb, size_t d, float *packed);

/**
 * knn__exact_search_block on a base packed by knn__pack_base: nothing is re-packed per call, so a
 * few queries cost what they compute. `packed` points at the range's first vector, which must be a
 * multiple of 16 from the start of the packed base; only the base's last range may end off a
 * multiple of 16. Needs knn__simd_enabled(). A query's results do not depend on the other queries.
 */
int knn__exact_search_packed(
    const float *queries, size_t nq, const float *packed, const float *base_norms, size_t nb, size_t d, int ip,
    size_t k, float *distances, int64_t *labels, int64_t id_offset, int init);

/**
 * Exact k-NN of one query against nb base vectors, streaming the base once (a memory-bound GEMV with
 * the distance and the threshold test fused: the right kernel for a single query or a handful).
 * Candidates are offered to `h` (whose `ip` selects the metric), with ids offset by `id_offset`.
 * L2 distances are computed directly as sum((x - y)^2).
 */
void knn__scan_one(const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset);

/** Non-zero when the AVX2+FMA kernels are in use (the CPU has them and they are not disabled). */
int knn__simd_enabled(void);
/** Tests: force the portable kernels (on = 0) or allow the SIMD ones again (on = 1). */
void knn__simd_set_enabled(int on);

#endif
