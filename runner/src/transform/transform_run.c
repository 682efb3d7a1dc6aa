#include "transform/transform_run.h"

#include "infer/infer_request.h"
#include "infer/infer_response.h"
#include "progress.h"
#include "transform/transform_store.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/recordio/reader.h"
#include "knn/recordio/writer.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define S_READ_CHUNK ((size_t)1 << 20)
#define S_PROGRESS_TTY_NS 500000000ull   /* a live line every 0.5 s on a terminal */
#define S_PROGRESS_LOG_NS 5000000000ull  /* else a log line every 5 s */

int knn_split_type_parse(enum knn_split_type *out, const char *name)
{
    if (strcasecmp(name, "Line") == 0)
        *out = KNN_SPLIT_LINE;
    else if (strcasecmp(name, "RecordIO") == 0)
        *out = KNN_SPLIT_RECORDIO;
    else if (strcasecmp(name, "None") == 0)
        *out = KNN_SPLIT_NONE;
    else
        return knn_error_set(KNN_EINVAL, "split type '%s': expected Line, RecordIO or None", name);
    return 0;
}

struct s_progress {
    uint64_t start_ns, last_ns;
    int tty;
    size_t objects_total, objects_done, failed;
    size_t rows;
    uint64_t bytes;
    /* the object being read: its bytes read, its size (UINT64_MAX unknown), when it started */
    const char *object;
    uint64_t object_bytes, object_size, object_start_ns;
};

/* "object 2/5 x.csv: 3.0 MiB of 10.0 MiB (30%), ETA 12 s; " or "" between objects. */
static void s_object_status(char *buf, size_t size, const struct s_progress *p, uint64_t now)
{
    char done[32], total[32];
    buf[0] = '\0';
    if (!p->object)
        return;
    knn_progress_format_bytes(done, sizeof(done), (double)p->object_bytes);
    if (p->object_size == UINT64_MAX || p->object_size == 0) {
        snprintf(buf, size, "object %zu/%zu %s: %s; ", p->objects_done + 1, p->objects_total, p->object, done);
        return;
    }
    double s = (double)(now - p->object_start_ns) / 1e9, frac = (double)p->object_bytes / (double)p->object_size;
    knn_progress_format_bytes(total, sizeof(total), (double)p->object_size);
    if (frac > 0 && s > 0 && frac < 1)
        snprintf(buf, size, "object %zu/%zu %s: %s of %s (%.0f%%), ETA %.0f s; ", p->objects_done + 1, p->objects_total,
                 p->object, done, total, 100 * frac, s * (1 - frac) / frac);
    else
        snprintf(buf, size, "object %zu/%zu %s: %s of %s (%.0f%%); ", p->objects_done + 1, p->objects_total,
                 p->object, done, total, 100 * (frac > 1 ? 1 : frac));
}

static void s_progress(struct s_progress *p, int force)
{
    uint64_t now = knn_clock_monotonic_ns();
    uint64_t every = p->tty ? S_PROGRESS_TTY_NS : S_PROGRESS_LOG_NS;
    if (!force && now - p->last_ns < every)
        return;
    p->last_ns = now;
    double s = (double)(now - p->start_ns) / 1e9;
    double rate = s > 0 ? (double)p->rows / s : 0;
    char object[512];
    s_object_status(object, sizeof(object), p, now);
    if (p->tty) {
        fprintf(stderr, "\r\033[Ktransform: %s%zu/%zu objects, %zu failed, %zu rows (%.0f rows/s), %.1f MB read, %.1f s",
                object, p->objects_done, p->objects_total, p->failed, p->rows, rate, (double)p->bytes / 1e6, s);
        if (force)
            fputc('\n', stderr);
        fflush(stderr);
    } else {
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "transform: %s%zu/%zu objects, %zu failed, %zu rows (%.0f rows/s), %.1f MB read",
                object, p->objects_done, p->objects_total, p->failed, p->rows, rate, (double)p->bytes / 1e6);
    }
}

/* One object being transformed. */
struct s_object {
    const struct knn_model *model;
    const struct knn_transform_options *opts;
    struct knn_transform_writer *writer;
    struct s_progress *progress;
    const char *name;         /* for messages */
    struct knn_buf batch;     /* records waiting to be sent as one request */
    size_t batch_first;       /* 1-based number of the first record in batch */
    size_t batch_records;
    size_t records;           /* records seen */
    struct knn_buf line;      /* Line split: a line continued across reads */
    struct knn_buf frame;     /* RecordIO split: one re-framed record */
    struct knn_buf out;       /* encoded responses */
    struct knn_infer_rows rows;
};

static int s_flush(struct s_object *o)
{
    int rc;
    struct knn_predictions pred;
    memset(&pred, 0, sizeof(pred));
    if (o->batch_records == 0)
        return 0;
    knn_infer_rows_reset(&o->rows);
    rc = knn_infer_decode(&o->rows, &o->opts->content_type, o->batch.data, o->batch.len);
    if (rc) {
        rc = knn_error_wrap(rc, "records %zu-%zu", o->batch_first, o->batch_first + o->batch_records - 1);
        goto done;
    }
    if (o->rows.n) {
        struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
        po.verbose = o->opts->accept.verbose;
        po.threads = o->opts->threads;
        rc = knn_model_predict(o->model, o->rows.n, o->rows.x, &po, &pred);
        if (rc)
            goto done;
        knn_buf_reset(&o->out);
        rc = knn_infer_encode(&o->out, &o->opts->accept, &pred, 0, pred.n);
        if (rc == 0 && o->opts->accept.media == KNN_MEDIA_JSON)
            rc = knn_buf_append(&o->out, "\n", 1);
        if (rc == 0)
            rc = knn_transform_writer_write(o->writer, o->out.data, o->out.len);
        if (rc)
            goto done;
        o->progress->rows += o->rows.n;
    }
done:
    knn_predictions_clean_up(&pred);
    knn_buf_reset(&o->batch);
    o->batch_first += o->batch_records;
    o->batch_records = 0;
    s_progress(o->progress, 0);
    return rc;
}

/* One record (a line with its newline, a RecordIO frame, or a whole object). */
static int s_emit(struct s_object *o, const void *data, size_t len)
{
    int rc;
    int alone = o->opts->single_record || o->opts->content_type.media == KNN_MEDIA_JSON;
    o->records++;
    if (len > o->opts->max_payload_bytes)
        return knn_error_set(KNN_ETOOBIG, "record %zu: %zu bytes is over the max payload of %zu bytes", o->records,
                             len, o->opts->max_payload_bytes);
    if (alone || o->batch.len + len > o->opts->max_payload_bytes) {
        if ((rc = s_flush(o)) != 0)
            return rc;
    }
    if ((rc = knn_buf_append(&o->batch, data, len)) != 0)
        return rc;
    o->batch_records++;
    return alone ? s_flush(o) : 0;
}

static int s_feed_lines(struct s_object *o, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl + 1 - p) : (size_t)(end - p);
        int rc;
        if (!nl) { /* no newline yet: keep the piece */
            rc = knn_buf_append(&o->line, p, n);
            if (rc)
                return knn_error_wrap(rc, "record %zu: line over the max payload", o->records + 1);
            return 0;
        }
        if (o->line.len) {
            if ((rc = knn_buf_append(&o->line, p, n)) != 0)
                return knn_error_wrap(rc, "record %zu: line over the max payload", o->records + 1);
            rc = s_emit(o, o->line.data, o->line.len);
            knn_buf_reset(&o->line);
        } else {
            rc = s_emit(o, p, n);
        }
        if (rc)
            return rc;
        p += n;
    }
    return 0;
}

static int s_on_recordio(void *user, const struct knn_recordio_record *rec)
{
    struct s_object *o = user;
    knn_buf_reset(&o->frame);
    int rc = knn_recordio_write_frame(&o->frame, rec->data, rec->len);
    return rc ? rc : s_emit(o, o->frame.data, o->frame.len);
}

static int s_transform_object(
    struct s_object *o, struct knn_transform_store *in, struct knn_transform_store *out, const char *name,
    uint8_t *chunk)
{
    char out_name[4096];
    struct knn_transform_reader *reader = NULL;
    struct knn_recordio_reader *rio = NULL;
    int rc;

    if ((size_t)snprintf(out_name, sizeof(out_name), "%s.out", name) >= sizeof(out_name))
        return knn_error_set(KNN_EINVAL, "%s: name too long", name);
    if ((rc = knn_transform_reader_open(&reader, in, name)) != 0)
        return rc;
    o->progress->object = name;
    o->progress->object_bytes = 0;
    o->progress->object_size = knn_transform_reader_size(reader);
    o->progress->object_start_ns = knn_clock_monotonic_ns();
    if ((rc = knn_transform_writer_open(&o->writer, out, out_name)) != 0)
        goto done;
    if (o->opts->split == KNN_SPLIT_RECORDIO) {
        struct knn_recordio_reader_options ro = KNN_RECORDIO_READER_OPTIONS_INIT;
        ro.max_record_bytes = o->opts->max_payload_bytes;
        if ((rc = knn_recordio_reader_new(&rio, &ro)) != 0)
            goto done;
    }
    for (;;) {
        size_t got = 0;
        if ((rc = knn_transform_reader_read(reader, chunk, S_READ_CHUNK, &got)) != 0)
            goto done;
        if (got == 0)
            break;
        o->progress->bytes += got;
        o->progress->object_bytes += got;
        if (o->progress->object_size == UINT64_MAX) /* an S3 object's size is known once its GET answered */
            o->progress->object_size = knn_transform_reader_size(reader);
        s_progress(o->progress, 0);
        switch (o->opts->split) {
        case KNN_SPLIT_LINE:
            rc = s_feed_lines(o, chunk, got);
            break;
        case KNN_SPLIT_RECORDIO:
            rc = knn_recordio_reader_feed(rio, chunk, got, s_on_recordio, o);
            break;
        case KNN_SPLIT_NONE:
            rc = knn_buf_append(&o->line, chunk, got);
            if (rc)
                rc = knn_error_wrap(rc, "the object is over the max payload (split type None sends it whole)");
            break;
        }
        if (rc)
            goto done;
    }
    if (o->progress->tty) { /* the object's last state on the live line, however short it was */
        o->progress->last_ns = 0;
        s_progress(o->progress, 0);
    }
    if (o->opts->split == KNN_SPLIT_RECORDIO)
        rc = knn_recordio_reader_finish(rio);
    else if (o->line.len)
        rc = s_emit(o, o->line.data, o->line.len);
    if (rc == 0)
        rc = s_flush(o);
    if (rc == 0) {
        rc = knn_transform_writer_commit(o->writer);
        o->writer = NULL;
    }
done:
    o->progress->object = NULL;
    knn_transform_writer_abort(o->writer);
    o->writer = NULL;
    knn_recordio_reader_destroy(rio);
    knn_transform_reader_close(reader);
    return rc;
}

int knn_transform_run(
    struct knn_transform_summary *summary, const struct knn_model *model, const struct knn_transform_options *opts)
{
    struct knn_transform_store *in = NULL, *out = NULL;
    char **names = NULL;
    size_t n = 0;
    uint8_t *chunk = NULL;
    struct s_progress progress;
    int rc;

    memset(summary, 0, sizeof(*summary));
    memset(&progress, 0, sizeof(progress));
    progress.start_ns = progress.last_ns = knn_clock_monotonic_ns();
    progress.tty = isatty(2);
    if ((rc = knn_transform_store_open(&in, opts->input)) != 0 ||
        (rc = knn_transform_store_open(&out, opts->output)) != 0 ||
        (rc = knn_transform_store_list(in, &names, &n)) != 0)
        goto done;
    if (!(chunk = knn_malloc(S_READ_CHUNK))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    progress.objects_total = opts->nparts > 1 ? n / opts->nparts + (opts->part < n % opts->nparts) : n;
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "transform: %zu objects under %s -> %s (%s, split %s, accept %s%s)", n,
            opts->input, opts->output, knn_media_name(opts->content_type.media),
            opts->split == KNN_SPLIT_LINE ? "Line" : opts->split == KNN_SPLIT_RECORDIO ? "RecordIO" : "None",
            knn_media_name(opts->accept.media), opts->accept.verbose ? "; verbose=true" : "");
    const size_t dim = knn_model_get_config(model)->feature_dim;
    size_t mine = 0;
    for (size_t i = 0; i < n; i++) {
        char where[4096];
        struct s_object o;
        if (opts->nparts > 1 && i % opts->nparts != opts->part)
            continue; /* another rank's object (mpirun: objects i mod N) */
        mine++;
        memset(&o, 0, sizeof(o));
        o.model = model;
        o.opts = opts;
        o.progress = &progress;
        o.name = names[i];
        o.batch_first = 1;
        knn_buf_init(&o.batch, opts->max_payload_bytes);
        knn_buf_init(&o.line, opts->max_payload_bytes);
        knn_buf_init(&o.frame, opts->max_payload_bytes + 64);
        knn_buf_init(&o.out, (size_t)1 << 34);
        knn_infer_rows_init(&o.rows, dim, opts->max_payload_bytes / 2 + 1);
        knn_transform_store_describe(where, sizeof(where), in, names[i]);
        int orc = s_transform_object(&o, in, out, names[i], chunk);
        if (orc) {
            progress.failed++;
            if (progress.tty)
                fputc('\n', stderr);
            KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "transform: FAILED %s: %s", where, knn_error_message());
        } else {
            KNN_LOG(KNN_LOG_DEBUG, KNN_LS_JOB, "transform: %s: %zu records", where, o.records);
        }
        knn_buf_clean_up(&o.batch);
        knn_buf_clean_up(&o.line);
        knn_buf_clean_up(&o.frame);
        knn_buf_clean_up(&o.out);
        knn_infer_rows_clean_up(&o.rows);
        progress.objects_done++;
        s_progress(&progress, 0);
    }
    s_progress(&progress, 1);
    summary->objects = opts->nparts > 1 ? mine : n;
    summary->failed = progress.failed;
    summary->rows = progress.rows;
    summary->seconds = knn_clock_seconds_since(progress.start_ns);
done:
    knn_free(chunk);
    knn_transform_names_free(names, n);
    knn_transform_store_destroy(in);
    knn_transform_store_destroy(out);
    return rc;
}
