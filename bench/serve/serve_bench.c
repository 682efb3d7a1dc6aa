/*
 * serve_bench: the in-process side of the endpoint benchmark (bench/serve/run.py).
 *
 *   serve_bench build OUT_DIR BASE.npy K           a Flat L2 classifier model over BASE, label = row id
 *   serve_bench inproc MODEL_DIR QUERY.npy ROWS SECONDS THREADS CLIENTS
 *       CLIENTS threads each calling knn_model_predict on batches of ROWS queries (verbose, as the
 *       endpoint is asked) for SECONDS, with THREADS search threads per call (0 = all cores), as
 *       the endpoint's HTTP workers do; prints rows/s in all and the per-batch latency.
 *
 * .npy files are read as written by numpy.save: a header, then little-endian float32, C order.
 */
#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *s_load_npy(const char *path, size_t *rows, size_t *cols)
{
    FILE *f = fopen(path, "rb");
    unsigned char head[10];
    if (!f || fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "%s: not a .npy file\n", path);
        exit(2);
    }
    size_t hlen = head[8] | (size_t)head[9] << 8;
    if (head[6] >= 2) {
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2)
            exit(2);
        hlen |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    char *h = knn_malloc(hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen)
        exit(2);
    h[hlen] = '\0';
    const char *shape = strstr(h, "'shape': (");
    if (!strstr(h, "'<f4'") || strstr(h, "'fortran_order': True") || !shape ||
        sscanf(shape, "'shape': (%zu, %zu)", rows, cols) != 2) {
        fprintf(stderr, "%s: expected a C-order float32 matrix, header %s\n", path, h);
        exit(2);
    }
    knn_free(h);
    float *x = knn_malloc_array(*rows * *cols, sizeof(float));
    if (!x || fread(x, sizeof(float), *rows * *cols, f) != *rows * *cols) {
        fprintf(stderr, "%s: short file\n", path);
        exit(2);
    }
    fclose(f);
    return x;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One in-process "client": predicts batches in a loop, like one HTTP worker. */
struct s_client {
    struct knn_model *model;
    float *q;
    size_t nq, d, rows, threads, first;
    double seconds;
    size_t total, nb;
    double *lat;
    int failed;
};

static void *s_client_main(void *arg)
{
    struct s_client *c = arg;
    size_t cap = (size_t)1 << 18;
    struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
    po.verbose = 1;
    po.threads = c->threads;
    c->lat = knn_malloc_array(cap, sizeof(double));
    uint64_t start = knn_clock_monotonic_ns();
    while (knn_clock_seconds_since(start) < c->seconds && c->nb < cap) {
        struct knn_predictions p;
        uint64_t t0 = knn_clock_monotonic_ns();
        size_t at = (c->first + c->nb * c->rows) % (c->nq - c->rows + 1);
        if (knn_model_predict(c->model, c->rows, c->q + at * c->d, &po, &p)) {
            fprintf(stderr, "predict: %s\n", knn_error_message());
            c->failed = 1;
            break;
        }
        c->lat[c->nb++] = knn_clock_seconds_since(t0) * 1e3;
        c->total += c->rows;
        knn_predictions_clean_up(&p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "build") == 0) {
        size_t n, d;
        float *x = s_load_npy(argv[3], &n, &d);
        float *labels = knn_malloc_array(n, sizeof(float));
        for (size_t i = 0; i < n; i++)
            labels[i] = (float)i;
        struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
        cfg.feature_dim = d;
        cfg.k = strtoul(argv[4], NULL, 10);
        struct knn_model *m = NULL;
        if (knn_model_build(&m, &cfg, n, x, labels) || knn_model_save(m, argv[2])) {
            fprintf(stderr, "serve_bench build: %s\n", knn_error_message());
            return 1;
        }
        knn_model_destroy(m);
        knn_free(x);
        knn_free(labels);
        return 0;
    }
    if (argc == 8 && strcmp(argv[1], "inproc") == 0) {
        struct s_client c0;
        memset(&c0, 0, sizeof(c0));
        if (knn_model_load(&c0.model, argv[2])) {
            fprintf(stderr, "serve_bench inproc: %s\n", knn_error_message());
            return 1;
        }
        c0.q = s_load_npy(argv[3], &c0.nq, &c0.d);
        c0.rows = strtoul(argv[4], NULL, 10);
        c0.seconds = strtod(argv[5], NULL);
        c0.threads = strtoul(argv[6], NULL, 10);
        size_t nclients = strtoul(argv[7], NULL, 10);
        if (c0.rows == 0 || c0.rows > c0.nq || nclients == 0 || nclients > 64)
            return 2;
        struct s_client clients[64];
        pthread_t tids[64];
        uint64_t start = knn_clock_monotonic_ns();
        for (size_t i = 0; i < nclients; i++) {
            clients[i] = c0;
            clients[i].first = i * 37;
            pthread_create(&tids[i], NULL, s_client_main, &clients[i]);
        }
        size_t total = 0, nb = 0;
        double *lat = knn_malloc_array((size_t)1 << 20, sizeof(double));
        for (size_t i = 0; i < nclients; i++) {
            pthread_join(tids[i], NULL);
            if (clients[i].failed)
                return 1;
            total += clients[i].total;
            for (size_t j = 0; j < clients[i].nb && nb < ((size_t)1 << 20); j++)
                lat[nb++] = clients[i].lat[j];
            knn_free(clients[i].lat);
        }
        double el = knn_clock_seconds_since(start);
        qsort(lat, nb, sizeof(double), s_cmp_double);
        printf("rows_per_s=%.1f batches=%zu p50_ms=%.3f p99_ms=%.3f\n", total / el, nb, nb ? lat[nb / 2] : 0.0,
               nb ? lat[(size_t)(nb * 0.99)] : 0.0);
        knn_free(lat);
        knn_free(c0.q);
        knn_model_destroy(c0.model);
        return 0;
    }
    fprintf(stderr, "usage: serve_bench build OUT_DIR BASE.npy K | inproc MODEL_DIR QUERY.npy ROWS SECONDS THREADS CLIENTS\n");
    return 2;
}
