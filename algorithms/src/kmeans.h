#ifndef KNN_ALGORITHMS_KMEANS_H
#define KNN_ALGORITHMS_KMEANS_H

/*
 * k-means (kmeans.c), as FAISS's Clustering does it, for the IVF coarse quantizer and the PQ
 * sub-quantizers:
 * - subsampling: above k * max_points_per_centroid points, a uniform seeded subset of that many
 *   is used (FAISS: 256 per centroid); the subset is a list of row numbers, never a copy;
 * - initialization: k distinct training points chosen uniformly (seeded);
 * - Lloyd iterations: assign every point to its nearest centroid, move each centroid to the mean
 *   of its points; for the inner-product metric the assignment is by largest inner product and
 *   centroids are scaled to unit norm after each update (spherical k-means, as FAISS does for
 *   IVF over inner product);
 * - empty clusters are split (FAISS's rule): an empty centroid takes a copy of a centroid chosen
 *   with probability proportional to its size, and both copies are moved apart by a relative
 *   1/1024 in opposite directions; the points of the big cluster are split between them by the
 *   next assignment.
 *
 * Assignment: for wide vectors (d > KNN__KMEANS_SMALL_D) a Flat search through the shared batch
 * kernel (knn__exact_search_block, k = 1); for narrow vectors (PQ sub-vectors, topic vectors) a
 * fused register-blocked scan that never materializes the n x k distance matrix (struct
 * knn__centroids below, also used to PQ-encode), where, for L2, Hamerly's bounds (kmeans.c) skip
 * the points whose nearest centroid cannot have changed since the last iteration.
 *
 * Determinism: for a given seed, data and thread count, the centroids are bit-identical between
 * runs. With a different thread count they can differ in the last bits (the BLAS tiles differ).
 */

#include <stddef.h>
#include <stdint.h>

/** Vectors at most this wide are assigned by the fused scan instead of sgemm. */
#define KNN__KMEANS_SMALL_D 32

struct knn__kmeans_options {
    size_t niter;                   /* Lloyd iterations (FAISS: 10 for IVF, 25 for PQ) */
    size_t max_points_per_centroid; /* subsample above k * this many points; 0 = use all */
    int ip;                         /* inner product: assign by largest x.c, spherical centroids */
    uint64_t seed;
    size_t threads; /* 0 = all cores */
    int no_bounds;  /* plain Lloyd's iterations even for L2 (tests compare the two) */
    /*
     * Balancing (0 = off): after the niter plain iterations, balance_niter iterations on
     * balance_points_per_centroid * k of the training points in which a point goes to the centroid
     * minimizing ||x - c||^2 + balance * mean_d2 * size_c / mean_size, where size_c is the number
     * of points nearest to c and mean_d2 the mean squared distance to the nearest centroid. Dense
     * regions get more centroids, so inverted lists come out even (see index_ivf.c). With ip, the
     * centroids are unit vectors, whose IP order is their L2 order: balancing runs in L2.
     */
    double balance;
    size_t balance_niter;
    size_t balance_points_per_centroid;
};

#define KNN__KMEANS_OPTIONS_INIT                                                                                       \
    {                                                                                                                  \
        10, 256, 0, 1234, 0, 0, 0.0, 0, 0                                                                              \
    }

/**
 * Train k centroids on n points of x (n x d, row-major) into `centroids` (k x d, caller-owned).
 * Needs 1 <= k <= n: KNN_EINVAL otherwise (the caller decides whether to clamp k; the IVF index
 * refuses, as FAISS does, and the model clamps nlist to the sample size before). KNN_ENOMEM.
 * Narrow L2 runs use Hamerly's bounds to skip points whose nearest centroid cannot have changed.
 */
int knn__kmeans_train(
    float *centroids, const struct knn__kmeans_options *opts, size_t n, size_t d, const float *x, size_t k);

/**
 * k centroids of d floats prepared for the fused nearest-centroid scan: groups of 8 centroids
 * stored coordinate-major, with their squared norms. Immutable once made; scans are thread-safe.
 */
struct knn__centroids {
    size_t k, d;
    size_t ngroups; /* ceil(k / 8) */
    int ip;         /* nearest = largest inner product instead of smallest L2 distance */
    float *table;   /* ngroups * d * 8 floats (32-byte aligned) */
    float *bias;    /* ngroups * 8: ||c||^2 (L2) or 0 (IP); +INFINITY for padding lanes */
};

int knn__centroids_init(struct knn__centroids *c, const float *centroids, size_t k, size_t d, int ip);
void knn__centroids_clean_up(struct knn__centroids *c);

/**
 * For each of n vectors (vector i starts at x + i * stride, d floats) the index of its nearest
 * centroid (ties: the smallest index) into assign[i], and, if `dist` is not NULL, its squared L2
 * distance (L2: ||x||^2 + ||c||^2 - 2 x.c) or inner product (IP) into dist[i].
 * Any d; fastest for d <= KNN__KMEANS_SMALL_D (x held in registers). Single-threaded (callers
 * parallelize). Uses AVX2/FMA when the CPU has them, portable C otherwise.
 */
void knn__centroids_nearest(
    const struct knn__centroids *c, size_t n, const float *x, size_t stride, int32_t *assign, float *dist);

/**
 * As knn__centroids_nearest, plus the second nearest centroid's distance (L2; +INFINITY when
 * k = 1) in d2[i]. d1 and d2 may not be NULL.
 */
void knn__centroids_nearest2(
    const struct knn__centroids *c, size_t n, const float *x, size_t stride, int32_t *assign, float *d1, float *d2);

/** out[j] = x . c_j for the k centroids (x: d floats). Single-threaded. */
void knn__centroids_dots(const struct knn__centroids *c, const float *x, float *out);

#endif
