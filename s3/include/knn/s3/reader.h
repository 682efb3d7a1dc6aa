#ifndef KNN_S3_READER_H
#define KNN_S3_READER_H

/**
 * Stream many objects (or one large object) in order, with read-ahead.
 *
 * The reader splits the queued objects into parts of `part_size` bytes and fetches up to
 * `max_in_flight` parts at once (ranged GETs on one curl multi handle, driven by a background I/O
 * thread), while the caller consumes them strictly in order: object 0 from its first byte to its
 * last, then object 1, and so on. Memory is bounded by max_in_flight x part_size, whatever the
 * objects' sizes. Each part is retried on its own (resuming from its last byte, If-Match on the
 * object's ETag, so a changed object is KNN_ES3_CHANGED, never a splice), and each part's length
 * is checked.
 *
 *     struct knn_s3_reader *r;
 *     knn_s3_reader_new(&r, client, NULL);
 *     for (i = 0; i < list.count; i++)
 *         knn_s3_reader_add(r, bucket, &list.items[i]);   // sizes and ETags from knn_s3_list
 *     rc = knn_s3_reader_run(r, on_chunk, ctx);              // or knn_s3_reader_next() in a loop
 *     knn_s3_reader_destroy(r);
 *
 * Thread-safety: one thread uses a reader; its I/O thread is internal. Callbacks run on the
 * caller's thread.
 */

#include "knn/s3/client.h"

#include <stddef.h>
#include <stdint.h>

struct knn_s3_reader;

struct knn_s3_reader_options {
    size_t part_size;  /* 0: the client's part_size (8 MiB) */
    int max_in_flight; /* parts fetched or buffered ahead at once; 0: the client's max_concurrency (8) */
};
#define KNN_S3_READER_OPTIONS_INIT                                                                                     \
    {                                                                                                                  \
        0, 0                                                                                                           \
    }

#define KNN_S3_CHUNK_FIRST 1 /* the chunk starts its object */
#define KNN_S3_CHUNK_LAST 2  /* the chunk ends its object (an empty object has one chunk: FIRST|LAST, len 0) */

struct knn_s3_chunk {
    size_t object_index; /* order of knn_s3_reader_add, from 0 */
    const char *key;
    uint64_t object_size;
    uint64_t offset;     /* of data[0] in the object */
    const uint8_t *data; /* never NULL (len may be 0) */
    size_t len;
    int flags; /* KNN_S3_CHUNK_FIRST | KNN_S3_CHUNK_LAST */
};

/** A reader on `client` (borrowed: it must outlive the reader). Errors: KNN_EINVAL, KNN_ENOMEM. */
int knn_s3_reader_new(
    struct knn_s3_reader **out, struct knn_s3_client *client, const struct knn_s3_reader_options *opts);

/**
 * Queue an object, before the first knn_s3_reader_next/run. `info` gives the key and, when known,
 * its size and ETag (as knn_s3_list returns them), which saves a HEAD; info->etag NULL or
 * info->size unknown (pass NULL info with knn_s3_reader_add_key) makes the reader HEAD it first.
 * Errors: KNN_EINVAL (reading already started), KNN_ENOMEM.
 */
int knn_s3_reader_add(struct knn_s3_reader *reader, const char *bucket, const struct knn_s3_object_info *info);

/** Queue an object by key only (the reader HEADs it for its size and ETag). */
int knn_s3_reader_add_key(struct knn_s3_reader *reader, const char *bucket, const char *key);

/**
 * The next chunk in order into `out`, or *done = 1 (and `out` unset) after the last object. The
 * chunk's data stays valid until the next call or destroy. Blocks until the chunk has arrived.
 * After an error every later call returns the same error.
 */
int knn_s3_reader_next(struct knn_s3_chunk *out, int *done, struct knn_s3_reader *reader);

/** Called for each chunk in order; return 0 to go on or an error code to stop with it. */
typedef int(knn_s3_chunk_fn)(void *user, const struct knn_s3_chunk *chunk);

/** Deliver every chunk to `fn` (knn_s3_reader_next in a loop). */
int knn_s3_reader_run(struct knn_s3_reader *reader, knn_s3_chunk_fn *fn, void *user);

/** Bytes delivered so far, and the total of the objects whose sizes are known. */
void knn_s3_reader_progress(const struct knn_s3_reader *reader, uint64_t *delivered, uint64_t *total);

/** Stop the I/O thread, cancel the transfers, free everything. NULL-safe. */
void knn_s3_reader_destroy(struct knn_s3_reader *reader);

#endif
