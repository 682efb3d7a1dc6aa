/*
 * serve_bench: the in-process side of the endpoint benchmark (bench/serve/run.py).
 *
 *   serve_bench build OUT_DIR BASE.npy K           a Flat L2 classifier model over BASE, label = row id
 *   serve_bench inproc MODEL_DIR QUERY.npy ROWS SECONDS THREADS
 *       knn_model_predict on batches of ROWS queries (verbose, as the endpoint is asked) for
 *       SECONDS, THREADS search threads (0 = all cores); prints rows/s and batch latency.
 *
 * .npy files are read as written by numpy.save: a header, then little-endian float32, C order.
 */
#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"

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
    if (argc == 7 && strcmp(argv[1], "inproc") == 0) {
        struct knn_model *m = NULL;
        if (knn_model_load(&m, argv[2])) {
            fprintf(stderr, "serve_bench inproc: %s\n", knn_error_message());
            return 1;
        }
        size_t nq, d;
        float *q = s_load_npy(argv[3], &nq, &d);
        size_t rows = strtoul(argv[4], NULL, 10);
        double seconds = strtod(argv[5], NULL);
        struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
        po.verbose = 1;
        po.threads = strtoul(argv[6], NULL, 10);
        if (rows == 0 || rows > nq)
            return 2;
        size_t cap = 1 << 20, nb = 0, total = 0;
        double *lat = knn_malloc_array(cap, sizeof(double));
        uint64_t start = knn_clock_monotonic_ns();
        while (knn_clock_seconds_since(start) < seconds && nb < cap) {
            struct knn_predictions p;
            uint64_t t0 = knn_clock_monotonic_ns();
            if (knn_model_predict(m, rows, q + (nb * rows % (nq - rows + 1)) * d, &po, &p)) {
                fprintf(stderr, "predict: %s\n", knn_error_message());
                return 1;
            }
            lat[nb++] = knn_clock_seconds_since(t0) * 1e3;
            total += rows;
            knn_predictions_clean_up(&p);
        }
        double el = knn_clock_seconds_since(start);
        qsort(lat, nb, sizeof(double), s_cmp_double);
        printf("rows_per_s=%.1f batches=%zu p50_ms=%.3f p99_ms=%.3f\n", total / el, nb, lat[nb / 2],
               lat[(size_t)(nb * 0.99)]);
        knn_free(lat);
        knn_free(q);
        knn_model_destroy(m);
        return 0;
    }
    fprintf(stderr, "usage: serve_bench build OUT_DIR BASE.npy K | inproc MODEL_DIR QUERY.npy ROWS SECONDS THREADS\n");
    return 2;
}
