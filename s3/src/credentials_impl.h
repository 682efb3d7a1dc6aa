#ifndef KNN_S3_CREDENTIALS_IMPL_H
#define KNN_S3_CREDENTIALS_IMPL_H

/* Internal helpers shared by the credentials providers. */

#include "knn/common/buf.h"
#include "knn/s3/credentials.h"

#include <stddef.h>
#include <stdint.h>

/** Set `out` from (pointer, length) strings; token may be NULL. */
int knn__s3_credentials_set(
    struct knn_s3_credentials *out, const char *ak, size_t ak_len, const char *sk, size_t sk_len, const char *token,
    size_t token_len, int64_t expiration_s);

int knn__s3_provider_new(
    struct knn_s3_credentials_provider **out, const struct knn_s3_credentials_provider_vtable *vtable, const char *name,
    void *impl);

int64_t knn__s3_system_clock(void *user);

/**
 * Parse an ISO 8601 UTC time ("2026-11-30T10:09:54Z", optional fraction, "Z" or "+00:00") into Unix
 * seconds. Errors: KNN_EFORMAT.
 */
int knn__s3_parse_iso8601(int64_t *out, const char *s, size_t len);

/**
 * Parse credentials JSON as the container and instance-metadata endpoints return it:
 * {"AccessKeyId": ..., "SecretAccessKey": ..., "Token": ..., "Expiration": "..."} (IMDS adds
 * "Code": "Success"). `what` names the source in messages. Errors: KNN_EFORMAT, KNN_ES3_CREDENTIALS.
 */
int knn__s3_credentials_from_json(struct knn_s3_credentials *out, const char *json, size_t len, const char *what);

/** One HTTP response of a credentials endpoint, body capped at 64 KiB. */
struct knn__s3_http_result {
    long status;   /* 0 if no response */
    int curl_code; /* CURLcode */
    struct knn_buf body;
};

/**
 * One HTTP request (GET or PUT with an empty body) with `headers` ("Name: value" lines, may contain
 * secrets: they are never logged) and a total timeout. Returns 0 when an HTTP response arrived (any
 * status), KNN_ES3_NET when none did (the message says why, without the headers).
 */
int knn__s3_http_simple(
    struct knn__s3_http_result *out, const char *method, const char *url, const char *const *headers, int header_count,
    int timeout_ms);

void knn__s3_http_result_clean_up(struct knn__s3_http_result *r);

#endif
