#ifndef KNN_RUNNER_SEARCH_ATTRS_H
#define KNN_RUNNER_SEARCH_ATTRS_H

/**
 * Per-request search settings from SageMaker's custom attributes header
 * (X-Amzn-SageMaker-Custom-Attributes, up to 1024 visible US-ASCII characters, passed through by
 * SageMaker untouched): `nprobe=16` (IVF models: lists scanned, 1..nlist) and `efSearch=64`
 * (HNSW models: the search beam, 1..4096). Pairs are separated by ',' or ';', spaces around them
 * ignored; keys are case-sensitive. Other keys are the client's own business (tracing ids and the
 * like) and are ignored, as SageMaker's own containers do.
 *
 * Errors (KNN_EINVAL, answered 400): a malformed number, zero, a value above the model's bound
 * (nprobe above nlist, efSearch above 4096), a setting the model's index does not have (nprobe
 * for a Flat or HNSW model), a key given twice, a header longer than 1024 characters.
 */

#include "knn/algorithms/model.h"

#include <stddef.h>

#define KNN_SEARCH_ATTRS_MAX_LEN 1024
#define KNN_SEARCH_ATTRS_MAX_EF 4096

struct knn_search_attrs {
    size_t nprobe;    /* 0: the model's */
    size_t ef_search; /* 0: the model's */
};

/** Parse `header` (NULL: no settings) for `model`. out is zeroed first. */
int knn_search_attrs_parse(struct knn_search_attrs *out, const char *header, const struct knn_model *model);

#endif
