/* Integration tests of s3/ against the local Ceph RGW (label s3, fixture s3_server): every
 * operation, awkward keys, more than 1,000 keys, objects of 0 B, 1 B, 5 MiB +- 1 and 64 MiB. */
#include "knn/common/alloc.h"
#include "s3_test_util.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/client.h"
#include "knn/s3/reader.h"
#include "knn/s3/upload.h"
#include "knn_test.h"
#include "s3_test_env.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

struct s_ctx {
    struct knn_s3_test_env env;
    struct knn_s3_client *client;
    char prefix[256];
};

static int s_setup(struct s_ctx *c, const char *name, const struct knn_s3_client_options *opts)
{
    int rc = knn_s3_test_env_load(&c->env);
    if (rc)
        return rc;
    knn_s3_test_env_prefix(c->prefix, sizeof(c->prefix), name);
    if (knn_s3_test_env_client(&c->client, &c->env, opts) != 0) {
        fprintf(stderr, "client: %s\n", knn_error_message());
        return 1;
    }
    return 0;
}

static void s_teardown(struct s_ctx *c)
{
    if (c->client) {
        if (knn_s3_test_env_clean_prefix(c->client, &c->env, c->prefix) != 0)
            fprintf(stderr, "clean-up of %s: %s\n", c->prefix, knn_error_message());
        knn_s3_client_destroy(c->client);
    }
    c->client = NULL;
}

static void s_key(char *out, size_t size, const struct s_ctx *c, const char *name)
{
    snprintf(out, size, "%s%s", c->prefix, name);
}

/* GET sink that appends into a capped buffer. */
static int s_collect(void *user, const uint8_t *data, size_t len)
{
    return knn_buf_append(user, data, len);
}

static int s_roundtrip(struct s_ctx *c, const char *name, size_t size, uint64_t seed)
{
    char key[1200];
    s_key(key, sizeof(key), c, name);
    uint8_t *data = knn_malloc(size ? size : 1);
    struct knn_buf got = KNN_BUF_INIT(size + 1);
    char *etag = NULL;
    struct knn_s3_object_info info = {0}, head = {0};
    int failed = 1;
    s3t_fill(data, size, seed);
    if (knn_s3_put(&etag, c->client, c->env.bucket, key, data, size, NULL) != 0) {
        fprintf(stderr, "put %s (%zu bytes): %s\n", key, size, knn_error_message());
        goto done;
    }
    if (knn_s3_get(&info, c->client, c->env.bucket, key, NULL, s_collect, &got) != 0) {
        fprintf(stderr, "get %s: %s\n", key, knn_error_message());
        goto done;
    }
    if (knn_s3_head(&head, c->client, c->env.bucket, key) != 0) {
        fprintf(stderr, "head %s: %s\n", key, knn_error_message());
        goto done;
    }
    if (got.len != size || (size && memcmp(got.data, data, size) != 0)) {
        fprintf(
            stderr, "%s: read back %zu bytes, wrote %zu (first difference at %zu)\n", key, got.len, size,
            got.len == size ? knn_test_first_difference(got.data, data, size) : 0);
        goto done;
    }
    if (info.size != size || head.size != size || strcmp(info.etag, etag) != 0 || strcmp(head.etag, etag) != 0) {
        fprintf(
            stderr, "%s: sizes %llu/%llu, ETags put %s get %s head %s\n", key, (unsigned long long)info.size,
            (unsigned long long)head.size, etag, info.etag, head.etag);
        goto done;
    }
    failed = 0;
done:
    knn_free(data);
    knn_free(etag);
    knn_buf_clean_up(&got);
    knn_s3_object_info_clean_up(&info);
    knn_s3_object_info_clean_up(&head);
    return failed;
}

int test_put_get_sizes(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.put_get_sizes", NULL);
    if (rc)
        return rc;
    static const size_t sizes[] = {0, 1, 2, 1000, 5 * MIB - 1, 5 * MIB, 5 * MIB + 1};
    int failed = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && !failed; i++) {
        char name[64];
        snprintf(name, sizeof(name), "size-%zu.bin", sizes[i]);
        failed = s_roundtrip(&c, name, sizes[i], i + 1);
    }
    s_teardown(&c);
    ASSERT_FALSE(failed);
    return 0;
}

int test_multipart_boundaries(void)
{
    /* With 5 MiB parts: exactly one part (single PUT), one byte over (2 parts), and 3 parts. */
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    o.part_size = 5 * MIB;
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.multipart_boundaries", &o);
    if (rc)
        return rc;
    int failed = s_roundtrip(&c, "one-part.bin", 5 * MIB - 1, 11) ||
                 s_roundtrip(&c, "two-parts.bin", 5 * MIB + 1, 12) ||
                 s_roundtrip(&c, "three-parts.bin", 15 * MIB - 7, 13);
    char key[512];
    struct knn_s3_object_info head = {0};
    s_key(key, sizeof(key), &c, "two-parts.bin");
    if (!failed && knn_s3_head(&head, c.client, c.env.bucket, key) == 0) {
        failed = strstr(head.etag, "-2\"") == NULL; /* a multipart ETag: "<md5 of md5s>-2" */
        if (failed)
            fprintf(stderr, "two-parts.bin has ETag %s, expected a 2-part multipart ETag\n", head.etag);
    }
    knn_s3_object_info_clean_up(&head);
    s_teardown(&c);
    ASSERT_FALSE(failed);
    return 0;
}

int test_special_keys(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.special_keys", NULL);
    if (rc)
        return rc;
    static const char *const names[] = {
        "with space.txt",
        "two  spaces",
        "plus+sign.txt",
        "percent%41.txt",
        "tilde~under_score-dash.dot",
        "bang!quote'paren()star*",
        "unicode-\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80.bin",
        "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/deep.bin",
        "equals=and&amp;question?hash#",
        "colon:semi;comma,at@dollar$",
        "double//slash",
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !failed; i++)
        failed = s_roundtrip(&c, names[i], 100 + i, 100 + i);
    /* The listing returns every key exactly, decoded. */
    struct knn_s3_object_list list;
    if (!failed && knn_s3_list(&list, c.client, c.env.bucket, c.prefix) == 0) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            char key[512];
            s_key(key, sizeof(key), &c, names[i]);
            int found = 0;
            for (size_t k = 0; k < list.count; k++)
                found |= strcmp(list.items[k].key, key) == 0 && list.items[k].size == 100 + i;
            if (!found) {
                fprintf(stderr, "'%s' missing from the listing\n", key);
                failed = 1;
            }
        }
        if (list.count != sizeof(names) / sizeof(names[0])) {
            fprintf(stderr, "listing has %zu keys\n", list.count);
            failed = 1;
        }
        knn_s3_object_list_clean_up(&list);
    } else if (!failed) {
        fprintf(stderr, "list: %s\n", knn_error_message());
        failed = 1;
    }
    s_teardown(&c);
    ASSERT_FALSE(failed);
    return 0;
}

/* Many small PUTs on a few threads (the client is thread-safe). */
struct s_putter {
    struct s_ctx *c;
    int first, step, count;
    int rc;
    char message[512];
};

static void *s_put_many(void *arg)
{
    struct s_putter *p = arg;
    for (int i = p->first; i < p->count; i += p->step) {
        char key[512], body[32];
        snprintf(key, sizeof(key), "%skey-%05d", p->c->prefix, i);
        int n = snprintf(body, sizeof(body), "%d", i);
        if ((p->rc = knn_s3_put(NULL, p->c->client, p->c->env.bucket, key, body, (size_t)n, NULL)) != 0) {
            snprintf(p->message, sizeof(p->message), "%s", knn_error_message());
            break;
        }
    }
    return NULL;
}

struct s_list_check {
    int next;
    int prefixes;
    int failed;
    const char *prefix;
};

static int s_list_check_cb(void *user, const struct knn_s3_list_entry *e)
{
    struct s_list_check *lc = user;
    if (!e->info) {
        lc->prefixes++;
        return 0;
    }
    char expected[512];
    char body[32];
    snprintf(expected, sizeof(expected), "%skey-%05d", lc->prefix, lc->next);
    int n = snprintf(body, sizeof(body), "%d", lc->next);
    if (strcmp(e->info->key, expected) != 0 || e->info->size != (uint64_t)n || !e->info->etag || !e->info->etag[0]) {
        fprintf(
            stderr, "entry %d: '%s' (%llu bytes), expected '%s'\n", lc->next, e->info->key,
            (unsigned long long)e->info->size, expected);
        lc->failed = 1;
        return KNN_EMISMATCH;
    }
    lc->next++;
    return 0;
}

int test_list_over_1000_keys(void)
{
    enum { N = 1234, THREADS = 4 };
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.list_1234", NULL);
    if (rc)
        return rc;
    pthread_t th[THREADS];
    struct s_putter p[THREADS];
    for (int t = 0; t < THREADS; t++) {
        p[t] = (struct s_putter){&c, t, THREADS, N, 0, ""};
        pthread_create(&th[t], NULL, s_put_many, &p[t]);
    }
    int failed = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        if (p[t].rc) {
            fprintf(stderr, "put: %s\n", p[t].message);
            failed = 1;
        }
    }
    struct s_list_check lc = {0, 0, 0, c.prefix};
    if (!failed) {
        rc = knn_s3_list_each(c.client, c.env.bucket, c.prefix, NULL, s_list_check_cb, &lc);
        if (rc || lc.next != N) {
            fprintf(stderr, "listing: rc %d, %d of %d keys: %s\n", rc, lc.next, N, knn_error_message());
            failed = 1;
        }
    }
    /* With a delimiter at the parent: one common prefix, no objects. */
    if (!failed) {
        char parent[256];
        snprintf(parent, sizeof(parent), "%s", c.prefix);
        parent[strlen(parent) - 1] = '\0';
        char *slash = strrchr(parent, '/');
        slash[1] = '\0';
        struct s_list_check pc = {0, 0, 0, c.prefix};
        rc = knn_s3_list_each(c.client, c.env.bucket, parent, "/", s_list_check_cb, &pc);
        if (rc || pc.prefixes < 1 || pc.next != 0) {
            fprintf(
                stderr, "delimited listing of %s: rc %d, %d prefixes, %d objects\n", parent, rc, pc.prefixes, pc.next);
            failed = 1;
        }
    }
    s_teardown(&c);
    ASSERT_FALSE(failed);
    return 0;
}

int test_get_ranges(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.get_ranges", NULL);
    if (rc)
        return rc;
    size_t size = 3 * MIB + 17;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 77);
    char key[512];
    s_key(key, sizeof(key), &c, "ranges.bin");
    int failed = knn_s3_put(NULL, c.client, c.env.bucket, key, data, size, NULL) != 0;
    static const struct {
        uint64_t off, len;
    } ranges[] = {{0, 1}, {0, 10}, {5, 100}, {1000000, MIB}, {3 * MIB, 17}, {3 * MIB + 16, 1}, {3 * MIB, UINT64_MAX}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]) && !failed; i++) {
        struct knn_buf got = KNN_BUF_INIT(size);
        struct knn_s3_get_options o = KNN_S3_GET_OPTIONS_INIT;
        o.offset = ranges[i].off;
        o.length = ranges[i].len;
        uint64_t want = ranges[i].len == UINT64_MAX ? size - ranges[i].off : ranges[i].len;
        if (knn_s3_get(NULL, c.client, c.env.bucket, key, &o, s_collect, &got) != 0 || got.len != want ||
            memcmp(got.data, data + ranges[i].off, want) != 0) {
            fprintf(stderr, "range %zu: %s\n", i, knn_error_message());
            failed = 1;
        }
        knn_buf_clean_up(&got);
    }
    /* A range past the end is an error, not an empty success. */
    if (!failed) {
        struct knn_buf got = KNN_BUF_INIT(16);
        struct knn_s3_get_options o = KNN_S3_GET_OPTIONS_INIT;
        o.offset = size + 10;
        o.length = 5;
        rc = knn_s3_get(NULL, c.client, c.env.bucket, key, &o, s_collect, &got);
        if (rc != KNN_ERANGE) {
            fprintf(stderr, "range past the end: rc %d (%s)\n", rc, knn_error_message());
            failed = 1;
        }
        knn_buf_clean_up(&got);
    }
    knn_free(data);
    s_teardown(&c);
    ASSERT_FALSE(failed);
    return 0;
}

/* 64 MiB through the streaming upload in odd-sized writes, read back three ways. */
struct s_verify {
    const uint8_t *expected;
    size_t size;
    uint64_t pos;
    int bad;
    size_t chunks;
};

static int s_verify_data(void *user, const uint8_t *data, size_t len)
{
    struct s_verify *v = user;
    if (v->pos + len > v->size || memcmp(v->expected + v->pos, data, len) != 0) {
        v->bad = 1;
        return KNN_EMISMATCH;
    }
    v->pos += len;
    v->chunks++;
    return 0;
}

static int s_verify_chunk(void *user, const struct knn_s3_chunk *ch)
{
    struct s_verify *v = user;
    if (ch->offset != v->pos)
        return KNN_EMISMATCH;
    return s_verify_data(user, ch->data, ch->len);
}

int test_multipart_64mib(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.multipart_64mib", NULL);
    if (rc)
        return rc;
    size_t size = 64 * MIB;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 64);
    char key[512];
    s_key(key, sizeof(key), &c, "big.bin");
    int failed = 0;
    struct knn_s3_upload *u = NULL;
    char *etag = NULL;
    ASSERT_OK(knn_s3_upload_new(&u, c.client, c.env.bucket, key, NULL));
    for (size_t off = 0, step = 1; off < size && !failed; off += step, step = step * 3 + 7) {
        if (step > 3 * MIB)
            step = 1 + (step % 1000003);
        size_t n = off + step > size ? size - off : step;
        if (knn_s3_upload_write(u, data + off, n) != 0) {
            fprintf(stderr, "write: %s\n", knn_error_message());
            failed = 1;
        }
    }
    uint64_t written = 0, uploaded = 0;
    if (!failed && knn_s3_upload_finish(u, &etag) != 0) {
        fprintf(stderr, "finish: %s\n", knn_error_message());
        failed = 1;
    }
    knn_s3_upload_progress(u, &written, &uploaded);
    knn_s3_upload_destroy(u);
    if (!failed && (written != size || uploaded != size || !strstr(etag, "-8\""))) {
        fprintf(
            stderr, "written %llu uploaded %llu etag %s\n", (unsigned long long)written, (unsigned long long)uploaded,
            etag);
        failed = 1;
    }
    /* 1: a streamed GET. */
    struct s_verify v = {data, size, 0, 0, 0};
    if (!failed && (knn_s3_get(NULL, c.client, c.env.bucket, key, NULL, s_verify_data, &v) != 0 || v.pos != size)) {
        fprintf(stderr, "get: %s (at %llu)\n", knn_error_message(), (unsigned long long)v.pos);
        failed = 1;
    }
    /* 2: the reader, 3 MiB ranges, 4 in flight. */
    struct knn_s3_reader *r = NULL;
    struct knn_s3_reader_options ro = {3 * MIB, 4};
    struct s_verify rv = {data, size, 0, 0, 0};
    if (!failed) {
        ASSERT_OK(knn_s3_reader_new(&r, c.client, &ro));
        if (knn_s3_reader_add_key(r, c.env.bucket, key) != 0 || knn_s3_reader_run(r, s_verify_chunk, &rv) != 0 ||
            rv.pos != size || rv.chunks != 22) {
            fprintf(
                stderr, "reader: %s (at %llu, %zu chunks)\n", knn_error_message(), (unsigned long long)rv.pos,
                rv.chunks);
            failed = 1;
        }
        knn_s3_reader_destroy(r);
    }
    /* 3: into a file. */
    char dir[512], path[600];
    if (!failed && knn_test_mkdtemp(dir, sizeof(dir)) == 0) {
        snprintf(path, sizeof(path), "%s/big.bin", dir);
        uint8_t *file = NULL;
        size_t flen = 0;
        if (knn_s3_get_file(c.client, c.env.bucket, key, path) != 0 || knn_test_read_file(path, &file, &flen) != 0 ||
            flen != size || memcmp(file, data, size) != 0) {
            fprintf(stderr, "get_file: %s\n", knn_error_message());
            failed = 1;
        }
        knn_free(file);
        knn_test_rmtree(dir);
    }
    knn_free(etag);
    knn_free(data);
    s_teardown(&c);
    ASSERT_FALSE(failed);
    return 0;
}

/* Many objects of mixed sizes (empty ones too) through one reader, in order. */
int test_reader_many_objects(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.reader_many", NULL);
    if (rc)
        return rc;
    enum { N = 24 };
    static const size_t sizes[N] = {0,       1,      4096, 65536,   65537,       2 * MIB, 0,  3,
                                    1000000, 777777, 5,    MIB - 1, MIB,         MIB + 1, 0,  123456,
                                    42,      2,      0,    300000,  2 * MIB + 5, 7,       99, 1};
    uint8_t *blobs[N];
    struct knn_s3_object_list list = {0};
    int failed = 0;
    for (int i = 0; i < N && !failed; i++) {
        char key[512];
        snprintf(key, sizeof(key), "%sobj-%02d", c.prefix, i);
        blobs[i] = knn_malloc(sizes[i] + 1);
        s3t_fill(blobs[i], sizes[i], 500 + (uint64_t)i);
        failed = knn_s3_put(NULL, c.client, c.env.bucket, key, blobs[i], sizes[i], NULL) != 0;
    }
    ASSERT_OK(knn_s3_list(&list, c.client, c.env.bucket, c.prefix));
    ASSERT_UINT_EQ(N, list.count);
    struct knn_s3_reader *r;
    struct knn_s3_reader_options ro = {MIB, 5}; /* small parts: objects span several */
    ASSERT_OK(knn_s3_reader_new(&r, c.client, &ro));
    for (size_t i = 0; i < list.count; i++)
        ASSERT_OK(knn_s3_reader_add(r, c.env.bucket, &list.items[i]));
    size_t expect_obj = 0;
    uint64_t pos = 0;
    for (;;) {
        struct knn_s3_chunk ch;
        int done;
        if (knn_s3_reader_next(&ch, &done, r) != 0) {
            fprintf(stderr, "next: %s\n", knn_error_message());
            failed = 1;
            break;
        }
        if (done)
            break;
        int first = (ch.flags & KNN_S3_CHUNK_FIRST) != 0, last = (ch.flags & KNN_S3_CHUNK_LAST) != 0;
        if (ch.object_index != expect_obj || ch.offset != pos || first != (pos == 0) ||
            ch.object_size != sizes[expect_obj] || memcmp(ch.data, blobs[expect_obj] + pos, ch.len) != 0 ||
            last != (pos + ch.len == sizes[expect_obj])) {
            fprintf(
                stderr, "chunk of object %zu at %llu (len %zu, flags %d): expected object %zu at %llu\n",
                ch.object_index, (unsigned long long)ch.offset, ch.len, ch.flags, expect_obj, (unsigned long long)pos);
            failed = 1;
            break;
        }
        pos += ch.len;
        if (last) {
            expect_obj++;
            pos = 0;
        }
    }
    uint64_t delivered, total;
    knn_s3_reader_progress(r, &delivered, &total);
    if (!failed && (expect_obj != N || delivered != total || total != list.total_size)) {
        fprintf(
            stderr, "reader ended at object %zu, %llu of %llu bytes\n", expect_obj, (unsigned long long)delivered,
            (unsigned long long)total);
        failed = 1;
    }
    knn_s3_reader_destroy(r);
    knn_s3_object_list_clean_up(&list);
    for (int i = 0; i < N; i++)
        knn_free(blobs[i]);
    s_teardown(&c);
    ASSERT_FALSE(failed);
    return 0;
}

struct s_upload_find {
    const char *key;
    int found;
};

static int s_upload_find_cb(void *user, const struct knn_s3_upload_entry *e)
{
    struct s_upload_find *f = user;
    if (!f->key || strcmp(e->key, f->key) == 0)
        f->found++;
    return 0;
}

int test_upload_abort_leaves_nothing(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.upload_abort", NULL);
    if (rc)
        return rc;
    size_t size = 20 * MIB;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 9);
    char key[512], key2[512];
    s_key(key, sizeof(key), &c, "aborted.bin");
    s_key(key2, sizeof(key2), &c, "destroyed.bin");
    struct knn_s3_upload *u;
    /* Explicit abort after parts went up. */
    ASSERT_OK(knn_s3_upload_new(&u, c.client, c.env.bucket, key, NULL));
    ASSERT_OK(knn_s3_upload_write(u, data, size));
    struct s_upload_find f = {key, 0};
    ASSERT_OK(knn_s3_list_uploads(c.client, c.env.bucket, c.prefix, s_upload_find_cb, &f));
    ASSERT_INT_EQ(1, f.found); /* in progress */
    ASSERT_OK(knn_s3_upload_abort(u));
    ASSERT_ERR(KNN_EINVAL, knn_s3_upload_write(u, data, 10));
    knn_s3_upload_destroy(u);
    /* Destroyed without finish: aborted too. */
    ASSERT_OK(knn_s3_upload_new(&u, c.client, c.env.bucket, key2, NULL));
    ASSERT_OK(knn_s3_upload_write(u, data, size));
    knn_s3_upload_destroy(u);
    struct s_upload_find all = {NULL, 0};
    ASSERT_OK(knn_s3_list_uploads(c.client, c.env.bucket, c.prefix, s_upload_find_cb, &all));
    ASSERT_INT_EQ(0, all.found);
    int exists = 1;
    ASSERT_OK(knn_s3_exists(&exists, c.client, c.env.bucket, key));
    ASSERT_INT_EQ(0, exists);
    ASSERT_OK(knn_s3_exists(&exists, c.client, c.env.bucket, key2));
    ASSERT_INT_EQ(0, exists);
    knn_free(data);
    s_teardown(&c);
    return 0;
}

int test_delete_and_errors(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.errors", NULL);
    if (rc)
        return rc;
    char key[512];
    s_key(key, sizeof(key), &c, "doomed.txt");
    ASSERT_OK(knn_s3_put(NULL, c.client, c.env.bucket, key, "x", 1, NULL));
    int exists = 0;
    ASSERT_OK(knn_s3_exists(&exists, c.client, c.env.bucket, key));
    ASSERT_INT_EQ(1, exists);
    ASSERT_OK(knn_s3_delete(c.client, c.env.bucket, key));
    ASSERT_OK(knn_s3_delete(c.client, c.env.bucket, key)); /* deleting a missing key succeeds */
    struct knn_s3_object_info info;
    ASSERT_ERR(KNN_ES3_NO_SUCH_KEY, knn_s3_head(&info, c.client, c.env.bucket, key));
    struct knn_buf got = KNN_BUF_INIT(16);
    ASSERT_ERR(KNN_ES3_NO_SUCH_KEY, knn_s3_get(NULL, c.client, c.env.bucket, key, NULL, s_collect, &got));
    /* One line: operation, URI, S3 code, message, request id. */
    const char *m = knn_error_message();
    ASSERT_CONTAINS(m, "GetObject s3://");
    ASSERT_CONTAINS(m, "doomed.txt: NoSuchKey");
    ASSERT_CONTAINS(m, "HTTP 404, request id ");
    ASSERT_TRUE(strchr(m, '\n') == NULL);
    ASSERT_ERR(KNN_ES3_NO_SUCH_BUCKET, knn_s3_get(NULL, c.client, "knn-no-such-bucket-x", "k", NULL, s_collect, &got));
    ASSERT_CONTAINS(knn_error_message(), "NoSuchBucket");
    struct knn_s3_object_list list;
    ASSERT_ERR(KNN_ES3_NO_SUCH_BUCKET, knn_s3_list(&list, c.client, "knn-no-such-bucket-x", ""));
    knn_s3_object_list_clean_up(&list);
    knn_buf_clean_up(&got);

    /* A wrong secret: the server checks signatures. The message never shows a secret. */
    struct knn_s3_credentials_provider *bad;
    struct knn_s3_client *bc;
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    ASSERT_OK(knn_s3_credentials_provider_new_static(&bad, c.env.access_key, "not-the-secret-0123456789", NULL));
    o.endpoint_url = c.env.endpoint;
    o.region = c.env.region;
    o.credentials = bad;
    ASSERT_OK(knn_s3_client_new(&bc, &o));
    knn_s3_credentials_provider_release(bad);
    ASSERT_ERR(KNN_ES3_ACCESS_DENIED, knn_s3_put(NULL, bc, c.env.bucket, key, "x", 1, NULL));
    ASSERT_CONTAINS(knn_error_message(), "SignatureDoesNotMatch");
    ASSERT_TRUE(strstr(knn_error_message(), "not-the-secret") == NULL);
    ASSERT_TRUE(strstr(knn_error_message(), c.env.secret_key) == NULL);
    /* The same on a HEAD (no error body): the message says which credentials and what to check. */
    ASSERT_ERR(KNN_ES3_ACCESS_DENIED, knn_s3_exists(&exists, bc, c.env.bucket, key));
    ASSERT_CONTAINS(knn_error_message(), "HeadObject s3://");
    ASSERT_CONTAINS(knn_error_message(), "(HTTP 403, request id ");
    ASSERT_CONTAINS(knn_error_message(), "credentials used: the keys given to the client, access key id ");
    ASSERT_CONTAINS(knn_error_message(), "check the access key id and secret");
    ASSERT_TRUE(strstr(knn_error_message(), "not-the-secret") == NULL);
    knn_s3_client_destroy(bc);

    /* Nothing listens: a network error after the retries, quickly (short backoff). */
    struct knn_s3_client *dead;
    struct knn_s3_client_options d = KNN_S3_CLIENT_OPTIONS_INIT;
    d.endpoint_url = "http://127.0.0.1:9"; /* discard port: nothing there */
    d.max_attempts = 3;
    d.retry_base_ms = 5;
    ASSERT_OK(knn_s3_test_env_client(&dead, &c.env, &d));
    ASSERT_ERR(KNN_ES3_UNREACHABLE, knn_s3_exists(&exists, dead, c.env.bucket, key));
    ASSERT_CONTAINS(knn_error_message(), "HeadObject");
    ASSERT_CONTAINS(knn_error_message(), "3 attempts");
    ASSERT_CONTAINS(knn_error_message(), "check the endpoint URL");
    knn_s3_client_destroy(dead);
    s_teardown(&c);
    return 0;
}

int test_files_roundtrip(void)
{
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.files", NULL);
    if (rc)
        return rc;
    char dir[512], src[600], dst[600], key[512];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(src, sizeof(src), "%s/src.bin", dir);
    snprintf(dst, sizeof(dst), "%s/dst.bin", dir);
    size_t size = 17 * MIB + 3;
    uint8_t *data = knn_malloc(size);
    s3t_fill(data, size, 17);
    FILE *f = fopen(src, "wb");
    ASSERT_TRUE(f && fwrite(data, 1, size, f) == size);
    fclose(f);
    s_key(key, sizeof(key), &c, "file.bin");
    char *etag = NULL;
    ASSERT_OK(knn_s3_put_file(&etag, c.client, c.env.bucket, key, src, NULL));
    ASSERT_TRUE(strstr(etag, "-3\"") != NULL); /* 8 MiB parts */
    ASSERT_OK(knn_s3_get_file(c.client, c.env.bucket, key, dst));
    uint8_t *back = NULL;
    size_t blen = 0;
    ASSERT_OK(knn_test_read_file(dst, &back, &blen));
    ASSERT_MEM_EQ(data, size, back, blen);
    /* A failed download leaves no file behind. */
    char missing[512], dst2[600];
    s_key(missing, sizeof(missing), &c, "missing.bin");
    snprintf(dst2, sizeof(dst2), "%s/never.bin", dir);
    ASSERT_ERR(KNN_ES3_NO_SUCH_KEY, knn_s3_get_file(c.client, c.env.bucket, missing, dst2));
    ASSERT_TRUE(access(dst2, F_OK) != 0);
    knn_free(back);
    knn_free(etag);
    knn_free(data);
    knn_test_rmtree(dir);
    s_teardown(&c);
    return 0;
}

/* A client clock an hour off: the server answers RequestTimeTooSkewed with its Date; the client
 * learns the difference and the retry succeeds. */
static int64_t s_clock_an_hour_late(void *user)
{
    (void)user;
    return (int64_t)time(NULL) - 3600;
}

int test_clock_skew_corrected(void)
{
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    o.clock = s_clock_an_hour_late;
    o.retry_base_ms = 10;
    struct s_ctx c = {0};
    int rc = s_setup(&c, "s3.clock_skew", &o);
    if (rc)
        return rc;
    char key[512];
    s_key(key, sizeof(key), &c, "skewed.txt");
    ASSERT_OK(knn_s3_put(NULL, c.client, c.env.bucket, key, "on time", 7, NULL));
    struct knn_buf got = KNN_BUF_INIT(64);
    ASSERT_OK(knn_s3_get(NULL, c.client, c.env.bucket, key, NULL, s_collect, &got));
    ASSERT_MEM_EQ("on time", 7, got.data, got.len);
    knn_buf_clean_up(&got);
    /* With a single attempt there is no second chance: the error names the cause. */
    struct knn_s3_client *once;
    o.max_attempts = 1;
    ASSERT_OK(knn_s3_test_env_client(&once, &c.env, &o));
    ASSERT_ERR(KNN_ES3_RETRIES_EXHAUSTED, knn_s3_put(NULL, once, c.env.bucket, key, "x", 1, NULL));
    ASSERT_CONTAINS(knn_error_message(), "RequestTimeTooSkewed");
    knn_s3_client_destroy(once);
    s_teardown(&c);
    return 0;
}
