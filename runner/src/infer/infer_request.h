#ifndef KNN_RUNNER_INFER_REQUEST_H
#define KNN_RUNNER_INFER_REQUEST_H

/**
 * Decoding inference request bodies into dense float32 rows (spec §3.2):
 * - text/csv: one row per line, comma-separated numbers, no header; the first `label_size`
 *   columns (MIME parameter, default 0) are dropped; blank lines are skipped;
 * - application/json: {"instances": [instance, ...]};
 * - application/jsonlines: one instance object per line;
 * - application/x-recordio-protobuf: RecordIO frames of aialgs.data Records, features["values"]
 *   (dense or sparse float32/float64/int32 tensors).
 * An instance is {"features": [...]}, {"data": {"features": {"values": [...]}}} or the sparse
 * {"data": {"features": {"keys": [...], "shape": [dim], "values": [...]}}}; "configuration" and
 * other keys are ignored. Sparse rows are densified.
 *
 * Every row must be `dim` wide and every value a finite number within float32 range. Errors name
 * the row (1-based, counted within this body) and the problem: KNN_EFORMAT (malformed body, wrong
 * type), KNN_EMISMATCH (wrong width), KNN_ERANGE (NaN, infinity, out of range), KNN_ETOOBIG (more
 * than `max_rows` rows), KNN_EUNSUPPORTED (a content type we cannot decode).
 * Thread-safe (no shared state).
 */

#include "infer/mime.h"

#include <stddef.h>
#include <stdint.h>

struct knn_infer_rows {
    size_t n;        /* rows decoded so far */
    size_t dim;      /* width of every row */
    size_t max_rows; /* cap on n */
    size_t cap;      /* rows allocated */
    float *x;        /* n * dim, row-major */
};

void knn_infer_rows_init(struct knn_infer_rows *rows, size_t dim, size_t max_rows);
void knn_infer_rows_clean_up(struct knn_infer_rows *rows);
/** Forget the rows, keep the memory. */
void knn_infer_rows_reset(struct knn_infer_rows *rows);

/**
 * Decode `len` bytes of body in `content_type` and append the rows to `rows`. On failure rows
 * keeps the rows it had before the call.
 */
int knn_infer_decode(
    struct knn_infer_rows *rows, const struct knn_mime *content_type, const uint8_t *body, size_t len);

#endif
