#ifndef KNN_RUNNER_INFER_IMPL_H
#define KNN_RUNNER_INFER_IMPL_H

/* Internals shared by infer_request.c and infer_json_fast.c. */

#include "infer/infer_request.h"

/** A zeroed row at index `at` of rows (not yet counted in n); KNN_ETOOBIG past max_rows, KNN_ENOMEM. */
int knn__infer_rows_new_row(float **out, struct knn_infer_rows *rows, size_t at);

/**
 * The fast path for JSON and JSON Lines bodies in the shapes clients send ({"instances": [...]}
 * with dense "features" or "data": {"features": {"values": [...]}}), parsing numbers straight into
 * rows without building a document. Returns 1 when it decoded the whole body (rows written from
 * index *n on, *n advanced), 0 when the body is anything else -- malformed, sparse, escaped keys,
 * non-ASCII strings, out-of-range numbers, duplicate keys -- in which case nothing is counted and
 * the caller decodes it with jansson, which also words the errors. `lines` selects JSON Lines.
 */
int knn__infer_json_fast(struct knn_infer_rows *rows, size_t *n, const uint8_t *body, size_t len, int lines);

/** 1 by default; tests set 0 to compare the fast path with jansson's. */
extern int knn__infer_json_fast_enabled;

#endif
