/* The row decoder: RecordIO or CSV byte chunks in, batches of dense float32 rows out. */
#include "knn/recordio/rows.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/recordio/csv.h"
#include "knn/recordio/reader.h"
#include "knn/recordio/record.h"

#include <stdio.h>
#include <string.h>

#define S_DEFAULT_BATCH_ROWS 1024
#define S_DEFAULT_MAX_FEATURE_DIM ((size_t)1 << 20)

struct knn_recordio_rows {
    struct knn_recordio_rows_options o;
    knn_recordio_rows_fn *sink;
    void *user;
    struct knn_recordio_reader *reader; /* RecordIO */
    struct knn_buf line;                /* CSV: a line split across chunks */
    uint64_t line_no;                   /* CSV: lines seen */
    size_t dim;
    float *features; /* batch_rows x dim */
    float *labels;   /* batch_rows, or NULL when labels are ignored */
    float *scratch;  /* CSV: label_size + dim values of one line */
    size_t n;        /* rows in the batch */
    uint64_t count;
    int failed;
    unsigned char head[4]; /* the stream's first bytes, to recognise data of the other format */
    size_t head_len;
};

int knn_recordio_rows_new(
    struct knn_recordio_rows **out, const struct knn_recordio_rows_options *options, knn_recordio_rows_fn *sink,
    void *user)
{
    if (!options || !sink)
        return knn_error_set(KNN_EINVAL, "row decoder: options and sink are required");
    if (options->format != KNN_RECORDIO_PROTOBUF && options->format != KNN_RECORDIO_CSV)
        return knn_error_set(KNN_EINVAL, "row decoder: unknown format %d", (int)options->format);
    if (options->format == KNN_RECORDIO_CSV && options->label_size > 1)
        return knn_error_set(
            KNN_EINVAL, "row decoder: label_size %u is not supported (k-NN labels are one value: 0 or 1)",
            options->label_size);
    if (options->format == KNN_RECORDIO_CSV && options->labels == KNN_RECORDIO_LABELS_REQUIRE &&
        options->label_size != 1)
        return knn_error_set(KNN_EINVAL, "row decoder: labels are required, so CSV data needs label_size=1");
    struct knn_recordio_rows *r = knn_calloc(1, sizeof(*r));
    if (!r)
        return KNN_ENOMEM;
    r->o = *options;
    if (!r->o.batch_rows)
        r->o.batch_rows = S_DEFAULT_BATCH_ROWS;
    if (!r->o.max_feature_dim)
        r->o.max_feature_dim = S_DEFAULT_MAX_FEATURE_DIM;
    if (!r->o.max_line_bytes)
        r->o.max_line_bytes = KNN_RECORDIO_CSV_DEFAULT_MAX_LINE;
    if (r->o.format != KNN_RECORDIO_CSV)
        r->o.label_size = 0;
    r->sink = sink;
    r->user = user;
    knn_buf_init(&r->line, r->o.max_line_bytes);
    int rc = 0;
    if (r->o.format == KNN_RECORDIO_PROTOBUF) {
        struct knn_recordio_reader_options ro = KNN_RECORDIO_READER_OPTIONS_INIT;
        if (r->o.max_record_bytes)
            ro.max_record_bytes = r->o.max_record_bytes;
        if ((rc = knn_recordio_reader_new(&r->reader, &ro)))
            goto on_error;
    }
    *out = r;
    return 0;
on_error:
    knn_recordio_rows_destroy(r);
    return rc;
}

void knn_recordio_rows_destroy(struct knn_recordio_rows *rows)
{
    if (!rows)
        return;
    knn_recordio_reader_destroy(rows->reader);
    knn_buf_clean_up(&rows->line);
    knn_free(rows->features);
    knn_free(rows->labels);
    knn_free(rows->scratch);
    knn_free(rows);
}

uint64_t knn_recordio_rows_count(const struct knn_recordio_rows *rows)
{
    return rows->count;
}

size_t knn_recordio_rows_feature_dim(const struct knn_recordio_rows *rows)
{
    return rows->dim ? rows->dim : rows->o.feature_dim;
}

/* Fix the dimension and allocate the batch. `where` names the first row for messages. */
static int s_set_dim(struct knn_recordio_rows *r, uint64_t dim, const char *where)
{
    if (dim == 0)
        return knn_error_set(KNN_EFORMAT, "%s: no features", where);
    if (dim > r->o.max_feature_dim)
        return knn_error_set(
            KNN_ETOOBIG, "%s: %llu features, over the cap of %zu", where, (unsigned long long)dim,
            r->o.max_feature_dim);
    r->dim = (size_t)dim;
    size_t row_bytes;
    if (knn_mul_size(&row_bytes, r->dim, sizeof(float)) ||
        !(r->features = knn_malloc_array(r->o.batch_rows, row_bytes)))
        return KNN_ENOMEM;
    if (r->o.labels == KNN_RECORDIO_LABELS_REQUIRE && !(r->labels = knn_malloc_array(r->o.batch_rows, sizeof(float))))
        return KNN_ENOMEM;
    if (r->o.format == KNN_RECORDIO_CSV && !(r->scratch = knn_malloc_array(r->dim + 1, sizeof(float))))
        return KNN_ENOMEM;
    return 0;
}

static int s_flush(struct knn_recordio_rows *r)
{
    if (!r->n)
        return 0;
    size_t n = r->n;
    r->n = 0;
    return r->sink(r->user, r->features, r->labels, n);
}

/* A row has been written at slot r->n. */
static int s_row_done(struct knn_recordio_rows *r)
{
    r->count++;
    if (++r->n == r->o.batch_rows)
        return s_flush(r);
    return 0;
}

static int s_on_record(void *user, const struct knn_recordio_record *rec)
{
    struct knn_recordio_rows *r = user;
    int rc;
    if (!r->dim) {
        size_t dim = r->o.feature_dim;
        if (!dim) {
            struct knn_recordio_record_info info;
            if ((rc = knn_recordio_record_probe(&info, rec)))
                return rc;
            char where[64];
            snprintf(
                where, sizeof(where), "record %llu at offset %llu", (unsigned long long)rec->index,
                (unsigned long long)rec->offset);
            if ((rc = s_set_dim(r, info.width, where)))
                return rc;
        } else if ((rc = s_set_dim(r, dim, "feature_dim"))) {
            return rc;
        }
    }
    float label;
    bool has_label;
    if ((rc = knn_recordio_record_decode(r->features + r->n * r->dim, &label, &has_label, rec, r->dim)))
        return rc;
    if (r->labels) {
        if (!has_label)
            return knn_error_set(
                KNN_EFORMAT, "record %llu at offset %llu: no label (label[\"values\"]), and labels are required",
                (unsigned long long)rec->index, (unsigned long long)rec->offset);
        r->labels[r->n] = label;
    }
    return s_row_done(r);
}

static int s_csv_line(struct knn_recordio_rows *r, const char *line, size_t len)
{
    int rc;
    r->line_no++;
    if (len && line[len - 1] == '\r')
        len--;
    if (!len)
        return 0; /* empty lines are skipped */
    size_t ls = r->o.label_size;
    if (!r->dim) {
        uint64_t dim = r->o.feature_dim;
        char where[48];
        snprintf(where, sizeof(where), "line %llu", (unsigned long long)r->line_no);
        if (!dim) {
            size_t cols = knn_recordio_csv_count_columns(line, len);
            if (cols <= ls)
                return knn_error_set(
                    KNN_EMISMATCH, "line %llu: %zu column(s), but the first %zu is the label and no features follow",
                    (unsigned long long)r->line_no, cols, ls);
            dim = cols - ls;
        }
        if ((rc = s_set_dim(r, dim, where)))
            return rc;
    }
    float *row = r->features + r->n * r->dim;
    if (ls == 0) {
        if ((rc = knn_recordio_csv_parse_line(row, r->dim, line, len, r->line_no)))
            return rc;
    } else {
        if ((rc = knn_recordio_csv_parse_line(r->scratch, r->dim + 1, line, len, r->line_no)))
            return rc;
        memcpy(row, r->scratch + 1, r->dim * sizeof(float));
        if (r->labels)
            r->labels[r->n] = r->scratch[0];
    }
    return s_row_done(r);
}

static int s_line_too_long(struct knn_recordio_rows *r)
{
    return knn_error_set(
        KNN_ETOOBIG, "line %llu is longer than the cap of %zu bytes", (unsigned long long)r->line_no + 1,
        r->o.max_line_bytes);
}

static int s_csv_feed(struct knn_recordio_rows *r, const char *p, size_t len)
{
    const char *end = p + len;
    int rc;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            if (knn_buf_append(&r->line, p, (size_t)(end - p)))
                return s_line_too_long(r);
            return 0;
        }
        size_t n = (size_t)(nl - p);
        if (r->line.len) {
            if (knn_buf_append(&r->line, p, n))
                return s_line_too_long(r);
            rc = s_csv_line(r, (const char *)r->line.data, r->line.len);
            knn_buf_reset(&r->line);
        } else {
            if (n > r->o.max_line_bytes)
                return s_line_too_long(r);
            rc = s_csv_line(r, p, n);
        }
        if (rc)
            return rc;
        p = nl + 1;
    }
    return 0;
}

/*
 * After a decoding error: if the stream's first bytes show the data is in the other format (the
 * RecordIO magic where CSV was declared, or text where RecordIO was), say so. Declaring the wrong
 * ContentType is the common cause, and "line 2: 1 columns, expected 14" does not tell it.
 */
static int s_hint_format(struct knn_recordio_rows *r, int rc)
{
    static const unsigned char magic[4] = {0x0a, 0x23, 0xd7, 0xce};
    char message[1024];
    if (r->count > 0 || r->head_len < 4 || rc == KNN_ENOMEM || rc > 0)
        return rc;
    snprintf(message, sizeof(message), "%s", knn_error_message()); /* the thread's buffer is rewritten below */
    if (r->o.format == KNN_RECORDIO_CSV && memcmp(r->head, magic, 4) == 0)
        return knn_error_set(
            rc, "%s (the data starts with the RecordIO magic: it is RecordIO-protobuf, not text/csv)", message);
    int text = 1;
    for (size_t i = 0; i < 4; i++)
        text &= (r->head[i] >= 0x20 && r->head[i] < 0x7f) || r->head[i] == '\n' || r->head[i] == '\r';
    if (r->o.format == KNN_RECORDIO_PROTOBUF && text)
        return knn_error_set(
            rc, "%s (the data starts with text, not the RecordIO magic: if it is CSV, its content type is text/csv)",
            message);
    return rc;
}

int knn_recordio_rows_feed(struct knn_recordio_rows *rows, const void *data, size_t len)
{
    if (rows->failed)
        return knn_error_set(rows->failed, "row decoder already stopped by an earlier error");
    if (rows->head_len < sizeof(rows->head)) {
        size_t n = sizeof(rows->head) - rows->head_len;
        if (n > len)
            n = len;
        memcpy(rows->head + rows->head_len, data, n);
        rows->head_len += n;
    }
    int rc = rows->o.format == KNN_RECORDIO_PROTOBUF
                 ? knn_recordio_reader_feed(rows->reader, data, len, s_on_record, rows)
                 : s_csv_feed(rows, data, len);
    if (rc)
        rows->failed = rc = s_hint_format(rows, rc);
    return rc;
}

int knn_recordio_rows_finish(struct knn_recordio_rows *rows)
{
    if (rows->failed)
        return knn_error_set(rows->failed, "row decoder already stopped by an earlier error");
    int rc;
    if (rows->o.format == KNN_RECORDIO_PROTOBUF) {
        rc = knn_recordio_reader_finish(rows->reader);
    } else {
        rc = rows->line.len ? s_csv_line(rows, (const char *)rows->line.data, rows->line.len) : 0;
        knn_buf_reset(&rows->line);
    }
    if (!rc)
        rc = s_flush(rows);
    if (rc)
        rows->failed = rc = s_hint_format(rows, rc);
    return rc;
}
