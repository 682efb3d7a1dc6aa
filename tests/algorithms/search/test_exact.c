/*
 * Exact search (Flat index, distances.c, topk.c, parallel.c) against a double-precision brute force.
 *
 * Tie rule under test: among equal distances the smaller id comes first. On small-integer data every
 * distance is exact in float32 as in double, so results must match the reference bit for bit, ties
 * included, whatever the path (fused single-query kernel, sgemm tiles, split over the base or over
 * the queries, AVX2 or portable).
 */
#include "knn_test.h"
#include "test_util.h"

#include "distances.h"
#include "parallel.h"
#include "topk.h"

#include "knn/algorithms/index.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>

/* Small integers in [-2, 2] with duplicated rows: lots of exactly equal distances. */
static float *s_int_data(struct tu_rng *r, size_t n, size_t d, size_t distinct)
{
    float *x = knn_malloc_array(n, d * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        if (i >= distinct) {
            size_t src = (size_t)(tu_next(r) % distinct);
            for (size_t j = 0; j < d; j++)
                x[i * d + j] = x[src * d + j];
        } else {
            for (size_t j = 0; j < d; j++)
                x[i * d + j] = (float)tu_int(r, -2, 2);
        }
    }
    return x;
}

/* Search with the public API and compare with the reference exactly. */
static int s_check_exact(
    const float *base, size_t nb, const float *q, size_t nq, size_t d, enum knn_metric metric, size_t k, size_t threads)
{
    int ip = metric == KNN_METRIC_INNER_PRODUCT;
    struct knn_index *index = NULL;
    struct knn_index_options opts = KNN_INDEX_OPTIONS_INIT;
    opts.metric = metric;
    opts.dim = d;
    opts.threads = threads;
    ASSERT_OK(knn_index_new(&index, &opts));
    ASSERT_OK(knn_index_add(index, nb, base));
    ASSERT_UINT_EQ(nb, knn_index_ntotal(index));

    float *dist = knn_malloc_array(nq * k, sizeof(float));
    int64_t *ids = knn_malloc_array(nq * k, sizeof(int64_t));
    double *rd = malloc(nq * k * sizeof(double));
    int64_t *ri = malloc(nq * k * sizeof(int64_t));
    tu_brute_force(q, nq, base, nb, d, ip, k, rd, ri);
    int rc = knn_index_search(index, nq, q, k, dist, ids, NULL);
    int failed = 0;
    for (size_t i = 0; rc == 0 && i < nq * k && !failed; i++) {
        if (ids[i] != ri[i] || (double)dist[i] != rd[i]) {
            fprintf(
                stderr, "nq=%zu k=%zu threads=%zu ip=%d simd=%d: query %zu rank %zu: got (%g, %lld), want (%g, %lld)\n",
                nq, k, threads, ip, knn__simd_enabled(), i / k, i % k, dist[i], (long long)ids[i], rd[i],
                (long long)ri[i]);
            failed = 1;
        }
    }
    knn_free(dist);
    knn_free(ids);
    free(rd);
    free(ri);
    knn_index_destroy(index);
    ASSERT_OK(rc);
    ASSERT_FALSE(failed);
    return 0;
}

int test_topk_orders_by_distance_then_id(void)
{
    struct tu_rng r = {7};
    for (int ip = 0; ip <= 1; ip++) {
        for (size_t k = 1; k <= 40; k += 13) {
            size_t n = 200;
            float *cd = malloc(n * sizeof(float));
            int64_t *ci = malloc(n * sizeof(int64_t));
            for (size_t i = 0; i < n; i++) {
                cd[i] = (float)tu_int(&r, 0, 9); /* many ties */
                ci[i] = (int64_t)i;
            }
            /* shuffle the arrival order */
            for (size_t i = n - 1; i > 0; i--) {
                size_t j = (size_t)(tu_next(&r) % (i + 1));
                float td = cd[i];
                cd[i] = cd[j];
                cd[j] = td;
                int64_t ti = ci[i];
                ci[i] = ci[j];
                ci[j] = ti;
            }
            float hd[40];
            int64_t hi[40];
            struct knn__topk h;
            knn__topk_init(&h, k, ip, hd, hi);
            for (size_t i = 0; i < n; i++)
                knn__topk_push(&h, cd[i], ci[i]);
            knn__topk_finish(&h);
            /* reference: the k best under (distance, id) */
            for (size_t j = 0; j < k; j++) {
                size_t best = SIZE_MAX;
                for (size_t i = 0; i < n; i++) {
                    if (ci[i] < 0)
                        continue;
                    if (best == SIZE_MAX || (ip ? cd[i] > cd[best] : cd[i] < cd[best]) ||
                        (cd[i] == cd[best] && ci[i] < ci[best]))
                        best = i;
                }
                ASSERT_NEAR(cd[best], hd[j], 0);
                ASSERT_INT_EQ(ci[best], hi[j]);
                ci[best] = -1;
            }
            free(cd);
            free(ci);
        }
    }
    /* Fewer candidates than k: padded with -1 and the worst distance. */
    float hd[5];
    int64_t hi[5];
    struct knn__topk h;
    knn__topk_init(&h, 5, 0, hd, hi);
    knn__topk_push(&h, 3.0f, 9);
    knn__topk_push(&h, 1.0f, 4);
    knn__topk_finish(&h);
    ASSERT_INT_EQ(4, hi[0]);
    ASSERT_INT_EQ(9, hi[1]);
    ASSERT_INT_EQ(-1, hi[2]);
    ASSERT_TRUE(isinf(hd[4]) && hd[4] > 0);
    return 0;
}

int test_exact_ties_and_duplicates_every_path(void)
{
    /* d = 7 and 70: the register-blocked kernel; d = 150: the sgemm tiles. */
    struct tu_rng r = {11};
    size_t dims[] = {7, 70, 150};
    size_t nb = 700, nq = 40;
    enum knn_metric metrics[] = {KNN_METRIC_L2, KNN_METRIC_INNER_PRODUCT};
    size_t nqs[] = {1, 3, 4, 40};
    size_t ks[] = {1, 10, 64};
    int rc = 0;
    for (size_t di = 0; di < 3 && rc == 0; di++) {
        size_t d = dims[di];
        float *base = s_int_data(&r, nb, d, 300);
        float *q = s_int_data(&r, nq, d, nq);
        for (int simd = 1; simd >= 0 && rc == 0; simd--) {
            knn__simd_set_enabled(simd);
            for (size_t m = 0; m < 2 && rc == 0; m++)
                for (size_t a = 0; a < 4 && rc == 0; a++)
                    for (size_t b = 0; b < 3 && rc == 0; b++)
                        for (size_t t = 1; t <= 2 && rc == 0; t++)
                            rc = s_check_exact(base, nb, q, nqs[a], d, metrics[m], ks[b], t);
        }
        knn__simd_set_enabled(1);
        knn_free(base);
        knn_free(q);
    }
    return rc;
}

int test_exact_split_over_base_matches(void)
{
    /* Large enough that a search of a few queries is split over the base between two workers. */
    struct tu_rng r = {12};
    size_t d = 16, nb = 24000, nq = 5;
    float *base = s_int_data(&r, nb, d, 5000);
    float *q = s_int_data(&r, nq, d, nq);
    int rc = 0;
    for (int simd = 1; simd >= 0 && rc == 0; simd--) {
        knn__simd_set_enabled(simd);
        for (size_t n = 1; n <= nq && rc == 0; n += 4) {
            rc = s_check_exact(base, nb, q, n, d, KNN_METRIC_L2, 10, 2);
            if (rc == 0)
                rc = s_check_exact(base, nb, q, n, d, KNN_METRIC_INNER_PRODUCT, 10, 2);
        }
    }
    knn__simd_set_enabled(1);
    knn_free(base);
    knn_free(q);
    return rc;
}

int test_exact_many_queries_in_units(void)
{
    /* More queries than one unit of work per worker: the query split hands out several units. */
    struct tu_rng r = {16};
    size_t d = 9, nb = 500, nq = 1100;
    float *base = s_int_data(&r, nb, d, 200);
    float *q = s_int_data(&r, nq, d, nq);
    int rc = 0;
    for (size_t t = 1; t <= 3 && rc == 0; t++) {
        rc = s_check_exact(base, nb, q, nq, d, KNN_METRIC_L2, 5, t);
        if (rc == 0)
            rc = s_check_exact(base, nb, q, nq, d, KNN_METRIC_INNER_PRODUCT, 5, t);
    }
    knn_free(base);
    knn_free(q);
    return rc;
}

int test_exact_gaussian_within_float_precision(void)
{
    struct tu_rng r = {13};
    size_t d = 37, nb = 3000, nq = 30, k = 15;
    float *base = knn_malloc_array(nb * d, sizeof(float));
    float *q = knn_malloc_array(nq * d, sizeof(float));
    tu_fill_gauss(&r, base, nb * d);
    tu_fill_gauss(&r, q, nq * d);
    float *dist = knn_malloc_array(nq * k, sizeof(float));
    int64_t *ids = knn_malloc_array(nq * k, sizeof(int64_t));
    double *rd = malloc(nq * k * sizeof(double));
    int64_t *ri = malloc(nq * k * sizeof(int64_t));
    for (int ip = 0; ip <= 1; ip++) {
        struct knn_index *index = NULL;
        struct knn_index_options opts = KNN_INDEX_OPTIONS_INIT;
        opts.metric = ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2;
        opts.dim = d;
        ASSERT_OK(knn_index_new(&index, &opts));
        ASSERT_OK(knn_index_add(index, nb, base));
        tu_brute_force(q, nq, base, nb, d, ip, k, rd, ri);
        for (size_t nqi = 1; nqi <= nq; nqi += 29) {
            ASSERT_OK(knn_index_search(index, nqi, q, k, dist, ids, NULL));
            for (size_t i = 0; i < nqi * k; i++) {
                /* each distance is the reference's at that rank, to float precision ... */
                ASSERT_NEAR(rd[i], dist[i], 1e-4 * (1 + fabs(rd[i])));
                /* ... and belongs to the id returned with it */
                double s = 0;
                for (size_t t = 0; t < d; t++) {
                    double a = q[(i / k) * d + t], b = base[ids[i] * d + t];
                    s += ip ? a * b : (a - b) * (a - b);
                }
                ASSERT_NEAR(s, dist[i], 1e-4 * (1 + fabs(s)));
            }
        }
        knn_index_destroy(index);
    }
    knn_free(base);
    knn_free(q);
    knn_free(dist);
    knn_free(ids);
    free(rd);
    free(ri);
    return 0;
}

int test_exact_same_answer_whatever_the_split(void)
{
    /* Real-valued data: the split over threads (base or queries, any chunking) must not change a
     * single bit of the answer, because each distance is computed the same way wherever it lands. */
    struct tu_rng r = {17};
    size_t d = 24, nb = 30000, nq = 600, k = 7;
    float *base = knn_malloc_array(nb * d, sizeof(float));
    float *q = knn_malloc_array(nq * d, sizeof(float));
    tu_fill_gauss(&r, base, nb * d);
    tu_fill_gauss(&r, q, nq * d);
    float *d1 = knn_malloc_array(nq * k, sizeof(float)), *d2 = knn_malloc_array(nq * k, sizeof(float));
    int64_t *i1 = knn_malloc_array(nq * k, sizeof(int64_t)), *i2 = knn_malloc_array(nq * k, sizeof(int64_t));
    size_t nqs[] = {1, 5, 40, 600};
    for (int ip = 0; ip <= 1; ip++) {
        struct knn_index *index = NULL;
        struct knn_index_options opts = KNN_INDEX_OPTIONS_INIT;
        opts.metric = ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2;
        opts.dim = d;
        ASSERT_OK(knn_index_new(&index, &opts));
        ASSERT_OK(knn_index_add(index, nb, base));
        for (size_t a = 0; a < 4; a++) {
            struct knn_search_params p1 = KNN_SEARCH_PARAMS_INIT, p2 = KNN_SEARCH_PARAMS_INIT;
            p1.threads = 1;
            p2.threads = 2;
            ASSERT_OK(knn_index_search(index, nqs[a], q, k, d1, i1, &p1));
            ASSERT_OK(knn_index_search(index, nqs[a], q, k, d2, i2, &p2));
            ASSERT_MEM_EQ(i1, nqs[a] * k * sizeof(int64_t), i2, nqs[a] * k * sizeof(int64_t));
            ASSERT_MEM_EQ(d1, nqs[a] * k * sizeof(float), d2, nqs[a] * k * sizeof(float));
        }
        knn_index_destroy(index);
    }
    knn_free(base);
    knn_free(q);
    knn_free(d1);
    knn_free(d2);
    knn_free(i1);
    knn_free(i2);
    return 0;
}

int test_exact_k_beyond_ntotal_is_padded(void)
{
    struct tu_rng r = {14};
    size_t d = 5, nb = 3, k = 6;
    float *base = s_int_data(&r, nb, d, nb);
    int rc = s_check_exact(base, nb, base, 2, d, KNN_METRIC_L2, k, 1);
    if (rc == 0)
        rc = s_check_exact(base, nb, base, 2, d, KNN_METRIC_INNER_PRODUCT, k, 1);
    /* An empty index pads everything. */
    struct knn_index *index = NULL;
    struct knn_index_options opts = KNN_INDEX_OPTIONS_INIT;
    opts.dim = d;
    ASSERT_OK(knn_index_new(&index, &opts));
    float dist[6];
    int64_t ids[6];
    ASSERT_OK(knn_index_search(index, 1, base, k, dist, ids, NULL));
    for (size_t j = 0; j < k; j++) {
        ASSERT_INT_EQ(-1, ids[j]);
        ASSERT_TRUE(isinf(dist[j]) && dist[j] > 0);
    }
    knn_index_destroy(index);
    knn_free(base);
    return rc;
}

int test_exact_block_merges_ranges_in_any_order(void)
{
    /* knn__exact_search_block over two base ranges, the later range first: same answer as one call. */
    struct tu_rng r = {15};
    size_t d = 6, nb = 500, nq = 9, k = 12, half = 230;
    float *base = s_int_data(&r, nb, d, 150);
    float *q = s_int_data(&r, nq, d, nq);
    float *norms = knn_malloc_array(nb, sizeof(float));
    knn__norms_sqr(base, nb, d, norms);
    float *dist = knn_malloc_array(nq * k, sizeof(float));
    int64_t *ids = knn_malloc_array(nq * k, sizeof(int64_t));
    double *rd = malloc(nq * k * sizeof(double));
    int64_t *ri = malloc(nq * k * sizeof(int64_t));
    for (int ip = 0; ip <= 1; ip++) {
        tu_brute_force(q, nq, base, nb, d, ip, k, rd, ri);
        ASSERT_OK(knn__exact_search_block(
            q, nq, base + half * d, ip ? NULL : norms + half, nb - half, d, ip, k, dist, ids, (int64_t)half, 1));
        ASSERT_OK(knn__exact_search_block(q, nq, base, NULL, half, d, ip, k, dist, ids, 0, 0));
        for (size_t i = 0; i < nq * k; i++) {
            ASSERT_INT_EQ(ri[i], ids[i]);
            ASSERT_NEAR(rd[i], dist[i], 0);
        }
    }
    knn_free(base);
    knn_free(q);
    knn_free(norms);
    knn_free(dist);
    knn_free(ids);
    free(rd);
    free(ri);
    return 0;
}

int test_index_rejects_bad_arguments(void)
{
    struct knn_index *index = NULL;
    struct knn_index_options opts = KNN_INDEX_OPTIONS_INIT;
    ASSERT_ERR(KNN_EINVAL, knn_index_new(&index, &opts)); /* dim 0 */
    opts.dim = 3;
    opts.metric = (enum knn_metric)7;
    ASSERT_ERR(KNN_EINVAL, knn_index_new(&index, &opts));
    opts.metric = KNN_METRIC_L2;
    ASSERT_OK(knn_index_new(&index, &opts));
    ASSERT_TRUE(knn_index_is_trained(index));
    float x[6] = {1, 2, 3, 4, NAN, 6};
    ASSERT_ERR(KNN_ERANGE, knn_index_add(index, 2, x));
    ASSERT_CONTAINS(knn_error_message(), "row 1, column 1");
    ASSERT_UINT_EQ(0, knn_index_ntotal(index));
    x[4] = 5;
    ASSERT_OK(knn_index_add(index, 2, x));
    float dist[2];
    int64_t ids[2];
    ASSERT_ERR(KNN_EINVAL, knn_index_search(index, 1, x, 0, dist, ids, NULL));
    x[0] = INFINITY;
    ASSERT_ERR(KNN_ERANGE, knn_index_search(index, 1, x, 2, dist, ids, NULL));
    ASSERT_ERR(KNN_EINVAL, knn_index_set_nprobe(index, 4)); /* Flat has no nprobe */
    knn_index_destroy(index);
    return 0;
}

struct s_cover {
    unsigned char *seen;
    size_t bad_worker;
    size_t threads;
    int fail_at;
};

static int s_cover_chunk(void *ctx, size_t begin, size_t end, size_t worker)
{
    struct s_cover *c = ctx;
    if (worker >= c->threads)
        c->bad_worker = 1;
    for (size_t i = begin; i < end; i++) {
        __atomic_add_fetch(&c->seen[i], 1, __ATOMIC_RELAXED);
        if ((int)i == c->fail_at)
            return knn_error_set(KNN_ERANGE, "item %zu failed on purpose", i);
    }
    return 0;
}

static int s_nested_chunk(void *ctx, size_t begin, size_t end, size_t worker)
{
    /* A parallel_for inside a chunk runs inline and still covers its range. */
    struct s_cover *outer = ctx;
    for (size_t i = begin; i < end; i++) {
        unsigned char seen[10] = {0};
        struct s_cover inner = {seen, 0, 2, -1};
        int rc = knn__parallel_for(10, 2, s_cover_chunk, &inner);
        if (rc != 0)
            return rc;
        for (int j = 0; j < 10; j++)
            if (seen[j] != 1)
                return knn_error_set(KNN_EINTERNAL, "nested item %d seen %d times", j, seen[j]);
        __atomic_add_fetch(&outer->seen[i], 1, __ATOMIC_RELAXED);
    }
    return 0;
}

int test_parallel_for_covers_and_reports(void)
{
    ASSERT_TRUE(knn__ncores() >= 1);
    ASSERT_UINT_EQ(1, knn__resolve_threads(4, 1));
    ASSERT_UINT_EQ(3, knn__resolve_threads(3, 100));
    for (size_t threads = 1; threads <= 5; threads++) {
        for (size_t n = 1; n <= 37; n += 6) {
            unsigned char seen[40] = {0};
            struct s_cover c = {seen, 0, threads, -1};
            ASSERT_OK(knn__parallel_for(n, threads, s_cover_chunk, &c));
            ASSERT_UINT_EQ(0, c.bad_worker);
            for (size_t i = 0; i < n; i++)
                ASSERT_INT_EQ(1, seen[i]);
        }
    }
    /* The failure of a chunk run by another thread comes back with its message. */
    unsigned char seen[40] = {0};
    struct s_cover c = {seen, 0, 2, 33};
    knn_error_clear();
    ASSERT_ERR(KNN_ERANGE, knn__parallel_for(40, 2, s_cover_chunk, &c));
    ASSERT_CONTAINS(knn_error_message(), "item 33 failed on purpose");
    /* Nested calls. */
    unsigned char outer_seen[8] = {0};
    struct s_cover outer = {outer_seen, 0, 2, -1};
    ASSERT_OK(knn__parallel_for(8, 2, s_nested_chunk, &outer));
    for (int i = 0; i < 8; i++)
        ASSERT_INT_EQ(1, outer_seen[i]);
    return 0;
}
