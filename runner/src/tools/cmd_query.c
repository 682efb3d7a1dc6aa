/*
 * knn-runner query: ask a model from the shell. Rows come from stdin or a file (CSV, JSON Lines,
 * JSON, RecordIO-protobuf, decoded as /invocations decodes them); every row's answer is printed:
 * the prediction, and the neighbours' labels, distances and (with --ids) their rows in the
 * model's sample. A table on a terminal, JSON Lines otherwise.
 *
 * Line formats (CSV, JSON Lines) are answered as their lines arrive (a row typed on a terminal is
 * answered at once), in batches of up to S_BATCH_ROWS; JSON and RecordIO-protobuf are read whole,
 * up to S_MAX_WHOLE_BYTES.
 */
#include "commands.h"
#include "infer/infer_request.h"
#include "infer/infer_response.h"
#include "infer/mime.h"
#include "serve/serve_model.h"
#include "usage.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define S_READ_BYTES ((size_t)1 << 16)
#define S_BATCH_ROWS 1024
#define S_MAX_LINE_BYTES ((size_t)64 << 20)   /* one row's line: 64 MiB is surely not a row */
#define S_MAX_WHOLE_BYTES ((size_t)1 << 30)   /* JSON and RecordIO-protobuf are read whole */

#define S_SYNOPSIS                                                                                                     \
    "usage: knn-runner query --model SRC [--input FILE|-] [--content-type TYPE] [--k K] [--ids]\n"                     \
    "                        [--format table|jsonl]\n"

static void s_usage(FILE *out)
{
    fputs(S_SYNOPSIS, out);
    fprintf(out,
            "\n"
            "Asks a k-NN model about rows read from --input (default: stdin) and prints, for every row,\n"
            "the predicted label (or value) and its k nearest neighbours: their labels and distances\n"
            "(squared L2; or similarities for INNER_PRODUCT / COSINE models, best first), and with --ids\n"
            "their rows in the model's sample (0-based, the order the index holds them).\n"
            "\n"
            "  --model SRC          model.tar.gz (local, s3://), or a model directory\n"
            "  --input FILE         the rows (default '-': stdin)\n"
            "  --content-type TYPE  text/csv (default; add ;label_size=1 to skip a label column),\n"
            "                       application/jsonlines, application/json, application/x-recordio-protobuf;\n"
            "                       default from the file name: .csv, .jsonl, .json, .rec / .recordio\n"
            "  --k K                show the K nearest (at most the model's k; the prediction always uses\n"
            "                       the model's k)\n"
            "  --ids                also the neighbours' rows in the sample\n"
            "  --format F           table (default on a terminal) or jsonl (default otherwise): one JSON\n"
            "                       object per row, {\"predicted_label\", \"labels\", \"distances\"[, \"ids\"]}\n"
            "\n"
            "CSV and JSON Lines rows are answered as they arrive: type a row, get its answer.\n"
            "Exit status: 0 every row answered, 1 a row or the model failed (the message names the row),\n"
            "2 usage error.\n"
            "\n"
            "examples:\n"
            "  echo '13.2,1.78,2.14,11.2,100,2.65,2.76,0.26,1.28,4.38,1.05,3.4,1050' | knn-runner query --model model.tar.gz\n"
            "  knn-runner query --model model.tar.gz --input test.csv --content-type 'text/csv;label_size=1' --ids\n"
            "  knn-runner query --model s3://bucket/output/my-job/output/model.tar.gz --input test.rec --k 3\n"
            "  knn-runner recordio convert --to csv test.rec - | cut -d, -f2- | knn-runner query --model model.tar.gz\n");
}

struct s_query {
    const struct knn_model *model;
    struct knn_mime type;
    size_t show_k; /* 0 = the model's */
    int ids;
    int table;
    size_t dim;
    size_t rows_done; /* rows answered so far (for row numbers) */
    struct knn_infer_rows rows;
    struct knn_buf out;
};

static void s_put_float(struct knn_buf *b, float v)
{
    char num[48];
    size_t n = knn_infer_format_float(num, sizeof(num), v);
    knn_buf_append(b, num, n);
}

/* One row's answer, JSON Lines. */
static int s_jsonl(struct s_query *q, const struct knn_predictions *p, size_t i, size_t k)
{
    struct knn_buf *b = &q->out;
    const float *lab = p->labels + i * p->k, *dist = p->distances + i * p->k;
    const int64_t *ids = p->ids ? p->ids + i * p->k : NULL;
    knn_buf_append_str(b, "{\"predicted_label\": ");
    if (isnan(p->predicted[i]))
        knn_buf_append_str(b, "null");
    else
        s_put_float(b, p->predicted[i]);
    static const char *const names[] = {"labels", "distances", "ids"};
    for (int f = 0; f < (ids ? 3 : 2); f++) {
        knn_buf_printf(b, ", \"%s\": [", names[f]);
        size_t shown = 0;
        for (size_t j = 0; j < k; j++) {
            if (isnan(lab[j])) /* a neighbour an IVF search could not fill */
                continue;
            if (shown++)
                knn_buf_append_str(b, ", ");
            if (f == 0)
                s_put_float(b, lab[j]);
            else if (f == 1)
                s_put_float(b, dist[j]);
            else
                knn_buf_printf(b, "%lld", (long long)ids[j]);
        }
        knn_buf_append_str(b, "]");
    }
    return knn_buf_append_str(b, "}\n");
}

/* One row's answer, as a small table. */
static int s_table(struct s_query *q, const struct knn_predictions *p, size_t i, size_t k)
{
    struct knn_buf *b = &q->out;
    const float *lab = p->labels + i * p->k, *dist = p->distances + i * p->k;
    char num[48];
    knn_infer_format_float(num, sizeof(num), p->predicted[i]);
    knn_buf_printf(b, "row %zu: predicted %s\n", q->rows_done + i + 1, isnan(p->predicted[i]) ? "none" : num);
    knn_buf_printf(b, "  %4s  %12s  %14s%s\n", "rank", "label", "distance", p->ids ? "  sample row" : "");
    for (size_t j = 0; j < k; j++) {
        if (isnan(lab[j]))
            continue;
        char l[48], d[48];
        knn_infer_format_float(l, sizeof(l), lab[j]);
        knn_infer_format_float(d, sizeof(d), dist[j]);
        knn_buf_printf(b, "  %4zu  %12s  %14s", j + 1, l, d);
        if (p->ids)
            knn_buf_printf(b, "  %10lld", (long long)p->ids[i * p->k + j]);
        knn_buf_append_str(b, "\n");
    }
    return 0;
}

static int s_flush_out(struct s_query *q)
{
    if (q->out.len && fwrite(q->out.data, 1, q->out.len, stdout) != q->out.len)
        return knn_error_set(KNN_EIO, "writing the answers to stdout: %s", strerror(errno));
    knn_buf_reset(&q->out);
    return fflush(stdout) == 0 ? 0 : knn_error_set(KNN_EIO, "writing the answers to stdout: %s", strerror(errno));
}

/* Decode `len` bytes holding whole rows, answer them, print the answers. */
static int s_answer(struct s_query *q, const uint8_t *body, size_t len)
{
    knn_infer_rows_reset(&q->rows);
    int rc = knn_infer_decode(&q->rows, &q->type, body, len);
    if (rc)
        return q->rows_done ? knn_error_wrap(rc, "after the first %zu rows", q->rows_done) : rc;
    if (!q->rows.n)
        return 0;
    struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
    po.verbose = 1;
    po.ids = q->ids;
    struct knn_predictions p;
    if ((rc = knn_model_predict(q->model, q->rows.n, q->rows.x, &po, &p)))
        return rc;
    size_t k = q->show_k && q->show_k < p.k ? q->show_k : p.k;
    for (size_t i = 0; i < p.n && !rc; i++)
        rc = q->table ? s_table(q, &p, i, k) : s_jsonl(q, &p, i, k);
    q->rows_done += p.n;
    knn_predictions_clean_up(&p);
    return rc ? rc : s_flush_out(q);
}

/* Line formats: answer complete lines as they arrive, up to S_BATCH_ROWS at a time. */
static int s_run_lines(struct s_query *q, int fd)
{
    struct knn_buf in;
    knn_buf_init(&in, S_MAX_LINE_BYTES + S_READ_BYTES);
    int rc = 0, eof = 0;
    uint64_t offset = 0; /* bytes of input before in.data */
    while (!rc && !eof) {
        if ((rc = knn_buf_reserve(&in, S_READ_BYTES))) {
            rc = knn_error_set(KNN_ETOOBIG, "input line at byte %llu is longer than %zu bytes",
                               (unsigned long long)offset, S_MAX_LINE_BYTES);
            break;
        }
        ssize_t n = read(fd, in.data + in.len, S_READ_BYTES);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = knn_error_set(KNN_EIO, "reading the input at byte %llu: %s",
                               (unsigned long long)(offset + in.len), strerror(errno));
            break;
        }
        if (n == 0)
            eof = 1;
        in.len += (size_t)n;
        /* Answer every complete line (all of it at the end of input), in batches. */
        size_t start = 0;
        while (!rc) {
            size_t end = start, lines = 0;
            for (size_t i = start; i < in.len && lines < S_BATCH_ROWS; i++)
                if (in.data[i] == '\n') {
                    end = i + 1;
                    lines++;
                }
            if (eof && lines < S_BATCH_ROWS)
                end = in.len;
            if (end == start)
                break;
            rc = s_answer(q, (const uint8_t *)in.data + start, end - start);
            start = end;
        }
        memmove(in.data, in.data + start, in.len - start);
        in.len -= start;
        offset += start;
        if (!rc && in.len > S_MAX_LINE_BYTES)
            rc = knn_error_set(KNN_ETOOBIG, "input line at byte %llu is longer than %zu bytes",
                               (unsigned long long)offset, S_MAX_LINE_BYTES);
    }
    knn_buf_clean_up(&in);
    return rc;
}

/* JSON and RecordIO-protobuf: the whole input is one body. */
static int s_run_whole(struct s_query *q, int fd)
{
    struct knn_buf in;
    knn_buf_init(&in, S_MAX_WHOLE_BYTES);
    int rc = 0;
    for (;;) {
        if ((rc = knn_buf_reserve(&in, S_READ_BYTES))) {
            rc = knn_error_set(KNN_ETOOBIG, "the input is over %zu MiB: split it, or use CSV or JSON Lines (streamed)",
                               S_MAX_WHOLE_BYTES >> 20);
            break;
        }
        ssize_t n = read(fd, in.data + in.len, S_READ_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = knn_error_set(KNN_EIO, "reading the input at byte %zu: %s", in.len, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        in.len += (size_t)n;
    }
    if (!rc)
        rc = s_answer(q, (const uint8_t *)in.data, in.len);
    knn_buf_clean_up(&in);
    return rc;
}

static const char *s_type_from_name(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return "text/csv";
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".jsonlines"))
        return "application/jsonlines";
    if (!strcasecmp(dot, ".json"))
        return "application/json";
    if (!strcasecmp(dot, ".rec") || !strcasecmp(dot, ".recordio") || !strcasecmp(dot, ".pbr"))
        return "application/x-recordio-protobuf";
    return "text/csv";
}

int knn_cmd_query(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"input", required_argument, NULL, 'i'},
        {"content-type", required_argument, NULL, 'c'}, {"k", required_argument, NULL, 'k'},
        {"ids", no_argument, NULL, 'I'}, {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *model_src = NULL, *input = "-", *type_s = NULL, *k_s = NULL, *format = NULL;
    int ids = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:i:c:k:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_src = optarg; break;
        case 'i': input = optarg; break;
        case 'c': type_s = optarg; break;
        case 'k': k_s = optarg; break;
        case 'I': ids = 1; break;
        case 'f': format = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: return knn_usage_getopt_error("query", S_SYNOPSIS, c, argv);
        }
    }
    if (optind < argc)
        return knn_usage_error("query", S_SYNOPSIS, "unexpected argument '%s'", argv[optind]);
    if (!model_src)
        return knn_usage_error("query", S_SYNOPSIS, "--model is required");
    struct s_query q;
    memset(&q, 0, sizeof(q));
    q.ids = ids;
    if (knn_mime_parse(&q.type, type_s ? type_s : s_type_from_name(input)) != 0)
        return knn_usage_error("query", S_SYNOPSIS, "--content-type: %s", knn_error_message());
    if (q.type.media != KNN_MEDIA_CSV && q.type.media != KNN_MEDIA_JSONLINES && q.type.media != KNN_MEDIA_JSON &&
        q.type.media != KNN_MEDIA_RECORDIO_PB)
        return knn_usage_error("query", S_SYNOPSIS, "--content-type '%s' is not one we decode", type_s);
    if (k_s) {
        char *end;
        unsigned long v = strtoul(k_s, &end, 10);
        if (!*k_s || *end || *k_s == '-' || v < 1 || v > 1024)
            return knn_usage_error("query", S_SYNOPSIS, "--k '%s': expected 1 to 1024", k_s);
        q.show_k = v;
    }
    if (!format)
        q.table = isatty(STDOUT_FILENO);
    else if (!strcmp(format, "table"))
        q.table = 1;
    else if (strcmp(format, "jsonl") && strcmp(format, "jsonlines"))
        return knn_usage_error("query", S_SYNOPSIS, "--format '%s': expected table or jsonl", format);

    /* A shell tool: its output is the answers; the library's INFO lines only with KNN_LOG_LEVEL. */
    const char *level = getenv("KNN_LOG_LEVEL");
    if (!level || !*level)
        knn_log_set_level(KNN_LOG_WARN);
    int fd = STDIN_FILENO;
    if (strcmp(input, "-") != 0 && (fd = open(input, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "knn-runner query: cannot open %s: %s\n", input, strerror(errno));
        return 1;
    }
    struct knn_model *model = NULL;
    if (knn_serve_model_load(&model, model_src) != 0) {
        fprintf(stderr, "knn-runner query: cannot load the model: %s\n", knn_error_message());
        if (fd != STDIN_FILENO)
            close(fd);
        return 1;
    }
    const struct knn_model_config *cfg = knn_model_get_config(model);
    int rc = 0;
    if (q.show_k > cfg->k) {
        rc = knn_error_set(KNN_EINVAL, "--k %zu: the model was trained with k=%zu, it knows at most %zu neighbours",
                           q.show_k, cfg->k, cfg->k);
    } else {
        q.model = model;
        q.dim = cfg->feature_dim;
        knn_infer_rows_init(&q.rows, q.dim, (size_t)1 << 24);
        knn_buf_init(&q.out, (size_t)1 << 30);
        rc = q.type.media == KNN_MEDIA_CSV || q.type.media == KNN_MEDIA_JSONLINES ? s_run_lines(&q, fd)
                                                                                   : s_run_whole(&q, fd);
        if (!rc)
            rc = s_flush_out(&q);
        knn_infer_rows_clean_up(&q.rows);
        knn_buf_clean_up(&q.out);
    }
    if (rc)
        fprintf(stderr, "knn-runner query: %s: %s\n", strcmp(input, "-") ? input : "stdin", knn_error_message());
    knn_model_destroy(model);
    if (fd != STDIN_FILENO)
        close(fd);
    return rc ? 1 : 0;
}
