#ifndef KNN_S3_UPLOAD_H
#define KNN_S3_UPLOAD_H

/**
 * Streamed upload of one object whose size need not be known in advance: open, write chunks,
 * finish (or abort). What the training job uses to write model.tar.gz while it is being made.
 *
 * Bytes are gathered into part buffers of `part_size`. If finish comes before the first buffer
 * fills (and below the client's multipart_threshold), the object goes up as one PutObject.
 * Otherwise a multipart upload starts: each full part is hashed (Content-MD5, and SHA-256 when
 * payload_signing is ON) by a small pool of hashing threads (one per CPU, at most 4) while the
 * caller goes on writing, and uploaded by a background I/O thread, up to max_in_flight parts at
 * once; write blocks while every buffer is busy, so memory stays at (max_in_flight + 1) x part_size.
 * Parts are retried on their own. Any failure (a part past its retries, a write error, finish
 * failing, destroy before finish) aborts the multipart upload, so no orphaned parts stay behind,
 * and no partial object is ever visible. CompleteMultipartUpload's "200 OK with an <Error> body"
 * is treated as the error it is. If a CreateMultipartUpload attempt's answer was lost (the server
 * may have made an upload whose id we never learnt), the uploads of this exact key begun since a
 * minute before are aborted too.
 *
 * The part size grows (doubles every 1,000 parts) so that an upload of unknown size never runs
 * into S3's limit of 10,000 parts.
 *
 * Thread-safety: one thread uses an upload; its hashing and I/O threads are internal.
 */

#include "knn/s3/client.h"

#include <stddef.h>

struct knn_s3_upload;

struct knn_s3_upload_options {
    const char *content_type; /* NULL: application/octet-stream */
    size_t part_size;         /* >= 5 MiB; 0: the client's part_size (8 MiB) */
    int max_in_flight;        /* 0: the client's max_concurrency (8) */
};
#define KNN_S3_UPLOAD_OPTIONS_INIT                                                                                     \
    {                                                                                                                  \
        NULL, 0, 0                                                                                                     \
    }

/**
 * Start an upload of s3://bucket/key on `client` (borrowed: it must outlive the upload). No request
 * is made until the first part is full or finish. Errors: KNN_EINVAL (bad part size, no key), KNN_ENOMEM.
 */
int knn_s3_upload_new(
    struct knn_s3_upload **out, struct knn_s3_client *client, const char *bucket, const char *key,
    const struct knn_s3_upload_options *opts);

/**
 * Append bytes. May block while parts are uploading. After a failure the upload is aborted and
 * every later call returns the same error.
 */
int knn_s3_upload_write(struct knn_s3_upload *upload, const void *data, size_t len);

/**
 * Upload what is left and complete the object. `etag_out` (may be NULL) gets its ETag (knn_free).
 * On failure the upload has been aborted. Call destroy afterwards either way.
 */
int knn_s3_upload_finish(struct knn_s3_upload *upload, char **etag_out);

/** Abort now (AbortMultipartUpload if one was started); returns the abort's own status. */
int knn_s3_upload_abort(struct knn_s3_upload *upload);

/** Free the upload; aborts it first if it was neither finished nor aborted. NULL-safe. */
void knn_s3_upload_destroy(struct knn_s3_upload *upload);

/** Bytes written so far, and bytes acknowledged by S3. */
void knn_s3_upload_progress(const struct knn_s3_upload *upload, uint64_t *written, uint64_t *uploaded);

#endif
