/*
 * knn-runner recordio: the user tools for training data.
 *
 *   inspect [--json] FILE|-                           what a RecordIO-protobuf file holds
 *   convert --to csv IN|- OUT|-                        RecordIO-protobuf -> CSV (label first)
 *   convert --to recordio [--label-size 0|1] IN OUT    CSV -> RecordIO-protobuf, as the SDK writes
 *
 * Both stream in fixed-size chunks (constant memory whatever the file size). A file output is
 * written to a temporary file in the same folder and renamed at the end, so a failure never
 * leaves a partial OUT behind.
 */
#define _GNU_SOURCE /* mkstemp, fdopen, fchmod */
#include "commands.h"
#include "progress.h"
#include "usage.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/common/file.h"
#include "knn/recordio/csv.h"
#include "knn/recordio/reader.h"
#include "knn/recordio/record.h"
#include "knn/recordio/rows.h"
#include "knn/recordio/writer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CHUNK_BYTES ((size_t)1 << 20)
#define S_FLUSH_BYTES ((size_t)1 << 20)
#define S_MAX_WIDTH ((uint64_t)1 << 24) /* a row of 16 Mi features (64 MiB) is surely a broken file */
#define S_MAX_DISTINCT_LABELS 1000
#define S_SHOW_COUNTS 20

#define S_SYNOPSIS                                                                                                     \
    "usage: knn-runner recordio inspect [--json] [--quiet] FILE|-\n"                                                   \
    "       knn-runner recordio convert --to csv [--quiet] IN|- OUT|-\n"                                               \
    "       knn-runner recordio convert --to recordio [--label-size 0|1] [--quiet] IN|- OUT|-\n"

static void s_usage(FILE *out)
{
    fputs(S_SYNOPSIS, out);
    fprintf(
        out, "\n"
             "inspect  reads a RecordIO-protobuf file (as the SageMaker SDK writes it) and prints its\n"
             "         records, feature dimension, dense/sparse, label presence and label statistics;\n"
             "         --json prints the same as one JSON object.\n"
             "convert  --to csv: one line per record, the label first when records have one, values\n"
             "         printed so they read back to the same float32 (sparse rows are densified).\n"
             "         --to recordio: reads CSV (no header; with --label-size 1, the default, the first\n"
             "         column is the label) and writes float32 records exactly as the SDK would.\n"
             "\n"
             "`-` is stdin or stdout. A file OUT appears only when the conversion succeeded.\n"
             "Progress (bytes of the input's size, rows, rate, time left) goes to stderr: a live line on a\n"
             "terminal, a line every 5 s otherwise; --quiet turns it off.\n"
             "\n"
             "examples:\n"
             "  knn-runner recordio convert --to recordio train.csv train.rec     label first, as SageMaker's CSV\n"
             "  knn-runner recordio convert --to recordio --label-size 0 queries.csv queries.rec\n"
             "  knn-runner recordio inspect train.rec\n"
             "  knn-runner recordio convert --to csv train.rec - | head -3\n"
             "  knn-runner s3 cp s3://bucket/wine/train/train.rec - | knn-runner recordio inspect --json -\n");
}

static const char *s_display(const char *path)
{
    return strcmp(path, "-") == 0 ? "stdin" : path;
}

/* ---- input: a file or stdin, read in chunks ---- */

typedef int(s_chunk_fn)(void *user, const uint8_t *data, size_t len);

/* Reads `path` in chunks; `progress` (may be NULL) counts the bytes against the file's size. */
static int s_read_chunks(const char *path, s_chunk_fn *fn, void *user, uint64_t *total, struct knn_progress *progress)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!in)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "cannot open: %s", strerror(errno));
    struct stat st;
    int sized = fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode);
    knn_progress_start_read(progress, s_display(path), sized ? (uint64_t)st.st_size : UINT64_MAX);
    uint8_t *buf = knn_malloc(S_CHUNK_BYTES);
    int rc = buf ? 0 : KNN_ENOMEM;
    *total = 0;
    while (!rc) {
        size_t n = fread(buf, 1, S_CHUNK_BYTES, in);
        if (n) {
            *total += n;
            rc = fn(user, buf, n);
            knn_progress_add(progress, n, 0);
        }
        if (n < S_CHUNK_BYTES) {
            if (!rc && ferror(in))
                rc =
                    knn_error_set(KNN_EIO, "read failed at byte %llu: %s", (unsigned long long)*total, strerror(errno));
            break;
        }
    }
    knn_free(buf);
    if (in != stdin)
        fclose(in);
    return rc;
}

/* ---- output: stdout, a device, or a temporary file renamed into place at the end ---- */

struct s_output {
    struct knn_file_writer w;
};

static int s_output_open(struct s_output *out, const char *path)
{
    return knn_file_writer_open(&out->w, path);
}

static int s_output_write(struct s_output *out, struct knn_buf *buf)
{
    int rc = knn_file_writer_write(&out->w, buf->data, buf->len);
    if (rc)
        return rc;
    knn_buf_reset(buf);
    return 0;
}

/* Finish: on success commit (rename into place); on failure drop the temporary file. */
static int s_output_close(struct s_output *out, int ok)
{
    if (ok)
        return knn_file_writer_commit(&out->w);
    knn_file_writer_abort(&out->w);
    return 0;
}

/* ---- inspect ---- */

struct s_inspect {
    struct knn_recordio_reader *reader;
    uint64_t records, dense, sparse, labeled, nnz;
    uint64_t min_width, max_width;
    unsigned dtypes, label_dtypes; /* bit per enum knn_recordio_dtype */
    double label_min, label_max, label_sum;
    float *distinct; /* sorted */
    uint64_t *counts;
    size_t ndistinct;
    bool distinct_overflow;
};

static int s_count_label(struct s_inspect *s, float label)
{
    size_t lo = 0, hi = s->ndistinct;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->distinct[mid] < label)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->ndistinct && s->distinct[lo] == label) {
        s->counts[lo]++;
        return 0;
    }
    if (s->ndistinct == S_MAX_DISTINCT_LABELS) {
        s->distinct_overflow = true;
        return 0;
    }
    memmove(s->distinct + lo + 1, s->distinct + lo, (s->ndistinct - lo) * sizeof(float));
    memmove(s->counts + lo + 1, s->counts + lo, (s->ndistinct - lo) * sizeof(uint64_t));
    s->distinct[lo] = label;
    s->counts[lo] = 1;
    s->ndistinct++;
    return 0;
}

static int s_inspect_record(void *user, const struct knn_recordio_record *rec)
{
    struct s_inspect *s = user;
    struct knn_recordio_record_info info;
    int rc = knn_recordio_record_probe(&info, rec);
    if (rc)
        return rc;
    if (!s->records || info.width < s->min_width)
        s->min_width = info.width;
    if (!s->records || info.width > s->max_width)
        s->max_width = info.width;
    s->records++;
    s->nnz += info.nnz;
    if (info.sparse)
        s->sparse++;
    else
        s->dense++;
    s->dtypes |= 1u << info.feature_dtype;
    if (info.has_label) {
        double l = info.label;
        if (!s->labeled || l < s->label_min)
            s->label_min = l;
        if (!s->labeled || l > s->label_max)
            s->label_max = l;
        s->labeled++;
        s->label_sum += l;
        s->label_dtypes |= 1u << info.label_dtype;
        s_count_label(s, info.label);
    }
    return 0;
}

static int s_inspect_chunk(void *user, const uint8_t *data, size_t len)
{
    struct s_inspect *s = user;
    return knn_recordio_reader_feed(s->reader, data, len, s_inspect_record, s);
}

static json_t *s_json_float(float v)
{
    /* Integral labels print as 3.0, others with the shortest digits that give the float back. */
    char buf[KNN_RECORDIO_FLOAT_CHARS];
    knn_recordio_format_float(buf, v);
    return json_real(strtod(buf, NULL));
}

static json_t *s_dtype_list(unsigned mask)
{
    json_t *a = json_array();
    for (int d = KNN_RECORDIO_FLOAT32; d <= KNN_RECORDIO_BYTES; d++) {
        if (mask & (1u << d))
            json_array_append_new(a, json_string(knn_recordio_dtype_name(d)));
    }
    return a;
}

static void s_print_dtypes(FILE *out, unsigned mask)
{
    const char *sep = "";
    for (int d = KNN_RECORDIO_FLOAT32; d <= KNN_RECORDIO_BYTES; d++) {
        if (mask & (1u << d)) {
            fprintf(out, "%s%s", sep, knn_recordio_dtype_name(d));
            sep = ", ";
        }
    }
    fputc('\n', out);
}

static int s_inspect_print_json(const struct s_inspect *s, const char *path, uint64_t bytes)
{
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(s_display(path)));
    json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(o, "records", json_integer((json_int_t)s->records));
    json_object_set_new(
        o, "feature_dim",
        s->records && s->min_width == s->max_width ? json_integer((json_int_t)s->min_width) : json_null());
    json_object_set_new(o, "min_width", json_integer((json_int_t)s->min_width));
    json_object_set_new(o, "max_width", json_integer((json_int_t)s->max_width));
    json_object_set_new(
        o, "layout",
        json_string(
            !s->records  ? "empty"
            : !s->sparse ? "dense"
            : !s->dense  ? "sparse"
                         : "mixed"));
    json_object_set_new(o, "dense_records", json_integer((json_int_t)s->dense));
    json_object_set_new(o, "sparse_records", json_integer((json_int_t)s->sparse));
    json_object_set_new(o, "stored_values", json_integer((json_int_t)s->nnz));
    json_object_set_new(o, "feature_dtypes", s_dtype_list(s->dtypes));
    json_object_set_new(o, "has_labels", json_boolean(s->records && s->labeled == s->records));
    json_object_set_new(o, "labeled_records", json_integer((json_int_t)s->labeled));
    json_object_set_new(o, "label_dtypes", s_dtype_list(s->label_dtypes));
    if (s->labeled) {
        json_t *l = json_object();
        json_object_set_new(l, "min", s_json_float((float)s->label_min));
        json_object_set_new(l, "max", s_json_float((float)s->label_max));
        json_object_set_new(l, "mean", json_real(s->label_sum / (double)s->labeled));
        json_object_set_new(l, "distinct", s->distinct_overflow ? json_null() : json_integer((json_int_t)s->ndistinct));
        if (s->distinct_overflow) {
            json_object_set_new(l, "distinct_more_than", json_integer(S_MAX_DISTINCT_LABELS));
        } else {
            json_t *counts = json_object();
            for (size_t i = 0; i < s->ndistinct; i++) {
                char key[KNN_RECORDIO_FLOAT_CHARS];
                knn_recordio_format_float(key, s->distinct[i]);
                json_object_set_new(counts, key, json_integer((json_int_t)s->counts[i]));
            }
            json_object_set_new(l, "counts", counts);
        }
        json_object_set_new(o, "label_stats", l);
    } else {
        json_object_set_new(o, "label_stats", json_null());
    }
    int rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    fputc('\n', stdout);
    return rc == 0 ? 0 : knn_error_set(KNN_EIO, "stdout: write failed");
}

static void s_inspect_print_text(const struct s_inspect *s, const char *path, uint64_t bytes)
{
    FILE *out = stdout;
    char a[KNN_RECORDIO_FLOAT_CHARS], b[KNN_RECORDIO_FLOAT_CHARS];
    fprintf(out, "file:           %s (%llu bytes)\n", s_display(path), (unsigned long long)bytes);
    fprintf(out, "records:        %llu\n", (unsigned long long)s->records);
    if (!s->records)
        return;
    if (s->min_width == s->max_width)
        fprintf(out, "feature_dim:    %llu\n", (unsigned long long)s->min_width);
    else
        fprintf(
            out, "feature_dim:    varies from %llu to %llu\n", (unsigned long long)s->min_width,
            (unsigned long long)s->max_width);
    fprintf(
        out, "layout:         %s (%llu dense, %llu sparse records; %llu stored values)\n",
        !s->sparse  ? "dense"
        : !s->dense ? "sparse"
                    : "mixed",
        (unsigned long long)s->dense, (unsigned long long)s->sparse, (unsigned long long)s->nnz);
    fprintf(out, "feature type:   ");
    s_print_dtypes(out, s->dtypes);
    if (!s->labeled) {
        fprintf(out, "labels:         none\n");
        return;
    }
    fprintf(
        out, "labels:         %llu of %llu records (", (unsigned long long)s->labeled, (unsigned long long)s->records);
    for (int d = KNN_RECORDIO_FLOAT32, first = 1; d <= KNN_RECORDIO_BYTES; d++) {
        if (s->label_dtypes & (1u << d)) {
            fprintf(out, "%s%s", first ? "" : ", ", knn_recordio_dtype_name(d));
            first = 0;
        }
    }
    fprintf(out, ")\n");
    knn_recordio_format_float(a, (float)s->label_min);
    knn_recordio_format_float(b, (float)s->label_max);
    fprintf(out, "label range:    %s .. %s, mean %.9g\n", a, b, s->label_sum / (double)s->labeled);
    if (s->distinct_overflow) {
        fprintf(out, "label values:   more than %d distinct\n", S_MAX_DISTINCT_LABELS);
    } else if (s->ndistinct <= S_SHOW_COUNTS) {
        fprintf(out, "label counts:   ");
        for (size_t i = 0; i < s->ndistinct; i++) {
            knn_recordio_format_float(a, s->distinct[i]);
            fprintf(out, "%s%s: %llu", i ? ", " : "", a, (unsigned long long)s->counts[i]);
        }
        fputc('\n', out);
    } else {
        fprintf(out, "label values:   %zu distinct\n", s->ndistinct);
    }
}

static int s_inspect(const char *path, bool as_json, struct knn_progress *progress)
{
    struct s_inspect s;
    memset(&s, 0, sizeof(s));
    uint64_t bytes = 0;
    int rc = 0;
    s.distinct = knn_malloc_array(S_MAX_DISTINCT_LABELS, sizeof(float));
    s.counts = knn_malloc_array(S_MAX_DISTINCT_LABELS, sizeof(uint64_t));
    if (!s.distinct || !s.counts) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if ((rc = knn_recordio_reader_new(&s.reader, NULL)) || (rc = s_read_chunks(path, s_inspect_chunk, &s, &bytes, progress)) ||
        (rc = knn_recordio_reader_finish(s.reader)))
        goto on_error;
    knn_progress_end(progress);
    if (as_json)
        rc = s_inspect_print_json(&s, path, bytes);
    else
        s_inspect_print_text(&s, path, bytes);
on_error:
    knn_recordio_reader_destroy(s.reader);
    knn_free(s.distinct);
    knn_free(s.counts);
    return rc;
}

/* ---- convert --to csv ---- */

struct s_to_csv {
    struct knn_progress *progress;
    struct knn_recordio_reader *reader;
    struct s_output *out;
    struct knn_buf buf;
    float *row;
    size_t width;
    bool has_label;
};

static int s_to_csv_record(void *user, const struct knn_recordio_record *rec)
{
    struct s_to_csv *c = user;
    int rc;
    if (!c->row) {
        struct knn_recordio_record_info info;
        if ((rc = knn_recordio_record_probe(&info, rec)))
            return rc;
        if (info.width > S_MAX_WIDTH)
            return knn_error_set(
                KNN_ETOOBIG, "record %llu at offset %llu: %llu features is over the cap of %llu",
                (unsigned long long)rec->index, (unsigned long long)rec->offset, (unsigned long long)info.width,
                (unsigned long long)S_MAX_WIDTH);
        c->width = (size_t)info.width;
        c->has_label = info.has_label;
        if (!(c->row = knn_malloc_array(c->width ? c->width : 1, sizeof(float))))
            return KNN_ENOMEM;
    }
    float label;
    bool has_label;
    if ((rc = knn_recordio_record_decode(c->row, &label, &has_label, rec, c->width)))
        return rc;
    if (has_label != c->has_label)
        return knn_error_set(
            KNN_EFORMAT,
            "record %llu at offset %llu: %s a label but record 0 %s (CSV needs the same columns on every line)",
            (unsigned long long)rec->index, (unsigned long long)rec->offset, has_label ? "has" : "has no",
            c->has_label ? "has one" : "has none");
    if ((rc = knn_recordio_csv_write_row(&c->buf, has_label ? &label : NULL, c->row, c->width)))
        return rc;
    knn_progress_add(c->progress, 0, 1);
    return c->buf.len >= S_FLUSH_BYTES ? s_output_write(c->out, &c->buf) : 0;
}

static int s_to_csv_chunk(void *user, const uint8_t *data, size_t len)
{
    struct s_to_csv *c = user;
    return knn_recordio_reader_feed(c->reader, data, len, s_to_csv_record, c);
}

/* ---- convert --to recordio ---- */

struct s_to_rec {
    struct knn_progress *progress;
    struct knn_recordio_rows *rows;
    struct s_output *out;
    struct knn_buf buf;
    bool labels;
};

static int s_to_rec_batch(void *user, const float *features, const float *labels, size_t n)
{
    struct s_to_rec *c = user;
    size_t dim = knn_recordio_rows_feature_dim(c->rows);
    knn_progress_add(c->progress, 0, n);
    for (size_t i = 0; i < n; i++) {
        int rc = knn_recordio_write_dense(&c->buf, features + i * dim, dim, labels ? &labels[i] : NULL);
        if (rc)
            return rc;
    }
    return c->buf.len >= S_FLUSH_BYTES ? s_output_write(c->out, &c->buf) : 0;
}

static int s_to_rec_chunk(void *user, const uint8_t *data, size_t len)
{
    struct s_to_rec *c = user;
    return knn_recordio_rows_feed(c->rows, data, len);
}

static int s_convert(const char *to, unsigned label_size, const char *in, const char *out_path,
                     struct knn_progress *progress)
{
    struct s_output out;
    uint64_t bytes;
    int rc;
    /* Large enough for a flush's worth plus one more row or record. */
    size_t buf_max = (size_t)1 << 31;
    if (strcmp(to, "csv") == 0) {
        struct s_to_csv c;
        memset(&c, 0, sizeof(c));
        c.progress = progress;
        knn_buf_init(&c.buf, buf_max);
        c.out = &out;
        if ((rc = s_output_open(&out, out_path)))
            return rc;
        if (!(rc = knn_recordio_reader_new(&c.reader, NULL)) && !(rc = s_read_chunks(in, s_to_csv_chunk, &c, &bytes, progress)) &&
            !(rc = knn_recordio_reader_finish(c.reader)))
            rc = s_output_write(&out, &c.buf);
        knn_progress_end(progress);
        int crc = s_output_close(&out, rc == 0);
        knn_recordio_reader_destroy(c.reader);
        knn_buf_clean_up(&c.buf);
        knn_free(c.row);
        return rc ? rc : crc;
    }
    struct s_to_rec c;
    memset(&c, 0, sizeof(c));
    c.progress = progress;
    knn_buf_init(&c.buf, buf_max);
    c.out = &out;
    struct knn_recordio_rows_options o = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    o.format = KNN_RECORDIO_CSV;
    o.label_size = label_size;
    o.labels = label_size ? KNN_RECORDIO_LABELS_REQUIRE : KNN_RECORDIO_LABELS_IGNORE;
    o.max_feature_dim = S_MAX_WIDTH;
    if ((rc = knn_recordio_rows_new(&c.rows, &o, s_to_rec_batch, &c)))
        return rc;
    if ((rc = s_output_open(&out, out_path))) {
        knn_recordio_rows_destroy(c.rows);
        return rc;
    }
    if (!(rc = s_read_chunks(in, s_to_rec_chunk, &c, &bytes, progress)) && !(rc = knn_recordio_rows_finish(c.rows)))
        rc = s_output_write(&out, &c.buf);
    knn_progress_end(progress);
    int crc = s_output_close(&out, rc == 0);
    knn_recordio_rows_destroy(c.rows);
    knn_buf_clean_up(&c.buf);
    return rc ? rc : crc;
}

int knn_cmd_recordio(int argc, char **argv)
{
    if (argc < 2)
        return knn_usage_error("recordio", S_SYNOPSIS, "needs a subcommand (inspect or convert)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    const char *sub = argv[1];
    const char *paths[2] = {NULL, NULL};
    size_t npaths = 0;
    bool as_json = false, quiet = false;
    const char *to = NULL;
    long label_size = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strcmp(a, "--json") == 0 && strcmp(sub, "inspect") == 0) {
            as_json = true;
        } else if (strcmp(a, "--to") == 0 && i + 1 < argc && strcmp(sub, "convert") == 0) {
            to = argv[++i];
        } else if (strcmp(a, "--label-size") == 0 && i + 1 < argc && strcmp(sub, "convert") == 0) {
            char *end;
            const char *v = argv[++i];
            label_size = strtol(v, &end, 10);
            if (*end || end == v || (label_size != 0 && label_size != 1))
                return knn_usage_error("recordio", S_SYNOPSIS, "--label-size must be 0 or 1, not '%s'", v);
        } else if (a[0] == '-' && a[1]) {
            return knn_usage_error("recordio", S_SYNOPSIS, "%s: unknown option '%s'", sub, a);
        } else if (npaths < 2) {
            paths[npaths++] = a;
        } else {
            return knn_usage_error("recordio", S_SYNOPSIS, "%s: too many arguments ('%s')", sub, a);
        }
    }
    bool inspect = strcmp(sub, "inspect") == 0;
    if (inspect && npaths != 1)
        return knn_usage_error("recordio", S_SYNOPSIS, "inspect needs one FILE (or - for stdin)");
    if (!inspect && strcmp(sub, "convert") != 0)
        return knn_usage_error("recordio", S_SYNOPSIS, "unknown subcommand '%s' (inspect or convert)", sub);
    if (!inspect && (npaths != 2 || !to || (strcmp(to, "csv") != 0 && strcmp(to, "recordio") != 0)))
        return knn_usage_error("recordio", S_SYNOPSIS, "convert needs --to csv|recordio, IN and OUT");
    /* Progress on stderr (a live line on a terminal, a log line every 5 s otherwise): never on stdout. */
    struct knn_progress *progress = NULL;
    if (!quiet && knn_progress_new(&progress, NULL) != 0)
        progress = NULL; /* no progress display is no reason to fail */
    int rc = inspect ? s_inspect(paths[0], as_json, progress)
                     : s_convert(to, (unsigned)label_size, paths[0], paths[1], progress);
    knn_progress_destroy(progress);
    if (rc) {
        fprintf(stderr, "knn-runner recordio %s: %s: %s\n", sub, s_display(paths[0]), knn_error_message());
        return 1;
    }
    return 0;
}
