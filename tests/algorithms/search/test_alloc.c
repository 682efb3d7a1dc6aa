/*
 * Error paths (curl's torture idea): count the allocations an operation makes, then run it again
 * failing each one in turn. Every run must either succeed or fail with KNN_ENOMEM and a message,
 * and leave no block behind. Single-threaded, so the allocation order is the same every run.
 */
#include "knn_test.h"
#include "test_util.h"

#include "knn/algorithms/model.h"
#include "knn/algorithms/sample.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <string.h>

typedef int(s_op_fn)(void *ctx);

/* Run op with every allocation failing in turn; returns 0 or a test failure. */
static int s_torture(s_op_fn *op, void *ctx, const char *name)
{
    int64_t base = knn_alloc_outstanding();
    knn_alloc_fail_after(0);
    ASSERT_OK(op(ctx)); /* it works when nothing fails ... */
    uint64_t calls = knn_alloc_fail_after(0);
    ASSERT_INT_EQ(base, knn_alloc_outstanding());
    ASSERT_TRUE(calls > 0);
    size_t failed = 0;
    for (uint64_t i = 1; i <= calls; i++) {
        knn_error_clear();
        knn_alloc_fail_after(i);
        int rc = op(ctx);
        knn_alloc_fail_after(0);
        if (rc != 0) {
            failed++;
            if (rc != KNN_ENOMEM)
                FAIL(
                    "%s, allocation %llu failing: returned %d (%s): %s", name, (unsigned long long)i, rc,
                    knn_error_name(rc), knn_error_message());
            ASSERT_TRUE(knn_error_message()[0] != 0);
        }
        if (knn_alloc_outstanding() != base)
            FAIL(
                "%s, allocation %llu failing: %lld blocks leaked", name, (unsigned long long)i,
                (long long)(knn_alloc_outstanding() - base));
    }
    fprintf(stderr, "%s: %llu allocations, %zu failing runs, all clean\n", name, (unsigned long long)calls, failed);
    ASSERT_TRUE(failed > 0); /* ... and failures were seen */
    return 0;
}

struct s_model_ctx {
    size_t n, d;
    float *x, *y;
    enum knn_model_metric metric;
    enum knn_dimred_type dimred;
};

static int s_model_op(void *arg)
{
    struct s_model_ctx *c = arg;
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = c->d;
    cfg.k = 5;
    cfg.metric = c->metric;
    cfg.dimred = c->dimred;
    cfg.dimred_target = c->dimred ? 8 : 0;
    cfg.threads = 1;
    struct knn_model *m = NULL;
    int rc = knn_model_build(&m, &cfg, c->n, c->x, c->y);
    if (rc != 0)
        return rc;
    struct knn_predictions p;
    struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
    o.verbose = 1;
    rc = knn_model_predict(m, 7, c->x, &o, &p);
    knn_predictions_clean_up(&p);
    knn_model_destroy(m);
    return rc;
}

int test_alloc_failures_model(void)
{
    struct tu_rng r = {31};
    struct s_model_ctx c = {300, 12, NULL, NULL, KNN_MODEL_METRIC_L2, KNN_DIMRED_NONE};
    c.x = knn_malloc_array(c.n * c.d, sizeof(float));
    c.y = knn_malloc_array(c.n, sizeof(float));
    tu_fill_gauss(&r, c.x, c.n * c.d);
    for (size_t i = 0; i < c.n; i++)
        c.y[i] = (float)(i % 4);
    int rc = s_torture(s_model_op, &c, "Flat L2");
    c.metric = KNN_MODEL_METRIC_COSINE;
    c.dimred = KNN_DIMRED_FJLT;
    if (rc == 0)
        rc = s_torture(s_model_op, &c, "Flat COSINE + fjlt");
    c.metric = KNN_MODEL_METRIC_INNER_PRODUCT;
    c.dimred = KNN_DIMRED_SIGN;
    if (rc == 0)
        rc = s_torture(s_model_op, &c, "Flat IP + sign");
    knn_free(c.x);
    knn_free(c.y);
    return rc;
}

static int s_reservoir_op(void *arg)
{
    (void)arg;
    float rows[2 * 3000], labels[3000];
    for (int i = 0; i < 3000; i++) {
        rows[2 * i] = (float)i;
        rows[2 * i + 1] = 1;
        labels[i] = (float)i;
    }
    struct knn_reservoir *a = NULL, *b = NULL;
    int rc = knn_reservoir_new(&a, 2000, 2, 1);
    if (rc == 0)
        rc = knn_reservoir_new(&b, 2000, 2, 2);
    if (rc == 0)
        rc = knn_reservoir_add(a, 3000, rows, labels); /* grows its rows twice */
    if (rc == 0)
        rc = knn_reservoir_add(b, 1500, rows, labels);
    if (rc == 0)
        rc = knn_reservoir_merge(b, a);
    knn_reservoir_destroy(a);
    knn_reservoir_destroy(b);
    return rc;
}

int test_alloc_failures_reservoir(void)
{
    return s_torture(s_reservoir_op, NULL, "reservoir");
}
