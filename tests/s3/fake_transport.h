#ifndef KNN_S3_FAKE_TRANSPORT_H
#define KNN_S3_FAKE_TRANSPORT_H

/*
 * An in-memory S3 behind the client's transport vtable (no sockets), for unit tests that run under
 * ASan/UBSan: path-style PutObject, GetObject (Range, If-Match), HeadObject, DeleteObject,
 * CreateMultipartUpload / UploadPart / CompleteMultipartUpload / AbortMultipartUpload. It checks
 * Content-MD5 like a real server (400 BadDigest). Bodies are delivered in 64 KiB pieces.
 *
 * Faults are scripted: each rule matches a method and a substring of the URL, lets `skip` matching
 * requests through, then fires `count` times:
 *   FAKE_STATUS     answer `status` with <Error><Code>code</Code>
 *   FAKE_RESET      no response at all (a reset: retryable network error)
 *   FAKE_TRUNCATE   the full headers, `after` body bytes, then a short-body error
 */

#include "s3_impl.h"

#include <stddef.h>
#include <stdint.h>

enum fake_action {
    FAKE_STATUS,
    FAKE_RESET,
    FAKE_TRUNCATE,
};

struct fake_s3;

struct fake_s3 *fake_s3_new(void);
void fake_s3_destroy(struct fake_s3 *f);

/** The transport to put in knn_s3_client_options.transport. */
const struct knn_s3_transport *fake_s3_transport(struct fake_s3 *f);

/** Add a fault rule; returns its index. */
int fake_s3_fault(
    struct fake_s3 *f, const char *method, const char *url_part, int skip, int count, enum fake_action action,
    int status, const char *code, size_t after);

/** How many times rule `i` fired. */
int fake_s3_fired(struct fake_s3 *f, int i);

/** Store or replace an object directly. */
int fake_s3_put(struct fake_s3 *f, const char *bucket, const char *key, const void *data, size_t len);

/** The object's bytes (borrowed) or NULL. */
const uint8_t *fake_s3_get(struct fake_s3 *f, const char *bucket, const char *key, size_t *len);

/** Multipart uploads in progress. */
int fake_s3_uploads(struct fake_s3 *f);

/** Requests served so far, and the last Range / If-Match headers seen on a GET. */
int fake_s3_requests(struct fake_s3 *f);
const char *fake_s3_last_range(struct fake_s3 *f);
const char *fake_s3_last_if_match(struct fake_s3 *f);

/** The last request's URL, and its header line starting with `name` ("" if none). */
const char *fake_s3_last_url(struct fake_s3 *f);
const char *fake_s3_last_header(struct fake_s3 *f, const char *name);

#endif
