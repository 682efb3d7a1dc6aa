/*
 * The hand-written fast path for the one layout that carries nearly all training data: what the
 * SDK writes for a dense float32 row, with an optional float32 or float64 scalar label:
 *
 *   0a L1 | 0a 06 "values" | 12 L2 | 12 L3 | 0a L4 | L4 bytes of float32
 *   [ 12 M1 | 0a 06 "values" | 12 M2 | (12|1a) M3 | 0a (04|08) | the label ]
 *
 * Every length must match exactly at every level and the record must end right after; any
 * difference (other field order, unpacked values, keys, shape, extra fields, repeated entries)
 * returns 0 and the caller falls back to protobuf-c, so this never has to be a general parser.
 */
#include "record_impl.h"

#include <string.h>

static const uint8_t s_values_key[8] = {0x0a, 0x06, 'v', 'a', 'l', 'u', 'e', 's'};

/* A varint of at most 5 bytes whose value fits 32 bits; 0 if there is none. */
static int s_varint32(const uint8_t **p, const uint8_t *end, uint32_t *out)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (q >= end)
            return 0;
        uint8_t b = *q++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (v > UINT32_MAX)
                return 0;
            *out = (uint32_t)v;
            *p = q;
            return 1;
        }
    }
    return 0;
}

/* Expect `tag`, then a length that ends exactly at `end`. */
static int s_field_to_end(const uint8_t **p, const uint8_t *end, uint8_t tag)
{
    uint32_t len;
    if (*p >= end || **p != tag)
        return 0;
    (*p)++;
    if (!s_varint32(p, end, &len))
        return 0;
    return (size_t)(end - *p) == len;
}

/* Expect `tag` and a length fitting before `end`; set *sub_end. */
static int s_field(const uint8_t **p, const uint8_t *end, uint8_t tag, const uint8_t **sub_end)
{
    uint32_t len;
    if (*p >= end || **p != tag)
        return 0;
    (*p)++;
    if (!s_varint32(p, end, &len) || (size_t)(end - *p) < len)
        return 0;
    *sub_end = *p + len;
    return 1;
}

static int s_values_key_at(const uint8_t **p, const uint8_t *end)
{
    if ((size_t)(end - *p) < sizeof(s_values_key) || memcmp(*p, s_values_key, sizeof(s_values_key)) != 0)
        return 0;
    *p += sizeof(s_values_key);
    return 1;
}

int knn__record_parse_fast(struct knn__record_view *view, const struct knn_recordio_record *record)
{
    const uint8_t *p = record->data;
    const uint8_t *end = p + record->len;
    const uint8_t *entry_end;

    /* features entry: key "values", Value{float32_tensor{values}} */
    if (!s_field(&p, end, 0x0a, &entry_end) || !s_values_key_at(&p, entry_end) ||
        !s_field_to_end(&p, entry_end, 0x12) || !s_field_to_end(&p, entry_end, 0x12) ||
        !s_field_to_end(&p, entry_end, 0x0a))
        return 0;
    size_t nbytes = (size_t)(entry_end - p);
    if (nbytes == 0 || nbytes % 4)
        return 0;
    memset(view, 0, sizeof(*view));
    view->has_features = view->features_set = true;
    view->features.dtype = KNN_RECORDIO_FLOAT32;
    view->features.values = p;
    view->features.nvalues = nbytes / 4;
    p = entry_end;
    if (p == end)
        return 1;

    /* label entry: key "values", Value{float32_tensor or float64_tensor{values: one value}} */
    if (!s_field_to_end(&p, end, 0x12) || !s_values_key_at(&p, end) || !s_field_to_end(&p, end, 0x12))
        return 0;
    if (p >= end)
        return 0;
    uint8_t kind = *p;
    if ((kind != 0x12 && kind != 0x1a) || !s_field_to_end(&p, end, kind) || !s_field_to_end(&p, end, 0x0a))
        return 0;
    size_t width = kind == 0x12 ? 4 : 8;
    if ((size_t)(end - p) != width)
        return 0;
    view->has_label = view->label_set = true;
    view->label.dtype = kind == 0x12 ? KNN_RECORDIO_FLOAT32 : KNN_RECORDIO_FLOAT64;
    view->label.values = p;
    view->label.nvalues = 1;
    return 1;
}
