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
};

/**
 * Apply the model's transform to n rows of cfg.feature_dim floats: reduce, normalize, zero-pad to
 * effective_dim. `out` holds n * effective_dim floats. Used by build and predict (model.c).
 */
int knn__model_transform(const struct knn_model *model, size_t n, const float *x, float *out);

#endif
