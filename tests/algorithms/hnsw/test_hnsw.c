/*
 * HNSW: recall against an independent double-precision brute force (ivf_test_util.c), the graph's
 * invariants (FAISS's layout), the file reader on corrupt graphs, and the model's efSearch tuning.
 */
#include "knn_test.h"

#include "index_hnsw.h"
#include "ivf_test_util.h"

#include "knn/algorithms/index.h"
#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_N 4000
#define S_D 24

static int s_build(struct knn_index **out, enum knn_metric metric, size_t m, size_t ef_search, const float *x)
{
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    o.type = KNN_INDEX_HNSW;
    o.metric = metric;
    o.dim = S_D;
    o.hnsw_m = m;
    o.ef_search = ef_search;
    int rc = knn_index_new(out, &o);
    if (rc == 0)
        rc = knn_index_add(*out, S_N, x);
    return rc;
}

static double s_recall(const struct knn_index *index, const float *x, int ip, size_t ef)
{
    const size_t nq = 200, k = 10;
    float *q = malloc(nq * S_D * sizeof(float)), *dist = malloc(nq * k * sizeof(float));
    int64_t *truth = malloc(nq * k * sizeof(int64_t)), *got = malloc(nq * k * sizeof(int64_t));
    struct iu_rng r = {9};
    for (size_t i = 0; i < nq * S_D; i++)
        q[i] = x[(i / S_D) * 17 % S_N * S_D + i % S_D] + (float)(0.3 * iu_gauss(&r));
    iu_brute_force(q, nq, x, S_N, S_D, ip, k, NULL, truth);
    struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
    sp.ef_search = ef;
    double recall = -1;
    if (knn_index_search(index, nq, q, k, dist, got, &sp) == 0)
        recall = iu_recall(got, truth, nq, k);
    /* Results are best first. */
    for (size_t i = 0; i < nq && recall >= 0; i++)
        for (size_t j = 1; j < k; j++)
            if (ip ? dist[i * k + j] > dist[i * k + j - 1] : dist[i * k + j] < dist[i * k + j - 1])
                recall = -2;
    free(q);
    free(dist);
    free(truth);
    free(got);
    return recall;
}

int test_hnsw_recall_against_brute_force(void)
{
    float *x = malloc(S_N * S_D * sizeof(float));
    iu_clustered(x, S_N, S_D, 30, 2.0, 41);
    for (int ip = 0; ip < 2; ip++) {
        struct knn_index *index;
        ASSERT_OK(s_build(&index, ip ? KNN_METRIC_INNER_PRODUCT : KNN_METRIC_L2, 16, 64, x));
        ASSERT_UINT_EQ(S_N, knn_index_ntotal(index));
        double r16 = s_recall(index, x, ip, 16), r64 = s_recall(index, x, ip, 64);
        ASSERT_TRUE(r64 >= 0.95);
        ASSERT_TRUE(r16 >= 0 && r16 <= r64 + 0.01);
        knn_index_destroy(index);
    }
    free(x);
    return 0;
}

int test_hnsw_wide_beam_is_near_exact(void)
{
    float *x = malloc(S_N * S_D * sizeof(float));
    iu_clustered(x, S_N, S_D, 30, 2.0, 42);
    struct knn_index *index;
    ASSERT_OK(s_build(&index, KNN_METRIC_L2, 8, 16, x));
    /* Not 1: a few of the 2,000 true neighbours tie within float rounding at rank 10. */
    ASSERT_TRUE(s_recall(index, x, 0, 1000) >= 0.995);
    knn_index_destroy(index);
    free(x);
    return 0;
}

int test_hnsw_graph_is_well_formed(void)
{
    float *x = malloc(S_N * S_D * sizeof(float));
    iu_clustered(x, S_N, S_D, 30, 2.0, 43);
    struct knn_index *index;
    ASSERT_OK(s_build(&index, KNN_METRIC_L2, 12, 16, x));
    const struct knn__hnsw_graph *g = knn__hnsw_graph(index);
    /* FAISS's default probabilities for M = 12: layer 0 has 2M slots, the others M. */
    ASSERT_INT_EQ(0, g->cum_nneighbor_per_level[0]);
    ASSERT_INT_EQ(24, g->cum_nneighbor_per_level[1]);
    ASSERT_INT_EQ(36, g->cum_nneighbor_per_level[2]);
    ASSERT_NEAR(1.0 - exp(-log(12.0)), g->assign_probas[0], 1e-6);
    size_t top = 0, empty = 0;
    for (size_t i = 0; i < S_N; i++) {
        ASSERT_TRUE(g->levels[i] >= 1);
        top += g->levels[i] > 1;
        ASSERT_UINT_EQ(g->offsets[i] + (uint64_t)g->cum_nneighbor_per_level[g->levels[i]], g->offsets[i + 1]);
        for (int l = 0; l < g->levels[i]; l++) {
            size_t b = g->offsets[i] + (size_t)g->cum_nneighbor_per_level[l];
            size_t e = g->offsets[i] + (size_t)g->cum_nneighbor_per_level[l + 1];
            int seen_pad = 0;
            for (size_t j = b; j < e; j++) {
                int32_t v = g->neighbors[j];
                if (v < 0) {
                    seen_pad = 1;
                    continue;
                }
                ASSERT_FALSE(seen_pad); /* padding only at the end */
                ASSERT_TRUE(v < S_N && (size_t)v != i);
                ASSERT_TRUE(g->levels[v] > l); /* a neighbour on layer l lives on layer l */
            }
            if (l == 0 && g->neighbors[b] < 0)
                empty++;
        }
    }
    ASSERT_UINT_EQ(0, empty);
    /* Every vector is reachable on layer 0 from the entry point (a search can find it). */
    uint8_t *seen = calloc(S_N, 1);
    int32_t *queue = malloc(S_N * sizeof(int32_t));
    size_t qh = 0, qt = 0;
    queue[qt++] = g->entry_point;
    seen[g->entry_point] = 1;
    while (qh < qt) {
        int32_t v = queue[qh++];
        for (size_t j = g->offsets[v]; j < g->offsets[v] + (size_t)g->cum_nneighbor_per_level[1]; j++) {
            int32_t u = g->neighbors[j];
            if (u >= 0 && !seen[u]) {
                seen[u] = 1;
                queue[qt++] = u;
            }
        }
    }
    ASSERT_UINT_EQ(S_N, qt);
    free(seen);
    free(queue);
    /* ~1/M of the vectors reach layer 1. */
    ASSERT_TRUE(top > S_N / 12 / 2 && top < S_N / 12 * 2);
    ASSERT_INT_EQ(g->levels[g->entry_point] - 1, g->max_level);
    knn_index_destroy(index);
    free(x);
    return 0;
}

static int s_read(struct iu_mem *m, size_t len, struct knn_index **out)
{
    size_t keep = m->len;
    m->len = len;
    m->pos = 0;
    int rc = knn_index_read_faiss(out, iu_mem_read, m, len);
    m->len = keep;
    return rc;
}

int test_hnsw_reader_refuses_corrupt_graphs(void)
{
    float *x = malloc(S_N * S_D * sizeof(float));
    iu_clustered(x, S_N, S_D, 30, 2.0, 44);
    struct knn_index *index, *back;
    ASSERT_OK(s_build(&index, KNN_METRIC_L2, 8, 16, x));
    struct iu_mem m = {0};
    ASSERT_OK(knn_index_write_faiss(index, iu_mem_write, &m));
    ASSERT_OK(s_read(&m, m.len, &back));
    ASSERT_UINT_EQ(S_N, knn_index_ntotal(back));
    knn_index_destroy(back);
    /* Every truncation is refused (a sample of cuts through every section). */
    for (size_t cut = 0; cut < m.len; cut += 1 + cut / 7) {
        back = NULL;
        ASSERT_TRUE(s_read(&m, cut, &back) != 0);
        ASSERT_TRUE(back == NULL);
    }
    /* The layout: header (4 + 4 + 8 * 3 + 1 + 4 = 41 bytes), then assign_probas. */
    const struct knn__hnsw_graph *g = knn__hnsw_graph(index);
    size_t at = 41 + 8 + g->nprobas * 8 + 8 + g->ncum * 4 + 8 + S_N * 4 + 8 + (S_N + 1) * 8 + 8;
    int32_t saved;
    memcpy(&saved, m.data + at, 4);
    int32_t bad = S_N;
    memcpy(m.data + at, &bad, 4);
    ASSERT_ERR(KNN_EFORMAT, s_read(&m, m.len, &back));
    ASSERT_CONTAINS(knn_error_message(), "outside [-1, ntotal)");
    memcpy(m.data + at, &saved, 4);
    /* A level that does not match the offsets. */
    size_t lv = 41 + 8 + g->nprobas * 8 + 8 + g->ncum * 4 + 8;
    int32_t l0;
    memcpy(&l0, m.data + lv, 4);
    int32_t l1 = l0 + 1;
    memcpy(m.data + lv, &l1, 4);
    ASSERT_ERR(KNN_EFORMAT, s_read(&m, m.len, &back));
    memcpy(m.data + lv, &l0, 4);
    ASSERT_OK(s_read(&m, m.len, &back));
    knn_index_destroy(back);
    knn_free(m.data);
    knn_index_destroy(index);
    free(x);
    return 0;
}

int test_hnsw_model_tunes_ef_search(void)
{
    const size_t n = 5000, d = 16;
    float *x = malloc(n * d * sizeof(float)), *labels = calloc(n, sizeof(float));
    iu_clustered(x, n, d, 40, 2.0, 45);
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = d;
    c.k = 10;
    c.index_type = KNN_INDEX_HNSW;
    c.hnsw_m = 8;
    c.recall_queries = 300;
    c.target_recall = 0.97;
    struct knn_model *m;
    ASSERT_OK(knn_model_build(&m, &c, n, x, labels));
    const struct knn_model_recall *r = knn_model_recall(m);
    ASSERT_TRUE(r != NULL);
    ASSERT_STR_EQ("efSearch", r->param);
    ASSERT_INT_EQ(1, r->reached);
    ASSERT_TRUE(r->value >= 0.97);
    size_t ef = r->param_value;
    ASSERT_UINT_EQ(ef, knn_model_get_config(m)->ef_search);
    ASSERT_UINT_EQ(ef, knn_index_get_options(knn_model_index(m))->ef_search);
    char dir[1024];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    ASSERT_OK(knn_model_save(m, dir));
    struct knn_model *loaded;
    ASSERT_OK(knn_model_load(&loaded, dir));
    ASSERT_INT_EQ(KNN_INDEX_HNSW, knn_model_get_config(loaded)->index_type);
    ASSERT_UINT_EQ(ef, knn_model_get_config(loaded)->ef_search);
    ASSERT_UINT_EQ(8, knn_model_get_config(loaded)->hnsw_m);
    /* Loaded and built models predict the same. */
    struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
    po.verbose = 1;
    struct knn_predictions pa, pb;
    ASSERT_OK(knn_model_predict(m, 50, x, &po, &pa));
    ASSERT_OK(knn_model_predict(loaded, 50, x, &po, &pb));
    ASSERT_MEM_EQ(pa.distances, 50 * 10 * sizeof(float), pb.distances, 50 * 10 * sizeof(float));
    knn_predictions_clean_up(&pa);
    knn_predictions_clean_up(&pb);
    knn_model_destroy(loaded);
    knn_model_destroy(m);
    knn_test_rmtree(dir);
    free(x);
    free(labels);
    return 0;
}

int test_hnsw_rejects_bad_options(void)
{
    struct knn_index_options o = KNN_INDEX_OPTIONS_INIT;
    struct knn_index *index = NULL;
    o.type = KNN_INDEX_HNSW;
    o.dim = 4;
    o.hnsw_m = 1;
    ASSERT_ERR(KNN_EINVAL, knn_index_new(&index, &o));
    ASSERT_CONTAINS(knn_error_message(), "M = 1");
    o.hnsw_m = 16;
    o.ef_construction = 0;
    ASSERT_ERR(KNN_EINVAL, knn_index_new(&index, &o));
    o.ef_construction = 40;
    ASSERT_OK(knn_index_new(&index, &o));
    ASSERT_ERR(KNN_EINVAL, knn_index_set_nprobe(index, 4));
    ASSERT_ERR(KNN_EINVAL, knn_index_set_ef_search(index, 0));
    ASSERT_OK(knn_index_set_ef_search(index, 100));
    /* An empty graph answers padding. */
    float q[4] = {1, 2, 3, 4}, dist[3];
    int64_t ids[3];
    ASSERT_OK(knn_index_search(index, 1, q, 3, dist, ids, NULL));
    ASSERT_TRUE(ids[0] == -1 && isinf(dist[0]));
    knn_index_destroy(index);
    return 0;
}
