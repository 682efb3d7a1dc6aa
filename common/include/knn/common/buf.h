#ifndef KNN_COMMON_BUF_H
#define KNN_COMMON_BUF_H

/**
 * A growable byte buffer with a hard cap (curl dynbuf style): every reader of outside bytes that
 * accumulates them (HTTP bodies, S3 XML, JSON, protobuf fields) uses one, so a hostile or broken
 * peer cannot make us allocate without bound. Appending past `max` fails with KNN_ETOOBIG and
 * leaves the buffer as it was. The contents are always followed by a NUL byte (not counted in
 * len), so text can be handed to parsers that want a C string.
 *
 * Not thread-safe: one owner at a time.
 */

#include <stddef.h>
#include <stdint.h>

struct knn_buf {
    uint8_t *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
};

#define KNN_BUF_INIT(max_bytes) {NULL, 0, 0, (max_bytes)}

void knn_buf_init(struct knn_buf *buf, size_t max);
void knn_buf_clean_up(struct knn_buf *buf);
/** Empty the buffer, keeping its memory. */
void knn_buf_reset(struct knn_buf *buf);
/** Make room for `extra` more bytes (plus the NUL); KNN_ETOOBIG past max, KNN_ENOMEM. */
int knn_buf_reserve(struct knn_buf *buf, size_t extra);
int knn_buf_append(struct knn_buf *buf, const void *data, size_t len);
int knn_buf_append_str(struct knn_buf *buf, const char *s);
int knn_buf_printf(struct knn_buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Hand the contents to the caller (free with knn_free) and leave the buffer empty. */
uint8_t *knn_buf_detach(struct knn_buf *buf, size_t *len);

#endif
