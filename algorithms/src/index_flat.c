/*
 * The Flat index (faiss IndexFlatL2 / IndexFlatIP): the vectors as added, plus their squared norms
 * for L2, searched exactly.
 *
 * How a search is spread over the threads:
 * - many queries: each worker takes a contiguous share of the queries and searches the whole base
 *   with the tiled-sgemm kernel (compute-bound, the base is re-read from memory once per tile of
 *   queries);
 * - few queries (fewer than S_SPLIT_QUERIES per worker) on a large enough base: each worker searches
 *   all the queries against its share of the base, and the per-worker top-k lists are merged. One
 *   query is memory-bound, so this is how it uses more than one core.
 * Inside a worker, fewer than S_GEMM_MIN_QUERIES queries use the fused streaming kernel (one pass
 * over the base per query) and more use sgemm.
 * Up to d = 128 (with AVX2), the base is packed once for the register-blocked kernel, at the first
 * search, and every search uses that kernel whatever its number of queries: re-packing the whole
 * base per call made 4-8 queries slower than 3 (the kernel switch), and with one kernel a query's
 * answer is the same bytes whether it is searched alone or in a batch (the endpoint's dynamic
 * batching relies on it). It costs a second copy of the base (padded to 16 vectors).
 * The answer does not depend on the split: equal distances are ordered by id (topk.h).
 */
#include "index_flat.h"

#include "distances.h"
#include "parallel.h"
#include "topk.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* Below this many queries in a worker, stream the base once per query instead of calling sgemm. */
#define S_GEMM_MIN_QUERIES 4
/* Split the base instead of the queries when there are fewer queries than this per worker. */
#define S_SPLIT_QUERIES 128
/*
 * Queries are handed to workers in units of this many: each unit packs (or tiles) the whole base
 * once, so small units would re-read it for little work; a few units per worker keep the load
 * balanced when a core is busy with something else.
 */
#define S_QUERY_UNIT 256
/* ... and only when each worker gets at least this many floats of the base to scan. */
#define S_SPLIT_MIN_FLOATS (1u << 16)
/*
 * The base is split in units of this many rows, so that every row gets the same distance, to the
 * bit, whatever the split (and in a model part, part.h, whose rows start at such a unit): the
 * single-query kernel takes rows in groups of 8 from the start of its range (the rest one by one,
 * rounded differently), and the sgemm path (d > 128) cuts the base in tiles of 256 whose sgemm
 * calls round by their shape.
 */
#define S_SPLIT_ROWS 256
_Static_assert(S_SPLIT_ROWS % 16 == 0, "a unit of the base starts on a 16-vector boundary of the packed base");

struct s_flat {
    float *xb;    /* ntotal * dim */
    float *norms; /* ntotal squared norms (L2 only) */
    size_t cap;   /* vectors allocated */
    _Atomic(float *) packed; /* knn__pack_base of xb, made at the first search; NULL until then */
    pthread_mutex_t pack_lock;
};

/* The packed base, made by the first search that needs it (searches run concurrently). */
static const float *s_packed(const struct knn_index *index)
{
    struct s_flat *f = index->impl;
    size_t floats = knn__packed_floats(index->ntotal, index->opts.dim);
    if (!floats || !knn__simd_enabled())
        return NULL;
    float *p = atomic_load(&f->packed);
    if (p)
        return p;
    pthread_mutex_lock(&f->pack_lock);
    p = atomic_load(&f->packed);
    if (!p && (p = knn_aligned_alloc(32, floats * sizeof(float))) != NULL) {
        knn__pack_base(f->xb, index->ntotal, index->opts.dim, p);
        atomic_store(&f->packed, p);
    }
    pthread_mutex_unlock(&f->pack_lock);
    return p; /* NULL if out of memory: the searches re-pack per call as before */
}

static void s_drop_packed(struct s_flat *f)
{
    knn_free(atomic_load(&f->packed));
    atomic_store(&f->packed, NULL);
}

static void s_destroy(struct knn_index *index)
{
    struct s_flat *f = index->impl;
    if (f) {
        knn_free(f->xb);
        knn_free(f->norms);
        s_drop_packed(f);
        pthread_mutex_destroy(&f->pack_lock);
        knn_free(f);
    }
    knn_free(index);
}

static int s_add(struct knn_index *index, size_t n, const float *x)
{
    struct s_flat *f = index->impl;
    size_t d = index->opts.dim;
    int l2 = index->opts.metric == KNN_METRIC_L2;
    size_t need;
    if (knn_add_size(&need, index->ntotal, n) != 0)
        return knn_error_set(KNN_ENOMEM, "flat index: adding %zu vectors overflows", n);
    if (need > f->cap) {
        size_t cap = f->cap + f->cap / 2;
        if (cap < need)
            cap = need;
        size_t floats;
        if (knn_mul_size(&floats, cap, d) != 0)
            return knn_error_set(KNN_ENOMEM, "flat index: %zu vectors of dimension %zu overflow", cap, d);
        float *xb = knn_realloc_array(f->xb, floats, sizeof(float));
        if (!xb)
            return knn_error_wrap(KNN_ENOMEM, "flat index: %zu vectors of dimension %zu", cap, d);
        f->xb = xb;
        if (l2) {
            float *norms = knn_realloc_array(f->norms, cap, sizeof(float));
            if (!norms)
                return knn_error_wrap(KNN_ENOMEM, "flat index: norms of %zu vectors", cap);
            f->norms = norms;
        }
        f->cap = cap;
    }
    s_drop_packed(f); /* adding is not concurrent with searching; the next search packs again */
    memcpy(f->xb + index->ntotal * d, x, n * d * sizeof(float));
    if (l2)
        knn__norms_sqr(x, n, d, f->norms + index->ntotal);
    index->ntotal += n;
    return 0;
}

/*
 * Search nq queries against nb base vectors (ids from id0), merging into the best-first lists in
 * distances/labels (init: start from empty lists).
 */
static int s_search_range(
    const float *q, size_t nq, const float *base, const float *packed, const float *norms, size_t nb, size_t d, int ip,
    size_t k, float *distances, int64_t *labels, int64_t id0, int init)
{
    if (packed)
        return knn__exact_search_packed(q, nq, packed, norms, nb, d, ip, k, distances, labels, id0, init);
    if (nq >= S_GEMM_MIN_QUERIES)
        return knn__exact_search_block(q, nq, base, norms, nb, d, ip, k, distances, labels, id0, init);
    for (size_t i = 0; i < nq; i++) {
        struct knn__topk h;
        if (init)
            knn__topk_init(&h, k, ip, distances + i * k, labels + i * k);
        else
            knn__topk_resume(&h, k, ip, distances + i * k, labels + i * k);
        knn__scan_one(q + i * d, base, nb, d, &h, id0);
        knn__topk_finish(&h);
    }
    return 0;
}

struct s_search {
    const struct knn_index *index;
    const struct s_flat *f;
    size_t n, k, d;
    int ip;
    const float *x;
    const float *packed; /* the packed base, or NULL */
    float *distances;
    int64_t *labels;
    /* split-base mode: one n*k result list per worker */
    float *wdist;
    int64_t *wlabels;
};

/* Units [ubegin, uend) of S_QUERY_UNIT queries each, against the whole base. */
static int s_chunk_queries(void *ctx, size_t ubegin, size_t uend, size_t worker)
{
    struct s_search *s = ctx;
    size_t begin = ubegin * S_QUERY_UNIT, end = uend * S_QUERY_UNIT < s->n ? uend * S_QUERY_UNIT : s->n;
    int rc = s_search_range(
        s->x + begin * s->d, end - begin, s->f->xb, s->packed, s->f->norms, s->index->ntotal, s->d, s->ip, s->k,
        s->distances + begin * s->k, s->labels + begin * s->k, 0, 1);
    return rc ? knn_error_wrap(rc, "flat search, queries %zu..%zu", begin, end) : 0;
}

static int s_chunk_base(void *ctx, size_t ubegin, size_t uend, size_t worker)
{
    struct s_search *s = ctx;
    size_t ntotal = s->index->ntotal;
    size_t begin = ubegin * S_SPLIT_ROWS, end = uend * S_SPLIT_ROWS < ntotal ? uend * S_SPLIT_ROWS : ntotal;
    size_t nk = s->n * s->k;
    int rc = s_search_range(
        s->x, s->n, s->f->xb + begin * s->d, s->packed ? s->packed + begin * s->d : NULL,
        s->f->norms ? s->f->norms + begin : NULL, end - begin, s->d, s->ip, s->k, s->wdist + worker * nk,
        s->wlabels + worker * nk, (int64_t)begin, 0);
    return rc ? knn_error_wrap(rc, "flat search, base %zu..%zu", begin, end) : 0;
}

/*
 * L2: the distances of the k found, computed again directly as sum((x - y)^2) and the lists put
 * back in (distance, id) order. The kernels select with ||x||^2 + ||y||^2 - 2 x.y, which loses
 * digits when the norms are large next to the distances (un-normalized features: 905.25 for
 * 905.5267); the answer shows the exact distance, the same whichever kernel or batch found it.
 */
static void s_exact_l2(const struct knn_index *index, size_t n, const float *x, size_t k, float *distances,
                       int64_t *labels)
{
    const struct s_flat *f = index->impl;
    size_t d = index->opts.dim;
    for (size_t i = 0; i < n; i++) {
        float *dist = distances + i * k;
        int64_t *lab = labels + i * k;
        for (size_t j = 0; j < k && lab[j] >= 0; j++)
            dist[j] = knn__l2sqr(x + i * d, f->xb + (size_t)lab[j] * d, d);
        for (size_t j = 1; j < k && lab[j] >= 0; j++) { /* insertion sort: k is small, mostly in order */
            float dv = dist[j];
            int64_t lv = lab[j];
            size_t m = j;
            while (m > 0 && (dist[m - 1] > dv || (dist[m - 1] == dv && lab[m - 1] > lv))) {
                dist[m] = dist[m - 1];
                lab[m] = lab[m - 1];
                m--;
            }
            dist[m] = dv;
            lab[m] = lv;
        }
    }
}

static int s_search_select(
    const struct knn_index *index, size_t n, const float *x, size_t k, float *distances, int64_t *labels,
    const struct knn_search_params *params);

static int s_search(
    const struct knn_index *index, size_t n, const float *x, size_t k, float *distances, int64_t *labels,
    const struct knn_search_params *params)
{
    int rc = s_search_select(index, n, x, k, distances, labels, params);
    if (rc == 0 && index->opts.metric == KNN_METRIC_L2)
        s_exact_l2(index, n, x, k, distances, labels);
    return rc;
}

static int s_search_select(
    const struct knn_index *index, size_t n, const float *x, size_t k, float *distances, int64_t *labels,
    const struct knn_search_params *params)
{
    struct s_search s = {
        .index = index,
        .f = index->impl,
        .n = n,
        .k = k,
        .d = index->opts.dim,
        .ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT,
        .x = x,
        .packed = s_packed(index),
        .distances = distances,
        .labels = labels,
    };
    size_t ntotal = index->ntotal;
    size_t threads = knn__resolve_threads(params->threads ? params->threads : index->opts.threads, SIZE_MAX);
    size_t max_split = (ntotal * s.d) / S_SPLIT_MIN_FLOATS;
    size_t split = threads < max_split ? threads : max_split;

    if (threads == 1 || n >= threads * S_SPLIT_QUERIES || split < 2)
        return knn__parallel_for((n + S_QUERY_UNIT - 1) / S_QUERY_UNIT, threads, s_chunk_queries, &s);

    /* Few queries: split the base over the workers, then merge their lists. */
    int rc = 0;
    size_t nk = n * k, total;
    if (knn_mul_size(&total, nk, split) != 0)
        return knn_error_set(KNN_ENOMEM, "flat search: %zu queries x k=%zu x %zu workers overflows", n, k, split);
    s.wdist = knn_malloc_array(total, sizeof(float));
    s.wlabels = knn_malloc_array(total, sizeof(int64_t));
    if (!s.wdist || !s.wlabels) {
        rc = KNN_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < total; i++) {
        s.wdist[i] = s.ip ? -INFINITY : INFINITY;
        s.wlabels[i] = -1;
    }
    rc = knn__parallel_for((ntotal + S_SPLIT_ROWS - 1) / S_SPLIT_ROWS, split, s_chunk_base, &s);
    if (rc != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        struct knn__topk h;
        knn__topk_init(&h, k, s.ip, distances + i * k, labels + i * k);
        for (size_t w = 0; w < split; w++) {
            const float *wd = s.wdist + w * nk + i * k;
            const int64_t *wl = s.wlabels + w * nk + i * k;
            for (size_t j = 0; j < k && wl[j] >= 0; j++)
                knn__topk_push(&h, wd[j], wl[j]);
        }
        knn__topk_finish(&h);
    }
done:
    knn_free(s.wdist);
    knn_free(s.wlabels);
    return rc;
}

static const struct knn_index_vtable s_vtable_l2 = {
    .name = "IndexFlatL2",
    .train = NULL,
    .add = s_add,
    .search = s_search,
    .destroy = s_destroy,
};

static const struct knn_index_vtable s_vtable_ip = {
    .name = "IndexFlatIP",
    .train = NULL,
    .add = s_add,
    .search = s_search,
    .destroy = s_destroy,
};

int knn__index_flat_new(struct knn_index **out, const struct knn_index_options *opts)
{
    struct knn_index *index = knn_calloc(1, sizeof(*index));
    struct s_flat *f = knn_calloc(1, sizeof(*f));
    if (!index || !f) {
        knn_free(index);
        knn_free(f);
        return knn_error_wrap(KNN_ENOMEM, "flat index");
    }
    index->vtable = opts->metric == KNN_METRIC_L2 ? &s_vtable_l2 : &s_vtable_ip;
    index->impl = f;
    pthread_mutex_init(&f->pack_lock, NULL);
    atomic_store(&f->packed, NULL);
    index->opts = *opts;
    index->ntotal = 0;
    index->is_trained = 1;
    *out = index;
    return 0;
}

const float *knn__index_flat_vectors(const struct knn_index *flat)
{
    const struct s_flat *f = flat->impl;
    return f->xb;
}

int knn__index_flat_adopt(struct knn_index *flat, size_t n, float *x)
{
    struct s_flat *f = flat->impl;
    if (flat->ntotal != 0 || f->xb)
        return knn_error_set(KNN_EINVAL, "flat index: only an empty index can adopt vectors");
    if (flat->opts.metric == KNN_METRIC_L2) {
        if (!(f->norms = knn_malloc_array(n, sizeof(float))))
            return knn_error_wrap(KNN_ENOMEM, "flat index: norms of %zu vectors", n);
        knn__norms_sqr(x, n, flat->opts.dim, f->norms);
    }
    f->xb = x;
    f->cap = n;
    flat->ntotal = n;
    return 0;
}
