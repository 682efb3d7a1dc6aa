/*
 * Dimension reduction (dimred.c): distances preserved within the Johnson-Lindenstrauss bound, the
 * same (type, dims, seed) rebuilding a bit-identical transform, different seeds differing, bad
 * arguments refused. (The construction itself is checked against an independent numpy
 * implementation in test_python.c.)
 */
#include "knn_test.h"
#include "test_util.h"

#include "knn/algorithms/dimred.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * The JL distortion bound: with t >= 4 ln(n) / (eps^2/2 - eps^3/3) a random projection keeps every
 * pairwise squared distance of n points within (1 +- eps) (Dasgupta & Gupta). Solve for eps.
 */
static double s_jl_eps(size_t n, size_t t)
{
    double need = 4.0 * log((double)n) / (double)t, lo = 0, hi = 1;
    for (int i = 0; i < 60; i++) {
        double e = (lo + hi) / 2;
        if (e * e / 2 - e * e * e / 3 < need)
            lo = e;
        else
            hi = e;
    }
    return hi;
}

static int s_check_jl(enum knn_dimred_type type, size_t d, size_t t, uint64_t seed)
{
    struct tu_rng r = {seed};
    size_t n = 40;
    float *x = knn_malloc_array(n * d, sizeof(float));
    float *y = knn_malloc_array(n * t, sizeof(float));
    tu_fill_gauss(&r, x, n * d);
    struct knn_dimred *tr = NULL;
    ASSERT_OK(knn_dimred_new(&tr, type, d, t, seed));
    ASSERT_UINT_EQ(d, knn_dimred_input_dim(tr));
    ASSERT_UINT_EQ(t, knn_dimred_output_dim(tr));
    ASSERT_OK(knn_dimred_apply(tr, n, x, y));
    double eps = s_jl_eps(n, t), worst = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            double a = 0, b = 0;
            for (size_t c = 0; c < d; c++)
                a += ((double)x[i * d + c] - x[j * d + c]) * ((double)x[i * d + c] - x[j * d + c]);
            for (size_t c = 0; c < t; c++)
                b += ((double)y[i * t + c] - y[j * t + c]) * ((double)y[i * t + c] - y[j * t + c]);
            double dev = fabs(b / a - 1);
            if (dev > worst)
                worst = dev;
        }
    }
    knn_dimred_destroy(tr);
    knn_free(x);
    knn_free(y);
    if (worst > eps)
        FAIL("%s %zu -> %zu: distortion %.3f beyond the JL bound %.3f", knn_dimred_type_name(type), d, t, worst, eps);
    /* and not trivially: a real projection distorts a little */
    ASSERT_TRUE(worst > 1e-3);
    return 0;
}

int test_dimred_preserves_distances_within_jl_bound(void)
{
    int rc = 0;
    rc = rc ? rc : s_check_jl(KNN_DIMRED_SIGN, 500, 200, 1);
    rc = rc ? rc : s_check_jl(KNN_DIMRED_SIGN, 64, 48, 2);
    rc = rc ? rc : s_check_jl(KNN_DIMRED_FJLT, 512, 200, 3);
    rc = rc ? rc : s_check_jl(KNN_DIMRED_FJLT, 300, 150, 4); /* padded to 512 */
    return rc;
}

int test_dimred_same_seed_same_transform(void)
{
    struct tu_rng r = {5};
    size_t n = 300, d = 70, t = 20; /* enough rows that apply splits them over the threads */
    float *x = knn_malloc_array(n * d, sizeof(float));
    float *y1 = knn_malloc_array(n * t, sizeof(float));
    float *y2 = knn_malloc_array(n * t, sizeof(float));
    float *y3 = knn_malloc_array(n * t, sizeof(float));
    tu_fill_gauss(&r, x, n * d);
    enum knn_dimred_type types[] = {KNN_DIMRED_SIGN, KNN_DIMRED_FJLT};
    for (int i = 0; i < 2; i++) {
        struct knn_dimred *a = NULL, *b = NULL, *c = NULL;
        ASSERT_OK(knn_dimred_new(&a, types[i], d, t, 3));
        ASSERT_OK(knn_dimred_new(&b, types[i], d, t, 3));
        ASSERT_OK(knn_dimred_new(&c, types[i], d, t, 4));
        ASSERT_OK(knn_dimred_apply(a, n, x, y1));
        ASSERT_OK(knn_dimred_apply(b, n, x, y2));
        ASSERT_OK(knn_dimred_apply(c, n, x, y3));
        ASSERT_MEM_EQ(y1, n * t * sizeof(float), y2, n * t * sizeof(float));
        ASSERT_TRUE(memcmp(y1, y3, n * t * sizeof(float)) != 0);
        /* one row at a time gives the same rows as the batch */
        for (size_t row = 0; row < n; row += 97) {
            float one[20];
            ASSERT_OK(knn_dimred_apply(a, 1, x + row * d, one));
            for (size_t j = 0; j < t; j++)
                ASSERT_NEAR(y1[row * t + j], one[j], 1e-5 * (1 + fabs(one[j])));
        }
        knn_dimred_destroy(a);
        knn_dimred_destroy(b);
        knn_dimred_destroy(c);
    }
    knn_free(x);
    knn_free(y1);
    knn_free(y2);
    knn_free(y3);
    return 0;
}

int test_dimred_rejects_bad_arguments(void)
{
    struct knn_dimred *t = NULL;
    ASSERT_ERR(KNN_EINVAL, knn_dimred_new(&t, KNN_DIMRED_NONE, 10, 5, 1));
    ASSERT_ERR(KNN_EINVAL, knn_dimred_new(&t, KNN_DIMRED_SIGN, 0, 5, 1));
    ASSERT_ERR(KNN_EINVAL, knn_dimred_new(&t, KNN_DIMRED_SIGN, 10, 0, 1));
    ASSERT_ERR(KNN_EINVAL, knn_dimred_new(&t, KNN_DIMRED_FJLT, 10, 17, 1)); /* > padded 16 */
    ASSERT_ERR(KNN_ETOOBIG, knn_dimred_new(&t, KNN_DIMRED_SIGN, (size_t)1 << 40, (size_t)1 << 30, 1));
    ASSERT_TRUE(t == NULL);
    enum knn_dimred_type ty;
    ASSERT_OK(knn_dimred_type_parse(&ty, "fjlt"));
    ASSERT_INT_EQ(KNN_DIMRED_FJLT, ty);
    ASSERT_OK(knn_dimred_type_parse(&ty, "none"));
    ASSERT_INT_EQ(KNN_DIMRED_NONE, ty);
    ASSERT_ERR(KNN_EINVAL, knn_dimred_type_parse(&ty, "pca"));
    ASSERT_STR_EQ("sign", knn_dimred_type_name(KNN_DIMRED_SIGN));
    return 0;
}
