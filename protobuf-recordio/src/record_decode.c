/* Record views -> dense float32 rows and labels, with every check and message in one place. */
#include "record_impl.h"

#include "knn/common/error.h"

#include <math.h>
#include <string.h>

#define REC_FMT "record %llu at offset %llu: "
#define REC_ARGS(r) (unsigned long long)(r)->index, (unsigned long long)(r)->offset

const char *knn_recordio_dtype_name(enum knn_recordio_dtype dtype)
{
    switch (dtype) {
        case KNN_RECORDIO_FLOAT32:
            return "float32";
        case KNN_RECORDIO_FLOAT64:
            return "float64";
        case KNN_RECORDIO_INT32:
            return "int32";
        case KNN_RECORDIO_BYTES:
            return "bytes";
    }
    return "?";
}

/* Element i of a tensor as a double (exact for all three types). Values may be unaligned. */
static inline double s_value(const struct knn__tensor_view *t, size_t i)
{
    const uint8_t *p = t->values;
    switch (t->dtype) {
        case KNN_RECORDIO_FLOAT32: {
            float f;
            memcpy(&f, p + 4 * i, 4);
            return f;
        }
        case KNN_RECORDIO_FLOAT64: {
            double d;
            memcpy(&d, p + 8 * i, 8);
            return d;
        }
        case KNN_RECORDIO_INT32: {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            return v;
        }
        case KNN_RECORDIO_BYTES:
            break;
    }
    return 0;
}

static int s_bad_value(const struct knn_recordio_record *rec, const char *what, size_t i, double v)
{
    if (isnan(v))
        return knn_error_set(KNN_ERANGE, REC_FMT "%s value %zu is NaN", REC_ARGS(rec), what, i);
    if (isinf(v))
        return knn_error_set(KNN_ERANGE, REC_FMT "%s value %zu is infinite", REC_ARGS(rec), what, i);
    return knn_error_set(KNN_ERANGE, REC_FMT "%s value %zu (%g) is outside float32's range", REC_ARGS(rec), what, i, v);
}

/* Index of the first NaN or infinity among n float32s, or n. */
static size_t s_first_nonfinite(const float *x, size_t n)
{
    /* |bits| >= 0x7f800000 means infinite or NaN; take the max over blocks (vectorizes), then look closer. */
    size_t i = 0;
    while (i < n) {
        size_t block = n - i < 256 ? n - i : 256;
        uint32_t worst = 0;
        for (size_t j = 0; j < block; j++) {
            uint32_t b;
            memcpy(&b, &x[i + j], 4);
            b &= 0x7fffffffu;
            worst = b > worst ? b : worst;
        }
        if (worst >= 0x7f800000u) {
            for (size_t j = 0; j < block; j++) {
                if (!isfinite(x[i + j]))
                    return i + j;
            }
        }
        i += block;
    }
    return n;
}

static int
s_shape_width(uint64_t *out, const struct knn__tensor_view *t, const struct knn_recordio_record *rec, const char *what)
{
    uint64_t w = 1;
    for (size_t i = 0; i < t->nshape; i++) {
        if (t->shape[i] && w > UINT64_MAX / t->shape[i])
            return knn_error_set(KNN_ETOOBIG, REC_FMT "%s shape overflows 64 bits", REC_ARGS(rec), what);
        w *= t->shape[i];
    }
    *out = w;
    return 0;
}

/* Width and sparsity of a tensor (see knn/recordio/record.h for the rules). */
static int s_tensor_layout(
    uint64_t *width, bool *sparse, const struct knn__tensor_view *t, const struct knn_recordio_record *rec,
    const char *what)
{
    int rc;
    if (t->dtype == KNN_RECORDIO_BYTES)
        return knn_error_set(KNN_EFORMAT, REC_FMT "%s is a Bytes value, not a tensor", REC_ARGS(rec), what);
    if (t->nkeys) {
        if (!t->nshape)
            return knn_error_set(
                KNN_EFORMAT, REC_FMT "%s is sparse (%zu keys) but has no shape", REC_ARGS(rec), what, t->nkeys);
        if (t->nkeys != t->nvalues)
            return knn_error_set(
                KNN_EFORMAT, REC_FMT "%s has %zu keys but %zu values", REC_ARGS(rec), what, t->nkeys, t->nvalues);
        *sparse = true;
        return s_shape_width(width, t, rec, what);
    }
    if (t->nshape) {
        if ((rc = s_shape_width(width, t, rec, what)))
            return rc;
        *sparse = t->nvalues == 0 && *width != 0;
        if (t->nvalues && t->nvalues != *width)
            return knn_error_set(
                KNN_EFORMAT, REC_FMT "%s has %zu values but its shape holds %llu", REC_ARGS(rec), what, t->nvalues,
                (unsigned long long)*width);
        return 0;
    }
    *sparse = false;
    *width = t->nvalues;
    return 0;
}

static int s_fill_row(float *out, size_t dim, const struct knn__tensor_view *t, const struct knn_recordio_record *rec)
{
    uint64_t width;
    bool sparse;
    int rc = s_tensor_layout(&width, &sparse, t, rec, "features");
    if (rc)
        return rc;
    if (width != dim)
        return knn_error_set(
            KNN_EMISMATCH, REC_FMT "%llu features, expected feature_dim %zu", REC_ARGS(rec), (unsigned long long)width,
            dim);
    if (!sparse) {
        if (t->dtype == KNN_RECORDIO_FLOAT32) {
            if (dim)
                memcpy(out, t->values, dim * sizeof(float));
            size_t bad = s_first_nonfinite(out, dim);
            if (bad < dim)
                return s_bad_value(rec, "features", bad, out[bad]);
            return 0;
        }
        for (size_t i = 0; i < dim; i++) {
            double v = s_value(t, i);
            out[i] = (float)v;
            if (!isfinite(out[i]))
                return s_bad_value(rec, "features", i, v);
        }
        return 0;
    }
    if (dim)
        memset(out, 0, dim * sizeof(float));
    for (size_t i = 0; i < t->nkeys; i++) {
        uint64_t k = t->keys[i];
        if (k >= width)
            return knn_error_set(
                KNN_ERANGE, REC_FMT "features key %llu (entry %zu) is out of range for width %llu", REC_ARGS(rec),
                (unsigned long long)k, i, (unsigned long long)width);
        double v = s_value(t, i);
        float f = (float)v;
        if (!isfinite(f))
            return s_bad_value(rec, "features", i, v);
        out[k] += f;
        if (!isfinite(out[k]))
            return knn_error_set(
                KNN_ERANGE, REC_FMT "features key %llu appears more than once and its values sum to infinity",
                REC_ARGS(rec), (unsigned long long)k);
    }
    return 0;
}

static int s_label_value(float *out, const struct knn__tensor_view *t, const struct knn_recordio_record *rec)
{
    uint64_t width;
    bool sparse;
    int rc = s_tensor_layout(&width, &sparse, t, rec, "label");
    if (rc)
        return rc;
    if (sparse || t->nvalues != 1)
        return knn_error_set(
            KNN_EFORMAT, REC_FMT "label[\"values\"] must hold one value, not %zu%s", REC_ARGS(rec), t->nvalues,
            sparse ? " (sparse)" : "");
    double v = s_value(t, 0);
    *out = (float)v;
    if (!isfinite(*out))
        return s_bad_value(rec, "label", 0, v);
    return 0;
}

static int s_check_present(const struct knn__record_view *v, const struct knn_recordio_record *rec)
{
    if (!v->has_features)
        return knn_error_set(KNN_EFORMAT, REC_FMT "no features[\"values\"] tensor", REC_ARGS(rec));
    if (!v->features_set)
        return knn_error_set(KNN_EFORMAT, REC_FMT "features[\"values\"] holds no tensor", REC_ARGS(rec));
    if (v->has_label && !v->label_set)
        return knn_error_set(KNN_EFORMAT, REC_FMT "label[\"values\"] holds no tensor", REC_ARGS(rec));
    return 0;
}

static int s_parse(struct knn__record_view *view, int force_generic, const struct knn_recordio_record *record)
{
    if (!force_generic && knn__record_parse_fast(view, record))
        return 0;
    return knn__record_parse_generic(view, record);
}

int knn__record_decode_with(
    int force_generic, float *features, float *label, bool *has_label, const struct knn_recordio_record *record,
    size_t feature_dim)
{
    struct knn__record_view view;
    float l = 0;
    int rc = s_parse(&view, force_generic, record);
    if (rc)
        return rc;
    if ((rc = s_check_present(&view, record)) || (rc = s_fill_row(features, feature_dim, &view.features, record)))
        goto on_error;
    if (view.has_label && (rc = s_label_value(&l, &view.label, record)))
        goto on_error;
    if (label)
        *label = l;
    if (has_label)
        *has_label = view.has_label;
on_error:
    knn__record_view_clean_up(&view);
    return rc;
}

int knn_recordio_record_decode(
    float *features, float *label, bool *has_label, const struct knn_recordio_record *record, size_t feature_dim)
{
    return knn__record_decode_with(0, features, label, has_label, record, feature_dim);
}

int knn_recordio_record_probe(struct knn_recordio_record_info *out, const struct knn_recordio_record *record)
{
    struct knn__record_view view;
    int rc = s_parse(&view, 0, record);
    if (rc)
        return rc;
    memset(out, 0, sizeof(*out));
    if ((rc = s_check_present(&view, record)))
        goto on_error;
    const struct knn__tensor_view *t = &view.features;
    if ((rc = s_tensor_layout(&out->width, &out->sparse, t, record, "features")))
        goto on_error;
    out->feature_dtype = t->dtype;
    out->nnz = t->nkeys ? t->nkeys : t->nvalues;
    for (size_t i = 0; i < t->nvalues; i++) {
        if (t->nkeys && t->keys[i] >= out->width) {
            rc = knn_error_set(
                KNN_ERANGE, REC_FMT "features key %llu (entry %zu) is out of range for width %llu", REC_ARGS(record),
                (unsigned long long)t->keys[i], i, (unsigned long long)out->width);
            goto on_error;
        }
        double v = s_value(t, i);
        if (!isfinite((float)v)) {
            rc = s_bad_value(record, "features", i, v);
            goto on_error;
        }
    }
    if (view.has_label) {
        if ((rc = s_label_value(&out->label, &view.label, record)))
            goto on_error;
        out->has_label = true;
        out->label_dtype = view.label.dtype;
    }
on_error:
    knn__record_view_clean_up(&view);
    return rc;
}
