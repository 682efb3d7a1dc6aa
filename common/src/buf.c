#include "knn/common/buf.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void knn_buf_init(struct knn_buf *buf, size_t max)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->max = max;
}

void knn_buf_clean_up(struct knn_buf *buf)
{
    knn_free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void knn_buf_reset(struct knn_buf *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

int knn_buf_reserve(struct knn_buf *buf, size_t extra)
{
    size_t need;
    if (knn_add_size(&need, buf->len, extra) || need > buf->max)
        return knn_error_set(
            KNN_ETOOBIG, "buffer of %zu bytes cannot grow by %zu: over its cap of %zu bytes", buf->len, extra,
            buf->max);
    if (need + 1 <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need + 1)
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    if (cap > buf->max + 1)
        cap = buf->max + 1;
    uint8_t *p = knn_realloc_array(buf->data, cap, 1);
    if (!p)
        return KNN_ENOMEM;
    buf->data = p;
    buf->cap = cap;
    return 0;
}

int knn_buf_append(struct knn_buf *buf, const void *data, size_t len)
{
    int rc = knn_buf_reserve(buf, len);
    if (rc)
        return rc;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

int knn_buf_append_str(struct knn_buf *buf, const char *s)
{
    return knn_buf_append(buf, s, strlen(s));
}

int knn_buf_printf(struct knn_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return knn_error_set(KNN_EINVAL, "bad format string");
    int rc = knn_buf_reserve(buf, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

uint8_t *knn_buf_detach(struct knn_buf *buf, size_t *len)
{
    uint8_t *data = buf->data;
    if (len)
        *len = buf->len;
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    return data;
}
