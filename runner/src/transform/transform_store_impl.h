#ifndef KNN_RUNNER_TRANSFORM_STORE_IMPL_H
#define KNN_RUNNER_TRANSFORM_STORE_IMPL_H

/* Internals shared by transform_store.c (local) and transform_store_s3.c (S3). */

#include "transform/transform_store.h"

#include "knn/common/file.h"

enum knn__store_kind {
    KNN__STORE_LOCAL = 0,
    KNN__STORE_S3 = 1,
};

struct knn_transform_store {
    enum knn__store_kind kind;
    char *location; /* local: the directory (no trailing '/'); S3: the URI as given */
    void *s3;       /* S3: client, bucket, prefix (transform_store_s3.c) */
};

struct knn_transform_reader {
    enum knn__store_kind kind;
    int fd;   /* local */
    void *s3; /* S3: the streaming GET */
};

struct knn_transform_writer {
    enum knn__store_kind kind;
    struct knn_file_writer file; /* local */
    char path[4096];
    char tmp[4096]; /* S3: the object's URI, for messages */
    void *s3; /* S3: the upload */
};

struct knn__transform_names {
    char **names;
    size_t n, cap;
};

int knn__transform_names_add(struct knn__transform_names *l, const char *name);

int knn__transform_store_open_s3(struct knn_transform_store **out, const char *location);
void knn__transform_store_destroy_s3(struct knn_transform_store *store);
int knn__transform_store_list_s3(struct knn_transform_store *store, struct knn__transform_names *l);
int knn__transform_store_describe_s3(char *buf, size_t size, const struct knn_transform_store *store, const char *name);
int knn__transform_reader_open_s3(struct knn_transform_reader **out, struct knn_transform_store *store, const char *name);
int knn__transform_reader_read_s3(struct knn_transform_reader *r, void *buf, size_t cap, size_t *got);
void knn__transform_reader_close_s3(struct knn_transform_reader *r);
int knn__transform_writer_open_s3(struct knn_transform_writer **out, struct knn_transform_store *store, const char *name);
int knn__transform_writer_write_s3(struct knn_transform_writer *w, const void *data, size_t len);
int knn__transform_writer_commit_s3(struct knn_transform_writer *w);
void knn__transform_writer_abort_s3(struct knn_transform_writer *w);

uint64_t knn__transform_reader_size_s3(const struct knn_transform_reader *r);

#endif
