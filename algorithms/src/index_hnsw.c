/*
 * HNSW (index_hnsw.h): FAISS's IndexHNSWFlat. The graph layout, the level draw, the neighbour
 * selection heuristic and above all the search are FAISS 1.7.3's (faiss/impl/HNSW.cpp), so a file
 * we write is searched by faiss.read_index exactly as we search it:
 *
 * - search: greedy descent from the entry point through the upper layers, then on layer 0 a
 *   bounded candidate set of ef = max(efSearch, k) entries (FAISS's MinimaxHeap, including its
 *   quirks: popped entries stay in the heap and still count in the "efSearch distances below"
 *   stopping test) and a max-heap of the k best;
 * - build: vectors are added one after the other: the greedy descent to the vector's top layer,
 *   then on each layer below a beam search of efConstruction, FAISS's heuristic to keep M (2M on
 *   layer 0) diverse neighbours, and links both ways (a full neighbour list is re-selected with
 *   the same heuristic).
 * Distances are "smaller is better": squared L2, or minus the inner product (negated back in the
 * answers).
 */
#include "index_hnsw.h"

#include "distances.h"
#include "index_flat.h"
#include "parallel.h"
#include "rng.h"
#include "topk.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <string.h>

struct s_hnsw {
    struct knn__hnsw_graph g;
    struct knn_index *storage; /* Flat */
    size_t cap;                /* vectors the graph arrays can hold */
    size_t neighbors_cap;
};

static struct s_hnsw *s_h(const struct knn_index *index)
{
    return index->impl;
}

void knn__hnsw_graph_clean_up(struct knn__hnsw_graph *g)
{
    knn_free(g->assign_probas);
    knn_free(g->cum_nneighbor_per_level);
    knn_free(g->levels);
    knn_free(g->offsets);
    knn_free(g->neighbors);
    memset(g, 0, sizeof(*g));
}

/* Distance of vector `id` to the query, smaller is better. */
static inline float s_dis(const float *base, size_t d, int ip, const float *q, int32_t id)
{
    const float *v = base + (size_t)id * d;
    return ip ? -knn__dot(q, v, d) : knn__l2sqr(q, v, d);
}

static void s_range(const struct knn__hnsw_graph *g, int32_t id, int level, size_t *begin, size_t *end)
{
    size_t o = g->offsets[id];
    *begin = o + (size_t)g->cum_nneighbor_per_level[level];
    *end = o + (size_t)g->cum_nneighbor_per_level[level + 1];
}

/* ---- FAISS's heaps (faiss/utils/Heap.h), 1-based, CMax order: largest (distance, id) on top ---- */

static inline int s_cmax2(float a1, float b1, int64_t a2, int64_t b2)
{
    return a1 > b1 || (a1 == b1 && a2 > b2);
}

static void s_heap_push(size_t k, float *val, int64_t *ids, float v, int64_t id)
{
    val--;
    ids--;
    size_t i = k;
    while (i > 1) {
        size_t f = i >> 1;
        if (!s_cmax2(v, val[f], id, ids[f]))
            break;
        val[i] = val[f];
        ids[i] = ids[f];
        i = f;
    }
    val[i] = v;
    ids[i] = id;
}

static void s_heap_replace_top(size_t k, float *val, int64_t *ids, float v, int64_t id)
{
    val--;
    ids--;
    size_t i = 1;
    for (;;) {
        size_t i1 = i << 1, i2 = i1 + 1;
        if (i1 > k)
            break;
        if (i2 > k || s_cmax2(val[i1], val[i2], ids[i1], ids[i2])) {
            if (s_cmax2(v, val[i1], id, ids[i1]))
                break;
            val[i] = val[i1];
            ids[i] = ids[i1];
            i = i1;
        } else {
            if (s_cmax2(v, val[i2], id, ids[i2]))
                break;
            val[i] = val[i2];
            ids[i] = ids[i2];
            i = i2;
        }
    }
    val[i] = v;
    ids[i] = id;
}

/* FAISS's heap_pop: the same as replacing the top by the last entry in a heap one shorter. */
static void s_heap_pop(size_t k, float *val, int64_t *ids)
{
    s_heap_replace_top(k - 1, val, ids, val[k - 1], ids[k - 1]);
}

/* FAISS's MinimaxHeap: a CMax heap of at most n entries whose popped minima are marked id -1. */
struct s_minimax {
    size_t n, k, nvalid;
    float *dis;
    int64_t *ids;
};

static void s_mm_push(struct s_minimax *h, int64_t id, float v)
{
    if (h->k == h->n) {
        if (v >= h->dis[0])
            return;
        s_heap_pop(h->k--, h->dis, h->ids);
        h->nvalid--;
    }
    s_heap_push(++h->k, h->dis, h->ids, v, id);
    h->nvalid++;
}

static int64_t s_mm_pop_min(struct s_minimax *h, float *vmin_out)
{
    ptrdiff_t i = (ptrdiff_t)h->k - 1;
    while (i >= 0 && h->ids[i] == -1)
        i--;
    if (i < 0)
        return -1;
    ptrdiff_t imin = i;
    float vmin = h->dis[i];
    for (i--; i >= 0; i--) {
        if (h->ids[i] != -1 && h->dis[i] < vmin) {
            vmin = h->dis[i];
            imin = i;
        }
    }
    *vmin_out = vmin;
    int64_t ret = h->ids[imin];
    h->ids[imin] = -1;
    h->nvalid--;
    return ret;
}

static size_t s_mm_count_below(const struct s_minimax *h, float thresh)
{
    size_t n = 0;
    for (size_t i = 0; i < h->k; i++)
        n += h->dis[i] < thresh;
    return n;
}

/* ---- visited marks: a stamp per vector, a new stamp per search ---- */

struct s_visited {
    uint32_t *mark;
    size_t n;
    uint32_t stamp;
};

static int s_visited_init(struct s_visited *v, size_t n)
{
    v->n = n;
    v->stamp = 1;
    v->mark = knn_calloc(n ? n : 1, sizeof(uint32_t));
    return v->mark ? 0 : KNN_ENOMEM;
}

static void s_visited_next(struct s_visited *v)
{
    if (++v->stamp == 0) {
        memset(v->mark, 0, v->n * sizeof(uint32_t));
        v->stamp = 1;
    }
}

/* ---- search (FAISS's HNSW::search with upper_beam 1 and a bounded queue) ---- */

static void s_greedy(const struct knn__hnsw_graph *g, const float *base, size_t d, int ip, const float *q, int level,
                     int32_t *nearest, float *d_nearest)
{
    for (;;) {
        int32_t prev = *nearest;
        size_t begin, end;
        s_range(g, *nearest, level, &begin, &end);
        for (size_t i = begin; i < end; i++) {
            int32_t v = g->neighbors[i];
            if (v < 0)
                break;
            float dis = s_dis(base, d, ip, q, v);
            if (dis < *d_nearest) {
                *nearest = v;
                *d_nearest = dis;
            }
        }
        if (*nearest == prev)
            return;
    }
}

struct s_scratch {
    struct s_visited vt;
    struct s_minimax mm;
};

static int s_scratch_init(struct s_scratch *s, size_t ntotal, size_t ef)
{
    memset(s, 0, sizeof(*s));
    s->mm.n = ef;
    if (s_visited_init(&s->vt, ntotal) != 0 || !(s->mm.dis = knn_malloc_array(ef, sizeof(float))) ||
        !(s->mm.ids = knn_malloc_array(ef, sizeof(int64_t))))
        return KNN_ENOMEM;
    return 0;
}

static void s_scratch_clean_up(struct s_scratch *s)
{
    knn_free(s->vt.mark);
    knn_free(s->mm.dis);
    knn_free(s->mm.ids);
}

/* One query: D/I get the k best (FAISS's max-heap order until the caller sorts them). */
static void s_search_one(const struct knn_index *index, const float *q, size_t k, size_t ef_search, float *D,
                         int64_t *I, struct s_scratch *s)
{
    const struct s_hnsw *h = s_h(index);
    const struct knn__hnsw_graph *g = &h->g;
    const float *base = knn__index_flat_vectors(h->storage);
    const size_t d = index->opts.dim;
    const int ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    size_t nres = 0;
    int32_t nearest = g->entry_point;
    float d_nearest = s_dis(base, d, ip, q, nearest);
    for (int level = g->max_level; level >= 1; level--)
        s_greedy(g, base, d, ip, q, level, &nearest, &d_nearest);

    struct s_minimax *mm = &s->mm;
    mm->n = ef_search > k ? ef_search : k;
    mm->k = mm->nvalid = 0;
    s_mm_push(mm, nearest, d_nearest);
    uint32_t *mark = s->vt.mark, stamp = s->vt.stamp;
    for (size_t i = 0; i < mm->nvalid; i++) {
        int64_t v1 = mm->ids[i];
        float dv = mm->dis[i];
        if (nres < k)
            s_heap_push(++nres, D, I, dv, v1);
        else if (dv < D[0])
            s_heap_replace_top(nres, D, I, dv, v1);
        mark[v1] = stamp;
    }
    while (mm->nvalid > 0) {
        float d0 = 0;
        int64_t v0 = s_mm_pop_min(mm, &d0);
        if (s_mm_count_below(mm, d0) >= ef_search)
            break;
        size_t begin, end;
        s_range(g, (int32_t)v0, 0, &begin, &end);
        for (size_t j = begin; j < end; j++) {
            int32_t v1 = g->neighbors[j];
            if (v1 < 0)
                break;
            if (mark[v1] == stamp)
                continue;
            mark[v1] = stamp;
            float dv = s_dis(base, d, ip, q, v1);
            if (nres < k)
                s_heap_push(++nres, D, I, dv, v1);
            else if (dv < D[0])
                s_heap_replace_top(nres, D, I, dv, v1);
            s_mm_push(mm, v1, dv);
        }
    }
    s_visited_next(&s->vt);
}

struct s_search_ctx {
    const struct knn_index *index;
    const float *x;
    size_t k, ef;
    float *distances;
    int64_t *labels;
};

#define S_QUERY_UNIT 16

static int s_search_chunk(void *ctx_, size_t begin, size_t end, size_t worker)
{
    (void)worker;
    const struct s_search_ctx *c = ctx_;
    const struct knn_index *index = c->index;
    const size_t d = index->opts.dim, k = c->k;
    const int ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    struct s_scratch s;
    int rc = s_scratch_init(&s, index->ntotal, c->ef > k ? c->ef : k);
    if (rc != 0) {
        s_scratch_clean_up(&s);
        return knn_error_wrap(rc, "HNSW search: scratch for %zu vectors", index->ntotal);
    }
    for (size_t q = begin; q < end; q++) {
        float *D = c->distances + q * k;
        int64_t *I = c->labels + q * k;
        for (size_t j = 0; j < k; j++) {
            D[j] = INFINITY;
            I[j] = -1;
        }
        s_search_one(index, c->x + q * d, k, c->ef, D, I, &s);
        /* Best first, ties by smaller id (index.h); unfilled slots stay last. */
        struct knn__topk t;
        float *tmpd = s.mm.dis; /* reuse: ef >= k */
        int64_t *tmpi = s.mm.ids;
        memcpy(tmpd, D, k * sizeof(float));
        memcpy(tmpi, I, k * sizeof(int64_t));
        knn__topk_init(&t, k, 0, D, I);
        for (size_t j = 0; j < k; j++)
            if (tmpi[j] >= 0)
                knn__topk_push(&t, tmpd[j], tmpi[j]);
        knn__topk_finish(&t);
        if (ip) {
            for (size_t j = 0; j < k; j++)
                D[j] = I[j] >= 0 ? -D[j] : -INFINITY;
        }
    }
    s_scratch_clean_up(&s);
    return 0;
}

static int s_search(const struct knn_index *index, size_t n, const float *x, size_t k, float *distances,
                    int64_t *labels, const struct knn_search_params *params)
{
    const struct s_hnsw *h = s_h(index);
    if (h->g.entry_point < 0) {
        for (size_t i = 0; i < n * k; i++) {
            distances[i] = index->opts.metric == KNN_METRIC_INNER_PRODUCT ? -INFINITY : INFINITY;
            labels[i] = -1;
        }
        return 0;
    }
    /* The index's efSearch lives in opts (knn_index_set_ef_search); the graph's copy is the file's. */
    size_t ef = params->ef_search ? params->ef_search : index->opts.ef_search;
    struct s_search_ctx c = {index, x, k, ef, distances, labels};
    size_t threads = params->threads ? params->threads : index->opts.threads;
    /* A graph search is one short walk: a query is not worth splitting, a few are not worth a hand-off. */
    if (n < S_QUERY_UNIT * 2)
        return s_search_chunk(&c, 0, n, 0);
    return knn__parallel_for(n, threads, s_search_chunk, &c);
}

/* ---- build ---- */

/* A (distance, id) pair of the build's heaps. */
struct s_nd {
    float d;
    int32_t id;
};

/* Binary heaps of s_nd: max = 1 keeps the largest distance on top, else the smallest. */
struct s_ndheap {
    struct s_nd *a;
    size_t n, cap;
    int max;
};

static int s_nd_before(const struct s_ndheap *h, struct s_nd x, struct s_nd y)
{
    return h->max ? x.d > y.d : x.d < y.d;
}

static int s_nd_push(struct s_ndheap *h, float d, int32_t id)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct s_nd *a = knn_realloc_array(h->a, cap, sizeof(*a));
        if (!a)
            return KNN_ENOMEM;
        h->a = a;
        h->cap = cap;
    }
    struct s_nd x = {d, id};
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_nd_before(h, x, h->a[p]))
            break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = x;
    return 0;
}

static struct s_nd s_nd_pop(struct s_ndheap *h)
{
    struct s_nd top = h->a[0], x = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && s_nd_before(h, h->a[c + 1], h->a[c]))
            c++;
        if (!s_nd_before(h, h->a[c], x))
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n)
        h->a[i] = x;
    return top;
}

struct s_builder {
    struct knn_index *index;
    const float *base;
    size_t d;
    int ip;
    struct s_visited vt;
    struct s_ndheap cand, res, sel_in;
    struct s_nd *sel;   /* selected neighbours */
    size_t sel_cap;
};

static float s_sym(const struct s_builder *b, int32_t i, int32_t j)
{
    return s_dis(b->base, b->d, b->ip, b->base + (size_t)i * b->d, j);
}

/*
 * FAISS's shrink_neighbor_list: from the candidates, nearest first, keep one when it is nearer to
 * the new vector than to every one kept so far, until max_size are kept. Input: b->sel_in (a
 * min-heap, emptied); output: b->sel[0..*n).
 */
static int s_select(struct s_builder *b, size_t max_size, size_t *n)
{
    *n = 0;
    if (b->sel_cap < max_size) {
        struct s_nd *p = knn_realloc_array(b->sel, max_size, sizeof(*p));
        if (!p)
            return KNN_ENOMEM;
        b->sel = p;
        b->sel_cap = max_size;
    }
    while (b->sel_in.n > 0) {
        struct s_nd v1 = s_nd_pop(&b->sel_in);
        int good = 1;
        for (size_t i = 0; i < *n && good; i++)
            good = !(s_sym(b, b->sel[i].id, v1.id) < v1.d);
        if (good) {
            b->sel[(*n)++] = v1;
            if (*n >= max_size)
                break;
        }
    }
    b->sel_in.n = 0;
    return 0;
}

/* Link src -> dest on `level`; a full list is re-selected with the heuristic (FAISS's add_link). */
static int s_add_link(struct s_builder *b, int32_t src, int32_t dest, int level)
{
    struct knn__hnsw_graph *g = &s_h(b->index)->g;
    size_t begin, end;
    s_range(g, src, level, &begin, &end);
    if (g->neighbors[end - 1] == -1) {
        size_t i = end;
        while (i > begin && g->neighbors[i - 1] == -1)
            i--;
        g->neighbors[i] = dest;
        return 0;
    }
    int rc;
    b->sel_in.n = 0;
    if ((rc = s_nd_push(&b->sel_in, s_sym(b, src, dest), dest)) != 0)
        return rc;
    for (size_t i = begin; i < end; i++)
        if ((rc = s_nd_push(&b->sel_in, s_sym(b, src, g->neighbors[i]), g->neighbors[i])) != 0)
            return rc;
    size_t n;
    if ((rc = s_select(b, end - begin, &n)) != 0)
        return rc;
    size_t i = begin;
    for (size_t j = 0; j < n; j++)
        g->neighbors[i++] = b->sel[j].id;
    while (i < end)
        g->neighbors[i++] = -1;
    return 0;
}

/* Beam search of efConstruction on `level` from (nearest, d_nearest): b->res (a max-heap) gets the best. */
static int s_beam(struct s_builder *b, const float *q, int32_t nearest, float d_nearest, int level)
{
    const struct knn__hnsw_graph *g = &s_h(b->index)->g;
    size_t ef = (size_t)g->ef_construction;
    int rc;
    b->cand.n = b->res.n = 0;
    if ((rc = s_nd_push(&b->cand, d_nearest, nearest)) != 0 || (rc = s_nd_push(&b->res, d_nearest, nearest)) != 0)
        return rc;
    uint32_t *mark = b->vt.mark, stamp = b->vt.stamp;
    mark[nearest] = stamp;
    while (b->cand.n > 0) {
        if (b->cand.a[0].d > b->res.a[0].d)
            break;
        struct s_nd cur = s_nd_pop(&b->cand);
        size_t begin, end;
        s_range(g, cur.id, level, &begin, &end);
        for (size_t i = begin; i < end; i++) {
            int32_t v = g->neighbors[i];
            if (v < 0)
                break;
            if (mark[v] == stamp)
                continue;
            mark[v] = stamp;
            float dv = s_dis(b->base, b->d, b->ip, q, v);
            if (b->res.n < ef || b->res.a[0].d > dv) {
                if ((rc = s_nd_push(&b->res, dv, v)) != 0 || (rc = s_nd_push(&b->cand, dv, v)) != 0)
                    return rc;
                if (b->res.n > ef)
                    s_nd_pop(&b->res);
            }
        }
    }
    s_visited_next(&b->vt);
    return 0;
}

/* Insert vector id (already in the storage and given its level) into the graph. */
static int s_insert(struct s_builder *b, int32_t id)
{
    struct knn__hnsw_graph *g = &s_h(b->index)->g;
    const float *q = b->base + (size_t)id * b->d;
    int pt_level = g->levels[id] - 1;
    int rc;
    if (g->entry_point < 0) {
        g->entry_point = id;
        g->max_level = pt_level;
        return 0;
    }
    int32_t nearest = g->entry_point;
    float d_nearest = s_dis(b->base, b->d, b->ip, q, nearest);
    int level = g->max_level;
    for (; level > pt_level; level--)
        s_greedy(g, b->base, b->d, b->ip, q, level, &nearest, &d_nearest);
    for (; level >= 0; level--) {
        if ((rc = s_beam(b, q, nearest, d_nearest, level)) != 0)
            return rc;
        /* The nearest found starts the next layer's search. */
        b->sel_in.n = 0;
        while (b->res.n > 0) {
            struct s_nd x = s_nd_pop(&b->res);
            if (x.d < d_nearest) {
                d_nearest = x.d;
                nearest = x.id;
            }
            if ((rc = s_nd_push(&b->sel_in, x.d, x.id)) != 0)
                return rc;
        }
        size_t max_size = (size_t)(g->cum_nneighbor_per_level[level + 1] - g->cum_nneighbor_per_level[level]), n;
        if (b->sel_in.n < max_size) {
            /* FAISS keeps every candidate when there are fewer than the slots. */
            n = 0;
            if (b->sel_cap < b->sel_in.n + 1) {
                struct s_nd *p = knn_realloc_array(b->sel, b->sel_in.n + 1, sizeof(*p));
                if (!p)
                    return KNN_ENOMEM;
                b->sel = p;
                b->sel_cap = b->sel_in.n + 1;
            }
            while (b->sel_in.n > 0)
                b->sel[n++] = s_nd_pop(&b->sel_in);
        } else if ((rc = s_select(b, max_size, &n)) != 0) {
            return rc;
        }
        /* b->sel may be reallocated by s_add_link's own selection: copy the ids first. */
        int32_t stack_ids[128], *ids = n <= 128 ? stack_ids : knn_malloc_array(n, sizeof(int32_t));
        if (!ids)
            return KNN_ENOMEM;
        for (size_t i = 0; i < n; i++)
            ids[i] = b->sel[i].id;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = s_add_link(b, id, ids[i], level);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = s_add_link(b, ids[i], id, level);
        if (ids != stack_ids)
            knn_free(ids);
        if (rc != 0)
            return rc;
    }
    if (pt_level > g->max_level) {
        g->max_level = pt_level;
        g->entry_point = id;
    }
    return 0;
}

/* FAISS's random_level: the top layer drawn from assign_probas. */
static int s_random_level(const struct knn__hnsw_graph *g, struct knn__rng *rng)
{
    double f = knn__rng_double(rng);
    for (size_t level = 0; level < g->nprobas; level++) {
        if (f < g->assign_probas[level])
            return (int)level;
        f -= g->assign_probas[level];
    }
    return (int)g->nprobas - 1;
}

static int s_reserve(struct s_hnsw *h, size_t n, size_t more_neighbors)
{
    if (n + 1 > h->cap) {
        size_t cap = h->cap * 2 > n + 1 ? h->cap * 2 : n + 1;
        int32_t *levels = knn_realloc_array(h->g.levels, cap, sizeof(int32_t));
        if (!levels)
            return KNN_ENOMEM;
        h->g.levels = levels;
        uint64_t *offsets = knn_realloc_array(h->g.offsets, cap + 1, sizeof(uint64_t));
        if (!offsets)
            return KNN_ENOMEM;
        h->g.offsets = offsets;
        h->cap = cap;
    }
    if (more_neighbors > h->neighbors_cap) {
        size_t cap = h->neighbors_cap * 2 > more_neighbors ? h->neighbors_cap * 2 : more_neighbors;
        int32_t *nb = knn_realloc_array(h->g.neighbors, cap, sizeof(int32_t));
        if (!nb)
            return KNN_ENOMEM;
        h->g.neighbors = nb;
        h->neighbors_cap = cap;
    }
    return 0;
}

static int s_add(struct knn_index *index, size_t n, const float *x)
{
    struct s_hnsw *h = s_h(index);
    struct knn__hnsw_graph *g = &h->g;
    size_t n0 = index->ntotal;
    int rc;
    if (n0 + n > INT32_MAX)
        return knn_error_set(KNN_ETOOBIG, "HNSW add: more than 2^31 - 1 vectors");
    if ((rc = knn_index_add(h->storage, n, x)) != 0)
        return rc;
    /* Levels first (one draw each, in order), then the slots they need. */
    struct knn__rng rng;
    knn__rng_seed(&rng, index->opts.seed ^ (0x484e5357ULL + n0));
    if ((rc = s_reserve(h, n0 + n, 0)) != 0)
        return rc;
    if (n0 == 0)
        g->offsets[0] = 0;
    for (size_t i = n0; i < n0 + n; i++) {
        int level = s_random_level(g, &rng);
        g->levels[i] = level + 1;
        g->offsets[i + 1] = g->offsets[i] + (uint64_t)g->cum_nneighbor_per_level[level + 1];
    }
    size_t total = (size_t)g->offsets[n0 + n];
    if ((rc = s_reserve(h, n0 + n, total)) != 0)
        return rc;
    for (size_t i = g->nneighbors; i < total; i++)
        g->neighbors[i] = -1;
    g->nneighbors = total;

    struct s_builder b;
    memset(&b, 0, sizeof(b));
    b.index = index;
    b.base = knn__index_flat_vectors(h->storage);
    b.d = index->opts.dim;
    b.ip = index->opts.metric == KNN_METRIC_INNER_PRODUCT;
    b.res.max = 1;
    if ((rc = s_visited_init(&b.vt, n0 + n)) != 0)
        goto done;
    for (size_t i = n0; i < n0 + n && rc == 0; i++)
        rc = s_insert(&b, (int32_t)i);
    if (rc == 0)
        index->ntotal = n0 + n;
done:
    knn_free(b.vt.mark);
    knn_free(b.cand.a);
    knn_free(b.res.a);
    knn_free(b.sel_in.a);
    knn_free(b.sel);
    return rc ? knn_error_wrap(rc, "HNSW add") : 0;
}

/* ---- life cycle ---- */

static void s_destroy(struct knn_index *index)
{
    if (!index)
        return;
    struct s_hnsw *h = s_h(index);
    if (h) {
        knn__hnsw_graph_clean_up(&h->g);
        knn_index_destroy(h->storage);
        knn_free(h);
    }
    knn_free(index);
}

static const struct knn_index_vtable s_vtable = {"IndexHNSWFlat", NULL, s_add, s_search, s_destroy};

/* FAISS's set_default_probas(M, 1 / log(M)). */
static int s_default_probas(struct knn__hnsw_graph *g, size_t M)
{
    double level_mult = 1.0 / log((double)M);
    size_t n = 0;
    while ((float)(exp(-(double)n / level_mult) * (1 - exp(-1 / level_mult))) >= 1e-9f)
        n++;
    if (!(g->assign_probas = knn_malloc_array(n, sizeof(double))) ||
        !(g->cum_nneighbor_per_level = knn_malloc_array(n + 1, sizeof(int32_t))))
        return KNN_ENOMEM;
    int32_t nn = 0;
    g->cum_nneighbor_per_level[0] = 0;
    for (size_t level = 0; level < n; level++) {
        float proba = (float)(exp(-(double)level / level_mult) * (1 - exp(-1 / level_mult)));
        g->assign_probas[level] = proba;
        nn += level == 0 ? (int32_t)M * 2 : (int32_t)M;
        g->cum_nneighbor_per_level[level + 1] = nn;
    }
    g->nprobas = n;
    g->ncum = n + 1;
    return 0;
}

int knn__index_hnsw_new(struct knn_index **out, const struct knn_index_options *opts)
{
    *out = NULL;
    if (opts->hnsw_m < 2 || opts->hnsw_m > 512)
        return knn_error_set(KNN_EINVAL, "IndexHNSWFlat: M = %zu is not in 2..512", opts->hnsw_m);
    if (opts->ef_construction < 1 || opts->ef_construction > 65536)
        return knn_error_set(KNN_EINVAL, "IndexHNSWFlat: efConstruction = %zu is not in 1..65536",
                             opts->ef_construction);
    if (opts->ef_search < 1 || opts->ef_search > INT32_MAX)
        return knn_error_set(KNN_EINVAL, "IndexHNSWFlat: efSearch = %zu is not in 1..2^31-1", opts->ef_search);
    struct knn_index *index = knn_calloc(1, sizeof(*index));
    struct s_hnsw *h = knn_calloc(1, sizeof(*h));
    int rc = KNN_ENOMEM;
    if (!index || !h) {
        knn_free(index);
        knn_free(h);
        return KNN_ENOMEM;
    }
    index->vtable = &s_vtable;
    index->impl = h;
    index->opts = *opts;
    index->is_trained = 1;
    h->g.entry_point = -1;
    h->g.max_level = -1;
    h->g.ef_construction = (int32_t)opts->ef_construction;
    h->g.ef_search = (int32_t)opts->ef_search;
    h->g.upper_beam = 1;
    struct knn_index_options so = KNN_INDEX_OPTIONS_INIT;
    so.type = KNN_INDEX_FLAT;
    so.metric = opts->metric;
    so.dim = opts->dim;
    so.threads = opts->threads;
    if ((rc = s_default_probas(&h->g, opts->hnsw_m)) != 0 || (rc = knn_index_new(&h->storage, &so)) != 0 ||
        (rc = s_reserve(h, 0, 0)) != 0) {
        s_destroy(index);
        return rc;
    }
    h->g.offsets[0] = 0;
    *out = index;
    return 0;
}

const struct knn__hnsw_graph *knn__hnsw_graph(const struct knn_index *index)
{
    return &s_h(index)->g;
}

const struct knn_index *knn__hnsw_storage(const struct knn_index *index)
{
    return s_h(index)->storage;
}

int knn__hnsw_install(struct knn_index *index, struct knn__hnsw_graph *graph, struct knn_index *storage)
{
    struct s_hnsw *h = s_h(index);
    struct knn__hnsw_graph *g = &h->g;
    knn__hnsw_graph_clean_up(g);
    *g = *graph;
    memset(graph, 0, sizeof(*graph));
    knn_index_destroy(h->storage);
    h->storage = storage;
    size_t n = storage->ntotal;
    h->cap = n + 1;
    h->neighbors_cap = g->nneighbors;
    index->ntotal = n;
    index->opts.ef_search = (size_t)g->ef_search;
    index->opts.ef_construction = (size_t)g->ef_construction;
    if (g->ncum < 2)
        return knn_error_set(KNN_EFORMAT, "HNSW: cum_nneighbor_per_level has %zu entries", g->ncum);
    index->opts.hnsw_m = (size_t)(g->cum_nneighbor_per_level[g->ncum - 1] - g->cum_nneighbor_per_level[g->ncum - 2]);
    for (size_t l = 0; l + 1 < g->ncum; l++) {
        if (g->cum_nneighbor_per_level[l] < 0 || g->cum_nneighbor_per_level[l + 1] < g->cum_nneighbor_per_level[l])
            return knn_error_set(KNN_EFORMAT, "HNSW: cum_nneighbor_per_level is not increasing at level %zu", l);
    }
    if (g->offsets[0] != 0)
        return knn_error_set(KNN_EFORMAT, "HNSW: offsets[0] is %llu, not 0", (unsigned long long)g->offsets[0]);
    for (size_t i = 0; i < n; i++) {
        int32_t lv = g->levels[i];
        if (lv < 1 || (size_t)lv >= g->ncum)
            return knn_error_set(KNN_EFORMAT, "HNSW: vector %zu has level %d, outside 1..%zu", i, lv, g->ncum - 1);
        if (g->offsets[i + 1] != g->offsets[i] + (uint64_t)g->cum_nneighbor_per_level[lv])
            return knn_error_set(KNN_EFORMAT, "HNSW: offsets[%zu] does not follow from vector %zu's level", i + 1, i);
        if (lv - 1 > g->max_level)
            return knn_error_set(KNN_EFORMAT, "HNSW: vector %zu's level %d is above max_level %d", i, lv - 1,
                                 g->max_level);
    }
    if (g->offsets[n] != g->nneighbors)
        return knn_error_set(KNN_EFORMAT, "HNSW: %zu neighbour slots, the offsets say %llu", g->nneighbors,
                             (unsigned long long)g->offsets[n]);
    for (size_t i = 0; i < g->nneighbors; i++) {
        if (g->neighbors[i] < -1 || (g->neighbors[i] >= 0 && (size_t)g->neighbors[i] >= n))
            return knn_error_set(KNN_EFORMAT, "HNSW: neighbour slot %zu holds %d, outside [-1, ntotal)", i,
                                 g->neighbors[i]);
    }
    if (n == 0 ? g->entry_point != -1 : (g->entry_point < 0 || (size_t)g->entry_point >= n ||
                                         g->levels[g->entry_point] - 1 != g->max_level))
        return knn_error_set(KNN_EFORMAT, "HNSW: entry point %d with max_level %d does not fit the graph",
                             g->entry_point, g->max_level);
    if (g->upper_beam != 1)
        return knn_error_set(KNN_EUNSUPPORTED, "HNSW: upper_beam %d (only 1, FAISS's default, is supported)",
                             g->upper_beam);
    if (g->ef_search < 1)
        return knn_error_set(KNN_EFORMAT, "HNSW: efSearch %d", g->ef_search);
    return 0;
}
