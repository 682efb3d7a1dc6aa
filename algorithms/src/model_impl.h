#ifndef KNN_ALGORITHMS_MODEL_IMPL_H
#define KNN_ALGORITHMS_MODEL_IMPL_H

/*
 * The model's insides, shared by model.c (build, transform, predict: the search work) and
 * model_io.c (the three files: the IVF/IO work).
 */

#include "knn/algorithms/model.h"

struct knn_model {
    struct knn_model_config cfg; /* as built, or as the JSON says after load */
    struct knn_dimred *dimred;   /* NULL when no reduction */
    int normalize;               /* COSINE: rows and queries scaled to unit norm */
    size_t effective_dim;        /* the index's dim: after reduction and PQ zero-padding */
    struct knn_index *index;
    float *labels;               /* one per indexed vector (ntotal) */
    int has_recall;              /* recall was measured by the build */
    struct knn_model_recall recall;
};

/**
 * Check model->cfg (as built, or as read from model_algo-1.json) and set up the transform from it:
 * rebuild the dimension reduction from (dimred, feature_dim, dimred_target, dimred_seed), set
 * normalize (COSINE) and effective_dim (the reduced or feature dim, raised to a multiple of pq_m for
 * IVFPQ: zero-padding). cfg.dimred_target is the target in effect: knn_model_build stores it already
 * raised to a multiple of pq_m (spec §2.6), so a loaded model rebuilds the identical transform.
 * model_io.c calls this after reading the JSON. Returns KNN_ECONFIG for an inconsistent config.
 */
int knn__model_setup_transform(struct knn_model *model);

/**
 * Apply the model's transform to n rows of cfg.feature_dim floats: reduce, normalize, zero-pad to
 * effective_dim. `out` holds n * effective_dim floats. Used by build and predict (model.c).
 */
int knn__model_transform(const struct knn_model *model, size_t n, const float *x, float *out);

/**
 * How knn__model_load_with reads the index and labels files (knn_model_load: all of them; a model
 * part, part.c: its share). `index` fills *out and *ntotal (the whole index's vector count);
 * `labels` reads the labels file at `path` (which must hold ntotal floats) into `model` or `user`.
 * `verify`: check the JSON's SHA-256 sums of the two files first.
 */
struct knn__model_reader {
    int (*index)(void *user, const char *path, struct knn_index **out, uint64_t *ntotal);
    int (*labels)(void *user, const char *path, uint64_t ntotal, struct knn_model *model);
    void *user;
    int verify;
};

/** knn_model_load with the given reader (the JSON's checks and the transform are the same). */
int knn__model_load_with(struct knn_model **out, const char *dir, const struct knn__model_reader *reader);

/**
 * Queries transformed and searched per step by knn_model_predict (n queries, k neighbours): a
 * model part searches in the same steps, so every search call sees the batch the whole model's
 * would (the kernels choose by batch size).
 */
size_t knn__model_predict_chunk(size_t n, size_t k);

/**
 * Predictions of n queries from their k neighbours each, best first: nlabels[i * k + j] is the
 * label of neighbour j (ignored where ids[i * k + j] < 0, a neighbour that could not be found).
 * The vote (or mean) of knn_model_predict.
 */
int knn__model_predict_neighbours(
    const struct knn_model *model, size_t n, size_t k, const float *dist, const int64_t *ids, const float *nlabels,
    float *predicted);

#endif
