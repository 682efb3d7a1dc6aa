/* RecordIO-protobuf writers: sizes computed bottom-up, then one pass of bytes into a knn_buf. */
#include "knn/recordio/writer.h"

#include "knn/common/error.h"
#include "knn/recordio/reader.h"

#include <string.h>

static size_t s_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *s_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A length-delimited field: tag, length, then the caller writes `len` bytes. */
static size_t s_ld_size(size_t len)
{
    return 1 + s_varint_size(len) + len;
}

static size_t s_values_bytes(const struct knn_recordio_tensor *t)
{
    switch (t->dtype) {
        case KNN_RECORDIO_FLOAT32:
            return t->nvalues * 4;
        case KNN_RECORDIO_FLOAT64:
            return t->nvalues * 8;
        case KNN_RECORDIO_INT32: {
            /* int32 is a varint of the value sign-extended to 64 bits: negatives take 10 bytes. */
            size_t n = 0;
            const int32_t *v = t->values;
            for (size_t i = 0; i < t->nvalues; i++)
                n += s_varint_size((uint64_t)(int64_t)v[i]);
            return n;
        }
        case KNN_RECORDIO_BYTES:
            break;
    }
    return 0;
}

static size_t s_u64s_bytes(const uint64_t *v, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += s_varint_size(v[i]);
    return total;
}

static int s_check_tensor(const struct knn_recordio_tensor *t, const char *name)
{
    if (t->dtype != KNN_RECORDIO_FLOAT32 && t->dtype != KNN_RECORDIO_FLOAT64 && t->dtype != KNN_RECORDIO_INT32)
        return knn_error_set(KNN_EINVAL, "tensor \"%s\": cannot write dtype %d", name, (int)t->dtype);
    if ((t->nvalues && !t->values) || (t->nkeys && !t->keys) || (t->nshape && !t->shape))
        return knn_error_set(KNN_EINVAL, "tensor \"%s\": NULL array with a nonzero count", name);
    /* Keep every size far from overflow: nothing near 2^29 bytes can be framed anyway. */
    if (t->nvalues > KNN_RECORDIO_MAX_FRAME_LEN || t->nkeys > KNN_RECORDIO_MAX_FRAME_LEN ||
        t->nshape > KNN_RECORDIO_MAX_FRAME_LEN)
        return knn_error_set(KNN_ETOOBIG, "tensor \"%s\" is too large for one RecordIO record", name);
    return 0;
}

static size_t s_tensor_size(const struct knn_recordio_tensor *t)
{
    size_t n = 0;
    if (t->nvalues)
        n += s_ld_size(s_values_bytes(t));
    if (t->nkeys)
        n += s_ld_size(s_u64s_bytes(t->keys, t->nkeys));
    if (t->nshape)
        n += s_ld_size(s_u64s_bytes(t->shape, t->nshape));
    return n;
}

/* Map entry: key = 1 (string), value = 2 (Value{tensor}). */
static size_t s_entry_size(const struct knn_recordio_entry *e)
{
    return s_ld_size(strlen(e->name)) + s_ld_size(s_ld_size(s_tensor_size(&e->tensor)));
}

static uint8_t s_value_tag(enum knn_recordio_dtype dtype)
{
    switch (dtype) {
        case KNN_RECORDIO_FLOAT32:
            return 0x12;
        case KNN_RECORDIO_FLOAT64:
            return 0x1a;
        case KNN_RECORDIO_INT32:
            return 0x3a;
        case KNN_RECORDIO_BYTES:
            break;
    }
    return 0;
}

static uint8_t *s_put_ld(uint8_t *p, uint8_t tag, size_t len)
{
    *p++ = tag;
    return s_put_varint(p, len);
}

static uint8_t *s_put_u64s(uint8_t *p, uint8_t tag, const uint64_t *v, size_t n)
{
    p = s_put_ld(p, tag, s_u64s_bytes(v, n));
    for (size_t i = 0; i < n; i++)
        p = s_put_varint(p, v[i]);
    return p;
}

static uint8_t *s_put_entry(uint8_t *p, uint8_t tag, const struct knn_recordio_entry *e)
{
    const struct knn_recordio_tensor *t = &e->tensor;
    size_t name_len = strlen(e->name);
    size_t tensor = s_tensor_size(t);
    p = s_put_ld(p, tag, s_entry_size(e));
    p = s_put_ld(p, 0x0a, name_len);
    memcpy(p, e->name, name_len);
    p += name_len;
    p = s_put_ld(p, 0x12, s_ld_size(tensor));
    p = s_put_ld(p, s_value_tag(t->dtype), tensor);
    if (t->nvalues) {
        size_t vb = s_values_bytes(t);
        p = s_put_ld(p, 0x0a, vb);
        if (t->dtype == KNN_RECORDIO_INT32) {
            const int32_t *v = t->values;
            for (size_t i = 0; i < t->nvalues; i++)
                p = s_put_varint(p, (uint64_t)(int64_t)v[i]);
        } else {
            memcpy(p, t->values, vb); /* little-endian host, checked in reader.c */
            p += vb;
        }
    }
    if (t->nkeys)
        p = s_put_u64s(p, 0x12, t->keys, t->nkeys);
    if (t->nshape)
        p = s_put_u64s(p, 0x1a, t->shape, t->nshape);
    return p;
}

static uint8_t *s_put_frame_header(uint8_t *p, size_t len)
{
    uint32_t h[2] = {KNN_RECORDIO_MAGIC, (uint32_t)len};
    memcpy(p, h, 8);
    return p + 8;
}

static int s_frame_size(size_t *out, size_t payload)
{
    if (payload > KNN_RECORDIO_MAX_FRAME_LEN)
        return knn_error_set(
            KNN_ETOOBIG, "a record of %zu bytes does not fit one RecordIO frame (at most %u)", payload,
            KNN_RECORDIO_MAX_FRAME_LEN);
    *out = 8 + payload + ((4 - (payload & 3)) & 3);
    return 0;
}

int knn_recordio_write_record(
    struct knn_buf *out, const struct knn_recordio_entry *features, size_t nfeatures,
    const struct knn_recordio_entry *labels, size_t nlabels)
{
    if ((nfeatures && !features) || (nlabels && !labels))
        return knn_error_set(KNN_EINVAL, "write_record: NULL entries with a nonzero count");
    size_t payload = 0;
    int rc;
    for (size_t i = 0; i < nfeatures + nlabels; i++) {
        const struct knn_recordio_entry *e = i < nfeatures ? &features[i] : &labels[i - nfeatures];
        if (!e->name)
            return knn_error_set(KNN_EINVAL, "write_record: entry %zu has no name", i);
        if (strlen(e->name) > 4096)
            return knn_error_set(KNN_EINVAL, "write_record: entry %zu has a name over 4096 bytes", i);
        if ((rc = s_check_tensor(&e->tensor, e->name)))
            return rc;
        payload += s_ld_size(s_entry_size(e));
        if (payload > KNN_RECORDIO_MAX_FRAME_LEN)
            break; /* s_frame_size reports it; the sum cannot have overflowed yet */
    }
    size_t frame = 0;
    if ((rc = s_frame_size(&frame, payload)) || (rc = knn_buf_reserve(out, frame)))
        return rc;
    uint8_t *start = out->data + out->len;
    uint8_t *p = s_put_frame_header(start, payload);
    for (size_t i = 0; i < nfeatures; i++)
        p = s_put_entry(p, 0x0a, &features[i]);
    for (size_t i = 0; i < nlabels; i++)
        p = s_put_entry(p, 0x12, &labels[i]);
    KNN_ASSERT((size_t)(p - start) == 8 + payload);
    memset(p, 0, frame - 8 - payload);
    out->len += frame;
    out->data[out->len] = '\0';
    return 0;
}

static struct knn_recordio_entry s_f32_entry(const char *name, const float *values, size_t n)
{
    struct knn_recordio_entry e = {name, {KNN_RECORDIO_FLOAT32, values, n, NULL, 0, NULL, 0}};
    return e;
}

int knn_recordio_write_dense(struct knn_buf *out, const float *values, size_t dim, const float *label)
{
    struct knn_recordio_entry f = s_f32_entry("values", values, dim);
    struct knn_recordio_entry l = s_f32_entry("values", label, 1);
    return knn_recordio_write_record(out, &f, 1, &l, label ? 1 : 0);
}

int knn_recordio_write_sparse(
    struct knn_buf *out, const float *values, const uint64_t *keys, size_t nnz, uint64_t width, const float *label)
{
    struct knn_recordio_entry f = s_f32_entry("values", values, nnz);
    f.tensor.keys = keys;
    f.tensor.nkeys = nnz;
    f.tensor.shape = &width;
    f.tensor.nshape = 1;
    struct knn_recordio_entry l = s_f32_entry("values", label, 1);
    return knn_recordio_write_record(out, &f, 1, &l, label ? 1 : 0);
}

int knn_recordio_write_prediction(
    struct knn_buf *out, float predicted_label, const float *neighbor_labels, const float *distances, size_t k)
{
    struct knn_recordio_entry l[3] = {
        s_f32_entry("predicted_label", &predicted_label, 1),
        s_f32_entry("labels", neighbor_labels, k),
        s_f32_entry("distances", distances, k),
    };
    return knn_recordio_write_record(out, NULL, 0, l, neighbor_labels && distances ? 3 : 1);
}

int knn_recordio_write_frame(struct knn_buf *out, const void *payload, size_t len)
{
    size_t frame = 0;
    int rc;
    if (len && !payload)
        return knn_error_set(KNN_EINVAL, "write_frame: NULL payload");
    if ((rc = s_frame_size(&frame, len)) || (rc = knn_buf_reserve(out, frame)))
        return rc;
    uint8_t *p = s_put_frame_header(out->data + out->len, len);
    if (len)
        memcpy(p, payload, len);
    memset(p + len, 0, frame - 8 - len);
    out->len += frame;
    out->data[out->len] = '\0';
    return 0;
}
