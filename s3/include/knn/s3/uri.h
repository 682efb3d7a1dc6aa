#ifndef KNN_S3_URI_H
#define KNN_S3_URI_H

/**
 * S3 object locations and the URI encoding S3 and SigV4 use.
 *
 * Accepted forms (knn_s3_uri_parse):
 *   s3://bucket/key/with/slashes          the usual form; the key may be empty ("s3://bucket", "s3://bucket/")
 *   https://bucket.s3.REGION.amazonaws.com/key      AWS virtual-hosted style (also s3.amazonaws.com,
 *   https://bucket.s3-REGION.amazonaws.com/key       s3-REGION, s3.dualstack.REGION, amazonaws.com.cn)
 *   https://s3.REGION.amazonaws.com/bucket/key      AWS path style
 * In https:// URLs the key is percent-decoded ("a%20b" is the key "a b"); in s3:// URIs it is taken
 * as written, as the AWS CLI does ("s3://b/a%20b" is the key "a%20b"). Anything else (a local path,
 * file://, an http:// URL of another server) is not an S3 URI: use knn_s3_uri_is_s3() to tell a
 * local path from an S3 location, and s3:// with the client's endpoint for other servers.
 *
 * Thread-safe (no shared state).
 */

#include <stddef.h>

struct knn_buf;

struct knn_s3_uri {
    char *bucket; /* never empty */
    char *key;    /* "" for the bucket's root; a prefix when it ends in '/' */
    char *region; /* the region named by an AWS https:// URL, or NULL */
};

/** 1 if `text` is an S3 location (s3:// or an AWS https:// S3 URL), 0 for anything else (a local path). */
int knn_s3_uri_is_s3(const char *text);

/**
 * Parse `text` into `out` (owned strings; release with knn_s3_uri_clean_up, also after a failure).
 * Bucket names are checked loosely (1-255 characters of A-Z a-z 0-9 . _ -, as legacy us-east-1
 * buckets allow); knn_s3_bucket_name_is_valid is the strict DNS-compatible rule.
 * Errors: KNN_EINVAL (not an S3 URI, empty or invalid bucket name, a query string, bad
 * percent-encoding; the message quotes the input and says what is wrong), KNN_ENOMEM.
 */
int knn_s3_uri_parse(struct knn_s3_uri *out, const char *text);

void knn_s3_uri_clean_up(struct knn_s3_uri *uri);

/**
 * 1 if `bucket` is a valid S3 bucket name (3-63 characters of a-z 0-9 . -, starting and ending with
 * a letter or digit, not an IP address), else 0.
 */
int knn_s3_bucket_name_is_valid(const char *bucket);

/**
 * Append the SigV4 URI encoding of `len` bytes of `s` to `out`: every byte except the unreserved
 * characters A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex), so a space is %20, never '+'. With
 * keep_slash, '/' is kept (object keys in paths); without it, it is %2F (query names and values).
 * Errors: KNN_ETOOBIG (over the buffer's cap), KNN_ENOMEM.
 */
int knn_s3_uri_encode(struct knn_buf *out, const char *s, size_t len, int keep_slash);

/**
 * Append the percent-decoding of `len` bytes of `s` to `out`; with plus_is_space, '+' decodes to a
 * space (S3's encoding-type=url listings). Errors: KNN_EFORMAT (a '%' not followed by two hex digits,
 * or a decoded NUL byte; the message gives the offset), KNN_ETOOBIG, KNN_ENOMEM.
 */
int knn_s3_uri_decode(struct knn_buf *out, const char *s, size_t len, int plus_is_space);

/**
 * `url` fit for a message: a user name and password ("https://user:pass@host/") become "***@", and
 * the values of query parameters that carry secrets (X-Amz-Signature, X-Amz-Credential,
 * X-Amz-Security-Token, Signature, AWSAccessKeyId, and any name containing "token", "secret",
 * "password" or "key") become "***". Truncated to `size`; returns buf.
 */
const char *knn_s3_url_redact(char *buf, size_t size, const char *url);

#endif
