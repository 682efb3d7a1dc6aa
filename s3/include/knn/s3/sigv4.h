#ifndef KNN_S3_SIGV4_H
#define KNN_S3_SIGV4_H

/**
 * AWS Signature Version 4 for S3, header-based and presigned (query-based).
 *
 * The signer is a pure function of its inputs: the request (method, encoded path, raw query
 * parameters, the headers to sign, the payload hash) and a config (credentials, region, service,
 * and the time, injected so that tests are deterministic). It keeps every intermediate stage in its
 * output, so a test can compare each stage with a golden file and a failure points at the stage
 * that broke. The derived signing key is wiped (OPENSSL_cleanse) before returning; the output holds
 * no secret (the signature is public).
 *
 * S3 specifics: the path is encoded once by the caller (knn_s3_uri_encode with keep_slash) and is
 * used as is (S3 does no double encoding and no path normalization); query names and values are
 * encoded here and sorted by encoded name, then value; a parameter without a value signs as "name=".
 *
 * Thread-safe (no shared state).
 */

#include "knn/common/buf.h"

#include <stddef.h>
#include <stdint.h>

struct knn_s3_credentials;

/** A name/value pair (query parameter or header); borrowed strings. */
struct knn_s3_kv {
    const char *name;
    const char *value; /* "" for a query parameter without a value */
};

#define KNN_S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define KNN_S3_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

struct knn_s3_sigv4_config {
    const struct knn_s3_credentials *credentials; /* borrowed */
    const char *region;                           /* "us-east-1" */
    const char *service;                          /* NULL: "s3" */
    int64_t time_s;                               /* the signing time, Unix seconds (UTC) */
};

struct knn_s3_sigv4_request {
    const char *method;            /* "GET", "PUT", ... */
    const char *path;              /* the encoded absolute path, e.g. "/bucket/a%20b" */
    const struct knn_s3_kv *query; /* raw (unencoded) parameters, any order */
    size_t query_count;
    const struct knn_s3_kv *headers; /* the headers to sign, "host" included, any case and order */
    size_t header_count;
    const char *payload_hash; /* lower-case hex SHA-256 of the body, or KNN_S3_UNSIGNED_PAYLOAD */
};

/** The signer's output; every stage is kept for tests and debugging. */
struct knn_s3_sigv4_signature {
    struct knn_buf canonical_query; /* also the query string to put in the URL */
    struct knn_buf canonical_request;
    struct knn_buf string_to_sign;
    struct knn_buf signed_headers; /* "host;range;x-amz-date" */
    struct knn_buf authorization;  /* the Authorization header value (header signing only) */
    char signature[65];            /* lower-case hex */
};

void knn_s3_sigv4_signature_init(struct knn_s3_sigv4_signature *sig);
void knn_s3_sigv4_signature_clean_up(struct knn_s3_sigv4_signature *sig);

/**
 * Format `time_s` as "YYYYMMDDTHHMMSSZ" (the x-amz-date header value) into out[17].
 * Errors: KNN_ERANGE (a year outside 0000-9999).
 */
int knn_s3_sigv4_amz_date(char out[17], int64_t time_s);

/**
 * Sign a request with the Authorization header. The caller's `headers` must already contain every
 * header that is signed, among them host, x-amz-date (knn_s3_sigv4_amz_date of config->time_s),
 * x-amz-content-sha256 and, with a session token, x-amz-security-token; the signer checks that
 * x-amz-date matches the config's time. Header names are lower-cased, values trimmed and inner runs
 * of spaces collapsed; repeated names are joined with ','.
 * `out` must be initialized (knn_s3_sigv4_signature_init) and is reset first.
 * Errors: KNN_EINVAL (missing host or x-amz-date, mismatched date, bad header name), KNN_ENOMEM.
 */
int knn_s3_sigv4_sign(
    struct knn_s3_sigv4_signature *out, const struct knn_s3_sigv4_config *config,
    const struct knn_s3_sigv4_request *request);

/**
 * Presign a request: the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
 * X-Amz-SignedHeaders (and X-Amz-Security-Token) parameters are added to the request's own query,
 * and out->canonical_query followed by "&X-Amz-Signature=<signature>" is the complete query string
 * of the URL. request->payload_hash is normally KNN_S3_UNSIGNED_PAYLOAD. expires_s: 1..604800.
 * Errors: as knn_s3_sigv4_sign, plus KNN_ERANGE for expires_s.
 */
int knn_s3_sigv4_presign(
    struct knn_s3_sigv4_signature *out, const struct knn_s3_sigv4_config *config,
    const struct knn_s3_sigv4_request *request, int64_t expires_s);

#endif
