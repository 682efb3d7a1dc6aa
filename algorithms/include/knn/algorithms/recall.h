#ifndef KNN_ALGORITHMS_RECALL_H
#define KNN_ALGORITHMS_RECALL_H

/**
 * How good an approximate index is: recall@k against exact search, and the search setting (IVF
 * nprobe) that reaches a target recall.
 *
 * The queries are rows of the indexed data itself, drawn without replacement with the library's
 * generator (rng.h) from a seed, and measured *leave-one-out*: each query's own row is removed
 * from both the exact and the approximate answer (both are asked for k + 1 neighbours; the query's
 * id is dropped when present, and the first k remaining are kept). So a query counts as held out
 * of the index, which keeps all of its rows (the model a job builds does not lose 1% of its data),
 * and an IVF search does not get its query's own row, always in the first probed list, for free.
 *
 *     recall@k = (1 / (q k)) * sum over queries of |approximate top k  ∩  exact top k|
 *
 * Usage: build the truth from the vectors the index holds (before a consuming build releases
 * them), add the vectors to the index, then measure or tune.
 *
 * Thread-safety: a truth is immutable once built; measuring and tuning only search the index.
 */

#include "knn/algorithms/index.h"

#include <stddef.h>
#include <stdint.h>

/** The default number of held-out queries for n indexed rows: min(1000, ceil(n / 100)), 0 if n < 2. */
size_t knn_recall_default_queries(size_t n);

struct knn_recall_truth;

/**
 * Draw `queries` distinct rows of `base` (n rows, dim wide, row-major; `seed` picks them) and find
 * each one's exact k + 1 nearest rows under `metric` (ties: smaller id first). `queries` is
 * clamped to n and k to n - 1. `threads`: 0 = all cores. base is only read, and not kept.
 * KNN_EINVAL for n < 2, k or queries 0, or a NULL argument; KNN_ENOMEM.
 */
int knn_recall_truth_new(
    struct knn_recall_truth **out, const float *base, size_t n, size_t dim, enum knn_metric metric, size_t queries,
    size_t k, uint64_t seed, size_t threads);
void knn_recall_truth_destroy(struct knn_recall_truth *truth);

/** The number of queries and the k in effect (after clamping). */
size_t knn_recall_truth_queries(const struct knn_recall_truth *truth);
size_t knn_recall_truth_k(const struct knn_recall_truth *truth);
/** Query i's row in the base (its id in an index built from the same rows in the same order). */
size_t knn_recall_truth_row(const struct knn_recall_truth *truth, size_t i);

/**
 * Recall@k of `index` (built from the truth's base, same ids) on the truth's queries, searched with
 * `params` (NULL: the index's own settings). The index must hold the base's rows: the query vectors
 * were copied from it. KNN_EINVAL when the index's dimension differs; search errors as is.
 */
int knn_recall_measure(
    double *recall, const struct knn_index *index, const struct knn_recall_truth *truth,
    const struct knn_search_params *params);

/** The outcome of knn_recall_tune. */
struct knn_recall_tuning {
    size_t setting;   /* nprobe (IVF) or efSearch (HNSW): the smallest reaching the target, else the best seen */
    double recall;    /* the recall at that setting */
    int reached;      /* 1 if recall >= target */
    size_t evaluated; /* settings measured */
};

/**
 * The smallest nprobe in [1, nlist] (IVF) or efSearch in [1, 4096] (HNSW) whose recall reaches
 * `target` (0 < target <= 1) on the truth's queries. Settings 1, 2, 4, ... are measured until one
 * reaches the target (recall grows with either: more lists, a wider beam), then the gap to the one
 * before is bisected. If even the largest does not reach it, the smallest setting with the best
 * recall seen is returned with reached = 0. Does not change the index (set_nprobe /
 * set_ef_search are the caller's). KNN_EINVAL for a Flat index or a target outside (0, 1].
 */
int knn_recall_tune(
    struct knn_recall_tuning *out, const struct knn_index *index, const struct knn_recall_truth *truth, double target);

#endif
