/*
 * Fuzz target: S3 URIs and endpoint URLs, as a user types them (manifest S3Uri, --model,
 * --endpoint-url, AWS_ENDPOINT_URL). The input (NUL-terminated copy) goes to knn_s3_uri_is_s3,
 * knn_s3_uri_parse, knn_s3_bucket_name_is_valid, the SigV4 URI encoder and decoder, and
 * knn_s3_client_new as the endpoint URL.
 * Checks besides no crash/leak: parse agrees with is_s3; a parsed URI has a non-empty bucket;
 * decode(encode(x)) == x; a refusal has a message.
 */
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/client.h"
#include "knn/s3/credentials.h"
#include "knn/s3/uri.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_s3_uri: property broken: %s (last error: %s)\n", what, knn_error_message());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *text = knn_malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct knn_s3_uri u;
    memset(&u, 0, sizeof(u));
    int rc = knn_s3_uri_parse(&u, text);
    s_check(rc == 0 || knn_error_message()[0], "a refused URI has a message");
    if (rc == 0) {
        s_check(knn_s3_uri_is_s3(text), "a parsed URI is an S3 URI");
        s_check(u.bucket && u.bucket[0] && u.key, "a parsed URI has a bucket (legacy names are accepted) and a key");
        knn_s3_uri_clean_up(&u);
    }
    (void)knn_s3_bucket_name_is_valid(text);

    for (int keep_slash = 0; keep_slash < 2; keep_slash++) {
        struct knn_buf enc = KNN_BUF_INIT(1 << 20), dec = KNN_BUF_INIT(1 << 20);
        if (knn_s3_uri_encode(&enc, (const char *)data, size, keep_slash) == 0 &&
            knn_s3_uri_decode(&dec, enc.len ? (const char *)enc.data : "", enc.len, 0) == 0)
            s_check(dec.len == size && (size == 0 || memcmp(dec.data, data, size) == 0), "decode(encode(x)) == x");
        knn_buf_clean_up(&enc);
        knn_buf_clean_up(&dec);
    }
    struct knn_buf dec = KNN_BUF_INIT(1 << 20);
    (void)knn_s3_uri_decode(&dec, text, size, 1);
    knn_buf_clean_up(&dec);

    struct knn_s3_credentials_provider *creds = NULL;
    if (knn_s3_credentials_provider_new_static(&creds, "FUZZKEY", "fuzz-secret", NULL) == 0) {
        struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
        struct knn_s3_client *c = NULL;
        o.endpoint_url = text;
        o.region = "us-east-1";
        o.credentials = creds;
        rc = knn_s3_client_new(&c, &o);
        s_check(rc == 0 || knn_error_message()[0], "a refused endpoint has a message");
        knn_s3_client_destroy(c);
        knn_s3_credentials_provider_release(creds);
    }
    knn_free(text);
    return 0;
}
