/*
 * IVF-SQ8 (index_ivf.c + sq.c): codes are FAISS's QT_8bit formula applied to residuals, and a
 * search equals an exact search over the decoded vectors. Expected values are computed here from
 * the formula of faiss/impl/ScalarQuantizer.cpp (1.7.3), in double precision; interop with FAISS
 * itself is in test_interop.c.
 */
#include "knn_test.h"

#include "distances.h"
#include "index_flat.h"
#include "index_ivf.h"
#include "ivf_test_util.h"
#include "sq.h"

#include "knn/algorithms/index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_N 3000
#define S_D 20
#define S_NLIST 30

static int s_build(struct knn_index **out, enum knn_metric metric, float **xout)
{
    float *x = malloc(S_N * S_D * sizeof(float));
    iu_clustered(x, S_N, S_D, 25, 2.0, 77);
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = KNN_INDEX_IVFSQ8;
    o.metric = metric;
    o.dim = S_D;
    o.nlist = S_NLIST;
    o.nprobe = S_NLIST;
    int rc = knn_index_new(out, &o);
    if (rc == 0 && (rc = knn_index_train(*out, S_N, x)) == 0)
        rc = knn_index_add(*out, S_N, x);
    *xout = x;
    return rc;
}

/* Every stored vector decoded by FAISS's formula: centroid + vmin + (code + 0.5) / 255 * vdiff. */
static void s_decode_all(const struct knn_index *index, double *rec)
{
    const struct knn__sq *sq = knn__ivf_sq(index);
    const float *cent = knn__index_flat_vectors(knn__ivf_quantizer(index));
    for (size_t l = 0; l < S_NLIST; l++) {
        size_t size;
        const uint8_t *codes;
        const int64_t *ids;
        knn__ivf_list(index, l, &size, &codes, &ids);
        for (size_t i = 0; i < size; i++)
            for (size_t j = 0; j < S_D; j++)
                rec[ids[i] * S_D + j] = (double)cent[l * S_D + j] + (double)sq->trained[j] +
                                        ((double)codes[i * S_D + j] + 0.5) / 255.0 * (double)sq->trained[S_D + j];
    }
}

int test_ivfsq8_codes_follow_faiss_formula(void)
{
    struct knn_index *index;
    float *x;
    ASSERT_OK(s_build(&index, KNN_METRIC_L2, &x));
    ASSERT_UINT_EQ(S_N, knn_index_ntotal(index));
    ASSERT_UINT_EQ(S_D, knn__ivf_code_size(index));
    const struct knn__sq *sq = knn__ivf_sq(index);
    const float *cent = knn__index_flat_vectors(knn__ivf_quantizer(index));
    size_t total = 0, saturated = 0;
    for (size_t l = 0; l < S_NLIST; l++) {
        size_t size;
        const uint8_t *codes;
        const int64_t *ids;
        knn__ivf_list(index, l, &size, &codes, &ids);
        total += size;
        for (size_t i = 0; i < size; i++) {
            const float *xi = x + ids[i] * S_D;
            /* Stored in its nearest list. */
            double best = INFINITY;
            size_t best_l = 0;
            for (size_t c = 0; c < S_NLIST; c++) {
                double dd = 0;
                for (size_t j = 0; j < S_D; j++)
                    dd += ((double)xi[j] - cent[c * S_D + j]) * ((double)xi[j] - cent[c * S_D + j]);
                if (dd < best) {
                    best = dd;
                    best_l = c;
                }
            }
            ASSERT_UINT_EQ(best_l, l);
            for (size_t j = 0; j < S_D; j++) {
                float r = xi[j] - cent[l * S_D + j], vmin = sq->trained[j], vdiff = sq->trained[S_D + j];
                float v = vdiff != 0 ? (r - vmin) / vdiff : 0;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                ASSERT_UINT_EQ((unsigned)(int)(255 * v), codes[i * S_D + j]);
                saturated += codes[i * S_D + j] == 255;
            }
        }
    }
    ASSERT_UINT_EQ(S_N, total);
    /* Ranges are the training residuals' min and max: the maxima land on 255 (trained on all rows). */
    ASSERT_TRUE(saturated >= S_D);
    knn_index_destroy(index);
    free(x);
    return 0;
}

static int s_exhaustive_is_exact_over_decoded(enum knn_metric metric)
{
    struct knn_index *index;
    float *x;
    ASSERT_OK(s_build(&index, metric, &x));
    double *rec = malloc(S_N * S_D * sizeof(double));
    s_decode_all(index, rec);
    float *recf = malloc(S_N * S_D * sizeof(float));
    for (size_t i = 0; i < S_N * S_D; i++)
        recf[i] = (float)rec[i];
    const size_t nq = 40, k = 10;
    float *q = malloc(nq * S_D * sizeof(float));
    struct iu_rng r = {5};
    for (size_t i = 0; i < nq * S_D; i++)
        q[i] = x[(i / S_D) * 71 % S_N * S_D + i % S_D] + (float)(0.3 * iu_gauss(&r));
    double want_d[40 * 10];
    int64_t want_i[40 * 10], got_i[40 * 10];
    float got_d[40 * 10];
    int ip = metric == KNN_METRIC_INNER_PRODUCT;
    iu_brute_force(q, nq, recf, S_N, S_D, ip, k, want_d, want_i);
    for (int simd = 1; simd >= 0; simd--) {
        knn__simd_set_enabled(simd);
        ASSERT_OK(knn_index_search(index, nq, q, k, got_d, got_i, NULL));
        for (size_t i = 0; i < nq * k; i++) {
            ASSERT_NEAR(want_d[i], got_d[i], 1e-3 * (1 + fabs(want_d[i])));
            if (want_i[i] != got_i[i]) /* only a near-tie may swap */
                ASSERT_NEAR(want_d[i], want_d[(i % k) ? i - 1 : i + 1], 1e-3 * (1 + fabs(want_d[i])));
        }
        /* One query at a time takes the split path. */
        ASSERT_OK(knn_index_search(index, 1, q, k, got_d, got_i, NULL));
        for (size_t i = 0; i < k; i++)
            ASSERT_NEAR(want_d[i], got_d[i], 1e-3 * (1 + fabs(want_d[i])));
    }
    knn__simd_set_enabled(1);
    free(q);
    free(rec);
    free(recf);
    knn_index_destroy(index);
    free(x);
    return 0;
}

int test_ivfsq8_exhaustive_search_is_exact_over_decoded_l2(void)
{
    return s_exhaustive_is_exact_over_decoded(KNN_METRIC_L2);
}

int test_ivfsq8_exhaustive_search_is_exact_over_decoded_ip(void)
{
    return s_exhaustive_is_exact_over_decoded(KNN_METRIC_INNER_PRODUCT);
}

int test_ivfsq8_recall_close_to_ivfflat(void)
{
    struct knn_index *index;
    float *x;
    ASSERT_OK(s_build(&index, KNN_METRIC_L2, &x));
    const size_t nq = 100, k = 10;
    float *q = malloc(nq * S_D * sizeof(float));
    struct iu_rng r = {6};
    for (size_t i = 0; i < nq * S_D; i++)
        q[i] = x[(i / S_D) * 29 % S_N * S_D + i % S_D] + (float)(0.3 * iu_gauss(&r));
    int64_t truth[100 * 10], got[100 * 10];
    float dist[100 * 10];
    iu_brute_force(q, nq, x, S_N, S_D, 0, k, NULL, truth);
    ASSERT_OK(knn_index_search(index, nq, q, k, dist, got, NULL));
    double recall = iu_recall(got, truth, nq, k);
    ASSERT_TRUE(recall >= 0.9);
    free(q);
    knn_index_destroy(index);
    free(x);
    return 0;
}
