#ifndef KNN_RUNNER_SERVE_MODEL_H
#define KNN_RUNNER_SERVE_MODEL_H

/**
 * Where serve and transform get their model from:
 * - a directory holding model_algo-1, model_algo-1.labels, model_algo-1.json (our layout or
 *   SageMaker's), or holding a model.tar.gz;
 * - a model.tar.gz file (as a training job uploads it, members at the top level);
 * - an s3://bucket/key URI of a model.tar.gz (downloaded to a temporary file first).
 * Archives are unpacked safely (runner/src/model_archive.h: no path leaving the target, no links, size
 * caps) into a temporary directory under $TMPDIR that is removed once the model is in memory.
 */

#include "knn/algorithms/model.h"
#include "knn/algorithms/part.h"

/** Load the model from `source`. The caller destroys it with knn_model_destroy(). */
int knn_serve_model_load(struct knn_model **out, const char *source);

/** Load part `part` of `nparts` of the model at `source` (sharded serving; knn_model_part_destroy). */
int knn_serve_model_load_part(struct knn_model_part **out, const char *source, size_t part, size_t nparts);

#endif
