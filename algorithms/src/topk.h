#ifndef KNN_ALGORITHMS_TOPK_H
#define KNN_ALGORITHMS_TOPK_H

/*
 * Bounded selection of the k best (distance, id) pairs (owned by the search work: topk.c).
 * For L2 the best are the smallest distances; for inner product (ip = 1) the largest.
 * The heap lives in caller-provided arrays of k entries. After knn__topk_finish the arrays hold the
 * results best first, padded with id -1 and distance +INFINITY (L2) / -INFINITY (IP).
 */

#include <stddef.h>
#include <stdint.h>

struct knn__topk {
    size_t k;
    size_t size;
    int ip;
    float *dist;
    int64_t *ids;
};

void knn__topk_init(struct knn__topk *h, size_t k, int ip, float *dist, int64_t *ids);
/**
 * Continue from a finished list: dist/ids hold k results best first, padded with id -1 (as left by
 * knn__topk_finish, or all padding). Lets a search add candidates in several passes.
 */
void knn__topk_resume(struct knn__topk *h, size_t k, int ip, float *dist, int64_t *ids);
/** Offer a candidate; kept if it beats the current worst (or the heap is not full). */
void knn__topk_push(struct knn__topk *h, float dist, int64_t id);
/** The current worst kept distance (the threshold a candidate must beat), or +/-INFINITY if not full. */
float knn__topk_threshold(const struct knn__topk *h);
/** Sort best first and pad to k. */
void knn__topk_finish(struct knn__topk *h);

#endif
