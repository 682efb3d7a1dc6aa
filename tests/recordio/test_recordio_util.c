#include "test_recordio_util.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn_test.h"

#include <stdlib.h>
#include <string.h>

const char *const rt_small_fixtures[] = {
    "dense_f32_labels",
    "dense_f64_labels",
    "dense_int32",
    "dense_nolabels",
    "dense_f32_f64label_pad",
    "sparse_f32",
    "sparse_empty_rows_nolabels",
    "topics_like",
    NULL,
};

static int s_collect(void *user, const struct knn_recordio_record *rec)
{
    struct rt_records *r = user;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        void *a = knn_realloc_array(r->data, cap, sizeof(*r->data));
        if (!a)
            return KNN_ENOMEM;
        r->data = a;
        if (!(a = knn_realloc_array(r->len, cap, sizeof(*r->len))))
            return KNN_ENOMEM;
        r->len = a;
        if (!(a = knn_realloc_array(r->index, cap, sizeof(*r->index))))
            return KNN_ENOMEM;
        r->index = a;
        if (!(a = knn_realloc_array(r->offset, cap, sizeof(*r->offset))))
            return KNN_ENOMEM;
        r->offset = a;
        r->cap = cap;
    }
    uint8_t *copy = knn_malloc(rec->len ? rec->len : 1);
    if (!copy)
        return KNN_ENOMEM;
    if (rec->len)
        memcpy(copy, rec->data, rec->len);
    r->data[r->n] = copy;
    r->len[r->n] = rec->len;
    r->index[r->n] = rec->index;
    r->offset[r->n] = rec->offset;
    r->n++;
    return 0;
}

int rt_read_records(struct rt_records *out, const uint8_t *data, size_t len, size_t chunk, size_t max_record_bytes)
{
    memset(out, 0, sizeof(*out));
    struct knn_recordio_reader_options o = KNN_RECORDIO_READER_OPTIONS_INIT;
    if (max_record_bytes)
        o.max_record_bytes = max_record_bytes;
    struct knn_recordio_reader *reader;
    int rc = knn_recordio_reader_new(&reader, &o);
    if (rc)
        return rc;
    if (chunk == RT_WHOLE || chunk > len)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len && !rc; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = knn_recordio_reader_feed(reader, data + off, n, s_collect, out);
    }
    if (!rc)
        rc = knn_recordio_reader_finish(reader);
    if (rc)
        snprintf(out->msg, sizeof(out->msg), "%s", knn_error_message());
    out->rc = rc;
    knn_recordio_reader_destroy(reader);
    return 0;
}

void rt_records_clean_up(struct rt_records *r)
{
    for (size_t i = 0; i < r->n; i++)
        knn_free(r->data[i]);
    knn_free(r->data);
    knn_free(r->len);
    knn_free(r->index);
    knn_free(r->offset);
    memset(r, 0, sizeof(*r));
}

int rt_fixture_load(struct rt_fixture *f, const char *name)
{
    char rel[256], path[1024];
    memset(f, 0, sizeof(*f));
    snprintf(rel, sizeof(rel), "recordio/%s.rec", name);
    int rc = knn_test_read_file(knn_test_fixture_path(path, sizeof(path), rel), &f->data, &f->len);
    if (rc) {
        fprintf(stderr, "cannot read %s\n", path);
        return rc;
    }
    snprintf(rel, sizeof(rel), "recordio/%s.json", name);
    json_error_t err;
    f->json = json_load_file(knn_test_fixture_path(path, sizeof(path), rel), 0, &err);
    return 0;
}

void rt_fixture_clean_up(struct rt_fixture *f)
{
    knn_free(f->data);
    json_decref(f->json);
    memset(f, 0, sizeof(*f));
}

double rt_json_number(const json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

size_t rt_hex(uint8_t *out, size_t cap, const char *hex)
{
    size_t n = 0;
    while (*hex && n < cap) {
        while (*hex == ' ' || *hex == '\n')
            hex++;
        if (!*hex)
            break;
        out[n++] = (uint8_t)strtoul((char[3]){hex[0], hex[1], 0}, NULL, 16);
        hex += 2;
    }
    return n;
}
