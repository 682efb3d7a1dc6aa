#ifndef KNN_RECORDIO_RECORD_H
#define KNN_RECORDIO_RECORD_H

/**
 * Decoding one aialgs.data.Record (spec sections 2.2 and 4) into a dense float32 row and a label.
 *
 * The features are the tensor `features["values"]` (other feature names are ignored); the label is
 * `label["values"]`, which must hold exactly one value (other label names, such as those of
 * inference responses, are ignored). Tensors may be float32, float64 or int32, and are converted
 * to float32. A tensor is
 *   - dense when it has no keys: its width is the number of values, or the product of `shape`
 *     when shape is set (then the counts must agree; a tensor with a shape and no values at all is
 *     an all-zero row, as the SDK writes empty sparse rows);
 *   - sparse when it has keys: `shape` is required, the width is the product of shape, keys are
 *     flattened positions below it, one per value; the row is densified with zeros and a key that
 *     appears twice has its values summed (scipy's rule for duplicate entries).
 * Packed and unpacked encodings are both accepted; unknown fields are skipped. The exact layout the
 * SDK writes for dense float32 rows is decoded by a hand-written fast path; everything else goes
 * through protobuf-c. Both give the same results (tests check it).
 *
 * Errors name the record ("record 7 at offset 504: ...") and are:
 *   KNN_EFORMAT       not a valid Record, or no features["values"] tensor, a Bytes tensor, sparse
 *                     without shape, keys and values of different counts, a label that is not one
 *                     value;
 *   KNN_EMISMATCH     the row's width is not feature_dim;
 *   KNN_ERANGE        a key outside the width, a NaN or infinite value (also after conversion
 *                     from float64, or after summing duplicate keys);
 *   KNN_ETOOBIG       (probe) a shape whose product overflows;
 *   KNN_ENOMEM.
 * All functions are thread-safe (no shared state).
 */

#include "knn/recordio/reader.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Tensor element types of the schema. */
enum knn_recordio_dtype {
    KNN_RECORDIO_FLOAT32 = 0,
    KNN_RECORDIO_FLOAT64 = 1,
    KNN_RECORDIO_INT32 = 2,
    KNN_RECORDIO_BYTES = 3, /* only reported by the probe; never decoded */
};

/** "float32", "float64", "int32", "bytes". */
const char *knn_recordio_dtype_name(enum knn_recordio_dtype dtype);

/**
 * Decode `record` into `features` (feature_dim floats, written whole) and, when it has one, its
 * label into `*label`. `*has_label` tells whether it had one (`*label` is then 0 when not).
 * `label` and `has_label` may be NULL when the caller does not want the label (it is still
 * checked if present).
 */
int knn_recordio_record_decode(
    float *features, float *label, bool *has_label, const struct knn_recordio_record *record, size_t feature_dim);

/** What a record holds, without densifying it. */
struct knn_recordio_record_info {
    uint64_t width; /* natural width of features["values"] (see above) */
    uint64_t nnz;   /* stored values (width when dense) */
    bool sparse;    /* the tensor has keys, or a shape and no values */
    enum knn_recordio_dtype feature_dtype;
    bool has_label;                      /* label["values"] is present */
    enum knn_recordio_dtype label_dtype; /* when has_label */
    float label;                         /* when has_label */
};

/**
 * Check `record` as knn_recordio_record_decode() would (every value finite, keys in range, label
 * a single finite value) and report its natural width, sparsity and label; for `recordio inspect`
 * and to learn a data set's width from its first record.
 */
int knn_recordio_record_probe(struct knn_recordio_record_info *out, const struct knn_recordio_record *record);

#endif
