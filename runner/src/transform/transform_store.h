#ifndef KNN_RUNNER_TRANSFORM_STORE_H
#define KNN_RUNNER_TRANSFORM_STORE_H

/**
 * Where batch transform reads its input objects and writes its outputs: a local directory or an
 * S3 prefix, behind one small interface.
 *
 * A location is `s3://bucket/prefix` or a local path. Listing a location gives the objects under
 * it, sorted, by name relative to the folder it names: for s3://b/in/ and for s3://b/in (when keys
 * in/... exist) the key in/a/x.csv is "a/x.csv"; for s3://b/in/part the key in/part-1.csv is
 * "part-1.csv"; an exact key, or a local file, lists itself by its base name; a local directory
 * lists its regular files recursively. Outputs go below the output location as a folder.
 *
 * "-" is stdin as an input location (one object, named "-") and stdout as an output location
 * (every output written to it in turn; a failed object's answers already written stay there).
 *
 * Writers never leave a partial object: local files are written to "<name>.tmp" and renamed on
 * commit; S3 objects appear only when the upload completes. abort() removes what was written.
 *
 * Not thread-safe: one store, its readers and writers, per thread.
 */

#include <stddef.h>
#include <stdint.h>

struct knn_transform_store;
struct knn_transform_reader;
struct knn_transform_writer;

/** Open `location` for reading (list, read) or writing (write). */
int knn_transform_store_open(struct knn_transform_store **out, const char *location);
void knn_transform_store_destroy(struct knn_transform_store *store);

/** The names under the location (see above); free with knn_transform_names_free. */
int knn_transform_store_list(struct knn_transform_store *store, char ***names, size_t *n);
void knn_transform_names_free(char **names, size_t n);

/** "s3://b/in/a/x.csv" or "/data/in/a/x.csv": the full location of `name`, for messages. */
int knn_transform_store_describe(char *buf, size_t size, const struct knn_transform_store *store, const char *name);

int knn_transform_reader_open(struct knn_transform_reader **out, struct knn_transform_store *store, const char *name);
/** Read up to `cap` bytes; *got == 0 at the end. */
int knn_transform_reader_read(struct knn_transform_reader *r, void *buf, size_t cap, size_t *got);
void knn_transform_reader_close(struct knn_transform_reader *r);
/** The object's size in bytes when known (a local file; an S3 object once its size is known), else UINT64_MAX. */
uint64_t knn_transform_reader_size(const struct knn_transform_reader *r);

int knn_transform_writer_open(struct knn_transform_writer **out, struct knn_transform_store *store, const char *name);
int knn_transform_writer_write(struct knn_transform_writer *w, const void *data, size_t len);
/** Make the object visible; the writer is freed whatever the result. */
int knn_transform_writer_commit(struct knn_transform_writer *w);
/** Drop everything written; the writer is freed. NULL is a no-op. */
void knn_transform_writer_abort(struct knn_transform_writer *w);

#endif
