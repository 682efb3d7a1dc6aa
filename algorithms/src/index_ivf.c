/*
 * IVFFlat and IVFPQ: a Flat coarse quantizer over nlist k-means centroids, and one inverted list
 * per centroid (ids + codes). See index_ivf.h for the design and README.md for the tour.
 *
 * Search, for a block of queries (blocks run in parallel on the library's threads):
 * 1. the coarse quantizer (a Flat search, k = nprobe) gives each query its nprobe lists;
 * 2. IVFFlat: the (query, list) pairs are sorted by list, and each list is scanned for all of its
 *    queries in turn while it is hot in the cache (knn__scan_one: fused SIMD L2 / inner product
 *    with the threshold test);
 *    IVFPQ: per query, a distance table per probed list (FAISS's precomputed tables: a per-list
 *    table ||r||^2 + 2 c.r made at training, plus the query's -2 x.r) and an ADC scan of the codes.
 */
#include "index_ivf.h"

#include "distances.h"
#include "index_flat.h"
#include "kmeans.h"
#include "parallel.h"
#include "pq.h"
#include "rng.h"
#include "sq.h"
#include "topk.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/*
 * The coarse quantizer's k-means: FAISS runs 10 plain iterations on up to 256 points per list.
 * We run 5, then 10 balancing iterations on 64 points per list (kmeans.h: penalty 0.2 x the mean
 * squared distance x size / mean size). On clustered data plain k-means leaves dense
 * regions under one big list that most queries then scan: on the gaussian anchor set (200k x 128,
 * 447 lists) a query scans 3.7x a balanced share at nprobe 8. Balanced, recall@10 >= 0.97 needs
 * ~3,700 vectors scanned instead of ~11,000 (nprobe 6 instead of 8); on the topics set (already
 * even) nothing changes. It costs about as much as FAISS's 10 plain iterations.
 */
#define S_COARSE_NITER 5
#define S_BALANCE 0.2
#define S_BALANCE_NITER 10
#define S_BALANCE_POINTS 64
/* Vectors assigned and encoded per step of add: bounds add's scratch memory. */
#define S_ADD_CHUNK 16384
/* IVFFlat lists of vectors at most this wide are stored in blocks of 8 (struct s_ivf). */
#define S_BLOCKED_MAX_D 32
/* IVFFlat: each query scans its nearest list first when d or the whole index is at most this. */
#define S_PRIME_MAX_D 32
#define S_PRIME_MAX_BYTES ((size_t)16 << 20)
/* Largest block of queries one worker searches at once. */
#define S_QUERY_BLOCK 512
/* Cap on the precomputed IVFPQ tables (nlist * m * 256 floats); above it tables are per query. */
#define S_PRECOMPUTED_MAX_BYTES ((size_t)256 << 20)

struct s_list {
    size_t size;
    uint8_t *codes; /* size * code_size */
    int64_t *ids;   /* size */
};

struct s_ivf {
    struct knn_index *quantizer; /* Flat, nlist centroids once trained */
    /*
     * For an L2 quantizer, the centroids padded to a multiple of 16 with rows that never win
     * (norm +INFINITY), and their norms: batches of queries go straight to the shared batch kernel
     * (knn__exact_search_block), whose panels of 16 would otherwise end in a slow ragged tail.
     */
    float *qcent, *qnorms;
    size_t qpad;
    size_t nlist;
    size_t code_size;
    struct s_list *lists;
    /*
     * Narrow IVFFlat (d <= S_BLOCKED_MAX_D): lists are stored in blocks of 8 vectors, dimension
     * major (block b: d x 8 floats, vector 8b + l at lane l), so a scan computes 8 distances with d
     * loads, subtractions and FMAs and no horizontal sums. Padding lanes of the last block are 0.
     * Files are row-major; index_io.c converts through knn__ivf_list_rows / knn__ivf_list_finish.
     */
    int blocked;
    /* IVFPQ */
    int is_pq;
    int by_residual;
    struct knn__pq pq;
    float *precomputed; /* nlist * m * ksub: ||r||^2 + 2 c.r, or NULL */
    /* IVF-SQ8: codes of d bytes (residuals, as is_pq's), scanned by sq.c */
    int is_sq;
    struct knn__sq sq;
};

size_t knn__ivf_default_nprobe(size_t nlist)
{
    if (nlist == 0)
        return 1;
    size_t p = (size_t)ceil(sqrt((double)nlist));
    size_t lo = nlist < 8 ? nlist : 8;
    if (p < lo)
        p = lo;
    if (p > nlist)
        p = nlist;
    return p;
}

static struct s_ivf *s_ivf(const struct knn_index *index)
{
    return index->impl;
}

/* ------------------------------------------------------------------------------------------ */
/* Lists                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Labels of IVFFlat results during a scan: list number in the high 32 bits, position below. */
static int64_t s_enc(size_t list, size_t pos)
{
    return (int64_t)(((uint64_t)list << 32) | (uint64_t)pos);
}

/* Grow list l to `size` entries (exactly; blocked lists to whole blocks), keeping its contents. */
static int s_list_resize(struct s_ivf *ivf, size_t l, size_t size)
{
    struct s_list *list = &ivf->lists[l];
    if (size == list->size)
        return 0;
    if (ivf->blocked) {
        const size_t block_bytes = 8 * ivf->code_size;
        size_t old_blocks = (list->size + 7) / 8, blocks = (size + 7) / 8;
        if (blocks != old_blocks) {
            uint8_t *codes = knn_realloc_array(list->codes, blocks, block_bytes);
            if (!codes)
                return KNN_ENOMEM;
            if (blocks > old_blocks)
                memset(codes + old_blocks * block_bytes, 0, (blocks - old_blocks) * block_bytes);
            list->codes = codes;
        }
    } else {
        uint8_t *codes = knn_realloc_array(list->codes, size, ivf->code_size);
        if (!codes)
            return KNN_ENOMEM;
        list->codes = codes;
    }
    int64_t *ids = knn_realloc_array(list->ids, size, sizeof(int64_t));
    if (!ids)
        return KNN_ENOMEM;
    list->ids = ids;
    list->size = size;
    return 0;
}

/* Store entry `pos` of a list from a row-major code (a vector, for IVFFlat). */
static void s_list_put(const struct s_ivf *ivf, struct s_list *list, size_t pos, const uint8_t *code)
{
    if (!ivf->blocked) {
        memcpy(list->codes + pos * ivf->code_size, code, ivf->code_size);
        return;
    }
    const size_t d = ivf->code_size / sizeof(float);
    float *blk = (float *)list->codes + (pos / 8) * d * 8 + pos % 8;
    const float *v = (const float *)code;
    for (size_t j = 0; j < d; j++)
        blk[j * 8] = v[j];
}

/* Entry `pos` of a list as a row-major code. */
static void s_list_get(const struct s_ivf *ivf, const struct s_list *list, size_t pos, uint8_t *code)
{
    if (!ivf->blocked) {
        memcpy(code, list->codes + pos * ivf->code_size, ivf->code_size);
        return;
    }
    const size_t d = ivf->code_size / sizeof(float);
    const float *blk = (const float *)list->codes + (pos / 8) * d * 8 + pos % 8;
    float *v = (float *)code;
    for (size_t j = 0; j < d; j++)
        v[j] = blk[j * 8];
}

/*
 * Blocked list scan (narrow IVFFlat): each block gives 8 squared L2 distances (or inner products)
 * in one register; the lanes that beat the query's threshold are offered to the heap with the
 * list's ids. `D` is a compile-time constant in the specialized callers.
 */
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"), always_inline)) static inline void s_scan_blocked_avx2(
    const float *blocks, size_t n, size_t D, const float *q, int ip, const int64_t *ids, struct knn__topk *h)
{
    __m256 qb[S_BLOCKED_MAX_D];
    for (size_t j = 0; j < D; j++)
        qb[j] = _mm256_set1_ps(q[j]);
    float thr = knn__topk_threshold(h);
    __m256 vthr = _mm256_set1_ps(thr);
    const size_t nblocks = (n + 7) / 8;
    for (size_t b = 0; b < nblocks; b++) {
        const float *blk = blocks + b * D * 8;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        size_t j = 0;
#pragma GCC unroll 16
        for (; j + 2 <= D; j += 2) {
            __m256 y0 = _mm256_loadu_ps(blk + j * 8), y1 = _mm256_loadu_ps(blk + j * 8 + 8);
            if (ip) {
                a0 = _mm256_fmadd_ps(y0, qb[j], a0);
                a1 = _mm256_fmadd_ps(y1, qb[j + 1], a1);
            } else {
                __m256 t0 = _mm256_sub_ps(y0, qb[j]), t1 = _mm256_sub_ps(y1, qb[j + 1]);
                a0 = _mm256_fmadd_ps(t0, t0, a0);
                a1 = _mm256_fmadd_ps(t1, t1, a1);
            }
        }
        if (j < D) {
            __m256 y0 = _mm256_loadu_ps(blk + j * 8);
            if (ip) {
                a0 = _mm256_fmadd_ps(y0, qb[j], a0);
            } else {
                __m256 t0 = _mm256_sub_ps(y0, qb[j]);
                a0 = _mm256_fmadd_ps(t0, t0, a0);
            }
        }
        __m256 v = _mm256_add_ps(a0, a1);
        unsigned m =
            (unsigned)_mm256_movemask_ps(ip ? _mm256_cmp_ps(vthr, v, _CMP_LE_OQ) : _mm256_cmp_ps(v, vthr, _CMP_LE_OQ));
        if (b == nblocks - 1 && n % 8)
            m &= (1u << (n % 8)) - 1u; /* padding lanes */
        if (!m)
            continue;
        float vals[8];
        _mm256_storeu_ps(vals, v);
        while (m) {
            unsigned l = (unsigned)__builtin_ctz(m);
            m &= m - 1;
            if (ip ? vals[l] >= thr : vals[l] <= thr) {
                knn__topk_push(h, vals[l], ids[b * 8 + l]);
                thr = knn__topk_threshold(h);
            }
        }
        vthr = _mm256_set1_ps(thr);
    }
}

/* The dimensions whose blocked scans have kernels of their own; others take s_scan_blocked_any. */
#define S_BLOCKED_DIMS(X) X(4) X(8) X(10) X(12) X(16) X(20) X(24) X(32)

#define S_BLOCKED_FIXED(D)                                                                                             \
    __attribute__((target("avx2,fma"))) static void s_scan_blocked_d##D(                                               \
        const float *blocks, size_t n, size_t d, const float *q, int ip, const int64_t *ids, struct knn__topk *h)      \
    {                                                                                                                  \
        (void)d;                                                                                                       \
        s_scan_blocked_avx2(blocks, n, D, q, ip, ids, h);                                                              \
    }
S_BLOCKED_DIMS(S_BLOCKED_FIXED)

__attribute__((target("avx2,fma"))) static void s_scan_blocked_any(
    const float *blocks, size_t n, size_t d, const float *q, int ip, const int64_t *ids, struct knn__topk *h)
{
    s_scan_blocked_avx2(blocks, n, d, q, ip, ids, h);
}
#endif

static void s_scan_blocked_portable(
    const float *blocks, size_t n, size_t d, const float *q, int ip, const int64_t *ids, struct knn__topk *h)
{
    float thr = knn__topk_threshold(h);
    for (size_t i = 0; i < n; i++) {
        const float *blk = blocks + (i / 8) * d * 8 + i % 8;
        float v = 0.0f;
        for (size_t j = 0; j < d; j++) {
            float y = blk[j * 8];
            v += ip ? y * q[j] : (y - q[j]) * (y - q[j]);
        }
        if (ip ? v >= thr : v <= thr) {
            knn__topk_push(h, v, ids[i]);
            thr = knn__topk_threshold(h);
        }
    }
}

typedef void(s_scan_blocked_fn)(
    const float *blocks, size_t n, size_t d, const float *q, int ip, const int64_t *ids, struct knn__topk *h);

static s_scan_blocked_fn *s_scan_blocked_pick(size_t d)
{
#if defined(__x86_64__) || defined(__i386__)
    if (knn__simd_enabled()) {
        switch (d) {
#define S_CASE(D)                                                                                                      \
    case D:                                                                                                            \
        return s_scan_blocked_d##D;
            S_BLOCKED_DIMS(S_CASE)
#undef S_CASE
            default:
                return s_scan_blocked_any;
        }
    }
#endif
    return s_scan_blocked_portable;
}

/*
 * Scan IVFFlat list l for query q into h. Blocked lists push ids; row-major ones go through the
 * shared single-query kernel with ids encoded as (list << 32 | position), decoded by the caller.
 */
static void s_scan_flat_list(const struct s_ivf *ivf, size_t l, const float *q, size_t d, struct knn__topk *h)
{
    const struct s_list *list = &ivf->lists[l];
    if (list->size == 0)
        return;
    if (ivf->blocked)
        s_scan_blocked_pick(d)((const float *)list->codes, list->size, d, q, h->ip, list->ids, h);
    else
        knn__scan_one(q, (const float *)list->codes, list->size, d, h, s_enc(l, 0));
}

/* ------------------------------------------------------------------------------------------ */
/* IVFPQ tables                                                                                 */
/* ------------------------------------------------------------------------------------------ */

struct s_precompute_ctx {
    struct s_ivf *ivf;
    const float *centroids;
    size_t d;
};

static int s_precompute_chunk(void *ctx_, size_t begin, size_t end, size_t worker)
{
    struct s_precompute_ctx *ctx = ctx_;
    const struct knn__pq *pq = &ctx->ivf->pq;
    const size_t tsize = pq->m * pq->ksub;
    for (size_t l = begin; l < end; l++) {
        float *t = ctx->ivf->precomputed + l * tsize;
        knn__pq_dot_table(pq, ctx->centroids + l * ctx->d, t);
        for (size_t j = 0; j < tsize; j++)
            t[j] = pq->norms[j] + 2.0f * t[j];
    }
    return 0;
}

/* Make the per-list tables if they fit under the cap (else searches compute tables per query). */
static int s_precompute(struct knn_index *index)
{
    struct s_ivf *ivf = s_ivf(index);
    knn_free(ivf->precomputed);
    ivf->precomputed = NULL;
    if (!ivf->is_pq || !ivf->by_residual || index->opts.metric != KNN_METRIC_L2)
        return 0;
    size_t tsize = ivf->pq.m * ivf->pq.ksub, total;
    if (knn_mul_size(&total, tsize, ivf->nlist) != 0 || total > S_PRECOMPUTED_MAX_BYTES / sizeof(float)) {
        KNN_LOG(
            KNN_LOG_INFO, KNN_LS_ALGO, "IVFPQ: %zu lists x %zu sub-quantizers: distance tables made per query",
            ivf->nlist, ivf->pq.m);
        return 0;
    }
    if (!(ivf->precomputed = knn_malloc_array(total, sizeof(float))))
        return KNN_ENOMEM;
    struct s_precompute_ctx ctx = {ivf, knn__index_flat_vectors(ivf->quantizer), index->opts.dim};
    return knn__parallel_for(ivf->nlist, index->opts.threads, s_precompute_chunk, &ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Train                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static int s_new_quantizer(struct knn_index **out, const struct knn_index *index, int ip)
{
    struct knn_index_options qo = KNN_INDEX_OPTIONS_INIT;
    qo.type = KNN_INDEX_FLAT;
    qo.metric = ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2;
    qo.dim = index->opts.dim;
    qo.threads = index->opts.threads;
    return knn_index_new(out, &qo);
}

/* Below this many queries the coarse search streams the centroids once per query instead. */
#define S_COARSE_BATCH_MIN 16
/* Queries per unit of work of the parallel coarse search. */
#define S_COARSE_UNIT 256

/* Prepare the padded centroid copy of an L2 quantizer (after training or reading). */
static int s_prepare_coarse(struct s_ivf *ivf, size_t d)
{
    knn_free(ivf->qcent);
    knn_free(ivf->qnorms);
    ivf->qcent = ivf->qnorms = NULL;
    if (ivf->quantizer->opts.metric != KNN_METRIC_L2)
        return 0;
    ivf->qpad = (ivf->nlist + 15) / 16 * 16;
    if (!(ivf->qcent = knn_calloc(ivf->qpad, d * sizeof(float))) ||
        !(ivf->qnorms = knn_malloc_array(ivf->qpad, sizeof(float))))
        return KNN_ENOMEM;
    memcpy(ivf->qcent, knn__index_flat_vectors(ivf->quantizer), ivf->nlist * d * sizeof(float));
    knn__norms_sqr(ivf->qcent, ivf->nlist, d, ivf->qnorms);
    for (size_t l = ivf->nlist; l < ivf->qpad; l++)
        ivf->qnorms[l] = INFINITY;
    return 0;
}

/* The k nearest lists of n queries, on the calling thread. */
static int s_coarse(const struct knn_index *index, size_t n, const float *x, size_t k, float *dist, int64_t *lab)
{
    const struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim;
    if (ivf->qcent && n >= S_COARSE_BATCH_MIN)
        return knn__exact_search_block(x, n, ivf->qcent, ivf->qnorms, ivf->qpad, d, 0, k, dist, lab, 0, 1);
    struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
    sp.threads = 1;
    return ivf->quantizer->vtable->search(ivf->quantizer, n, x, k, dist, lab, &sp);
}

struct s_assign_ctx {
    const struct knn_index *index;
    const float *x;
    float *dist;
    int64_t *lab;
    size_t n;
};

static int s_assign_chunk(void *ctx_, size_t begin, size_t end, size_t worker)
{
    const struct s_assign_ctx *ctx = ctx_;
    const size_t d = ctx->index->opts.dim;
    size_t b = begin * S_COARSE_UNIT, e = end * S_COARSE_UNIT < ctx->n ? end * S_COARSE_UNIT : ctx->n;
    return s_coarse(ctx->index, e - b, ctx->x + b * d, 1, ctx->dist + b, ctx->lab + b);
}

/* Coarse assignment of n vectors: the nearest list of each, and its distance, in parallel. */
static int s_assign(const struct knn_index *index, size_t n, const float *x, size_t threads, float *dist, int64_t *lab)
{
    struct s_assign_ctx ctx = {index, x, dist, lab, n};
    return knn__parallel_for((n + S_COARSE_UNIT - 1) / S_COARSE_UNIT, threads, s_assign_chunk, &ctx);
}

/*
 * The training set of a quantizer of residuals, as FAISS makes it: at most `most` of the n
 * vectors (a uniform seeded subset, Knuth's selection sampling, in input order), then their
 * residuals to their nearest centroid when the index encodes residuals. *out: *n_out * d floats.
 */
static int s_residual_sample(
    const struct knn_index *index, size_t n, const float *x, size_t most, uint64_t seed, float **out, size_t *n_out)
{
    const struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim;
    size_t n_train = n < most ? n : most;
    float *res = NULL, *dist = NULL;
    int64_t *lab = NULL;
    int rc = 0;
    if (!(res = knn_malloc_array(n_train, d * sizeof(float))) || !(dist = knn_malloc_array(n_train, sizeof(float))) ||
        !(lab = knn_malloc_array(n_train, sizeof(int64_t)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if (n_train == n) {
        memcpy(res, x, n * d * sizeof(float));
    } else {
        struct knn__rng rng;
        knn__rng_seed(&rng, seed);
        size_t got = 0;
        for (size_t i = 0; i < n && got < n_train; i++) {
            if (knn__rng_below(&rng, n - i) < n_train - got)
                memcpy(res + (got++) * d, x + i * d, d * sizeof(float));
        }
    }
    if (ivf->by_residual) {
        if ((rc = s_assign(index, n_train, res, index->opts.threads, dist, lab)) != 0)
            goto on_error;
        const float *cent = knn__index_flat_vectors(ivf->quantizer);
        for (size_t i = 0; i < n_train; i++) {
            const float *c = cent + (size_t)lab[i] * d;
            for (size_t j = 0; j < d; j++)
                res[i * d + j] -= c[j];
        }
    }
    *out = res;
    *n_out = n_train;
    res = NULL;
on_error:
    knn_free(res);
    knn_free(dist);
    knn_free(lab);
    return rc;
}

static int s_train_pq(struct knn_index *index, size_t n, const float *x)
{
    struct s_ivf *ivf = s_ivf(index);
    float *res = NULL;
    size_t n_train = 0;
    /* As FAISS: sample the PQ training set first (256 points per centroid), then take residuals. */
    int rc = s_residual_sample(index, n, x, KNN__PQ_KSUB * 256, index->opts.seed ^ 0x49565051u, &res, &n_train);
    if (rc == 0)
        rc = knn__pq_train(&ivf->pq, n_train, res, index->opts.seed + 1, index->opts.threads);
    knn_free(res);
    return rc;
}

/* FAISS trains the scalar quantizer's ranges on at most 100,000 residuals. */
#define S_SQ_TRAIN_MAX 100000

static int s_train_sq(struct knn_index *index, size_t n, const float *x)
{
    struct s_ivf *ivf = s_ivf(index);
    float *res = NULL;
    size_t n_train = 0;
    int rc = s_residual_sample(index, n, x, S_SQ_TRAIN_MAX, index->opts.seed ^ 0x49565351u, &res, &n_train);
    if (rc == 0)
        knn__sq_train(&ivf->sq, n_train, res);
    knn_free(res);
    return rc;
}

static int s_train(struct knn_index *index, size_t n, const float *x)
{
    struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim;
    float *cent = NULL;
    struct knn_index *quantizer = NULL;
    int rc = 0;

    if (index->ntotal > 0)
        return knn_error_set(
            KNN_EINVAL, "%s train: the index already holds %zu vectors", index->vtable->name, index->ntotal);
    if (n < ivf->nlist)
        return knn_error_set(
            KNN_EINVAL, "%s train: %zu training vectors for nlist = %zu (need at least nlist)", index->vtable->name, n,
            ivf->nlist);
    if (ivf->is_pq && n < KNN__PQ_KSUB)
        return knn_error_set(
            KNN_EINVAL, "%s train: %zu training vectors, need at least %d (256 centroids per sub-quantizer)",
            index->vtable->name, n, KNN__PQ_KSUB);

    if (!(cent = knn_malloc_array(ivf->nlist, d * sizeof(float))))
        return KNN_ENOMEM;
    struct knn__kmeans_options ko = KNN__KMEANS_OPTIONS_INIT;
    ko.niter = S_COARSE_NITER;
    ko.ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    ko.balance = S_BALANCE;
    ko.balance_niter = S_BALANCE_NITER;
    ko.balance_points_per_centroid = S_BALANCE_POINTS;
    ko.seed = index->opts.seed;
    ko.threads = index->opts.threads;
    if ((rc = knn__kmeans_train(cent, &ko, n, d, x, ivf->nlist)) != 0) {
        knn_error_wrap(rc, "%s train", index->vtable->name);
        goto on_error;
    }
    if ((rc = s_new_quantizer(&quantizer, index, ko.ip)) != 0 || (rc = knn_index_add(quantizer, ivf->nlist, cent)) != 0)
        goto on_error;
    knn_index_destroy(ivf->quantizer);
    ivf->quantizer = quantizer;
    quantizer = NULL;
    if ((rc = s_prepare_coarse(ivf, d)) != 0)
        goto on_error;
    KNN_LOG(KNN_LOG_DEBUG, KNN_LS_ALGO, "%s: %zu lists trained on %zu vectors", index->vtable->name, ivf->nlist, n);

    if (ivf->is_pq) {
        if ((rc = s_train_pq(index, n, x)) != 0) {
            knn_error_wrap(rc, "%s train", index->vtable->name);
            goto on_error;
        }
        if ((rc = s_precompute(index)) != 0)
            goto on_error;
    }
    if (ivf->is_sq && (rc = s_train_sq(index, n, x)) != 0) {
        knn_error_wrap(rc, "%s train", index->vtable->name);
        goto on_error;
    }
    index->is_trained = 1;

on_error:
    knn_index_destroy(quantizer);
    knn_free(cent);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Add                                                                                          */
/* ------------------------------------------------------------------------------------------ */

struct s_encode_ctx {
    const struct s_ivf *ivf;
    const float *x;
    const int64_t *lab;
    size_t d;
    uint8_t *codes;
};

/* Vectors encoded per step (their residuals are staged in a buffer of this many rows). */
#define S_ENCODE_ROWS 64

static int s_encode_chunk(void *ctx_, size_t begin, size_t end, size_t worker)
{
    struct s_encode_ctx *ctx = ctx_;
    const struct s_ivf *ivf = ctx->ivf;
    const size_t d = ctx->d;
    const float *cent = knn__index_flat_vectors(ivf->quantizer);
    float *buf = NULL;
    if (ivf->by_residual && !(buf = knn_malloc_array(S_ENCODE_ROWS, d * sizeof(float))))
        return KNN_ENOMEM;
    for (size_t i0 = begin; i0 < end; i0 += S_ENCODE_ROWS) {
        size_t nb = end - i0 < S_ENCODE_ROWS ? end - i0 : S_ENCODE_ROWS;
        const float *src = ctx->x + i0 * d;
        if (ivf->by_residual) {
            for (size_t i = 0; i < nb; i++) {
                const float *c = cent + (size_t)ctx->lab[i0 + i] * d;
                for (size_t j = 0; j < d; j++)
                    buf[i * d + j] = src[i * d + j] - c[j];
            }
            src = buf;
        }
        if (ivf->is_sq)
            knn__sq_encode(&ivf->sq, nb, src, ctx->codes + i0 * ivf->code_size);
        else
            knn__pq_encode(&ivf->pq, nb, src, ctx->codes + i0 * ivf->code_size);
    }
    knn_free(buf);
    return 0;
}

static int s_add(struct knn_index *index, size_t n, const float *x)
{
    struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim;
    const size_t chunk = n < S_ADD_CHUNK ? n : S_ADD_CHUNK;
    float *dist = NULL;
    int64_t *lab = NULL;
    uint8_t *codes = NULL;
    size_t *count = NULL;
    int rc = 0;

    if (index->ntotal + n > (size_t)INT64_MAX)
        return knn_error_set(KNN_ETOOBIG, "%s add: too many vectors", index->vtable->name);
    if (!(dist = knn_malloc_array(chunk, sizeof(float))) || !(lab = knn_malloc_array(chunk, sizeof(int64_t))) ||
        !(count = knn_calloc(ivf->nlist, sizeof(size_t))) ||
        ((ivf->is_pq || ivf->is_sq) && !(codes = knn_malloc_array(chunk, ivf->code_size)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t nb = n - i0 < chunk ? n - i0 : chunk;
        const float *xb = x + i0 * d;
        if ((rc = s_assign(index, nb, xb, index->opts.threads, dist, lab)) != 0)
            goto on_error;
        const uint8_t *src = (const uint8_t *)xb;
        if (ivf->is_pq || ivf->is_sq) {
            struct s_encode_ctx ctx = {ivf, xb, lab, d, codes};
            if ((rc = knn__parallel_for(nb, index->opts.threads, s_encode_chunk, &ctx)) != 0)
                goto on_error;
            src = codes;
        }
        /* Grow every touched list once, then append in input order (ids stay sorted per list). */
        memset(count, 0, ivf->nlist * sizeof(size_t));
        for (size_t i = 0; i < nb; i++) {
            KNN_ASSERT(lab[i] >= 0 && (size_t)lab[i] < ivf->nlist);
            count[lab[i]]++;
        }
        for (size_t l = 0; l < ivf->nlist; l++) {
            if (!count[l])
                continue;
            size_t old = ivf->lists[l].size;
            if ((rc = s_list_resize(ivf, l, old + count[l])) != 0)
                goto on_error;
            count[l] = old; /* next free slot */
        }
        for (size_t i = 0; i < nb; i++) {
            struct s_list *list = &ivf->lists[lab[i]];
            size_t pos = count[lab[i]]++;
            s_list_put(ivf, list, pos, src + i * ivf->code_size);
            list->ids[pos] = (int64_t)(index->ntotal + i0 + i);
        }
    }
    index->ntotal += n;

on_error:
    knn_free(dist);
    knn_free(lab);
    knn_free(codes);
    knn_free(count);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Search                                                                                       */
/* ------------------------------------------------------------------------------------------ */

struct s_search_ctx {
    const struct knn_index *index;
    size_t n, k, nprobe, block;
    const float *x;
    float *distances;
    int64_t *labels;
};

/* Within runs of equal distances, order by id (the index.h contract), after decoding labels. */
static void s_order_ties(float *dist, int64_t *ids, size_t k)
{
    for (size_t i = 1; i < k; i++) {
        float dv = dist[i];
        int64_t iv = ids[i];
        size_t j = i;
        while (j > 0 && dist[j - 1] == dv && ids[j - 1] > iv && iv >= 0) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = iv;
    }
}

static int
s_search_flat_block(const struct s_search_ctx *ctx, size_t q0, size_t nq, const float *cdist, const int64_t *clab)
{
    const struct knn_index *index = ctx->index;
    const struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim, k = ctx->k, nprobe = ctx->nprobe;
    const int ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    struct knn__topk *heaps = NULL;
    size_t *start = NULL;
    uint32_t *order = NULL;
    int rc = 0;
    (void)cdist;

    if (!(heaps = knn_malloc_array(nq, sizeof(*heaps))) || !(start = knn_calloc(ivf->nlist + 1, sizeof(size_t))) ||
        !(order = knn_malloc_array(nq * nprobe, sizeof(uint32_t)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    for (size_t q = 0; q < nq; q++)
        knn__topk_init(&heaps[q], k, ip, ctx->distances + (q0 + q) * k, ctx->labels + (q0 + q) * k);

    /*
     * Lists are scanned in list order below, so a query would meet its probed lists in no
     * particular order and fill its heap with poor candidates first. When the index is in cache
     * anyway, or the vectors are narrow (a heap push costs several distance computations), each
     * query first scans its nearest list alone: its threshold then starts close to final. (On the
     * topics set: ~20% more queries per CPU second; on the gaussian set, 100 MB of lists, the extra
     * cold pass cost more than it saved.)
     */
    size_t first = 0;
    if (d <= S_PRIME_MAX_D || index->ntotal * ivf->code_size <= S_PRIME_MAX_BYTES) {
        for (size_t q = 0; q < nq; q++) {
            int64_t l = clab[q * nprobe];
            if (l >= 0)
                s_scan_flat_list(ivf, (size_t)l, ctx->x + (q0 + q) * d, d, &heaps[q]);
        }
        first = 1;
    }
    /* Counting sort of the (query, list) pairs by list. */
    for (size_t i = 0; i < nq * nprobe; i++) {
        if (clab[i] >= 0 && i % nprobe >= first)
            start[clab[i] + 1]++;
    }
    for (size_t l = 0; l < ivf->nlist; l++)
        start[l + 1] += start[l];
    for (size_t i = 0; i < nq * nprobe; i++) {
        if (clab[i] >= 0 && i % nprobe >= first)
            order[start[clab[i]]++] = (uint32_t)(i / nprobe);
    }
    /* start[l] now holds the end of list l's run; the run begins at start[l - 1] (0 for l = 0). */
    size_t begin = 0;
    for (size_t l = 0; l < ivf->nlist; l++) {
        size_t end = start[l];
        if (ivf->lists[l].size > 0) {
            for (size_t r = begin; r < end; r++) {
                size_t q = order[r];
                s_scan_flat_list(ivf, l, ctx->x + (q0 + q) * d, d, &heaps[q]);
            }
        }
        begin = end;
    }
    for (size_t q = 0; q < nq; q++) {
        knn__topk_finish(&heaps[q]);
        if (ivf->blocked)
            continue; /* ids already */
        float *dq = heaps[q].dist;
        int64_t *iq = heaps[q].ids;
        for (size_t j = 0; j < k; j++) {
            if (iq[j] < 0)
                continue;
            size_t l = (size_t)((uint64_t)iq[j] >> 32), pos = (size_t)(iq[j] & 0xffffffff);
            iq[j] = ivf->lists[l].ids[pos];
        }
        s_order_ties(dq, iq, k);
    }

on_error:
    knn_free(heaps);
    knn_free(start);
    knn_free(order);
    return rc;
}

/*
 * ADC: distance = dis0 + sum over sub-quantizers of sim[i][code[i]]. `M` is a constant in the
 * specialized callers, so the inner sum unrolls.
 */
__attribute__((always_inline)) static inline void s_adc_scan(
    const uint8_t *codes, size_t n, size_t M, const float *sim, float dis0, const int64_t *ids, struct knn__topk *h)
{
    float thr = knn__topk_threshold(h);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint8_t *c = codes + i * M;
        float a0 = dis0, a1 = dis0, a2 = dis0, a3 = dis0;
        for (size_t m = 0; m < M; m++) {
            const float *t = sim + m * KNN__PQ_KSUB;
            a0 += t[c[m]];
            a1 += t[c[M + m]];
            a2 += t[c[2 * M + m]];
            a3 += t[c[3 * M + m]];
        }
        if (a0 <= thr) {
            knn__topk_push(h, a0, ids[i]);
            thr = knn__topk_threshold(h);
        }
        if (a1 <= thr) {
            knn__topk_push(h, a1, ids[i + 1]);
            thr = knn__topk_threshold(h);
        }
        if (a2 <= thr) {
            knn__topk_push(h, a2, ids[i + 2]);
            thr = knn__topk_threshold(h);
        }
        if (a3 <= thr) {
            knn__topk_push(h, a3, ids[i + 3]);
            thr = knn__topk_threshold(h);
        }
    }
    for (; i < n; i++) {
        const uint8_t *c = codes + i * M;
        float a = dis0;
        for (size_t m = 0; m < M; m++)
            a += sim[m * KNN__PQ_KSUB + c[m]];
        if (a <= thr) {
            knn__topk_push(h, a, ids[i]);
            thr = knn__topk_threshold(h);
        }
    }
}

/* The sub-quantizer counts with ADC scans of their own; others take s_adc_any. */
#define S_ADC_MS(X) X(4) X(8) X(16) X(32)

#define S_ADC_FIXED(M)                                                                                                 \
    static void s_adc_m##M(                                                                                            \
        const uint8_t *codes, size_t n, size_t m, const float *sim, float dis0, const int64_t *ids,                    \
        struct knn__topk *h)                                                                                           \
    {                                                                                                                  \
        (void)m;                                                                                                       \
        s_adc_scan(codes, n, M, sim, dis0, ids, h);                                                                    \
    }
S_ADC_MS(S_ADC_FIXED)

static void s_adc_any(
    const uint8_t *codes, size_t n, size_t m, const float *sim, float dis0, const int64_t *ids, struct knn__topk *h)
{
    s_adc_scan(codes, n, m, sim, dis0, ids, h);
}

typedef void(s_adc_fn)(
    const uint8_t *codes, size_t n, size_t m, const float *sim, float dis0, const int64_t *ids, struct knn__topk *h);

static s_adc_fn *s_adc_pick(size_t m)
{
    switch (m) {
#define S_CASE(M)                                                                                                      \
    case M:                                                                                                            \
        return s_adc_m##M;
        S_ADC_MS(S_CASE)
#undef S_CASE
        default:
            return s_adc_any;
    }
}

/*
 * The query's part of the IVFPQ distance tables: with precomputed per-list tables, qtab =
 * -2 x.r (for every sub-quantizer and centroid); without residuals, the L2 table itself (into sim,
 * the same for every list).
 */
static void s_pq_query_table(const struct s_ivf *ivf, const float *xq, float *qtab, float *sim)
{
    const struct knn__pq *pq = &ivf->pq;
    if (!ivf->by_residual) {
        knn__pq_l2_table(pq, xq, sim);
    } else if (ivf->precomputed) {
        const size_t tsize = pq->m * pq->ksub;
        knn__pq_dot_table(pq, xq, qtab);
        for (size_t j = 0; j < tsize; j++)
            qtab[j] *= -2.0f;
    }
}

/*
 * The distance table of list l for the query into sim, and the constant every code's sum starts
 * from (dis0): by residual with precomputed tables, ||x - c||^2 (the coarse distance) and
 * sim = (||r||^2 + 2 c.r) + (-2 x.r); by residual without them, 0 and the L2 table of x - c;
 * without residuals, 0 and the query's table (already in sim).
 */
static float s_pq_list_table(
    const struct s_ivf *ivf, size_t d, const float *xq, const float *qtab, size_t l, float coarse, float *sim,
    float *res)
{
    const struct knn__pq *pq = &ivf->pq;
    const size_t tsize = pq->m * pq->ksub;
    if (!ivf->by_residual)
        return 0.0f;
    if (ivf->precomputed) {
        const float *t1 = ivf->precomputed + l * tsize;
        for (size_t j = 0; j < tsize; j++)
            sim[j] = t1[j] + qtab[j];
        return coarse;
    }
    const float *c = knn__index_flat_vectors(ivf->quantizer) + l * d;
    for (size_t j = 0; j < d; j++)
        res[j] = xq[j] - c[j];
    knn__pq_l2_table(pq, res, sim);
    return 0.0f;
}

static int
s_search_pq_block(const struct s_search_ctx *ctx, size_t q0, size_t nq, const float *cdist, const int64_t *clab)
{
    const struct knn_index *index = ctx->index;
    const struct s_ivf *ivf = s_ivf(index);
    const struct knn__pq *pq = &ivf->pq;
    const size_t d = index->opts.dim, k = ctx->k, nprobe = ctx->nprobe;
    const size_t tsize = pq->m * pq->ksub;
    float *qtab = NULL, *sim = NULL, *res = NULL;
    s_adc_fn *adc = s_adc_pick(pq->m);

    if (!(qtab = knn_malloc_array(tsize, sizeof(float))) || !(sim = knn_malloc_array(tsize, sizeof(float))) ||
        !(res = knn_malloc_array(d, sizeof(float)))) {
        knn_free(qtab);
        knn_free(sim);
        knn_free(res);
        return KNN_ENOMEM;
    }
    for (size_t q = 0; q < nq; q++) {
        const float *xq = ctx->x + (q0 + q) * d;
        struct knn__topk h;
        knn__topk_init(&h, k, 0, ctx->distances + (q0 + q) * k, ctx->labels + (q0 + q) * k);
        s_pq_query_table(ivf, xq, qtab, sim);
        for (size_t p = 0; p < nprobe; p++) {
            int64_t l = clab[q * nprobe + p];
            if (l < 0 || ivf->lists[l].size == 0)
                continue;
            const struct s_list *list = &ivf->lists[l];
            float dis0 = s_pq_list_table(ivf, d, xq, qtab, (size_t)l, cdist[q * nprobe + p], sim, res);
            adc(list->codes, list->size, pq->m, sim, dis0, list->ids, &h);
        }
        knn__topk_finish(&h);
    }
    knn_free(qtab);
    knn_free(sim);
    knn_free(res);
    return 0;
}

/*
 * IVF-SQ8, list l for the query xq: the query side of the distances (sq.h) into a, and the part of
 * every distance that does not depend on the code. L2 by residual: a from x - c; inner product by
 * residual: x.c + x.(vmin + step / 2), a = x * step (the same for every list: `a` is kept when
 * `same_a` says it was made already).
 */
static float s_sq_list_query(const struct s_ivf *ivf, size_t d, int ip, const float *xq, size_t l, float *a, float *res)
{
    float dis0 = 0;
    if (!ivf->by_residual) {
        knn__sq_query(&ivf->sq, xq, ip, a, &dis0);
        return dis0;
    }
    const float *c = knn__index_flat_vectors(ivf->quantizer) + l * d;
    if (ip) {
        knn__sq_query(&ivf->sq, xq, 1, a, &dis0);
        return dis0 + knn__dot(xq, c, d);
    }
    for (size_t j = 0; j < d; j++)
        res[j] = xq[j] - c[j];
    knn__sq_query(&ivf->sq, res, 0, a, &dis0);
    return dis0;
}

static int
s_search_sq_block(const struct s_search_ctx *ctx, size_t q0, size_t nq, const float *cdist, const int64_t *clab)
{
    const struct knn_index *index = ctx->index;
    const struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim, k = ctx->k, nprobe = ctx->nprobe;
    const int ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    float *a = knn_malloc_array(d, sizeof(float)), *res = knn_malloc_array(d, sizeof(float));
    (void)cdist;
    if (!a || !res) {
        knn_free(a);
        knn_free(res);
        return KNN_ENOMEM;
    }
    for (size_t q = 0; q < nq; q++) {
        const float *xq = ctx->x + (q0 + q) * d;
        struct knn__topk h;
        knn__topk_init(&h, k, ip, ctx->distances + (q0 + q) * k, ctx->labels + (q0 + q) * k);
        for (size_t p = 0; p < nprobe; p++) {
            int64_t l = clab[q * nprobe + p];
            if (l < 0 || ivf->lists[l].size == 0)
                continue;
            const struct s_list *list = &ivf->lists[l];
            float dis0 = s_sq_list_query(ivf, d, ip, xq, (size_t)l, a, res);
            knn__sq_scan(&ivf->sq, list->codes, list->size, a, dis0, list->ids, &h);
        }
        knn__topk_finish(&h);
    }
    knn_free(a);
    knn_free(res);
    return 0;
}

static int s_search_chunk(void *ctx_, size_t begin, size_t end, size_t worker)
{
    const struct s_search_ctx *ctx = ctx_;
    const struct knn_index *index = ctx->index;
    const struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim;
    float *cdist = NULL;
    int64_t *clab = NULL;
    int rc = 0;

    size_t most = ctx->block * ctx->nprobe;
    if (!(cdist = knn_malloc_array(most, sizeof(float))) || !(clab = knn_malloc_array(most, sizeof(int64_t)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    for (size_t b = begin; b < end; b++) {
        size_t q0 = b * ctx->block;
        size_t nq = ctx->n - q0 < ctx->block ? ctx->n - q0 : ctx->block;
        rc = s_coarse(index, nq, ctx->x + q0 * d, ctx->nprobe, cdist, clab);
        if (rc != 0)
            goto on_error;
        rc = ivf->is_pq   ? s_search_pq_block(ctx, q0, nq, cdist, clab)
             : ivf->is_sq ? s_search_sq_block(ctx, q0, nq, cdist, clab)
                          : s_search_flat_block(ctx, q0, nq, cdist, clab);
        if (rc != 0)
            goto on_error;
    }

on_error:
    knn_free(cdist);
    knn_free(clab);
    return rc;
}

/*
 * One query over many probed entries: the probes are split over the workers, each keeping its own
 * top k, merged at the end. Worth it from about this many list entries (a hand-off to the pool
 * costs tens of microseconds; this many entries take about a millisecond).
 */
#define S_SPLIT_MIN_ENTRIES 32768

struct s_split_ctx {
    const struct knn_index *index;
    const float *xq;
    size_t k;
    const float *cdist;
    const int64_t *clab;
    const float *qtab; /* IVFPQ: the query's table (s_pq_query_table) */
    float *wdist;      /* per worker: k results */
    int64_t *wlab;
    float *wsim; /* IVFPQ, per worker: a table and a residual */
    float *wres;
};

static int s_split_chunk(void *ctx_, size_t begin, size_t end, size_t worker)
{
    const struct s_split_ctx *ctx = ctx_;
    const struct knn_index *index = ctx->index;
    const struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim, k = ctx->k;
    const int ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    struct knn__topk h;
    knn__topk_resume(&h, k, ip, ctx->wdist + worker * k, ctx->wlab + worker * k);
    for (size_t p = begin; p < end; p++) {
        int64_t l = ctx->clab[p];
        if (l < 0 || ivf->lists[l].size == 0)
            continue;
        const struct s_list *list = &ivf->lists[l];
        if (ivf->is_sq) {
            float *a = ctx->wsim + worker * d, *res = ctx->wres + worker * d;
            float dis0 = s_sq_list_query(ivf, d, ip, ctx->xq, (size_t)l, a, res);
            knn__sq_scan(&ivf->sq, list->codes, list->size, a, dis0, list->ids, &h);
            continue;
        }
        if (!ivf->is_pq) {
            s_scan_flat_list(ivf, (size_t)l, ctx->xq, d, &h);
            continue;
        }
        const size_t tsize = ivf->pq.m * ivf->pq.ksub;
        float *sim = ctx->wsim + worker * tsize, *res = ctx->wres + worker * d;
        if (!ivf->by_residual)
            memcpy(sim, ctx->qtab, tsize * sizeof(float));
        float dis0 = s_pq_list_table(ivf, d, ctx->xq, ctx->qtab, (size_t)l, ctx->cdist[p], sim, res);
        s_adc_pick(ivf->pq.m)(list->codes, list->size, ivf->pq.m, sim, dis0, list->ids, &h);
    }
    knn__topk_finish(&h);
    return 0;
}

static int s_search_one_split(
    const struct knn_index *index, const float *xq, size_t k, size_t nprobe, size_t nthreads, float *distances,
    int64_t *labels)
{
    const struct s_ivf *ivf = s_ivf(index);
    const size_t d = index->opts.dim;
    const int ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    const size_t tsize = ivf->is_pq ? ivf->pq.m * ivf->pq.ksub : ivf->is_sq ? d : 0;
    struct s_split_ctx ctx = {index, xq, k, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    float *cdist = NULL, *qtab = NULL;
    int64_t *clab = NULL;
    int rc = 0;

    if (!(cdist = knn_malloc_array(nprobe, sizeof(float))) || !(clab = knn_malloc_array(nprobe, sizeof(int64_t))) ||
        !(ctx.wdist = knn_malloc_array(nthreads * k, sizeof(float))) ||
        !(ctx.wlab = knn_malloc_array(nthreads * k, sizeof(int64_t))) ||
        ((ivf->is_pq || ivf->is_sq) && (!(qtab = knn_malloc_array(tsize, sizeof(float))) ||
                        !(ctx.wsim = knn_malloc_array(nthreads * tsize, sizeof(float))) ||
                        !(ctx.wres = knn_malloc_array(nthreads * d, sizeof(float)))))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    if ((rc = s_coarse(index, 1, xq, nprobe, cdist, clab)) != 0)
        goto done;
    size_t entries = 0;
    for (size_t p = 0; p < nprobe; p++)
        entries += clab[p] >= 0 ? ivf->lists[clab[p]].size : 0;
    size_t workers = entries >= S_SPLIT_MIN_ENTRIES ? nthreads : 1;
    for (size_t i = 0; i < workers * k; i++) {
        ctx.wdist[i] = ip ? -INFINITY : INFINITY;
        ctx.wlab[i] = -1;
    }
    if (ivf->is_pq)
        s_pq_query_table(ivf, xq, qtab, qtab);
    ctx.cdist = cdist;
    ctx.clab = clab;
    ctx.qtab = qtab;
    if ((rc = knn__parallel_for(nprobe, workers, s_split_chunk, &ctx)) != 0)
        goto done;
    /* Merge the workers' lists, then (IVFFlat) turn list positions into ids. */
    struct knn__topk h;
    knn__topk_init(&h, k, ip, distances, labels);
    for (size_t w = 0; w < workers; w++)
        for (size_t j = 0; j < k && ctx.wlab[w * k + j] >= 0; j++)
            knn__topk_push(&h, ctx.wdist[w * k + j], ctx.wlab[w * k + j]);
    knn__topk_finish(&h);
    if (!ivf->is_pq && !ivf->is_sq && !ivf->blocked) {
        for (size_t j = 0; j < k; j++) {
            if (labels[j] < 0)
                continue;
            size_t l = (size_t)((uint64_t)labels[j] >> 32), pos = (size_t)(labels[j] & 0xffffffff);
            labels[j] = ivf->lists[l].ids[pos];
        }
        s_order_ties(distances, labels, k);
    }

done:
    knn_free(cdist);
    knn_free(clab);
    knn_free(qtab);
    knn_free(ctx.wdist);
    knn_free(ctx.wlab);
    knn_free(ctx.wsim);
    knn_free(ctx.wres);
    return rc;
}

static int s_search(
    const struct knn_index *index, size_t n, const float *x, size_t k, float *distances, int64_t *labels,
    const struct knn_search_params *params)
{
    const struct s_ivf *ivf = s_ivf(index);
    size_t nprobe = params->nprobe ? params->nprobe : index->opts.nprobe;
    if (nprobe > ivf->nlist)
        nprobe = ivf->nlist;
    if (nprobe == 0)
        nprobe = 1;
    size_t threads = params->threads ? params->threads : index->opts.threads;
    size_t all = knn__resolve_threads(threads, SIZE_MAX);
    if (n < all) {
        /* Fewer queries than workers (one, typically): split each query's lists over the workers. */
        for (size_t i = 0; i < n; i++) {
            int rc =
                s_search_one_split(index, x + i * index->opts.dim, k, nprobe, all, distances + i * k, labels + i * k);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    size_t nthreads = knn__resolve_threads(threads, n);
    size_t block = (n + nthreads - 1) / nthreads;
    if (block > S_QUERY_BLOCK)
        block = S_QUERY_BLOCK;
    struct s_search_ctx ctx = {index, n, k, nprobe, block, x, distances, labels};
    size_t nblocks = (n + block - 1) / block;
    return knn__parallel_for(nblocks, nthreads, s_search_chunk, &ctx);
}

/* ------------------------------------------------------------------------------------------ */
/* Life cycle                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void s_destroy(struct knn_index *index)
{
    if (!index)
        return;
    struct s_ivf *ivf = s_ivf(index);
    if (ivf) {
        if (ivf->lists) {
            for (size_t l = 0; l < ivf->nlist; l++) {
                knn_free(ivf->lists[l].codes);
                knn_free(ivf->lists[l].ids);
            }
        }
        knn_free(ivf->lists);
        knn_index_destroy(ivf->quantizer);
        knn__pq_clean_up(&ivf->pq);
        knn__sq_clean_up(&ivf->sq);
        knn_free(ivf->precomputed);
        knn_free(ivf->qcent);
        knn_free(ivf->qnorms);
        knn_free(ivf);
    }
    knn_free(index);
}

static const struct knn_index_vtable s_ivfflat_vtable = {"IndexIVFFlat", s_train, s_add, s_search, s_destroy};
static const struct knn_index_vtable s_ivfpq_vtable = {"IndexIVFPQ", s_train, s_add, s_search, s_destroy};
static const struct knn_index_vtable s_ivfsq_vtable = {
    "IndexIVFScalarQuantizer", s_train, s_add, s_search, s_destroy};

int knn__index_ivf_new(struct knn_index **out, const struct knn_index_options *opts)
{
    struct knn_index *index = NULL;
    struct s_ivf *ivf = NULL;
    int rc = 0;
    const char *name = opts->type == KNN_INDEX_IVFPQ     ? "IndexIVFPQ"
                       : opts->type == KNN_INDEX_IVFSQ8 ? "IndexIVFScalarQuantizer"
                                                        : "IndexIVFFlat";

    *out = NULL;
    if (opts->type != KNN_INDEX_IVFFLAT && opts->type != KNN_INDEX_IVFPQ && opts->type != KNN_INDEX_IVFSQ8)
        return knn_error_set(KNN_EINVAL, "IVF index: type %d is not IVFFlat, IVFPQ or IVF-SQ8", (int)opts->type);
    if (opts->dim == 0)
        return knn_error_set(KNN_EINVAL, "%s: dimension 0", name);
    if (opts->nlist == 0 || opts->nlist > INT32_MAX)
        return knn_error_set(KNN_EINVAL, "%s: nlist = %zu (must be 1 .. 2^31 - 1)", name, opts->nlist);
    if (opts->nprobe == 0)
        return knn_error_set(KNN_EINVAL, "%s: nprobe must be at least 1", name);
    if (opts->metric != KNN_METRIC_L2 && opts->metric != KNN_METRIC_INNER_PRODUCT)
        return knn_error_set(KNN_EINVAL, "%s: unknown metric %d", name, (int)opts->metric);
    if (opts->type == KNN_INDEX_IVFPQ) {
        if (opts->metric != KNN_METRIC_L2)
            return knn_error_set(KNN_EINVAL, "%s: only the L2 metric is supported (as in SageMaker)", name);
        if (opts->pq_m == 0 || opts->dim % opts->pq_m != 0)
            return knn_error_set(
                KNN_EINVAL, "%s: pq_m = %zu must divide the dimension %zu", name, opts->pq_m, opts->dim);
    }
    if (opts->dim > SIZE_MAX / sizeof(float) / 64)
        return knn_error_set(KNN_EINVAL, "%s: dimension %zu is too large", name, opts->dim);

    if (!(index = knn_calloc(1, sizeof(*index))) || !(ivf = knn_calloc(1, sizeof(*ivf)))) {
        knn_free(index);
        return KNN_ENOMEM;
    }
    index->impl = ivf;
    index->opts = *opts;
    index->vtable = opts->type == KNN_INDEX_IVFPQ     ? &s_ivfpq_vtable
                    : opts->type == KNN_INDEX_IVFSQ8 ? &s_ivfsq_vtable
                                                     : &s_ivfflat_vtable;
    ivf->nlist = opts->nlist;
    ivf->is_pq = opts->type == KNN_INDEX_IVFPQ;
    ivf->is_sq = opts->type == KNN_INDEX_IVFSQ8;
    ivf->by_residual = 1;
    ivf->code_size = ivf->is_pq ? opts->pq_m : ivf->is_sq ? opts->dim : opts->dim * sizeof(float);
    ivf->blocked = opts->type == KNN_INDEX_IVFFLAT && opts->dim <= S_BLOCKED_MAX_D;
    if (!(ivf->lists = knn_calloc(ivf->nlist, sizeof(*ivf->lists)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if (ivf->is_pq && (rc = knn__pq_init(&ivf->pq, opts->dim, opts->pq_m)) != 0)
        goto on_error;
    if (ivf->is_sq && (rc = knn__sq_init(&ivf->sq, opts->dim)) != 0)
        goto on_error;
    *out = index;
    return 0;

on_error:
    s_destroy(index);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Accessors for index_io.c                                                                     */
/* ------------------------------------------------------------------------------------------ */

const struct knn_index *knn__ivf_quantizer(const struct knn_index *index)
{
    return s_ivf(index)->quantizer;
}

size_t knn__ivf_code_size(const struct knn_index *index)
{
    return s_ivf(index)->code_size;
}

void knn__ivf_list(const struct knn_index *index, size_t l, size_t *size, const uint8_t **codes, const int64_t **ids)
{
    const struct s_ivf *ivf = s_ivf(index);
    KNN_ASSERT(l < ivf->nlist);
    *size = ivf->lists[l].size;
    *codes = ivf->lists[l].codes;
    *ids = ivf->lists[l].ids;
}

const struct knn__pq *knn__ivf_pq(const struct knn_index *index)
{
    const struct s_ivf *ivf = s_ivf(index);
    return ivf->is_pq ? &ivf->pq : NULL;
}

const struct knn__sq *knn__ivf_sq(const struct knn_index *index)
{
    const struct s_ivf *ivf = s_ivf(index);
    return ivf->is_sq ? &ivf->sq : NULL;
}

int knn__ivf_by_residual(const struct knn_index *index)
{
    return s_ivf(index)->by_residual;
}

int knn__ivf_install(struct knn_index *index, struct knn_index *quantizer, const float *trained, int by_residual)
{
    struct s_ivf *ivf = s_ivf(index);
    int rc = 0;
    if (quantizer->opts.type != KNN_INDEX_FLAT || quantizer->opts.dim != index->opts.dim ||
        quantizer->ntotal != ivf->nlist) {
        rc = knn_error_set(
            KNN_EMISMATCH, "%s: the quantizer holds %zu vectors of %zu floats, expected %zu of %zu",
            index->vtable->name, quantizer->ntotal, quantizer->opts.dim, ivf->nlist, index->opts.dim);
        knn_index_destroy(quantizer);
        return rc;
    }
    if (ivf->is_pq && quantizer->opts.metric != KNN_METRIC_L2) {
        knn_index_destroy(quantizer);
        return knn_error_set(
            KNN_EUNSUPPORTED, "%s: an inner-product coarse quantizer is not supported", index->vtable->name);
    }
    knn_index_destroy(ivf->quantizer);
    ivf->quantizer = quantizer;
    if ((rc = s_prepare_coarse(ivf, index->opts.dim)) != 0)
        return rc;
    if (ivf->is_sq) {
        ivf->by_residual = by_residual != 0;
        memcpy(ivf->sq.trained, trained, 2 * ivf->sq.d * sizeof(float));
        knn__sq_prepare(&ivf->sq);
    }
    if (ivf->is_pq) {
        ivf->by_residual = by_residual != 0;
        memcpy(ivf->pq.centroids, trained, ivf->pq.m * ivf->pq.ksub * ivf->pq.dsub * sizeof(float));
        if ((rc = knn__pq_prepare(&ivf->pq)) != 0 || (rc = s_precompute(index)) != 0)
            return rc;
    }
    index->is_trained = 1;
    return 0;
}

void knn__ivf_list_rows(const struct knn_index *index, size_t l, uint8_t *out)
{
    const struct s_ivf *ivf = s_ivf(index);
    const struct s_list *list = &ivf->lists[l];
    if (!ivf->blocked) {
        memcpy(out, list->codes, list->size * ivf->code_size);
        return;
    }
    for (size_t i = 0; i < list->size; i++)
        s_list_get(ivf, list, i, out + i * ivf->code_size);
}

int knn__ivf_list_alloc(struct knn_index *index, size_t l, size_t size, uint8_t **codes, int64_t **ids)
{
    struct s_ivf *ivf = s_ivf(index);
    KNN_ASSERT(l < ivf->nlist && ivf->lists[l].size == 0);
    if (ivf->blocked) {
        /* the caller writes row-major codes into a staging buffer; knn__ivf_list_finish moves them */
        struct s_list *list = &ivf->lists[l];
        if (!(list->codes = knn_malloc_array(size ? size : 1, ivf->code_size)) ||
            !(list->ids = knn_malloc_array(size ? size : 1, sizeof(int64_t))))
            return KNN_ENOMEM;
        list->size = size;
        *codes = list->codes;
        *ids = list->ids;
        return 0;
    }
    int rc = s_list_resize(ivf, l, size);
    if (rc != 0)
        return rc;
    *codes = ivf->lists[l].codes;
    *ids = ivf->lists[l].ids;
    return 0;
}

int knn__ivf_list_finish(struct knn_index *index, size_t l)
{
    struct s_ivf *ivf = s_ivf(index);
    struct s_list *list = &ivf->lists[l];
    if (!ivf->blocked)
        return 0;
    size_t blocks = (list->size + 7) / 8;
    uint8_t *rows = list->codes;
    if (!(list->codes = knn_calloc(blocks ? blocks : 1, 8 * ivf->code_size))) {
        list->codes = rows;
        return KNN_ENOMEM;
    }
    for (size_t i = 0; i < list->size; i++)
        s_list_put(ivf, list, i, rows + i * ivf->code_size);
    knn_free(rows);
    return 0;
}
