/*
 * FAISS index files: the byte layout (from FAISS's index_write.cpp, restated in index_io.c),
 * round trips of every type, and a reader that refuses truncated or corrupt files with the byte
 * offset and the field, without allocating what the file cannot hold.
 */
#include "knn_test.h"

#include "ivf_test_util.h"

#include "knn/algorithms/index.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int s_read(struct knn_index **out, const uint8_t *data, size_t len)
{
    struct iu_mem m = {(uint8_t *)data, len, len, 0};
    return knn_index_read_faiss(out, iu_mem_read, &m, len);
}

static void s_put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint64_t s_get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A trained and filled index of the given kind over n clustered vectors of d floats. */
static int s_make(
    struct knn_index **out, enum knn_index_type type, enum knn_metric metric, size_t d, size_t n, size_t nlist,
    size_t m, size_t nadd)
{
    float *x = malloc(n * d * sizeof(float));
    iu_clustered(x, n, d, 8, 2.0, 301);
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = type;
    o.metric = metric;
    o.dim = d;
    o.nlist = nlist;
    o.pq_m = m;
    o.nprobe = nlist > 2 ? 2 : 1;
    int rc = knn_index_new(out, &o);
    if (rc == 0)
        rc = knn_index_train(*out, n, x);
    if (rc == 0)
        rc = knn_index_add(*out, nadd, x);
    free(x);
    return rc;
}

static int s_serialize(const struct knn_index *index, struct iu_mem *m)
{
    memset(m, 0, sizeof(*m));
    return knn_index_write_faiss(index, iu_mem_write, m);
}

int test_index_file_layout_is_faiss(void)
{
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.dim = 3;
    struct knn_index *index;
    ASSERT_OK(knn_index_new(&index, &o));
    const float x[6] = {1, 2, 3, 4, 5, 6};
    ASSERT_OK(knn_index_add(index, 2, x));
    struct iu_mem m;
    ASSERT_OK(s_serialize(index, &m));
    /* IxF2, i32 d, i64 ntotal, i64 1<<20 twice, u8 is_trained, i32 metric (1 = L2), u64 6, 6 floats */
    uint8_t want[69] = {'I', 'x', 'F', '2', 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    want[16 + 2] = 0x10; /* 1 << 20 little-endian: 00 00 10 00 ... */
    want[24 + 2] = 0x10;
    want[32] = 1;
    want[33] = 1;
    want[37] = 6;
    memcpy(want + 45, x, sizeof(x));
    ASSERT_MEM_EQ(want, sizeof(want), m.data, m.len);
    knn_free(m.data);
    knn_index_destroy(index);

    /* IVFFlat: "IwFl", the same header, u64 nlist, u64 nprobe, the quantizer, no direct map, "ilar" */
    ASSERT_OK(s_make(&index, KNN_INDEX_IVFFLAT, KNN_METRIC_INNER_PRODUCT, 4, 100, 3, 0, 100));
    ASSERT_OK(s_serialize(index, &m));
    ASSERT_MEM_EQ("IwFl", 4, m.data, 4);
    ASSERT_UINT_EQ(100, s_get_u64(m.data + 8));
    ASSERT_INT_EQ(0, m.data[33]); /* metric: inner product */
    ASSERT_UINT_EQ(3, s_get_u64(m.data + 37));
    ASSERT_UINT_EQ(2, s_get_u64(m.data + 45));
    ASSERT_MEM_EQ("IxFI", 4, m.data + 53, 4);
    size_t q_end = 53 + 37 + 8 + 3 * 4 * 4;
    ASSERT_INT_EQ(0, m.data[q_end]);                  /* direct map type: none */
    ASSERT_UINT_EQ(0, s_get_u64(m.data + q_end + 1)); /* its empty array */
    ASSERT_MEM_EQ("ilar", 4, m.data + q_end + 9, 4);
    ASSERT_UINT_EQ(3, s_get_u64(m.data + q_end + 13));
    ASSERT_UINT_EQ(16, s_get_u64(m.data + q_end + 21)); /* code size: 4 floats */
    knn_free(m.data);
    knn_index_destroy(index);
    return 0;
}

int test_index_round_trip_every_type(void)
{
    static const struct {
        enum knn_index_type type;
        enum knn_metric metric;
        size_t nlist, m, nadd;
    } cases[] = {
        {KNN_INDEX_FLAT, KNN_METRIC_L2, 0, 0, 500},
        {KNN_INDEX_FLAT, KNN_METRIC_INNER_PRODUCT, 0, 0, 500},
        {KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 16, 0, 500},
        {KNN_INDEX_IVFFLAT, KNN_METRIC_INNER_PRODUCT, 16, 0, 500},
        {KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 64, 0, 10}, /* mostly empty lists: "sprs" sizes */
        {KNN_INDEX_IVFPQ, KNN_METRIC_L2, 16, 4, 500},
        {KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 16, 0, 0}, /* d = 40: row-major lists (d > 32) */
    };
    const size_t n = 500, k = 5;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t d = cases[c].nadd ? 8 : 40, nadd = cases[c].nadd ? cases[c].nadd : 500;
        float *q = malloc(20 * d * sizeof(float));
        iu_clustered(q, 20, d, 8, 2.0, 302);
        struct knn_index *a, *b;
        ASSERT_OK(s_make(&a, cases[c].type, cases[c].metric, d, n, cases[c].nlist, cases[c].m, nadd));
        struct iu_mem m1, m2;
        ASSERT_OK(s_serialize(a, &m1));
        ASSERT_OK(s_read(&b, m1.data, m1.len));
        ASSERT_INT_EQ(cases[c].type, knn_index_get_options(b)->type);
        ASSERT_INT_EQ(cases[c].metric, knn_index_get_options(b)->metric);
        ASSERT_UINT_EQ(nadd, knn_index_ntotal(b));
        ASSERT_OK(s_serialize(b, &m2));
        ASSERT_MEM_EQ(m1.data, m1.len, m2.data, m2.len);
        float da[20 * 5], db[20 * 5];
        int64_t ia[20 * 5], ib[20 * 5];
        ASSERT_OK(knn_index_search(a, 20, q, k, da, ia, NULL));
        ASSERT_OK(knn_index_search(b, 20, q, k, db, ib, NULL));
        ASSERT_MEM_EQ(ia, sizeof(ia), ib, sizeof(ib));
        ASSERT_MEM_EQ(da, sizeof(da), db, sizeof(db));
        knn_free(m1.data);
        knn_free(m2.data);
        knn_index_destroy(a);
        knn_index_destroy(b);
        free(q);
    }
    return 0;
}

/* Every proper prefix of a valid file is refused, and the message says where. */
int test_index_reader_refuses_every_truncation(void)
{
    static const enum knn_index_type types[] = {KNN_INDEX_FLAT, KNN_INDEX_IVFFLAT, KNN_INDEX_IVFPQ};
    for (size_t t = 0; t < 3; t++) {
        struct knn_index *a, *b = NULL;
        ASSERT_OK(s_make(&a, types[t], KNN_METRIC_L2, 4, 300, 3, 2, 40));
        struct iu_mem m;
        ASSERT_OK(s_serialize(a, &m));
        for (size_t len = 0; len < m.len;
             len += (types[t] == KNN_INDEX_IVFPQ && len > 200 && len < m.len - 400) ? 61 : 1) {
            knn_error_clear();
            int rc = s_read(&b, m.data, len);
            if (rc != KNN_ETRUNCATED)
                FAIL(
                    "type %d, %zu of %zu bytes: rc %d (%s), expected KNN_ETRUNCATED", (int)types[t], len, m.len, rc,
                    knn_error_message());
            ASSERT_TRUE(b == NULL);
            ASSERT_CONTAINS(knn_error_message(), "byte ");
        }
        knn_free(m.data);
        knn_index_destroy(a);
    }
    return 0;
}

/* Read a copy of `file` with `patch` applied at `off`; expect `code` and `needle` in the message. */
static int s_expect_refused(
    const struct iu_mem *file, size_t off, const void *patch, size_t plen, size_t new_len, int code, const char *needle)
{
    uint8_t *copy = malloc(file->len + 16);
    memcpy(copy, file->data, file->len);
    memcpy(copy + off, patch, plen);
    struct knn_index *b = NULL;
    knn_error_clear();
    int rc = s_read(&b, copy, new_len ? new_len : file->len);
    free(copy);
    if (rc != code || b != NULL) {
        fprintf(stderr, "patch at %zu: rc %d (%s), expected %d\n", off, rc, knn_error_message(), code);
        knn_index_destroy(b);
        return 0;
    }
    if (!strstr(knn_error_message(), needle)) {
        fprintf(stderr, "patch at %zu: \"%s\" does not say \"%s\"\n", off, knn_error_message(), needle);
        return 0;
    }
    return 1;
}

int test_index_reader_refuses_corrupt_fields(void)
{
    struct knn_index *a;
    struct iu_mem f;
    const uint64_t huge = (uint64_t)1 << 40;
    int32_t i32;

    /* Flat (d = 4, 40 vectors) */
    ASSERT_OK(s_make(&a, KNN_INDEX_FLAT, KNN_METRIC_L2, 4, 300, 0, 0, 40));
    ASSERT_OK(s_serialize(a, &f));
    knn_index_destroy(a);
    ASSERT_TRUE(s_expect_refused(&f, 0, "XyZw", 4, 0, KNN_EUNSUPPORTED, "byte 0: index fourcc \"XyZw\""));
    i32 = -4;
    ASSERT_TRUE(s_expect_refused(&f, 4, &i32, 4, 0, KNN_EFORMAT, "byte 4: index header: d"));
    ASSERT_TRUE(s_expect_refused(&f, 8, &huge, 8, 0, KNN_EFORMAT, "byte 37: Flat vectors: count"));
    {
        /* a huge count that agrees with the header: refused before anything is allocated */
        uint8_t *copy = malloc(f.len);
        memcpy(copy, f.data, f.len);
        s_put_u64(copy + 8, huge);
        s_put_u64(copy + 37, huge * 4);
        struct knn_index *b = NULL;
        ASSERT_ERR(KNN_ETRUNCATED, s_read(&b, copy, f.len));
        ASSERT_CONTAINS(knn_error_message(), "byte 45: Flat vectors");
        free(copy);
    }
    i32 = 7;
    ASSERT_TRUE(s_expect_refused(&f, 33, &i32, 4, 0, KNN_EUNSUPPORTED, "byte 33: index header: metric_type 7"));
    ASSERT_TRUE(s_expect_refused(&f, 32, "\x02", 1, 0, KNN_EFORMAT, "byte 32: index header: is_trained"));
    float nan = NAN;
    ASSERT_TRUE(s_expect_refused(&f, 45 + 4 * 5, &nan, 4, 0, KNN_ERANGE, "Flat vectors"));
    ASSERT_TRUE(s_expect_refused(&f, f.len, "!", 1, f.len + 1, KNN_EFORMAT, "1 bytes follow the end of the index"));
    knn_free(f.data);

    /* IVFFlat (d = 4, nlist = 3, 40 vectors: "full" sizes) */
    ASSERT_OK(s_make(&a, KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 4, 300, 3, 0, 40));
    ASSERT_OK(s_serialize(a, &f));
    knn_index_destroy(a);
    const size_t q_end = 53 + 45 + 3 * 16, il = q_end + 9, sizes = il + 32, lists = sizes + 24;
    ASSERT_TRUE(s_expect_refused(&f, 37, &huge, 8, 0, KNN_EFORMAT, "byte 37: IVF: nlist"));
    uint64_t many = 1000;
    ASSERT_TRUE(s_expect_refused(&f, 37, &many, 8, 0, KNN_ETRUNCATED, "byte 37: IVF: nlist: 1000 centroids"));
    ASSERT_TRUE(s_expect_refused(&f, 53, "IwFl", 4, 0, KNN_EUNSUPPORTED, "an IVF quantizer must be a Flat index"));
    ASSERT_TRUE(s_expect_refused(&f, q_end, "\x05", 1, 0, KNN_EFORMAT, "IVF direct map: type"));
    ASSERT_TRUE(s_expect_refused(&f, il, "ilzz", 4, 0, KNN_EUNSUPPORTED, "inverted lists: type \"ilzz\""));
    ASSERT_TRUE(s_expect_refused(&f, il + 20, "half", 4, 0, KNN_EFORMAT, "size encoding \"half\""));
    ASSERT_TRUE(s_expect_refused(&f, sizes, &huge, 8, 0, KNN_ETRUNCATED, "inverted lists: list 0 has 1099511627776"));
    {
        /* list sizes that do not add up to ntotal */
        uint8_t *copy = malloc(f.len);
        memcpy(copy, f.data, f.len);
        s_put_u64(copy + sizes, s_get_u64(copy + sizes) - 1);
        struct knn_index *b = NULL;
        ASSERT_ERR(KNN_EFORMAT, s_read(&b, copy, f.len));
        ASSERT_CONTAINS(knn_error_message(), "the header says ntotal = 40");
        free(copy);
    }
    {
        /* an id out of range, and an id twice */
        size_t n0 = s_get_u64(f.data + sizes);
        ASSERT_TRUE(n0 > 0);
        size_t id_at = lists + n0 * 16;
        int64_t bad = 40;
        ASSERT_TRUE(s_expect_refused(&f, id_at, &bad, 8, 0, KNN_EFORMAT, "is outside [0, ntotal)"));
        if (n0 >= 2) {
            int64_t first;
            memcpy(&first, f.data + id_at, 8);
            ASSERT_TRUE(s_expect_refused(&f, id_at + 8, &first, 8, 0, KNN_EFORMAT, "appears twice"));
        }
    }
    knn_free(f.data);

    /* IVFPQ: only 8-bit codes */
    ASSERT_OK(s_make(&a, KNN_INDEX_IVFPQ, KNN_METRIC_L2, 4, 300, 3, 2, 40));
    ASSERT_OK(s_serialize(a, &f));
    knn_index_destroy(a);
    uint64_t four = 4, three = 3;
    ASSERT_TRUE(s_expect_refused(&f, q_end + 9 + 1 + 8 + 16, &four, 8, 0, KNN_EUNSUPPORTED, "nbits = 4"));
    ASSERT_TRUE(s_expect_refused(&f, q_end + 9 + 1 + 8 + 8, &three, 8, 0, KNN_EFORMAT, "product quantizer: M"));
    ASSERT_TRUE(s_expect_refused(&f, q_end + 9 + 1 + 8 + 8, &four, 8, 0, KNN_EFORMAT, "IVFPQ: code_size"));
    knn_free(f.data);
    return 0;
}

int test_index_file_wrappers(void)
{
    char dir[1024], path[2048];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    struct knn_index *a, *b;
    ASSERT_OK(s_make(&a, KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 4, 300, 3, 0, 300));
    snprintf(path, sizeof(path), "%s/x.index", dir);
    ASSERT_OK(knn_index_write_faiss_file(a, path));
    ASSERT_OK(knn_index_read_faiss_file(&b, path));
    ASSERT_UINT_EQ(300, knn_index_ntotal(b));
    knn_index_destroy(b);
    snprintf(path, sizeof(path), "%s/missing.index", dir);
    ASSERT_ERR(KNN_ENOTFOUND, knn_index_read_faiss_file(&b, path));
    ASSERT_CONTAINS(knn_error_message(), "missing.index");
    knn_index_destroy(a);
    knn_test_rmtree(dir);
    return 0;
}
