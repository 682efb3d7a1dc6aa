#ifndef KNN_RUNNER_TRANSFORM_RUN_H
#define KNN_RUNNER_TRANSFORM_RUN_H

/**
 * Batch transform (spec §3.5), the way a SageMaker transform job runs a model over a prefix: each
 * input object `x` under the input location becomes `x.out` under the output location.
 *
 * An object is split into records (SplitType Line: lines; RecordIO: RecordIO frames; None: the
 * whole object is one record), records are grouped into requests of at most max_payload bytes
 * (BatchStrategy MultiRecord) or sent one by one (SingleRecord; JSON bodies are always one per
 * request), and each request is decoded, predicted and encoded exactly as the endpoint does
 * (infer_request.h, infer_response.h), the responses appended in order (JSON documents each
 * followed by a newline). A record larger than max_payload fails its object, as on SageMaker.
 *
 * A failing object is reported, its output is not left behind (partial or not), and the other
 * objects go on. Progress: a live line on a terminal, else a log line every few seconds.
 */

#include "infer/mime.h"

#include "knn/algorithms/model.h"

#include <stddef.h>

enum knn_split_type {
    KNN_SPLIT_LINE = 0,
    KNN_SPLIT_RECORDIO = 1,
    KNN_SPLIT_NONE = 2,
};

struct knn_transform_options {
    const char *input;        /* s3://bucket/prefix or a local directory or file */
    const char *output;       /* s3://bucket/prefix or a local directory */
    struct knn_mime content_type;
    struct knn_mime accept;
    enum knn_split_type split;
    int single_record;         /* BatchStrategy SingleRecord */
    size_t max_payload_bytes;
    size_t threads;            /* search threads; 0 = all cores */
    size_t part, nparts;       /* under mpirun: this rank does the objects i with i % nparts == part (nparts 0: all) */
};

struct knn_transform_summary {
    size_t objects;
    size_t failed;
    size_t rows;
    double seconds;
};

/**
 * Run the transform. Returns 0 when the input could be listed (even if some objects failed: see
 * summary->failed), or an error when nothing could be done (bad location, listing failed).
 */
int knn_transform_run(
    struct knn_transform_summary *summary, const struct knn_model *model, const struct knn_transform_options *opts);

/** "Line" / "RecordIO" / "None" (case-insensitive); KNN_EINVAL otherwise. */
int knn_split_type_parse(enum knn_split_type *out, const char *name);

#endif
