/* k-means and the product quantizer, checked against naive computations written here. */
#include "knn_test.h"

#include "distances.h"
#include "ivf_test_util.h"
#include "kmeans.h"
#include "pq.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Naive nearest and second-nearest centroid (double precision) of x. */
static void s_naive_nearest2(const float *c, size_t k, size_t d, const float *x, size_t *best, double *d1, double *d2)
{
    *d1 = INFINITY;
    *d2 = INFINITY;
    *best = 0;
    for (size_t j = 0; j < k; j++) {
        double s = 0;
        for (size_t t = 0; t < d; t++) {
            double v = (double)x[t] - c[j * d + t];
            s += v * v;
        }
        if (s < *d1) {
            *d2 = *d1;
            *d1 = s;
            *best = j;
        } else if (s < *d2) {
            *d2 = s;
        }
    }
}

/* The fused scan against the naive one, for many widths and centroid counts, SIMD on and off. */
int test_centroids_nearest_matches_naive(void)
{
    static const size_t dims[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 20, 24, 31, 32, 33, 40, 64};
    static const size_t ks[] = {1, 2, 7, 8, 9, 100, 256};
    struct iu_rng r = {7};
    for (int simd = 0; simd < 2; simd++) {
        knn__simd_set_enabled(simd);
        for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
            for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
                size_t d = dims[di], k = ks[ki], n = 50;
                float *c = malloc(k * d * sizeof(float)), *x = malloc(n * d * sizeof(float));
                float d1[50], d2[50], e1[50];
                int32_t a[50], b[50];
                for (size_t i = 0; i < k * d; i++)
                    c[i] = (float)iu_gauss(&r);
                for (size_t i = 0; i < n * d; i++)
                    x[i] = (float)iu_gauss(&r);
                struct knn__centroids t;
                ASSERT_OK(knn__centroids_init(&t, c, k, d, 0));
                knn__centroids_nearest2(&t, n, x, d, a, d1, d2);
                knn__centroids_nearest(&t, n, x, d, b, e1);
                for (size_t i = 0; i < n; i++) {
                    size_t best;
                    double n1, n2;
                    s_naive_nearest2(c, k, d, x + i * d, &best, &n1, &n2);
                    double tol = 1e-4 * (1.0 + n1);
                    if ((size_t)a[i] != best && !(fabs(n2 - n1) < tol))
                        FAIL("d=%zu k=%zu simd=%d point %zu: nearest %d, expected %zu", d, k, simd, i, a[i], best);
                    ASSERT_INT_EQ(a[i], b[i]);
                    ASSERT_NEAR(n1, d1[i], tol);
                    ASSERT_NEAR(n1, e1[i], tol);
                    if (k == 1)
                        ASSERT_TRUE(isinf(d2[i]));
                    else
                        ASSERT_NEAR(n2, d2[i], 1e-4 * (1.0 + n2));
                }
                /* Inner product: the largest dot product wins. */
                knn__centroids_clean_up(&t);
                ASSERT_OK(knn__centroids_init(&t, c, k, d, 1));
                knn__centroids_nearest(&t, n, x, d, a, d1);
                for (size_t i = 0; i < n; i++) {
                    double bestv = -INFINITY, second = -INFINITY;
                    size_t bj = 0;
                    for (size_t j = 0; j < k; j++) {
                        double s = 0;
                        for (size_t u = 0; u < d; u++)
                            s += (double)x[i * d + u] * c[j * d + u];
                        if (s > bestv) {
                            second = bestv;
                            bestv = s;
                            bj = j;
                        } else if (s > second) {
                            second = s;
                        }
                    }
                    if ((size_t)a[i] != bj && !(bestv - second < 1e-4 * (1 + fabs(bestv))))
                        FAIL("IP d=%zu k=%zu point %zu: nearest %d, expected %zu", d, k, i, a[i], bj);
                    ASSERT_NEAR(bestv, d1[i], 1e-4 * (1 + fabs(bestv)));
                }
                /* Dot products of every centroid. */
                float *dots = malloc(k * sizeof(float));
                knn__centroids_dots(&t, x, dots);
                for (size_t j = 0; j < k; j++) {
                    double s = 0;
                    for (size_t u = 0; u < d; u++)
                        s += (double)x[u] * c[j * d + u];
                    ASSERT_NEAR(s, dots[j], 1e-4 * (1 + fabs(s)));
                }
                free(dots);
                knn__centroids_clean_up(&t);
                free(c);
                free(x);
            }
        }
    }
    knn__simd_set_enabled(1);
    return 0;
}

/* Sum of squared distances of the points to their nearest centroid (double precision). */
static double s_objective(const float *x, size_t n, size_t d, const float *c, size_t k)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t b;
        double d1, d2;
        s_naive_nearest2(c, k, d, x + i * d, &b, &d1, &d2);
        sum += d1;
    }
    return sum;
}

int test_kmeans_is_deterministic_per_seed(void)
{
    static const size_t dims[] = {8, 48}; /* the fused path and the sgemm path */
    for (size_t di = 0; di < 2; di++) {
        size_t n = 3000, d = dims[di], k = 20;
        float *x = malloc(n * d * sizeof(float));
        float *c1 = malloc(k * d * sizeof(float)), *c2 = malloc(k * d * sizeof(float)),
              *c3 = malloc(k * d * sizeof(float));
        iu_clustered(x, n, d, 30, 4.0, 11);
        struct knn__kmeans_options o = KNN__KMEANS_OPTIONS_INIT;
        o.seed = 5;
        o.threads = 2;
        ASSERT_OK(knn__kmeans_train(c1, &o, n, d, x, k));
        ASSERT_OK(knn__kmeans_train(c2, &o, n, d, x, k));
        ASSERT_MEM_EQ(c1, k * d * sizeof(float), c2, k * d * sizeof(float));
        o.seed = 6;
        ASSERT_OK(knn__kmeans_train(c3, &o, n, d, x, k));
        ASSERT_TRUE(memcmp(c1, c3, k * d * sizeof(float)) != 0);
        free(x);
        free(c1);
        free(c2);
        free(c3);
    }
    return 0;
}

/*
 * Hamerly's bounds only skip work: the centroids are those of plain Lloyd's iterations. (Bounds are
 * used for narrow vectors; d = 24 and 32 sit at the edge of the fused kernel's unrolled widths.)
 */
int test_kmeans_bounds_match_plain_lloyd(void)
{
    static const size_t dims[] = {8, 24, 32};
    for (size_t di = 0; di < 3; di++) {
        size_t n = 4000, d = dims[di], k = 40;
        float *x = malloc(n * d * sizeof(float));
        float *c1 = malloc(k * d * sizeof(float)), *c2 = malloc(k * d * sizeof(float));
        iu_clustered(x, n, d, 25, 3.0, 12);
        struct knn__kmeans_options o = KNN__KMEANS_OPTIONS_INIT;
        o.niter = 20;
        o.threads = 1;
        ASSERT_OK(knn__kmeans_train(c1, &o, n, d, x, k));
        o.no_bounds = 1;
        ASSERT_OK(knn__kmeans_train(c2, &o, n, d, x, k));
        for (size_t i = 0; i < k * d; i++)
            ASSERT_NEAR(c2[i], c1[i], 1e-4 * (1 + fabs(c2[i])));
        free(x);
        free(c1);
        free(c2);
    }
    return 0;
}

/* Lloyd's iterations never make the clustering worse, and end well below the initial one. */
int test_kmeans_improves_objective(void)
{
    size_t n = 5000, d = 16, k = 50;
    float *x = malloc(n * d * sizeof(float)), *c = malloc(k * d * sizeof(float));
    iu_clustered(x, n, d, 50, 5.0, 13);
    double prev = INFINITY, first = 0;
    for (size_t it = 1; it <= 8; it++) {
        struct knn__kmeans_options o = KNN__KMEANS_OPTIONS_INIT;
        o.niter = it;
        ASSERT_OK(knn__kmeans_train(c, &o, n, d, x, k));
        double obj = s_objective(x, n, d, c, k);
        if (it == 1)
            first = obj;
        ASSERT_TRUE(obj <= prev * (1 + 1e-6));
        prev = obj;
    }
    ASSERT_TRUE(prev < 0.9 * first);
    free(x);
    free(c);
    return 0;
}

/* n < k is refused (documented); n == k puts one centroid on each point. */
int test_kmeans_needs_as_many_points_as_centroids(void)
{
    float x[5 * 3];
    for (int i = 0; i < 15; i++)
        x[i] = (float)(i * i % 7) + (float)i;
    float c[6 * 3];
    struct knn__kmeans_options o = KNN__KMEANS_OPTIONS_INIT;
    knn_error_clear();
    ASSERT_ERR(KNN_EINVAL, knn__kmeans_train(c, &o, 5, 3, x, 6));
    ASSERT_CONTAINS(knn_error_message(), "5 training points for 6 centroids");
    ASSERT_ERR(KNN_EINVAL, knn__kmeans_train(c, &o, 5, 3, x, 0));
    ASSERT_OK(knn__kmeans_train(c, &o, 5, 3, x, 5));
    for (int p = 0; p < 5; p++) {
        int found = 0;
        for (int j = 0; j < 5; j++)
            found += memcmp(c + j * 3, x + p * 3, 3 * sizeof(float)) == 0;
        ASSERT_INT_EQ(1, found);
    }
    return 0;
}

/*
 * 200 copies of the origin and one point far away, k = 2: the random start takes two copies of
 * the origin, so one cluster is empty after the first assignment. Splitting it (FAISS's rule) is
 * the only way the far point gets a centroid of its own.
 */
int test_kmeans_splits_empty_clusters(void)
{
    size_t n = 201, d = 3;
    float *x = calloc(n * d, sizeof(float));
    x[200 * 3 + 0] = 10.0f;
    x[200 * 3 + 1] = 3.0f;
    x[200 * 3 + 2] = -1.0f;
    float c[2 * 3];
    for (int paths = 0; paths < 2; paths++) {
        struct knn__kmeans_options o = KNN__KMEANS_OPTIONS_INIT;
        o.no_bounds = paths;
        o.max_points_per_centroid = 0;
        ASSERT_OK(knn__kmeans_train(c, &o, n, d, x, 2));
        int far = fabsf(c[0] - 10.0f) < 1e-3f ? 0 : 1;
        ASSERT_NEAR(10.0, c[far * 3 + 0], 1e-3);
        ASSERT_NEAR(3.0, c[far * 3 + 1], 1e-3);
        ASSERT_NEAR(-1.0, c[far * 3 + 2], 1e-3);
        for (int j = 0; j < 3; j++)
            ASSERT_NEAR(0.0, c[(1 - far) * 3 + j], 1e-3);
    }
    free(x);
    return 0;
}

/* Subsampling: at most k * max_points_per_centroid points are used (a fixed point shows it). */
int test_kmeans_subsamples_as_faiss(void)
{
    size_t n = 10000, d = 2, k = 4;
    float *x = malloc(n * d * sizeof(float));
    struct iu_rng r = {3};
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)iu_uniform(&r);
    float c1[8], c2[8];
    struct knn__kmeans_options o = KNN__KMEANS_OPTIONS_INIT;
    o.max_points_per_centroid = 10; /* 40 of the 10000 points */
    ASSERT_OK(knn__kmeans_train(c1, &o, n, d, x, k));
    o.max_points_per_centroid = 0;
    ASSERT_OK(knn__kmeans_train(c2, &o, n, d, x, k));
    /* With all points the centroids sit near the quadrant centres; with 40 they are noisier. */
    double e1 = s_objective(x, n, d, c1, k), e2 = s_objective(x, n, d, c2, k);
    ASSERT_TRUE(e2 <= e1 * (1 + 1e-6));
    free(x);
    return 0;
}

int test_kmeans_inner_product_is_spherical(void)
{
    size_t n = 2000, d = 12, k = 10;
    float *x = malloc(n * d * sizeof(float)), *c = malloc(k * d * sizeof(float));
    iu_clustered(x, n, d, 10, 3.0, 14);
    struct knn__kmeans_options o = KNN__KMEANS_OPTIONS_INIT;
    o.ip = 1;
    ASSERT_OK(knn__kmeans_train(c, &o, n, d, x, k));
    for (size_t j = 0; j < k; j++)
        ASSERT_NEAR(1.0, sqrt(knn__dot(c + j * d, c + j * d, d)), 1e-4);
    free(x);
    free(c);
    return 0;
}

/* ---- product quantizer ---- */

int test_pq_encode_is_nearest_centroid(void)
{
    size_t n = 3000, d = 24, m = 6;
    float *x = malloc(n * d * sizeof(float)), *rec = malloc(n * d * sizeof(float));
    uint8_t *codes = malloc(n * m);
    iu_clustered(x, n, d, 40, 2.0, 15);
    struct knn__pq pq;
    ASSERT_OK(knn__pq_init(&pq, d, m));
    ASSERT_OK(knn__pq_train(&pq, n, x, 9, 2));
    knn__pq_encode(&pq, n, x, codes);
    size_t dsub = d / m;
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; s < m; s++) {
            size_t best;
            double d1, d2;
            s_naive_nearest2(pq.centroids + s * 256 * dsub, 256, dsub, x + i * d + s * dsub, &best, &d1, &d2);
            if (codes[i * m + s] != best && !(d2 - d1 < 1e-5 * (1 + d1)))
                FAIL("vector %zu sub-quantizer %zu: code %u, nearest %zu", i, s, codes[i * m + s], best);
        }
    }
    /* Decoding gives the centroids back; reconstruction error is far below the data's spread. */
    knn__pq_decode(&pq, n, codes, rec);
    double err = 0, var = 0, mean[24] = {0};
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += x[i * d + j] / (double)n;
    for (size_t i = 0; i < n * d; i++) {
        err += ((double)x[i] - rec[i]) * ((double)x[i] - rec[i]);
        var += ((double)x[i] - mean[i % d]) * ((double)x[i] - mean[i % d]);
    }
    ASSERT_TRUE(err < 0.25 * var);
    for (size_t s = 0; s < m; s++)
        ASSERT_MEM_EQ(
            pq.centroids + (s * 256 + codes[s]) * dsub, dsub * sizeof(float), rec + s * dsub, dsub * sizeof(float));
    knn__pq_clean_up(&pq);
    free(x);
    free(rec);
    free(codes);
    return 0;
}

int test_pq_tables_match_naive(void)
{
    size_t n = 600, d = 16, m = 4, dsub = 4;
    float *x = malloc(n * d * sizeof(float));
    iu_clustered(x, n, d, 10, 2.0, 16);
    struct knn__pq pq;
    ASSERT_OK(knn__pq_init(&pq, d, m));
    ASSERT_OK(knn__pq_train(&pq, n, x, 1, 1));
    float dot[4 * 256], l2[4 * 256];
    const float *q = x + 17 * d;
    knn__pq_dot_table(&pq, q, dot);
    knn__pq_l2_table(&pq, q, l2);
    for (size_t s = 0; s < m; s++) {
        for (size_t j = 0; j < 256; j++) {
            const float *c = pq.centroids + (s * 256 + j) * dsub;
            double ip = 0, dd = 0;
            for (size_t t = 0; t < dsub; t++) {
                ip += (double)q[s * dsub + t] * c[t];
                dd += ((double)q[s * dsub + t] - c[t]) * ((double)q[s * dsub + t] - c[t]);
            }
            ASSERT_NEAR(ip, dot[s * 256 + j], 1e-4 * (1 + fabs(ip)));
            ASSERT_NEAR(dd, l2[s * 256 + j], 1e-4 * (1 + dd));
        }
    }
    knn__pq_clean_up(&pq);
    free(x);
    return 0;
}

int test_pq_rejects_bad_shapes(void)
{
    struct knn__pq pq;
    ASSERT_ERR(KNN_EINVAL, knn__pq_init(&pq, 10, 3));
    ASSERT_CONTAINS(knn_error_message(), "must divide the dimension 10");
    ASSERT_OK(knn__pq_init(&pq, 8, 2));
    float x[255 * 8] = {0};
    ASSERT_ERR(KNN_EINVAL, knn__pq_train(&pq, 255, x, 1, 1));
    ASSERT_CONTAINS(knn_error_message(), "255 training vectors, need at least 256");
    knn__pq_clean_up(&pq);
    return 0;
}
