/*
 * bench_flat: our Flat index on the anchor data sets (the .npy files faiss_anchor.py writes and
 * reads), measured the way faiss_anchor.py measures FAISS, one JSON line per run, so
 * flat_vs_faiss.py can put the two side by side:
 *
 *   bench_flat --base B.npy --query Q.npy [--gt G.npy] [--metric l2|ip|cos] [--threads T]
 *              [--k 10] [--repeats 5] [--single 1000] [--single-budget 2] [--name NAME]
 *
 * - batch: all queries (1,000) in one knn_index_search call; best and median of --repeats runs
 *   after one warm-up call (for cos the query normalization is inside the timing, as in FAISS's);
 * - single: one query per call, the first --single queries or until --single-budget seconds;
 * - recall@10 of the batch results against the anchor's exact ground truth (--gt), if given.
 * cpu_s_best is the process CPU time of the best batch run (less sensitive to a busy machine).
 * Threads: --threads workers (the library's own), OpenBLAS single-threaded inside them.
 */
#include "knn/algorithms/index.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double s_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double s_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void s_die(const char *what, const char *why)
{
    fprintf(stderr, "bench_flat: %s: %s\n", what, why);
    exit(2);
}

/* A .npy file: magic, version, header dict, then raw little-endian data ('<f4' or '<i8', C order). */
static void *s_load_npy(const char *path, const char *descr, size_t elem, size_t *rows, size_t *cols)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        s_die(path, "cannot open");
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        s_die(path, "not a .npy file");
    size_t hlen = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) {
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2)
            s_die(path, "truncated header");
        hlen |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    char *hdr = calloc(1, hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen)
        s_die(path, "truncated header");
    if (!strstr(hdr, descr) || strstr(hdr, "'fortran_order': True"))
        s_die(path, "unexpected dtype or order");
    const char *sh = strstr(hdr, "'shape': (");
    if (!sh)
        s_die(path, "no shape");
    char *end;
    *rows = strtoull(sh + 10, &end, 10);
    *cols = 1;
    if (end[0] == ',' && end[1] == ' ' && end[2] != ')')
        *cols = strtoull(end + 2, NULL, 10);
    free(hdr);
    void *data = malloc(*rows * *cols * elem);
    if (!data || fread(data, elem, *rows * *cols, f) != *rows * *cols)
        s_die(path, "short data");
    fclose(f);
    return data;
}

static void s_normalize(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * x[i * d + j];
        float inv = s > 0 ? (float)(1 / sqrt(s)) : 0;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] *= inv;
    }
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void s_check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "bench_flat: %s: %s (%s)\n", what, knn_error_message(), knn_error_name(rc));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *base_path = NULL, *query_path = NULL, *gt_path = NULL, *metric = "l2", *name = "data";
    size_t threads = 1, k = 10, repeats = 5, single_max = 1000;
    double single_budget = 2.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            s_die(a, "missing value");
        if (strcmp(a, "--base") == 0)
            base_path = v;
        else if (strcmp(a, "--query") == 0)
            query_path = v;
        else if (strcmp(a, "--gt") == 0)
            gt_path = v;
        else if (strcmp(a, "--metric") == 0)
            metric = v;
        else if (strcmp(a, "--name") == 0)
            name = v;
        else if (strcmp(a, "--threads") == 0)
            threads = strtoul(v, NULL, 10);
        else if (strcmp(a, "--k") == 0)
            k = strtoul(v, NULL, 10);
        else if (strcmp(a, "--repeats") == 0)
            repeats = strtoul(v, NULL, 10);
        else if (strcmp(a, "--single") == 0)
            single_max = strtoul(v, NULL, 10);
        else if (strcmp(a, "--single-budget") == 0)
            single_budget = strtod(v, NULL);
        else
            s_die(a, "unknown option");
        i++;
    }
    if (!base_path || !query_path)
        s_die("usage", "bench_flat --base B.npy --query Q.npy [--gt G.npy] [--metric l2|ip|cos] [--threads T]");
    if (repeats == 0)
        repeats = 1;
    int cos = strcmp(metric, "cos") == 0, ip = cos || strcmp(metric, "ip") == 0;

    size_t nb, d, nq, dq;
    float *xb = s_load_npy(base_path, "'<f4'", 4, &nb, &d);
    float *xq = s_load_npy(query_path, "'<f4'", 4, &nq, &dq);
    if (dq != d)
        s_die(query_path, "dimension differs from the base");
    double rss_loaded = s_peak_rss_mb();

    struct knn_index_options opts = KNN_INDEX_OPTIONS_INIT;
    opts.metric = ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2;
    opts.dim = d;
    opts.threads = threads;
    struct knn_index *index = NULL;
    double t0 = s_now();
    if (cos)
        s_normalize(xb, nb, d); /* as FAISS's cosine row: normalize_L2 before add (counted in add_s) */
    s_check(knn_index_new(&index, &opts), "index");
    s_check(knn_index_add(index, nb, xb), "add");
    double add_s = s_now() - t0;

    float *q = malloc(nq * d * sizeof(float));
    float *dist = malloc(nq * k * sizeof(float));
    int64_t *ids = malloc(nq * k * sizeof(int64_t));
    double *times = malloc(repeats * sizeof(double));
    double *cpu = malloc(repeats * sizeof(double));

    memcpy(q, xq, 16 * d * sizeof(float)); /* warm-up, as the anchor does */
    if (cos)
        s_normalize(q, 16, d);
    s_check(knn_index_search(index, nq < 16 ? nq : 16, q, k, dist, ids, NULL), "search");
    for (size_t r = 0; r < repeats; r++) {
        t0 = s_now();
        double c0 = s_cpu();
        memcpy(q, xq, nq * d * sizeof(float));
        if (cos)
            s_normalize(q, nq, d);
        s_check(knn_index_search(index, nq, q, k, dist, ids, NULL), "search");
        times[r] = s_now() - t0;
        cpu[r] = s_cpu() - c0;
    }
    qsort(times, repeats, sizeof(double), s_cmp_double);
    qsort(cpu, repeats, sizeof(double), s_cmp_double);
    double best = times[0], median = times[repeats / 2];

    double recall = -1;
    if (gt_path) {
        size_t gn, gk;
        int64_t *gt = s_load_npy(gt_path, "'<i8'", 8, &gn, &gk);
        if (gn == nq && gk >= 10 && k >= 10) {
            size_t hits = 0;
            for (size_t i = 0; i < nq; i++)
                for (size_t a = 0; a < 10; a++)
                    for (size_t b = 0; b < 10; b++)
                        hits += ids[i * k + a] == gt[i * gk + b];
            recall = (double)hits / (double)(nq * 10);
        }
        free(gt);
    }

    /* One query per call. */
    memcpy(q, xq, nq * d * sizeof(float));
    if (cos)
        s_normalize(q, nq, d);
    size_t ns = 0;
    t0 = s_now();
    while (ns < single_max && ns < nq) {
        s_check(knn_index_search(index, 1, q + ns * d, k, dist, ids, NULL), "single search");
        ns++;
        if (ns >= 10 && s_now() - t0 > single_budget)
            break;
    }
    double single_s = s_now() - t0;

    printf(
        "{\"name\": \"%s\", \"index\": \"Flat\", \"metric\": \"%s\", \"N\": %zu, \"d\": %zu, \"nq\": %zu, \"k\": %zu, "
        "\"threads\": %zu, \"add_s\": %.4f, \"qps_best\": %.1f, \"qps_median\": %.1f, \"single_qps\": %.1f, "
        "\"cpu_s_best\": %.4f, \"single_n\": %zu, \"recall_at_10\": %.4f, \"peak_rss_mb\": %.1f, "
        "\"rss_after_load_mb\": %.1f}\n",
        name, metric, nb, d, nq, k, threads, add_s, nq / best, nq / median, ns / single_s, cpu[0], ns, recall,
        s_peak_rss_mb(), rss_loaded);

    knn_index_destroy(index);
    free(xb);
    free(xq);
    free(q);
    free(dist);
    free(ids);
    free(times);
    free(cpu);
    return 0;
}
