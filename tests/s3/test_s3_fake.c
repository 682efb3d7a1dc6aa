/* Unit tests (unit, sanitize) of the client's retry, resume, reader, upload and abort logic, on an
 * in-memory S3 behind the transport vtable (fake_transport.c): no sockets, so they run in the
 * ASan/UBSan build too. Also allocation-failure ("torture") runs: every allocation of an operation
 * fails in turn, and each run must end in a clean error or success, without leaks or crashes. */
#include "fake_transport.h"
#include "s3_test_util.h"
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/client.h"
#include "knn/s3/reader.h"
#include "knn/s3/upload.h"
#include "knn_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

static int s_client(struct knn_s3_client **out, struct fake_s3 *f, int max_attempts)
{
    struct knn_s3_credentials_provider *creds;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    int rc = knn_s3_credentials_provider_new_static(&creds, "FAKEKEY", "fake-secret", NULL);
    if (rc)
        return rc;
    o.endpoint_url = "http://fake.invalid";
    o.region = "us-east-1";
    o.credentials = creds;
    o.transport = fake_s3_transport(f);
    o.max_attempts = max_attempts;
    o.retry_base_ms = 1;
    o.part_size = 5 * MIB;
    o.max_concurrency = 3;
    rc = knn_s3_client_new(out, &o);
    knn_s3_credentials_provider_release(creds);
    return rc;
}

static int s_collect(void *user, const uint8_t *data, size_t len)
{
    return knn_buf_append(user, data, len);
}

int test_fake_get_resumes_with_if_match(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, f, 5));
    size_t size = MIB + 17;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 1);
    ASSERT_OK(fake_s3_put(f, "b", "dir/k", data, size));
    int truncate = fake_s3_fault(f, "GET", "/b/dir/k", 0, 1, FAKE_TRUNCATE, 0, NULL, 300000);
    int reset = fake_s3_fault(f, "GET", "/b/dir/k", 0, 1, FAKE_RESET, 0, NULL, 0);
    int slow = fake_s3_fault(f, "GET", "/b/dir/k", 0, 1, FAKE_STATUS, 503, "SlowDown", 0);
    struct knn_buf got = KNN_BUF_INIT(2 * MIB);
    struct knn_s3_object_info info;
    ASSERT_OK(knn_s3_get(&info, c, "b", "dir/k", NULL, s_collect, &got));
    ASSERT_MEM_EQ(data, size, got.data, got.len);
    ASSERT_INT_EQ(1, fake_s3_fired(f, truncate));
    ASSERT_INT_EQ(1, fake_s3_fired(f, reset));
    ASSERT_INT_EQ(1, fake_s3_fired(f, slow));
    ASSERT_INT_EQ(4, fake_s3_requests(f));
    /* The attempts after the truncation asked for the rest, of the same object. */
    ASSERT_STR_EQ("bytes=300000-1048592", fake_s3_last_range(f));
    ASSERT_STR_EQ(info.etag, fake_s3_last_if_match(f));
    ASSERT_UINT_EQ(size, info.size);
    knn_s3_object_info_clean_up(&info);
    knn_buf_clean_up(&got);
    knn_free(data);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

/* The object is replaced while a GET is in flight: the resumed GET fails, never splices. */
struct s_changer {
    struct fake_s3 *f;
    int changed;
    struct knn_buf got;
};

static int s_change_once(void *user, const uint8_t *data, size_t len)
{
    struct s_changer *ch = user;
    if (!ch->changed) {
        ch->changed = 1;
        fake_s3_put(ch->f, "b", "k", "something else entirely", 24);
    }
    return knn_buf_append(&ch->got, data, len);
}

int test_fake_get_changed_object_is_an_error(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, f, 5));
    uint8_t data[200000];
    s3t_fill(data, sizeof(data), 2);
    ASSERT_OK(fake_s3_put(f, "b", "k", data, sizeof(data)));
    fake_s3_fault(f, "GET", "/b/k", 0, 1, FAKE_TRUNCATE, 0, NULL, 70000);
    struct s_changer ch = {f, 0, KNN_BUF_INIT(1 << 20)};
    ASSERT_ERR(KNN_ES3_CHANGED, knn_s3_get(NULL, c, "b", "k", NULL, s_change_once, &ch));
    ASSERT_CONTAINS(knn_error_message(), "PreconditionFailed");
    ASSERT_TRUE(ch.got.len <= 70000);
    ASSERT_TRUE(memcmp(ch.got.data, data, ch.got.len) == 0);
    knn_buf_clean_up(&ch.got);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

int test_fake_short_body_is_never_success(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, f, 2));
    uint8_t data[5000];
    s3t_fill(data, sizeof(data), 3);
    ASSERT_OK(fake_s3_put(f, "b", "k", data, sizeof(data)));
    fake_s3_fault(f, "GET", "/b/k", 0, 2, FAKE_TRUNCATE, 0, NULL, 100);
    struct knn_buf got = KNN_BUF_INIT(1 << 20);
    ASSERT_ERR(KNN_ETRUNCATED, knn_s3_get(NULL, c, "b", "k", NULL, s_collect, &got));
    ASSERT_CONTAINS(knn_error_message(), "gave up after 2 attempts");
    ASSERT_TRUE(got.len < sizeof(data));
    knn_buf_clean_up(&got);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

int test_fake_reader_in_order_with_faults(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, f, 5));
    static const size_t sizes[] = {0, 3 * MIB + 1, 100, 2 * MIB, 1};
    enum { N = 5 };
    uint8_t *blobs[N];
    char keys[N][16];
    for (int i = 0; i < N; i++) {
        blobs[i] = knn_malloc(sizes[i] + 1);
        s3t_fill(blobs[i], sizes[i], 10 + (uint64_t)i);
        snprintf(keys[i], sizeof(keys[i]), "obj-%d", i);
        ASSERT_OK(fake_s3_put(f, "b", keys[i], blobs[i], sizes[i]));
    }
    fake_s3_fault(f, "GET", "/b/obj-1", 1, 1, FAKE_TRUNCATE, 0, NULL, 12345);
    fake_s3_fault(f, "GET", "/b/obj-1", 0, 1, FAKE_STATUS, 500, "InternalError", 0);
    fake_s3_fault(f, "GET", "/b/obj-3", 0, 1, FAKE_RESET, 0, NULL, 0);
    struct knn_s3_reader *r;
    struct knn_s3_reader_options ro = {MIB, 3};
    ASSERT_OK(knn_s3_reader_new(&r, c, &ro));
    for (int i = 0; i < N; i++)
        ASSERT_OK(knn_s3_reader_add_key(r, "b", keys[i]));
    size_t obj = 0;
    uint64_t pos = 0;
    int chunks = 0;
    for (;;) {
        struct knn_s3_chunk ch;
        int done;
        ASSERT_OK(knn_s3_reader_next(&ch, &done, r));
        if (done)
            break;
        chunks++;
        ASSERT_UINT_EQ(obj, ch.object_index);
        ASSERT_UINT_EQ(pos, ch.offset);
        ASSERT_TRUE(ch.data != NULL);
        ASSERT_TRUE(memcmp(ch.data, blobs[obj] + pos, ch.len) == 0);
        pos += ch.len;
        if (ch.flags & KNN_S3_CHUNK_LAST) {
            ASSERT_UINT_EQ(sizes[obj], pos);
            obj++;
            pos = 0;
        }
    }
    ASSERT_UINT_EQ(N, obj);
    ASSERT_INT_EQ(1 + 4 + 1 + 2 + 1, chunks); /* 1 MiB parts */
    knn_s3_reader_destroy(r);
    for (int i = 0; i < N; i++)
        knn_free(blobs[i]);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

int test_fake_upload_retries_then_aborts(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, f, 3));
    size_t size = 12 * MIB + 5;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 4);
    /* Retried: 503 twice on part 2, a reset on part 3, a 200-with-<Error> on Complete. */
    fake_s3_fault(f, "PUT", "partNumber=2&", 0, 2, FAKE_STATUS, 503, "SlowDown", 0);
    fake_s3_fault(f, "PUT", "partNumber=3&", 0, 1, FAKE_RESET, 0, NULL, 0);
    fake_s3_fault(f, "POST", "uploadId=", 0, 1, FAKE_STATUS, 200, "InternalError", 0);
    char *etag = NULL;
    ASSERT_OK(knn_s3_put(&etag, c, "b", "big", data, size, NULL));
    size_t len = 0;
    const uint8_t *stored = fake_s3_get(f, "b", "big", &len);
    ASSERT_TRUE(stored != NULL);
    ASSERT_MEM_EQ(data, size, stored, len);
    ASSERT_TRUE(strstr(etag, "-3\"") != NULL);
    ASSERT_INT_EQ(0, fake_s3_uploads(f));
    knn_free(etag);
    /* Not retried forever: part 2 keeps failing, the upload is aborted, nothing is left. */
    fake_s3_fault(f, "PUT", "partNumber=2&", 0, 100, FAKE_STATUS, 503, "SlowDown", 0);
    struct knn_s3_upload *u;
    ASSERT_OK(knn_s3_upload_new(&u, c, "b", "doomed", NULL));
    int rc = knn_s3_upload_write(u, data, size);
    if (rc == 0)
        rc = knn_s3_upload_finish(u, NULL);
    ASSERT_INT_EQ(KNN_ES3_RETRIES_EXHAUSTED, rc);
    ASSERT_CONTAINS(knn_error_message(), "UploadPart s3://b/doomed: SlowDown");
    knn_s3_upload_destroy(u);
    ASSERT_INT_EQ(0, fake_s3_uploads(f));
    ASSERT_TRUE(fake_s3_get(f, "b", "doomed", &len) == NULL);
    knn_free(data);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

int test_fake_get_file_with_faults(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, f, 5));
    size_t size = 16 * MIB + 3; /* 4 ranges of 5 MiB, 3 in flight */
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 7);
    ASSERT_OK(fake_s3_put(f, "b", "big", data, size));
    fake_s3_fault(f, "GET", "/b/big", 1, 1, FAKE_TRUNCATE, 0, NULL, 99999);
    fake_s3_fault(f, "GET", "/b/big", 2, 1, FAKE_RESET, 0, NULL, 0);
    fake_s3_fault(f, "GET", "/b/big", 0, 1, FAKE_STATUS, 503, "SlowDown", 0);
    char dir[512], path[600];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/big.bin", dir);
    ASSERT_OK(knn_s3_get_file(c, "b", "big", path));
    uint8_t *back = NULL;
    size_t blen = 0;
    ASSERT_OK(knn_test_read_file(path, &back, &blen));
    ASSERT_MEM_EQ(data, size, back, blen);
    knn_free(back);
    /* A missing object: an error, and no file. */
    snprintf(path, sizeof(path), "%s/missing.bin", dir);
    ASSERT_ERR(KNN_ES3_NO_SUCH_KEY, knn_s3_get_file(c, "b", "missing", path));
    ASSERT_TRUE(access(path, F_OK) != 0);
    knn_test_rmtree(dir);
    knn_free(data);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

/* CreateMultipartUpload's answer is lost after the server made the upload: the retry makes a
 * second one; the first must not stay behind. */
int test_fake_create_answer_lost_leaves_no_orphan(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    ASSERT_OK(s_client(&c, f, 3));
    size_t size = 6 * MIB;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 6);
    int lost = fake_s3_fault(f, "POST", "?uploads", 0, 1, FAKE_TRUNCATE, 0, NULL, 10);
    ASSERT_OK(knn_s3_put(NULL, c, "b", "k", data, size, NULL));
    ASSERT_INT_EQ(1, fake_s3_fired(f, lost));
    ASSERT_INT_EQ(0, fake_s3_uploads(f));
    size_t len;
    const uint8_t *stored = fake_s3_get(f, "b", "k", &len);
    ASSERT_TRUE(stored != NULL);
    ASSERT_MEM_EQ(data, size, stored, len);
    knn_free(data);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

/* What goes on the wire: AWS virtual-hosted URLs, path style elsewhere, the key encoded once, the
 * session token signed, TLS CA bundle from the environment. */
int test_fake_addressing_and_signed_headers(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_credentials_provider *creds;
    struct knn_s3_client *c;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    struct knn_s3_object_info info;
    int exists;
    unsetenv("AWS_ENDPOINT_URL"); /* a developer's shell may point these at a local server */
    unsetenv("AWS_ENDPOINT_URL_S3");
    ASSERT_OK(knn_s3_credentials_provider_new_static(&creds, "ASIAFAKE", "secret", "session/token+1=="));
    o.region = "eu-west-3";
    o.credentials = creds;
    o.transport = fake_s3_transport(f);
    o.max_attempts = 1;
    /* AWS: virtual-hosted, https, payload unsigned (TLS). */
    ASSERT_OK(knn_s3_client_new(&c, &o));
    ASSERT_OK(knn_s3_exists(&exists, c, "my-bucket", "dir/a b+c.rec"));
    ASSERT_STR_EQ("https://my-bucket.s3.eu-west-3.amazonaws.com/dir/a%20b%2Bc.rec", fake_s3_last_url(f));
    ASSERT_STR_EQ("host: my-bucket.s3.eu-west-3.amazonaws.com", fake_s3_last_header(f, "host"));
    ASSERT_STR_EQ("x-amz-security-token: session/token+1==", fake_s3_last_header(f, "x-amz-security-token"));
    ASSERT_CONTAINS(
        fake_s3_last_header(f, "Authorization"), "Credential=ASIAFAKE/"); /* the access key id only: never the secret */
    ASSERT_CONTAINS(
        fake_s3_last_header(f, "Authorization"),
        "/eu-west-3/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
        "x-amz-security-token,Signature=");
    ASSERT_TRUE(strstr(fake_s3_last_header(f, "Authorization"), "secret") == NULL);
    /* A bucket name with dots cannot be a virtual host under https: path style for it. */
    ASSERT_OK(knn_s3_exists(&exists, c, "my.dotted.bucket", "k"));
    ASSERT_STR_EQ("https://s3.eu-west-3.amazonaws.com/my.dotted.bucket/k", fake_s3_last_url(f));
    /* A put over https: UNSIGNED-PAYLOAD, with its Content-MD5. */
    ASSERT_OK(knn_s3_put(NULL, c, "my-bucket", "k", "hello", 5, NULL));
    ASSERT_STR_EQ("x-amz-content-sha256: UNSIGNED-PAYLOAD", fake_s3_last_header(f, "x-amz-content-sha256"));
    ASSERT_STR_EQ("content-md5: XUFAKrxLKna5cZ2REBfFkg==", fake_s3_last_header(f, "content-md5"));
    knn_s3_client_destroy(c);
    /* A custom endpoint: path style; over http the payload's SHA-256 is signed. */
    o.endpoint_url = "http://minio.local:9000";
    ASSERT_OK(knn_s3_client_new(&c, &o));
    ASSERT_OK(knn_s3_put(NULL, c, "my-bucket", "dir/k~1", "hello", 5, NULL));
    ASSERT_STR_EQ("http://minio.local:9000/my-bucket/dir/k~1", fake_s3_last_url(f));
    ASSERT_STR_EQ("host: minio.local:9000", fake_s3_last_header(f, "host"));
    ASSERT_STR_EQ(
        "x-amz-content-sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        fake_s3_last_header(f, "x-amz-content-sha256"));
    ASSERT_OK(knn_s3_head(&info, c, "my-bucket", "dir/k~1"));
    ASSERT_UINT_EQ(5, info.size);
    knn_s3_object_info_clean_up(&info);
    knn_s3_client_destroy(c);
    /* Forced virtual-host on a custom endpoint. */
    o.addressing = KNN_S3_ADDRESSING_VIRTUAL;
    ASSERT_OK(knn_s3_client_new(&c, &o));
    ASSERT_OK(knn_s3_exists(&exists, c, "my-bucket", "k"));
    ASSERT_STR_EQ("http://my-bucket.minio.local:9000/k", fake_s3_last_url(f));
    knn_s3_client_destroy(c);
    knn_s3_credentials_provider_release(creds);
    fake_s3_destroy(f);
    return 0;
}

/* ---- allocation failures: every allocation of an operation fails in turn ---- */

typedef int(s_op_fn)(struct knn_s3_client *c, struct fake_s3 *f, const uint8_t *data, size_t size);

static int s_op_put_get_head(struct knn_s3_client *c, struct fake_s3 *f, const uint8_t *data, size_t size)
{
    struct knn_buf got = KNN_BUF_INIT(size + 1);
    struct knn_s3_object_info info;
    int rc = knn_s3_put(NULL, c, "b", "torture", data, size, NULL);
    if (!rc)
        rc = knn_s3_get(NULL, c, "b", "torture", NULL, s_collect, &got);
    if (!rc && (got.len != size || memcmp(got.data, data, size) != 0))
        rc = KNN_EMISMATCH; /* an error path may fail, but it must never return wrong bytes */
    if (!rc && (rc = knn_s3_head(&info, c, "b", "torture")) == 0)
        knn_s3_object_info_clean_up(&info);
    knn_buf_clean_up(&got);
    return rc;
}

static int s_op_upload_reader(struct knn_s3_client *c, struct fake_s3 *f, const uint8_t *data, size_t size)
{
    struct knn_s3_upload *u = NULL;
    struct knn_s3_reader *r = NULL;
    struct knn_buf got = KNN_BUF_INIT(size + 1);
    int rc = knn_s3_upload_new(&u, c, "b", "torture-mp", NULL);
    if (!rc)
        rc = knn_s3_upload_write(u, data, size);
    if (!rc)
        rc = knn_s3_upload_finish(u, NULL);
    knn_s3_upload_destroy(u);
    if (!rc)
        rc = knn_s3_reader_new(&r, c, NULL);
    if (!rc)
        rc = knn_s3_reader_add_key(r, "b", "torture-mp");
    while (!rc) {
        struct knn_s3_chunk ch;
        int done;
        if ((rc = knn_s3_reader_next(&ch, &done, r)) || done)
            break;
        rc = knn_buf_append(&got, ch.data, ch.len);
    }
    if (!rc && (got.len != size || memcmp(got.data, data, size) != 0))
        rc = KNN_EMISMATCH;
    knn_s3_reader_destroy(r);
    knn_buf_clean_up(&got);
    if (rc && fake_s3_uploads(f) != 0) { /* a failed upload must leave no multipart upload behind */
        fprintf(stderr, "left behind after: %s\n", knn_error_message());
        rc = KNN_EINTERNAL;
    }
    return rc;
}

static int s_torture(s_op_fn *op, size_t size, int max_attempts)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    if (s_client(&c, f, max_attempts))
        FAIL("client");
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 5);
    /* One clean run to count the allocations. */
    knn_alloc_fail_after(0);
    if (op(c, f, data, size) != 0)
        FAIL("the clean run failed: %s", knn_error_message());
    uint64_t total = knn_alloc_fail_after(0);
    int failures = 0;
    for (uint64_t n = 1; n <= total; n++) {
        knn_alloc_fail_after(n);
        int rc = op(c, f, data, size);
        knn_alloc_fail_after(0);
        if (rc == KNN_EMISMATCH || rc == KNN_EINTERNAL)
            FAIL(
                "allocation %llu of %llu: %s (%d)", (unsigned long long)n, (unsigned long long)total,
                rc == KNN_EMISMATCH ? "wrong bytes returned" : "an upload was left behind", rc);
        if (rc) {
            failures++;
            if (!knn_error_message()[0])
                FAIL("allocation %llu: error %d without a message", (unsigned long long)n, rc);
        }
    }
    fprintf(
        stderr, "%llu allocations, %d runs ended in an error, none crashed or leaked\n", (unsigned long long)total,
        failures);
    knn_free(data);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}

int test_fake_torture_put_get_head(void)
{
    return s_torture(s_op_put_get_head, 70000, 3);
}

int test_fake_torture_upload_and_reader(void)
{
    return s_torture(s_op_upload_reader, 5 * MIB + 1, 3);
}

/* Retries are visible: counted by cause, and one WARN line per operation at most every 10 s. */
struct s_warns {
    pthread_mutex_t lock;
    int get_lines, put_lines;
    char first_get[1024];
};

static void s_warn_sink(void *user, enum knn_log_level level, const char *line)
{
    struct s_warns *w = user;
    if (level != KNN_LOG_WARN)
        return;
    pthread_mutex_lock(&w->lock);
    if (strstr(line, "GetObject s3://b/k:") && w->get_lines++ == 0)
        snprintf(w->first_get, sizeof(w->first_get), "%s", line);
    if (strstr(line, "PutObject s3://b/p:"))
        w->put_lines++;
    pthread_mutex_unlock(&w->lock);
}

static uint64_t s_retries_of(struct knn_s3_client *c, const char *cause)
{
    struct knn_s3_retry_count r[KNN_S3_RETRY_CAUSES_MAX];
    size_t n = knn_s3_client_retries(c, r, KNN_S3_RETRY_CAUSES_MAX);
    for (size_t i = 0; i < n && i < KNN_S3_RETRY_CAUSES_MAX; i++)
        if (strcmp(r[i].cause, cause) == 0)
            return r[i].count;
    return 0;
}

int test_fake_retries_counted_and_logged(void)
{
    struct fake_s3 *f = fake_s3_new();
    struct knn_s3_client *c;
    struct s_warns w = {PTHREAD_MUTEX_INITIALIZER, 0, 0, ""};
    ASSERT_OK(s_client(&c, f, 8));
    uint8_t data[5000];
    s3t_fill(data, sizeof(data), 3);
    ASSERT_OK(fake_s3_put(f, "b", "k", data, sizeof(data)));
    fake_s3_fault(f, "GET", "/b/k", 0, 3, FAKE_STATUS, 503, "SlowDown", 0);
    fake_s3_fault(f, "GET", "/b/k", 0, 1, FAKE_RESET, 0, NULL, 0);
    fake_s3_fault(f, "GET", "/b/k", 0, 1, FAKE_STATUS, 500, "InternalError", 0);
    fake_s3_fault(f, "PUT", "/b/p", 0, 1, FAKE_STATUS, 503, "SlowDown", 0);
    enum knn_log_level old = knn_log_get_level();
    knn_log_set_level(KNN_LOG_WARN);
    knn_log_set_sink(s_warn_sink, &w);
    struct knn_buf got = KNN_BUF_INIT(1 << 20);
    int rc = knn_s3_get(NULL, c, "b", "k", NULL, s_collect, &got);
    int prc = knn_s3_put(NULL, c, "b", "p", data, 100, NULL);
    knn_log_set_sink(NULL, NULL);
    knn_log_set_level(old);
    ASSERT_OK(rc);
    ASSERT_OK(prc);
    ASSERT_MEM_EQ(data, sizeof(data), got.data, got.len);
    ASSERT_UINT_EQ(4, s_retries_of(c, "SlowDown")); /* 3 GETs, 1 PUT */
    ASSERT_UINT_EQ(1, s_retries_of(c, "connection"));
    ASSERT_UINT_EQ(1, s_retries_of(c, "InternalError"));
    /* Five GET retries within far less than 10 s: one line, the first, naming the cause and attempt. */
    ASSERT_INT_EQ(1, w.get_lines);
    ASSERT_CONTAINS(w.first_get, "SlowDown");
    ASSERT_CONTAINS(w.first_get, "attempt 1 of 8");
    ASSERT_CONTAINS(w.first_get, "retrying in");
    /* Another operation has its own line. */
    ASSERT_INT_EQ(1, w.put_lines);
    knn_buf_clean_up(&got);
    knn_s3_client_destroy(c);
    fake_s3_destroy(f);
    return 0;
}
