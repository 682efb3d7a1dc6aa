#ifndef KNN_S3_CLIENT_H
#define KNN_S3_CLIENT_H

/**
 * The S3 client: one object per endpoint + region + credentials, and the simple operations on it.
 * Streams of several objects with read-ahead are in reader.h; streamed (multipart) uploads in
 * upload.h.
 *
 * Works unchanged against AWS S3, MinIO and Ceph RGW: only the endpoint, the addressing style and
 * the credentials differ.
 *
 * Every operation:
 * - signs with SigV4; every upload carries a signed Content-MD5, which the server checks, so a
 *   corrupted or altered body is rejected. The payload SHA-256 is signed too for single-request
 *   bodies (PutObject, CompleteMultipartUpload) over http://; over https:// they go as
 *   UNSIGNED-PAYLOAD, as botocore does (TLS protects the bytes). Multipart parts rely on their
 *   signed Content-MD5 alone, over http:// too: a second hash of every byte would cost ~0.2 s of
 *   CPU per 256 MiB on each side for no integrity MD5 does not already give. payload_signing ON
 *   signs every payload's SHA-256, OFF none;
 * - retries 500/502/503/504/429, SlowDown, RequestTimeout, InternalError, RequestTimeTooSkewed (after
 *   correcting the clock skew from the server's Date), connection failures, resets and stalls, with
 *   exponential backoff and full jitter, up to max_attempts; never other 4xx;
 * - on failure returns a KNN_ES3_* or common code and sets one line: the operation, the URI, the
 *   S3 code, its message, the HTTP status and the request id, e.g.
 *   "GetObject s3://b/k: NoSuchKey: The specified key does not exist. (HTTP 404, request id tx0...)".
 *
 * Codes: KNN_ES3_NO_SUCH_KEY, KNN_ES3_NO_SUCH_BUCKET, KNN_ES3_ACCESS_DENIED (also a rejected
 * signature or unknown key; the message then names the credentials used: their source and the
 * first characters of the key id), KNN_ES3_CREDENTIALS (none found), KNN_ES3_UNREACHABLE (no
 * connection could be made to the endpoint after the retries: name not resolved, connection
 * refused; the message says which endpoint and where it is set), KNN_ES3_NET (another connection
 * failure after the retries), KNN_ES3_RETRIES_EXHAUSTED (a retryable S3 error persisted), KNN_ES3_CHANGED (the
 * object changed during a resumed read), KNN_ETRUNCATED (a body shorter than announced),
 * KNN_ECHECKSUM (BadDigest, XAmzContentSHA256Mismatch), KNN_EFORMAT (a response we cannot parse),
 * KNN_ES3 (any other S3 error), KNN_EINVAL (bad arguments), KNN_ENOMEM.
 *
 * Thread-safety: a client may be used by several threads at once (each call runs on its own
 * connection state); readers and uploads are used by one thread each.
 */

#include "knn/s3/credentials.h"

#include <stddef.h>
#include <stdint.h>

struct knn_s3_client;

enum knn_s3_addressing {
    KNN_S3_ADDRESSING_AUTO = 0, /* virtual-hosted for AWS endpoints (when the bucket allows), path otherwise */
    KNN_S3_ADDRESSING_PATH,     /* https://endpoint/bucket/key */
    KNN_S3_ADDRESSING_VIRTUAL,  /* https://bucket.endpoint/key */
};

enum knn_s3_switch {
    KNN_S3_AUTO = 0,
    KNN_S3_ON,
    KNN_S3_OFF,
};

struct knn_s3_transport; /* internal: the HTTP transport (libcurl unless a test injects a fake) */

/**
 * Cancellation hook (SIGTERM, a deadline): return nonzero to stop. Called from the caller's and the
 * S3 I/O threads, at least every 100 ms while a request runs or waits to be retried: it must be
 * thread-safe and quick (an atomic load).
 */
typedef int(knn_s3_cancel_fn)(void *user);

struct knn_s3_client_options {
    /** "http(s)://host[:port]"; NULL: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS's
     *  https://s3.REGION.amazonaws.com. */
    const char *endpoint_url;
    /** NULL: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's region, else "us-east-1". */
    const char *region;
    /** Profile for credentials and region; NULL: $AWS_PROFILE, else "default". */
    const char *profile;
    enum knn_s3_addressing addressing;
    /** NULL: the default chain (credentials.h). The client takes its own reference. */
    struct knn_s3_credentials_provider *credentials;
    /** Payload SHA-256 signing: AUTO signs single-request bodies over http:// only (parts never,
     *  see above); ON signs every payload; OFF none (Content-MD5 is always sent). */
    enum knn_s3_switch payload_signing;
    int max_attempts;           /* per request, first try included; 0: 5 */
    int retry_base_ms;          /* first backoff ceiling; doubles per attempt; 0: 100 */
    int retry_max_ms;           /* backoff ceiling; 0: 20000 */
    int connect_timeout_ms;     /* 0: 10000 */
    int stall_timeout_ms;       /* a transfer that moves no byte for this long fails (retryable); 0: 60000 */
    size_t part_size;           /* multipart part and ranged-read size, >= 5 MiB; 0: 8 MiB */
    size_t multipart_threshold; /* uploads of at least this size use multipart; 0: part_size */
    int max_concurrency;        /* parallel requests of one reader or upload; 0: 8 */
    /** PEM file of trusted CAs; NULL: $AWS_CA_BUNDLE, else the system's. TLS is always verified. */
    const char *ca_bundle;
    /** Clock for signing (tests); NULL: the system clock. */
    knn_s3_clock_fn *clock;
    void *clock_user;
    /** Once `cancel` returns nonzero, every request in flight or waiting stops within ~100 ms, whatever
     *  the network does, with KNN_ECANCELED; clean-up requests (AbortMultipartUpload, DeleteObject,
     *  ListMultipartUploads) still run, retried, for cleanup_timeout_ms counted from then (0: 4000),
     *  then stop with KNN_ECANCELED too. NULL: never cancelled. */
    knn_s3_cancel_fn *cancel;
    void *cancel_user;
    int cleanup_timeout_ms;
    /** Internal, for tests: NULL uses libcurl. */
    const struct knn_s3_transport *transport;
};

#define KNN_S3_CLIENT_OPTIONS_INIT                                                                                     \
    {                                                                                                                  \
        0                                                                                                              \
    }

/**
 * Make a client. Resolves the endpoint, region and addressing now; credentials are fetched at the
 * first request (so a client can be made before they exist). Errors: KNN_EINVAL (a bad endpoint URL
 * or option; the message says which), KNN_ENOMEM.
 */
int knn_s3_client_new(struct knn_s3_client **out, const struct knn_s3_client_options *opts);

/** Free the client (NULL-safe). Destroy its readers and uploads first: they borrow it. */
void knn_s3_client_destroy(struct knn_s3_client *client);

/** Retries of one cause: an S3 error code ("SlowDown", "InternalError"), "HTTP 503" when the answer
 *  named none, or "timeout", "truncated", "connection" for transport failures. */
struct knn_s3_retry_count {
    char cause[48];
    uint64_t count;
};

#define KNN_S3_RETRY_CAUSES_MAX 16 /* causes counted apart; later new ones count as "other" */

/**
 * The retries the client's requests made so far, by cause in the order first seen: copies up to
 * `max` into out and returns how many there are. Thread-safe. (Each retry also logs one WARN line
 * "<operation> s3://bucket/key: <cause> ... (attempt a of n); retrying in t ms", at most one per
 * operation every 10 s, with the count of the retries it did not log.)
 */
size_t knn_s3_client_retries(struct knn_s3_client *client, struct knn_s3_retry_count *out, size_t max);

/** The resolved region and endpoint ("https://s3.us-east-1.amazonaws.com"); owned by the client. */
const char *knn_s3_client_region(const struct knn_s3_client *client);
const char *knn_s3_client_endpoint(const struct knn_s3_client *client);

/** An object in a listing or a HEAD. Strings are owned (release with knn_s3_object_info_clean_up). */
struct knn_s3_object_info {
    char *key;
    uint64_t size;
    char *etag;              /* with its quotes, as S3 sends it: "\"9b2cf535f27731c974343645a3985328\"" */
    int64_t last_modified_s; /* Unix seconds, 0 if unknown */
};

void knn_s3_object_info_clean_up(struct knn_s3_object_info *info);

/**
 * HEAD an object. `out` (empty on entry) gets its key, size, ETag and Last-Modified.
 * KNN_ES3_NO_SUCH_KEY if it does not exist.
 */
int knn_s3_head(struct knn_s3_object_info *out, struct knn_s3_client *client, const char *bucket, const char *key);

/** *exists = 1 or 0 (HEAD; a missing key is not an error here). */
int knn_s3_exists(int *exists, struct knn_s3_client *client, const char *bucket, const char *key);

/**
 * One entry of a listing: an object (info set) or, with a delimiter, a common prefix
 * (common_prefix set, info NULL). Borrowed for the duration of the callback.
 */
struct knn_s3_list_entry {
    const struct knn_s3_object_info *info;
    const char *common_prefix;
};

/** Return 0 to go on, or an error code to stop the listing with it. */
typedef int(knn_s3_list_fn)(void *user, const struct knn_s3_list_entry *entry);

/**
 * ListObjectsV2 of `prefix` ("" for the whole bucket), following continuation tokens through every
 * page, in S3's order (UTF-8 binary order of keys). `delimiter` NULL lists recursively; "/" groups
 * keys below the next '/' into common prefixes. Keys are requested URL-encoded (encoding-type=url)
 * and decoded, so any key survives the XML.
 */
int knn_s3_list_each(
    struct knn_s3_client *client, const char *bucket, const char *prefix, const char *delimiter, knn_s3_list_fn *fn,
    void *user);

/** A whole listing (objects only, recursive) in memory. */
struct knn_s3_object_list {
    struct knn_s3_object_info *items;
    size_t count;
    uint64_t total_size;
};

/** Collect knn_s3_list_each(prefix, no delimiter) into `out` (empty on entry; clean it up also after a failure). */
int knn_s3_list(struct knn_s3_object_list *out, struct knn_s3_client *client, const char *bucket, const char *prefix);

void knn_s3_object_list_clean_up(struct knn_s3_object_list *list);

/** Receives the bytes of a GET in order. Return 0 to go on, or an error code to stop with it. */
typedef int(knn_s3_data_fn)(void *user, const uint8_t *data, size_t len);

struct knn_s3_get_options {
    uint64_t offset;      /* first byte */
    uint64_t length;      /* number of bytes from offset; UINT64_MAX: to the end */
    const char *if_match; /* an ETag the object must still have; NULL: any */
};
#define KNN_S3_GET_OPTIONS_INIT                                                                                        \
    {                                                                                                                  \
        0, UINT64_MAX, NULL                                                                                            \
    }

/**
 * GET an object (or a range of it), streamed into `fn` as it arrives; nothing is buffered beyond
 * curl's own buffer. The byte count is checked against Content-Length: a short body is an error
 * (KNN_ETRUNCATED), never a success. After a failure in the middle of the body (reset, timeout,
 * truncation, 5xx) the GET resumes from the last byte delivered, with If-Match on the object's ETag,
 * so `fn` sees every byte exactly once; if the object changed meanwhile, KNN_ES3_CHANGED.
 * `info_out` (may be NULL; empty on entry) gets the object's size and ETag.
 * An error returned by `fn` stops the GET and is returned as is.
 */
int knn_s3_get(
    struct knn_s3_object_info *info_out, struct knn_s3_client *client, const char *bucket, const char *key,
    const struct knn_s3_get_options *opts, knn_s3_data_fn *fn, void *user);

/**
 * Download an object into a local file, fetching ranges in parallel and writing each where it
 * belongs (pwrite; no buffering beyond curl's). The file is written
 * as PATH.partial-XXXXXX and renamed over `path` only when complete, so a failure never leaves a
 * partial file at `path`. `path` "-" writes to standard output (sequentially); a path that is a
 * device, FIFO or socket (/dev/null, a named pipe) is written into directly, never replaced.
 */
int knn_s3_get_file(struct knn_s3_client *client, const char *bucket, const char *key, const char *path);

struct knn_s3_put_options {
    const char *content_type; /* NULL: application/octet-stream */
};
#define KNN_S3_PUT_OPTIONS_INIT                                                                                        \
    {                                                                                                                  \
        NULL                                                                                                           \
    }

/**
 * PUT `len` bytes from memory as one object: a single PutObject below multipart_threshold, else a
 * parallel multipart upload (upload.h). `etag_out` (may be NULL) gets the new ETag (knn_free it).
 */
int knn_s3_put(
    char **etag_out, struct knn_s3_client *client, const char *bucket, const char *key, const void *data, size_t len,
    const struct knn_s3_put_options *opts);

/**
 * PUT a local file (streamed through upload.h: single PutObject or multipart by size); "-" reads
 * standard input. No partial object is ever visible: on failure the multipart upload is aborted.
 */
int knn_s3_put_file(
    char **etag_out, struct knn_s3_client *client, const char *bucket, const char *key, const char *path,
    const struct knn_s3_put_options *opts);

/** DeleteObject. Deleting a missing key succeeds (S3 answers 204 either way). */
int knn_s3_delete(struct knn_s3_client *client, const char *bucket, const char *key);

/** A multipart upload in progress (ListMultipartUploads). Borrowed strings, valid during the callback. */
struct knn_s3_upload_entry {
    const char *key;
    const char *upload_id;
    int64_t initiated_s;
};
typedef int(knn_s3_upload_list_fn)(void *user, const struct knn_s3_upload_entry *entry);

/** List the multipart uploads in progress under `prefix` (all pages). For clean-up tools and tests. */
int knn_s3_list_uploads(
    struct knn_s3_client *client, const char *bucket, const char *prefix, knn_s3_upload_list_fn *fn, void *user);

/** AbortMultipartUpload (frees the parts). KNN_ES3_NO_SUCH_UPLOAD if it is gone already. */
int knn_s3_abort_upload(struct knn_s3_client *client, const char *bucket, const char *key, const char *upload_id);

#endif
