/*
 * A model split into parts (part.h): every part's search merged equals the whole model's search
 * bit for bit -- predictions, neighbour labels, distances and ids, ties included -- for Flat,
 * IVFFlat and IVFPQ, every metric, single queries and batches, 1 to 7 parts; each part holds its
 * share (the parts cover every vector once) and reads only its share of the index file.
 *
 * The reference is the whole model (knn_model_predict / knn_index_search, themselves tested
 * against brute force in tests/algorithms); on integer-valued data, where every distance is exact,
 * the merged ids are also checked against a double-precision brute force with the (distance, id)
 * order (ivf_test_util.c).
 */
#include "knn_test.h"

#include "index_flat.h"
#include "index_ivf.h"
#include "ivf_test_util.h"

#include "knn/algorithms/model.h"
#include "knn/algorithms/part.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every part of a saved model, searched and merged, against the whole model. */
static int s_check_parts(const char *dir, size_t nparts, size_t nq, const float *q, int check_ids_exact)
{
    struct knn_model *whole = NULL;
    ASSERT_OK(knn_model_load(&whole, dir));
    const struct knn_model_config *cfg = knn_model_get_config(whole);
    struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
    o.verbose = 1;
    struct knn_predictions want, got;
    ASSERT_OK(knn_model_predict(whole, nq, q, &o, &want));

    struct knn_model_part **parts = calloc(nparts, sizeof(*parts));
    size_t held = 0;
    for (size_t p = 0; p < nparts; p++) {
        ASSERT_OK(knn_model_part_load(&parts[p], dir, p, nparts, NULL));
        held += knn_model_part_held(parts[p]);
        ASSERT_UINT_EQ(knn_model_ntotal(whole), knn_model_part_ntotal(parts[p]));
    }
    ASSERT_UINT_EQ(knn_model_ntotal(whole), held);
    size_t k = knn_model_part_k(parts[0]), dq = knn_model_part_query_dim(parts[0]);
    ASSERT_UINT_EQ(want.k, k);
    float *xt = malloc((nq ? nq : 1) * dq * sizeof(float));
    struct knn_neighbour *all = malloc((nq ? nq : 1) * k * nparts * sizeof(*all));
    struct knn_neighbour *merged = malloc((nq ? nq : 1) * k * sizeof(*merged));
    ASSERT_OK(knn_model_part_transform(parts[0], nq, q, xt));
    for (size_t p = 0; p < nparts; p++)
        ASSERT_OK(knn_model_part_search(parts[p], nq, xt, &o, all + p * nq * k));
    int ip = cfg->metric != KNN_MODEL_METRIC_L2;
    ASSERT_OK(knn_neighbours_merge(all, nparts, nq, k, ip, merged));
    ASSERT_OK(knn_model_part_predict(parts[0], nq, merged, &o, &got));

    /* Bit for bit: memcmp, so NaN labels of unfilled neighbours compare too. */
    ASSERT_UINT_EQ(want.n, got.n);
    ASSERT_MEM_EQ(want.predicted, nq * sizeof(float), got.predicted, nq * sizeof(float));
    ASSERT_MEM_EQ(want.labels, nq * k * sizeof(float), got.labels, nq * k * sizeof(float));
    ASSERT_MEM_EQ(want.distances, nq * k * sizeof(float), got.distances, nq * k * sizeof(float));

    /* The ids: the whole index searched with the same transformed queries. */
    float *wd = malloc((nq ? nq : 1) * k * sizeof(float));
    int64_t *wi = malloc((nq ? nq : 1) * k * sizeof(int64_t));
    struct knn_search_params sp = KNN_SEARCH_PARAMS_INIT;
    if (nq > 0)
        ASSERT_OK(knn_index_search(knn_model_index(whole), nq, xt, k, wd, wi, &sp));
    for (size_t j = 0; j < nq * k; j++) {
        if (merged[j].id != wi[j])
            FAIL("%zu parts: query %zu neighbour %zu: id %lld, the whole index says %lld", nparts, j / k, j % k,
                 (long long)merged[j].id, (long long)wi[j]);
    }
    if (check_ids_exact) {
        /* Integer data: distances are exact, the (distance, id) order is the brute force's. */
        const float *base = knn__index_flat_vectors(knn_model_index(whole));
        int64_t *bi = malloc((nq ? nq : 1) * k * sizeof(int64_t));
        iu_brute_force(xt, nq, base, knn_model_ntotal(whole), dq, ip, k, NULL, bi);
        for (size_t j = 0; j < nq * k; j++) {
            if (merged[j].id != bi[j])
                FAIL("query %zu neighbour %zu: id %lld, brute force says %lld", j / k, j % k, (long long)merged[j].id,
                     (long long)bi[j]);
        }
        free(bi);
    }
    free(wd);
    free(wi);
    free(xt);
    free(all);
    free(merged);
    knn_predictions_clean_up(&want);
    knn_predictions_clean_up(&got);
    for (size_t p = 0; p < nparts; p++)
        knn_model_part_destroy(parts[p]);
    free(parts);
    knn_model_destroy(whole);
    return 0;
}

/* Build and save a model of n rows (d features) into a fresh directory. integer: small integer values (many ties). */
static int s_save_model(
    char *dir, size_t dirsize, const struct knn_model_config *c, size_t n, int integer, uint64_t seed)
{
    float *x = malloc(n * c->feature_dim * sizeof(float)), *y = malloc(n * sizeof(float));
    struct iu_rng r = {seed};
    if (integer) {
        for (size_t i = 0; i < n * c->feature_dim; i++)
            x[i] = (float)(iu_next(&r) % 5);
    } else {
        iu_clustered(x, n, c->feature_dim, 9, 2.0, seed);
    }
    for (size_t i = 0; i < n; i++)
        y[i] = c->predictor == KNN_PREDICTOR_CLASSIFIER ? (float)(iu_next(&r) % 4) : (float)iu_gauss(&r);
    struct knn_model *m = NULL;
    ASSERT_OK(knn_model_build(&m, c, n, x, y));
    ASSERT_OK(knn_test_mkdtemp(dir, dirsize));
    ASSERT_OK(knn_model_save(m, dir));
    knn_model_destroy(m);
    free(x);
    free(y);
    return 0;
}

static float *s_queries(size_t nq, size_t d, int integer, uint64_t seed)
{
    float *q = malloc((nq ? nq : 1) * d * sizeof(float));
    struct iu_rng r = {seed};
    if (integer) {
        for (size_t i = 0; i < nq * d; i++)
            q[i] = (float)(iu_next(&r) % 5);
    } else {
        iu_clustered(q, nq, d, 9, 2.0, seed);
    }
    return q;
}

/* Query counts that take every search path: one query, a few (streaming kernel), batches. */
static const size_t s_nqs[] = {1, 3, 7, 300, 1000};

static int s_check_model(const struct knn_model_config *c, size_t n, int integer, const size_t *nparts, size_t nn)
{
    char dir[512];
    if (s_save_model(dir, sizeof(dir), c, n, integer, 42 + n))
        return 1;
    int rc = 0;
    for (size_t a = 0; a < sizeof(s_nqs) / sizeof(s_nqs[0]) && !rc; a++) {
        float *q = s_queries(s_nqs[a], c->feature_dim, integer, 7 + a);
        /* brute force (slow in double) for one part count only */
        for (size_t b = 0; b < nn && !rc; b++)
            rc = s_check_parts(dir, nparts[b], s_nqs[a], q, integer && c->index_type == KNN_INDEX_FLAT && b == 1);
        free(q);
    }
    knn_test_rmtree(dir);
    return rc;
}

static const size_t s_parts[] = {1, 2, 3, 5, 7};
#define NPARTS (sizeof(s_parts) / sizeof(s_parts[0]))

int test_part_flat_equals_whole_every_metric(void)
{
    static const enum knn_model_metric metrics[] = {
        KNN_MODEL_METRIC_L2, KNN_MODEL_METRIC_INNER_PRODUCT, KNN_MODEL_METRIC_COSINE};
    for (size_t m = 0; m < 3; m++) {
        struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
        c.feature_dim = 24;
        c.k = 10;
        c.metric = metrics[m];
        if (s_check_model(&c, 3001, 0, s_parts, NPARTS))
            FAIL("metric %s", knn_model_metric_name(metrics[m]));
    }
    return 0;
}

int test_part_flat_wide_vectors_and_regressor(void)
{
    /* d > 128 takes the sgemm tiles; a regressor averages the merged labels. */
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = 136;
    c.k = 7;
    c.predictor = KNN_PREDICTOR_REGRESSOR;
    return s_check_model(&c, 1500, 0, s_parts + 1, 2);
}

int test_part_flat_ties_follow_ids(void)
{
    /* Values in 0..4 over 6 features: thousands of equal distances, ordered by smaller id first. */
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = 6;
    c.k = 20;
    if (s_check_model(&c, 4000, 1, s_parts, NPARTS))
        return 1;
    c.metric = KNN_MODEL_METRIC_INNER_PRODUCT;
    return s_check_model(&c, 4000, 1, s_parts + 1, 2);
}

int test_part_ivfflat_equals_whole(void)
{
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = 20; /* narrow: lists in blocks of 8 */
    c.k = 10;
    c.index_type = KNN_INDEX_IVFFLAT;
    c.nlist = 30;
    c.nprobe = 4;
    if (s_check_model(&c, 3000, 0, s_parts, NPARTS))
        return 1;
    c.feature_dim = 40; /* wide: row-major lists */
    c.metric = KNN_MODEL_METRIC_COSINE;
    if (s_check_model(&c, 3000, 0, s_parts + 1, 3))
        return 1;
    /* Integer data: ties inside and across lists. */
    c.feature_dim = 6;
    c.metric = KNN_MODEL_METRIC_L2;
    return s_check_model(&c, 3000, 1, s_parts + 1, 2);
}

int test_part_ivfpq_equals_whole(void)
{
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = 30; /* padded to 32 for pq_m = 8 */
    c.k = 10;
    c.index_type = KNN_INDEX_IVFPQ;
    c.nlist = 25;
    c.nprobe = 5;
    c.pq_m = 8;
    return s_check_model(&c, 3000, 0, s_parts, NPARTS);
}

int test_part_short_lists_pad_as_whole(void)
{
    /* k above what the probed lists hold, and parts that hold nothing (100 rows, 7 parts cut at 256-row units). */
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = 5;
    c.k = 40;
    c.index_type = KNN_INDEX_IVFFLAT;
    c.nlist = 10;
    c.nprobe = 1;
    static const size_t parts[] = {3, 7};
    if (s_check_model(&c, 100, 0, parts, 2))
        return 1;
    c.index_type = KNN_INDEX_FLAT;
    c.k = 150; /* clamped to the 100 vectors, as the whole model clamps */
    return s_check_model(&c, 100, 0, parts, 2);
}

/* ---- what a part holds and reads ---- */

struct s_counting {
    int fd;
    uint64_t bytes;
};

static int s_counting_pread(void *user, void *data, size_t len, uint64_t offset)
{
    struct s_counting *c = user;
    if (pread(c->fd, data, len, (off_t)offset) != (ssize_t)len)
        return knn_error_set(KNN_EIO, "short read");
    c->bytes += len;
    return 0;
}

static int s_read_counted(const char *dir, size_t part, size_t nparts, uint64_t *bytes, uint64_t *file_size,
                          struct knn_index_part_info *info, struct knn_index **index)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/model_algo-1", dir);
    struct s_counting c = {open(path, O_RDONLY), 0};
    ASSERT_TRUE(c.fd >= 0);
    struct stat st;
    ASSERT_TRUE(fstat(c.fd, &st) == 0);
    ASSERT_OK(knn_index_read_faiss_part(index, info, s_counting_pread, &c, (uint64_t)st.st_size, part, nparts));
    close(c.fd);
    *bytes = c.bytes;
    *file_size = (uint64_t)st.st_size;
    return 0;
}

int test_part_reads_and_holds_its_share(void)
{
    static const enum knn_index_type types[] = {KNN_INDEX_FLAT, KNN_INDEX_IVFFLAT, KNN_INDEX_IVFPQ};
    for (size_t t = 0; t < 3; t++) {
        struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
        c.feature_dim = 32;
        c.k = 5;
        c.index_type = types[t];
        c.nlist = 16;
        c.pq_m = 8;
        char dir[512];
        const size_t n = 8000, nparts = 4;
        if (s_save_model(dir, sizeof(dir), &c, n, 0, 5))
            return 1;
        uint8_t *seen = calloc(n, 1);
        uint64_t held = 0;
        for (size_t p = 0; p < nparts; p++) {
            struct knn_index *index = NULL;
            struct knn_index_part_info info;
            uint64_t bytes, size;
            if (s_read_counted(dir, p, nparts, &bytes, &size, &info, &index))
                return 1;
            ASSERT_UINT_EQ(n, info.ntotal);
            /* About a quarter of the vectors (alignment moves a cut by less than 256 rows, 8 per list). */
            size_t slack = types[t] == KNN_INDEX_FLAT ? KNN_PART_FLAT_ALIGN : KNN_PART_LIST_ALIGN * c.nlist;
            if (info.held + slack < n / nparts || info.held > n / nparts + slack)
                FAIL("%s part %zu holds %llu of %zu vectors", knn_index_type_name(types[t]), p,
                     (unsigned long long)info.held, n);
            /* Only its share of the file is read: the per-vector bytes of a quarter, plus the fixed parts. */
            uint64_t per = types[t] == KNN_INDEX_FLAT ? 32 * 4 : types[t] == KNN_INDEX_IVFFLAT ? 32 * 4 + 8 : 8 + 8;
            uint64_t fixed = size - n * per;
            if (bytes > fixed + info.held * per)
                FAIL("%s part %zu read %llu bytes of %llu, its share is %llu + %llu fixed",
                     knn_index_type_name(types[t]), p, (unsigned long long)bytes, (unsigned long long)size,
                     (unsigned long long)(info.held * per), (unsigned long long)fixed);
            held += info.held;
            /* Every vector in exactly one part. */
            struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
            (void)o;
            if (types[t] == KNN_INDEX_FLAT) {
                for (uint64_t i = 0; i < info.held; i++)
                    seen[info.id_offset + (int64_t)i]++;
            } else {
                for (size_t l = 0; l < c.nlist; l++) {
                    size_t sz;
                    const uint8_t *codes;
                    const int64_t *ids;
                    knn__ivf_list(index, l, &sz, &codes, &ids);
                    for (size_t i = 0; i < sz; i++)
                        seen[ids[i]]++;
                }
            }
            knn_index_destroy(index);
        }
        ASSERT_UINT_EQ(n, held);
        for (size_t i = 0; i < n; i++) {
            if (seen[i] != 1)
                FAIL("%s: vector %zu is in %d parts", knn_index_type_name(types[t]), i, seen[i]);
        }
        /* The model part's byte count covers its vectors/codes and labels. */
        struct knn_model_part *mp = NULL;
        ASSERT_OK(knn_model_part_load(&mp, dir, 1, nparts, NULL));
        ASSERT_TRUE(knn_model_part_bytes(mp) >= knn_model_part_held(mp) * 8);
        knn_model_part_destroy(mp);
        free(seen);
        knn_test_rmtree(dir);
    }
    return 0;
}

int test_part_refuses_bad_arguments_and_files(void)
{
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = 8;
    c.k = 3;
    char dir[512], path[600];
    if (s_save_model(dir, sizeof(dir), &c, 500, 0, 9))
        return 1;
    struct knn_model_part *p = NULL;
    ASSERT_ERR(KNN_EINVAL, knn_model_part_load(&p, dir, 3, 3, NULL));
    ASSERT_CONTAINS(knn_error_message(), "part 3 of 3");
    ASSERT_ERR(KNN_EINVAL, knn_model_part_load(&p, dir, 0, 0, NULL));
    /* A non-finite query is refused as the whole model refuses it. */
    ASSERT_OK(knn_model_part_load(&p, dir, 0, 2, NULL));
    float q[8] = {0, 1, 2, NAN, 4, 5, 6, 7}, xt[8];
    ASSERT_ERR(KNN_ERANGE, knn_model_part_transform(p, 1, q, xt));
    ASSERT_CONTAINS(knn_error_message(), "query 0, feature 3 is not a finite number");
    knn_model_part_destroy(p);
    /* A truncated index: the part that reaches the cut names the byte, and the checksum catches it first. */
    snprintf(path, sizeof(path), "%s/model_algo-1", dir);
    struct stat st;
    ASSERT_TRUE(stat(path, &st) == 0);
    ASSERT_TRUE(truncate(path, st.st_size - 100) == 0);
    ASSERT_ERR(KNN_ECHECKSUM, knn_model_part_load(&p, dir, 0, 2, NULL));
    struct knn_model_part_options o = KNN_MODEL_PART_OPTIONS_INIT;
    o.verify = 0;
    ASSERT_ERR(KNN_ETRUNCATED, knn_model_part_load(&p, dir, 1, 2, &o));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1");
    ASSERT_TRUE(p == NULL);
    knn_test_rmtree(dir);
    return 0;
}
