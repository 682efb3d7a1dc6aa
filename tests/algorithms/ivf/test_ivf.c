/*
 * IVFFlat and IVFPQ search, against a double-precision brute force written here.
 *
 * Recall floors (seeded data, documented in algorithms/README.md): on 12,000 clustered vectors of
 * d = 32 with nlist = 110 (= sqrt(N)) and the model's default nprobe,
 * - IVFFlat finds >= 0.95 of the exact top 10 (measured 0.998 at nprobe 11; 0.77 at nprobe 1),
 *   and with nprobe = nlist it returns the exact results;
 * - IVFPQ (m = 8, 8-bit codes) finds >= 0.60 of the exact top 10 (measured 0.698; PQ at 8 bytes
 *   per 32 floats bounds it), and returns exactly the best candidates under its own (ADC)
 *   distance, which the test recomputes from the stored codes.
 */
#include "knn_test.h"

#include "index_flat.h"
#include "index_impl.h"
#include "index_ivf.h"
#include "ivf_test_util.h"
#include "pq.h"

#include "knn/algorithms/index.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_BASE 12000
#define N_QUERY 200
#define DIM 32
#define NLIST 110

static float *s_base(void)
{
    float *x = malloc((size_t)N_BASE * DIM * sizeof(float));
    iu_clustered(x, N_BASE, DIM, 60, 1.5, 101);
    return x;
}

static float *s_queries(void)
{
    float *q = malloc((size_t)N_QUERY * DIM * sizeof(float));
    iu_clustered(q, N_QUERY, DIM, 60, 1.5, 101); /* same blobs: same seed draws the same centres */
    struct iu_rng r = {77};
    for (size_t i = 0; i < (size_t)N_QUERY * DIM; i++)
        q[i] += (float)(0.3 * iu_gauss(&r));
    return q;
}

static int
s_build(struct knn_index **out, enum knn_index_type type, enum knn_metric metric, size_t m, const float *x, size_t n)
{
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = type;
    o.metric = metric;
    o.dim = DIM;
    o.nlist = NLIST;
    o.pq_m = m;
    o.nprobe = knn__ivf_default_nprobe(NLIST);
    o.seed = 42;
    int rc = knn_index_new(out, &o);
    if (rc == 0)
        rc = knn_index_train(*out, n, x);
    if (rc == 0)
        rc = knn_index_add(*out, n, x);
    return rc;
}

/* Same ids, except where the two orders differ only among distances equal within tol. */
static int s_same_results(
    const float *dist, const int64_t *ids, const double *tdist, const int64_t *tids, size_t nq, size_t k,
    double rel_tol)
{
    for (size_t i = 0; i < nq * k; i++) {
        double tol = rel_tol * (1.0 + fabs(tdist[i]));
        if (fabs(dist[i] - tdist[i]) > tol) {
            fprintf(stderr, "query %zu rank %zu: distance %.9g, expected %.9g\n", i / k, i % k, dist[i], tdist[i]);
            return 0;
        }
        if (ids[i] != tids[i]) {
            /* a tie: the expected id must be among ours at (nearly) the same distance */
            size_t q = i / k;
            int found = 0;
            for (size_t j = 0; j < k; j++)
                found |= ids[q * k + j] == tids[i] && fabs(dist[q * k + j] - tdist[i]) <= tol;
            if (!found) {
                fprintf(
                    stderr, "query %zu rank %zu: id %lld, expected %lld\n", q, i % k, (long long)ids[i],
                    (long long)tids[i]);
                return 0;
            }
        }
    }
    return 1;
}

int test_ivfflat_scanning_every_list_is_exact(void)
{
    float *x = s_base(), *q = s_queries();
    size_t k = 10;
    float *dist = malloc(N_QUERY * k * sizeof(float));
    int64_t *ids = malloc(N_QUERY * k * sizeof(int64_t)), *tids = malloc(N_QUERY * k * sizeof(int64_t));
    double *tdist = malloc(N_QUERY * k * sizeof(double));
    for (int ip = 0; ip < 2; ip++) {
        struct knn_index *index;
        ASSERT_OK(s_build(&index, KNN_INDEX_IVFFLAT, ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2, 0, x, N_BASE));
        ASSERT_UINT_EQ(N_BASE, knn_index_ntotal(index));
        struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
        sp.nprobe = NLIST;
        ASSERT_OK(knn_index_search(index, N_QUERY, q, k, dist, ids, &sp));
        iu_brute_force(q, N_QUERY, x, N_BASE, DIM, ip, k, tdist, tids);
        ASSERT_TRUE(s_same_results(dist, ids, tdist, tids, N_QUERY, k, 1e-4));
        knn_index_destroy(index);
    }
    free(x);
    free(q);
    free(dist);
    free(ids);
    free(tids);
    free(tdist);
    return 0;
}

int test_ivfflat_recall_at_default_nprobe(void)
{
    float *x = s_base(), *q = s_queries();
    size_t k = 10;
    float *dist = malloc(N_QUERY * k * sizeof(float));
    int64_t *ids = malloc(N_QUERY * k * sizeof(int64_t)), *tids = malloc(N_QUERY * k * sizeof(int64_t));
    iu_brute_force(q, N_QUERY, x, N_BASE, DIM, 0, k, NULL, tids);
    struct knn_index *index;
    ASSERT_OK(s_build(&index, KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 0, x, N_BASE));
    ASSERT_OK(knn_index_search(index, N_QUERY, q, k, dist, ids, NULL));
    double r_default = iu_recall(ids, tids, N_QUERY, k);
    /* Distances are exact squared L2 distances of the ids returned. */
    for (size_t i = 0; i < N_QUERY * k; i++) {
        double s = 0;
        for (size_t j = 0; j < DIM; j++) {
            double v = (double)q[(i / k) * DIM + j] - x[ids[i] * DIM + j];
            s += v * v;
        }
        ASSERT_NEAR(s, dist[i], 1e-4 * (1 + s));
    }
    struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
    sp.nprobe = 1;
    ASSERT_OK(knn_index_search(index, N_QUERY, q, k, dist, ids, &sp));
    double r1 = iu_recall(ids, tids, N_QUERY, k);
    fprintf(
        stderr, "IVFFlat recall@10: nprobe 1: %.4f, default nprobe %zu: %.4f\n", r1,
        knn_index_get_options(index)->nprobe, r_default);
    ASSERT_TRUE(r_default >= 0.95);
    ASSERT_TRUE(r1 < r_default);
    knn_index_destroy(index);
    free(x);
    free(q);
    free(dist);
    free(ids);
    free(tids);
    return 0;
}

/* ADC distance of code `c` in list `l`: ||q - (centroid_l + decode(c))||^2. */
static double s_adc(const struct knn_index *index, size_t l, const uint8_t *c, const float *qv)
{
    const struct knn__pq *pq = knn__ivf_pq(index);
    const struct knn_index *quant = knn__ivf_quantizer(index);
    const float *cent = knn__index_flat_vectors(quant) + l * DIM;
    float rec[DIM];
    knn__pq_decode(pq, 1, c, rec);
    double s = 0;
    for (size_t j = 0; j < DIM; j++) {
        double v = (double)qv[j] - cent[j] - rec[j];
        s += v * v;
    }
    return s;
}

int test_ivfpq_returns_best_adc_candidates_and_recall(void)
{
    float *x = s_base(), *q = s_queries();
    size_t k = 10;
    float *dist = malloc(N_QUERY * k * sizeof(float));
    int64_t *ids = malloc(N_QUERY * k * sizeof(int64_t)), *tids = malloc(N_QUERY * k * sizeof(int64_t));
    iu_brute_force(q, N_QUERY, x, N_BASE, DIM, 0, k, NULL, tids);
    struct knn_index *index;
    ASSERT_OK(s_build(&index, KNN_INDEX_IVFPQ, KNN_METRIC_L2, 8, x, N_BASE));
    ASSERT_OK(knn_index_search(index, N_QUERY, q, k, dist, ids, NULL));
    double recall = iu_recall(ids, tids, N_QUERY, k);
    fprintf(stderr, "IVFPQ m=8 recall@10 at default nprobe: %.4f\n", recall);
    ASSERT_TRUE(recall >= 0.60);

    /* With every list probed, the results are the k smallest ADC distances over all codes. */
    struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
    sp.nprobe = NLIST;
    size_t nq = 20;
    ASSERT_OK(knn_index_search(index, nq, q, k, dist, ids, &sp));
    double *all = malloc(N_BASE * sizeof(double));
    for (size_t i = 0; i < nq; i++) {
        for (size_t l = 0; l < NLIST; l++) {
            size_t size;
            const uint8_t *codes;
            const int64_t *lid;
            knn__ivf_list(index, l, &size, &codes, &lid);
            for (size_t e = 0; e < size; e++)
                all[lid[e]] = s_adc(index, l, codes + e * 8, q + i * DIM);
        }
        for (size_t r = 0; r < k; r++) {
            double tol = 1e-3 * (1 + all[ids[i * k + r]]);
            ASSERT_NEAR(all[ids[i * k + r]], dist[i * k + r], tol);
            /* nothing outside the results is better than the k-th */
            if (r == k - 1) {
                for (size_t j = 0; j < N_BASE; j++) {
                    int in = 0;
                    for (size_t t = 0; t < k; t++)
                        in |= ids[i * k + t] == (int64_t)j;
                    if (!in && all[j] < dist[i * k + r] - tol)
                        FAIL(
                            "query %zu: id %zu has ADC distance %g, better than the k-th %g", i, j, all[j],
                            dist[i * k + r]);
                }
            }
        }
    }
    free(all);
    knn_index_destroy(index);
    free(x);
    free(q);
    free(dist);
    free(ids);
    free(tids);
    return 0;
}

/* Adding in several batches gives the same index as one batch; ids follow the order of addition. */
int test_ivf_batches_and_threads_agree(void)
{
    float *x = s_base(), *q = s_queries();
    size_t k = 7;
    float *d1 = malloc(N_QUERY * k * sizeof(float)), *d2 = malloc(N_QUERY * k * sizeof(float));
    int64_t *i1 = malloc(N_QUERY * k * sizeof(int64_t)), *i2 = malloc(N_QUERY * k * sizeof(int64_t));
    for (int type = 0; type < 2; type++) {
        enum knn_index_type t = type ? KNN_INDEX_IVFPQ : KNN_INDEX_IVFFLAT;
        struct knn_index *a, *b;
        ASSERT_OK(s_build(&a, t, KNN_METRIC_L2, 4, x, N_BASE));
        struct knn_index_options o = *knn_index_get_options(a);
        ASSERT_OK(knn_index_new(&b, &o));
        ASSERT_OK(knn_index_train(b, N_BASE, x));
        ASSERT_OK(knn_index_add(b, 5000, x));
        ASSERT_OK(knn_index_add(b, 1, x + 5000 * DIM));
        ASSERT_OK(knn_index_add(b, N_BASE - 5001, x + 5001 * DIM));
        struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
        sp.threads = 1;
        ASSERT_OK(knn_index_search(a, N_QUERY, q, k, d1, i1, &sp));
        sp.threads = 2;
        ASSERT_OK(knn_index_search(b, N_QUERY, q, k, d2, i2, &sp));
        ASSERT_MEM_EQ(i1, N_QUERY * k * sizeof(int64_t), i2, N_QUERY * k * sizeof(int64_t));
        /* IVFPQ distances start from the coarse distance, whose sgemm tiles follow the blocks */
        for (size_t i = 0; i < N_QUERY * k; i++)
            ASSERT_NEAR(d1[i], d2[i], 1e-5 * (1 + fabs(d1[i])));
        /* one query at a time gives the batch's answers */
        for (size_t i = 0; i < 10; i++) {
            ASSERT_OK(knn_index_search(a, 1, q + i * DIM, k, d2, i2, NULL));
            ASSERT_MEM_EQ(i1 + i * k, k * sizeof(int64_t), i2, k * sizeof(int64_t));
        }
        knn_index_destroy(a);
        knn_index_destroy(b);
    }
    free(x);
    free(q);
    free(d1);
    free(d2);
    free(i1);
    free(i2);
    return 0;
}

/* k beyond what the probed lists hold: padded with -1 and +INFINITY (L2) / -INFINITY (IP). */
int test_ivf_pads_short_results(void)
{
    float x[40 * 4];
    struct iu_rng r = {5};
    for (size_t i = 0; i < 160; i++)
        x[i] = (float)iu_gauss(&r);
    for (int ip = 0; ip < 2; ip++) {
        struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
        o.type = KNN_INDEX_IVFFLAT;
        o.metric = ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2;
        o.dim = 4;
        o.nlist = 4;
        o.nprobe = 1;
        struct knn_index *index;
        ASSERT_OK(knn_index_new(&index, &o));
        ASSERT_OK(knn_index_train(index, 40, x));
        ASSERT_OK(knn_index_add(index, 40, x));
        float dist[50];
        int64_t ids[50];
        ASSERT_OK(knn_index_search(index, 1, x, 50, dist, ids, NULL));
        size_t found = 0;
        while (found < 50 && ids[found] >= 0)
            found++;
        ASSERT_TRUE(found >= 1 && found < 40);
        for (size_t i = found; i < 50; i++) {
            ASSERT_INT_EQ(-1, ids[i]);
            ASSERT_TRUE(isinf(dist[i]) && (ip ? dist[i] < 0 : dist[i] > 0));
        }
        knn_index_destroy(index);
    }
    return 0;
}

int test_ivf_rejects_bad_options_and_data(void)
{
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    struct knn_index *index = NULL;
    o.type = KNN_INDEX_IVFPQ;
    o.dim = 10;
    o.nlist = 4;
    o.pq_m = 3;
    ASSERT_ERR(KNN_EINVAL, knn_index_new(&index, &o));
    ASSERT_CONTAINS(knn_error_message(), "pq_m = 3 must divide the dimension 10");
    o.pq_m = 5;
    o.metric = KNN_METRIC_INNER_PRODUCT;
    ASSERT_ERR(KNN_EINVAL, knn_index_new(&index, &o));
    ASSERT_CONTAINS(knn_error_message(), "only the L2 metric");
    o.type = KNN_INDEX_IVFFLAT;
    o.nlist = 0;
    ASSERT_ERR(KNN_EINVAL, knn_index_new(&index, &o));
    ASSERT_CONTAINS(knn_error_message(), "nlist = 0");

    o.nlist = 8;
    o.metric = KNN_METRIC_L2;
    ASSERT_OK(knn_index_new(&index, &o));
    float x[7 * 10] = {0};
    ASSERT_ERR(KNN_EINDEX_NOT_TRAINED, knn_index_add(index, 7, x));
    ASSERT_ERR(KNN_EINVAL, knn_index_train(index, 7, x));
    ASSERT_CONTAINS(knn_error_message(), "7 training vectors for nlist = 8");
    knn_index_destroy(index);

    o.type = KNN_INDEX_IVFPQ;
    o.pq_m = 5;
    o.nlist = 2;
    ASSERT_OK(knn_index_new(&index, &o));
    float y[100 * 10];
    for (int i = 0; i < 1000; i++)
        y[i] = (float)(i % 17);
    ASSERT_ERR(KNN_EINVAL, knn_index_train(index, 100, y));
    ASSERT_CONTAINS(knn_error_message(), "need at least 256");
    knn_index_destroy(index);
    return 0;
}

int test_ivf_default_nprobe_rule(void)
{
    /* index_ivf.h: ceil(sqrt(nlist)) within [min(8, nlist), nlist]. */
    ASSERT_UINT_EQ(1, knn__ivf_default_nprobe(1));
    ASSERT_UINT_EQ(5, knn__ivf_default_nprobe(5));
    ASSERT_UINT_EQ(8, knn__ivf_default_nprobe(30));
    ASSERT_UINT_EQ(15, knn__ivf_default_nprobe(224));
    ASSERT_UINT_EQ(22, knn__ivf_default_nprobe(447));
    ASSERT_UINT_EQ(67, knn__ivf_default_nprobe(4472));
    return 0;
}

/* One query over many probed entries is split over the workers; the answer does not change. */
int test_ivf_single_query_split_matches(void)
{
    const size_t n = 40000, d = 8, k = 10;
    float *x = malloc(n * d * sizeof(float));
    iu_clustered(x, n, d, 20, 2.0, 111);
    for (int type = 0; type < 2; type++) {
        struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
        o.type = type ? KNN_INDEX_IVFPQ : KNN_INDEX_IVFFLAT;
        o.dim = d;
        o.nlist = 4;
        o.pq_m = 4;
        o.nprobe = 4; /* every list: 40,000 entries, above the split threshold */
        struct knn_index *index;
        ASSERT_OK(knn_index_new(&index, &o));
        ASSERT_OK(knn_index_train(index, n, x));
        ASSERT_OK(knn_index_add(index, n, x));
        float d1[10], d2[10];
        int64_t i1[10], i2[10];
        for (size_t q = 0; q < 5; q++) {
            struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
            sp.threads = 1;
            ASSERT_OK(knn_index_search(index, 1, x + q * 997 * d, k, d1, i1, &sp));
            sp.threads = 2;
            ASSERT_OK(knn_index_search(index, 1, x + q * 997 * d, k, d2, i2, &sp));
            ASSERT_MEM_EQ(i1, sizeof(i1), i2, sizeof(i2));
            ASSERT_MEM_EQ(d1, sizeof(d1), d2, sizeof(d2));
            if (type == 0)
                ASSERT_INT_EQ((int64_t)(q * 997), i1[0]); /* a base vector finds itself first */
        }
        knn_index_destroy(index);
    }
    free(x);
    return 0;
}

/*
 * Both IVFFlat list layouts (blocks of 8 for d <= 32, row-major above), both metrics: with every
 * list probed the results are the exact ones, and a FAISS-format round trip keeps them.
 */
int test_ivfflat_layouts_are_exact(void)
{
    static const size_t dims[] = {3, 8, 20, 32, 33, 48};
    const size_t n = 1500, nq = 40, k = 7;
    for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
        size_t d = dims[di];
        float *x = malloc(n * d * sizeof(float)), *q = malloc(nq * d * sizeof(float));
        iu_clustered(x, n, d, 10, 2.0, 121 + d);
        iu_clustered(q, nq, d, 10, 2.0, 122 + d);
        float dist[40 * 7];
        int64_t ids[40 * 7], tids[40 * 7];
        double tdist[40 * 7];
        for (int ip = 0; ip < 2; ip++) {
            struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
            o.type = KNN_INDEX_IVFFLAT;
            o.metric = ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2;
            o.dim = d;
            o.nlist = 13;
            o.nprobe = 13;
            struct knn_index *index;
            ASSERT_OK(knn_index_new(&index, &o));
            ASSERT_OK(knn_index_train(index, n, x));
            ASSERT_OK(knn_index_add(index, 700, x));
            ASSERT_OK(knn_index_add(index, n - 700, x + 700 * d)); /* partial blocks, then more */
            ASSERT_OK(knn_index_search(index, nq, q, k, dist, ids, NULL));
            iu_brute_force(q, nq, x, n, d, ip, k, tdist, tids);
            if (!s_same_results(dist, ids, tdist, tids, nq, k, 1e-4))
                FAIL("d = %zu, %s", d, ip ? "IP" : "L2");
            knn_index_destroy(index);
        }
        free(x);
        free(q);
    }
    return 0;
}
