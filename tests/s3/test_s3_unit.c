/* Unit tests of s3/ (no S3 server): SigV4 golden files, URI encoding and parsing, credentials
 * providers (with fake endpoints on loopback), XML errors, retry classification. */
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/client.h"
#include "knn/s3/credentials.h"
#include "knn/s3/sigv4.h"
#include "knn/s3/uri.h"
#include "knn_test.h"
#include "credentials_impl.h"
#include "s3_impl.h"
#include "s3_test_util.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* SigV4 golden files: tests/s3/sigv4/<case>/{request,canonical-request,string-to-sign,signature}.txt */

#define S_MAX_KV 32

struct s_case {
    char *text; /* request.txt, split in place */
    const char *ak, *sk, *token, *region, *method;
    char path[4096];
    int64_t time_s;
    struct knn_s3_kv query[S_MAX_KV];
    size_t nq;
    struct knn_s3_kv headers[S_MAX_KV];
    size_t nh;
    char payload_hash[80];
    long presign;
};

static int s_read_text(const char *dir, const char *name, char **out)
{
    char path[1024], rel[512];
    uint8_t *data;
    size_t len;
    snprintf(rel, sizeof(rel), "tests/s3/sigv4/%s/%s", dir, name);
    knn_test_source_path(path, sizeof(path), rel);
    int rc = knn_test_read_file(path, &data, &len);
    if (rc)
        return rc;
    char *s = knn_malloc(len + 1);
    if (!s) {
        knn_free(data);
        return KNN_ENOMEM;
    }
    memcpy(s, data, len);
    s[len] = '\0';
    if (len && s[len - 1] == '\n') /* the file's trailing newline is not part of the stage */
        s[len - 1] = '\0';
    knn_free(data);
    *out = s;
    return 0;
}

static int64_t s_parse_amz_time(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(t, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) !=
        6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static int s_load_case(struct s_case *c, const char *dir)
{
    memset(c, 0, sizeof(*c));
    int rc = s_read_text(dir, "request.txt", &c->text);
    if (rc)
        return rc;
    const char *bucket = NULL, *key = NULL, *body = NULL;
    for (char *line = c->text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] != '#') {
            char *sp = strchr(line, ' ');
            char *value = sp ? sp + 1 : (char *)"";
            if (sp)
                *sp = '\0';
            if (strcmp(line, "credentials") == 0) {
                c->ak = value;
                char *s2 = strchr(value, ' ');
                *s2 = '\0';
                c->sk = s2 + 1;
            } else if (strcmp(line, "token") == 0) {
                c->token = value;
            } else if (strcmp(line, "region") == 0) {
                c->region = value;
            } else if (strcmp(line, "time") == 0) {
                c->time_s = s_parse_amz_time(value);
            } else if (strcmp(line, "method") == 0) {
                c->method = value;
            } else if (strcmp(line, "bucket") == 0) {
                bucket = value;
            } else if (strcmp(line, "key") == 0) {
                key = value;
            } else if (strcmp(line, "path") == 0) {
                snprintf(c->path, sizeof(c->path), "%s", value);
            } else if (strcmp(line, "body") == 0) {
                body = value;
            } else if (strcmp(line, "payload-hash") == 0) {
                snprintf(c->payload_hash, sizeof(c->payload_hash), "%s", value);
            } else if (strcmp(line, "presign") == 0) {
                c->presign = strtol(value, NULL, 10);
            } else if (strcmp(line, "query") == 0 || strcmp(line, "header") == 0) {
                char *sp2 = strchr(value, ' ');
                const char *v = "";
                if (sp2) {
                    *sp2 = '\0';
                    v = sp2 + 1;
                }
                if (line[0] == 'q')
                    c->query[c->nq++] = (struct knn_s3_kv){value, v};
                else
                    c->headers[c->nh++] = (struct knn_s3_kv){value, v};
            }
        }
        line = next;
    }
    if (key) {
        struct knn_buf p = KNN_BUF_INIT(4096);
        if (bucket)
            knn_buf_printf(&p, "/%s", bucket);
        knn_buf_append_str(&p, "/");
        rc = knn_s3_uri_encode(&p, key, strlen(key), 1);
        snprintf(c->path, sizeof(c->path), "%s", (const char *)p.data);
        knn_buf_clean_up(&p);
    }
    if (!c->payload_hash[0] && body) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)body, strlen(body), d);
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
            snprintf(c->payload_hash + 2 * i, 3, "%02x", d[i]);
    }
    return rc;
}

static int s_expect_stage(const char *dir, const char *file, const char *actual)
{
    char *expected = NULL;
    char path[1024], rel[512];
    snprintf(rel, sizeof(rel), "tests/s3/sigv4/%s/%s", dir, file);
    knn_test_source_path(path, sizeof(path), rel);
    if (access(path, R_OK) != 0)
        return 0; /* this case has no golden file for that stage */
    if (s_read_text(dir, file, &expected))
        FAIL("cannot read %s", path);
    int same = strcmp(expected, actual) == 0;
    if (!same)
        fprintf(stderr, "%s/%s differs.\n--- expected ---\n%s\n--- actual ---\n%s\n---\n", dir, file, expected, actual);
    knn_free(expected);
    ASSERT_TRUE(same);
    return 0;
}

static int s_run_case(const char *dir)
{
    struct s_case c;
    struct knn_s3_sigv4_signature sig;
    knn_s3_sigv4_signature_init(&sig);
    ASSERT_OK(s_load_case(&c, dir));
    struct knn_s3_credentials creds = {(char *)c.ak, (char *)c.sk, (char *)c.token, 0, ""};
    struct knn_s3_sigv4_config cfg = {&creds, c.region, "s3", c.time_s};
    struct knn_s3_sigv4_request req = {c.method, c.path, c.query, c.nq, c.headers, c.nh, c.payload_hash};
    int rc = c.presign ? knn_s3_sigv4_presign(&sig, &cfg, &req, c.presign) : knn_s3_sigv4_sign(&sig, &cfg, &req);
    int failed = rc != 0;
    if (failed)
        fprintf(stderr, "signing failed: %s\n", knn_error_message());
    failed = failed || s_expect_stage(dir, "canonical-request.txt", (const char *)sig.canonical_request.data);
    failed = failed || s_expect_stage(dir, "string-to-sign.txt", (const char *)sig.string_to_sign.data);
    failed = failed || s_expect_stage(dir, "signature.txt", sig.signature);
    if (!failed && !c.presign)
        failed = s_expect_stage(dir, "authorization.txt", (const char *)sig.authorization.data);
    if (!failed && c.presign) {
        struct knn_buf q = KNN_BUF_INIT(64 * 1024);
        knn_buf_printf(&q, "%s&X-Amz-Signature=%s", (const char *)sig.canonical_query.data, sig.signature);
        failed = s_expect_stage(dir, "query.txt", (const char *)q.data);
        knn_buf_clean_up(&q);
    }
    knn_s3_sigv4_signature_clean_up(&sig);
    knn_free(c.text);
    return failed ? KNN_TEST_FAIL : 0;
}

int test_sigv4_aws_get_object_range(void)
{
    return s_run_case("aws-get-object-range");
}

int test_sigv4_aws_put_object(void)
{
    return s_run_case("aws-put-object");
}

int test_sigv4_aws_get_bucket_lifecycle(void)
{
    return s_run_case("aws-get-bucket-lifecycle");
}

int test_sigv4_aws_list_objects(void)
{
    return s_run_case("aws-list-objects");
}

int test_sigv4_aws_presigned_get(void)
{
    return s_run_case("aws-presigned-get");
}

int test_sigv4_own_cases(void)
{
    static const char *const cases[] = {
        "own-put-special-key", "own-list-special-query", "own-header-normalization", "own-presigned-part-token"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (s_run_case(cases[i]) != 0)
            FAIL("case %s", cases[i]);
    }
    return 0;
}

int test_sigv4_rejects_bad_input(void)
{
    struct knn_s3_sigv4_signature sig;
    knn_s3_sigv4_signature_init(&sig);
    struct knn_s3_credentials creds = {"AK", "SK", NULL, 0, ""};
    struct knn_s3_sigv4_config cfg = {&creds, "us-east-1", NULL, 1369353600};
    struct knn_s3_kv no_host[] = {{"x-amz-date", "20130524T000000Z"}};
    struct knn_s3_sigv4_request req = {"GET", "/k", NULL, 0, no_host, 1, KNN_S3_EMPTY_SHA256};
    ASSERT_ERR(KNN_EINVAL, knn_s3_sigv4_sign(&sig, &cfg, &req));
    ASSERT_CONTAINS(knn_error_message(), "host");
    struct knn_s3_kv wrong_date[] = {{"host", "h"}, {"x-amz-date", "20130525T000000Z"}};
    req.headers = wrong_date;
    req.header_count = 2;
    ASSERT_ERR(KNN_EINVAL, knn_s3_sigv4_sign(&sig, &cfg, &req));
    ASSERT_CONTAINS(knn_error_message(), "differs from the signing time");
    struct knn_s3_kv crlf[] = {{"host", "h"}, {"x-amz-date", "20130524T000000Z"}, {"x-amz-meta-a", "x\r\nInjected: y"}};
    req.headers = crlf;
    req.header_count = 3;
    ASSERT_ERR(KNN_EINVAL, knn_s3_sigv4_sign(&sig, &cfg, &req));
    req.header_count = 2;
    req.headers = wrong_date;
    ASSERT_ERR(KNN_ERANGE, knn_s3_sigv4_presign(&sig, &cfg, &req, 604801));
    knn_s3_sigv4_signature_clean_up(&sig);
    return 0;
}

int test_sigv4_amz_date(void)
{
    char d[17];
    ASSERT_OK(knn_s3_sigv4_amz_date(d, 0));
    ASSERT_STR_EQ("19700101T000000Z", d);
    ASSERT_OK(knn_s3_sigv4_amz_date(d, 1369353600));
    ASSERT_STR_EQ("20130524T000000Z", d);
    ASSERT_OK(knn_s3_sigv4_amz_date(d, 951868799)); /* leap day, last second */
    ASSERT_STR_EQ("20000229T235959Z", d);
    ASSERT_ERR(KNN_ERANGE, knn_s3_sigv4_amz_date(d, 253402300800LL)); /* year 10000 */
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* URI encoding and parsing. Expected values: Python's urllib.parse.quote(s, safe="-_.~" [+ "/"]). */

int test_uri_encode_table(void)
{
    static const struct {
        const char *in;
        int keep_slash;
        const char *out;
    } cases[] = {
        {"", 0, ""},
        {"plain.txt", 0, "plain.txt"},
        {"a b", 0, "a%20b"},
        {"a  b", 1, "a%20%20b"},
        {"a+b", 0, "a%2Bb"},
        {"100%", 0, "100%25"},
        {"%2F", 1, "%252F"},
        {"a~b_c-d.e", 0, "a~b_c-d.e"},
        {"!'()*", 0, "%21%27%28%29%2A"},
        {"!'()*", 1, "%21%27%28%29%2A"},
        {"a/b/c", 1, "a/b/c"},
        {"a/b/c", 0, "a%2Fb%2Fc"},
        {"=&?#", 0, "%3D%26%3F%23"},
        {"\xc3\xa9", 0, "%C3%A9"},                             /* é */
        {"\xe6\x97\xa5\xe6\x9c\xac", 1, "%E6%97%A5%E6%9C%AC"}, /* 日本 */
        {"\xf0\x9f\x98\x80", 0, "%F0%9F%98%80"},               /* an emoji (4 bytes) */
        {"\x01\x7f\xff", 0, "%01%7F%FF"},
        {"dir/sub dir/f+1.bin", 1, "dir/sub%20dir/f%2B1.bin"},
        {"$@:;,", 0, "%24%40%3A%3B%2C"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct knn_buf b = KNN_BUF_INIT(1024);
        ASSERT_OK(knn_s3_uri_encode(&b, cases[i].in, strlen(cases[i].in), cases[i].keep_slash));
        const char *got = b.data ? (const char *)b.data : "";
        if (strcmp(got, cases[i].out) != 0) {
            knn_buf_clean_up(&b);
            FAIL(
                "case %zu: encode('%s', %d) = '%s', expected '%s'", i, cases[i].in, cases[i].keep_slash, got,
                cases[i].out);
        }
        knn_buf_clean_up(&b);
    }
    /* The cap holds. */
    struct knn_buf small = KNN_BUF_INIT(5);
    ASSERT_ERR(KNN_ETOOBIG, knn_s3_uri_encode(&small, "a b", 3, 0));
    knn_buf_clean_up(&small);
    return 0;
}

int test_uri_decode(void)
{
    struct knn_buf b = KNN_BUF_INIT(1024);
    ASSERT_OK(knn_s3_uri_decode(&b, "a%20b+c%2Bd%C3%A9", 17, 1));
    ASSERT_STR_EQ("a b c+d\xc3\xa9", (const char *)b.data);
    knn_buf_reset(&b);
    ASSERT_OK(knn_s3_uri_decode(&b, "a+b", 3, 0));
    ASSERT_STR_EQ("a+b", (const char *)b.data);
    knn_buf_reset(&b);
    ASSERT_ERR(KNN_EFORMAT, knn_s3_uri_decode(&b, "abc%2", 5, 0));
    ASSERT_CONTAINS(knn_error_message(), "offset 3");
    ASSERT_ERR(KNN_EFORMAT, knn_s3_uri_decode(&b, "%zz", 3, 0));
    ASSERT_ERR(KNN_EFORMAT, knn_s3_uri_decode(&b, "a%00", 4, 0));
    knn_buf_clean_up(&b);
    return 0;
}

int test_uri_parse(void)
{
    static const struct {
        const char *text;
        const char *bucket, *key, *region;
    } ok[] = {
        {"s3://bucket/key", "bucket", "key", NULL},
        {"s3://bucket", "bucket", "", NULL},
        {"s3://bucket/", "bucket", "", NULL},
        {"s3://my.bucket-1/a/b/c.rec", "my.bucket-1", "a/b/c.rec", NULL},
        {"s3://b12/dir/", "b12", "dir/", NULL},
        {"s3://bucket/a%20b", "bucket", "a%20b", NULL}, /* s3:// keys are literal, as in the AWS CLI */
        {"s3://bucket/a b+c", "bucket", "a b+c", NULL},
        {"S3://Legacy_Bucket/k", "Legacy_Bucket", "k", NULL},
        {"https://bucket.s3.us-west-2.amazonaws.com/a/b%20c", "bucket", "a/b c", "us-west-2"},
        {"https://bucket.s3.amazonaws.com/k", "bucket", "k", NULL},
        {"https://my.bucket.s3-eu-west-1.amazonaws.com/k", "my.bucket", "k", "eu-west-1"},
        {"https://s3.us-east-2.amazonaws.com/bucket/dir/k%2B1", "bucket", "dir/k+1", "us-east-2"},
        {"https://s3.amazonaws.com/bucket", "bucket", "", NULL},
        {"https://bucket.s3.dualstack.ap-south-1.amazonaws.com/x", "bucket", "x", "ap-south-1"},
        {"https://s3.cn-north-1.amazonaws.com.cn/b-c-d/k", "b-c-d", "k", "cn-north-1"},
        {"https://BUCKET.S3.US-WEST-2.AMAZONAWS.COM/K", "bucket", "K", "US-WEST-2"},
        {"https://s3-external-1.amazonaws.com/bucket/k", "bucket", "k", "us-east-1"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct knn_s3_uri u;
        int rc = knn_s3_uri_parse(&u, ok[i].text);
        if (rc)
            FAIL("parse('%s') failed: %s", ok[i].text, knn_error_message());
        int good = strcmp(u.bucket, ok[i].bucket) == 0 && strcmp(u.key, ok[i].key) == 0 &&
                   ((!ok[i].region && !u.region) || (ok[i].region && u.region && strcmp(u.region, ok[i].region) == 0));
        if (!good) {
            fprintf(stderr, "parse('%s') = (%s, %s, %s)\n", ok[i].text, u.bucket, u.key, u.region ? u.region : "-");
            knn_s3_uri_clean_up(&u);
            FAIL("case %zu", i);
        }
        ASSERT_TRUE(knn_s3_uri_is_s3(ok[i].text));
        knn_s3_uri_clean_up(&u);
    }
    static const char *const bad[] = {
        "",
        "s3://",
        "s3:///key",
        "s3://b/c\nd",
        "/local/path",
        "file:///x",
        "relative/dir",
        "http://bucket.s3.amazonaws.com/k",
        "https://example.com/bucket/key",
        "https://s3.amazonaws.com/",
        "https://bucket.s3.amazonaws.com/k?versionId=1",
        "s3://bad!bucket/k",
        "s3://b@d/k",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct knn_s3_uri u;
        int rc = knn_s3_uri_parse(&u, bad[i]);
        knn_s3_uri_clean_up(&u);
        if (rc != KNN_EINVAL)
            FAIL("parse('%s') returned %d, expected KNN_EINVAL", bad[i], rc);
        ASSERT_TRUE(knn_error_message()[0] != '\0');
    }
    ASSERT_FALSE(knn_s3_uri_is_s3("/data/train"));
    ASSERT_FALSE(knn_s3_uri_is_s3("https://example.com/x"));
    ASSERT_FALSE(knn_s3_uri_is_s3(NULL));
    return 0;
}

int test_bucket_name_rules(void)
{
    ASSERT_TRUE(knn_s3_bucket_name_is_valid("knn-test"));
    ASSERT_TRUE(knn_s3_bucket_name_is_valid("a.b.c"));
    ASSERT_TRUE(knn_s3_bucket_name_is_valid("abc"));
    ASSERT_FALSE(knn_s3_bucket_name_is_valid("ab"));
    ASSERT_FALSE(knn_s3_bucket_name_is_valid("Upper"));
    ASSERT_FALSE(knn_s3_bucket_name_is_valid("under_score"));
    ASSERT_FALSE(knn_s3_bucket_name_is_valid("-start"));
    ASSERT_FALSE(knn_s3_bucket_name_is_valid("end-"));
    ASSERT_FALSE(knn_s3_bucket_name_is_valid("a..b"));
    ASSERT_FALSE(knn_s3_bucket_name_is_valid("192.168.5.4"));
    char long_name[70];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    ASSERT_FALSE(knn_s3_bucket_name_is_valid(long_name));
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Credentials providers                                                                      */

static void s_clear_aws_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_METADATA_SERVICE_TIMEOUT",
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CA_BUNDLE"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("HOME", "/nonexistent-home-for-tests", 1);
}

static int s_get_from(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    int rc = knn_s3_credentials_provider_get(out, p);
    return rc;
}

int test_credentials_env(void)
{
    struct knn_s3_credentials_provider *p;
    struct knn_s3_credentials c;
    s_clear_aws_env();
    ASSERT_OK(knn_s3_credentials_provider_new_env(&p));
    ASSERT_ERR(KNN_ENOTFOUND, s_get_from(p, &c));
    setenv("AWS_ACCESS_KEY_ID", "ENVAK", 1);
    ASSERT_ERR(KNN_ES3_CREDENTIALS, s_get_from(p, &c));
    ASSERT_CONTAINS(knn_error_message(), "partial");
    setenv("AWS_SECRET_ACCESS_KEY", "env/secret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    ASSERT_OK(s_get_from(p, &c));
    ASSERT_STR_EQ("ENVAK", c.access_key_id);
    ASSERT_STR_EQ("env/secret", c.secret_access_key);
    ASSERT_STR_EQ("envtoken", c.session_token);
    ASSERT_INT_EQ(0, c.expiration_s);
    knn_s3_credentials_clean_up(&c);
    ASSERT_TRUE(c.access_key_id == NULL && c.secret_access_key == NULL);
    knn_s3_credentials_provider_release(p);
    return 0;
}

static int s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    return 0;
}

int test_credentials_profile_files(void)
{
    char dir[512], cred[600], conf[600];
    s_clear_aws_env();
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(cred, sizeof(cred), "%s/credentials", dir);
    snprintf(conf, sizeof(conf), "%s/config", dir);
    ASSERT_OK(s_write(
        cred, "# comment\n[default]\naws_access_key_id = DEFAULTAK\naws_secret_access_key = "
              "defaultsecret\n\n[dev]\naws_access_key_id=DEVAK\naws_secret_access_key=dev/secret+x\r\n"
              "aws_session_token = devtoken  \n[partial]\naws_access_key_id = ONLYAK\n"));
    ASSERT_OK(s_write(
        conf, "[default]\nregion = eu-west-1\ns3 =\n    addressing_style = path\n    region = nested\n"
              "[profile dev]\nregion=ap-south-1\n[profile   cfgonly]\naws_access_key_id = CFGAK\n"
              "aws_secret_access_key = cfgsecret\n; comment\n[profile assume]\nrole_arn = "
              "arn:aws:iam::123456789012:role/x\nsource_profile = default\n[profile regiononly]\nregion = "
              "us-west-1\n"));
    setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
    setenv("AWS_CONFIG_FILE", conf, 1);
    struct knn_s3_credentials_provider *p;
    struct knn_s3_credentials c;
    struct knn_s3_profile_options o = KNN_S3_PROFILE_OPTIONS_INIT;
    char *region = NULL;

    ASSERT_OK(knn_s3_credentials_provider_new_profile(&p, NULL));
    ASSERT_OK(s_get_from(p, &c));
    ASSERT_STR_EQ("DEFAULTAK", c.access_key_id);
    ASSERT_STR_EQ("defaultsecret", c.secret_access_key);
    ASSERT_TRUE(c.session_token == NULL);
    knn_s3_credentials_clean_up(&c);
    ASSERT_OK(knn_s3_profile_region(&region, NULL));
    ASSERT_STR_EQ("eu-west-1", region); /* not the nested "region = nested" of the s3 block */
    knn_free(region);

    setenv("AWS_PROFILE", "dev", 1); /* read at each get */
    ASSERT_OK(s_get_from(p, &c));
    ASSERT_STR_EQ("DEVAK", c.access_key_id);
    ASSERT_STR_EQ("dev/secret+x", c.secret_access_key);
    ASSERT_STR_EQ("devtoken", c.session_token);
    knn_s3_credentials_clean_up(&c);
    ASSERT_OK(knn_s3_profile_region(&region, NULL));
    ASSERT_STR_EQ("ap-south-1", region);
    knn_free(region);
    unsetenv("AWS_PROFILE");
    knn_s3_credentials_provider_release(p);

    static const struct {
        const char *profile;
        int rc;
        const char *text;
    } cases[] = {
        {"cfgonly", 0, "CFGAK"},
        {"partial", KNN_ES3_CREDENTIALS, "aws_secret_access_key"},
        {"assume", KNN_EUNSUPPORTED, "role_arn"},
        {"missing", KNN_ECONFIG, "not found"},
        {"regiononly", KNN_ES3_CREDENTIALS, "no credentials"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        o.profile = cases[i].profile;
        ASSERT_OK(knn_s3_credentials_provider_new_profile(&p, &o));
        int rc = s_get_from(p, &c);
        if (rc != cases[i].rc)
            FAIL("profile %s: rc %d, expected %d: %s", cases[i].profile, rc, cases[i].rc, knn_error_message());
        ASSERT_CONTAINS(rc ? knn_error_message() : c.access_key_id, cases[i].text);
        ASSERT_TRUE(strstr(knn_error_message(), "secret") == NULL || rc == 0 || i == 1);
        knn_s3_credentials_clean_up(&c);
        knn_s3_credentials_provider_release(p);
    }
    /* No files at all: "not configured", so a chain goes on. */
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    ASSERT_OK(knn_s3_credentials_provider_new_profile(&p, NULL));
    ASSERT_ERR(KNN_ENOTFOUND, s_get_from(p, &c));
    knn_s3_credentials_provider_release(p);
    knn_test_rmtree(dir);
    return 0;
}

/* A provider that counts its calls and hands out credentials expiring at *expiry. */
struct s_counting {
    int calls;
    int fail;
    int64_t expiry;
};

static int s_counting_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    struct s_counting *c = p->impl;
    c->calls++;
    if (c->fail)
        return knn_error_set(KNN_ES3_CREDENTIALS, "counting provider fails on purpose");
    char ak[32];
    snprintf(ak, sizeof(ak), "AK%d", c->calls);
    out->access_key_id = knn_strdup(ak);
    out->secret_access_key = knn_strdup("sk");
    out->expiration_s = c->expiry;
    return 0;
}

static void s_counting_destroy(struct knn_s3_credentials_provider *p)
{
    knn_free(p);
}

static const struct knn_s3_credentials_provider_vtable s_counting_vtable = {s_counting_get, s_counting_destroy};

static int64_t s_fake_clock(void *user)
{
    return *(int64_t *)user;
}

int test_credentials_cached_refresh(void)
{
    struct s_counting state = {0, 0, 1000};
    struct knn_s3_credentials_provider *inner = knn_calloc(1, sizeof(*inner));
    inner->vtable = &s_counting_vtable;
    inner->impl = &state;
    inner->name = "counting";
    inner->ref_count = 1;
    int64_t now = 0;
    struct knn_s3_credentials_provider *cached;
    struct knn_s3_credentials c;
    ASSERT_OK(knn_s3_credentials_provider_new_cached(&cached, inner, 300, s_fake_clock, &now));
    ASSERT_OK(s_get_from(cached, &c));
    ASSERT_STR_EQ("AK1", c.access_key_id);
    knn_s3_credentials_clean_up(&c);
    now = 699; /* still more than 300 s before expiry: cached */
    ASSERT_OK(s_get_from(cached, &c));
    ASSERT_STR_EQ("AK1", c.access_key_id);
    knn_s3_credentials_clean_up(&c);
    ASSERT_INT_EQ(1, state.calls);
    now = 700; /* within the refresh window */
    state.expiry = 5000;
    ASSERT_OK(s_get_from(cached, &c));
    ASSERT_STR_EQ("AK2", c.access_key_id);
    knn_s3_credentials_clean_up(&c);
    /* A failed refresh keeps still-valid credentials; once they expired, the failure shows. */
    now = 4800;
    state.fail = 1;
    ASSERT_OK(s_get_from(cached, &c));
    ASSERT_STR_EQ("AK2", c.access_key_id);
    knn_s3_credentials_clean_up(&c);
    now = 5000;
    ASSERT_ERR(KNN_ES3_CREDENTIALS, s_get_from(cached, &c));
    /* Credentials without an expiry are never refreshed. */
    state.fail = 0;
    state.expiry = 0;
    ASSERT_OK(s_get_from(cached, &c));
    knn_s3_credentials_clean_up(&c);
    int calls = state.calls;
    now = 1000000000;
    ASSERT_OK(s_get_from(cached, &c));
    knn_s3_credentials_clean_up(&c);
    ASSERT_INT_EQ(calls, state.calls);
    knn_s3_credentials_provider_release(cached);
    return 0;
}

int test_credentials_chain_order(void)
{
    char dir[512], cred[600];
    s_clear_aws_env();
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(cred, sizeof(cred), "%s/credentials", dir);
    ASSERT_OK(s_write(
        cred, "[default]\naws_access_key_id=FILEAK\naws_secret_access_key=filesecret\n"
              "[other]\naws_access_key_id=OTHERAK\naws_secret_access_key=othersecret\n"));
    setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    struct knn_s3_credentials_provider *p;
    struct knn_s3_credentials c;
    /* Nothing but IMDS (disabled): no credentials, one clear message. */
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    ASSERT_OK(knn_s3_credentials_provider_new_default(&p, NULL));
    ASSERT_ERR(KNN_ES3_CREDENTIALS, s_get_from(p, &c));
    ASSERT_CONTAINS(knn_error_message(), "no AWS credentials found");
    knn_s3_credentials_provider_release(p);
    setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
    /* The file's default profile... */
    ASSERT_OK(knn_s3_credentials_provider_new_default(&p, NULL));
    ASSERT_OK(s_get_from(p, &c));
    ASSERT_STR_EQ("FILEAK", c.access_key_id);
    knn_s3_credentials_clean_up(&c);
    knn_s3_credentials_provider_release(p);
    /* ...unless the environment has keys... */
    setenv("AWS_ACCESS_KEY_ID", "ENVAK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    ASSERT_OK(knn_s3_credentials_provider_new_default(&p, NULL));
    ASSERT_OK(s_get_from(p, &c));
    ASSERT_STR_EQ("ENVAK", c.access_key_id);
    knn_s3_credentials_clean_up(&c);
    knn_s3_credentials_provider_release(p);
    /* ...and a profile named explicitly (--profile) skips the environment, as the AWS CLI does. */
    ASSERT_OK(knn_s3_credentials_provider_new_default(&p, "other"));
    ASSERT_OK(s_get_from(p, &c));
    ASSERT_STR_EQ("OTHERAK", c.access_key_id);
    knn_s3_credentials_clean_up(&c);
    knn_s3_credentials_provider_release(p);
    /* A broken source stops the chain with its own error (no silent fall-through). */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    ASSERT_OK(knn_s3_credentials_provider_new_default(&p, NULL));
    ASSERT_ERR(KNN_ES3_CREDENTIALS, s_get_from(p, &c));
    ASSERT_CONTAINS(knn_error_message(), "partial");
    knn_s3_credentials_provider_release(p);
    knn_test_rmtree(dir);
    return 0;
}

/* Start tests/tools/fake_credentials_server.py with extra arguments. */
static int
s_fake(pid_t *pid, int *port, const char *mode, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char script[1024];
    knn_test_source_path(script, sizeof(script), "tests/tools/fake_credentials_server.py");
    char *argv[] = {(char *)s3t_python(), script,     "--mode",   (char *)mode, (char *)a1,
                    (char *)a2,           (char *)a3, (char *)a4, NULL};
    return s3t_spawn_server(pid, port, argv, NULL);
}

int test_credentials_container_fake(void)
{
    pid_t pid;
    int port;
    char url[128], dir[512], token_file[600];
    struct knn_s3_credentials_provider *p;
    struct knn_s3_credentials c;
    s_clear_aws_env();
    ASSERT_OK(knn_s3_credentials_provider_new_container(&p, NULL));
    ASSERT_ERR(KNN_ENOTFOUND, s_get_from(p, &c)); /* not configured */
    ASSERT_OK(s_fake(&pid, &port, "container", "--token", "Bearer tok-123/+=", NULL, NULL));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/credentials/abc", port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer tok-123/+=", 1);
    int rc = s_get_from(p, &c);
    if (rc) {
        s3t_stop(pid);
        FAIL("container credentials: %s", knn_error_message());
    }
    ASSERT_STR_EQ("ASIAFAKEKEYFORTESTS1", c.access_key_id);
    ASSERT_STR_EQ("fake/secret/for+tests/only/0000000000000", c.secret_access_key);
    ASSERT_STR_EQ("fake-session-token//with+chars==", c.session_token);
    ASSERT_INT_EQ(1935817689, c.expiration_s); /* 2031-05-06T07:08:09Z */
    knn_s3_credentials_clean_up(&c);
    /* The token file wins over the variable. */
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(token_file, sizeof(token_file), "%s/token", dir);
    ASSERT_OK(s_write(token_file, "Bearer tok-123/+=\n"));
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong-token", 1);
    rc = s_get_from(p, &c);
    knn_s3_credentials_clean_up(&c);
    ASSERT_INT_EQ(0, rc);
    /* A wrong token: the endpoint says 401; the message does not show the token. */
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    rc = s_get_from(p, &c);
    s3t_stop(pid);
    ASSERT_INT_EQ(KNN_ES3_CREDENTIALS, rc);
    ASSERT_CONTAINS(knn_error_message(), "HTTP 401");
    ASSERT_TRUE(strstr(knn_error_message(), "wrong-token") == NULL);
    /* http:// to a host other than loopback or the ECS addresses is refused without a request. */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds", 1);
    ASSERT_ERR(KNN_EINVAL, s_get_from(p, &c));
    /* A malformed answer is a format error. */
    ASSERT_OK(s_fake(&pid, &port, "container", "--body", "{\"AccessKeyId\": \"A\", \"SecretAccessKey\": ", NULL, NULL));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    rc = s_get_from(p, &c);
    s3t_stop(pid);
    ASSERT_INT_EQ(KNN_EFORMAT, rc);
    knn_s3_credentials_provider_release(p);
    knn_test_rmtree(dir);
    return 0;
}

int test_credentials_imds_fake(void)
{
    pid_t pid;
    int port;
    char endpoint[128];
    struct knn_s3_credentials_provider *p;
    struct knn_s3_credentials c;
    s_clear_aws_env();
    ASSERT_OK(knn_s3_credentials_provider_new_imds(&p, NULL));
    static const char *const versions[] = {"v2", "v1"};
    for (int v = 0; v < 2; v++) {
        ASSERT_OK(s_fake(&pid, &port, "imds", "--imds", versions[v], NULL, NULL));
        snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/", port);
        setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint, 1);
        int rc = s_get_from(p, &c);
        s3t_stop(pid);
        if (rc)
            FAIL("IMDS%s: %s", versions[v], knn_error_message());
        ASSERT_STR_EQ("ASIAFAKEKEYFORTESTS1", c.access_key_id);
        ASSERT_STR_EQ("fake-session-token//with+chars==", c.session_token);
        ASSERT_INT_EQ(1935817689, c.expiration_s);
        knn_s3_credentials_clean_up(&c);
    }
    /* An instance without a role: not configured. */
    ASSERT_OK(s_fake(&pid, &port, "imds", "--role", "", NULL, NULL));
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint, 1);
    int rc = s_get_from(p, &c);
    s3t_stop(pid);
    ASSERT_INT_EQ(KNN_ENOTFOUND, rc);
    /* Nothing listening (not on EC2): not configured either. */
    ASSERT_INT_EQ(KNN_ENOTFOUND, s_get_from(p, &c));
    /* Disabled: no request at all. */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    ASSERT_ERR(KNN_ENOTFOUND, s_get_from(p, &c));
    ASSERT_CONTAINS(knn_error_message(), "disabled");
    knn_s3_credentials_provider_release(p);
    return 0;
}

int test_credentials_json_and_time(void)
{
    struct knn_s3_credentials c;
    const char *ok = " {\"Code\" : \"Success\", \"LastUpdated\": \"x\", \"Nested\": {\"a\": [1, 2.5e3, true, null]},"
                     " \"AccessKeyId\":\"AK\\u0041\", \"SecretAccessKey\": \"s\\/k\", \"Token\": \"t\", "
                     "\"Expiration\": \"2026-11-30T10:09:54.123Z\"} ";
    ASSERT_OK(knn__s3_credentials_from_json(&c, ok, strlen(ok), "test"));
    ASSERT_STR_EQ("AKA", c.access_key_id);
    ASSERT_STR_EQ("s/k", c.secret_access_key);
    ASSERT_INT_EQ(1796033394, c.expiration_s);
    knn_s3_credentials_clean_up(&c);
    static const char *const bad[] = {
        "",
        "[]",
        "{\"AccessKeyId\": \"A\"}",
        "{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"",
        "{\"A\": 1} x",
        "{\"Code\": \"Failure\", \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"}",
        "{\"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\", \"Expiration\": \"tomorrow\"}",
        "{\"AccessKeyId\": \"A\x01\", \"SecretAccessKey\": \"S\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = knn__s3_credentials_from_json(&c, bad[i], strlen(bad[i]), "test");
        knn_s3_credentials_clean_up(&c);
        if (rc != KNN_EFORMAT && rc != KNN_ES3_CREDENTIALS)
            FAIL("bad JSON %zu accepted (rc %d)", i, rc);
    }
    int64_t t;
    ASSERT_OK(knn__s3_parse_iso8601(&t, "2013-05-24T00:00:00Z", 20));
    ASSERT_INT_EQ(1369353600, t);
    ASSERT_OK(knn__s3_parse_iso8601(&t, "2013-05-24T00:00:00+00:00", 25));
    ASSERT_INT_EQ(1369353600, t);
    ASSERT_ERR(KNN_EFORMAT, knn__s3_parse_iso8601(&t, "2013-05-24T00:00:00+02:00", 25));
    ASSERT_ERR(KNN_EFORMAT, knn__s3_parse_iso8601(&t, "2013-13-24T00:00:00Z", 20));
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* XML                                                                                        */

struct s_paths {
    struct knn_buf seen;
};

static int s_paths_cb(void *user, const char *path, const char *text, size_t len)
{
    struct s_paths *p = user;
    return knn_buf_printf(&p->seen, "%s=%.*s;", path, (int)len, text);
}

int test_xml_error_and_paths(void)
{
    struct knn_s3__error e;
    const char *doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The key "
                      "&lt;a&amp;b&gt; does\nnot exist.</Message><Key>a&amp;b</Key><RequestId>tx00-1</RequestId>"
                      "</Error>";
    ASSERT_TRUE(knn__s3_xml_error(&e, (const uint8_t *)doc, strlen(doc)));
    ASSERT_STR_EQ("NoSuchKey", e.code);
    ASSERT_STR_EQ("The key <a&b> does not exist.", e.message); /* one line */
    ASSERT_STR_EQ("tx00-1", e.request_id);
    struct s_paths p = {KNN_BUF_INIT(4096)};
    const char *list = "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Contents><Key>k</Key>"
                       "<Size>3</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>";
    ASSERT_OK(knn__s3_xml_parse((const uint8_t *)list, strlen(list), s_paths_cb, &p));
    ASSERT_STR_EQ(
        "ListBucketResult/Contents/Key=k;ListBucketResult/Contents/Size=3;ListBucketResult/Contents=;"
        "ListBucketResult/IsTruncated=false;ListBucketResult=;",
        (const char *)p.seen.data);
    knn_buf_clean_up(&p.seen);
    ASSERT_FALSE(knn__s3_xml_error(&e, (const uint8_t *)list, strlen(list))); /* not an Error document */
    return 0;
}

int test_xml_rejects_hostile_input(void)
{
    struct s_paths p = {KNN_BUF_INIT(1 << 20)};
    /* Entity expansion ("billion laughs") and external entities: no DTD at all. */
    const char *laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
                         "\"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]><Error><Code>&lol2;</Code></Error>";
    ASSERT_ERR(KNN_EFORMAT, knn__s3_xml_parse((const uint8_t *)laughs, strlen(laughs), s_paths_cb, &p));
    ASSERT_CONTAINS(knn_error_message(), "DOCTYPE");
    const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>";
    ASSERT_ERR(KNN_EFORMAT, knn__s3_xml_parse((const uint8_t *)xxe, strlen(xxe), s_paths_cb, &p));
    const char *undefined = "<r>&nope;</r>";
    ASSERT_ERR(KNN_EFORMAT, knn__s3_xml_parse((const uint8_t *)undefined, strlen(undefined), s_paths_cb, &p));
    const char *broken = "<Error><Code>x</Cod></Error>";
    ASSERT_ERR(KNN_EFORMAT, knn__s3_xml_parse((const uint8_t *)broken, strlen(broken), s_paths_cb, &p));
    ASSERT_CONTAINS(knn_error_message(), "line 1");
    ASSERT_ERR(KNN_EFORMAT, knn__s3_xml_parse((const uint8_t *)"", 0, s_paths_cb, &p));
    /* Too deep, and too much text in one element. */
    struct knn_buf deep = KNN_BUF_INIT(1 << 20);
    for (int i = 0; i < 40; i++)
        knn_buf_append_str(&deep, "<a>");
    for (int i = 0; i < 40; i++)
        knn_buf_append_str(&deep, "</a>");
    ASSERT_ERR(KNN_EFORMAT, knn__s3_xml_parse(deep.data, deep.len, s_paths_cb, &p));
    knn_buf_reset(&deep);
    knn_buf_append_str(&deep, "<a>");
    for (int i = 0; i < 70000; i++)
        knn_buf_append_str(&deep, "x");
    knn_buf_append_str(&deep, "</a>");
    ASSERT_ERR(KNN_ETOOBIG, knn__s3_xml_parse(deep.data, deep.len, s_paths_cb, &p));
    knn_buf_clean_up(&deep);
    knn_buf_clean_up(&p.seen);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Retry classification and backoff                                                          */

int test_retry_classification(void)
{
    struct knn_s3_credentials_provider *creds;
    struct knn_s3_client *client;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    ASSERT_OK(knn_s3_credentials_provider_new_static(&creds, "AK", "SK", NULL));
    o.endpoint_url = "http://127.0.0.1:1";
    o.region = "us-east-1";
    o.credentials = creds;
    o.max_attempts = 3;
    ASSERT_OK(knn_s3_client_new(&client, &o));
    knn_s3_credentials_provider_release(creds);
    struct knn_s3__request req = {.op = "GetObject", .method = "GET", .bucket = "b", .key = "dir/k"};
    static const struct {
        int result, net_retryable;
        long status;
        const char *code;
        int attempt;
        enum knn_s3__verdict verdict;
        int error;
    } cases[] = {
        {0, 0, 200, "", 1, KNN_S3__OK, 0},
        {0, 0, 206, "", 3, KNN_S3__OK, 0},
        {0, 0, 503, "SlowDown", 1, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 503, "SlowDown", 3, KNN_S3__FAIL, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 500, "", 1, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 502, "", 2, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 504, "", 1, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 429, "", 1, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 400, "RequestTimeout", 1, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 403, "RequestTimeTooSkewed", 1, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED},
        {0, 0, 200, "InternalError", 1, KNN_S3__RETRY, KNN_ES3_RETRIES_EXHAUSTED}, /* 200 with <Error> */
        {0, 0, 404, "NoSuchKey", 1, KNN_S3__FAIL, KNN_ES3_NO_SUCH_KEY},
        {0, 0, 404, "NoSuchBucket", 1, KNN_S3__FAIL, KNN_ES3_NO_SUCH_BUCKET},
        {0, 0, 403, "AccessDenied", 1, KNN_S3__FAIL, KNN_ES3_ACCESS_DENIED},
        {0, 0, 403, "SignatureDoesNotMatch", 1, KNN_S3__FAIL, KNN_ES3_ACCESS_DENIED},
        {0, 0, 400, "BadDigest", 1, KNN_S3__FAIL, KNN_ECHECKSUM},
        {0, 0, 400, "XAmzContentSHA256Mismatch", 1, KNN_S3__FAIL, KNN_ECHECKSUM},
        {0, 0, 412, "", 1, KNN_S3__FAIL, KNN_ES3_CHANGED},
        {0, 0, 416, "InvalidRange", 1, KNN_S3__FAIL, KNN_ERANGE},
        {0, 0, 400, "EntityTooSmall", 1, KNN_S3__FAIL, KNN_EINVAL},
        {0, 0, 409, "BucketNotEmpty", 1, KNN_S3__FAIL, KNN_ES3},
        {KNN_ES3_NET, 1, 0, "", 1, KNN_S3__RETRY, KNN_ES3_NET}, /* reset, refused */
        {KNN_ES3_NET, 1, 0, "", 3, KNN_S3__FAIL, KNN_ES3_NET},
        {KNN_ES3_NET, 0, 0, "", 1, KNN_S3__FAIL, KNN_ES3_NET},    /* TLS verification, DNS */
        {KNN_ETIMEOUT, 1, 0, "", 1, KNN_S3__RETRY, KNN_ETIMEOUT}, /* a stalled transfer */
        {KNN_ETRUNCATED, 1, 200, "", 2, KNN_S3__RETRY, KNN_ETRUNCATED},
        {KNN_ETRUNCATED, 1, 200, "", 3, KNN_S3__FAIL, KNN_ETRUNCATED},
        {KNN_EIO, 0, 200, "", 1, KNN_S3__FAIL, KNN_EIO}, /* the receiver stopped it */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct knn_s3_http_exchange x;
        struct knn_s3__response resp;
        memset(&x, 0, sizeof(x));
        knn__s3_response_init(&resp, 0);
        x.result = cases[i].result;
        x.net_retryable = cases[i].net_retryable;
        snprintf(x.error, sizeof(x.error), "Connection reset by peer (curl 56)");
        resp.status = cases[i].status;
        snprintf(resp.error.code, sizeof(resp.error.code), "%s", cases[i].code);
        snprintf(resp.request_id, sizeof(resp.request_id), "req-%zu", i);
        knn_error_clear();
        int code = 0;
        enum knn_s3__verdict v = knn__s3_classify(&code, client, &req, &x, &resp, cases[i].attempt);
        knn__s3_response_clean_up(&resp);
        if (v != cases[i].verdict || (v != KNN_S3__OK && code != cases[i].error))
            FAIL(
                "case %zu (status %ld, code '%s', result %d): verdict %d code %d", i, cases[i].status, cases[i].code,
                cases[i].result, v, code);
        if (v != KNN_S3__OK && cases[i].result != KNN_EIO) {
            ASSERT_CONTAINS(knn_error_message(), "GetObject s3://b/dir/k: ");
            if (cases[i].status >= 300 || cases[i].code[0])
                ASSERT_CONTAINS(knn_error_message(), "request id req-");
        }
    }
    /* AWS names the bucket's region on a wrong-region request: the message says what to do. */
    {
        struct knn_s3_http_exchange x;
        struct knn_s3__response resp;
        memset(&x, 0, sizeof(x));
        knn__s3_response_init(&resp, 0);
        resp.status = 301;
        snprintf(resp.error.code, sizeof(resp.error.code), "PermanentRedirect");
        snprintf(resp.bucket_region, sizeof(resp.bucket_region), "eu-west-3");
        int code = 0;
        ASSERT_INT_EQ(KNN_S3__FAIL, knn__s3_classify(&code, client, &req, &x, &resp, 1));
        knn__s3_response_clean_up(&resp);
        ASSERT_INT_EQ(KNN_ES3, code);
        ASSERT_CONTAINS(
            knn_error_message(), "the bucket is in region eu-west-3, not us-east-1: use --region eu-west-3");
    }
    /* Backoff: full jitter, within [0, min(max, base * 2^(attempt-2))]. */
    int seen_different = 0, first = knn__s3_backoff_ms(client, 2);
    for (int attempt = 2; attempt <= 12; attempt++) {
        long cap = 100L << (attempt - 2);
        if (cap > 20000)
            cap = 20000;
        for (int k = 0; k < 50; k++) {
            int ms = knn__s3_backoff_ms(client, attempt);
            ASSERT_TRUE(ms >= 0 && ms <= cap);
            seen_different |= attempt == 2 && ms != first;
        }
    }
    ASSERT_TRUE(seen_different);
    knn_s3_client_destroy(client);
    return 0;
}

int test_hashes(void)
{
    char md5[25], sha[65];
    unsigned char raw[16];
    ASSERT_OK(knn__s3_hash((const uint8_t *)"hello", 5, md5, raw, sha));
    ASSERT_STR_EQ("XUFAKrxLKna5cZ2REBfFkg==", md5);
    ASSERT_STR_EQ("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", sha);
    /* Across the 256 KiB blocks (values from Python's hashlib). */
    size_t n = 1048576 + 3;
    uint8_t *a = knn_malloc(n);
    memset(a, 'a', n);
    ASSERT_OK(knn__s3_hash(a, n, md5, NULL, sha));
    knn_free(a);
    ASSERT_STR_EQ("/yyIFa2edoajrpIb5Pr6qQ==", md5);
    ASSERT_STR_EQ("f5e25b6b994188fdb721357d459785dc479934edfd40f95658a45ab2ce2d8027", sha);
    return 0;
}

int test_client_options(void)
{
    struct knn_s3_credentials_provider *creds;
    struct knn_s3_client *c;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    s_clear_aws_env();
    ASSERT_OK(knn_s3_credentials_provider_new_static(&creds, "AK", "SK", NULL));
    o.credentials = creds;
    /* Defaults: AWS, us-east-1, virtual-hosted. */
    ASSERT_OK(knn_s3_client_new(&c, &o));
    ASSERT_STR_EQ("https://s3.us-east-1.amazonaws.com", knn_s3_client_endpoint(c));
    ASSERT_STR_EQ("us-east-1", knn_s3_client_region(c));
    knn_s3_client_destroy(c);
    /* The environment: region, then endpoint (AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL). */
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    ASSERT_OK(knn_s3_client_new(&c, &o));
    ASSERT_STR_EQ("https://s3.eu-central-1.amazonaws.com", knn_s3_client_endpoint(c));
    knn_s3_client_destroy(c);
    setenv("AWS_REGION", "ap-northeast-1", 1);
    setenv("AWS_ENDPOINT_URL", "http://minio.local:9000/", 1);
    setenv("AWS_ENDPOINT_URL_S3", "http://LOCALHOST:80", 1);
    ASSERT_OK(knn_s3_client_new(&c, &o));
    ASSERT_STR_EQ("http://localhost", knn_s3_client_endpoint(c)); /* default port dropped, host lower-cased */
    ASSERT_STR_EQ("ap-northeast-1", knn_s3_client_region(c));
    knn_s3_client_destroy(c);
    /* Bad options, each with its message. */
    static const char *const bad_endpoints[] = {"ftp://x",        "http://",       "http://h:0",
                                                "http://h:99999", "http://h/path", "http://***@h"};
    for (size_t i = 0; i < sizeof(bad_endpoints) / sizeof(bad_endpoints[0]); i++) {
        o.endpoint_url = i == 5 ? "http://user@h" : bad_endpoints[i]; /* the user name is not echoed */
        ASSERT_ERR(KNN_EINVAL, knn_s3_client_new(&c, &o));
        ASSERT_CONTAINS(knn_error_message(), bad_endpoints[i]);
    }
    o.endpoint_url = NULL;
    o.region = "us east";
    ASSERT_ERR(KNN_EINVAL, knn_s3_client_new(&c, &o));
    o.region = NULL;
    o.part_size = 1024;
    ASSERT_ERR(KNN_EINVAL, knn_s3_client_new(&c, &o));
    knn_s3_credentials_provider_release(creds);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* TLS: certificates are verified; AWS_CA_BUNDLE and ca_bundle add a trusted CA.                */

int test_tls_verification(void)
{
    char script[1024], cert[1024], key[1024], endpoint[64];
    pid_t pid;
    int port, exists = 0;
    struct knn_s3_credentials_provider *creds;
    struct knn_s3_client *c;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    s_clear_aws_env();
    knn_test_source_path(script, sizeof(script), "tests/tools/tls_server.py");
    knn_test_source_path(cert, sizeof(cert), "tests/s3/tls/server-cert.pem");
    knn_test_source_path(key, sizeof(key), "tests/s3/tls/server-key.pem");
    char *argv[] = {(char *)s3t_python(), script, "--cert", cert, "--key", key, NULL};
    ASSERT_OK(s3t_spawn_server(&pid, &port, argv, NULL));
    snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d", port);
    ASSERT_OK(knn_s3_credentials_provider_new_static(&creds, "AK", "SK", NULL));
    o.endpoint_url = endpoint;
    o.region = "us-east-1";
    o.credentials = creds;
    o.max_attempts = 3;
    o.retry_base_ms = 1;
    /* Unknown issuer: refused, and not retried (it would not get better). */
    ASSERT_OK(knn_s3_client_new(&c, &o));
    int rc = knn_s3_exists(&exists, c, "bucket", "k");
    knn_s3_client_destroy(c);
    if (rc != KNN_ES3_NET) {
        s3t_stop(pid);
        FAIL("an untrusted certificate was accepted (rc %d): %s", rc, knn_error_message());
    }
    ASSERT_TRUE(strstr(knn_error_message(), "certificate") || strstr(knn_error_message(), "SSL"));
    ASSERT_TRUE(strstr(knn_error_message(), "gave up after") == NULL);
    /* Trusted through AWS_CA_BUNDLE, then through the option. */
    setenv("AWS_CA_BUNDLE", cert, 1);
    ASSERT_OK(knn_s3_client_new(&c, &o));
    rc = knn_s3_exists(&exists, c, "bucket", "k");
    knn_s3_client_destroy(c);
    unsetenv("AWS_CA_BUNDLE");
    if (rc || !exists) {
        s3t_stop(pid);
        FAIL("AWS_CA_BUNDLE: rc %d, exists %d: %s", rc, exists, knn_error_message());
    }
    o.ca_bundle = cert;
    ASSERT_OK(knn_s3_client_new(&c, &o));
    exists = 0;
    rc = knn_s3_exists(&exists, c, "bucket", "k");
    knn_s3_client_destroy(c);
    s3t_stop(pid);
    ASSERT_OK(rc);
    ASSERT_TRUE(exists);
    knn_s3_credentials_provider_release(creds);
    return 0;
}
