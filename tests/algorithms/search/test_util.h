#ifndef KNN_TEST_ALGO_SEARCH_UTIL_H
#define KNN_TEST_ALGO_SEARCH_UTIL_H

/* Helpers shared by the search tests: a test-only generator and a double-precision reference. */

#include <stddef.h>
#include <stdint.h>

/* A small generator of the tests' own (independent of the library's rng.c). */
struct tu_rng {
    uint64_t s;
};

static inline uint64_t tu_next(struct tu_rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double tu_uniform(struct tu_rng *r)
{
    return (double)(tu_next(r) >> 11) * 0x1.0p-53;
}

/* Integer in [lo, hi]. */
static inline int tu_int(struct tu_rng *r, int lo, int hi)
{
    return lo + (int)(tu_next(r) % (uint64_t)(hi - lo + 1));
}

double tu_gauss(struct tu_rng *r);
void tu_fill_gauss(struct tu_rng *r, float *x, size_t n);

/*
 * The exact k best of nb base vectors for each of nq queries, computed in double precision and
 * ordered by (distance, id) (best first: smallest L2, largest inner product; equal distances by
 * smaller id). ip: inner product. Writes nq*k distances (as double) and ids.
 */
void tu_brute_force(
    const float *q, size_t nq, const float *base, size_t nb, size_t d, int ip, size_t k, double *dist, int64_t *ids);

#endif
