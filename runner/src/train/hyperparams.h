#ifndef KNN_RUNNER_HYPERPARAMS_H
#define KNN_RUNNER_HYPERPARAMS_H

/**
 * SageMaker k-NN hyperparameters (spec §1), validated as the real algorithm does, from one table
 * (hyperparams.c, redis `static_configs[]` style: name, type, required, default, validator):
 *
 * - values arrive as a JSON object; SageMaker sends every value as a string, and JSON numbers are
 *   accepted too: an integer is a JSON integer >= 1 or a string matching ^([1-9][0-9]*)$ (no sign,
 *   no leading zero, no spaces, no decimal point or exponent);
 * - enums are exact, case-sensitive matches;
 * - the cross-parameter rules of spec §1.4 (dimension reduction target, IVFPQ and its metric and
 *   pq_m, k <= 1024);
 * - the platform keys of spec §1.3 / §8 (_tuning_objective_metric, _kvstore, _num_gpus,
 *   _num_kv_servers, _log_level, epochs) are accepted and ignored; any other key is rejected.
 *
 * Every violation is reported at once, in one KNN_ECONFIG message (the runner prefixes it with
 * "ClientError: "). Where SageMaker documents no default (spec §8), faiss.IVFPQ without
 * faiss_index_pq_m gets knn_hyperparams_auto_pq_m() of the indexed dimension.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/** One row per hyperparameter we know, in the order they are printed. */
enum knn_hp_id {
    KNN_HP_FEATURE_DIM,
    KNN_HP_K,
    KNN_HP_PREDICTOR_TYPE,
    KNN_HP_SAMPLE_SIZE,
    KNN_HP_DIMENSION_REDUCTION_TYPE,
    KNN_HP_DIMENSION_REDUCTION_TARGET,
    KNN_HP_INDEX_TYPE,
    KNN_HP_INDEX_METRIC,
    KNN_HP_FAISS_INDEX_IVF_NLISTS,
    KNN_HP_FAISS_INDEX_PQ_M,
    KNN_HP_MINI_BATCH_SIZE,
    KNN_HP_TUNING_OBJECTIVE_METRIC,
    KNN_HP_KVSTORE,
    KNN_HP_NUM_GPUS,
    KNN_HP_NUM_KV_SERVERS,
    KNN_HP_LOG_LEVEL,
    KNN_HP_EPOCHS,
    KNN_HP_COUNT,
};

/** Largest k the real algorithm accepts (spec §1.4). */
#define KNN_HP_MAX_K 1024

struct knn_hyperparams {
    uint64_t feature_dim;
    uint64_t k;
    uint64_t sample_size;
    uint64_t mini_batch_size;
    const char *predictor_type;           /* "classifier" | "regressor" (static storage) */
    const char *dimension_reduction_type; /* "none" | "sign" | "fjlt" */
    uint64_t dimension_reduction_target;  /* 0 when there is no reduction */
    const char *index_type;               /* "faiss.Flat" | "faiss.IVFFlat" | "faiss.IVFPQ" */
    const char *index_metric;             /* "L2" | "INNER_PRODUCT" | "COSINE" */
    uint64_t ivf_nlists;                  /* 0 = "auto" (resolved by the job, spec §8) */
    uint64_t pq_m;                        /* 0 when not IVFPQ; given, or knn_hyperparams_auto_pq_m() */
    /*
     * The final configuration: every known key's value as a string (given, or the default), NULL
     * when neither. Owned (knn_malloc'ed); freed by knn_hyperparams_clean_up.
     */
    char *values[KNN_HP_COUNT];
};

void knn_hyperparams_init(struct knn_hyperparams *hp);
void knn_hyperparams_clean_up(struct knn_hyperparams *hp);

/**
 * Validate `given` (a JSON object; NULL is treated as empty) into `hp` (initialized by the
 * caller). On failure returns KNN_ECONFIG with every violation in the error message, or
 * KNN_ENOMEM; hp is then left clean (as after init).
 */
int knn_hyperparams_parse(struct knn_hyperparams *hp, const json_t *given);

/**
 * faiss_index_pq_m when faiss.IVFPQ is chosen without it: the largest value of the allowed list
 * (1, 2, 3, 4, 8, ..., 96) that leaves at least 4 dimensions to each sub-quantizer, m <= dim / 4,
 * and 1 below 8 dimensions. `dim` is dimension_reduction_target when reducing, else feature_dim;
 * when m does not divide it the documented padding rule applies (spec §2.6). Why: AWS documents
 * the key as optional and its schema allows only the list, so any choice must come from it; a
 * sub-vector of 4 floats per 8-bit code is FAISS's usual operating point (SIFT's 128 -> PQ32),
 * 16x smaller than the vectors with recall close to IVFFlat's, and m = 96 caps large inputs.
 */
uint64_t knn_hyperparams_auto_pq_m(uint64_t dim);

/** The table's name of a row ("feature_dim"). */
const char *knn_hyperparams_name(enum knn_hp_id id);

/**
 * Append the configuration as Python's dict repr prints it, as SageMaker's logs show it:
 * {'feature_dim': '54', 'k': '10', ...}. `defaults_only` prints the built-in defaults instead of
 * the final values. Returns 0, KNN_ENOMEM or KNN_ETOOBIG (the buffer's cap).
 */
struct knn_buf;
int knn_hyperparams_format(const struct knn_hyperparams *hp, int defaults_only, struct knn_buf *out);

/** The final configuration as a JSON object of strings (new reference, NULL on ENOMEM). */
json_t *knn_hyperparams_to_json(const struct knn_hyperparams *hp);

#endif
