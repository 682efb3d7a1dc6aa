/* The frame reader and the record decoder against the SDK's fixtures and hand-made edge cases. */
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/recordio/reader.h"
#include "knn/recordio/record.h"
#include "knn/recordio/writer.h"
#include "knn_test.h"
#include "record_impl.h"
#include "test_recordio_util.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>

static const size_t s_chunks[] = {RT_WHOLE, 1, 3, 7, 4096};
#define N_CHUNKS (sizeof(s_chunks) / sizeof(s_chunks[0]))

static uint32_t s_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* Expected dense row of record i from a fixture's JSON (as float32, the way we decode it). */
static int s_expected_row(float *row, size_t cols, const json_t *rec)
{
    const json_t *values = json_object_get(rec, "values");
    const json_t *keys = json_object_get(rec, "keys");
    if (keys) {
        memset(row, 0, cols * sizeof(float));
        for (size_t j = 0; j < json_array_size(keys); j++) {
            size_t k = (size_t)json_integer_value(json_array_get(keys, j));
            if (k >= cols)
                return -1;
            row[k] = (float)rt_json_number(json_array_get(values, j));
        }
        return 0;
    }
    if (json_array_size(values) != cols)
        return -1;
    for (size_t j = 0; j < cols; j++)
        row[j] = (float)rt_json_number(json_array_get(values, j));
    return 0;
}

/* Every small fixture decodes, in every chunking, to exactly its JSON's values. */
int test_fixtures_decode(void)
{
    for (const char *const *name = rt_small_fixtures; *name; name++) {
        struct rt_fixture f;
        ASSERT_OK(rt_fixture_load(&f, *name));
        ASSERT_TRUE(f.json != NULL);
        size_t rows = (size_t)json_integer_value(json_object_get(f.json, "rows"));
        size_t cols = (size_t)json_integer_value(json_object_get(f.json, "cols"));
        bool want_label = json_is_true(json_object_get(f.json, "has_label"));
        const json_t *records = json_object_get(f.json, "records");
        const json_t *offsets = json_object_get(f.json, "record_offsets");
        const json_t *lengths = json_object_get(f.json, "payload_lengths");
        ASSERT_UINT_EQ(rows, json_array_size(records));
        float *row = knn_malloc_array(cols, sizeof(float));
        float *expect = knn_malloc_array(cols, sizeof(float));
        ASSERT_TRUE(row && expect);
        for (size_t c = 0; c < N_CHUNKS; c++) {
            struct rt_records got;
            ASSERT_OK(rt_read_records(&got, f.data, f.len, s_chunks[c], 0));
            if (got.rc)
                FAIL("%s chunk %zu: %s", *name, s_chunks[c], got.msg);
            ASSERT_UINT_EQ(rows, got.n);
            for (size_t i = 0; i < rows; i++) {
                ASSERT_UINT_EQ(i, got.index[i]);
                ASSERT_UINT_EQ(json_integer_value(json_array_get(offsets, i)), got.offset[i]);
                ASSERT_UINT_EQ(json_integer_value(json_array_get(lengths, i)), got.len[i]);
                struct knn_recordio_record rec = {got.data[i], got.len[i], got.index[i], got.offset[i]};
                float label = -1;
                bool has_label = !want_label;
                ASSERT_OK(knn_recordio_record_decode(row, &label, &has_label, &rec, cols));
                const json_t *jr = json_array_get(records, i);
                ASSERT_INT_EQ(0, s_expected_row(expect, cols, jr));
                for (size_t j = 0; j < cols; j++) {
                    if (s_bits(expect[j]) != s_bits(row[j]))
                        FAIL("%s record %zu value %zu: %.9g, expected %.9g", *name, i, j, row[j], expect[j]);
                }
                ASSERT_INT_EQ(want_label, has_label);
                if (want_label)
                    ASSERT_UINT_EQ(s_bits((float)rt_json_number(json_object_get(jr, "label"))), s_bits(label));
                struct knn_recordio_record_info info;
                ASSERT_OK(knn_recordio_record_probe(&info, &rec));
                ASSERT_UINT_EQ(cols, info.width);
                ASSERT_INT_EQ(json_is_true(json_object_get(f.json, "sparse")), info.sparse);
                ASSERT_INT_EQ(want_label, info.has_label);
            }
            rt_records_clean_up(&got);
        }
        knn_free(row);
        knn_free(expect);
        rt_fixture_clean_up(&f);
    }
    return 0;
}

/* big_dense.rec: first and last rows exact, column sums, label sum and counts, in a few chunkings. */
int test_big_dense_decode(void)
{
    struct rt_fixture f;
    ASSERT_OK(rt_fixture_load(&f, "big_dense"));
    size_t rows = (size_t)json_integer_value(json_object_get(f.json, "rows"));
    size_t cols = (size_t)json_integer_value(json_object_get(f.json, "cols"));
    const size_t chunks[] = {7, 4096, 1 << 20};
    for (size_t c = 0; c < 3; c++) {
        struct rt_records got;
        ASSERT_OK(rt_read_records(&got, f.data, f.len, chunks[c], 0));
        ASSERT_INT_EQ(0, got.rc);
        ASSERT_UINT_EQ(rows, got.n);
        double *sums = knn_calloc(cols, sizeof(double));
        float *row = knn_malloc_array(cols, sizeof(float));
        ASSERT_TRUE(sums && row);
        double label_sum = 0;
        size_t counts[10] = {0};
        for (size_t i = 0; i < rows; i++) {
            struct knn_recordio_record rec = {got.data[i], got.len[i], i, got.offset[i]};
            float label;
            bool has_label;
            ASSERT_OK(knn_recordio_record_decode(row, &label, &has_label, &rec, cols));
            ASSERT_TRUE(has_label);
            for (size_t j = 0; j < cols; j++)
                sums[j] += row[j];
            label_sum += label;
            ASSERT_TRUE(label >= 0 && label <= 9 && label == floorf(label));
            counts[(int)label]++;
            const json_t *jr = NULL;
            if (i < 3)
                jr = json_array_get(json_object_get(f.json, "first_rows"), i);
            else if (i == rows - 1)
                jr = json_object_get(f.json, "last_row");
            if (jr) {
                const json_t *vals = json_object_get(jr, "values");
                for (size_t j = 0; j < cols; j++)
                    ASSERT_UINT_EQ(s_bits((float)rt_json_number(json_array_get(vals, j))), s_bits(row[j]));
                ASSERT_UINT_EQ(s_bits((float)rt_json_number(json_object_get(jr, "label"))), s_bits(label));
            }
        }
        const json_t *jsums = json_object_get(f.json, "column_sums");
        for (size_t j = 0; j < cols; j++) {
            double e = rt_json_number(json_array_get(jsums, j));
            ASSERT_NEAR(e, sums[j], 1e-9 * rows + 1e-6 * fabs(e));
        }
        ASSERT_NEAR(rt_json_number(json_object_get(f.json, "label_sum")), label_sum, 0);
        const json_t *jcounts = json_object_get(f.json, "label_counts");
        const char *key;
        json_t *value;
        size_t total = 0;
        json_object_foreach((json_t *)jcounts, key, value)
        {
            int k = (int)strtod(key, NULL);
            ASSERT_TRUE(k >= 0 && k <= 9);
            ASSERT_UINT_EQ(json_integer_value(value), counts[k]);
            total += (size_t)json_integer_value(value);
        }
        ASSERT_UINT_EQ(rows, total);
        knn_free(sums);
        knn_free(row);
        rt_records_clean_up(&got);
    }
    rt_fixture_clean_up(&f);
    return 0;
}

/* Each corrupt variant: its documented number of good records, then its documented error. */
int test_corrupt_variants(void)
{
    char path[1024];
    json_error_t jerr;
    json_t *variants =
        json_load_file(knn_test_fixture_path(path, sizeof(path), "recordio/corrupt_variants.json"), 0, &jerr);
    ASSERT_TRUE(variants != NULL);
    ASSERT_UINT_EQ(4, json_array_size(variants));
    for (size_t v = 0; v < json_array_size(variants); v++) {
        const json_t *jv = json_array_get(variants, v);
        const char *file = json_string_value(json_object_get(jv, "file"));
        size_t good = (size_t)json_integer_value(json_object_get(jv, "good_records_before_error"));
        int code;
        const char *needle;
        if (strcmp(file, "corrupt_bad_magic.rec") == 0) {
            code = KNN_ERECORDIO_MAGIC, needle = "record 2 at offset 88: bad magic 0xdeadbeef";
        } else if (strcmp(file, "corrupt_truncated_last.rec") == 0) {
            code = KNN_ETRUNCATED,
            needle = "record 19 at offset 836: truncated record (length 36, but the data ends after 18";
        } else if (strcmp(file, "corrupt_length_too_big.rec") == 0) {
            code = KNN_ETRUNCATED,
            needle =
                "record 19 at offset 836: truncated record (length 1048576, but the data ends after 36 payload bytes)";
        } else if (strcmp(file, "corrupt_trailing_partial_header.rec") == 0) {
            code = KNN_ETRUNCATED, needle = "record 20 at offset 880: truncated header";
        } else {
            FAIL("unknown corrupt variant %s", file);
        }
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(strlen(file) - 4), file);
        struct rt_fixture f;
        ASSERT_OK(rt_fixture_load(&f, name));
        ASSERT_UINT_EQ(json_integer_value(json_object_get(jv, "size_bytes")), f.len);
        for (size_t c = 0; c < N_CHUNKS; c++) {
            struct rt_records got;
            ASSERT_OK(rt_read_records(&got, f.data, f.len, s_chunks[c], 0));
            if (got.rc != code)
                FAIL("%s chunk %zu: rc %d (%s), expected %d", file, s_chunks[c], got.rc, got.msg, code);
            ASSERT_CONTAINS(got.msg, needle);
            ASSERT_UINT_EQ(good, got.n);
            for (size_t i = 0; i < got.n; i++) {
                struct knn_recordio_record rec = {got.data[i], got.len[i], i, got.offset[i]};
                float row[5];
                ASSERT_OK(knn_recordio_record_decode(row, NULL, NULL, &rec, 5));
            }
            rt_records_clean_up(&got);
        }
        rt_fixture_clean_up(&f);
    }
    json_decref(variants);
    return 0;
}

/* A length over the cap fails at once, before any payload byte is buffered. */
int test_length_over_cap(void)
{
    uint8_t frame[16] = {0x0a, 0x23, 0xd7, 0xce, 0x00, 0x00, 0x00, 0x01}; /* 16 MiB */
    struct rt_records got;
    int64_t before = knn_alloc_outstanding();
    ASSERT_OK(rt_read_records(&got, frame, sizeof(frame), 1, 1 << 20));
    ASSERT_INT_EQ(KNN_ETOOBIG, got.rc);
    ASSERT_CONTAINS(got.msg, "record 0 at offset 0: length 16777216 is over the cap of 1048576 bytes");
    ASSERT_UINT_EQ(0, got.n);
    rt_records_clean_up(&got);
    ASSERT_INT_EQ(before, knn_alloc_outstanding());
    /* The largest 29-bit length with flag bits set is masked, then capped the same way. */
    uint8_t big[8] = {0x0a, 0x23, 0xd7, 0xce, 0xff, 0xff, 0xff, 0x1f};
    ASSERT_OK(rt_read_records(&got, big, sizeof(big), RT_WHOLE, 0));
    ASSERT_INT_EQ(KNN_ETOOBIG, got.rc);
    rt_records_clean_up(&got);
    return 0;
}

/* Append a frame with a continuation flag. */
static void s_put_frame(struct knn_buf *b, unsigned cflag, const void *payload, uint32_t len)
{
    uint32_t h[2] = {KNN_RECORDIO_MAGIC, len | (cflag << 29)};
    knn_buf_append(b, h, 8);
    knn_buf_append(b, payload, len);
    static const uint8_t zeros[3] = {0};
    knn_buf_append(b, zeros, (4 - (len & 3)) & 3);
}

/* dmlc-style split records are reassembled with the magic put back between the pieces. */
int test_split_records(void)
{
    /* Serialize a real record, then split it at two points, as if the magic occurred there. */
    struct knn_buf rec = KNN_BUF_INIT(1 << 20), file = KNN_BUF_INIT(1 << 20);
    float v[6] = {1, 2, 3, 4, 5, 6}, label = 7;
    ASSERT_OK(knn_recordio_write_dense(&rec, v, 6, &label));
    const uint8_t *payload = rec.data + 8;
    uint32_t plen;
    memcpy(&plen, rec.data + 4, 4);
    /* Pieces [0,10) [10,21) [21,plen), joined by the 4 magic bytes: so the frames carry a payload
     * with those magic bytes removed, and the reader must put them back. Build the "original" too. */
    struct knn_buf original = KNN_BUF_INIT(1 << 20);
    static const uint8_t magic[4] = {0x0a, 0x23, 0xd7, 0xce};
    knn_buf_append(&original, payload, 10);
    knn_buf_append(&original, magic, 4);
    knn_buf_append(&original, payload + 10, 11);
    knn_buf_append(&original, magic, 4);
    knn_buf_append(&original, payload + 21, plen - 21);
    s_put_frame(&file, 0, payload, plen); /* a whole record first */
    s_put_frame(&file, 1, payload, 10);
    s_put_frame(&file, 2, payload + 10, 11);
    s_put_frame(&file, 3, payload + 21, plen - 21);
    s_put_frame(&file, 1, "", 0); /* a split record of empty pieces: just the magic */
    s_put_frame(&file, 3, "", 0);
    for (size_t c = 0; c < N_CHUNKS; c++) {
        struct rt_records got;
        ASSERT_OK(rt_read_records(&got, file.data, file.len, s_chunks[c], 0));
        ASSERT_INT_EQ(0, got.rc);
        ASSERT_UINT_EQ(3, got.n);
        ASSERT_MEM_EQ(payload, plen, got.data[0], got.len[0]);
        ASSERT_MEM_EQ(original.data, original.len, got.data[1], got.len[1]);
        ASSERT_MEM_EQ(magic, 4, got.data[2], got.len[2]);
        ASSERT_UINT_EQ(0, got.offset[0]);
        ASSERT_UINT_EQ(8 + ((plen + 3) & ~3u), got.offset[1]);
        ASSERT_UINT_EQ(2, got.index[2]);
        rt_records_clean_up(&got);
    }
    /* Bad flag sequences. */
    struct {
        unsigned flags[3];
        size_t n;
        int code;
        const char *needle;
    } bad[] = {
        {{2}, 1, KNN_EFORMAT, "record 0 at offset 0: continuation frame (flag 2) without a first piece"},
        {{3}, 1, KNN_EFORMAT, "without a first piece"},
        {{1, 0}, 2, KNN_EFORMAT, "split record not finished when a new one starts at offset 16"},
        {{1, 1}, 2, KNN_EFORMAT, "split record not finished"},
        {{4}, 1, KNN_EFORMAT, "invalid continuation flag 4"},
        {{7}, 1, KNN_EFORMAT, "invalid continuation flag 7"},
        {{1, 2}, 2, KNN_ETRUNCATED, "record 0 at offset 0: the data ends before the split record's last piece"},
    };
    for (size_t t = 0; t < sizeof(bad) / sizeof(bad[0]); t++) {
        struct knn_buf b = KNN_BUF_INIT(1 << 20);
        for (size_t i = 0; i < bad[t].n; i++)
            s_put_frame(&b, bad[t].flags[i], "abcdefgh", 8);
        struct rt_records got;
        ASSERT_OK(rt_read_records(&got, b.data, b.len, 3, 0));
        if (got.rc != bad[t].code)
            FAIL("case %zu: rc %d (%s)", t, got.rc, got.msg);
        ASSERT_CONTAINS(got.msg, bad[t].needle);
        ASSERT_UINT_EQ(0, got.n);
        rt_records_clean_up(&got);
        knn_buf_clean_up(&b);
    }
    knn_buf_clean_up(&rec);
    knn_buf_clean_up(&file);
    knn_buf_clean_up(&original);
    return 0;
}

/* A last record with and without its padding; empty input; zero-length record; stop after error. */
int test_padding_and_edges(void)
{
    struct knn_buf b = KNN_BUF_INIT(1 << 20);
    ASSERT_OK(knn_recordio_write_prediction(&b, 2.0f, NULL, NULL, 0)); /* payload 29 bytes: 3 of padding */
    ASSERT_UINT_EQ(40, b.len);
    struct rt_records got;
    for (size_t cut = 0; cut <= 3; cut++) {
        ASSERT_OK(rt_read_records(&got, b.data, b.len - cut, 1, 0));
        ASSERT_INT_EQ(0, got.rc);
        ASSERT_UINT_EQ(1, got.n);
        rt_records_clean_up(&got);
    }
    ASSERT_OK(rt_read_records(&got, b.data, b.len - 4, 1, 0));
    ASSERT_INT_EQ(KNN_ETRUNCATED, got.rc);
    ASSERT_CONTAINS(got.msg, "record 0 at offset 0: truncated record (length 29, but the data ends after 28");
    rt_records_clean_up(&got);
    ASSERT_OK(rt_read_records(&got, b.data, 0, RT_WHOLE, 0));
    ASSERT_INT_EQ(0, got.rc);
    ASSERT_UINT_EQ(0, got.n);
    rt_records_clean_up(&got);
    /* Zero-length record: framed, handed over, and rejected by the decoder as having no features. */
    knn_buf_reset(&b);
    ASSERT_OK(knn_recordio_write_frame(&b, "", 0));
    ASSERT_UINT_EQ(8, b.len);
    ASSERT_OK(rt_read_records(&got, b.data, b.len, RT_WHOLE, 0));
    ASSERT_INT_EQ(0, got.rc);
    ASSERT_UINT_EQ(1, got.n);
    struct knn_recordio_record rec = {got.data[0], got.len[0], 0, 0};
    float row[1];
    ASSERT_ERR(KNN_EFORMAT, knn_recordio_record_decode(row, NULL, NULL, &rec, 1));
    ASSERT_CONTAINS(knn_error_message(), "record 0 at offset 0: no features[\"values\"] tensor");
    rt_records_clean_up(&got);
    /* After an error the reader stays stopped. */
    struct knn_recordio_reader *r;
    ASSERT_OK(knn_recordio_reader_new(&r, NULL));
    ASSERT_ERR(KNN_ERECORDIO_MAGIC, knn_recordio_reader_feed(r, "xxxxxxxx", 8, NULL, NULL));
    ASSERT_ERR(KNN_ERECORDIO_MAGIC, knn_recordio_reader_feed(r, b.data, b.len, NULL, NULL));
    ASSERT_ERR(KNN_ERECORDIO_MAGIC, knn_recordio_reader_finish(r));
    knn_recordio_reader_destroy(r);
    knn_buf_clean_up(&b);
    return 0;
}

/* Decode one payload given as hex; the record is named index 5, offset 600. */
static int s_decode_hex(const char *hex, float *row, size_t dim, float *label, bool *has_label)
{
    uint8_t bytes[512];
    size_t n = rt_hex(bytes, sizeof(bytes), hex);
    struct knn_recordio_record rec = {bytes, n, 5, 600};
    return knn_recordio_record_decode(row, label, has_label, &rec, dim);
}

/* Unpacked repeated fields, any field order, unknown fields (all wire types) are accepted. */
int test_decode_unpacked_and_unknown(void)
{
    float row[3], label;
    bool has;
    /* features["values"] = float32_tensor with values 1.0, 2.0, 3.0 each as an unpacked fixed32
     * (tag 0x0d); label first, then features; unknown: Record field 9 varint, field 10 fixed64,
     * tensor field 15 bytes, Value field 12 fixed32; uid (3) string. */
    const char *hex = "12 12 0a 06 76 61 6c 75 65 73 12 08 12 06 0a 04 00 00 40 40" /* label 3.0 */
                      "48 96 01"                                                    /* field 9 varint */
                      "51 01 02 03 04 05 06 07 08"                                  /* field 10 fixed64 */
                      "1a 03 61 62 63"                                              /* uid "abc" */
                      "0a 27 0a 06 76 61 6c 75 65 73 12 1d" /* features entry, Value (29 bytes) */
                      "65 00 00 00 00"                      /* Value field 12 fixed32 */
                      "12 16 0d 00 00 80 3f 0d 00 00 00 40 7a 02 68 69 0d 00 00 40 40 1a 01 03"; /* tensor (24) */
    ASSERT_OK(s_decode_hex(hex, row, 3, &label, &has));
    ASSERT_TRUE(row[0] == 1 && row[1] == 2 && row[2] == 3);
    ASSERT_TRUE(has && label == 3);
    /* Unpacked int32 values (varints, one negative), unpacked keys and shape in a sparse tensor. */
    const char *sparse = "0a 1f 0a 06 76 61 6c 75 65 73 12 15 3a 13"
                         "08 05 08 ff ff ff ff ff ff ff ff ff 01" /* values 5, -1 */
                         "10 02 10 00"                            /* keys 2, 0 */
                         "18 03";                                 /* shape 3 */
    ASSERT_OK(s_decode_hex(sparse, row, 3, &label, &has));
    ASSERT_TRUE(row[0] == -1 && row[1] == 0 && row[2] == 5);
    ASSERT_FALSE(has);
    return 0;
}

/* The decoder's errors, each naming the record. */
int test_decode_errors(void)
{
    struct {
        const char *hex;
        size_t dim;
        int code;
        const char *needle;
    } cases[] = {
        /* width 2 where 3 are expected */
        {"0a 16 0a 06 76 61 6c 75 65 73 12 0c 12 0a 0a 08 00 00 80 3f 00 00 00 40", 3, KNN_EMISMATCH,
         "record 5 at offset 600: 2 features, expected feature_dim 3"},
        /* NaN value */
        {"0a 16 0a 06 76 61 6c 75 65 73 12 0c 12 0a 0a 08 00 00 80 3f 00 00 c0 7f", 2, KNN_ERANGE,
         "record 5 at offset 600: features value 1 is NaN"},
        /* +Inf */
        {"0a 16 0a 06 76 61 6c 75 65 73 12 0c 12 0a 0a 08 00 00 80 7f 00 00 00 40", 2, KNN_ERANGE,
         "features value 0 is infinite"},
        /* label infinite */
        {"0a 12 0a 06 76 61 6c 75 65 73 12 08 12 06 0a 04 00 00 80 3f"
         "12 12 0a 06 76 61 6c 75 65 73 12 08 12 06 0a 04 00 00 80 ff",
         1, KNN_ERANGE, "label value 0 is infinite"},
        /* label with two values */
        {"0a 12 0a 06 76 61 6c 75 65 73 12 08 12 06 0a 04 00 00 80 3f"
         "12 16 0a 06 76 61 6c 75 65 73 12 0c 12 0a 0a 08 00 00 80 3f 00 00 80 3f",
         1, KNN_EFORMAT, "label[\"values\"] must hold one value, not 2"},
        /* sparse key 10 with width 10 */
        {"0a 18 0a 06 76 61 6c 75 65 73 12 0e 12 0c 0a 04 00 00 c0 3f 12 01 0a 1a 01 0a", 10, KNN_ERANGE,
         "features key 10 (entry 0) is out of range for width 10"},
        /* sparse without shape */
        {"0a 15 0a 06 76 61 6c 75 65 73 12 0b 12 09 0a 04 00 00 c0 3f 12 01 03", 10, KNN_EFORMAT,
         "is sparse (1 keys) but has no shape"},
        /* two keys, one value */
        {"0a 19 0a 06 76 61 6c 75 65 73 12 0f 12 0d 0a 04 00 00 c0 3f 12 02 03 04 1a 01 0a", 10, KNN_EFORMAT,
         "has 2 keys but 1 values"},
        /* features under another name only */
        {"0a 13 0a 03 66 6f 6f 12 0c 12 0a 0a 08 00 00 80 3f 00 00 00 40", 2, KNN_EFORMAT,
         "no features[\"values\"] tensor"},
        /* features["values"] with an empty Value */
        {"0a 0a 0a 06 76 61 6c 75 65 73 12 00", 0, KNN_EFORMAT, "features[\"values\"] holds no tensor"},
        /* a Bytes value */
        {"0a 0e 0a 06 76 61 6c 75 65 73 12 04 4a 02 0a 00", 0, KNN_EFORMAT, "features is a Bytes value"},
        /* dense values disagreeing with shape */
        {"0a 19 0a 06 76 61 6c 75 65 73 12 0f 12 0d 0a 08 00 00 80 3f 00 00 00 40 1a 01 03", 3, KNN_EFORMAT,
         "has 2 values but its shape holds 3"},
        /* not protobuf: a truncated length-delimited field */
        {"0a 40 0a 06", 1, KNN_EFORMAT, "record 5 at offset 600: not a valid aialgs.data.Record"},
        /* shape product overflowing */
        {"0a 19 0a 06 76 61 6c 75 65 73 12 0f 12 0d 1a 0b ff ff ff ff ff ff ff ff ff 01 02", 3, KNN_ETOOBIG,
         "features shape overflows 64 bits"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        float row[16];
        int rc = s_decode_hex(cases[i].hex, row, cases[i].dim, NULL, NULL);
        if (rc != cases[i].code)
            FAIL("case %zu: rc %d (%s), expected %d", i, rc, knn_error_message(), cases[i].code);
        ASSERT_CONTAINS(knn_error_message(), cases[i].needle);
        ASSERT_CONTAINS(knn_error_message(), "record 5 at offset 600");
    }
    /* float64 out of float32's range */
    struct knn_buf b = KNN_BUF_INIT(1 << 20);
    double big[2] = {1.0, 1e300};
    struct knn_recordio_entry e = {"values", {KNN_RECORDIO_FLOAT64, big, 2, NULL, 0, NULL, 0}};
    ASSERT_OK(knn_recordio_write_record(&b, &e, 1, NULL, 0));
    struct knn_recordio_record rec = {b.data + 8, b.len - 8, 1, 2};
    float row[2];
    ASSERT_ERR(KNN_ERANGE, knn_recordio_record_decode(row, NULL, NULL, &rec, 2));
    ASSERT_CONTAINS(knn_error_message(), "features value 1 (1e+300) is outside float32's range");
    knn_buf_clean_up(&b);
    return 0;
}

/* Duplicate sparse keys sum; a shape with no values is an all-zero row; int32 converts exactly. */
int test_decode_sparse_rules(void)
{
    struct knn_buf b = KNN_BUF_INIT(1 << 20);
    float vals[3] = {1.5f, 2.0f, 0.25f};
    uint64_t keys[3] = {4, 1, 4};
    ASSERT_OK(knn_recordio_write_sparse(&b, vals, keys, 3, 5, NULL));
    ASSERT_OK(knn_recordio_write_sparse(&b, NULL, NULL, 0, 5, NULL));
    struct rt_records got;
    ASSERT_OK(rt_read_records(&got, b.data, b.len, RT_WHOLE, 0));
    ASSERT_UINT_EQ(2, got.n);
    float row[5];
    struct knn_recordio_record rec = {got.data[0], got.len[0], 0, 0};
    ASSERT_OK(knn_recordio_record_decode(row, NULL, NULL, &rec, 5));
    ASSERT_TRUE(row[0] == 0 && row[1] == 2.0f && row[2] == 0 && row[3] == 0 && row[4] == 1.75f);
    struct knn_recordio_record_info info;
    ASSERT_OK(knn_recordio_record_probe(&info, &rec));
    ASSERT_TRUE(info.sparse && info.width == 5 && info.nnz == 3 && !info.has_label);
    rec = (struct knn_recordio_record){got.data[1], got.len[1], 1, 0};
    ASSERT_OK(knn_recordio_record_decode(row, NULL, NULL, &rec, 5));
    for (int j = 0; j < 5; j++)
        ASSERT_TRUE(row[j] == 0);
    ASSERT_OK(knn_recordio_record_probe(&info, &rec));
    ASSERT_TRUE(info.sparse && info.width == 5 && info.nnz == 0);
    rt_records_clean_up(&got);
    knn_buf_clean_up(&b);
    return 0;
}

/* The spec's three worked examples (section 4.2), byte for byte. */
int test_spec_worked_examples(void)
{
    uint8_t want[128];
    size_t n;
    struct knn_buf b = KNN_BUF_INIT(1 << 20);
    float dense[2] = {1.0f, 2.0f}, label = 3.0f;
    ASSERT_OK(knn_recordio_write_dense(&b, dense, 2, &label));
    n = rt_hex(
        want, sizeof(want),
        "0a 23 d7 ce 2c 00 00 00"
        "0a 16 0a 06 76 61 6c 75 65 73 12 0c 12 0a 0a 08 00 00 80 3f 00 00 00 40"
        "12 12 0a 06 76 61 6c 75 65 73 12 08 12 06 0a 04 00 00 40 40");
    ASSERT_MEM_EQ(want, n, b.data, b.len);

    knn_buf_reset(&b);
    float v = 1.5f;
    uint64_t key = 3;
    ASSERT_OK(knn_recordio_write_sparse(&b, &v, &key, 1, 10, NULL));
    n = rt_hex(
        want, sizeof(want),
        "0a 23 d7 ce 1a 00 00 00"
        "0a 18 0a 06 76 61 6c 75 65 73 12 0e 12 0c 0a 04 00 00 c0 3f 12 01 03 1a 01 0a 00 00");
    ASSERT_MEM_EQ(want, n, b.data, b.len);

    knn_buf_reset(&b);
    ASSERT_OK(knn_recordio_write_prediction(&b, 2.0f, NULL, NULL, 0));
    n = rt_hex(
        want, sizeof(want),
        "0a 23 d7 ce 1d 00 00 00"
        "12 1b 0a 0f 70 72 65 64 69 63 74 65 64 5f 6c 61 62 65 6c 12 08 12 06 0a 04 00 00 00 40 00 00 00");
    ASSERT_MEM_EQ(want, n, b.data, b.len);
    knn_buf_clean_up(&b);
    return 0;
}

/* A verbose response record holds predicted_label, labels and distances, as protobuf-c reads it. */
int test_prediction_record_verbose(void)
{
    struct knn_buf b = KNN_BUF_INIT(1 << 20);
    float labels[3] = {2, 2, 0}, dist[3] = {1.08470316f, 3.04917915f, 5.25393973f};
    ASSERT_OK(knn_recordio_write_prediction(&b, 2.0f, labels, dist, 3));
    struct rt_records got;
    ASSERT_OK(rt_read_records(&got, b.data, b.len, RT_WHOLE, 0));
    ASSERT_UINT_EQ(1, got.n);
    struct knn_recordio_record rec = {got.data[0], got.len[0], 0, 0};
    struct knn__record_view view;
    ASSERT_OK(knn__record_parse_generic(&view, &rec));
    ASSERT_FALSE(view.has_features);
    ASSERT_FALSE(view.has_label); /* no "values" label: the decoder ignores response names */
    knn__record_view_clean_up(&view);
    /* The expected bytes, written out by hand: label map entries in order. */
    struct knn_buf want = KNN_BUF_INIT(1 << 20);
    const char *names[3] = {"predicted_label", "labels", "distances"};
    const float *vals[3] = {(float[]){2.0f}, labels, dist};
    size_t counts[3] = {1, 3, 3};
    for (int i = 0; i < 3; i++) {
        size_t nl = strlen(names[i]), vb = 4 * counts[i];
        size_t tensor = 2 + vb, value = 2 + tensor, entry = 2 + nl + 2 + value;
        uint8_t hdr[2] = {0x12, (uint8_t)entry};
        knn_buf_append(&want, hdr, 2);
        uint8_t k[2] = {0x0a, (uint8_t)nl};
        knn_buf_append(&want, k, 2);
        knn_buf_append(&want, names[i], nl);
        uint8_t vv[6] = {0x12, (uint8_t)value, 0x12, (uint8_t)tensor, 0x0a, (uint8_t)vb};
        knn_buf_append(&want, vv, 6);
        knn_buf_append(&want, vals[i], vb);
    }
    ASSERT_MEM_EQ(want.data, want.len, got.data[0], got.len[0]);
    rt_records_clean_up(&got);
    knn_buf_clean_up(&want);
    knn_buf_clean_up(&b);
    return 0;
}

/* Compare the fast path with protobuf-c on one payload: same code, same row, same label. */
static int s_differential(const uint8_t *data, size_t len, uint64_t index, int *fast_used)
{
    struct knn_recordio_record rec = {data, len, index, 0};
    struct knn_recordio_record_info info;
    size_t dim = 4;
    if (knn_recordio_record_probe(&info, &rec) == 0 && info.width > 0 && info.width < 100000)
        dim = (size_t)info.width;
    float *a = knn_calloc(dim, sizeof(float)), *b = knn_calloc(dim, sizeof(float));
    ASSERT_TRUE(a && b);
    float la = -1, lb = -1;
    bool ha = false, hb = false;
    struct knn__record_view view;
    if (knn__record_parse_fast(&view, &rec)) {
        (*fast_used)++;
        knn__record_view_clean_up(&view);
    }
    int ra = knn__record_decode_with(0, a, &la, &ha, &rec, dim);
    char ma[1024];
    snprintf(ma, sizeof(ma), "%s", knn_error_message());
    int rb = knn__record_decode_with(1, b, &lb, &hb, &rec, dim);
    ASSERT_INT_EQ(rb, ra);
    if (ra)
        ASSERT_STR_EQ(knn_error_message(), ma);
    else {
        ASSERT_MEM_EQ(b, dim * sizeof(float), a, dim * sizeof(float));
        ASSERT_INT_EQ(hb, ha);
        ASSERT_UINT_EQ(s_bits(lb), s_bits(la));
    }
    knn_free(a);
    knn_free(b);
    return 0;
}

static int s_differential_file(const uint8_t *data, size_t len, size_t *records, int *fast_used)
{
    struct rt_records got;
    ASSERT_OK(rt_read_records(&got, data, len, RT_WHOLE, 0));
    for (size_t i = 0; i < got.n; i++) {
        if (s_differential(got.data[i], got.len[i], i, fast_used))
            return 1;
    }
    *records += got.n;
    rt_records_clean_up(&got);
    return 0;
}

/* The hand-written fast path gives what protobuf-c gives, over the fixtures and the fuzz corpus. */
int test_fast_matches_generic(void)
{
    size_t records = 0;
    int fast = 0;
    const char *all[] = {"big_dense", "corrupt_bad_magic", NULL};
    for (int pass = 0; pass < 2; pass++) {
        const char *const *names = pass == 0 ? rt_small_fixtures : all;
        for (const char *const *name = names; *name; name++) {
            struct rt_fixture f;
            ASSERT_OK(rt_fixture_load(&f, *name));
            if (s_differential_file(f.data, f.len, &records, &fast))
                FAIL("fixture %s", *name);
            rt_fixture_clean_up(&f);
        }
    }
    char dir[1024];
    knn_test_source_path(dir, sizeof(dir), "tests/fuzz/corpora/recordio");
    DIR *d = opendir(dir);
    ASSERT_TRUE(d != NULL);
    size_t files = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        uint8_t *data;
        size_t len;
        ASSERT_OK(knn_test_read_file(path, &data, &len));
        /* Each payload on its own (as the fuzzer sees it), and each record of it as a stream. */
        if (s_differential(data, len, 0, &fast) || s_differential_file(data, len, &records, &fast))
            FAIL("corpus file %s", ent->d_name);
        knn_free(data);
        files++;
    }
    closedir(d);
    ASSERT_TRUE(files >= 10);
    ASSERT_TRUE(records > 20000);
    ASSERT_TRUE(fast > 20000); /* the fast path really ran (big_dense alone has 20000 records) */
    return 0;
}

/* Every allocation of reading + decoding can fail cleanly: an error, no leak, no crash. */
int test_alloc_failures(void)
{
    struct rt_fixture f;
    ASSERT_OK(rt_fixture_load(&f, "sparse_f32"));
    /* Count the allocations of one pass (chunks of 7 force buffering; decode uses protobuf-c). */
    knn_alloc_fail_after(0);
    struct rt_records got;
    ASSERT_OK(rt_read_records(&got, f.data, f.len, 7, 0));
    ASSERT_INT_EQ(0, got.rc);
    float row[1000];
    for (size_t i = 0; i < got.n; i++) {
        struct knn_recordio_record rec = {got.data[i], got.len[i], i, got.offset[i]};
        ASSERT_OK(knn_recordio_record_decode(row, NULL, NULL, &rec, 1000));
    }
    rt_records_clean_up(&got);
    uint64_t total = knn_alloc_fail_after(0);
    ASSERT_TRUE(total > 10);
    for (uint64_t n = 1; n <= total; n++) {
        int64_t before = knn_alloc_outstanding();
        knn_alloc_fail_after(n);
        int failed = 0;
        if (rt_read_records(&got, f.data, f.len, 7, 0) != 0) {
            failed = 1;
        } else {
            if (got.rc)
                failed = got.rc == KNN_ENOMEM ? 1 : -1;
            for (size_t i = 0; i < got.n && !failed; i++) {
                struct knn_recordio_record rec = {got.data[i], got.len[i], i, got.offset[i]};
                int rc = knn_recordio_record_decode(row, NULL, NULL, &rec, 1000);
                if (rc)
                    failed = rc == KNN_ENOMEM ? 1 : -1;
            }
            rt_records_clean_up(&got);
        }
        knn_alloc_fail_after(0);
        if (failed < 0)
            FAIL("allocation %llu: an error other than KNN_ENOMEM: %s", (unsigned long long)n, knn_error_message());
        ASSERT_INT_EQ(before, knn_alloc_outstanding());
    }
    rt_fixture_clean_up(&f);
    return 0;
}
