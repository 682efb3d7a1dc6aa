#ifndef KNN_RECORDIO_RECORD_IMPL_H
#define KNN_RECORDIO_RECORD_IMPL_H

/*
 * Internals shared by the record decoders: both the hand-written fast path (record_fast.c) and
 * the protobuf-c path (record_generic.c) reduce a Record to views of its two interesting tensors,
 * and record_decode.c turns views into rows, so checks and messages are the same whichever path
 * parsed the bytes.
 */

#include "knn/recordio/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A tensor inside a parsed record. Values are in host (little-endian) layout, possibly unaligned. */
struct knn__tensor_view {
    enum knn_recordio_dtype dtype;
    const void *values;
    size_t nvalues;
    const uint64_t *keys;
    size_t nkeys;
    const uint64_t *shape;
    size_t nshape;
};

struct knn__record_view {
    bool has_features; /* features["values"] is present (with some tensor, maybe none) */
    bool features_set; /* ... and its Value holds a tensor */
    struct knn__tensor_view features;
    bool has_label;
    bool label_set;
    struct knn__tensor_view label;
    void *owner; /* protobuf-c message to free, or NULL */
};

/*
 * The fast path: 1 if `record` has exactly the SDK's dense layout (features["values"] one packed
 * float32 tensor with only values, then optionally label["values"] one packed float32 or float64
 * value, nothing else) and `view` was filled; 0 if not (use the generic path). Never fails.
 */
int knn__record_parse_fast(struct knn__record_view *view, const struct knn_recordio_record *record);

/* The generic path through protobuf-c. KNN_EFORMAT (naming the record) or KNN_ENOMEM. */
int knn__record_parse_generic(struct knn__record_view *view, const struct knn_recordio_record *record);

/* Free what the generic parse allocated. */
void knn__record_view_clean_up(struct knn__record_view *view);

/* Decode with a chosen path, for the differential test and fuzzer: 0 = fast if it applies
 * (what knn_recordio_record_decode does), 1 = always generic. */
int knn__record_decode_with(
    int force_generic, float *features, float *label, bool *has_label, const struct knn_recordio_record *record,
    size_t feature_dim);

#endif
