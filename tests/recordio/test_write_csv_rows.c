/* Writers (byte-exact against the SDK), CSV lines and float formatting, and the row decoder. */
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/recordio/csv.h"
#include "knn/recordio/record.h"
#include "knn/recordio/rows.h"
#include "knn/recordio/writer.h"
#include "knn_test.h"
#include "test_recordio_util.h"

#include <math.h>
#include <openssl/sha.h>
#include <stdlib.h>

static enum knn_recordio_dtype s_dtype(const char *name)
{
    if (strcmp(name, "float64") == 0)
        return KNN_RECORDIO_FLOAT64;
    if (strcmp(name, "int32") == 0)
        return KNN_RECORDIO_INT32;
    return KNN_RECORDIO_FLOAT32;
}

/* JSON numbers -> an array of dtype (float, double or int32_t), knn_malloc'ed. */
static void *s_array(const json_t *a, enum knn_recordio_dtype dtype)
{
    size_t n = json_array_size(a);
    void *out = knn_malloc_array(n ? n : 1, 8);
    for (size_t i = 0; out && i < n; i++) {
        double v = rt_json_number(json_array_get(a, i));
        if (dtype == KNN_RECORDIO_FLOAT32)
            ((float *)out)[i] = (float)v;
        else if (dtype == KNN_RECORDIO_FLOAT64)
            ((double *)out)[i] = v;
        else
            ((int32_t *)out)[i] = (int32_t)json_integer_value(json_array_get(a, i));
    }
    return out;
}

static uint64_t *s_u64s(const json_t *a)
{
    size_t n = json_array_size(a);
    uint64_t *out = knn_malloc_array(n ? n : 1, sizeof(uint64_t));
    for (size_t i = 0; out && i < n; i++)
        out[i] = (uint64_t)json_integer_value(json_array_get(a, i));
    return out;
}

static void s_sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* From the values in each fixture's JSON, the writer produces the SDK's file: same sha256. */
int test_writer_reproduces_fixtures(void)
{
    for (const char *const *name = rt_small_fixtures; *name; name++) {
        struct rt_fixture f;
        ASSERT_OK(rt_fixture_load(&f, *name));
        enum knn_recordio_dtype fd = s_dtype(json_string_value(json_object_get(f.json, "dtype")));
        bool has_label = json_is_true(json_object_get(f.json, "has_label"));
        enum knn_recordio_dtype ld =
            has_label ? s_dtype(json_string_value(json_object_get(f.json, "label_dtype"))) : KNN_RECORDIO_FLOAT32;
        const json_t *records = json_object_get(f.json, "records");
        struct knn_buf out = KNN_BUF_INIT((size_t)1 << 30);
        for (size_t i = 0; i < json_array_size(records); i++) {
            const json_t *r = json_array_get(records, i);
            void *values = s_array(json_object_get(r, "values"), fd);
            uint64_t *keys = s_u64s(json_object_get(r, "keys"));
            uint64_t *shape = s_u64s(json_object_get(r, "shape"));
            json_t *label_array = json_pack("[O]", json_object_get(r, "label"));
            void *label = has_label ? s_array(label_array, ld) : NULL;
            ASSERT_TRUE(values && keys && shape && (label || !has_label));
            struct knn_recordio_entry fe = {
                "values",
                {fd, values, json_array_size(json_object_get(r, "values")), keys,
                 json_array_size(json_object_get(r, "keys")), shape, json_array_size(json_object_get(r, "shape"))}};
            struct knn_recordio_entry le = {"values", {ld, label, 1, NULL, 0, NULL, 0}};
            ASSERT_OK(knn_recordio_write_record(&out, &fe, 1, &le, has_label ? 1 : 0));
            json_decref(label_array);
            knn_free(values);
            knn_free(keys);
            knn_free(shape);
            knn_free(label);
        }
        char hex[65];
        s_sha256_hex(hex, out.data, out.len);
        if (strcmp(hex, json_string_value(json_object_get(f.json, "sha256"))) != 0) {
            ASSERT_MEM_EQ(f.data, f.len, out.data, out.len); /* says where */
            FAIL("%s: sha256 %s differs", *name, hex);
        }
        knn_buf_clean_up(&out);
        rt_fixture_clean_up(&f);
    }
    return 0;
}

struct s_big_rewrite {
    struct knn_buf out;
    size_t rows;
};

static int s_rewrite_batch(void *user, const float *features, const float *labels, size_t n)
{
    struct s_big_rewrite *w = user;
    for (size_t i = 0; i < n; i++) {
        int rc = knn_recordio_write_dense(&w->out, features + i * 128, 128, &labels[i]);
        if (rc)
            return rc;
    }
    w->rows += n;
    return 0;
}

/* big_dense.rec decoded by the row decoder and written back is the SDK's file (sha256). */
int test_writer_big_dense_roundtrip(void)
{
    struct rt_fixture f;
    ASSERT_OK(rt_fixture_load(&f, "big_dense"));
    struct s_big_rewrite w = {KNN_BUF_INIT((size_t)1 << 30), 0};
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.feature_dim = 128;
    o.batch_rows = 999;
    struct knn_recordio_rows *rows;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_rewrite_batch, &w));
    for (size_t off = 0; off < f.len; off += 65536)
        ASSERT_OK(knn_recordio_rows_feed(rows, f.data + off, f.len - off < 65536 ? f.len - off : 65536));
    ASSERT_OK(knn_recordio_rows_finish(rows));
    ASSERT_UINT_EQ(20000, knn_recordio_rows_count(rows));
    knn_recordio_rows_destroy(rows);
    ASSERT_UINT_EQ(20000, w.rows);
    char hex[65];
    s_sha256_hex(hex, w.out.data, w.out.len);
    ASSERT_STR_EQ(json_string_value(json_object_get(f.json, "sha256")), hex);
    knn_buf_clean_up(&w.out);
    rt_fixture_clean_up(&f);
    return 0;
}

/* Writer argument checks. */
int test_writer_errors(void)
{
    struct knn_buf b = KNN_BUF_INIT(64);
    float v[32] = {0};
    ASSERT_ERR(KNN_ETOOBIG, knn_recordio_write_dense(&b, v, 32, NULL)); /* over the buffer's cap */
    ASSERT_UINT_EQ(0, b.len);
    ASSERT_ERR(KNN_EINVAL, knn_recordio_write_dense(&b, NULL, 3, NULL));
    struct knn_recordio_entry e = {"values", {KNN_RECORDIO_BYTES, v, 1, NULL, 0, NULL, 0}};
    ASSERT_ERR(KNN_EINVAL, knn_recordio_write_record(&b, &e, 1, NULL, 0));
    ASSERT_ERR(KNN_ETOOBIG, knn_recordio_write_frame(&b, v, (size_t)1 << 29));
    /* Zero columns: an empty float32_tensor submessage, as the SDK writes. */
    ASSERT_OK(knn_recordio_write_dense(&b, NULL, 0, NULL));
    uint8_t want[24];
    size_t n = rt_hex(want, sizeof(want), "0a 23 d7 ce 0e 00 00 00 0a 0c 0a 06 76 61 6c 75 65 73 12 02 12 00 00 00");
    ASSERT_MEM_EQ(want, n, b.data, b.len);
    knn_buf_clean_up(&b);
    return 0;
}

/* Shortest round-trip formatting: every float32 reads back to the same bits. */
int test_format_float_roundtrip(void)
{
    char buf[KNN_RECORDIO_FLOAT_CHARS];
    struct {
        float v;
        const char *s;
    } fixed[] = {
        {0.0f, "0"},
        {-0.0f, "-0"},
        {1.0f, "1"},
        {0.1f, "0.1"},
        {-2.5f, "-2.5"},
        {3.14159274f, "3.1415927"},
        {16777216.0f, "16777216"},
        {1e-45f, "1.4013e-45"},
        {3.40282347e38f, "3.4028235e+38"},
        {0.2f, "0.2"},
        {100.0f, "100"},
        {1234567.0f, "1234567"},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        knn_recordio_format_float(buf, fixed[i].v);
        ASSERT_STR_EQ(fixed[i].s, buf);
    }
    /* A sweep of bit patterns (a fixed-seed xorshift): finite ones must round-trip exactly. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t bits = (uint32_t)x;
        float v;
        memcpy(&v, &bits, 4);
        if (!isfinite(v))
            continue;
        size_t n = knn_recordio_format_float(buf, v);
        ASSERT_TRUE(n > 0 && n < KNN_RECORDIO_FLOAT_CHARS);
        float back = strtof(buf, NULL);
        uint32_t bb;
        memcpy(&bb, &back, 4);
        if (bb != bits)
            FAIL("%08x formatted as %s reads back as %08x", bits, buf, bb);
    }
    return 0;
}

/* One CSV line: columns, spaces, CRLF, and errors that name line and column. */
int test_csv_parse_line(void)
{
    float v[4];
    ASSERT_UINT_EQ(4, knn_recordio_csv_count_columns("1,2,3,4", 7));
    ASSERT_OK(knn_recordio_csv_parse_line(v, 4, " 1.5, -2e3 ,3\t,0.25\r", 20, 1));
    ASSERT_TRUE(v[0] == 1.5f && v[1] == -2000.0f && v[2] == 3.0f && v[3] == 0.25f);
    ASSERT_OK(knn_recordio_csv_parse_line(v, 1, "1e-46", 5, 1)); /* underflows to 0: nearest float */
    ASSERT_TRUE(v[0] == 0.0f);
    struct {
        const char *line;
        size_t ncols;
        int code;
        const char *needle;
    } bad[] = {
        {"1,2,3", 4, KNN_EMISMATCH, "line 7: 3 columns, expected 4"},
        {"1,2,3,4,5", 4, KNN_EMISMATCH, "line 7: 5 columns, expected 4"},
        {"1,,3,4", 4, KNN_EFORMAT, "line 7, column 2: empty value"},
        {"1,2,abc,4", 4, KNN_EFORMAT, "line 7, column 3: 'abc' is not a number"},
        {"1,2,3,\"4\"", 4, KNN_EFORMAT, "line 7, column 4: '\"4\"' is not a number"},
        {"1,2,3,4x", 4, KNN_EFORMAT, "column 4: '4x' is not a number"},
        {"nan,2,3,4", 4, KNN_ERANGE, "line 7, column 1: 'nan' is NaN"},
        {"1,-inf,3,4", 4, KNN_ERANGE, "column 2: '-inf' is infinite"},
        {"1,2,1e39,4", 4, KNN_ERANGE, "column 3: '1e39' is outside float32's range"},
        {"0x10,2,3,4", 4, KNN_EFORMAT, "column 1: '0x10' is not a number"},
        {"1 2,2,3,4", 4, KNN_EFORMAT, "column 1: '1 2' is not a number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = knn_recordio_csv_parse_line(v, bad[i].ncols, bad[i].line, strlen(bad[i].line), 7);
        if (rc != bad[i].code)
            FAIL("case %zu (%s): rc %d (%s)", i, bad[i].line, rc, knn_error_message());
        ASSERT_CONTAINS(knn_error_message(), bad[i].needle);
    }
    char long_field[300];
    memset(long_field, '1', sizeof(long_field));
    ASSERT_ERR(KNN_EFORMAT, knn_recordio_csv_parse_line(v, 1, long_field, sizeof(long_field), 2));
    ASSERT_CONTAINS(knn_error_message(), "line 2, column 1: value of 300 characters is too long");
    return 0;
}

/* Row decoder test sink: copies everything it gets. */
struct s_sink {
    size_t dim;
    size_t rows;
    size_t batches;
    size_t max_batch;
    float features[4096];
    float labels[1024];
    int labels_null;
};

static int s_sink(void *user, const float *features, const float *labels, size_t n)
{
    struct s_sink *s = user;
    s->batches++;
    s->max_batch = n > s->max_batch ? n : s->max_batch;
    if ((s->rows + n) * s->dim > 4096 || s->rows + n > 1024)
        return knn_error_set(KNN_ETOOBIG, "test sink full");
    memcpy(s->features + s->rows * s->dim, features, n * s->dim * sizeof(float));
    if (labels)
        memcpy(s->labels + s->rows, labels, n * sizeof(float));
    s->labels_null = labels == NULL;
    s->rows += n;
    return 0;
}

/* Feed `text` to a new CSV row decoder in chunks of `chunk` and finish. */
static int s_csv_rows(
    struct s_sink *s, const char *text, size_t chunk, unsigned label_size, enum knn_recordio_labels lab, size_t dim,
    size_t batch, size_t sink_dim)
{
    memset(s, 0, sizeof(*s));
    s->dim = sink_dim;
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.format = KNN_RECORDIO_CSV;
    o.label_size = label_size;
    o.labels = lab;
    o.feature_dim = dim;
    o.batch_rows = batch;
    struct knn_recordio_rows *rows;
    int rc = knn_recordio_rows_new(&rows, &o, s_sink, s);
    if (rc)
        return rc;
    size_t len = strlen(text);
    for (size_t off = 0; off < len && !rc; off += chunk) {
        rc = knn_recordio_rows_feed(rows, text + off, len - off < chunk ? len - off : chunk);
    }
    if (!rc)
        rc = knn_recordio_rows_finish(rows);
    if (!rc && knn_recordio_rows_feature_dim(rows) != sink_dim)
        rc = knn_error_set(KNN_EINTERNAL, "feature_dim %zu", knn_recordio_rows_feature_dim(rows));
    knn_recordio_rows_destroy(rows);
    return rc;
}

/* CSV through the row decoder: CRLF, no final newline, empty lines, label_size 0/1, any chunking. */
int test_rows_csv(void)
{
    const char *text = "0,1.5,2,3\r\n1,4,5,6\n\n2,7,8,9\r\n1,-1,-2,-3";
    const size_t chunks[] = {1, 2, 3, 7, 4096};
    struct s_sink *s = knn_malloc(sizeof(*s));
    ASSERT_TRUE(s != NULL);
    for (size_t c = 0; c < 5; c++) {
        ASSERT_OK(s_csv_rows(s, text, chunks[c], 1, KNN_RECORDIO_LABELS_REQUIRE, 0, 3, 3));
        ASSERT_UINT_EQ(4, s->rows);
        ASSERT_UINT_EQ(2, s->batches);
        ASSERT_UINT_EQ(3, s->max_batch);
        const float want[12] = {1.5f, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, -3};
        ASSERT_MEM_EQ(want, sizeof(want), s->features, sizeof(want));
        const float wl[4] = {0, 1, 2, 1};
        ASSERT_MEM_EQ(wl, sizeof(wl), s->labels, sizeof(wl));
        /* Inference: label_size 1 with labels ignored drops the column; label_size 0 keeps all 4. */
        ASSERT_OK(s_csv_rows(s, text, chunks[c], 1, KNN_RECORDIO_LABELS_IGNORE, 3, 100, 3));
        ASSERT_UINT_EQ(4, s->rows);
        ASSERT_TRUE(s->labels_null);
        ASSERT_MEM_EQ(want, sizeof(want), s->features, sizeof(want));
        ASSERT_OK(s_csv_rows(s, text, chunks[c], 0, KNN_RECORDIO_LABELS_IGNORE, 0, 100, 4));
        ASSERT_UINT_EQ(4, s->dim);
        ASSERT_TRUE(s->features[4] == 1 && s->features[5] == 4);
    }
    /* Errors name line and column, whatever the chunking. */
    for (size_t c = 0; c < 5; c++) {
        ASSERT_ERR(
            KNN_EFORMAT, s_csv_rows(s, "1,2,3\n4,5,6\n7,x,9\n", chunks[c], 1, KNN_RECORDIO_LABELS_REQUIRE, 2, 1, 2));
        ASSERT_CONTAINS(knn_error_message(), "line 3, column 2: 'x' is not a number");
        ASSERT_UINT_EQ(2, s->rows);
        ASSERT_ERR(KNN_EMISMATCH, s_csv_rows(s, "1,2,3\n\n4,5\n", chunks[c], 0, KNN_RECORDIO_LABELS_IGNORE, 0, 8, 3));
        ASSERT_CONTAINS(knn_error_message(), "line 3: 2 columns, expected 3");
        ASSERT_ERR(KNN_EMISMATCH, s_csv_rows(s, "1,2,3\n4,5,6,7", chunks[c], 0, KNN_RECORDIO_LABELS_IGNORE, 3, 8, 3));
        ASSERT_CONTAINS(knn_error_message(), "line 2: 4 columns, expected 3");
    }
    ASSERT_ERR(KNN_EMISMATCH, s_csv_rows(s, "5\n", 10, 1, KNN_RECORDIO_LABELS_REQUIRE, 0, 8, 0));
    ASSERT_CONTAINS(knn_error_message(), "line 1: 1 column(s), but the first 1 is the label");
    ASSERT_ERR(KNN_EINVAL, s_csv_rows(s, "1\n", 10, 0, KNN_RECORDIO_LABELS_REQUIRE, 0, 8, 0));
    ASSERT_ERR(KNN_EINVAL, s_csv_rows(s, "1\n", 10, 2, KNN_RECORDIO_LABELS_IGNORE, 0, 8, 0));
    /* A line over the cap. */
    memset(s, 0, sizeof(*s));
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.format = KNN_RECORDIO_CSV;
    o.labels = KNN_RECORDIO_LABELS_IGNORE;
    o.max_line_bytes = 16;
    struct knn_recordio_rows *rows;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_sink, s));
    ASSERT_OK(knn_recordio_rows_feed(rows, "1,2\n1,2,3,4,5,6,7", 17));
    ASSERT_ERR(KNN_ETOOBIG, knn_recordio_rows_feed(rows, ",8,9,10\n", 8));
    ASSERT_CONTAINS(knn_error_message(), "line 2 is longer than the cap of 16 bytes");
    ASSERT_ERR(KNN_ETOOBIG, knn_recordio_rows_finish(rows));
    knn_recordio_rows_destroy(rows);
    knn_free(s);
    return 0;
}

/* RecordIO through the row decoder: batches, labels, the sink's error, truncation at finish. */
int test_rows_recordio(void)
{
    struct rt_fixture f;
    ASSERT_OK(rt_fixture_load(&f, "dense_f32_labels"));
    const json_t *records = json_object_get(f.json, "records");
    struct s_sink *s = knn_malloc(sizeof(*s));
    ASSERT_TRUE(s != NULL);
    const size_t chunks[] = {1, 3, 7, 4096, 1 << 20};
    for (size_t c = 0; c < 5; c++) {
        memset(s, 0, sizeof(*s));
        s->dim = 7;
        struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
        o.batch_rows = 32;
        struct knn_recordio_rows *rows;
        ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_sink, s));
        for (size_t off = 0; off < f.len; off += chunks[c])
            ASSERT_OK(knn_recordio_rows_feed(rows, f.data + off, f.len - off < chunks[c] ? f.len - off : chunks[c]));
        ASSERT_UINT_EQ(96, s->rows); /* three full batches so far */
        ASSERT_OK(knn_recordio_rows_finish(rows));
        ASSERT_UINT_EQ(7, knn_recordio_rows_feature_dim(rows));
        knn_recordio_rows_destroy(rows);
        ASSERT_UINT_EQ(100, s->rows);
        ASSERT_UINT_EQ(4, s->batches);
        for (size_t i = 0; i < 100; i++) {
            const json_t *r = json_array_get(records, i);
            for (size_t j = 0; j < 7; j++)
                ASSERT_TRUE(
                    s->features[i * 7 + j] == (float)rt_json_number(json_array_get(json_object_get(r, "values"), j)));
            ASSERT_TRUE(s->labels[i] == (float)rt_json_number(json_object_get(r, "label")));
        }
    }
    rt_fixture_clean_up(&f);

    /* Labels required but absent; ignored when not required (an inference body). */
    ASSERT_OK(rt_fixture_load(&f, "dense_nolabels"));
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.feature_dim = 5;
    struct knn_recordio_rows *rows;
    memset(s, 0, sizeof(*s));
    s->dim = 5;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_sink, s));
    ASSERT_ERR(KNN_EFORMAT, knn_recordio_rows_feed(rows, f.data, f.len));
    ASSERT_CONTAINS(knn_error_message(), "record 0 at offset 0: no label (label[\"values\"]), and labels are required");
    ASSERT_ERR(KNN_EFORMAT, knn_recordio_rows_finish(rows));
    knn_recordio_rows_destroy(rows);
    o.labels = KNN_RECORDIO_LABELS_IGNORE;
    memset(s, 0, sizeof(*s));
    s->dim = 5;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_sink, s));
    ASSERT_OK(knn_recordio_rows_feed(rows, f.data, f.len));
    ASSERT_OK(knn_recordio_rows_finish(rows));
    ASSERT_UINT_EQ(20, s->rows);
    ASSERT_TRUE(s->labels_null);
    knn_recordio_rows_destroy(rows);
    /* Wrong feature_dim. */
    o.feature_dim = 6;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_sink, s));
    ASSERT_ERR(KNN_EMISMATCH, knn_recordio_rows_feed(rows, f.data, f.len));
    ASSERT_CONTAINS(knn_error_message(), "record 0 at offset 0: 5 features, expected feature_dim 6");
    knn_recordio_rows_destroy(rows);
    rt_fixture_clean_up(&f);

    /* A truncated stream is reported by finish; the rows before it were delivered. */
    ASSERT_OK(rt_fixture_load(&f, "corrupt_truncated_last"));
    o.feature_dim = 0;
    memset(s, 0, sizeof(*s));
    s->dim = 5;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_sink, s));
    ASSERT_OK(knn_recordio_rows_feed(rows, f.data, f.len));
    ASSERT_ERR(KNN_ETRUNCATED, knn_recordio_rows_finish(rows));
    ASSERT_CONTAINS(knn_error_message(), "record 19 at offset 836: truncated record");
    ASSERT_UINT_EQ(19, knn_recordio_rows_count(rows));
    knn_recordio_rows_destroy(rows);
    rt_fixture_clean_up(&f);
    knn_free(s);
    return 0;
}

static int s_refuse(void *user, const float *features, const float *labels, size_t n)
{
    (void)features, (void)labels, (void)n;
    ++*(int *)user;
    return knn_error_set(KNN_ECANCELED, "sink says stop");
}

/* The sink's error stops the decoder and comes back unchanged. */
int test_rows_sink_error(void)
{
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.format = KNN_RECORDIO_CSV;
    o.label_size = 1;
    o.batch_rows = 2;
    int calls = 0;
    struct knn_recordio_rows *rows;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_refuse, &calls));
    ASSERT_ERR(KNN_ECANCELED, knn_recordio_rows_feed(rows, "1,2\n3,4\n5,6\n", 12));
    ASSERT_ERR(KNN_ECANCELED, knn_recordio_rows_feed(rows, "7,8\n", 4));
    ASSERT_INT_EQ(1, calls);
    knn_recordio_rows_destroy(rows);
    return 0;
}

/* Data in the other format than declared: the error says which format the bytes are in. */
int test_rows_wrong_format_hint(void)
{
    char path[1024];
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    struct s_sink s;
    struct knn_recordio_rows *rows;
    ASSERT_OK(knn_test_read_file(
        knn_test_fixture_path(path, sizeof(path), "recordio/dense_f32_labels.rec"), &rec, &rec_len));

    /* RecordIO bytes declared as CSV (the SDK's files are often uploaded with a text/csv channel). */
    memset(&s, 0, sizeof(s));
    s.dim = 7;
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.format = KNN_RECORDIO_CSV;
    o.label_size = 1;
    o.feature_dim = 7;
    ASSERT_OK(knn_recordio_rows_new(&rows, &o, s_sink, &s));
    int rc = knn_recordio_rows_feed(rows, rec, rec_len);
    if (rc == 0)
        rc = knn_recordio_rows_finish(rows);
    knn_recordio_rows_destroy(rows);
    knn_free(rec);
    ASSERT_TRUE(rc < 0);
    ASSERT_CONTAINS(knn_error_message(), "line ");
    ASSERT_CONTAINS(knn_error_message(), "it is RecordIO-protobuf, not text/csv");

    /* CSV text declared as RecordIO-protobuf: the bad magic at offset 0 says it looks like text. */
    memset(&s, 0, sizeof(s));
    struct knn_recordio_rows_options p = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    p.format = KNN_RECORDIO_PROTOBUF;
    p.feature_dim = 2;
    s.dim = 2;
    ASSERT_OK(knn_recordio_rows_new(&rows, &p, s_sink, &s));
    rc = knn_recordio_rows_feed(rows, "1,2.5,3\n0,4,5\n", 14);
    knn_recordio_rows_destroy(rows);
    ASSERT_ERR(KNN_ERECORDIO_MAGIC, rc);
    ASSERT_CONTAINS(knn_error_message(), "offset 0: bad magic");
    ASSERT_CONTAINS(knn_error_message(), "its content type is text/csv");

    /* A plain CSV error in real CSV data carries no such hint. */
    ASSERT_TRUE(s_csv_rows(&s, "1,2,3\n0,4\n", 64, 1, KNN_RECORDIO_LABELS_REQUIRE, 2, 16, 2) < 0);
    ASSERT_TRUE(strstr(knn_error_message(), "RecordIO") == NULL);
    return 0;
}
