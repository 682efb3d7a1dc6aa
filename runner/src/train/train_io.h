#ifndef KNN_RUNNER_TRAIN_IO_H
#define KNN_RUNNER_TRAIN_IO_H

/**
 * The training job's data in and artifacts out, over S3 (s3://bucket/key) or local files
 * (file://path, and the container's directories):
 *
 * - knn_train_list_channel(): the objects of a channel, sorted by key: every object under an
 *   S3Prefix (empty "folder/" markers skipped), or those a ManifestFile lists (each checked to
 *   exist, with its size); a local directory recursively, a file, or a FIFO;
 * - knn_train_stream_objects(): the bytes of a list of objects, in order, as chunks, never holding
 *   an object: S3 objects through the client's ordered reader with read-ahead, local files
 *   through read(2);
 * - output helpers: whether an object exists, writing a local file or an S3 object so that no
 *   partial one is ever visible, deleting.
 *
 * `s3` may be NULL when no s3:// location is involved (an s3:// URI then fails with KNN_EINVAL).
 * Errors carry the object's URI. Each call is used by one thread; several threads may stream
 * different lists at once with one client.
 */

#include "train/channels.h"
#include "train/job_config.h"

#include <stddef.h>
#include <stdint.h>

struct knn_s3_client;

/** 1 if `uri` is s3://. */
int knn_train_uri_is_s3(const char *uri);

/** List `channel` into `out` (empty on entry). KNN_ENOTFOUND (with a message) when it has no objects. */
int knn_train_list_channel(struct knn_object_list *out, const struct knn_job_channel *channel, struct knn_s3_client *s3);

#define KNN_TRAIN_CHUNK_FIRST 1 /* the chunk starts its object */
#define KNN_TRAIN_CHUNK_LAST 2  /* the chunk ends its object (an empty object is one FIRST|LAST chunk of 0 bytes) */

/** `index` is the position in the `objects` array given to knn_train_stream_objects. */
typedef int(knn_train_chunk_fn)(void *user, size_t index, const uint8_t *data, size_t len, int flags);

struct knn_train_stream_options {
    size_t part_size;  /* S3 ranged reads; 0: the client's */
    int max_in_flight; /* S3 parts read ahead; 0: the client's */
    int gzip;          /* each object is gzip (one or more members): deliver its inflated bytes, streamed */
};

#define KNN_TRAIN_STREAM_OPTIONS_INIT {0, 0, 0}

/**
 * Deliver every byte of `objects[0..n)` in order to `fn` (an error from `fn` stops and is returned).
 * With opts->gzip the bytes are inflated through zlib as they arrive (never a whole object in
 * memory); data that is not gzip, corrupt or cut short is KNN_EFORMAT naming the object and the
 * compressed byte offset.
 */
int knn_train_stream_objects(
    const struct knn_object *const *objects, size_t n, struct knn_s3_client *s3,
    const struct knn_train_stream_options *opts, knn_train_chunk_fn *fn, void *user);

/** *exists = 1 if the object (s3:// or file://) exists. */
int knn_train_output_exists(int *exists, const char *uri, struct knn_s3_client *s3);

/**
 * Copy the local file `path` to `uri`: S3 (a single PUT or a multipart upload, aborted on
 * failure) or file:// (written beside as .tmp and renamed; parent directories created).
 */
int knn_train_output_put_file(const char *uri, const char *path, struct knn_s3_client *s3);

/** Write `len` bytes of memory to `uri`, as knn_train_output_put_file. */
int knn_train_output_put(const char *uri, const void *data, size_t len, const char *content_type,
                         struct knn_s3_client *s3);

/** Delete `uri` (missing is fine). */
int knn_train_output_delete(const char *uri, struct knn_s3_client *s3);

/** mkdir -p of `path`'s parent directory. */
int knn_train_make_parent_dirs(const char *path);

#endif
