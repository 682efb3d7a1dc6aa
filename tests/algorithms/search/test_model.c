/*
 * The model pipeline and prediction (model.c): the tie rule of spec §2.7, k clamping, the regressor
 * mean, the verbose conventions of spec §3.3 per metric, the §2.6 padding rule, and rebuilding the
 * identical transform (no train/serve skew). Expected values are computed here independently.
 */
#include "knn_test.h"
#include "test_util.h"

#include "model_impl.h"

#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int s_build(
    struct knn_model **out, size_t feature_dim, size_t k, enum knn_predictor pred, enum knn_model_metric metric,
    size_t n, const float *x, const float *labels)
{
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = feature_dim;
    cfg.k = k;
    cfg.predictor = pred;
    cfg.metric = metric;
    return knn_model_build(out, &cfg, n, x, labels);
}

int test_model_vote_tie_rule(void)
{
    /* 1-D points and labels; queries chosen so that two labels tie on count. */
    float x[] = {1, 2, 3, 4, -3, 10, 11};
    float y[] = {5, 3, 3, 5, 7, 9, 2};
    struct knn_model *m = NULL;
    ASSERT_OK(s_build(&m, 1, 4, KNN_PREDICTOR_CLASSIFIER, KNN_MODEL_METRIC_L2, 7, x, y));
    struct knn_predictions p;
    /* q=0.4: neighbours 1 (5), 2 (3), 3 (3), -3 (7): 3 wins 2-1-1 */
    /* q=1.6: neighbours 2 (3), 1 (5), 3 (3), 4 (5)... distances .16 .36 1.96 5.76: 3 and 5 tie 2-2, the
     * nearest occurrence is label 3's (0.16): 3 */
    /* q=1.4: 1 (5) .16, 2 (3) .36, 3 (3) 2.56, 4 (5) 6.76: tie 2-2, nearest is label 5's: 5 (a smallest-label
     * rule would say 3) */
    float q[] = {0.4f, 1.6f, 1.4f};
    ASSERT_OK(knn_model_predict(m, 3, q, NULL, &p));
    ASSERT_UINT_EQ(3, p.n);
    ASSERT_UINT_EQ(4, p.k);
    ASSERT_TRUE(p.labels == NULL && p.distances == NULL);
    ASSERT_NEAR(3, p.predicted[0], 0);
    ASSERT_NEAR(3, p.predicted[1], 0);
    ASSERT_NEAR(5, p.predicted[2], 0);
    knn_predictions_clean_up(&p);
    knn_model_destroy(m);

    /* Nearest occurrences at the same distance: the smaller label value wins, whatever the ids. */
    float x2[] = {-1, 1, 5};
    float y2[] = {7, 2, 9};
    ASSERT_OK(s_build(&m, 1, 2, KNN_PREDICTOR_CLASSIFIER, KNN_MODEL_METRIC_L2, 3, x2, y2));
    float q2[] = {0};
    struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
    o.verbose = 1;
    ASSERT_OK(knn_model_predict(m, 1, q2, &o, &p));
    ASSERT_NEAR(7, p.labels[0], 0); /* id 0 first among the equal distances ... */
    ASSERT_NEAR(2, p.labels[1], 0);
    ASSERT_NEAR(2, p.predicted[0], 0); /* ... but the vote falls back on the smaller label */
    knn_predictions_clean_up(&p);
    knn_model_destroy(m);
    return 0;
}

struct s_log_capture {
    int warnings;
    char last[512];
};

static void s_sink(void *user, enum knn_log_level level, const char *line)
{
    struct s_log_capture *c = user;
    if (level == KNN_LOG_WARN) {
        c->warnings++;
        snprintf(c->last, sizeof(c->last), "%s", line);
    }
}

int test_model_k_clamped_with_warning(void)
{
    float x[] = {0, 0, 1, 1, 5, 5};
    float y[] = {1, 1, 2};
    struct s_log_capture cap = {0, ""};
    knn_log_set_sink(s_sink, &cap);
    struct knn_model *m = NULL;
    int rc = s_build(&m, 2, 10, KNN_PREDICTOR_CLASSIFIER, KNN_MODEL_METRIC_L2, 3, x, y);
    struct knn_predictions p = {0};
    struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
    o.verbose = 1;
    float q[] = {4, 4, 0.2f, 0.1f};
    if (rc == 0)
        rc = knn_model_predict(m, 2, q, &o, &p);
    knn_log_set_sink(NULL, NULL);
    ASSERT_OK(rc);
    ASSERT_UINT_EQ(3, p.k);
    ASSERT_TRUE(cap.warnings >= 1);
    ASSERT_CONTAINS(cap.last, "k=10");
    /* all three points vote: label 1 twice */
    ASSERT_NEAR(1, p.predicted[0], 0);
    ASSERT_NEAR(1, p.predicted[1], 0);
    /* q0 = (4,4): (5,5) at 2, (1,1) at 18, (0,0) at 32 */
    ASSERT_NEAR(2, p.distances[0], 0);
    ASSERT_NEAR(18, p.distances[1], 0);
    ASSERT_NEAR(32, p.distances[2], 0);
    ASSERT_NEAR(2, p.labels[0], 0);
    knn_predictions_clean_up(&p);
    knn_model_destroy(m);
    return 0;
}

int test_model_regressor_mean(void)
{
    struct tu_rng r = {21};
    size_t n = 500, d = 6, k = 7, nq = 20;
    float *x = knn_malloc_array(n * d, sizeof(float));
    float *y = knn_malloc_array(n, sizeof(float));
    float *q = knn_malloc_array(nq * d, sizeof(float));
    tu_fill_gauss(&r, x, n * d);
    tu_fill_gauss(&r, q, nq * d);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(tu_uniform(&r) * 100);
    struct knn_model *m = NULL;
    ASSERT_OK(s_build(&m, d, k, KNN_PREDICTOR_REGRESSOR, KNN_MODEL_METRIC_L2, n, x, y));
    struct knn_predictions p;
    ASSERT_OK(knn_model_predict(m, nq, q, NULL, &p));
    double *rd = malloc(nq * k * sizeof(double));
    int64_t *ri = malloc(nq * k * sizeof(int64_t));
    tu_brute_force(q, nq, x, n, d, 0, k, rd, ri);
    for (size_t i = 0; i < nq; i++) {
        double s = 0;
        for (size_t j = 0; j < k; j++)
            s += y[ri[i * k + j]];
        ASSERT_NEAR(s / k, p.predicted[i], 1e-4);
    }
    free(rd);
    free(ri);
    knn_predictions_clean_up(&p);
    knn_model_destroy(m);
    knn_free(x);
    knn_free(y);
    knn_free(q);
    return 0;
}

int test_model_verbose_conventions_per_metric(void)
{
    struct tu_rng r = {22};
    size_t n = 300, d = 5, k = 6, nq = 8;
    float *x = knn_malloc_array(n * d, sizeof(float));
    float *y = knn_malloc_array(n, sizeof(float));
    float *q = knn_malloc_array(nq * d, sizeof(float));
    float *xn = knn_malloc_array(n * d, sizeof(float));
    float *qn = knn_malloc_array(nq * d, sizeof(float));
    tu_fill_gauss(&r, x, n * d);
    tu_fill_gauss(&r, q, nq * d);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)i; /* label = row: the verbose labels name the neighbours */
    /* normalized copies, for the COSINE reference */
    memcpy(xn, x, n * d * sizeof(float));
    memcpy(qn, q, nq * d * sizeof(float));
    for (size_t i = 0; i < n + nq; i++) {
        float *v = i < n ? xn + i * d : qn + (i - n) * d;
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += (double)v[j] * v[j];
        for (size_t j = 0; j < d; j++)
            v[j] = (float)(v[j] / sqrt(s));
    }
    double *rd = malloc(nq * k * sizeof(double));
    int64_t *ri = malloc(nq * k * sizeof(int64_t));
    enum knn_model_metric metrics[] = {KNN_MODEL_METRIC_L2, KNN_MODEL_METRIC_INNER_PRODUCT, KNN_MODEL_METRIC_COSINE};
    for (int mi = 0; mi < 3; mi++) {
        struct knn_model *m = NULL;
        ASSERT_OK(s_build(&m, d, k, KNN_PREDICTOR_CLASSIFIER, metrics[mi], n, x, y));
        struct knn_predictions p;
        struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
        o.verbose = 1;
        ASSERT_OK(knn_model_predict(m, nq, q, &o, &p));
        int cosine = metrics[mi] == KNN_MODEL_METRIC_COSINE, l2 = metrics[mi] == KNN_MODEL_METRIC_L2;
        tu_brute_force(cosine ? qn : q, nq, cosine ? xn : x, n, d, !l2, k, rd, ri);
        for (size_t i = 0; i < nq * k; i++) {
            /* L2: squared distances, ascending; IP / COSINE: similarities, descending */
            ASSERT_NEAR(rd[i], p.distances[i], 1e-4 * (1 + fabs(rd[i])));
            ASSERT_NEAR((double)ri[i], p.labels[i], 0);
            if (i % k > 0) {
                if (l2)
                    ASSERT_TRUE(p.distances[i] >= p.distances[i - 1]);
                else
                    ASSERT_TRUE(p.distances[i] <= p.distances[i - 1]);
            }
            if (cosine)
                ASSERT_TRUE(p.distances[i] <= 1.0001f && p.distances[i] >= -1.0001f);
        }
        knn_predictions_clean_up(&p);
        knn_model_destroy(m);
    }
    free(rd);
    free(ri);
    knn_free(x);
    knn_free(y);
    knn_free(q);
    knn_free(xn);
    knn_free(qn);
    return 0;
}

int test_model_rejects_bad_input(void)
{
    float x[] = {1, 2, 3, 4};
    float y[] = {0, 1};
    struct knn_model *m = NULL;
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = 2;
    cfg.k = 1;
    cfg.index_type = KNN_INDEX_IVFPQ;
    cfg.metric = KNN_MODEL_METRIC_COSINE;
    cfg.pq_m = 2;
    ASSERT_ERR(KNN_ECONFIG, knn_model_build(&m, &cfg, 2, x, y));
    ASSERT_CONTAINS(knn_error_message(), "COSINE");
    cfg = (struct knn_model_config)KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = 2;
    ASSERT_ERR(KNN_ECONFIG, knn_model_build(&m, &cfg, 2, x, y)); /* k = 0 */
    cfg.k = 1;
    ASSERT_ERR(KNN_EINVAL, knn_model_build(&m, &cfg, 0, x, y));
    x[3] = NAN;
    ASSERT_ERR(KNN_ERANGE, knn_model_build(&m, &cfg, 2, x, y));
    ASSERT_CONTAINS(knn_error_message(), "row 1, feature 1");
    x[3] = 4;
    ASSERT_OK(knn_model_build(&m, &cfg, 2, x, y));
    struct knn_predictions p;
    float q[] = {INFINITY, 0};
    ASSERT_ERR(KNN_ERANGE, knn_model_predict(m, 1, q, NULL, &p));
    ASSERT_TRUE(p.predicted == NULL);
    knn_model_destroy(m);
    return 0;
}

int test_model_names_parse(void)
{
    enum knn_predictor pr;
    enum knn_model_metric me;
    enum knn_index_type it;
    ASSERT_OK(knn_predictor_parse(&pr, "regressor"));
    ASSERT_INT_EQ(KNN_PREDICTOR_REGRESSOR, pr);
    ASSERT_STR_EQ("classifier", knn_predictor_name(KNN_PREDICTOR_CLASSIFIER));
    ASSERT_ERR(KNN_EINVAL, knn_predictor_parse(&pr, "Classifier"));
    ASSERT_OK(knn_model_metric_parse(&me, "INNER_PRODUCT"));
    ASSERT_INT_EQ(KNN_MODEL_METRIC_INNER_PRODUCT, me);
    ASSERT_ERR(KNN_EINVAL, knn_model_metric_parse(&me, "cosine"));
    ASSERT_STR_EQ("COSINE", knn_model_metric_name(KNN_MODEL_METRIC_COSINE));
    ASSERT_OK(knn_index_type_parse(&it, "faiss.IVFPQ"));
    ASSERT_INT_EQ(KNN_INDEX_IVFPQ, it);
    ASSERT_ERR(KNN_EINVAL, knn_index_type_parse(&it, "faiss.HNSW"));
    ASSERT_STR_EQ("faiss.IVFFlat", knn_index_type_name(KNN_INDEX_IVFFLAT));
    return 0;
}

int test_model_pq_padding_rule(void)
{
    /* Spec §2.6: without reduction, rows are zero-padded to a multiple of pq_m; with reduction the
     * target is raised instead. */
    struct tu_rng r = {23};
    size_t n = 600, d = 10;
    float *x = knn_malloc_array(n * d, sizeof(float));
    float *y = knn_malloc_array(n, sizeof(float));
    tu_fill_gauss(&r, x, n * d);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(i % 3);
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = d;
    cfg.k = 3;
    cfg.index_type = KNN_INDEX_IVFPQ;
    cfg.pq_m = 4;
    cfg.nlist = 4;
    struct knn_model *m = NULL;
    ASSERT_OK(knn_model_build(&m, &cfg, n, x, y));
    ASSERT_UINT_EQ(12, m->effective_dim);
    ASSERT_UINT_EQ(12, knn_index_get_options(knn_model_index(m))->dim);
    /* the transform pads with zeros */
    float *t = knn_malloc_array(12, sizeof(float));
    ASSERT_OK(knn__model_transform(m, 1, x, t));
    for (size_t j = 0; j < 12; j++)
        ASSERT_NEAR(j < d ? x[j] : 0.0f, t[j], 0);
    knn_model_destroy(m);

    cfg.dimred = KNN_DIMRED_SIGN;
    cfg.dimred_target = 6;
    ASSERT_OK(knn_model_build(&m, &cfg, n, x, y));
    ASSERT_UINT_EQ(8, knn_model_get_config(m)->dimred_target);
    ASSERT_UINT_EQ(8, m->effective_dim);
    ASSERT_UINT_EQ(8, knn_index_get_options(knn_model_index(m))->dim);
    struct knn_predictions p;
    ASSERT_OK(knn_model_predict(m, 5, x, NULL, &p));
    knn_predictions_clean_up(&p);
    knn_model_destroy(m);
    knn_free(t);
    knn_free(x);
    knn_free(y);
    return 0;
}

int test_model_transform_rebuilt_identically(void)
{
    /* Train/serve skew: the same config on the same data gives a bit-identical transform and
     * identical predictions; after save + load too. */
    struct tu_rng r = {24};
    size_t n = 400, d = 40, nq = 25;
    float *x = knn_malloc_array(n * d, sizeof(float));
    float *y = knn_malloc_array(n, sizeof(float));
    float *q = knn_malloc_array(nq * d, sizeof(float));
    tu_fill_gauss(&r, x, n * d);
    tu_fill_gauss(&r, q, nq * d);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)(i % 5);
    char dir[512];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    enum knn_dimred_type types[] = {KNN_DIMRED_SIGN, KNN_DIMRED_FJLT};
    for (int ti = 0; ti < 2; ti++) {
        struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
        cfg.feature_dim = d;
        cfg.k = 4;
        cfg.metric = KNN_MODEL_METRIC_COSINE;
        cfg.dimred = types[ti];
        cfg.dimred_target = 12;
        cfg.dimred_seed = 99;
        struct knn_model *a = NULL, *b = NULL, *c = NULL;
        ASSERT_OK(knn_model_build(&a, &cfg, n, x, y));
        ASSERT_OK(knn_model_build(&b, &cfg, n, x, y));
        ASSERT_OK(knn_model_save(a, dir));
        ASSERT_OK(knn_model_load(&c, dir));
        ASSERT_INT_EQ(types[ti], knn_model_get_config(c)->dimred);
        ASSERT_UINT_EQ(99, knn_model_get_config(c)->dimred_seed);
        float ta[12], tb[12], tc[12];
        ASSERT_OK(knn__model_transform(a, 1, q, ta));
        ASSERT_OK(knn__model_transform(b, 1, q, tb));
        ASSERT_OK(knn__model_transform(c, 1, q, tc));
        ASSERT_MEM_EQ(ta, sizeof(ta), tb, sizeof(tb));
        ASSERT_MEM_EQ(ta, sizeof(ta), tc, sizeof(tc));
        struct knn_predictions pa, pc;
        struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
        o.verbose = 1;
        ASSERT_OK(knn_model_predict(a, nq, q, &o, &pa));
        ASSERT_OK(knn_model_predict(c, nq, q, &o, &pc));
        ASSERT_MEM_EQ(pa.predicted, nq * sizeof(float), pc.predicted, nq * sizeof(float));
        ASSERT_MEM_EQ(pa.labels, nq * pa.k * sizeof(float), pc.labels, nq * pc.k * sizeof(float));
        ASSERT_MEM_EQ(pa.distances, nq * pa.k * sizeof(float), pc.distances, nq * pc.k * sizeof(float));
        knn_predictions_clean_up(&pa);
        knn_predictions_clean_up(&pc);
        knn_model_destroy(a);
        knn_model_destroy(b);
        knn_model_destroy(c);
    }
    knn_test_rmtree(dir);
    knn_free(x);
    knn_free(y);
    knn_free(q);
    return 0;
}

/* Copies of x and labels in knn_malloc memory, for knn_model_build_consume to take. */
static int s_owned_copy(float **x_out, float **l_out, const float *x, const float *labels, size_t n, size_t dim)
{
    *x_out = knn_malloc_array(n * dim, sizeof(float));
    *l_out = knn_malloc_array(n, sizeof(float));
    if (!*x_out || !*l_out) {
        knn_free(*x_out);
        knn_free(*l_out);
        return KNN_ENOMEM;
    }
    memcpy(*x_out, x, n * dim * sizeof(float));
    memcpy(*l_out, labels, n * sizeof(float));
    return 0;
}

/*
 * knn_model_build_consume (the training job's path: the sample handed over, not copied) builds the
 * same model as knn_model_build, for every index type, metric and transform: same predictions,
 * labels and distances. More rows than one consume chunk, so the page-releasing adds are crossed.
 */
int test_model_build_consume_matches_build(void)
{
    enum { N = 9000, D = 16, Q = 50, K = 7 }; /* 9000: three chunks of S_CHUNK_ROWS (4096) */
    struct {
        enum knn_index_type type;
        enum knn_model_metric metric;
        enum knn_dimred_type dimred;
        size_t pq_m;
    } cases[] = {
        {KNN_INDEX_FLAT, KNN_MODEL_METRIC_L2, KNN_DIMRED_NONE, 0},
        {KNN_INDEX_FLAT, KNN_MODEL_METRIC_INNER_PRODUCT, KNN_DIMRED_NONE, 0},
        {KNN_INDEX_FLAT, KNN_MODEL_METRIC_COSINE, KNN_DIMRED_NONE, 0},
        {KNN_INDEX_FLAT, KNN_MODEL_METRIC_L2, KNN_DIMRED_SIGN, 0},
        {KNN_INDEX_IVFFLAT, KNN_MODEL_METRIC_L2, KNN_DIMRED_NONE, 0},
        {KNN_INDEX_IVFFLAT, KNN_MODEL_METRIC_COSINE, KNN_DIMRED_NONE, 0},
        {KNN_INDEX_IVFPQ, KNN_MODEL_METRIC_L2, KNN_DIMRED_NONE, 4},
        {KNN_INDEX_IVFPQ, KNN_MODEL_METRIC_L2, KNN_DIMRED_FJLT, 3}, /* target raised to a multiple of 3 */
    };
    struct tu_rng rng = {77};
    float *x = knn_malloc_array((size_t)N * D, sizeof(float));
    float *labels = knn_malloc_array(N, sizeof(float));
    float *q = knn_malloc_array((size_t)Q * D, sizeof(float));
    ASSERT_TRUE(x && labels && q);
    tu_fill_gauss(&rng, x, (size_t)N * D);
    tu_fill_gauss(&rng, q, (size_t)Q * D);
    for (size_t i = 0; i < N; i++)
        labels[i] = (float)tu_int(&rng, 0, 9);

    int failed = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]) && !failed; c++) {
        struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
        cfg.feature_dim = D;
        cfg.k = K;
        cfg.index_type = cases[c].type;
        cfg.metric = cases[c].metric;
        cfg.dimred = cases[c].dimred;
        cfg.dimred_target = cases[c].dimred ? 10 : 0;
        cfg.pq_m = cases[c].pq_m;
        cfg.nlist = 32;
        struct knn_model *a = NULL, *b = NULL;
        struct knn_predictions pa = {0}, pb = {0};
        struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
        po.verbose = 1;
        float *ox, *ol;
        if (knn_model_build(&a, &cfg, N, x, labels) != 0 || s_owned_copy(&ox, &ol, x, labels, N, D) != 0 ||
            knn_model_build_consume(&b, &cfg, N, ox, ol) != 0 || knn_model_predict(a, Q, q, &po, &pa) != 0 ||
            knn_model_predict(b, Q, q, &po, &pb) != 0) {
            knn_test_fail_at(__FILE__, __LINE__, "case %zu: %s", c, knn_error_message());
            failed = 1;
        } else if (pa.k != pb.k || memcmp(pa.predicted, pb.predicted, Q * sizeof(float)) != 0 ||
                   memcmp(pa.labels, pb.labels, Q * pa.k * sizeof(float)) != 0 ||
                   memcmp(pa.distances, pb.distances, Q * pa.k * sizeof(float)) != 0 ||
                   knn_model_ntotal(a) != N || knn_model_ntotal(b) != N) {
            knn_test_fail_at(__FILE__, __LINE__, "case %zu: the consumed build answers differently", c);
            failed = 1;
        }
        knn_predictions_clean_up(&pa);
        knn_predictions_clean_up(&pb);
        knn_model_destroy(a);
        knn_model_destroy(b);
    }
    /* The caller's arrays of knn_model_build are untouched (it only reads them). */
    struct tu_rng again = {77};
    float first;
    tu_fill_gauss(&again, &first, 1);
    ASSERT_TRUE(x[0] == first);

    /* On failure the consumed arrays are freed too (the driver's leak check sees a miss). */
    float *ox, *ol;
    ASSERT_OK(s_owned_copy(&ox, &ol, x, labels, N, D));
    ox[5 * D + 3] = NAN;
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = D;
    cfg.k = K;
    struct knn_model *m = NULL;
    ASSERT_ERR(KNN_ERANGE, knn_model_build_consume(&m, &cfg, N, ox, ol));
    ASSERT_CONTAINS(knn_error_message(), "row 5, feature 3");
    ASSERT_TRUE(m == NULL);
    knn_free(x);
    knn_free(labels);
    knn_free(q);
    return failed ? KNN_TEST_FAIL : 0;
}
