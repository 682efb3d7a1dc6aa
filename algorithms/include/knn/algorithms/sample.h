#ifndef KNN_ALGORITHMS_SAMPLE_H
#define KNN_ALGORITHMS_SAMPLE_H

/**
 * Reservoir sampling (spec §2.4): keeps a uniform random sample of at most `capacity` rows from a
 * stream of unknown length, in one pass, seeded. Memory is the sample only
 * (capacity * (dim + 1) floats). If fewer rows than `capacity` arrive, all are kept.
 *
 * With W workers, each worker keeps its own reservoir of its share (sample_size / W); merging
 * (knn_reservoir_merge) combines two reservoirs into a uniform sample of their combined streams.
 * Not thread-safe: one reservoir per thread.
 */

#include <stddef.h>
#include <stdint.h>

struct knn_reservoir;

int knn_reservoir_new(struct knn_reservoir **out, size_t capacity, size_t dim, uint64_t seed);
void knn_reservoir_destroy(struct knn_reservoir *r);

/** Offer n rows (row-major, dim wide) and their labels (n floats; NULL means 0.0 for each). */
int knn_reservoir_add(struct knn_reservoir *r, size_t n, const float *x, const float *labels);

/**
 * Fold `src` into `dst` so that dst holds a uniform sample (of dst's capacity) of both streams
 * together, as if they had been one stream. Both must have the same dim. `src` is left unchanged.
 */
int knn_reservoir_merge(struct knn_reservoir *dst, const struct knn_reservoir *src);

/**
 * Hand the kept rows (count * dim floats) and labels (count floats) to the caller without copying
 * them, e.g. to knn_model_build_consume(); free them with knn_free(). The reservoir is left empty
 * (only destroy it afterwards). With no rows kept, *rows and *labels are NULL and *count 0.
 */
int knn_reservoir_detach(struct knn_reservoir *r, float **rows, float **labels, size_t *count);

/** Rows kept so far (<= capacity). */
size_t knn_reservoir_count(const struct knn_reservoir *r);
/** Rows offered so far. */
uint64_t knn_reservoir_seen(const struct knn_reservoir *r);
size_t knn_reservoir_dim(const struct knn_reservoir *r);
/** The kept rows (count * dim floats) and labels (count floats), valid until the next add/merge. */
const float *knn_reservoir_rows(const struct knn_reservoir *r);
const float *knn_reservoir_labels(const struct knn_reservoir *r);

#endif
