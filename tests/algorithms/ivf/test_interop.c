/*
 * FAISS's index file format, both ways, with Debian's python3-faiss (faiss_interop.py):
 * - FAISS reads every index file we write and returns our neighbours (same ids up to ties,
 *   distances within float tolerance, the same nprobe);
 * - we read every index FAISS writes (trained by FAISS) and return FAISS's neighbours, and
 *   writing it back gives FAISS's bytes exactly.
 * Skipped when python3-faiss is not installed.
 */
#include "knn_test.h"

#include "ivf_test_util.h"

#include "knn/algorithms/index.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Run faiss_interop.py <verb> <dir>: its exit status (103 = FAISS is missing). */
static int s_python(const char *verb, const char *dir)
{
    const char *py = getenv("KNN_PYTHON");
    char script[4096], cmd[8192];
    knn_test_source_path(script, sizeof(script), "tests/algorithms/ivf/faiss_interop.py");
    snprintf(cmd, sizeof(cmd), "'%s' '%s' %s '%s'", py ? py : "/usr/bin/python3", script, verb, dir);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static int s_write_raw(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    fclose(f);
    return w == len ? 0 : -1;
}

struct s_case {
    const char *name, *kind;
    enum knn_index_type type;
    enum knn_metric metric;
    size_t nlist, m, nprobe;
};

int test_faiss_reads_our_indexes(void)
{
    static const struct s_case cases[] = {
        {"flat_l2", "flat", KNN_INDEX_FLAT, KNN_METRIC_L2, 0, 0, 0},
        {"flat_ip", "flat", KNN_INDEX_FLAT, KNN_METRIC_INNER_PRODUCT, 0, 0, 0},
        {"ivfflat_l2", "ivfflat", KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 50, 0, 6},
        {"ivfflat_ip", "ivfflat", KNN_INDEX_IVFFLAT, KNN_METRIC_INNER_PRODUCT, 50, 0, 6},
        {"ivfflat_sparse", "ivfflat", KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 200, 0, 3},
        {"ivfpq", "ivfpq", KNN_INDEX_IVFPQ, KNN_METRIC_L2, 30, 6, 5},
        {"ivfsq8_l2", "ivfsq8", KNN_INDEX_IVFSQ8, KNN_METRIC_L2, 50, 0, 6},
        {"ivfsq8_ip", "ivfsq8", KNN_INDEX_IVFSQ8, KNN_METRIC_INNER_PRODUCT, 50, 0, 6},
        /* HNSW: m is M, nprobe is efSearch */
        {"hnsw_l2", "hnsw", KNN_INDEX_HNSW, KNN_METRIC_L2, 0, 16, 24},
        {"hnsw_ip", "hnsw", KNN_INDEX_HNSW, KNN_METRIC_INNER_PRODUCT, 0, 12, 40},
    };
    const size_t d = 24, n = 4000, nq = 60, k = 10;
    char dir[1024];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    float *x = malloc(n * d * sizeof(float)), *q = malloc(nq * d * sizeof(float));
    iu_clustered(x, n, d, 40, 2.0, 201);
    struct iu_rng r = {202};
    for (size_t i = 0; i < nq * d; i++)
        q[i] = x[(i / d) * 37 % n * d + i % d] + (float)(0.2 * iu_gauss(&r));
    ASSERT_INT_EQ(0, s_write_raw(dir, "queries.f32", q, nq * d * sizeof(float)));
    float *dist = malloc(nq * k * sizeof(float));
    int64_t *ids = malloc(nq * k * sizeof(int64_t));
    char path[4096], json[8192];
    size_t jl = (size_t)snprintf(json, sizeof(json), "[");
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct s_case *t = &cases[c];
        struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
        o.type = t->type;
        o.metric = t->metric;
        o.dim = d;
        o.nlist = t->nlist;
        if (t->type == KNN_INDEX_HNSW) {
            o.hnsw_m = t->m;
            o.ef_search = t->nprobe;
        } else {
            o.pq_m = t->m;
            o.nprobe = t->nprobe ? t->nprobe : 1;
        }
        struct knn_index *index;
        size_t nadd = strcmp(t->name, "ivfflat_sparse") == 0 ? 30 : n;
        ASSERT_OK(knn_index_new(&index, &o));
        ASSERT_OK(knn_index_train(index, n, x));
        ASSERT_OK(knn_index_add(index, nadd, x));
        snprintf(path, sizeof(path), "%s/%s.faissindex", dir, t->name);
        ASSERT_OK(knn_index_write_faiss_file(index, path));
        ASSERT_OK(knn_index_search(index, nq, q, k, dist, ids, NULL));
        snprintf(path, sizeof(path), "%s.ids", t->name);
        ASSERT_INT_EQ(0, s_write_raw(dir, path, ids, nq * k * sizeof(int64_t)));
        snprintf(path, sizeof(path), "%s.dist", t->name);
        ASSERT_INT_EQ(0, s_write_raw(dir, path, dist, nq * k * sizeof(float)));
        jl += (size_t)snprintf(
            json + jl, sizeof(json) - jl,
            "%s{\"name\": \"%s\", \"kind\": \"%s\", \"d\": %zu, \"nq\": %zu, \"k\": %zu, "
            "\"nprobe\": %zu, \"ntotal\": %zu}",
            c ? ", " : "", t->name, t->kind, d, nq, k, t->nprobe, nadd);
        knn_index_destroy(index);
    }
    jl += (size_t)snprintf(json + jl, sizeof(json) - jl, "]\n");
    ASSERT_INT_EQ(0, s_write_raw(dir, "cases.json", json, jl));
    int st = s_python("check", dir);
    free(x);
    free(q);
    free(dist);
    free(ids);
    if (st == KNN_TEST_SKIP) {
        knn_test_rmtree(dir);
        SKIP("python3-faiss is not installed");
    }
    ASSERT_INT_EQ(0, st);
    knn_test_rmtree(dir);
    return 0;
}

static int
s_same(const char *name, const float *d1, const int64_t *i1, const float *d2, const int64_t *i2, size_t nq, size_t k)
{
    for (size_t i = 0; i < nq * k; i++) {
        double tol = isfinite(d1[i]) ? 1e-4 * (1 + fabs(d1[i])) : 0;
        if (!(d1[i] == d2[i] || fabs((double)d1[i] - d2[i]) <= tol)) {
            fprintf(stderr, "%s: query %zu rank %zu: distance %.9g, FAISS %.9g\n", name, i / k, i % k, d2[i], d1[i]);
            return 0;
        }
        if (i1[i] != i2[i]) {
            size_t q = i / k;
            int found = 0;
            for (size_t j = 0; j < k; j++)
                found |= i2[q * k + j] == i1[i] && fabs((double)d2[q * k + j] - d1[i]) <= tol;
            if (!found) {
                fprintf(
                    stderr, "%s: query %zu rank %zu: id %lld, FAISS %lld\n", name, q, i % k, (long long)i2[i],
                    (long long)i1[i]);
                return 0;
            }
        }
    }
    return 1;
}

int test_we_read_faiss_indexes(void)
{
    static const struct {
        const char *name;
        enum knn_index_type type;
        enum knn_metric metric;
        size_t nprobe;
    } cases[] = {
        {"flat_l2", KNN_INDEX_FLAT, KNN_METRIC_L2, 1},
        {"flat_ip", KNN_INDEX_FLAT, KNN_METRIC_INNER_PRODUCT, 1},
        {"ivfflat_l2", KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 5},
        {"ivfflat_ip", KNN_INDEX_IVFFLAT, KNN_METRIC_INNER_PRODUCT, 5},
        {"ivfflat_ip_l2q", KNN_INDEX_IVFFLAT, KNN_METRIC_INNER_PRODUCT, 5},
        {"ivfflat_sparse", KNN_INDEX_IVFFLAT, KNN_METRIC_L2, 64},
        {"ivfpq", KNN_INDEX_IVFPQ, KNN_METRIC_L2, 4},
        {"ivfpq_m8", KNN_INDEX_IVFPQ, KNN_METRIC_L2, 20},
        {"ivfpq_nores", KNN_INDEX_IVFPQ, KNN_METRIC_L2, 6},
        {"ivfsq8_l2", KNN_INDEX_IVFSQ8, KNN_METRIC_L2, 5},
        {"ivfsq8_ip", KNN_INDEX_IVFSQ8, KNN_METRIC_INNER_PRODUCT, 5},
        {"ivfsq8_nores", KNN_INDEX_IVFSQ8, KNN_METRIC_L2, 5},
        {"hnsw_l2", KNN_INDEX_HNSW, KNN_METRIC_L2, 20},
        {"hnsw_ip", KNN_INDEX_HNSW, KNN_METRIC_INNER_PRODUCT, 20},
    };
    const size_t d = 16, nq = 50, k = 10;
    char dir[1024], path[4096];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    int st = s_python("make", dir);
    if (st == KNN_TEST_SKIP) {
        knn_test_rmtree(dir);
        SKIP("python3-faiss is not installed");
    }
    ASSERT_INT_EQ(0, st);

    uint8_t *raw;
    size_t len;
    snprintf(path, sizeof(path), "%s/queries.f32", dir);
    ASSERT_OK(knn_test_read_file(path, &raw, &len));
    ASSERT_UINT_EQ(nq * d * sizeof(float), len);
    float *q = (float *)raw;
    float dist[50 * 10];
    int64_t ids[50 * 10];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct knn_index *index;
        snprintf(path, sizeof(path), "%s/%s.faissindex", dir, cases[c].name);
        ASSERT_OK(knn_index_read_faiss_file(&index, path));
        const struct knn_index_options *o = knn_index_get_options(index);
        ASSERT_INT_EQ(cases[c].type, o->type);
        ASSERT_INT_EQ(cases[c].metric, o->metric);
        ASSERT_UINT_EQ(d, o->dim);
        if (o->type == KNN_INDEX_HNSW)
            ASSERT_UINT_EQ(cases[c].nprobe, o->ef_search);
        else if (o->type != KNN_INDEX_FLAT)
            ASSERT_UINT_EQ(cases[c].nprobe, o->nprobe);
        ASSERT_OK(knn_index_search(index, nq, q, k, dist, ids, NULL));

        uint8_t *fd, *fi;
        size_t fdl, fil;
        snprintf(path, sizeof(path), "%s/%s.dist", dir, cases[c].name);
        ASSERT_OK(knn_test_read_file(path, &fd, &fdl));
        snprintf(path, sizeof(path), "%s/%s.ids", dir, cases[c].name);
        ASSERT_OK(knn_test_read_file(path, &fi, &fil));
        ASSERT_UINT_EQ(nq * k * 4, fdl);
        ASSERT_UINT_EQ(nq * k * 8, fil);
        int same = s_same(cases[c].name, (const float *)fd, (const int64_t *)fi, dist, ids, nq, k);
        knn_free(fd);
        knn_free(fi);
        ASSERT_TRUE(same);

        /* Writing it back gives FAISS's own bytes. */
        uint8_t *orig;
        size_t olen;
        snprintf(path, sizeof(path), "%s/%s.faissindex", dir, cases[c].name);
        ASSERT_OK(knn_test_read_file(path, &orig, &olen));
        struct iu_mem m = {0};
        ASSERT_OK(knn_index_write_faiss(index, iu_mem_write, &m));
        ASSERT_MEM_EQ(orig, olen, m.data, m.len);
        knn_free(orig);
        knn_free(m.data);
        knn_index_destroy(index);
    }
    knn_free(raw);
    knn_test_rmtree(dir);
    return 0;
}
