/* S3 errors: code -> KNN_E*, what is retryable, and the one-line message. Also the body hashes. */
#include "knn/common/error.h"
#include "s3_impl.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

int knn__s3_code_is_retryable(const char *code)
{
    static const char *const retryable[] = {
        "SlowDown",   "InternalError",       "RequestTimeout",   "RequestTimeTooSkewed", "ServiceUnavailable",
        "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests",      "OperationAborted"};
    for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++)
        if (strcmp(code, retryable[i]) == 0)
            return 1;
    return 0;
}

int knn__s3_code_to_error(const char *code, long status)
{
    static const struct {
        const char *code;
        int error;
    } map[] = {
        {"NoSuchKey", KNN_ES3_NO_SUCH_KEY},
        {"NoSuchBucket", KNN_ES3_NO_SUCH_BUCKET},
        {"NoSuchUpload", KNN_ES3_NO_SUCH_UPLOAD},
        {"AccessDenied", KNN_ES3_ACCESS_DENIED},
        {"InvalidAccessKeyId", KNN_ES3_ACCESS_DENIED},
        {"SignatureDoesNotMatch", KNN_ES3_ACCESS_DENIED},
        {"ExpiredToken", KNN_ES3_ACCESS_DENIED},
        {"InvalidToken", KNN_ES3_ACCESS_DENIED},
        {"AllAccessDisabled", KNN_ES3_ACCESS_DENIED},
        {"BadDigest", KNN_ECHECKSUM},
        {"InvalidDigest", KNN_ECHECKSUM},
        {"XAmzContentSHA256Mismatch", KNN_ECHECKSUM},
        {"PreconditionFailed", KNN_ES3_CHANGED},
        {"InvalidRange", KNN_ERANGE},
        {"EntityTooSmall", KNN_EINVAL},
        {"EntityTooLarge", KNN_ETOOBIG},
        {"InvalidBucketName", KNN_EINVAL},
        {"KeyTooLongError", KNN_EINVAL},
        {"InvalidArgument", KNN_EINVAL},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(code, map[i].code) == 0)
            return map[i].error;
    if (status == 404)
        return KNN_ENOTFOUND;
    if (status == 403)
        return KNN_ES3_ACCESS_DENIED;
    return KNN_ES3;
}

/* A code for responses without an <Error> body (HEAD, some proxies). */
static const char *s_code_from_status(long status)
{
    switch (status) {
        case 301:
            return "PermanentRedirect";
        case 304:
            return "NotModified";
        case 400:
            return "BadRequest";
        case 403:
            return "AccessDenied";
        case 404:
            return "NotFound";
        case 405:
            return "MethodNotAllowed";
        case 409:
            return "Conflict";
        case 412:
            return "PreconditionFailed";
        case 416:
            return "InvalidRange";
        case 429:
            return "TooManyRequests";
        case 500:
            return "InternalError";
        case 502:
            return "BadGateway";
        case 503:
            return "ServiceUnavailable";
        case 504:
            return "GatewayTimeout";
        default:
            return "HTTPError";
    }
}

/*
 * A 403 says which credentials were used (their source, the first characters of the key id, never
 * the secret) and what to check: a HEAD answer has no body, so a wrong key or secret and a missing
 * permission look the same there.
 */
static void s_access_denied(
    struct knn_s3_client *client, const struct knn_s3__request *req, const struct knn_s3__response *resp,
    const char *uri, const char *s3code, const char *msg, const char *rid)
{
    char used[sizeof(client->credentials_used)];
    pthread_mutex_lock(&client->lock);
    memcpy(used, client->credentials_used, sizeof(used));
    pthread_mutex_unlock(&client->lock);
    const char *check;
    if (strcmp(s3code, "InvalidAccessKeyId") == 0)
        check = "the server does not know this access key id: check AWS_ACCESS_KEY_ID / the profile's keys and "
                "that they belong to this endpoint";
    else if (strcmp(s3code, "SignatureDoesNotMatch") == 0)
        check = "the secret access key does not match the key id: check AWS_SECRET_ACCESS_KEY / the profile's keys";
    else if (strcmp(s3code, "ExpiredToken") == 0 || strcmp(s3code, "InvalidToken") == 0)
        check = "the session token is expired or invalid: get fresh temporary credentials";
    else if (!resp->error.code[0])
        check = "a HEAD answer carries no reason: check the access key id and secret (a wrong secret is refused the "
                "same way), the session token, and that this identity may read the object";
    else
        check = "check that this identity may do this (the bucket policy, the user's or role's permissions)";
    knn_error_set(
        KNN_ES3_ACCESS_DENIED, "%s %s: %s%s%s (HTTP %ld, request id %s); credentials used: %s; %s", req->op, uri,
        s3code, msg[0] ? ": " : "", msg, resp->status, rid[0] ? rid : "none", used[0] ? used : "none", check);
}

enum knn_s3__verdict knn__s3_classify(
    int *code, struct knn_s3_client *client, const struct knn_s3__request *req, const struct knn_s3_http_exchange *x,
    const struct knn_s3__response *resp, int attempt)
{
    char uri[1200];
    int last = attempt >= client->max_attempts;
    knn__s3_request_uri(uri, sizeof(uri), req);

    if (x->result != 0) {
        int net = x->result == KNN_ES3_NET || x->result == KNN_ETIMEOUT || x->result == KNN_ETRUNCATED;
        if (!net) { /* the receiver stopped the exchange: its code and message stand */
            *code = x->result;
            return KNN_S3__FAIL;
        }
        const char *what = x->result == KNN_ETIMEOUT     ? "timed out"
                           : x->result == KNN_ETRUNCATED ? "body shorter than its Content-Length"
                                                         : "connection failed";
        if (x->net_retryable && !last) {
            *code = x->result;
            knn_error_set(
                x->result, "%s %s: %s: %s (attempt %d of %d)", req->op, uri, what, x->error, attempt,
                client->max_attempts);
            return KNN_S3__RETRY;
        }
        *code = x->result;
        if (x->result == KNN_ES3_NET && x->unreachable) {
            *code = KNN_ES3_UNREACHABLE;
            char tries[48] = "";
            if (attempt > 1)
                snprintf(tries, sizeof(tries), " (gave up after %d attempts)", attempt);
            knn_error_set(
                *code, "%s %s: cannot connect to the S3 endpoint %s: %s%s: %s", req->op, uri, client->endpoint,
                x->error, tries,
                client->is_aws ? "check the network and the region (--region, AWS_REGION, region in ~/.aws/config)"
                               : "check the endpoint URL (--endpoint-url, the manifest's EndpointUrl, "
                                 "AWS_ENDPOINT_URL(_S3), endpoint_url in ~/.aws/config) and that the server is running");
            return KNN_S3__FAIL;
        }
        if (attempt > 1)
            knn_error_set(
                x->result, "%s %s: %s: %s (gave up after %d attempts)", req->op, uri, what, x->error, attempt);
        else
            knn_error_set(x->result, "%s %s: %s: %s", req->op, uri, what, x->error);
        return KNN_S3__FAIL;
    }

    /* A complete response. 2xx is success, except an <Error> body in a 200 (CompleteMultipartUpload). */
    const char *s3code = resp->error.code[0] ? resp->error.code : NULL;
    if (resp->status >= 200 && resp->status < 300 && !s3code)
        return KNN_S3__OK;
    if (!s3code)
        s3code = s_code_from_status(resp->status);
    int retryable = resp->status == 500 || resp->status == 502 || resp->status == 503 || resp->status == 504 ||
                    resp->status == 429 || knn__s3_code_is_retryable(s3code);
    const char *rid = resp->error.request_id[0] ? resp->error.request_id : resp->request_id;
    const char *msg = resp->error.message[0] ? resp->error.message : "";
    if (retryable && !last) {
        *code = KNN_ES3_RETRIES_EXHAUSTED;
        knn_error_set(
            *code, "%s %s: %s%s%s (HTTP %ld, request id %s; attempt %d of %d)", req->op, uri, s3code,
            msg[0] ? ": " : "", msg, resp->status, rid[0] ? rid : "none", attempt, client->max_attempts);
        return KNN_S3__RETRY;
    }
    *code = retryable ? KNN_ES3_RETRIES_EXHAUSTED : knn__s3_code_to_error(s3code, resp->status);
    if (resp->bucket_region[0] && strcmp(resp->bucket_region, client->region) != 0) {
        /* AWS says where the bucket lives (301 PermanentRedirect, 400 AuthorizationHeaderMalformed). */
        knn_error_set(
            *code,
            "%s %s: %s%s%s (HTTP %ld, request id %s): the bucket is in region %s, not %s: use "
            "--region %s",
            req->op, uri, s3code, msg[0] ? ": " : "", msg, resp->status, rid[0] ? rid : "none", resp->bucket_region,
            client->region, resp->bucket_region);
        return KNN_S3__FAIL;
    }
    if (retryable)
        knn_error_set(
            *code, "%s %s: %s%s%s (HTTP %ld, request id %s; gave up after %d attempts)", req->op, uri, s3code,
            msg[0] ? ": " : "", msg, resp->status, rid[0] ? rid : "none", attempt);
    else if (*code == KNN_ES3_ACCESS_DENIED)
        s_access_denied(client, req, resp, uri, s3code, msg, rid);
    else
        knn_error_set(
            *code, "%s %s: %s%s%s (HTTP %ld, request id %s)", req->op, uri, s3code, msg[0] ? ": " : "", msg,
            resp->status, rid[0] ? rid : "none");
    return KNN_S3__FAIL;
}

int knn__s3_hash(const uint8_t *data, size_t len, char md5_b64[25], unsigned char md5_raw[16], char *sha_hex)
{
    static const char hex[] = "0123456789abcdef";
    EVP_MD_CTX *md5 = EVP_MD_CTX_new();
    EVP_MD_CTX *sha = sha_hex ? EVP_MD_CTX_new() : NULL;
    unsigned char m[EVP_MAX_MD_SIZE], s[EVP_MAX_MD_SIZE];
    unsigned int ml = 0, sl = 0;
    int rc = 0;
    if (!md5 || (sha_hex && !sha)) {
        rc = knn_error_set(KNN_ENOMEM, "EVP_MD_CTX_new failed");
        goto done;
    }
    if (!EVP_DigestInit_ex(md5, EVP_md5(), NULL) || (sha && !EVP_DigestInit_ex(sha, EVP_sha256(), NULL))) {
        rc = knn_error_set(KNN_EINTERNAL, "EVP_DigestInit failed");
        goto done;
    }
    /* Both digests over the same 256 KiB block while it is in cache. */
    for (size_t off = 0; off < len;) {
        size_t n = len - off < 256 * 1024 ? len - off : 256 * 1024;
        if (!EVP_DigestUpdate(md5, data + off, n) || (sha && !EVP_DigestUpdate(sha, data + off, n))) {
            rc = knn_error_set(KNN_EINTERNAL, "EVP_DigestUpdate failed");
            goto done;
        }
        off += n;
    }
    if (!EVP_DigestFinal_ex(md5, m, &ml) || (sha && !EVP_DigestFinal_ex(sha, s, &sl))) {
        rc = knn_error_set(KNN_EINTERNAL, "EVP_DigestFinal failed");
        goto done;
    }
    EVP_EncodeBlock((unsigned char *)md5_b64, m, (int)ml);
    if (md5_raw)
        memcpy(md5_raw, m, 16);
    if (sha_hex) {
        for (unsigned i = 0; i < sl; i++) {
            sha_hex[2 * i] = hex[s[i] >> 4];
            sha_hex[2 * i + 1] = hex[s[i] & 15];
        }
        sha_hex[2 * sl] = '\0';
    }
done:
    EVP_MD_CTX_free(md5);
    EVP_MD_CTX_free(sha);
    return rc;
}
