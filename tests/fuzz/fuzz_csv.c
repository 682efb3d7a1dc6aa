/*
 * Fuzz target: CSV through the row decoder. The first byte picks label_size (bit 0), whether
 * labels are required (bit 1) and a chunk size (the rest); the remaining bytes are the text.
 * Checks: no crash/leak; the same outcome and rows whatever the chunking; every value is finite;
 * and every value formatted with knn_recordio_format_float parses back to the same bits.
 */
#include "knn/common/error.h"
#include "knn/recordio/csv.h"
#include "knn/recordio/rows.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_csv: property broken: %s (last error: %s)\n", what, knn_error_message());
        abort();
    }
}

struct s_run {
    size_t dim;
    uint64_t rows;
    uint64_t hash;
    struct knn_recordio_rows *decoder;
};

static int s_sink(void *user, const float *features, const float *labels, size_t n)
{
    struct s_run *run = user;
    size_t dim = knn_recordio_rows_feature_dim(run->decoder);
    for (size_t i = 0; i < n * dim + (labels ? n : 0); i++) {
        float v = i < n * dim ? features[i] : labels[i - n * dim];
        s_check(isfinite(v), "values are finite");
        char buf[KNN_RECORDIO_FLOAT_CHARS];
        size_t len = knn_recordio_format_float(buf, v);
        float back;
        s_check(knn_recordio_csv_parse_line(&back, 1, buf, len, 1) == 0, "a formatted float parses");
        s_check(memcmp(&back, &v, 4) == 0, "a formatted float reads back to the same bits");
        uint32_t bits;
        memcpy(&bits, &v, 4);
        run->hash = run->hash * 1099511628211ull + bits;
    }
    run->rows += n;
    return 0;
}

static int s_run(struct s_run *run, unsigned label_size, bool require, const uint8_t *text, size_t len, size_t chunk)
{
    memset(run, 0, sizeof(*run));
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.format = KNN_RECORDIO_CSV;
    o.label_size = label_size;
    o.labels = require ? KNN_RECORDIO_LABELS_REQUIRE : KNN_RECORDIO_LABELS_IGNORE;
    o.batch_rows = 4;
    o.max_line_bytes = 4096;
    o.max_feature_dim = 1024;
    int rc = knn_recordio_rows_new(&run->decoder, &o, s_sink, run);
    if (rc)
        return rc;
    for (size_t off = 0; off < len && !rc; off += chunk)
        rc = knn_recordio_rows_feed(run->decoder, text + off, len - off < chunk ? len - off : chunk);
    if (!rc)
        rc = knn_recordio_rows_finish(run->decoder);
    knn_recordio_rows_destroy(run->decoder);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned label_size = data[0] & 1;
    bool require = (data[0] & 2) && label_size == 1;
    size_t chunk = (data[0] >> 2) + 1;
    struct s_run a, b;
    int rc1 = s_run(&a, label_size, require, data + 1, size - 1, size);
    int rc2 = s_run(&b, label_size, require, data + 1, size - 1, chunk);
    s_check(rc1 == rc2, "chunking does not change the outcome");
    s_check(a.rows == b.rows && a.hash == b.hash, "chunking does not change the rows");
    return 0;
}
