/*
 * The endpoint predicts on libmicrohttpd's worker threads, which the algorithms library did not
 * create. OpenBLAS's OpenMP build follows each calling thread's OpenMP thread count, so every
 * thread that searches must have it at 1, or each sgemm starts an OpenMP team that spin-waits
 * against the other workers (perf once showed 84% of the server in libgomp). This checks it on a
 * fresh thread, after a search that goes through BLAS (d = 64 and enough rows for the tiled path).
 */
#include "knn_test.h"

#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <pthread.h>
#include <unistd.h>

int omp_get_max_threads(void); /* libgomp, linked through OpenBLAS's OpenMP build */

struct s_ctx {
    const struct knn_model *model;
    const float *q;
    size_t nq;
    int rc;
    int omp_threads;
};

static void *s_worker(void *arg)
{
    struct s_ctx *c = arg;
    struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
    struct knn_predictions p;
    po.threads = 1;
    po.verbose = 1;
    c->rc = knn_model_predict(c->model, c->nq, c->q, &po, &p);
    if (c->rc == 0)
        knn_predictions_clean_up(&p);
    c->omp_threads = omp_get_max_threads();
    return NULL;
}

int test_blas_single_threaded_in_every_thread(void)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        SKIP("one core: OpenMP would use one thread anyway");
    const size_t n = 4096, d = 64, nq = 256;
    float *x = knn_malloc_array(n * d, sizeof(float)), *labels = knn_malloc_array(n, sizeof(float));
    uint32_t s = 99;
    for (size_t i = 0; i < n * d; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / (float)(1u << 24);
    }
    for (size_t i = 0; i < n; i++)
        labels[i] = (float)(i % 7);
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = d;
    cfg.k = 5;
    struct knn_model *model = NULL;
    ASSERT_OK(knn_model_build(&model, &cfg, n, x, labels));
    for (int round = 0; round < 2; round++) {
        struct s_ctx c = {model, x, nq, -1, -1};
        pthread_t t;
        ASSERT_INT_EQ(0, pthread_create(&t, NULL, s_worker, &c));
        pthread_join(t, NULL);
        ASSERT_OK(c.rc);
        ASSERT_INT_EQ(1, c.omp_threads);
    }
    knn_model_destroy(model);
    knn_free(x);
    knn_free(labels);
    return 0;
}
