#ifndef KNN_RECORDIO_ROWS_H
#define KNN_RECORDIO_ROWS_H

/**
 * The row decoder: what a training job and the endpoint use to turn a byte stream -- a channel's
 * objects as they stream from S3, or a request body -- into batches of dense float32 rows.
 *
 * Create it with a format (RecordIO-protobuf, or CSV with label_size 0 or 1), the feature
 * dimension, whether labels are required, and a batch size; feed it byte chunks of any size; it
 * calls the sink with full batches as they fill, and finish() flushes the last partial batch and
 * reports a stream that ends inside a record or line.
 *
 * Labels: with KNN_RECORDIO_LABELS_REQUIRE every row must have one (RecordIO label["values"]; CSV
 * label_size must be 1) and the sink gets them; with KNN_RECORDIO_LABELS_IGNORE the sink gets
 * labels == NULL, a RecordIO record's label is not required (inference request bodies carry
 * none) and a CSV label column is dropped.
 *
 * Errors name the position and the cause but not the object (callers prefix it with
 * knn_error_wrap(rc, "s3://bucket/key")): "record 12 at offset 6720: 6 features, expected 7" or
 * "line 4, column 3: 'abc' is not a number". Codes: those of knn/recordio/reader.h,
 * knn/recordio/record.h and knn/recordio/csv.h, KNN_EINVAL for bad options, or the sink's own
 * nonzero return, which stops the decoder and is passed back unchanged. After an error every
 * later call returns the same code.
 *
 * Memory: the batch (batch_rows x feature_dim floats), plus one record or line being assembled
 * (capped), whatever the stream's size. Not thread-safe: one decoder per stream.
 */

#include <stddef.h>
#include <stdint.h>

enum knn_recordio_format {
    KNN_RECORDIO_PROTOBUF = 0, /* application/x-recordio-protobuf */
    KNN_RECORDIO_CSV = 1,      /* text/csv; label_size in the options */
};

enum knn_recordio_labels {
    KNN_RECORDIO_LABELS_REQUIRE = 0, /* training and test channels */
    KNN_RECORDIO_LABELS_IGNORE = 1,  /* inference */
};

/**
 * Receives `n` rows (1 <= n <= batch_rows): features is n x feature_dim row-major, labels n
 * values or NULL. Both arrays are only valid during the call. Return 0 to go on, or a KNN_E* code
 * (after knn_error_set) to stop.
 */
typedef int(knn_recordio_rows_fn)(void *user, const float *features, const float *labels, size_t n);

struct knn_recordio_rows_options {
    enum knn_recordio_format format;
    unsigned label_size; /* CSV only: 0 or 1 leading label columns */
    size_t feature_dim;  /* row width; 0 = take it from the first row (then every row must match) */
    enum knn_recordio_labels labels;
    size_t batch_rows;       /* rows per sink call; 0 means 1024 */
    size_t max_record_bytes; /* RecordIO: cap on one record; 0 = KNN_RECORDIO_DEFAULT_MAX_RECORD_BYTES */
    size_t max_line_bytes;   /* CSV: cap on one line; 0 = KNN_RECORDIO_CSV_DEFAULT_MAX_LINE */
    size_t max_feature_dim;  /* cap when feature_dim is 0 (learned from data); 0 means 1 << 20 */
};

#define KNN_RECORDIO_ROWS_OPTIONS_INIT                                                                                 \
    {                                                                                                                  \
        KNN_RECORDIO_PROTOBUF, 0, 0, KNN_RECORDIO_LABELS_REQUIRE, 0, 0, 0, 0                                           \
    }

struct knn_recordio_rows;

/** KNN_EINVAL (label_size > 1, CSV with REQUIRE and label_size 0, NULL sink), KNN_ENOMEM. */
int knn_recordio_rows_new(
    struct knn_recordio_rows **out, const struct knn_recordio_rows_options *options, knn_recordio_rows_fn *sink,
    void *user);

void knn_recordio_rows_destroy(struct knn_recordio_rows *rows);

/** Decode the next `len` bytes of the stream, calling the sink for every batch they complete. */
int knn_recordio_rows_feed(struct knn_recordio_rows *rows, const void *data, size_t len);

/**
 * End of the stream: decode a last CSV line that has no newline, hand the last partial batch to
 * the sink, and report KNN_ETRUNCATED if the stream ended inside a RecordIO record.
 */
int knn_recordio_rows_finish(struct knn_recordio_rows *rows);

/** Rows decoded so far (including those still waiting in the batch). */
uint64_t knn_recordio_rows_count(const struct knn_recordio_rows *rows);

/** The feature dimension: the option, or the one learned from the first row (0 before it). */
size_t knn_recordio_rows_feature_dim(const struct knn_recordio_rows *rows);

#endif
