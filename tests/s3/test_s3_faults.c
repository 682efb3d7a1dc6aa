/* Fault tests (label s3): our client talks to the local RGW through tests/tools/s3_fault_proxy.py,
 * which injects 503 SlowDown, resets, truncated, stalled and slow bodies, and lost answers. Each test
 * checks that the result is the same bytes after retries, or a clear error -- and that no partial
 * object and no multipart upload is left behind. */
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/client.h"
#include "knn/s3/reader.h"
#include "knn/s3/upload.h"
#include "knn_test.h"
#include "s3_test_env.h"
#include "s3_test_util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024u * 1024u)

struct s_ctx {
    struct knn_s3_test_env env;
    struct knn_s3_client *direct; /* straight to RGW: set-up and checks */
    struct knn_s3_client *client; /* through the proxy: the client under test */
    char prefix[256];
    pid_t proxy;
    int proxy_port;
};

static int s_setup(struct s_ctx *c, const char *name, int max_attempts)
{
    memset(c, 0, sizeof(*c));
    int rc = knn_s3_test_env_load(&c->env);
    if (rc)
        return rc;
    knn_s3_test_env_prefix(c->prefix, sizeof(c->prefix), name);
    const char *port = strrchr(c->env.endpoint, ':');
    char upstream[64], script[1024], log[1024];
    snprintf(upstream, sizeof(upstream), "127.0.0.1:%s", port ? port + 1 : "80");
    knn_test_source_path(script, sizeof(script), "tests/tools/s3_fault_proxy.py");
    const char *bin = getenv("KNN_BINARY_DIR");
    snprintf(log, sizeof(log), "%s/tests/s3/%s.proxy.log", bin ? bin : "/tmp", name);
    char *argv[] = {(char *)s3t_python(), script, "--upstream", upstream, NULL};
    if (s3t_spawn_server(&c->proxy, &c->proxy_port, argv, log) != 0)
        return 1;
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", c->proxy_port);
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    o.endpoint_url = endpoint;
    o.max_attempts = max_attempts;
    o.retry_base_ms = 20;
    o.stall_timeout_ms = 1000;
    o.part_size = 5 * MIB;
    if (knn_s3_test_env_client(&c->client, &c->env, &o) != 0 ||
        knn_s3_test_env_client(&c->direct, &c->env, NULL) != 0) {
        fprintf(stderr, "client: %s\n", knn_error_message());
        return 1;
    }
    return 0;
}

static void s_teardown(struct s_ctx *c)
{
    if (c->direct && knn_s3_test_env_clean_prefix(c->direct, &c->env, c->prefix) != 0)
        fprintf(stderr, "clean-up: %s\n", knn_error_message());
    knn_s3_client_destroy(c->client);
    knn_s3_client_destroy(c->direct);
    s3t_stop(c->proxy);
}

/* ---- the proxy's admin API ---- */

static size_t s_curl_sink(char *d, size_t s, size_t n, void *user)
{
    return knn_buf_append(user, d, s * n) ? 0 : s * n;
}

static int s_admin(struct s_ctx *c, const char *method, const char *path_query, struct knn_buf *out)
{
    char url[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->proxy_port, path_query);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_curl_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    long status = 0;
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return cc == CURLE_OK && status == 200 ? 0 : -1;
}

/* Arm a fault: "action=status&method=PUT&count=2". */
static int s_arm(struct s_ctx *c, const char *rule)
{
    struct knn_buf out = KNN_BUF_INIT(1 << 20);
    char pq[512];
    snprintf(pq, sizeof(pq), "/__faults?%s", rule);
    int rc = s_admin(c, "POST", pq, &out);
    knn_buf_clean_up(&out);
    return rc;
}

/* Sum of the "fired" counts of every rule. */
static int s_fired(struct s_ctx *c)
{
    struct knn_buf out = KNN_BUF_INIT(1 << 20);
    int total = 0;
    if (s_admin(c, "GET", "/__faults", &out) == 0 && out.data) {
        for (const char *p = (const char *)out.data; (p = strstr(p, "\"fired\": ")); p += 9)
            total += atoi(p + 9); /* checksrc: allow (test JSON of our own proxy) */
    }
    knn_buf_clean_up(&out);
    return total;
}

/* The proxy's request log as JSON text (caller frees). */
static char *s_log(struct s_ctx *c)
{
    struct knn_buf out = KNN_BUF_INIT(1 << 22);
    if (s_admin(c, "GET", "/__log", &out) != 0 || !out.data) {
        knn_buf_clean_up(&out);
        return NULL;
    }
    return (char *)knn_buf_detach(&out, NULL);
}

static int s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int s_collect(void *user, const uint8_t *data, size_t len)
{
    return knn_buf_append(user, data, len);
}

static int s_uploads_cb(void *user, const struct knn_s3_upload_entry *e)
{
    (*(int *)user)++;
    return 0;
}

/* No multipart upload in progress under the test's prefix, and `key` absent if must_be_absent. */
static int s_nothing_left(struct s_ctx *c, const char *key, int must_be_absent)
{
    int uploads = 0, exists = 0;
    if (knn_s3_list_uploads(c->direct, c->env.bucket, c->prefix, s_uploads_cb, &uploads) != 0)
        FAIL("list uploads: %s", knn_error_message());
    if (uploads != 0)
        FAIL("%d multipart uploads left behind under %s", uploads, c->prefix);
    if (must_be_absent) {
        if (knn_s3_exists(&exists, c->direct, c->env.bucket, key) != 0)
            FAIL("exists: %s", knn_error_message());
        if (exists)
            FAIL("a partial object %s was left behind", key);
    }
    return 0;
}

/* Put `size` bytes directly, returning the data (caller frees). */
static uint8_t *s_seed_object(struct s_ctx *c, const char *key, size_t size, uint64_t seed)
{
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, seed);
    if (knn_s3_put(NULL, c->direct, c->env.bucket, key, data, size, NULL) != 0) {
        fprintf(stderr, "seed %s: %s\n", key, knn_error_message());
        knn_free(data);
        return NULL;
    }
    return data;
}

static int
s_get_equals(struct s_ctx *c, struct knn_s3_client *client, const char *key, const uint8_t *data, size_t size)
{
    struct knn_buf got = KNN_BUF_INIT(size + 1);
    int rc = knn_s3_get(NULL, client, c->env.bucket, key, NULL, s_collect, &got);
    int same = rc == 0 && got.len == size && memcmp(got.data, data, size) == 0;
    if (!same)
        fprintf(stderr, "get %s: rc %d, %zu of %zu bytes: %s\n", key, rc, got.len, size, knn_error_message());
    knn_buf_clean_up(&got);
    return same;
}

/* ---- PUT ---- */

int test_fault_slowdown_put_retried(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.slowdown_put", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 100000;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 1);
    ASSERT_OK(s_arm(&c, "action=status&status=503&method=PUT&count=2"));
    ASSERT_OK(knn_s3_put(NULL, c.client, c.env.bucket, key, data, size, NULL));
    ASSERT_INT_EQ(2, s_fired(&c));
    ASSERT_TRUE(s_get_equals(&c, c.direct, key, data, size));
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_slowdown_exhausted(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.slowdown_exhausted", 3);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    ASSERT_OK(s_arm(&c, "action=status&status=503&method=PUT&count=100"));
    ASSERT_ERR(KNN_ES3_RETRIES_EXHAUSTED, knn_s3_put(NULL, c.client, c.env.bucket, key, "abc", 3, NULL));
    ASSERT_CONTAINS(knn_error_message(), "PutObject s3://");
    ASSERT_CONTAINS(knn_error_message(), "SlowDown");
    ASSERT_CONTAINS(knn_error_message(), "gave up after 3 attempts");
    ASSERT_INT_EQ(3, s_fired(&c));
    if (s_nothing_left(&c, key, 1))
        return KNN_TEST_FAIL;
    s_teardown(&c);
    return 0;
}

int test_fault_put_reset_mid_request(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.put_reset_request", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = MIB;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 2);
    ASSERT_OK(s_arm(&c, "action=reset&phase=request&after=100000&method=PUT"));
    ASSERT_OK(knn_s3_put(NULL, c.client, c.env.bucket, key, data, size, NULL));
    ASSERT_INT_EQ(1, s_fired(&c));
    ASSERT_TRUE(s_get_equals(&c, c.direct, key, data, size));
    knn_free(data);
    s_teardown(&c);
    return 0;
}

/* ---- GET ---- */

int test_fault_get_500_and_reset_before_response(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.get_500_reset", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    uint8_t *data = s_seed_object(&c, key, 200000, 3);
    ASSERT_TRUE(data != NULL);
    ASSERT_OK(s_arm(&c, "action=status&status=500&method=GET&count=1"));
    ASSERT_OK(s_arm(&c, "action=reset&phase=before&method=GET&count=1"));
    ASSERT_TRUE(s_get_equals(&c, c.client, key, data, 200000));
    ASSERT_INT_EQ(2, s_fired(&c));
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_get_reset_mid_body_resumes(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.get_reset_mid_body", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 4 * MIB;
    uint8_t *data = s_seed_object(&c, key, size, 4);
    ASSERT_TRUE(data != NULL);
    struct knn_s3_object_info head;
    ASSERT_OK(knn_s3_head(&head, c.direct, c.env.bucket, key));
    ASSERT_OK(s_arm(&c, "action=reset&after=1048576&method=GET"));
    ASSERT_TRUE(s_get_equals(&c, c.client, key, data, size));
    ASSERT_INT_EQ(1, s_fired(&c));
    /* The second GET resumed: a Range from where the first stopped, and If-Match on the ETag. */
    char *log = s_log(&c);
    ASSERT_TRUE(log != NULL);
    ASSERT_INT_EQ(2, s_count(log, "\"method\": \"GET\""));
    ASSERT_CONTAINS(log, "\"range\": \"bytes=");
    char if_match[256];
    snprintf(if_match, sizeof(if_match), "\"if_match\": \"\\\"%.*s\\\"\"", (int)strlen(head.etag) - 2, head.etag + 1);
    ASSERT_CONTAINS(log, if_match);
    knn_free(log);
    knn_s3_object_info_clean_up(&head);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_get_truncated_resumes_at_the_right_byte(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.get_truncated", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 2 * MIB + 5;
    uint8_t *data = s_seed_object(&c, key, size, 5);
    ASSERT_TRUE(data != NULL);
    ASSERT_OK(s_arm(&c, "action=truncate&after=300000&method=GET"));
    ASSERT_TRUE(s_get_equals(&c, c.client, key, data, size));
    char *log = s_log(&c);
    ASSERT_TRUE(log != NULL);
    ASSERT_CONTAINS(log, "\"range\": \"bytes=300000-2097156\""); /* a clean close loses nothing in flight */
    knn_free(log);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_get_truncated_is_never_success(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.get_truncated_final", 1);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    uint8_t *data = s_seed_object(&c, key, 500000, 6);
    ASSERT_TRUE(data != NULL);
    ASSERT_OK(s_arm(&c, "action=truncate&after=1000&method=GET"));
    struct knn_buf got = KNN_BUF_INIT(1 << 20);
    ASSERT_ERR(KNN_ETRUNCATED, knn_s3_get(NULL, c.client, c.env.bucket, key, NULL, s_collect, &got));
    ASSERT_CONTAINS(knn_error_message(), "shorter than its Content-Length");
    ASSERT_TRUE(got.len <= 1000);
    knn_buf_clean_up(&got);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_get_slow_and_stalled_bodies(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.get_slow_stall", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = MIB;
    uint8_t *data = s_seed_object(&c, key, size, 7);
    ASSERT_TRUE(data != NULL);
    /* Slow but moving: no retry needed, same bytes. */
    ASSERT_OK(s_arm(&c, "action=slow&bps=4000000&method=GET"));
    ASSERT_TRUE(s_get_equals(&c, c.client, key, data, size));
    /* Stalled for longer than the client's 1 s stall timeout: it gives up on that attempt and resumes. */
    ASSERT_OK(s_arm(&c, "action=stall&after=65536&ms=4000&method=GET"));
    ASSERT_TRUE(s_get_equals(&c, c.client, key, data, size));
    ASSERT_INT_EQ(2, s_fired(&c));
    char *log = s_log(&c);
    ASSERT_TRUE(log != NULL);
    ASSERT_INT_EQ(3, s_count(log, "\"method\": \"GET\""));
    ASSERT_CONTAINS(log, "\"range\": \"bytes=65536-1048575\"");
    knn_free(log);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

/* The object is replaced while a GET is in flight: the resumed GET must fail, never splice. */
struct s_changer {
    struct s_ctx *c;
    const char *key;
    int changed;
    struct knn_buf got;
};

static int s_change_once(void *user, const uint8_t *data, size_t len)
{
    struct s_changer *ch = user;
    if (!ch->changed) {
        ch->changed = 1;
        uint8_t other[1000];
        s3t_fill(other, sizeof(other), 999);
        if (knn_s3_put(NULL, ch->c->direct, ch->c->env.bucket, ch->key, other, sizeof(other), NULL) != 0)
            return KNN_EIO;
    }
    return knn_buf_append(&ch->got, data, len);
}

int test_fault_get_object_changed_during_resume(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.get_changed", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 2 * MIB;
    uint8_t *data = s_seed_object(&c, key, size, 8);
    ASSERT_TRUE(data != NULL);
    ASSERT_OK(s_arm(&c, "action=truncate&after=524288&method=GET"));
    struct s_changer ch = {&c, key, 0, KNN_BUF_INIT(4 * MIB)};
    ASSERT_ERR(KNN_ES3_CHANGED, knn_s3_get(NULL, c.client, c.env.bucket, key, NULL, s_change_once, &ch));
    ASSERT_CONTAINS(knn_error_message(), "PreconditionFailed");
    ASSERT_CONTAINS(knn_error_message(), "changed");
    /* What was delivered is a prefix of the original object, nothing of the new one. */
    ASSERT_TRUE(ch.got.len <= 524288);
    ASSERT_TRUE(memcmp(ch.got.data, data, ch.got.len) == 0);
    knn_buf_clean_up(&ch.got);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_reader_parts_retried(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.reader_parts", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 12 * MIB + 1;
    uint8_t *data = s_seed_object(&c, key, size, 9);
    ASSERT_TRUE(data != NULL);
    ASSERT_OK(s_arm(&c, "action=reset&after=100000&method=GET&skip=2"));
    ASSERT_OK(s_arm(&c, "action=status&status=503&method=GET&skip=1&count=2"));
    ASSERT_OK(s_arm(&c, "action=truncate&after=777&method=GET&skip=4"));
    struct knn_s3_reader *r;
    struct knn_s3_reader_options ro = {2 * MIB, 4};
    ASSERT_OK(knn_s3_reader_new(&r, c.client, &ro));
    ASSERT_OK(knn_s3_reader_add_key(r, c.env.bucket, key));
    struct knn_buf got = KNN_BUF_INIT(size + 1);
    for (;;) {
        struct knn_s3_chunk chunk;
        int done;
        ASSERT_OK(knn_s3_reader_next(&chunk, &done, r));
        if (done)
            break;
        ASSERT_UINT_EQ(got.len, chunk.offset);
        ASSERT_OK(knn_buf_append(&got, chunk.data, chunk.len));
    }
    knn_s3_reader_destroy(r);
    ASSERT_MEM_EQ(data, size, got.data, got.len);
    ASSERT_INT_EQ(4, s_fired(&c));
    knn_buf_clean_up(&got);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_get_file_parts_retried(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.get_file", 5);
    if (rc)
        return rc;
    char key[512], dir[512], path[600];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 19 * MIB + 11;
    uint8_t *data = s_seed_object(&c, key, size, 15);
    ASSERT_TRUE(data != NULL);
    /* The HEAD, then 3 ranged GETs in parallel (8 MiB): faults on some of them. */
    ASSERT_OK(s_arm(&c, "action=reset&after=1000000&method=GET&skip=1"));
    ASSERT_OK(s_arm(&c, "action=status&status=503&method=GET&count=2"));
    ASSERT_OK(s_arm(&c, "action=truncate&after=4321&method=GET&skip=2"));
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/obj.bin", dir);
    ASSERT_OK(knn_s3_get_file(c.client, c.env.bucket, key, path));
    uint8_t *back = NULL;
    size_t blen = 0;
    ASSERT_OK(knn_test_read_file(path, &back, &blen));
    ASSERT_MEM_EQ(data, size, back, blen);
    ASSERT_INT_EQ(4, s_fired(&c));
    knn_free(back);
    knn_test_rmtree(dir);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

/* ---- multipart ---- */

int test_fault_multipart_parts_retried(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.multipart_retried", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 20 * MIB + 3;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 10);
    ASSERT_OK(s_arm(&c, "action=status&status=503&method=PUT&query=partNumber%3D2%26&count=2"));
    ASSERT_OK(s_arm(&c, "action=reset&phase=before&method=PUT&query=partNumber%3D3%26"));
    ASSERT_OK(s_arm(&c, "action=reset&phase=request&after=2000000&method=PUT&query=partNumber%3D4%26"));
    ASSERT_OK(s_arm(&c, "action=status&status=500&method=POST&query=uploads"));
    char *etag = NULL;
    ASSERT_OK(knn_s3_put(&etag, c.client, c.env.bucket, key, data, size, NULL));
    ASSERT_INT_EQ(5, s_fired(&c));
    ASSERT_TRUE(strstr(etag, "-5\"") != NULL);
    ASSERT_TRUE(s_get_equals(&c, c.direct, key, data, size));
    if (s_nothing_left(&c, key, 0))
        return KNN_TEST_FAIL;
    knn_free(etag);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_multipart_failure_aborts(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.multipart_aborts", 2);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 30 * MIB;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 11);
    ASSERT_OK(s_arm(&c, "action=status&status=503&method=PUT&query=partNumber%3D2%26&count=100"));
    struct knn_s3_upload *u;
    ASSERT_OK(knn_s3_upload_new(&u, c.client, c.env.bucket, key, NULL));
    rc = knn_s3_upload_write(u, data, size);
    if (rc == 0)
        rc = knn_s3_upload_finish(u, NULL);
    ASSERT_INT_EQ(KNN_ES3_RETRIES_EXHAUSTED, rc);
    ASSERT_CONTAINS(knn_error_message(), "UploadPart s3://");
    ASSERT_CONTAINS(knn_error_message(), "SlowDown");
    /* Every later call reports the same failure. */
    ASSERT_ERR(KNN_ES3_RETRIES_EXHAUSTED, knn_s3_upload_write(u, data, 10));
    ASSERT_ERR(KNN_ES3_RETRIES_EXHAUSTED, knn_s3_upload_finish(u, NULL));
    knn_s3_upload_destroy(u);
    if (s_nothing_left(&c, key, 1))
        return KNN_TEST_FAIL;
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_complete_200_with_error_retried(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.complete_200_error", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 11 * MIB;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 12);
    ASSERT_OK(s_arm(&c, "action=status&status=200&code=InternalError&method=POST&query=uploadId%3D"));
    ASSERT_OK(knn_s3_put(NULL, c.client, c.env.bucket, key, data, size, NULL));
    ASSERT_INT_EQ(1, s_fired(&c));
    ASSERT_TRUE(s_get_equals(&c, c.direct, key, data, size));
    if (s_nothing_left(&c, key, 0))
        return KNN_TEST_FAIL;
    /* Without retries left, the 200-with-<Error> is an error, not a success. */
    struct knn_s3_client *once;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", c.proxy_port);
    o.endpoint_url = endpoint;
    o.max_attempts = 1;
    o.part_size = 5 * MIB;
    ASSERT_OK(knn_s3_test_env_client(&once, &c.env, &o));
    char key2[512];
    snprintf(key2, sizeof(key2), "%sobj2.bin", c.prefix);
    ASSERT_OK(s_arm(&c, "action=status&status=200&code=InternalError&method=POST&query=uploadId%3D"));
    ASSERT_ERR(KNN_ES3_RETRIES_EXHAUSTED, knn_s3_put(NULL, once, c.env.bucket, key2, data, size, NULL));
    ASSERT_CONTAINS(knn_error_message(), "CompleteMultipartUpload");
    ASSERT_CONTAINS(knn_error_message(), "InternalError");
    knn_s3_client_destroy(once);
    if (s_nothing_left(&c, key2, 1))
        return KNN_TEST_FAIL;
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_complete_answer_lost(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.complete_lost", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 12 * MIB + 7;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 13);
    /* The server completes the upload, the client never hears of it and asks again. */
    ASSERT_OK(s_arm(&c, "action=reset&phase=after&method=POST&query=uploadId%3D"));
    char *etag = NULL;
    ASSERT_OK(knn_s3_put(&etag, c.client, c.env.bucket, key, data, size, NULL));
    ASSERT_INT_EQ(1, s_fired(&c));
    struct knn_s3_object_info head;
    ASSERT_OK(knn_s3_head(&head, c.direct, c.env.bucket, key));
    ASSERT_STR_EQ(head.etag, etag);
    ASSERT_TRUE(s_get_equals(&c, c.direct, key, data, size));
    if (s_nothing_left(&c, key, 0))
        return KNN_TEST_FAIL;
    knn_s3_object_info_clean_up(&head);
    knn_free(etag);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_create_answer_lost_leaves_no_orphan(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.create_lost", 5);
    if (rc)
        return rc;
    char key[512];
    snprintf(key, sizeof(key), "%sobj.bin", c.prefix);
    size_t size = 7 * MIB;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 14);
    /* RGW creates the upload; the client never hears of it and asks again. */
    ASSERT_OK(s_arm(&c, "action=reset&phase=after&method=POST&query=uploads"));
    ASSERT_OK(knn_s3_put(NULL, c.client, c.env.bucket, key, data, size, NULL));
    ASSERT_INT_EQ(1, s_fired(&c));
    ASSERT_TRUE(s_get_equals(&c, c.direct, key, data, size));
    if (s_nothing_left(&c, key, 0))
        return KNN_TEST_FAIL;
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_fault_list_retried(void)
{
    struct s_ctx c;
    int rc = s_setup(&c, "faults.list", 5);
    if (rc)
        return rc;
    for (int i = 0; i < 3; i++) {
        char key[512];
        snprintf(key, sizeof(key), "%sk%d", c.prefix, i);
        ASSERT_OK(knn_s3_put(NULL, c.direct, c.env.bucket, key, "x", 1, NULL));
    }
    ASSERT_OK(s_arm(&c, "action=status&status=500&method=GET&query=list-type%3D2"));
    ASSERT_OK(s_arm(&c, "action=truncate&after=50&method=GET&query=list-type%3D2"));
    struct knn_s3_object_list list;
    ASSERT_OK(knn_s3_list(&list, c.client, c.env.bucket, c.prefix));
    ASSERT_UINT_EQ(3, list.count);
    ASSERT_INT_EQ(2, s_fired(&c));
    knn_s3_object_list_clean_up(&list);
    s_teardown(&c);
    return 0;
}
