#ifndef KNN_RUNNER_CHANNELS_H
#define KNN_RUNNER_CHANNELS_H

/**
 * The objects of a channel and who reads which (spec §2.1, §2.4):
 * - a channel lists its objects, sorted by key (S3's byte order), skipping empty "folder/" keys;
 * - with W simulated hosts, ShardedByS3Key gives object i (in key order) to host i mod W, as the
 *   platform splits ~1/W of the objects to each instance; FullyReplicated gives every host all;
 * - each host samples sample_size / W rows, the remainder going to the first hosts.
 *
 * Local listing here covers file:// channels and container directories (recursive, sorted by
 * relative path); S3 listing lives with the S3 client (channels_s3.c). Not thread-safe.
 */

#include <stddef.h>
#include <stdint.h>

struct knn_object {
    char *uri;     /* s3://bucket/key, or a local path */
    uint64_t size; /* bytes, from the listing (UINT64_MAX: unknown, e.g. a FIFO) */
    char *etag;    /* S3's ETag from the listing (with its quotes), or NULL */
};

struct knn_object_list {
    struct knn_object *items;
    size_t count;
    size_t cap;
    uint64_t total_bytes; /* sum of known sizes */
};

#define KNN_OBJECT_SIZE_UNKNOWN UINT64_MAX

void knn_object_list_init(struct knn_object_list *list);
void knn_object_list_clean_up(struct knn_object_list *list);
/** Append a copy of `uri` (and of `etag`, which may be NULL). KNN_ENOMEM. */
int knn_object_list_add(struct knn_object_list *list, const char *uri, uint64_t size);
int knn_object_list_add_etag(struct knn_object_list *list, const char *uri, uint64_t size, const char *etag);
/** Sort by uri, byte order (strcmp), as S3 lists keys. */
void knn_object_list_sort(struct knn_object_list *list);

/**
 * List a local channel: a regular file is one object; a directory is every regular file below it
 * (recursively, following no symbolic links to directories), sorted by path; a FIFO is one object
 * of unknown size. KNN_ENOTFOUND if `path` does not exist, KNN_EIO on read errors.
 */
int knn_channel_list_local(struct knn_object_list *out, const char *path);

/** "file://x" -> "x" (the path part); NULL if `uri` is not a file:// URI. */
const char *knn_file_uri_path(const char *uri);

/**
 * Host `host` of `hosts` (0-based): 1 if it reads object `index`, under the given distribution.
 */
int knn_channel_host_reads(size_t index, size_t host, size_t hosts, int sharded);

/** Rows host `host` of `hosts` samples from a total of `sample_size` (remainder on the first hosts). */
uint64_t knn_channel_host_sample_size(uint64_t sample_size, size_t host, size_t hosts);

#endif
