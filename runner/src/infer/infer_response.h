#ifndef KNN_RUNNER_INFER_RESPONSE_H
#define KNN_RUNNER_INFER_RESPONSE_H

/**
 * Encoding predictions as inference responses (spec §3.3), in exactly SageMaker's shapes:
 * - application/json: {"predictions": [{"predicted_label": 0.0}, ...]}; with verbose=true each
 *   object also has "distances" and "labels" (k values each, best first);
 * - application/jsonlines: one such object per row, each line ending in "\n";
 * - application/x-recordio-protobuf: one Record per row with label["predicted_label"] (and, when
 *   verbose, label["labels"] and label["distances"]) as float32 tensors.
 * Numbers are float32 written as the shortest decimal that reads back as the same float32, laid
 * out as Python's repr does (always a decimal point or an exponent: `2.0`, `0.1`, `1e-05`).
 * Neighbours an IVF search could not fill (label NaN, model.h) are left out of "labels" and
 * "distances", so those lists may be shorter than k; a row with none has "predicted_label": null
 * (RecordIO-protobuf: NaN).
 * Thread-safe.
 */

#include "infer/mime.h"

#include "knn/algorithms/model.h"
#include "knn/common/buf.h"

#include <stddef.h>

/**
 * Append the response for rows [first, first + count) of `p` to `out`. Verbose output needs
 * p->labels and p->distances. Errors: KNN_EUNSUPPORTED for a type we cannot produce, KNN_ERANGE
 * for a row whose answer would hold an infinity (a distance or a regressor's mean that overflows
 * float32: JSON has no Infinity; refused in every format, naming the row), KNN_ETOOBIG past the
 * buffer's cap, KNN_ENOMEM.
 */
int knn_infer_encode(
    struct knn_buf *out, const struct knn_mime *accept, const struct knn_predictions *p, size_t first, size_t count);

/**
 * Write `v` as the shortest round-trip decimal (see above) into buf (at least 32 bytes); returns
 * the length. Non-finite values are written as Python's json module does (NaN, Infinity).
 */
size_t knn_infer_format_float(char *buf, size_t size, float v);

#endif
