/*
 * bench_ivf: our IVFFlat / IVFPQ on the anchor data sets (the same .npy files faiss_anchor.py
 * reads), printing one JSON line per measurement so bench/algorithms/ivf/compare.py can put them
 * beside FAISS's.
 *
 *   bench_ivf --base B.npy --query Q.npy --gt G.npy --index ivfflat|ivfpq|ivfsq8|hnsw
 *             [--metric l2|ip|cos] [--nlist N] [--m M] [--nprobe 1,8,32] [--threads T] [--repeats R]
 *             [--k 10] [--hnsw-m 32] [--efc 40] [--recall-target R]
 *
 * For hnsw the --nprobe list is the efSearch values. --recall-target also times what a training
 * job adds for recall: the exact search of min(1000, 1%) held-out rows and the tuning of nprobe
 * (efSearch) to R (recall.h). "index_bytes" is the size of the FAISS file of the index.
 *
 * The base is read, trained on and added as one "sample" (what knn_model_build receives). Timings
 * are wall-clock; QPS is the best of R batch searches of all queries. "peak_rss_mb" is
 * getrusage's ru_maxrss: the sample + the index + fixed buffers (the queries are small).
 */
#include "knn/algorithms/index.h"
#include "knn/algorithms/recall.h"
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

static double s_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* A .npy file of float32 ('<f4') or int64 ('<i8'), C order, 1 or 2 dimensions. */
static void *s_load_npy(const char *path, const char *descr, size_t elem, size_t *rows, size_t *cols)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        exit(2);
    }
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "%s: not a .npy file\n", path);
        exit(2);
    }
    size_t hlen = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) {
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2)
            exit(2);
        hlen |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    char *hdr = calloc(1, hlen + 1);
    if (fread(hdr, 1, hlen, f) != hlen)
        exit(2);
    if (!strstr(hdr, descr) || strstr(hdr, "'fortran_order': True")) {
        fprintf(stderr, "%s: expected %s, C order: %s\n", path, descr, hdr);
        exit(2);
    }
    const char *sh = strstr(hdr, "'shape': (");
    if (!sh)
        exit(2);
    sh += 10;
    *rows = strtoull(sh, (char **)&sh, 10);
    *cols = 1;
    if (*sh == ',' && sh[1] == ' ' && sh[2] != ')')
        *cols = strtoull(sh + 2, NULL, 10);
    free(hdr);
    void *data = malloc(*rows * *cols * elem);
    if (fread(data, elem, *rows * *cols, f) != *rows * *cols) {
        fprintf(stderr, "%s: short\n", path);
        exit(2);
    }
    fclose(f);
    return data;
}

static void s_normalize(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * x[i * d + j];
        if (s > 0) {
            float inv = (float)(1.0 / sqrt(s));
            for (size_t j = 0; j < d; j++)
                x[i * d + j] *= inv;
        }
    }
}

static int s_count(void *user, const void *data, size_t len)
{
    (void)data;
    *(uint64_t *)user += len;
    return 0;
}

static void s_die(int rc, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", what, knn_error_name(rc), knn_error_message());
    exit(1);
}

int main(int argc, char **argv)
{
    const char *base = NULL, *query = NULL, *gt = NULL, *kind = "ivfflat", *metric = "l2", *nprobes = "1,8,32";
    const char *name = "external", *cache = NULL;
    size_t nlist = 0, m = 16, threads = 1, repeats = 3, k = 10, hnsw_m = 32, efc = 40;
    double recall_target = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--base"))
            base = v;
        else if (!strcmp(a, "--query"))
            query = v;
        else if (!strcmp(a, "--gt"))
            gt = v;
        else if (!strcmp(a, "--index"))
            kind = v;
        else if (!strcmp(a, "--metric"))
            metric = v;
        else if (!strcmp(a, "--nlist"))
            nlist = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--m"))
            m = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--nprobe"))
            nprobes = v;
        else if (!strcmp(a, "--threads"))
            threads = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--repeats"))
            repeats = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--k"))
            k = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--hnsw-m"))
            hnsw_m = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--efc"))
            efc = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--recall-target"))
            recall_target = strtod(v, NULL);
        else if (!strcmp(a, "--name"))
            name = v;
        else if (!strcmp(a, "--cache"))
            cache = v; /* index file: loaded if present, else written */
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (!base || !query || !gt) {
        fprintf(stderr, "usage: %s --base B.npy --query Q.npy --gt G.npy [--index ivfflat|ivfpq] ...\n", argv[0]);
        return 2;
    }
    size_t n, d, nq, dq, ngt, kgt;
    float *xb = s_load_npy(base, "'<f4'", 4, &n, &d);
    float *xq = s_load_npy(query, "'<f4'", 4, &nq, &dq);
    int64_t *gti = s_load_npy(gt, "'<i8'", 8, &ngt, &kgt);
    if (dq != d || ngt != nq || kgt < k) {
        fprintf(stderr, "shapes disagree\n");
        return 2;
    }
    double rss_data = s_rss_mb();
    int cos = !strcmp(metric, "cos");
    if (!nlist)
        nlist = (size_t)llround(sqrt((double)n));

    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = !strcmp(kind, "ivfpq")    ? KNN_INDEX_IVFPQ
             : !strcmp(kind, "ivfsq8") ? KNN_INDEX_IVFSQ8
             : !strcmp(kind, "hnsw")   ? KNN_INDEX_HNSW
                                       : KNN_INDEX_IVFFLAT;
    o.hnsw_m = hnsw_m;
    o.ef_construction = efc;
    int hnsw = o.type == KNN_INDEX_HNSW;
    o.metric = !strcmp(metric, "l2") ? KNN_METRIC_L2 : KNN_METRIC_INNER_PRODUCT;
    o.dim = d;
    o.nlist = nlist;
    o.pq_m = m;
    o.threads = threads;
    struct knn_index *index;
    int rc;
    double t_train = 0, t_add = 0, c_train = 0, c_add = 0;
    FILE *cf = cache ? fopen(cache, "rb") : NULL;
    if (cf) {
        fclose(cf);
        if ((rc = knn_index_read_faiss_file(&index, cache)))
            s_die(rc, "read");
        o = *knn_index_get_options(index);
        o.threads = threads;
        nlist = o.nlist;
    } else {
        if ((rc = knn_index_new(&index, &o)))
            s_die(rc, "new");
        double t0 = s_now();
        if (cos)
            s_normalize(xb, n, d);
        double t_norm = s_now() - t0;
        t0 = s_now();
        double c0 = s_cpu();
        if ((rc = knn_index_train(index, n, xb)))
            s_die(rc, "train");
        t_train = s_now() - t0;
        c_train = s_cpu() - c0;
        t0 = s_now();
        c0 = s_cpu();
        if ((rc = knn_index_add(index, n, xb)))
            s_die(rc, "add");
        t_add = s_now() - t0 + t_norm;
        c_add = s_cpu() - c0;
        if (cache && (rc = knn_index_write_faiss_file(index, cache)))
            s_die(rc, "write");
    }
    double rss_built = s_rss_mb();
    uint64_t index_bytes = 0;
    if ((rc = knn_index_write_faiss(index, s_count, &index_bytes)))
        s_die(rc, "size");
    if (recall_target > 0) {
        /* What a job adds: the held-out rows' exact answers (before the rows are added, in a job),
         * then the tuning; the base here is the already-normalized sample. */
        double t0 = s_now();
        struct knn_recall_truth *truth;
        if ((rc = knn_recall_truth_new(&truth, xb, n, d, o.metric, knn_recall_default_queries(n), k, 7, threads)))
            s_die(rc, "recall truth");
        double t_truth = s_now() - t0;
        t0 = s_now();
        struct knn_recall_tuning tu;
        if ((rc = knn_recall_tune(&tu, index, truth, recall_target)))
            s_die(rc, "recall tune");
        double t_tune = s_now() - t0;
        printf("{\"impl\": \"knn\", \"dataset\": \"%s\", \"index\": \"%s\", \"recall_target\": %.3f, "
               "\"queries\": %zu, \"truth_s\": %.4f, \"tune_s\": %.4f, \"setting\": %zu, \"recall\": %.4f, "
               "\"evaluated\": %zu, \"build_s\": %.4f}\n",
               name, kind, recall_target, knn_recall_truth_queries(truth), t_truth, t_tune, tu.setting, tu.recall,
               tu.evaluated, t_train + t_add);
        fflush(stdout);
        knn_recall_truth_destroy(truth);
    }

    float *dist = malloc(nq * k * sizeof(float)), *qn = malloc(nq * d * sizeof(float));
    int64_t *lab = malloc(nq * k * sizeof(int64_t));
    for (const char *tok = nprobes; *tok; tok += *tok == ',') {
        struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
        char *next;
        if (hnsw)
            sp.ef_search = strtoull(tok, &next, 10);
        else
            sp.nprobe = strtoull(tok, &next, 10);
        sp.threads = threads;
        tok = next;
        double best = 1e30, best_cpu = 1e30;
        for (size_t r = 0; r < repeats; r++) {
            double s0 = s_now(), cs0 = s_cpu();
            memcpy(qn, xq, nq * d * sizeof(float));
            if (cos)
                s_normalize(qn, nq, d);
            if ((rc = knn_index_search(index, nq, qn, k, dist, lab, &sp)))
                s_die(rc, "search");
            double s = s_now() - s0, cs = s_cpu() - cs0;
            if (s < best)
                best = s;
            if (cs < best_cpu)
                best_cpu = cs;
        }
        size_t hits = 0;
        for (size_t q = 0; q < nq; q++)
            for (size_t a = 0; a < k; a++)
                for (size_t b = 0; b < k; b++)
                    hits += lab[q * k + a] == gti[q * kgt + b];
        /* one query per call, within a time budget */
        size_t ns = 0;
        double s0 = s_now();
        while (ns < nq && (ns < 10 || s_now() - s0 < 1.0)) {
            if ((rc = knn_index_search(index, 1, qn + ns * d, k, dist, lab, &sp)))
                s_die(rc, "search");
            ns++;
        }
        double single_qps = ns / (s_now() - s0);
        printf(
            "{\"impl\": \"knn\", \"dataset\": \"%s\", \"index\": \"%s\", \"metric\": \"%s\", \"N\": %zu, \"d\": %zu, "
            "\"nlist\": %zu, \"m\": %zu, \"threads\": %zu, \"nprobe\": %zu, \"train_s\": %.4f, \"add_s\": %.4f, "
            "\"train_cpu_s\": %.4f, \"add_cpu_s\": %.4f, \"qps\": %.1f, \"qps_cpu\": %.1f, \"single_qps\": %.1f, "
            "\"recall_at_10\": %.4f, \"rss_data_mb\": %.1f, "
            "\"rss_built_mb\": %.1f, \"peak_rss_mb\": %.1f, \"ef_search\": %zu, \"index_bytes\": %llu}\n",
            name, kind, metric, n, d, nlist, o.type == KNN_INDEX_IVFPQ ? m : 0, threads, sp.nprobe, t_train, t_add,
            c_train, c_add, nq / best, nq / best_cpu, single_qps, (double)hits / (nq * k), rss_data, rss_built,
            s_rss_mb(), sp.ef_search, (unsigned long long)index_bytes);
        fflush(stdout);
    }
    knn_index_destroy(index);
    free(xb);
    free(xq);
    free(gti);
    free(dist);
    free(qn);
    free(lab);
    return 0;
}
