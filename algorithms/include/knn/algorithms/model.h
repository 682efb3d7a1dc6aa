#ifndef KNN_ALGORITHMS_MODEL_H
#define KNN_ALGORITHMS_MODEL_H

/**
 * A SageMaker k-NN model: the transform pipeline (dimension reduction, COSINE normalization, PQ
 * zero-padding), the index, one label per indexed vector, and the prediction settings (k,
 * predictor type) that SageMaker reads from model_algo-1.json at inference.
 *
 * On disk (spec §6), in one directory:
 * - model_algo-1         the index in FAISS's file format (faiss.read_index loads it);
 * - model_algo-1.labels  raw little-endian float32, one per indexed vector;
 * - model_algo-1.json    k, predictor_type, dimension_reduction {type, seed, target_dim, input_dim},
 *                        normalize, version, and ours: index_type, index_metric, nlist, pq_m,
 *                        nprobe, effective_dim, and the SHA-256 of the two other files.
 * Editing k or predictor_type in the JSON changes inference, as in SageMaker.
 *
 * Thread-safety: a built or loaded model is immutable; predict may run concurrently.
 */

#include "knn/algorithms/dimred.h"
#include "knn/algorithms/index.h"

#include <stddef.h>
#include <stdint.h>

enum knn_predictor {
    KNN_PREDICTOR_CLASSIFIER = 0, /* majority vote; ties: the label whose nearest occurrence is closest */
    KNN_PREDICTOR_REGRESSOR = 1,  /* mean of the k labels */
};

enum knn_model_metric {
    KNN_MODEL_METRIC_L2 = 0,
    KNN_MODEL_METRIC_INNER_PRODUCT = 1,
    KNN_MODEL_METRIC_COSINE = 2, /* normalize rows and queries, then inner product */
};

struct knn_model_config {
    size_t feature_dim; /* width of training rows and queries */
    size_t k;
    enum knn_predictor predictor;
    enum knn_index_type index_type;
    enum knn_model_metric metric;
    size_t nlist;  /* IVF lists (the runner resolves "auto" = sqrt(sample_size)); clamped to the row count */
    size_t pq_m;   /* IVFPQ sub-quantizers (spec §2.6 padding rule applies) */
    size_t nprobe; /* IVF default nprobe stored in the model; 0 = the default of spec §8 */
    enum knn_dimred_type dimred;
    size_t dimred_target;
    uint64_t dimred_seed;
    uint64_t seed;  /* k-means / PQ */
    size_t threads; /* 0 = all cores */
    /* Build only (not stored): recall@k of an approximate index on this many held-out queries drawn
     * from the rows (recall.h; 0 = not measured, unless target_recall asks for it), and the target
     * recall the IVF nprobe is tuned to (0 = none: nprobe stays as configured). */
    size_t recall_queries;
    double target_recall;
    /* HNSW (hnsw): links per vector (M), the build beam, and the search beam stored in the model
     * (0 = the defaults: 32, 40 and KNN_MODEL_DEFAULT_EF_SEARCH) */
    size_t hnsw_m;
    size_t ef_construction;
    size_t ef_search;
};

/* FAISS's default efSearch (16) finds too few of the true neighbours for k = 10 on real data. */
#define KNN_MODEL_DEFAULT_EF_SEARCH 64

#define KNN_MODEL_CONFIG_INIT                                                                                       \
    {0, 0, KNN_PREDICTOR_CLASSIFIER, KNN_INDEX_FLAT, KNN_MODEL_METRIC_L2, 0, 0, 0, KNN_DIMRED_NONE, 0, 3, 1234, 0, 0, 0.0, \
     0, 0, 0}

/** The recall a build measured (knn_model_recall), in the index's own space (after the transform). */
struct knn_model_recall {
    size_t k;          /* recall@k: the model's k, at most the rows - 1 */
    size_t queries;    /* held-out queries */
    const char *param; /* the search setting: "nprobe" (IVF) or "efSearch" (HNSW) */
    size_t param_value;
    double value;      /* the recall at that setting, 0..1 */
    double target;     /* the target asked for, 0 = none */
    int reached;       /* with a target: 1 if some setting reached it (else param_value is the best seen) */
    size_t evaluated;  /* settings measured (1 without a target) */
    double seconds;    /* the exact search, measurement and tuning together */
};

struct knn_model;

/**
 * Build a model from n sampled rows (feature_dim wide) and their labels: transform, train, add.
 * The model does not keep x or labels' memory (it copies what it needs).
 */
int knn_model_build(
    struct knn_model **out, const struct knn_model_config *cfg, size_t n, const float *x, const float *labels);

/**
 * As knn_model_build, but the model takes `x` and `labels` (n rows, from knn_malloc & co., e.g.
 * knn_reservoir_detach): a Flat index keeps x as its storage (COSINE rows are normalized in
 * place), other indexes release x page by page as the rows are added, and the labels become the
 * model's. So the peak memory is about one copy of the sample, not two. x and labels are freed
 * (or kept by the model) whatever the outcome: the caller must not use them afterwards.
 */
int knn_model_build_consume(
    struct knn_model **out, const struct knn_model_config *cfg, size_t n, float *x, float *labels);

void knn_model_destroy(struct knn_model *model);

struct knn_predict_options {
    int verbose;    /* also return the k neighbours' labels and distances */
    size_t nprobe;  /* 0 = the model's */
    size_t threads; /* 0 = the model's */
    int ids;        /* also return the k neighbours' ids: their rows in the sample, 0-based */
    size_t ef_search; /* HNSW: 0 = the model's */
};

#define KNN_PREDICT_OPTIONS_INIT {0, 0, 0, 0, 0}

/**
 * Predictions for n queries. `k` is the model's k clamped to the number of indexed vectors (a
 * warning is logged once when clamping). labels/distances are n*k arrays, set only when verbose,
 * in the conventions of spec §3.3 (L2: squared distances ascending; INNER_PRODUCT/COSINE:
 * similarities, best first); equal distances are ordered by index id. A neighbour an IVF search could
 * not fill (its probed lists held fewer than k vectors) has label NaN and distance +INFINITY (L2) /
 * -INFINITY, and is left out of the vote or mean (NaN prediction if none was found).
 * Free with knn_predictions_clean_up().
 */
struct knn_predictions {
    size_t n;
    size_t k;
    float *predicted; /* n */
    float *labels;    /* n * k, or NULL */
    float *distances; /* n * k, or NULL */
    int64_t *ids;     /* n * k when asked (opts->ids), else NULL; -1 for a neighbour not found */
};

int knn_model_predict(
    const struct knn_model *model, size_t n, const float *x, const struct knn_predict_options *opts,
    struct knn_predictions *out);
void knn_predictions_clean_up(struct knn_predictions *p);

/** Write the three files into `dir` (which must exist). */
int knn_model_save(const struct knn_model *model, const char *dir);

/**
 * Load a model directory (ours, or SageMaker's k-NN layout with a FAISS-written index). Every size
 * is checked before allocating; checksums, when present, are verified; a corrupt or mismatched
 * file is rejected with a message naming the file and the problem.
 */
int knn_model_load(struct knn_model **out, const char *dir);

/** The settings in effect (after load: what the JSON says). */
const struct knn_model_config *knn_model_get_config(const struct knn_model *model);
size_t knn_model_ntotal(const struct knn_model *model);
/** What knn_model_build measured (recall_queries / target_recall), or NULL (Flat, not asked, loaded). */
const struct knn_model_recall *knn_model_recall(const struct knn_model *model);
const struct knn_index *knn_model_index(const struct knn_model *model);

/**
 * "classifier"/"regressor", "L2"/"INNER_PRODUCT"/"COSINE", "faiss.Flat"/"faiss.IVFFlat"/"faiss.IVFPQ" and
 * ours (knn-runner's KnnRunner.IndexType, not a SageMaker hyperparameter value): "ivf_sq8", "hnsw".
 */
int knn_predictor_parse(enum knn_predictor *out, const char *name);
const char *knn_predictor_name(enum knn_predictor p);
int knn_model_metric_parse(enum knn_model_metric *out, const char *name);
const char *knn_model_metric_name(enum knn_model_metric m);
int knn_index_type_parse(enum knn_index_type *out, const char *name);
const char *knn_index_type_name(enum knn_index_type t);

#endif
