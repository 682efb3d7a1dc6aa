/* The general Record parser: protobuf-c (packed or not, any field order, unknown fields skipped). */
#include "record_impl.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include "record.pb-c.h"

#include <string.h>

/* allocator_data points at an int set when an allocation fails, to tell ENOMEM from bad bytes. */
static void *s_pb_alloc(void *data, size_t size)
{
    void *p = knn_malloc(size ? size : 1);
    if (!p)
        *(int *)data = 1;
    return p;
}

static void s_pb_free(void *data, void *ptr)
{
    (void)data;
    knn_free(ptr);
}

static void s_tensor_from_value(bool *set, struct knn__tensor_view *t, const Aialgs__Data__Value *v)
{
    memset(t, 0, sizeof(*t));
    *set = false;
    if (!v)
        return;
    switch (v->value_case) {
        case AIALGS__DATA__VALUE__VALUE_FLOAT32_TENSOR: {
            const Aialgs__Data__Float32Tensor *x = v->float32_tensor;
            *t = (struct knn__tensor_view){
                KNN_RECORDIO_FLOAT32, x->values, x->n_values, x->keys, x->n_keys, x->shape, x->n_shape};
            break;
        }
        case AIALGS__DATA__VALUE__VALUE_FLOAT64_TENSOR: {
            const Aialgs__Data__Float64Tensor *x = v->float64_tensor;
            *t = (struct knn__tensor_view){
                KNN_RECORDIO_FLOAT64, x->values, x->n_values, x->keys, x->n_keys, x->shape, x->n_shape};
            break;
        }
        case AIALGS__DATA__VALUE__VALUE_INT32_TENSOR: {
            const Aialgs__Data__Int32Tensor *x = v->int32_tensor;
            *t = (struct knn__tensor_view){KNN_RECORDIO_INT32, x->values, x->n_values, x->keys,
                                           x->n_keys,          x->shape,  x->n_shape};
            break;
        }
        case AIALGS__DATA__VALUE__VALUE_BYTES:
            t->dtype = KNN_RECORDIO_BYTES;
            break;
        default:
            return;
    }
    *set = true;
}

int knn__record_parse_generic(struct knn__record_view *view, const struct knn_recordio_record *record)
{
    memset(view, 0, sizeof(*view));
    int alloc_failed = 0;
    ProtobufCAllocator allocator = {s_pb_alloc, s_pb_free, &alloc_failed};
    Aialgs__Data__Record *msg = aialgs__data__record__unpack(&allocator, record->len, record->data);
    if (!msg) {
        if (alloc_failed)
            return knn_error_set(
                KNN_ENOMEM, "record %llu at offset %llu: out of memory decoding %zu bytes",
                (unsigned long long)record->index, (unsigned long long)record->offset, record->len);
        /* protobuf-c says nothing more precise than this. */
        return knn_error_set(
            KNN_EFORMAT, "record %llu at offset %llu: not a valid aialgs.data.Record (%zu bytes)",
            (unsigned long long)record->index, (unsigned long long)record->offset, record->len);
    }
    view->owner = msg;
    /* A map with a repeated key keeps the last entry, as protobuf does. */
    for (size_t i = 0; i < msg->n_features; i++) {
        const Aialgs__Data__Record__FeaturesEntry *e = msg->features[i];
        if (e->key && strcmp(e->key, "values") == 0) {
            view->has_features = true;
            s_tensor_from_value(&view->features_set, &view->features, e->value);
        }
    }
    for (size_t i = 0; i < msg->n_label; i++) {
        const Aialgs__Data__Record__LabelEntry *e = msg->label[i];
        if (e->key && strcmp(e->key, "values") == 0) {
            view->has_label = true;
            s_tensor_from_value(&view->label_set, &view->label, e->value);
        }
    }
    return 0;
}

void knn__record_view_clean_up(struct knn__record_view *view)
{
    int unused = 0;
    ProtobufCAllocator allocator = {s_pb_alloc, s_pb_free, &unused};
    if (view->owner)
        aialgs__data__record__free_unpacked(view->owner, &allocator);
    view->owner = NULL;
}
