#ifndef KNN_RECORDIO_WRITER_H
#define KNN_RECORDIO_WRITER_H

/**
 * Writing RecordIO-protobuf exactly as the SageMaker SDK does (spec sections 4.2-4.4): each call
 * appends one complete frame -- magic, payload length (continuation flag 0, never split), the
 * serialized Record, zero padding to 4 bytes -- to a struct knn_buf. The caller owns the buffer,
 * writes it out (file, socket, S3 part) when it likes, and resets it. On error the buffer is left
 * as it was before the call.
 *
 * Field order and encoding match the SDK's python protobuf: features map then label map; inside a
 * tensor values, keys, shape, each packed; an empty repeated field is omitted, but a tensor whose
 * fields are all empty is still written as an empty submessage (the SDK's zero-column quirk).
 *
 * Errors: KNN_EINVAL (a NULL pointer with a nonzero count, a bad dtype), KNN_ETOOBIG (a payload of
 * 2^29 bytes or more, which one frame cannot hold, or the buffer's cap), KNN_ENOMEM.
 * Thread-safe as long as each thread has its own buffer.
 */

#include "knn/common/buf.h"
#include "knn/recordio/record.h"

#include <stddef.h>
#include <stdint.h>

/** A tensor to write. `values` points at nvalues floats, doubles or int32_ts after `dtype`. */
struct knn_recordio_tensor {
    enum knn_recordio_dtype dtype; /* FLOAT32, FLOAT64 or INT32 */
    const void *values;
    size_t nvalues;
    const uint64_t *keys; /* sparse positions, or NULL */
    size_t nkeys;
    const uint64_t *shape; /* or NULL */
    size_t nshape;
};

/** One map entry: a name ("values", "predicted_label", ...) and its tensor. */
struct knn_recordio_entry {
    const char *name;
    struct knn_recordio_tensor tensor;
};

/**
 * The generic writer: one Record whose features map holds `nfeatures` entries and whose label map
 * holds `nlabels` entries, in the order given. Use it for anything the helpers below do not cover
 * (float64 or int32 tensors, as in the fixtures).
 */
int knn_recordio_write_record(
    struct knn_buf *out, const struct knn_recordio_entry *features, size_t nfeatures,
    const struct knn_recordio_entry *labels, size_t nlabels);

/**
 * A dense training row as write_numpy_to_dense_tensor writes float32 arrays:
 * features["values"] = dim float32 values; label["values"] = [*label] when label is not NULL.
 */
int knn_recordio_write_dense(struct knn_buf *out, const float *values, size_t dim, const float *label);

/**
 * A sparse row as write_spmatrix_to_sparse_tensor writes a float32 CSR row: features["values"]
 * holds the nnz values, their column `keys` and shape = [width]; label as above.
 */
int knn_recordio_write_sparse(
    struct knn_buf *out, const float *values, const uint64_t *keys, size_t nnz, uint64_t width, const float *label);

/**
 * A k-NN inference response record (spec section 3.3): an empty features map and the label map
 * {"predicted_label": [predicted_label]}; when `neighbor_labels` and `distances` are both given
 * (verbose), also "labels" and "distances" with k float32 values each, in that order.
 */
int knn_recordio_write_prediction(
    struct knn_buf *out, float predicted_label, const float *neighbor_labels, const float *distances, size_t k);

/** Append one frame around an already serialized payload (len < 2^29). */
int knn_recordio_write_frame(struct knn_buf *out, const void *payload, size_t len);

#endif
