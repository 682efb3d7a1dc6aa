#ifndef KNN_ALGORITHMS_PQ_H
#define KNN_ALGORITHMS_PQ_H

/*
 * The product quantizer (pq.c), FAISS's ProductQuantizer with 8-bit codes: a d-dimensional vector
 * is cut into m sub-vectors of dsub = d / m floats; sub-vector i is replaced by the index (one
 * byte) of its nearest centroid among the ksub = 256 centroids of sub-quantizer i. A code is m
 * bytes. Centroids are stored as FAISS stores them: m x ksub x dsub floats, sub-quantizer major.
 *
 * Ownership: a struct knn__pq owns its centroids and prepared tables; IVFPQ (index_ivf.c) owns
 * one PQ; the coarse quantizer is the IVF index's, not the PQ's. Once trained (or read) and
 * prepared, a PQ is immutable and its encode/table functions are thread-safe.
 */

#include "kmeans.h"

#include <stddef.h>
#include <stdint.h>

/** The only code width we write or read (FAISS's nbits); 256 centroids per sub-quantizer. */
#define KNN__PQ_NBITS 8
#define KNN__PQ_KSUB 256

/** k-means iterations per sub-quantizer (FAISS's ProductQuantizer default). */
#define KNN__PQ_NITER 25

struct knn__pq {
    size_t d, m, dsub, ksub;
    float *centroids;           /* m * ksub * dsub */
    float *norms;               /* m * ksub: ||c||^2 of every centroid (after prepare) */
    struct knn__centroids *sub; /* m prepared sub-quantizers (after prepare) */
};

/**
 * An untrained PQ for d-dimensional vectors with m sub-quantizers (m must divide d), centroids
 * zeroed. KNN_EINVAL, KNN_ENOMEM.
 */
int knn__pq_init(struct knn__pq *pq, size_t d, size_t m);
void knn__pq_clean_up(struct knn__pq *pq);

/** Build the encoding and table structures from pq->centroids (after training or reading). */
int knn__pq_prepare(struct knn__pq *pq);

/**
 * Train the m sub-quantizers by k-means (KNN__PQ_NITER iterations, at most 256 points per
 * centroid as FAISS samples) on n vectors, then prepare. Needs n >= 256 (KNN_EINVAL: FAISS
 * refuses too). Sub-quantizers train in parallel over `threads` workers (0 = all cores).
 */
int knn__pq_train(struct knn__pq *pq, size_t n, const float *x, uint64_t seed, size_t threads);

/** Codes (n * m bytes) of n vectors (row i at x + i * d). Single-threaded. */
void knn__pq_encode(const struct knn__pq *pq, size_t n, const float *x, uint8_t *codes);

/** Reconstruct n vectors (n * d floats) from their codes. */
void knn__pq_decode(const struct knn__pq *pq, size_t n, const uint8_t *codes, float *x);

/** table[i * ksub + j] = x_i . c_ij: inner products of x's sub-vectors with every centroid. */
void knn__pq_dot_table(const struct knn__pq *pq, const float *x, float *table);

/** table[i * ksub + j] = ||x_i - c_ij||^2 (for IVFPQ without residuals). */
void knn__pq_l2_table(const struct knn__pq *pq, const float *x, float *table);

#endif
