/*
 * What an AWS user meets when something is wrong: URLs redacted in messages, an XML answer of the
 * wrong kind refused, a 403 that names the credentials used, an unreachable endpoint reported as
 * a setting to check. No server: loopback ports nothing listens on.
 */
#include "knn_test.h"

#include "knn/common/error.h"
#include "knn/s3/client.h"
#include "knn/s3/credentials.h"
#include "knn/s3/uri.h"
#include "s3_impl.h"

#include <stdio.h>
#include <string.h>

int test_url_redact(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"http://127.0.0.1:7480", "http://127.0.0.1:7480"},
        {"https://user:hunter2@s3.example.com/", "https://***@s3.example.com/"},
        {"https://token@s3.example.com", "https://***@s3.example.com"},
        {"http://a:b@h:1/x@y?z=@", "http://***@h:1/x@y?z=@"}, /* an @ after the host is not a password */
        {"https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12"
         "&x-amz-security-token=tok&versionId=3",
         "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Signature=***"
         "&x-amz-security-token=***&versionId=3"},
        {"https://h/k?AWSAccessKeyId=AK&Signature=s&Expires=1#frag", "https://h/k?AWSAccessKeyId=***&Signature=***&Expires=1#frag"},
        {"https://h/k?flag&password=p", "https://h/k?flag&password=***"},
        {"s3://bucket/key", "s3://bucket/key"},
    };
    char buf[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ASSERT_STR_EQ(cases[i].out, knn_s3_url_redact(buf, sizeof(buf), cases[i].in));
    char small[12];
    ASSERT_STR_EQ("https://***", knn_s3_url_redact(small, sizeof(small), "https://u:p@host/"));
    return 0;
}

static int s_client(struct knn_s3_client **out, const char *endpoint, const char *ak)
{
    struct knn_s3_credentials_provider *creds;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    int rc = knn_s3_credentials_provider_new_static(&creds, ak, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY", NULL);
    if (rc)
        return rc;
    o.endpoint_url = endpoint;
    o.region = "us-east-1";
    o.credentials = creds;
    o.max_attempts = 2;
    o.retry_base_ms = 1;
    o.connect_timeout_ms = 2000;
    rc = knn_s3_client_new(out, &o);
    knn_s3_credentials_provider_release(creds);
    return rc;
}

int test_endpoint_password_never_echoed(void)
{
    struct knn_s3_client *c = NULL;
    ASSERT_ERR(KNN_EINVAL, s_client(&c, "http://admin:hunter2@127.0.0.1:9", "AKIDEXAMPLE"));
    ASSERT_CONTAINS(knn_error_message(), "'http://***@127.0.0.1:9'");
    ASSERT_CONTAINS(knn_error_message(), "user name or password in the URL is not supported");
    ASSERT_TRUE(strstr(knn_error_message(), "hunter2") == NULL);
    /* Other endpoint errors show the URL redacted too. */
    ASSERT_ERR(KNN_EINVAL, s_client(&c, "ftp://admin:hunter2@host", "AKIDEXAMPLE"));
    ASSERT_TRUE(strstr(knn_error_message(), "hunter2") == NULL);
    return 0;
}

int test_unreachable_endpoint_is_a_setting(void)
{
    struct knn_s3_client *c;
    int exists = 0;
    ASSERT_OK(s_client(&c, "http://127.0.0.1:9", "AKIDEXAMPLE")); /* discard port: nothing listens */
    int rc = knn_s3_exists(&exists, c, "bucket", "key");
    knn_s3_client_destroy(c);
    ASSERT_INT_EQ(KNN_ES3_UNREACHABLE, rc);
    ASSERT_CONTAINS(knn_error_message(), "HeadObject s3://bucket/key: cannot connect to the S3 endpoint "
                                         "http://127.0.0.1:9: ");
    ASSERT_CONTAINS(knn_error_message(), "(gave up after 2 attempts): check the endpoint URL (--endpoint-url");
    ASSERT_STR_EQ("KNN_ES3_UNREACHABLE", knn_error_name(rc));
    return 0;
}

/* A response the classifier sees: status, optional <Error> code. */
static int s_classify_403(struct knn_s3_client *c, const char *op, const char *code)
{
    struct knn_s3__request req = {.op = op, .method = strcmp(op, "HeadObject") ? "GET" : "HEAD", .bucket = "b",
                                  .key = "data/k"};
    struct knn_s3_http_exchange x;
    struct knn_s3__response resp;
    memset(&x, 0, sizeof(x));
    knn__s3_response_init(&resp, 0);
    resp.status = 403;
    snprintf(resp.error.code, sizeof(resp.error.code), "%s", code);
    int err = 0;
    enum knn_s3__verdict v = knn__s3_classify(&err, c, &req, &x, &resp, 1);
    knn__s3_response_clean_up(&resp);
    return v == KNN_S3__FAIL ? err : -9999;
}

int test_access_denied_names_credentials(void)
{
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, "http://127.0.0.1:9", "AKIAIOSFODNN7EXAMPLE"));
    /* What the request was signed with, as knn__s3_prepare records it. */
    struct knn_s3__prepared p;
    knn__s3_prepared_init(&p);
    struct knn_s3__request req = {.op = "HeadObject", .method = "HEAD", .bucket = "b", .key = "data/k"};
    ASSERT_OK(knn__s3_prepare(&p, c, &req));
    knn__s3_prepared_clean_up(&p);

    /* A HEAD: no body, no code. */
    ASSERT_INT_EQ(KNN_ES3_ACCESS_DENIED, s_classify_403(c, "HeadObject", ""));
    const char *m = knn_error_message();
    ASSERT_CONTAINS(m, "HeadObject s3://b/data/k: AccessDenied (HTTP 403, request id none); credentials used: "
                       "the keys given to the client, access key id AKIAIOSF... (20 characters); a HEAD answer "
                       "carries no reason: check the access key id and secret");
    ASSERT_TRUE(strstr(m, "SECRETKEY") == NULL && strstr(m, "AKIAIOSFODNN7EXAMPLE") == NULL);
    ASSERT_INT_EQ(KNN_ES3_ACCESS_DENIED, s_classify_403(c, "GetObject", "SignatureDoesNotMatch"));
    ASSERT_CONTAINS(knn_error_message(), "the secret access key does not match the key id");
    ASSERT_INT_EQ(KNN_ES3_ACCESS_DENIED, s_classify_403(c, "GetObject", "InvalidAccessKeyId"));
    ASSERT_CONTAINS(knn_error_message(), "the server does not know this access key id");
    ASSERT_INT_EQ(KNN_ES3_ACCESS_DENIED, s_classify_403(c, "GetObject", "AccessDenied"));
    ASSERT_CONTAINS(knn_error_message(), "credentials used: the keys given to the client, access key id AKIAIOSF...");
    ASSERT_CONTAINS(knn_error_message(), "the bucket policy");
    knn_s3_client_destroy(c);

    /* A short key id shows half of itself at most; the environment is named as the source. */
    struct knn_s3_credentials cr = {"KEY123", "S", "T", 0, "environment variables"};
    char buf[256];
    knn_s3_credentials_describe(buf, sizeof(buf), &cr);
    ASSERT_STR_EQ("environment variables, access key id KEY... (6 characters), with a session token", buf);
    return 0;
}

static int s_ignore(void *user, const char *path, const char *text, size_t len)
{
    (void)user, (void)path, (void)text, (void)len;
    return 0;
}

int test_xml_root_checked(void)
{
    static const char buckets[] = "<?xml version=\"1.0\"?><ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/"
                                  "doc/2006-03-01/\"><Buckets><Bucket><Name>b</Name></Bucket></Buckets>"
                                  "</ListAllMyBucketsResult>";
    ASSERT_ERR(KNN_EFORMAT, knn__s3_xml_parse_root((const uint8_t *)buckets, strlen(buckets), "ListBucketResult",
                                                   s_ignore, NULL));
    ASSERT_STR_EQ("the answer is a <ListAllMyBucketsResult> document, not the expected <ListBucketResult>",
                  knn_error_message());
    static const char list[] = "<ListBucketResult><Name>b</Name></ListBucketResult>";
    ASSERT_OK(knn__s3_xml_parse_root((const uint8_t *)list, strlen(list), "ListBucketResult", s_ignore, NULL));
    return 0;
}
