#ifndef KNN_RUNNER_SERVE_APP_H
#define KNN_RUNNER_SERVE_APP_H

/**
 * The endpoint's routes (spec §3.1), on top of serve_http.h:
 * - GET /ping: 200 once a model is set, 503 before;
 * - POST /invocations: decode (infer_request.h), predict, encode (infer_response.h); 400 bad body
 *   or a row whose distances overflow float32, 406 unsupported Accept, 413 too many rows, 415
 *   unsupported Content-Type, 503 no model yet, 500 internal. Requests a worker takes together
 *   (serve_http.h) are decoded one by one, and those with equal X-Amzn-SageMaker-Custom-Attributes
 *   are searched as one batch of at most batch_max_rows rows (dynamic batching); each answer is
 *   encoded from its own rows, as it would be alone;
 * - GET /execution-parameters: {"MaxConcurrentTransforms": n, "BatchStrategy": "MULTI_RECORD",
 *   "MaxPayloadInMB": m} for batch transform (spec §8).
 *
 * Search threads: each request predicts with search_threads threads; knn-runner serve uses 1 (the
 * request slots, one per core, give the parallelism: measured best on a busy 2-core machine, see
 * bench/serve/README.md). With 0, a request uses cores / (requests predicting now), at least one.
 */

#include "infer/mime.h"
#include "serve/serve_http.h"

#include "knn/algorithms/model.h"

#include <stdatomic.h>
#include <stddef.h>

/* Search through another backend than the model (sharded serving: serve/serve_shard.h). */
struct knn_serve_backend {
    int (*predict)(void *ctx, size_t n, const float *x, const struct knn_predict_options *o,
                   struct knn_predictions *out);
    const char *(*unavailable)(void *ctx);           /* NULL while it answers; else why not (503) */
    int (*describe)(void *ctx, struct knn_buf *out); /* more members of /execution-parameters */
    void *ctx;
};

struct knn_serve_app {
    _Atomic(const struct knn_model *) model; /* NULL until loaded; not owned */
    const struct knn_serve_backend *backend; /* NULL: knn_model_predict on the model */
    struct knn_mime default_accept;          /* for a missing or wildcard Accept */
    size_t cores;                            /* search threads available in all */
    size_t search_threads;                   /* fixed threads per request; 0 = adaptive (below) */
    size_t max_payload_mb;                   /* reported by /execution-parameters */
    size_t max_rows;                         /* rows per request */
    size_t batch_max_rows;                   /* rows searched at once across requests (1 = no batching) */
    atomic_size_t predicting;                /* requests in knn_model_predict now */
};

/**
 * Set up the app with no model. `default_accept` is SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT's
 * value or NULL (application/json); KNN_EFORMAT / KNN_EUNSUPPORTED if it is not a type we produce.
 */
int knn_serve_app_init(struct knn_serve_app *app, const char *default_accept, size_t cores, size_t max_payload_mb);

/** Publish a loaded model (from then on /ping answers 200). The model must outlive the server. */
void knn_serve_app_set_model(struct knn_serve_app *app, const struct knn_model *model);

/** The route table (three routes). */
const struct knn_http_route *knn_serve_app_routes(size_t *n);

/** HTTP status for an error code of decoding / encoding / predicting. */
unsigned knn_serve_status_for(int code);

#endif
