#ifndef KNN_ALGORITHMS_RNG_H
#define KNN_ALGORITHMS_RNG_H

/*
 * The library's one random generator, documented so that any implementation can reproduce it
 * (the dimension-reduction transform is rebuilt from its seed at inference, on any machine):
 *
 * - seeding: the four 64-bit words of the state are four successive outputs of splitmix64
 *   started at `seed` (Vigna's splitmix64: s += 0x9E3779B97F4A7C15; z = s;
 *   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *   return z ^ (z >> 31));
 * - the stream: xoshiro256** (Blackman & Vigna, 2018);
 * - knn__rng_below(n): Lemire's multiply-shift with rejection, uniform on [0, n);
 * - knn__rng_double(): the top 53 bits of one output times 2^-53, uniform on [0, 1).
 *
 * Not thread-safe: one generator per thread.
 */

#include <stdint.h>

struct knn__rng {
    uint64_t s[4];
};

void knn__rng_seed(struct knn__rng *rng, uint64_t seed);
uint64_t knn__rng_next(struct knn__rng *rng);
/** Uniform integer in [0, n); n must be > 0. */
uint64_t knn__rng_below(struct knn__rng *rng, uint64_t n);
/** Uniform double in [0, 1). */
double knn__rng_double(struct knn__rng *rng);

#endif
