/*
 * Recall@k against exact search, leave-one-out on rows of the indexed data, and the nprobe that
 * reaches a target (recall.h).
 */
#include "knn/algorithms/recall.h"

#include "distances.h"
#include "parallel.h"
#include "rng.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Queries per exact-search chunk: each chunk streams the whole base once. */
#define S_TRUTH_CHUNK 64
/* The target search asks for at most this many queries at once (bounds its result arrays). */
#define S_MEASURE_BATCH 256
/* The largest efSearch tuning tries (a beam this wide visits a large part of any graph we build). */
#define S_MAX_EF_SEARCH 4096

struct knn_recall_truth {
    size_t q, k, dim;
    size_t *rows;    /* q query rows */
    float *queries;  /* q * dim, copied from the base */
    int64_t *truth;  /* q * k exact neighbours without the query's own row, each query's sorted by id */
};

size_t knn_recall_default_queries(size_t n)
{
    if (n < 2)
        return 0;
    size_t q = (n + 99) / 100;
    return q < 1000 ? q : 1000;
}

void knn_recall_truth_destroy(struct knn_recall_truth *truth)
{
    if (!truth)
        return;
    knn_free(truth->rows);
    knn_free(truth->queries);
    knn_free(truth->truth);
    knn_free(truth);
}

size_t knn_recall_truth_queries(const struct knn_recall_truth *truth)
{
    return truth->q;
}

size_t knn_recall_truth_k(const struct knn_recall_truth *truth)
{
    return truth->k;
}

size_t knn_recall_truth_row(const struct knn_recall_truth *truth, size_t i)
{
    return truth->rows[i];
}

static int s_id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* From k + 1 ids best first: drop `self` if present, keep the first k, into out (k ids). */
static void s_leave_one_out(const int64_t *ids, size_t k, int64_t self, int64_t *out)
{
    size_t m = 0;
    for (size_t j = 0; j < k + 1 && m < k; j++) {
        if (ids[j] != self)
            out[m++] = ids[j];
    }
}

struct s_truth_ctx {
    const float *base, *norms;
    size_t n, dim, k1, nq;
    int ip;
    const float *queries;
    float *dist;
    int64_t *ids;
};

static int s_truth_chunk(void *ctx, size_t begin, size_t end, size_t worker)
{
    (void)worker;
    struct s_truth_ctx *c = ctx;
    size_t q0 = begin * S_TRUTH_CHUNK, q1 = end * S_TRUTH_CHUNK < c->nq ? end * S_TRUTH_CHUNK : c->nq;
    return knn__exact_search_block(
        c->queries + q0 * c->dim, q1 - q0, c->base, c->norms, c->n, c->dim, c->ip, c->k1, c->dist + q0 * c->k1,
        c->ids + q0 * c->k1, 0, 1);
}

/* Uniform choice of q distinct rows of n, in increasing order (Knuth's selection sampling). */
static void s_choose_rows(size_t *rows, size_t q, size_t n, uint64_t seed)
{
    struct knn__rng rng;
    knn__rng_seed(&rng, seed);
    size_t chosen = 0;
    for (size_t i = 0; i < n && chosen < q; i++) {
        if (knn__rng_below(&rng, n - i) < q - chosen)
            rows[chosen++] = i;
    }
}

int knn_recall_truth_new(
    struct knn_recall_truth **out, const float *base, size_t n, size_t dim, enum knn_metric metric, size_t queries,
    size_t k, uint64_t seed, size_t threads)
{
    if (!out || !base)
        return knn_error_set(KNN_EINVAL, "recall: NULL argument");
    *out = NULL;
    if (n < 2)
        return knn_error_set(KNN_EINVAL, "recall: %zu indexed rows, at least 2 are needed", n);
    if (k == 0 || queries == 0 || dim == 0)
        return knn_error_set(KNN_EINVAL, "recall: k, queries and dim must be at least 1");
    if (queries > n)
        queries = n;
    if (k > n - 1)
        k = n - 1;
    int ip = metric == KNN_METRIC_INNER_PRODUCT;
    size_t k1 = k + 1;
    struct knn_recall_truth *t = knn_calloc(1, sizeof(*t));
    float *norms = NULL, *dist = NULL;
    int64_t *ids = NULL;
    int rc = KNN_ENOMEM;
    if (!t)
        goto on_error;
    t->q = queries;
    t->k = k;
    t->dim = dim;
    if (!(t->rows = knn_malloc_array(queries, sizeof(size_t))) ||
        !(t->queries = knn_malloc_array(queries, dim * sizeof(float))) ||
        !(t->truth = knn_malloc_array(queries, k * sizeof(int64_t))) ||
        !(dist = knn_malloc_array(queries, k1 * sizeof(float))) ||
        !(ids = knn_malloc_array(queries, k1 * sizeof(int64_t))) ||
        (!ip && !(norms = knn_malloc_array(n, sizeof(float)))))
        goto on_error;
    s_choose_rows(t->rows, queries, n, seed);
    for (size_t i = 0; i < queries; i++)
        memcpy(t->queries + i * dim, base + t->rows[i] * dim, dim * sizeof(float));
    if (norms)
        knn__norms_sqr(base, n, dim, norms);

    struct s_truth_ctx c = {base, norms, n, dim, k1, queries, ip, t->queries, dist, ids};
    rc = knn__parallel_for((queries + S_TRUTH_CHUNK - 1) / S_TRUTH_CHUNK, threads, s_truth_chunk, &c);
    if (rc != 0)
        goto on_error;
    for (size_t i = 0; i < queries; i++) {
        int64_t *row = t->truth + i * k;
        s_leave_one_out(ids + i * k1, k, (int64_t)t->rows[i], row);
        qsort(row, k, sizeof(*row), s_id_cmp);
    }
    knn_free(norms);
    knn_free(dist);
    knn_free(ids);
    *out = t;
    return 0;

on_error:
    knn_free(norms);
    knn_free(dist);
    knn_free(ids);
    knn_recall_truth_destroy(t);
    return knn_error_wrap(rc, "recall: exact search of %zu held-out queries", queries);
}

int knn_recall_measure(
    double *recall, const struct knn_index *index, const struct knn_recall_truth *truth,
    const struct knn_search_params *params)
{
    if (!recall || !index || !truth)
        return knn_error_set(KNN_EINVAL, "recall: NULL argument");
    if (knn_index_get_options(index)->dim != truth->dim)
        return knn_error_set(
            KNN_EINVAL, "recall: the index has dimension %zu, the held-out queries %zu", knn_index_get_options(index)->dim,
            truth->dim);
    size_t k = truth->k, k1 = k + 1, batch = truth->q < S_MEASURE_BATCH ? truth->q : S_MEASURE_BATCH;
    float *dist = knn_malloc_array(batch, k1 * sizeof(float));
    int64_t *ids = knn_malloc_array(batch, k1 * sizeof(int64_t));
    int64_t *found = knn_malloc_array(k, sizeof(int64_t));
    int rc = 0;
    uint64_t hits = 0;
    if (!dist || !ids || !found) {
        rc = knn_error_wrap(KNN_ENOMEM, "recall: results of %zu queries", batch);
        goto done;
    }
    for (size_t q0 = 0; q0 < truth->q; q0 += batch) {
        size_t nq = truth->q - q0 < batch ? truth->q - q0 : batch;
        if ((rc = knn_index_search(index, nq, truth->queries + q0 * truth->dim, k1, dist, ids, params)) != 0) {
            rc = knn_error_wrap(rc, "recall: searching held-out queries %zu..%zu", q0, q0 + nq);
            goto done;
        }
        for (size_t i = 0; i < nq; i++) {
            const int64_t *exact = truth->truth + (q0 + i) * k;
            for (size_t j = 0; j < k; j++)
                found[j] = -1;
            s_leave_one_out(ids + i * k1, k, (int64_t)truth->rows[q0 + i], found);
            for (size_t j = 0; j < k; j++)
                hits += found[j] >= 0 && bsearch(&found[j], exact, k, sizeof(*exact), s_id_cmp) != NULL;
        }
    }
    *recall = (double)hits / ((double)truth->q * (double)k);
done:
    knn_free(dist);
    knn_free(ids);
    knn_free(found);
    return rc;
}

/* Recall at nprobe p, remembered in the tuning's best (the smallest setting with the best recall). */
static int s_try(double *recall, struct knn_recall_tuning *best, const struct knn_index *index,
                 const struct knn_recall_truth *truth, size_t p)
{
    struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
    if (knn_index_get_options(index)->type == KNN_INDEX_HNSW)
        sp.ef_search = p;
    else
        sp.nprobe = p;
    int rc = knn_recall_measure(recall, index, truth, &sp);
    if (rc != 0)
        return rc;
    best->evaluated++;
    if (*recall > best->recall || (*recall == best->recall && p < best->setting)) {
        best->recall = *recall;
        best->setting = p;
    }
    return 0;
}

int knn_recall_tune(
    struct knn_recall_tuning *out, const struct knn_index *index, const struct knn_recall_truth *truth, double target)
{
    if (!out || !index || !truth)
        return knn_error_set(KNN_EINVAL, "recall tuning: NULL argument");
    const struct knn_index_options *o = knn_index_get_options(index);
    if (o->type != KNN_INDEX_IVFFLAT && o->type != KNN_INDEX_IVFPQ && o->type != KNN_INDEX_IVFSQ8 &&
        o->type != KNN_INDEX_HNSW)
        return knn_error_set(KNN_EINVAL, "recall tuning: only IVF (nprobe) and HNSW (efSearch) indexes have a "
                                         "setting to tune");
    if (!(target > 0.0 && target <= 1.0))
        return knn_error_set(KNN_EINVAL, "recall tuning: target recall %g is not in (0, 1]", target);
    /* The settings' range: nprobe 1..nlist, efSearch 1..S_MAX_EF_SEARCH. */
    size_t nlist = o->type == KNN_INDEX_HNSW ? S_MAX_EF_SEARCH : o->nlist;
    struct knn_recall_tuning best = {0, -1.0, 0, 0};
    double r;
    int rc;
    /* Doubling until the target is reached: lo fails, hi reaches it. */
    size_t lo = 0, hi = 0;
    for (size_t p = 1;; p = p * 2 > nlist ? nlist : p * 2) {
        if ((rc = s_try(&r, &best, index, truth, p)) != 0)
            return rc;
        if (r >= target) {
            hi = p;
            break;
        }
        lo = p;
        if (p == nlist)
            break;
    }
    if (hi == 0) {
        *out = best;
        out->reached = 0;
        return 0;
    }
    double hi_recall = r;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((rc = s_try(&r, &best, index, truth, mid)) != 0)
            return rc;
        if (r >= target) {
            hi = mid;
            hi_recall = r;
        } else {
            lo = mid;
        }
    }
    out->setting = hi;
    out->recall = hi_recall;
    out->reached = 1;
    out->evaluated = best.evaluated;
    return 0;
}
