/*
 * TEMPORARY, until s3/ lands its client (knn_s3): the S3 halves of serve and transform say that
 * this build has no S3 instead of pretending. runner/sources-serve.cmake picks this file only when
 * the knn_s3 target does not exist.
 */
#include "serve_fetch.h"
#include "transform_store_impl.h"

#include "knn/common/error.h"

static int s_no_s3(void)
{
    return knn_error_set(KNN_EUNSUPPORTED, "this build has no S3 client yet (s3/ has not landed)");
}

int knn_serve_fetch(const char *path, const char *s3_uri) { return s_no_s3(); }
int knn__transform_store_open_s3(struct knn_transform_store **out, const char *location) { return s_no_s3(); }
void knn__transform_store_destroy_s3(struct knn_transform_store *store) {}
int knn__transform_store_list_s3(struct knn_transform_store *store, struct knn__transform_names *l) { return s_no_s3(); }
int knn__transform_store_describe_s3(char *buf, size_t size, const struct knn_transform_store *store, const char *name)
{
    return s_no_s3();
}
int knn__transform_reader_open_s3(struct knn_transform_reader **out, struct knn_transform_store *store, const char *name)
{
    return s_no_s3();
}
int knn__transform_reader_read_s3(struct knn_transform_reader *r, void *buf, size_t cap, size_t *got) { return s_no_s3(); }
void knn__transform_reader_close_s3(struct knn_transform_reader *r) {}
int knn__transform_writer_open_s3(struct knn_transform_writer **out, struct knn_transform_store *store, const char *name)
{
    return s_no_s3();
}
int knn__transform_writer_write_s3(struct knn_transform_writer *w, const void *data, size_t len) { return s_no_s3(); }
int knn__transform_writer_commit_s3(struct knn_transform_writer *w) { return s_no_s3(); }
void knn__transform_writer_abort_s3(struct knn_transform_writer *w) {}
