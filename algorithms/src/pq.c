#include "pq.h"

#include "distances.h"
#include "parallel.h"
#include "rng.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <string.h>

/* Vectors encoded per call of the nearest-centroid scan (bounds the stack buffer). */
#define S_ENCODE_BLOCK 64

int knn__pq_init(struct knn__pq *pq, size_t d, size_t m)
{
    memset(pq, 0, sizeof(*pq));
    if (d == 0 || m == 0 || d % m != 0)
        return knn_error_set(
            KNN_EINVAL, "product quantizer: m = %zu sub-quantizers must divide the dimension %zu", m, d);
    if (m > SIZE_MAX / KNN__PQ_KSUB / (d / m) / sizeof(float))
        return knn_error_set(KNN_ENOMEM, "product quantizer: d = %zu is too large", d);
    pq->d = d;
    pq->m = m;
    pq->dsub = d / m;
    pq->ksub = KNN__PQ_KSUB;
    pq->centroids = knn_calloc(m * KNN__PQ_KSUB * pq->dsub, sizeof(float));
    if (!pq->centroids)
        return KNN_ENOMEM;
    return 0;
}

static void s_free_prepared(struct knn__pq *pq)
{
    if (pq->sub) {
        for (size_t i = 0; i < pq->m; i++)
            knn__centroids_clean_up(&pq->sub[i]);
    }
    knn_free(pq->sub);
    knn_free(pq->norms);
    pq->sub = NULL;
    pq->norms = NULL;
}

void knn__pq_clean_up(struct knn__pq *pq)
{
    s_free_prepared(pq);
    knn_free(pq->centroids);
    memset(pq, 0, sizeof(*pq));
}

int knn__pq_prepare(struct knn__pq *pq)
{
    s_free_prepared(pq);
    pq->sub = knn_calloc(pq->m, sizeof(*pq->sub));
    pq->norms = knn_malloc_array(pq->m * pq->ksub, sizeof(float));
    if (!pq->sub || !pq->norms) {
        s_free_prepared(pq);
        return KNN_ENOMEM;
    }
    for (size_t i = 0; i < pq->m; i++) {
        const float *c = pq->centroids + i * pq->ksub * pq->dsub;
        int rc = knn__centroids_init(&pq->sub[i], c, pq->ksub, pq->dsub, 0);
        if (rc != 0) {
            s_free_prepared(pq);
            return rc;
        }
        knn__norms_sqr(c, pq->ksub, pq->dsub, pq->norms + i * pq->ksub);
    }
    return 0;
}

struct s_train_ctx {
    struct knn__pq *pq;
    const float *x;
    const size_t *rows; /* the training rows */
    size_t n;           /* number of rows */
    uint64_t seed;
    size_t inner_threads;
    float **buf; /* per worker: n * dsub */
};

static int s_train_sub(void *ctx_, size_t begin, size_t end, size_t worker)
{
    struct s_train_ctx *ctx = ctx_;
    struct knn__pq *pq = ctx->pq;
    const size_t dsub = pq->dsub;
    float *buf = ctx->buf[worker];
    for (size_t i = begin; i < end; i++) {
        for (size_t r = 0; r < ctx->n; r++)
            memcpy(buf + r * dsub, ctx->x + ctx->rows[r] * pq->d + i * dsub, dsub * sizeof(float));
        struct knn__kmeans_options ko = KNN__KMEANS_OPTIONS_INIT;
        ko.niter = KNN__PQ_NITER;
        ko.max_points_per_centroid = 0; /* already sampled */
        ko.seed = ctx->seed + i;
        ko.threads = ctx->inner_threads;
        int rc = knn__kmeans_train(pq->centroids + i * pq->ksub * dsub, &ko, ctx->n, dsub, buf, pq->ksub);
        if (rc != 0)
            return knn_error_wrap(rc, "product quantizer, sub-quantizer %zu", i);
    }
    return 0;
}

int knn__pq_train(struct knn__pq *pq, size_t n, const float *x, uint64_t seed, size_t threads)
{
    struct s_train_ctx ctx = {pq, x, NULL, 0, seed, 1, NULL};
    size_t *rows = NULL;
    int rc = 0;

    if (n < pq->ksub)
        return knn_error_set(
            KNN_EINVAL, "product quantizer: %zu training vectors, need at least %zu (one per centroid)", n, pq->ksub);

    /* FAISS samples at most 256 points per centroid, once, for all sub-quantizers. */
    size_t n_train = n < pq->ksub * 256 ? n : pq->ksub * 256;
    rows = knn_malloc_array(n_train, sizeof(size_t));
    if (!rows)
        return KNN_ENOMEM;
    if (n_train == n) {
        for (size_t i = 0; i < n; i++)
            rows[i] = i;
    } else {
        struct knn__rng rng;
        knn__rng_seed(&rng, seed ^ 0x5051u);
        size_t got = 0;
        for (size_t i = 0; i < n && got < n_train; i++) {
            if (knn__rng_below(&rng, n - i) < n_train - got)
                rows[got++] = i;
        }
    }
    ctx.rows = rows;
    ctx.n = n_train;

    /* Parallel over sub-quantizers when there are enough of them, else inside k-means. */
    size_t nthreads = knn__resolve_threads(threads, (size_t)-1);
    size_t outer = pq->m >= nthreads ? nthreads : 1;
    ctx.inner_threads = outer > 1 ? 1 : nthreads;
    ctx.buf = knn_calloc(outer, sizeof(float *));
    if (!ctx.buf) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    for (size_t w = 0; w < outer; w++) {
        if (!(ctx.buf[w] = knn_malloc_array(n_train * pq->dsub, sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
    }
    if ((rc = knn__parallel_for(pq->m, outer, s_train_sub, &ctx)) != 0)
        goto on_error;
    rc = knn__pq_prepare(pq);

on_error:
    if (ctx.buf) {
        for (size_t w = 0; w < outer; w++)
            knn_free(ctx.buf[w]);
    }
    knn_free(ctx.buf);
    knn_free(rows);
    return rc;
}

void knn__pq_encode(const struct knn__pq *pq, size_t n, const float *x, uint8_t *codes)
{
    int32_t assign[S_ENCODE_BLOCK];
    for (size_t i0 = 0; i0 < n; i0 += S_ENCODE_BLOCK) {
        size_t nb = n - i0 < S_ENCODE_BLOCK ? n - i0 : S_ENCODE_BLOCK;
        for (size_t i = 0; i < pq->m; i++) {
            knn__centroids_nearest(&pq->sub[i], nb, x + i0 * pq->d + i * pq->dsub, pq->d, assign, NULL);
            for (size_t r = 0; r < nb; r++)
                codes[(i0 + r) * pq->m + i] = (uint8_t)assign[r];
        }
    }
}

void knn__pq_decode(const struct knn__pq *pq, size_t n, const uint8_t *codes, float *x)
{
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < pq->m; i++) {
            const float *c = pq->centroids + (i * pq->ksub + codes[r * pq->m + i]) * pq->dsub;
            memcpy(x + r * pq->d + i * pq->dsub, c, pq->dsub * sizeof(float));
        }
    }
}

void knn__pq_dot_table(const struct knn__pq *pq, const float *x, float *table)
{
    for (size_t i = 0; i < pq->m; i++)
        knn__centroids_dots(&pq->sub[i], x + i * pq->dsub, table + i * pq->ksub);
}

void knn__pq_l2_table(const struct knn__pq *pq, const float *x, float *table)
{
    knn__pq_dot_table(pq, x, table);
    for (size_t i = 0; i < pq->m; i++) {
        const float *xs = x + i * pq->dsub;
        float xn = knn__dot(xs, xs, pq->dsub);
        float *t = table + i * pq->ksub;
        const float *cn = pq->norms + i * pq->ksub;
        for (size_t j = 0; j < pq->ksub; j++) {
            float v = xn + cn[j] - 2.0f * t[j];
            t[j] = v > 0.0f ? v : 0.0f;
        }
    }
}
