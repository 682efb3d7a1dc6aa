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
    if (sscanf(t, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec) != 6)
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
    struct knn_s3_credentials creds = {(char *)c.ak, (char *)c.sk, (char *)c.token, 0};
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
    static const char *const cases[] = {"own-put-special-key", "own-list-special-query", "own-header-normalization",
                                        "own-presigned-part-token"};
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
    struct knn_s3_credentials creds = {"AK", "SK", NULL, 0};
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
        {"\xc3\xa9", 0, "%C3%A9"},                         /* é */
        {"\xe6\x97\xa5\xe6\x9c\xac", 1, "%E6%97%A5%E6%9C%AC"}, /* 日本 */
        {"\xf0\x9f\x98\x80", 0, "%F0%9F%98%80"},         /* an emoji (4 bytes) */
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
            FAIL("case %zu: encode('%s', %d) = '%s', expected '%s'", i, cases[i].in, cases[i].keep_slash, got,
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
        "", "s3://", "s3:///key", "s3://b/c\nd", "/local/path", "file:///x", "relative/dir", "http://bucket.s3.amazonaws.com/k",
        "https://example.com/bucket/key", "https://s3.amazonaws.com/", "https://bucket.s3.amazonaws.com/k?versionId=1",
        "s3://bad!bucket/k", "s3://b@d/k",
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
