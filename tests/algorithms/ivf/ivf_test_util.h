#ifndef KNN_TEST_ALGO_IVF_UTIL_H
#define KNN_TEST_ALGO_IVF_UTIL_H

/*
 * Helpers of the IVF tests: the tests' own generator (independent of the library's rng.c),
 * clustered test data, a double-precision brute force, and recall.
 */

#include <stddef.h>
#include <stdint.h>

struct iu_rng {
    uint64_t s;
};

/* splitmix64 */
uint64_t iu_next(struct iu_rng *r);
double iu_uniform(struct iu_rng *r);
double iu_gauss(struct iu_rng *r);

/*
 * n points in d dimensions drawn from `clusters` Gaussian blobs (centres ~ N(0, 1) * spread,
 * unit-ish noise), with unequal blob sizes. Deterministic for a seed. x: n * d floats.
 */
void iu_clustered(float *x, size_t n, size_t d, size_t clusters, double spread, uint64_t seed);

/*
 * The exact k best (double precision), ordered best first by (distance, id): smallest squared L2
 * or largest inner product. dist may be NULL.
 */
void iu_brute_force(
    const float *q, size_t nq, const float *base, size_t nb, size_t d, int ip, size_t k, double *dist, int64_t *ids);

/*
 * Index bytes in memory: iu_mem_write is a knn_write_fn appending to `data` (knn_realloc'd; the
 * caller knn_free's it), iu_mem_read a knn_read_fn reading from `pos` (KNN_ETRUNCATED at the end).
 */
struct iu_mem {
    uint8_t *data;
    size_t len, cap, pos;
};
int iu_mem_write(void *user, const void *data, size_t len);
int iu_mem_read(void *user, void *data, size_t len);

/* |found top-k ∩ true top-k| / (nq * k). */
double iu_recall(const int64_t *found, const int64_t *truth, size_t nq, size_t k);

#endif
