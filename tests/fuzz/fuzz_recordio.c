/*
 * Fuzz target: the RecordIO frame reader and the Record decoder, fed any bytes.
 *
 * Beyond "no crash, no leak, no hang", it checks properties that must hold for every input:
 *   - feeding the stream whole or in small chunks gives the same records and the same outcome;
 *   - the hand-written fast path and protobuf-c decode every record to the same result;
 *   - a record the probe accepts decodes at its probed width (duplicate sparse keys summing to
 *     infinity being the one allowed difference);
 *   - a decoded row written back out with the writer decodes to the same bits;
 *   - the row decoder agrees with the reader on how many records there are.
 * A broken property aborts (so libFuzzer and the replay driver both report it).
 */
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/recordio/reader.h"
#include "knn/recordio/record.h"
#include "knn/recordio/rows.h"
#include "knn/recordio/writer.h"
#include "record_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_MAX_DIM 4096
#define S_MAX_RECORD ((size_t)1 << 20)

static void s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_recordio: property broken: %s (last error: %s)\n", what, knn_error_message());
        abort();
    }
}

struct s_run {
    uint64_t records;
    uint64_t hash; /* of record lengths and offsets */
};

static float s_a[S_MAX_DIM], s_b[S_MAX_DIM], s_c[S_MAX_DIM];

static void s_check_record(const struct knn_recordio_record *rec)
{
    struct knn_recordio_record_info info;
    int prc = knn_recordio_record_probe(&info, rec);
    size_t dim = prc == 0 && info.width <= S_MAX_DIM ? (size_t)info.width : 3;
    float la = 0, lb = 0;
    bool ha = false, hb = false;
    int ra = knn__record_decode_with(0, s_a, &la, &ha, rec, dim);
    int rb = knn__record_decode_with(1, s_b, &lb, &hb, rec, dim);
    s_check(ra == rb, "fast path and protobuf-c return the same code");
    if (prc == 0 && dim == info.width)
        s_check(ra == 0 || ra == KNN_ERANGE, "a probed record decodes at its width");
    if (ra)
        return;
    s_check(memcmp(s_a, s_b, dim * sizeof(float)) == 0, "fast path and protobuf-c give the same row");
    s_check(ha == hb && memcmp(&la, &lb, sizeof(float)) == 0, "fast path and protobuf-c give the same label");
    s_check(prc == 0 && ha == info.has_label, "the probe agrees on the label");

    /* Write the row back out and decode it again: the same bits. */
    struct knn_buf buf = KNN_BUF_INIT(S_MAX_RECORD * 2);
    if (knn_recordio_write_dense(&buf, s_a, dim, ha ? &la : NULL) == 0) {
        struct knn_recordio_record again = {buf.data + 8, buf.len - 8, 0, 0};
        uint32_t len;
        memcpy(&len, buf.data + 4, 4);
        again.len = len;
        float lc = 0;
        bool hc = false;
        s_check(knn_recordio_record_decode(s_c, &lc, &hc, &again, dim) == 0, "a written row decodes");
        s_check(
            memcmp(s_a, s_c, dim * sizeof(float)) == 0 && hc == ha && memcmp(&lc, &la, 4) == 0,
            "a written row decodes to the same bits");
    }
    knn_buf_clean_up(&buf);
}

static int s_on_record(void *user, const struct knn_recordio_record *rec)
{
    struct s_run *run = user;
    run->records++;
    run->hash = run->hash * 1099511628211ull + rec->len * 31 + rec->offset;
    s_check_record(rec);
    return 0;
}

static int s_read(struct s_run *run, const uint8_t *data, size_t size, size_t chunk)
{
    memset(run, 0, sizeof(*run));
    struct knn_recordio_reader_options o = KNN_RECORDIO_READER_OPTIONS_INIT;
    o.max_record_bytes = S_MAX_RECORD;
    struct knn_recordio_reader *r;
    if (knn_recordio_reader_new(&r, &o))
        return KNN_ENOMEM;
    int rc = 0;
    for (size_t off = 0; off < size && !rc; off += chunk)
        rc = knn_recordio_reader_feed(r, data + off, size - off < chunk ? size - off : chunk, s_on_record, run);
    if (!rc)
        rc = knn_recordio_reader_finish(r);
    knn_recordio_reader_destroy(r);
    return rc;
}

static int s_count_rows(void *user, const float *features, const float *labels, size_t n)
{
    (void)features, (void)labels;
    *(uint64_t *)user += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s_run whole, chunked;
    int rc1 = s_read(&whole, data, size, size ? size : 1);
    int rc2 = s_read(&chunked, data, size, size % 13 + 1);
    s_check(rc1 == rc2, "chunking does not change the outcome");
    s_check(whole.records == chunked.records && whole.hash == chunked.hash, "chunking does not change the records");

    /* The row decoder (width from the first record, labels not required). */
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.labels = KNN_RECORDIO_LABELS_IGNORE;
    o.batch_rows = 3;
    o.max_record_bytes = S_MAX_RECORD;
    o.max_feature_dim = S_MAX_DIM;
    struct knn_recordio_rows *rows;
    uint64_t n = 0;
    if (knn_recordio_rows_new(&rows, &o, s_count_rows, &n) == 0) {
        int rc = knn_recordio_rows_feed(rows, data, size);
        if (!rc)
            rc = knn_recordio_rows_finish(rows);
        s_check(n == knn_recordio_rows_count(rows) || rc, "every decoded row reaches the sink");
        s_check(knn_recordio_rows_count(rows) <= whole.records, "no more rows than records");
        if (!rc)
            s_check(n == whole.records && rc1 == 0, "a clean row decode means a clean stream");
        knn_recordio_rows_destroy(rows);
    }
    return 0;
}
