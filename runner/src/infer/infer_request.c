#include "infer/infer_request.h"
#include "infer/infer_impl.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/recordio/csv.h"
#include "knn/recordio/rows.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void knn_infer_rows_init(struct knn_infer_rows *rows, size_t dim, size_t max_rows)
{
    rows->n = 0;
    rows->dim = dim;
    rows->max_rows = max_rows;
    rows->cap = 0;
    rows->x = NULL;
}

void knn_infer_rows_clean_up(struct knn_infer_rows *rows)
{
    knn_free(rows->x);
    rows->x = NULL;
    rows->n = 0;
    rows->cap = 0;
}

void knn_infer_rows_reset(struct knn_infer_rows *rows)
{
    rows->n = 0;
}

/* A zeroed row at index `at` (not yet counted in n); KNN_ETOOBIG past max_rows, KNN_ENOMEM. */
int knn__infer_rows_new_row(float **out, struct knn_infer_rows *rows, size_t at)
{
    if (at >= rows->max_rows)
        return knn_error_set(KNN_ETOOBIG, "row %zu: more than %zu rows in one request", at + 1, rows->max_rows);
    if (at >= rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        if (cap > rows->max_rows)
            cap = rows->max_rows;
        size_t elems;
        if (knn_mul_size(&elems, cap, rows->dim ? rows->dim : 1))
            return KNN_ENOMEM;
        float *x = knn_realloc_array(rows->x, elems, sizeof(float));
        if (!x)
            return KNN_ENOMEM;
        rows->x = x;
        rows->cap = cap;
    }
    *out = rows->x + at * rows->dim;
    memset(*out, 0, rows->dim * sizeof(float));
    return 0;
}

static int s_check_value(float *dst, double v, size_t row, size_t col)
{
    if (!isfinite(v))
        return knn_error_set(KNN_ERANGE, "row %zu, feature %zu: value is not a finite number", row, col);
    float f = (float)v;
    if (!isfinite(f))
        return knn_error_set(KNN_ERANGE, "row %zu, feature %zu: value %g is out of float32 range", row, col, v);
    *dst = f;
    return 0;
}

/* ---- CSV (values parsed by protobuf-recordio's CSV reader, so training and inference agree) ---- */

static int s_decode_csv(struct knn_infer_rows *rows, size_t *n, int label_size, const uint8_t *body, size_t len)
{
    const char *p = (const char *)body, *end = p + len;
    size_t line = 0, width = rows->dim + (size_t)label_size;
    float *scratch = NULL;
    int rc = 0;
    if (label_size > 0 && !(scratch = knn_malloc_array(width, sizeof(float))))
        return KNN_ENOMEM;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        line++;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < le) {
            float *dst;
            if ((rc = knn__infer_rows_new_row(&dst, rows, *n)) != 0)
                break;
            rc = knn_recordio_csv_parse_line(scratch ? scratch : dst, width, p, (size_t)(le - p), line);
            if (rc) {
                rc = knn_error_wrap(rc, "row %zu (%zu features%s)", *n + 1, rows->dim,
                                    label_size > 0 ? " after the label columns" : "");
                break;
            }
            if (scratch)
                memcpy(dst, scratch + label_size, rows->dim * sizeof(float));
            (*n)++;
        }
        p = eol ? eol + 1 : end;
    }
    knn_free(scratch);
    return rc;
}

/* ---- JSON and JSON Lines ---- */

static int s_number_array(float *dst, size_t dim, const json_t *arr, size_t row, const char *what)
{
    if (!json_is_array(arr))
        return knn_error_set(KNN_EFORMAT, "row %zu: %s is not an array", row, what);
    size_t n = json_array_size(arr);
    if (n != dim)
        return knn_error_set(KNN_EMISMATCH, "row %zu: %s has %zu values, expected %zu", row, what, n, dim);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_number(v))
            return knn_error_set(KNN_EFORMAT, "row %zu: %s[%zu] is not a number", row, what, i);
        int rc = s_check_value(&dst[i], json_number_value(v), row, i + 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_sparse_row(float *dst, size_t dim, const json_t *feat, size_t row)
{
    const json_t *keys = json_object_get(feat, "keys");
    const json_t *shape = json_object_get(feat, "shape");
    const json_t *values = json_object_get(feat, "values");
    if (!json_is_array(keys) || !json_is_array(values))
        return knn_error_set(KNN_EFORMAT, "row %zu: sparse features need \"keys\" and \"values\" arrays", row);
    if (!json_is_array(shape) || json_array_size(shape) != 1 || !json_is_integer(json_array_get(shape, 0)))
        return knn_error_set(KNN_EFORMAT, "row %zu: sparse features need \"shape\": [feature_dim]", row);
    json_int_t width = json_integer_value(json_array_get(shape, 0));
    if (width < 0 || (uint64_t)width != dim)
        return knn_error_set(
            KNN_EMISMATCH, "row %zu: sparse shape [%lld], expected [%zu]", row, (long long)width, dim);
    size_t nk = json_array_size(keys);
    if (nk != json_array_size(values))
        return knn_error_set(
            KNN_EFORMAT, "row %zu: %zu keys but %zu values", row, nk, json_array_size(values));
    for (size_t i = 0; i < nk; i++) {
        const json_t *k = json_array_get(keys, i);
        const json_t *v = json_array_get(values, i);
        if (!json_is_integer(k) || json_integer_value(k) < 0 || (uint64_t)json_integer_value(k) >= dim)
            return knn_error_set(
                KNN_ERANGE, "row %zu: keys[%zu] is not an integer column in [0, %zu)", row, i, dim);
        if (!json_is_number(v))
            return knn_error_set(KNN_EFORMAT, "row %zu: values[%zu] is not a number", row, i);
        int rc = s_check_value(&dst[json_integer_value(k)], json_number_value(v), row, (size_t)json_integer_value(k) + 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_instance_row(float *dst, size_t dim, const json_t *inst, size_t row)
{
    if (!json_is_object(inst))
        return knn_error_set(KNN_EFORMAT, "row %zu: instance is not a JSON object", row);
    const json_t *features = json_object_get(inst, "features");
    if (features)
        return s_number_array(dst, dim, features, row, "\"features\"");
    const json_t *data = json_object_get(inst, "data");
    const json_t *feat = json_is_object(data) ? json_object_get(data, "features") : NULL;
    if (!json_is_object(feat))
        return knn_error_set(
            KNN_EFORMAT, "row %zu: instance has neither \"features\" nor \"data\": {\"features\": {...}}", row);
    if (json_object_get(feat, "keys"))
        return s_sparse_row(dst, dim, feat, row);
    const json_t *values = json_object_get(feat, "values");
    if (!values)
        return knn_error_set(KNN_EFORMAT, "row %zu: \"data\".\"features\" has no \"values\"", row);
    return s_number_array(dst, dim, values, row, "\"data\".\"features\".\"values\"");
}

static json_t *s_load(const uint8_t *body, size_t len, const char *what, size_t line)
{
    json_error_t err;
    json_t *doc = json_loadb((const char *)body, len, 0, &err);
    if (!doc) {
        if (line)
            knn_error_set(
                KNN_EFORMAT, "row %zu (JSON Lines line %zu): %s at column %d", line, line, err.text, err.column);
        else
            knn_error_set(
                KNN_EFORMAT, "%s: %s at line %d, column %d (byte %d)", what, err.text, err.line, err.column,
                err.position);
    }
    return doc;
}

static int s_decode_json(struct knn_infer_rows *rows, size_t *n, const uint8_t *body, size_t len)
{
    int rc = 0;
    if (knn__infer_json_fast(rows, n, body, len, 0))
        return 0;
    json_t *doc = s_load(body, len, "JSON body", 0);
    if (!doc)
        return KNN_EFORMAT;
    const json_t *instances = json_is_object(doc) ? json_object_get(doc, "instances") : NULL;
    if (!json_is_array(instances)) {
        rc = knn_error_set(KNN_EFORMAT, "JSON body: expected an object with an \"instances\" array");
        goto on_error;
    }
    for (size_t i = 0; i < json_array_size(instances); i++) {
        float *dst;
        rc = knn__infer_rows_new_row(&dst, rows, *n);
        if (rc)
            goto on_error;
        rc = s_instance_row(dst, rows->dim, json_array_get(instances, i), *n + 1);
        if (rc)
            goto on_error;
        (*n)++;
    }
on_error:
    json_decref(doc);
    return rc;
}

static int s_decode_jsonlines(struct knn_infer_rows *rows, size_t *n, const uint8_t *body, size_t len)
{
    if (knn__infer_json_fast(rows, n, body, len, 1))
        return 0;
    const uint8_t *p = body, *end = body + len;
    size_t line = 0;
    while (p < end) {
        const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = eol ? eol : end;
        line++;
        const uint8_t *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < le) {
            json_t *inst = s_load(p, (size_t)(le - p), NULL, line);
            if (!inst)
                return KNN_EFORMAT;
            float *dst;
            int rc = knn__infer_rows_new_row(&dst, rows, *n);
            if (rc == 0)
                rc = s_instance_row(dst, rows->dim, inst, *n + 1);
            json_decref(inst);
            if (rc)
                return rc == KNN_ETOOBIG || rc == KNN_ENOMEM ? rc : knn_error_wrap(rc, "JSON Lines line %zu", line);
            (*n)++;
        }
        p = eol ? eol + 1 : end;
    }
    return 0;
}

/* ---- RecordIO-protobuf (protobuf-recordio's row decoder) ---- */

struct s_recordio_sink {
    struct knn_infer_rows *rows;
    size_t *n;
    int failed; /* the error came from here (the row cap), not from the reader */
};

static int s_recordio_rows(void *user, const float *features, const float *labels, size_t count)
{
    struct s_recordio_sink *sink = user;
    for (size_t i = 0; i < count; i++) {
        float *dst;
        int rc = knn__infer_rows_new_row(&dst, sink->rows, *sink->n);
        if (rc) {
            sink->failed = 1;
            return rc;
        }
        memcpy(dst, features + i * sink->rows->dim, sink->rows->dim * sizeof(float));
        (*sink->n)++;
    }
    return 0;
}

static int s_decode_recordio(struct knn_infer_rows *rows, size_t *n, const uint8_t *body, size_t len)
{
    struct knn_recordio_rows_options ro = KNN_RECORDIO_ROWS_OPTIONS_INIT;
    struct knn_recordio_rows *dec = NULL;
    struct s_recordio_sink sink = {rows, n, 0};
    ro.format = KNN_RECORDIO_PROTOBUF;
    ro.feature_dim = rows->dim;
    ro.labels = KNN_RECORDIO_LABELS_IGNORE;
    ro.batch_rows = 256;
    ro.max_record_bytes = len ? len : 1;
    int rc = knn_recordio_rows_new(&dec, &ro, s_recordio_rows, &sink);
    if (rc == 0)
        rc = knn_recordio_rows_feed(dec, body, len);
    if (rc == 0)
        rc = knn_recordio_rows_finish(dec);
    knn_recordio_rows_destroy(dec);
    if (rc == KNN_ETOOBIG && !sink.failed) {
        /* The reader's cap is the body's length: a record longer than that is cut short. */
        char why[256];
        snprintf(why, sizeof(why), "%s", knn_error_message());
        return knn_error_set(KNN_ETRUNCATED, "RecordIO-protobuf body: truncated (%zu bytes): %s", len, why);
    }
    return rc ? knn_error_wrap(rc, "RecordIO-protobuf body") : 0;
}

int knn_infer_decode(
    struct knn_infer_rows *rows, const struct knn_mime *content_type, const uint8_t *body, size_t len)
{
    size_t n = rows->n;
    int rc;
    switch (content_type->media) {
    case KNN_MEDIA_CSV:
        rc = s_decode_csv(rows, &n, content_type->label_size > 0 ? content_type->label_size : 0, body, len);
        break;
    case KNN_MEDIA_JSON:
        rc = s_decode_json(rows, &n, body, len);
        break;
    case KNN_MEDIA_JSONLINES:
        rc = s_decode_jsonlines(rows, &n, body, len);
        break;
    case KNN_MEDIA_RECORDIO_PB:
        rc = s_decode_recordio(rows, &n, body, len);
        break;
    default:
        rc = knn_error_set(
            KNN_EUNSUPPORTED, "Content-Type must be text/csv, application/json, application/jsonlines or "
                              "application/x-recordio-protobuf");
        break;
    }
    if (rc == 0)
        rows->n = n;
    return rc;
}
