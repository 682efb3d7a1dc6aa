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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- settings from ~/.aws/config, in the AWS CLI's precedence (docs/aws-s3.md) ---- */

static const char *const s_setting_env[] = {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION",
                                            "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE", "AWS_PROFILE",
                                            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_SHARED_CREDENTIALS_FILE"};

static void s_clear_env(void)
{
    for (size_t i = 0; i < sizeof(s_setting_env) / sizeof(s_setting_env[0]); i++)
        unsetenv(s_setting_env[i]);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
}

static int s_write_config(char *path, size_t size, const char *text)
{
    snprintf(path, size, "/tmp/knn-aws-config-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

static const char s_config[] = "[default]\n"
                               "region = eu-west-1\n"
                               "endpoint_url = http://profile-endpoint.test:7000\n"
                               "ca_bundle = /etc/ssl/profile-ca.pem\n"
                               "s3 =\n"
                               "  addressing_style = virtual\n"
                               "  max_concurrent_requests = 20\n"
                               "[profile svc]\n"
                               "region = ap-south-1\n"
                               "services = local-s3\n"
                               "endpoint_url = http://profile-endpoint.test:7000\n"
                               "[services local-s3]\n"
                               "s3 =\n"
                               "  endpoint_url = http://services-s3.test:7001\n"
                               "sts =\n"
                               "  endpoint_url = http://services-sts.test:7002\n"
                               "[profile bare]\n"
                               "region = us-west-2\n"
                               "[profile ignoring]\n"
                               "endpoint_url = http://profile-endpoint.test:7000\n"
                               "ignore_configured_endpoint_urls = true\n"
                               "[profile badstyle]\n"
                               "s3 =\n"
                               "  addressing_style = sideways\n"
                               "[profile noservices]\n"
                               "services = missing\n";

/* A client for `profile` (NULL: default) with `endpoint` / `region` options (NULL: unset). */
static int s_settings_client(struct knn_s3_client **c, const char *profile, const char *endpoint, const char *region)
{
    struct knn_s3_credentials_provider *creds;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    int rc = knn_s3_credentials_provider_new_static(&creds, "AK", "SK", NULL);
    if (rc)
        return rc;
    o.profile = profile;
    o.endpoint_url = endpoint;
    o.region = region;
    o.credentials = creds;
    rc = knn_s3_client_new(c, &o);
    knn_s3_credentials_provider_release(creds);
    return rc;
}

#define ASSERT_ENDPOINT(want, profile, endpoint)                                                                    \
    do {                                                                                                            \
        struct knn_s3_client *c_;                                                                                   \
        ASSERT_OK(s_settings_client(&c_, profile, endpoint, NULL));                                                 \
        ASSERT_STR_EQ(want, knn_s3_client_endpoint(c_));                                                            \
        knn_s3_client_destroy(c_);                                                                                  \
    } while (0)

int test_config_endpoint_precedence(void)
{
    char path[64];
    s_clear_env();
    ASSERT_OK(s_write_config(path, sizeof(path), s_config));
    setenv("AWS_CONFIG_FILE", path, 1);
    /* 5. the profile's endpoint_url; 4. its services section's s3 endpoint_url wins over it. */
    ASSERT_ENDPOINT("http://profile-endpoint.test:7000", NULL, NULL);
    ASSERT_ENDPOINT("http://services-s3.test:7001", "svc", NULL);
    /* 3. AWS_ENDPOINT_URL, 2. AWS_ENDPOINT_URL_S3, 1. the option (--endpoint-url). */
    setenv("AWS_ENDPOINT_URL", "http://env-global.test:7003", 1);
    ASSERT_ENDPOINT("http://env-global.test:7003", "svc", NULL);
    setenv("AWS_ENDPOINT_URL_S3", "http://env-s3.test:7004", 1);
    ASSERT_ENDPOINT("http://env-s3.test:7004", "svc", NULL);
    ASSERT_ENDPOINT("http://option.test:7005", "svc", "http://option.test:7005");
    /* Ignoring configured endpoints (environment or profile) leaves the option and AWS's default. */
    setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
    ASSERT_ENDPOINT("https://s3.ap-south-1.amazonaws.com", "svc", NULL);
    ASSERT_ENDPOINT("http://option.test:7005", "svc", "http://option.test:7005");
    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    unsetenv("AWS_ENDPOINT_URL_S3");
    unsetenv("AWS_ENDPOINT_URL");
    ASSERT_ENDPOINT("https://s3.us-east-1.amazonaws.com", "ignoring", NULL);
    /* 6. nothing configured: AWS's regional endpoint. */
    ASSERT_ENDPOINT("https://s3.us-west-2.amazonaws.com", "bare", NULL);
    /* A services name without its section is an error naming both. */
    struct knn_s3_client *c;
    ASSERT_ERR(KNN_ECONFIG, s_settings_client(&c, "noservices", NULL, NULL));
    ASSERT_CONTAINS(knn_error_message(), "profile 'noservices' names services 'missing', which has no "
                                         "[services missing] section");
    unlink(path);
    return 0;
}

int test_config_region_ca_addressing(void)
{
    char path[64];
    struct knn_s3_client *c;
    s_clear_env();
    ASSERT_OK(s_write_config(path, sizeof(path), s_config));
    setenv("AWS_CONFIG_FILE", path, 1);
    /* Region: the profile's, then AWS_DEFAULT_REGION, AWS_REGION, the option. */
    ASSERT_OK(s_settings_client(&c, NULL, NULL, NULL));
    ASSERT_STR_EQ("eu-west-1", knn_s3_client_region(c));
    /* ca_bundle and the s3 block's addressing_style (its other keys ignored). */
    ASSERT_STR_EQ("/etc/ssl/profile-ca.pem", c->ca_bundle);
    ASSERT_INT_EQ(KNN_S3_ADDRESSING_VIRTUAL, c->addressing);
    knn_s3_client_destroy(c);
    setenv("AWS_DEFAULT_REGION", "ca-central-1", 1);
    setenv("AWS_CA_BUNDLE", "/etc/ssl/env-ca.pem", 1);
    ASSERT_OK(s_settings_client(&c, NULL, NULL, NULL));
    ASSERT_STR_EQ("ca-central-1", knn_s3_client_region(c));
    ASSERT_STR_EQ("/etc/ssl/env-ca.pem", c->ca_bundle);
    knn_s3_client_destroy(c);
    setenv("AWS_REGION", "sa-east-1", 1);
    ASSERT_OK(s_settings_client(&c, NULL, NULL, NULL));
    ASSERT_STR_EQ("sa-east-1", knn_s3_client_region(c));
    knn_s3_client_destroy(c);
    ASSERT_OK(s_settings_client(&c, NULL, NULL, "me-south-1"));
    ASSERT_STR_EQ("me-south-1", knn_s3_client_region(c));
    knn_s3_client_destroy(c);
    /* The profile: the option, then AWS_PROFILE, then default. */
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_CA_BUNDLE");
    setenv("AWS_PROFILE", "bare", 1);
    ASSERT_OK(s_settings_client(&c, NULL, NULL, NULL));
    ASSERT_STR_EQ("us-west-2", knn_s3_client_region(c));
    knn_s3_client_destroy(c);
    ASSERT_OK(s_settings_client(&c, "svc", NULL, NULL));
    ASSERT_STR_EQ("ap-south-1", knn_s3_client_region(c));
    /* No addressing_style in this profile: auto, path-style for a server that is not AWS. */
    ASSERT_INT_EQ(KNN_S3_ADDRESSING_PATH, c->addressing);
    ASSERT_TRUE(c->ca_bundle == NULL);
    knn_s3_client_destroy(c);
    /* A bad addressing_style names the file. */
    ASSERT_ERR(KNN_EINVAL, s_settings_client(&c, "badstyle", NULL, NULL));
    ASSERT_CONTAINS(knn_error_message(), "s3 addressing_style 'sideways' is not auto, path or virtual");
    ASSERT_CONTAINS(knn_error_message(), path);
    unlink(path);
    return 0;
}

/* ---- credential_process ---- */

int test_credential_process(void)
{
    char script[64], config[64], text[1024];
    struct knn_s3_credentials_provider *p;
    struct knn_s3_profile_options po = KNN_S3_PROFILE_OPTIONS_INIT;
    struct knn_s3_credentials cr;
    s_clear_env();
    /* The AWS CLI's contract: Version 1, SessionToken, an ISO 8601 Expiration. */
    ASSERT_OK(s_write_config(script, sizeof(script),
                             "echo 'a prompt on stderr' >&2\n"
                             "printf '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS%s\", \"SecretAccessKey\": "
                             "\"process-secret\", \"SessionToken\": \"process-token\", "
                             "\"Expiration\": \"2030-01-02T03:04:05Z\"}' \"$1\"\n"));
    snprintf(text, sizeof(text),
             "[profile proc]\ncredential_process = /bin/sh %s \"1 2\"\n"
             "[profile failing]\ncredential_process = /bin/sh -c 'exit 3'\n"
             "[profile garbage]\ncredential_process = echo not json\n"
             "[profile keys-first]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = static-secret\n"
             "credential_process = /bin/sh -c 'exit 9'\n",
             script);
    ASSERT_OK(s_write_config(config, sizeof(config), text));
    po.config_file = config;

    po.profile = "proc";
    ASSERT_OK(knn_s3_credentials_provider_new_profile(&p, &po));
    ASSERT_OK(knn_s3_credentials_provider_get(&cr, p));
    ASSERT_STR_EQ("ASIAPROCESS1 2", cr.access_key_id); /* the argument went through the shell's quoting */
    ASSERT_STR_EQ("process-secret", cr.secret_access_key);
    ASSERT_STR_EQ("process-token", cr.session_token);
    ASSERT_INT_EQ(1893553445, cr.expiration_s); /* date -u -d 2030-01-02T03:04:05Z +%s */
    ASSERT_STR_EQ("credential_process of profile 'proc'", cr.source);
    knn_s3_credentials_clean_up(&cr);
    knn_s3_credentials_provider_release(p);

    po.profile = "failing";
    ASSERT_OK(knn_s3_credentials_provider_new_profile(&p, &po));
    ASSERT_ERR(KNN_ES3_CREDENTIALS, knn_s3_credentials_provider_get(&cr, p));
    ASSERT_CONTAINS(knn_error_message(), "profile 'failing': credential_process failed (exit status 3;");
    knn_s3_credentials_provider_release(p);

    po.profile = "garbage";
    ASSERT_OK(knn_s3_credentials_provider_new_profile(&p, &po));
    ASSERT_ERR(KNN_EFORMAT, knn_s3_credentials_provider_get(&cr, p));
    ASSERT_CONTAINS(knn_error_message(), "profile 'garbage': credential_process");
    knn_s3_credentials_provider_release(p);

    /* Static keys in the profile come first, as in the AWS CLI: the process is not run. */
    po.profile = "keys-first";
    ASSERT_OK(knn_s3_credentials_provider_new_profile(&p, &po));
    ASSERT_OK(knn_s3_credentials_provider_get(&cr, p));
    ASSERT_STR_EQ("AKIDSTATIC", cr.access_key_id);
    knn_s3_credentials_clean_up(&cr);
    knn_s3_credentials_provider_release(p);
    unlink(script);
    unlink(config);
    return 0;
}
