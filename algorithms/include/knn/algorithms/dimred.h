#ifndef KNN_ALGORITHMS_DIMRED_H
#define KNN_ALGORITHMS_DIMRED_H

/**
 * Dimension reduction (spec §2.5), rebuilt from (type, input_dim, target_dim, seed) alone, so a
 * model stores those four values and inference applies the identical transform:
 * - sign: y = x R, R input_dim x target_dim of i.i.d. fair +-1 entries scaled by 1/sqrt(target_dim);
 * - fjlt (SRHT): zero-pad to the next power of two d', flip signs with a random diagonal D, apply
 *   the normalized Walsh-Hadamard transform, keep target_dim coordinates chosen uniformly without
 *   replacement, scaled by sqrt(d'/target_dim).
 * The random stream is our own documented generator (splitmix64 seeding xoshiro256**), so the
 * transform is the same on every machine and build.
 *
 * A transform is immutable after creation; apply is thread-safe.
 */

#include <stddef.h>
#include <stdint.h>

enum knn_dimred_type {
    KNN_DIMRED_NONE = 0,
    KNN_DIMRED_SIGN = 1,
    KNN_DIMRED_FJLT = 2,
};

struct knn_dimred;

int knn_dimred_new(
    struct knn_dimred **out, enum knn_dimred_type type, size_t input_dim, size_t target_dim, uint64_t seed);
void knn_dimred_destroy(struct knn_dimred *t);

/** y (n * target_dim) = transform of x (n * input_dim). */
int knn_dimred_apply(const struct knn_dimred *t, size_t n, const float *x, float *y);

size_t knn_dimred_input_dim(const struct knn_dimred *t);
size_t knn_dimred_output_dim(const struct knn_dimred *t);

/** "sign", "fjlt" (and "none"); returns 0 or KNN_EINVAL. */
int knn_dimred_type_parse(enum knn_dimred_type *out, const char *name);
const char *knn_dimred_type_name(enum knn_dimred_type type);

#endif
