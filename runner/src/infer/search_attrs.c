/* X-Amzn-SageMaker-Custom-Attributes: per-request search settings (search_attrs.h). */
#include "infer/search_attrs.h"

#include "knn/common/error.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

/* A decimal integer in [1, max] from s[0..len); -1 when it is not one. */
static int s_number(const char *s, size_t len, size_t max, size_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < 1 || v > max)
        return -1;
    *out = (size_t)v;
    return 0;
}

int knn_search_attrs_parse(struct knn_search_attrs *out, const char *header, const struct knn_model *model)
{
    memset(out, 0, sizeof(*out));
    if (!header)
        return 0;
    size_t total = strlen(header);
    if (total > KNN_SEARCH_ATTRS_MAX_LEN)
        return knn_error_set(KNN_EINVAL, "X-Amzn-SageMaker-Custom-Attributes: %zu characters, more than the %d allowed",
                             total, KNN_SEARCH_ATTRS_MAX_LEN);
    const struct knn_index_options *io = knn_index_get_options(knn_model_index(model));
    int ivf = io->type == KNN_INDEX_IVFFLAT || io->type == KNN_INDEX_IVFPQ || io->type == KNN_INDEX_IVFSQ8;
    int hnsw = io->type == KNN_INDEX_HNSW;
    const char *p = header, *end = header + total;
    while (p < end) {
        const char *q = p;
        while (q < end && *q != ',' && *q != ';')
            q++;
        const char *a = p, *b = q;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        const char *eq = memchr(a, '=', (size_t)(b - a));
        p = q + 1;
        if (!eq)
            continue; /* a bare token: the client's own */
        const char *ke = eq, *v = eq + 1;
        while (ke > a && isspace((unsigned char)ke[-1]))
            ke--;
        while (v < b && isspace((unsigned char)*v))
            v++;
        size_t klen = (size_t)(ke - a), vlen = (size_t)(b - v);
        size_t *slot = NULL, max = 0;
        const char *name = NULL;
        int applies = 0;
        if (klen == 6 && memcmp(a, "nprobe", 6) == 0) {
            slot = &out->nprobe;
            name = "nprobe";
            max = io->nlist;
            applies = ivf;
        } else if (klen == 8 && memcmp(a, "efSearch", 8) == 0) {
            slot = &out->ef_search;
            name = "efSearch";
            max = KNN_SEARCH_ATTRS_MAX_EF;
            applies = hnsw;
        } else {
            continue;
        }
        if (!applies)
            return knn_error_set(KNN_EINVAL, "X-Amzn-SageMaker-Custom-Attributes: %s does not apply to this model's "
                                             "%s index", name, knn_index_type_name(io->type));
        if (*slot)
            return knn_error_set(KNN_EINVAL, "X-Amzn-SageMaker-Custom-Attributes: %s is given twice", name);
        if (s_number(v, vlen, max, slot) != 0)
            return knn_error_set(KNN_EINVAL,
                                 "X-Amzn-SageMaker-Custom-Attributes: %s='%.*s' is not an integer from 1 to %zu", name,
                                 (int)(vlen > 40 ? 40 : vlen), v, max);
    }
    return 0;
}
