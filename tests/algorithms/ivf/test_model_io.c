/*
 * The three model files (spec §6): save -> load gives identical predictions; the JSON is what
 * inference obeys (k, predictor_type, nprobe); SageMaker-shaped JSON loads; corrupt or mismatched
 * files are refused with the file, the offset and the field named; saving is all-or-nothing.
 */
#include "knn_test.h"

#include "ivf_test_util.h"

#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FEAT 10
#define NROWS 2000
#define NQ 100

static float *s_rows(uint64_t seed)
{
    float *x = malloc((size_t)NROWS * FEAT * sizeof(float));
    iu_clustered(x, NROWS, FEAT, 12, 2.5, seed);
    return x;
}

static float *s_labels(const float *x)
{
    float *y = malloc(NROWS * sizeof(float));
    for (size_t i = 0; i < NROWS; i++)
        y[i] = (float)((x[i * FEAT] > 0) + 2 * (x[i * FEAT + 1] > 0)); /* 4 classes by quadrant */
    return y;
}

static struct knn_model_config s_config(enum knn_index_type type, enum knn_model_metric metric)
{
    struct knn_model_config c = KNN_MODEL_CONFIG_INIT;
    c.feature_dim = FEAT;
    c.k = 5;
    c.index_type = type;
    c.metric = metric;
    c.nlist = 20;
    c.pq_m = type == KNN_INDEX_IVFPQ ? 4 : 0; /* 10 features: zero-padded to 12 */
    return c;
}

static int s_build(struct knn_model **out, const struct knn_model_config *c, uint64_t seed)
{
    float *x = s_rows(seed), *y = s_labels(x);
    int rc = knn_model_build(out, c, NROWS, x, y);
    free(x);
    free(y);
    return rc;
}

static int s_predict(const struct knn_model *m, const float *q, struct knn_predictions *p)
{
    struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
    o.verbose = 1;
    return knn_model_predict(m, NQ, q, &o, p);
}

static int s_same_predictions(const struct knn_predictions *a, const struct knn_predictions *b)
{
    return a->n == b->n && a->k == b->k && memcmp(a->predicted, b->predicted, a->n * sizeof(float)) == 0 &&
           memcmp(a->labels, b->labels, a->n * a->k * sizeof(float)) == 0 &&
           memcmp(a->distances, b->distances, a->n * a->k * sizeof(float)) == 0;
}

static void s_path(char *buf, size_t size, const char *dir, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

static json_t *s_load_json(const char *dir)
{
    char p[2048];
    s_path(p, sizeof(p), dir, "model_algo-1.json");
    return json_load_file(p, 0, NULL);
}

static int s_save_json(const char *dir, json_t *j)
{
    char p[2048];
    s_path(p, sizeof(p), dir, "model_algo-1.json");
    return json_dump_file(j, p, JSON_INDENT(2));
}

static void s_sha256_hex(const char *path, char out[65])
{
    uint8_t *data;
    size_t len;
    out[0] = 0;
    if (knn_test_read_file(path, &data, &len) != 0)
        return;
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    knn_free(data);
}

int test_model_save_load_round_trip(void)
{
    struct {
        enum knn_index_type type;
        enum knn_model_metric metric;
        enum knn_predictor predictor;
        enum knn_dimred_type dimred;
    } cases[] = {
        {KNN_INDEX_FLAT, KNN_MODEL_METRIC_L2, KNN_PREDICTOR_CLASSIFIER, KNN_DIMRED_NONE},
        {KNN_INDEX_FLAT, KNN_MODEL_METRIC_INNER_PRODUCT, KNN_PREDICTOR_REGRESSOR, KNN_DIMRED_SIGN},
        {KNN_INDEX_IVFFLAT, KNN_MODEL_METRIC_L2, KNN_PREDICTOR_CLASSIFIER, KNN_DIMRED_NONE},
        {KNN_INDEX_IVFFLAT, KNN_MODEL_METRIC_COSINE, KNN_PREDICTOR_REGRESSOR, KNN_DIMRED_FJLT},
        {KNN_INDEX_IVFPQ, KNN_MODEL_METRIC_L2, KNN_PREDICTOR_CLASSIFIER, KNN_DIMRED_NONE},
    };
    float *q = s_rows(999);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char dir[1024];
        ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
        struct knn_model_config cfg = s_config(cases[c].type, cases[c].metric);
        cfg.predictor = cases[c].predictor;
        cfg.dimred = cases[c].dimred;
        cfg.dimred_target = cases[c].dimred ? 6 : 0;
        struct knn_model *a, *b;
        ASSERT_OK(s_build(&a, &cfg, 501 + c));
        ASSERT_OK(knn_model_save(a, dir));
        ASSERT_OK(knn_model_load(&b, dir));
        const struct knn_model_config *ca = knn_model_get_config(a), *cb = knn_model_get_config(b);
        ASSERT_UINT_EQ(ca->feature_dim, cb->feature_dim);
        ASSERT_UINT_EQ(ca->k, cb->k);
        ASSERT_INT_EQ(ca->predictor, cb->predictor);
        ASSERT_INT_EQ(ca->index_type, cb->index_type);
        ASSERT_INT_EQ(ca->metric, cb->metric);
        ASSERT_INT_EQ(ca->dimred, cb->dimred);
        ASSERT_UINT_EQ(ca->dimred_target, cb->dimred_target);
        ASSERT_UINT_EQ(ca->dimred_seed, cb->dimred_seed);
        if (ca->index_type != KNN_INDEX_FLAT) {
            ASSERT_UINT_EQ(ca->nlist, cb->nlist);
            ASSERT_UINT_EQ(ca->nprobe, cb->nprobe);
        }
        if (ca->index_type == KNN_INDEX_IVFPQ)
            ASSERT_UINT_EQ(ca->pq_m, cb->pq_m);
        ASSERT_UINT_EQ(knn_model_ntotal(a), knn_model_ntotal(b));
        struct knn_predictions pa, pb;
        ASSERT_OK(s_predict(a, q, &pa));
        ASSERT_OK(s_predict(b, q, &pb));
        ASSERT_TRUE(s_same_predictions(&pa, &pb));
        knn_predictions_clean_up(&pa);
        knn_predictions_clean_up(&pb);
        knn_model_destroy(a);
        knn_model_destroy(b);
        knn_test_rmtree(dir);
    }
    free(q);
    return 0;
}

int test_model_json_says_what_was_built(void)
{
    char dir[1024], p[2048], sha[65];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    struct knn_model_config cfg = s_config(KNN_INDEX_IVFPQ, KNN_MODEL_METRIC_L2);
    cfg.k = 7;
    cfg.predictor = KNN_PREDICTOR_REGRESSOR;
    struct knn_model *m;
    ASSERT_OK(s_build(&m, &cfg, 600));
    ASSERT_OK(knn_model_save(m, dir));
    json_t *j = s_load_json(dir);
    ASSERT_TRUE(j != NULL);
    ASSERT_INT_EQ(7, json_integer_value(json_object_get(j, "k")));
    ASSERT_STR_EQ("regressor", json_string_value(json_object_get(j, "predictor_type")));
    ASSERT_TRUE(json_is_null(json_object_get(j, "dimension_reduction")));
    ASSERT_TRUE(json_is_false(json_object_get(j, "normalize")));
    ASSERT_STR_EQ("1.0", json_string_value(json_object_get(j, "version")));
    ASSERT_STR_EQ("faiss.IVFPQ", json_string_value(json_object_get(j, "index_type")));
    ASSERT_STR_EQ("L2", json_string_value(json_object_get(j, "index_metric")));
    ASSERT_INT_EQ(20, json_integer_value(json_object_get(j, "nlist")));
    ASSERT_INT_EQ(4, json_integer_value(json_object_get(j, "pq_m")));
    ASSERT_INT_EQ(knn_model_get_config(m)->nprobe, json_integer_value(json_object_get(j, "nprobe")));
    ASSERT_INT_EQ(12, json_integer_value(json_object_get(j, "effective_dim")));
    ASSERT_INT_EQ(FEAT, json_integer_value(json_object_get(j, "feature_dim")));
    json_t *sums = json_object_get(j, "sha256");
    s_path(p, sizeof(p), dir, "model_algo-1");
    s_sha256_hex(p, sha);
    ASSERT_STR_EQ(sha, json_string_value(json_object_get(sums, "model_algo-1")));
    s_path(p, sizeof(p), dir, "model_algo-1.labels");
    s_sha256_hex(p, sha);
    ASSERT_STR_EQ(sha, json_string_value(json_object_get(sums, "model_algo-1.labels")));
    json_decref(j);

    /* The labels file: one little-endian float32 per indexed vector, in id order. */
    uint8_t *raw;
    size_t len;
    ASSERT_OK(knn_test_read_file(p, &raw, &len));
    ASSERT_UINT_EQ(NROWS * sizeof(float), len);
    float *x = s_rows(600), *y = s_labels(x);
    ASSERT_MEM_EQ(y, NROWS * sizeof(float), raw, len);
    knn_free(raw);
    free(x);
    free(y);

    /* With a reduction, the object SageMaker's documentation shows. */
    knn_model_destroy(m);
    cfg = s_config(KNN_INDEX_FLAT, KNN_MODEL_METRIC_COSINE);
    cfg.dimred = KNN_DIMRED_SIGN;
    cfg.dimred_target = 4;
    cfg.dimred_seed = 3;
    ASSERT_OK(s_build(&m, &cfg, 601));
    ASSERT_OK(knn_model_save(m, dir));
    j = s_load_json(dir);
    json_t *dr = json_object_get(j, "dimension_reduction");
    ASSERT_STR_EQ("sign", json_string_value(json_object_get(dr, "type")));
    ASSERT_INT_EQ(3, json_integer_value(json_object_get(dr, "seed")));
    ASSERT_INT_EQ(4, json_integer_value(json_object_get(dr, "target_dim")));
    ASSERT_INT_EQ(FEAT, json_integer_value(json_object_get(dr, "input_dim")));
    ASSERT_TRUE(json_is_true(json_object_get(j, "normalize")));
    ASSERT_STR_EQ("COSINE", json_string_value(json_object_get(j, "index_metric")));
    json_decref(j);
    knn_model_destroy(m);
    knn_test_rmtree(dir);
    return 0;
}

/* As in SageMaker, editing k or predictor_type in the JSON changes inference. */
int test_model_json_edits_change_predictions(void)
{
    char dir[1024];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    struct knn_model_config cfg = s_config(KNN_INDEX_IVFFLAT, KNN_MODEL_METRIC_L2);
    struct knn_model *m, *m1;
    ASSERT_OK(s_build(&m, &cfg, 700));
    ASSERT_OK(knn_model_save(m, dir));
    float *q = s_rows(701);
    struct knn_predictions p5, p1;
    ASSERT_OK(s_predict(m, q, &p5));

    json_t *j = s_load_json(dir);
    json_object_set_new(j, "k", json_integer(1));
    ASSERT_INT_EQ(0, s_save_json(dir, j));
    ASSERT_OK(knn_model_load(&m1, dir));
    ASSERT_UINT_EQ(1, knn_model_get_config(m1)->k);
    ASSERT_OK(s_predict(m1, q, &p1));
    ASSERT_UINT_EQ(1, p1.k);
    size_t differ = 0;
    for (size_t i = 0; i < NQ; i++) {
        ASSERT_TRUE(p1.predicted[i] == p5.labels[i * 5]); /* the nearest neighbour's label */
        differ += p1.predicted[i] != p5.predicted[i];
    }
    ASSERT_TRUE(differ > 0);
    knn_predictions_clean_up(&p1);
    knn_model_destroy(m1);

    json_object_set_new(j, "k", json_integer(5));
    json_object_set_new(j, "predictor_type", json_string("regressor"));
    json_object_set_new(j, "nprobe", json_integer(20));
    ASSERT_INT_EQ(0, s_save_json(dir, j));
    ASSERT_OK(knn_model_load(&m1, dir));
    ASSERT_INT_EQ(KNN_PREDICTOR_REGRESSOR, knn_model_get_config(m1)->predictor);
    ASSERT_UINT_EQ(20, knn_model_get_config(m1)->nprobe);
    ASSERT_OK(s_predict(m1, q, &p1));
    for (size_t i = 0; i < NQ; i++) {
        double mean = 0;
        for (size_t t = 0; t < 5; t++)
            mean += p1.labels[i * 5 + t] / 5.0;
        ASSERT_NEAR(mean, p1.predicted[i], 1e-5);
    }
    knn_predictions_clean_up(&p1);
    knn_model_destroy(m1);
    json_decref(j);
    knn_predictions_clean_up(&p5);
    knn_model_destroy(m);
    free(q);
    knn_test_rmtree(dir);
    return 0;
}

/* A model.tar.gz from SageMaker: only SageMaker's keys, no checksums. */
int test_model_loads_sagemaker_json(void)
{
    char dir[1024];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    struct knn_model_config cfg = s_config(KNN_INDEX_IVFFLAT, KNN_MODEL_METRIC_COSINE);
    struct knn_model *m, *m1;
    ASSERT_OK(s_build(&m, &cfg, 800));
    ASSERT_OK(knn_model_save(m, dir));
    json_t *j =
        json_pack("{s:i, s:s, s:b, s:s}", "k", 5, "predictor_type", "classifier", "normalize", 1, "version", "1.0");
    ASSERT_INT_EQ(0, s_save_json(dir, j));
    ASSERT_OK(knn_model_load(&m1, dir));
    ASSERT_INT_EQ(KNN_MODEL_METRIC_COSINE, knn_model_get_config(m1)->metric);
    ASSERT_INT_EQ(KNN_INDEX_IVFFLAT, knn_model_get_config(m1)->index_type);
    float *q = s_rows(801);
    struct knn_predictions pa, pb;
    ASSERT_OK(s_predict(m, q, &pa));
    ASSERT_OK(s_predict(m1, q, &pb));
    ASSERT_TRUE(s_same_predictions(&pa, &pb));
    knn_predictions_clean_up(&pa);
    knn_predictions_clean_up(&pb);
    knn_model_destroy(m1);

    /* SageMaker's reduction is its own random projection: refused, not silently wrong. */
    json_object_set_new(
        j, "dimension_reduction",
        json_pack("{s:s, s:i, s:i, s:i}", "type", "sign", "seed", 3, "target_dim", 4, "input_dim", 10));
    ASSERT_INT_EQ(0, s_save_json(dir, j));
    ASSERT_ERR(KNN_EUNSUPPORTED, knn_model_load(&m1, dir));
    ASSERT_CONTAINS(knn_error_message(), "model made by SageMaker");
    json_decref(j);
    knn_model_destroy(m);
    free(q);
    knn_test_rmtree(dir);
    return 0;
}

/* Rewrite a file of the model: truncate to `len` (or keep), then XOR byte `off` with `x`. */
static int s_damage(const char *dir, const char *name, size_t len, size_t off, uint8_t x)
{
    char p[2048];
    s_path(p, sizeof(p), dir, name);
    uint8_t *data;
    size_t n;
    if (knn_test_read_file(p, &data, &n) != 0)
        return -1;
    if (len == 0 || len > n)
        len = n;
    if (off < len)
        data[off] ^= x;
    FILE *f = fopen(p, "wb");
    size_t w = f ? fwrite(data, 1, len, f) : 0;
    if (f)
        fclose(f);
    knn_free(data);
    return w == len ? 0 : -1;
}

static int s_drop_checksums(const char *dir)
{
    json_t *j = s_load_json(dir);
    json_object_del(j, "sha256");
    int rc = s_save_json(dir, j);
    json_decref(j);
    return rc;
}

static int s_fresh(const char *dir, struct knn_model *m)
{
    return knn_model_save(m, dir);
}

int test_model_load_refuses_corrupt_files(void)
{
    char dir[1024], p[2048];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    struct knn_model_config cfg = s_config(KNN_INDEX_FLAT, KNN_MODEL_METRIC_L2);
    struct knn_model *m, *bad = NULL;
    ASSERT_OK(s_build(&m, &cfg, 900));

    /* a flipped byte, caught by the checksum */
    ASSERT_OK(s_fresh(dir, m));
    ASSERT_INT_EQ(0, s_damage(dir, "model_algo-1", 0, 1000, 0x40));
    ASSERT_ERR(KNN_ECHECKSUM, knn_model_load(&bad, dir));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1: SHA-256");
    ASSERT_OK(s_fresh(dir, m));
    ASSERT_INT_EQ(0, s_damage(dir, "model_algo-1.labels", 0, 8, 0x01));
    ASSERT_ERR(KNN_ECHECKSUM, knn_model_load(&bad, dir));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1.labels: SHA-256");

    /* without checksums, the readers themselves refuse */
    ASSERT_OK(s_fresh(dir, m));
    ASSERT_INT_EQ(0, s_drop_checksums(dir));
    ASSERT_INT_EQ(0, s_damage(dir, "model_algo-1", 5000, 0, 0));
    ASSERT_ERR(KNN_ETRUNCATED, knn_model_load(&bad, dir));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1: byte 45: Flat vectors");

    ASSERT_OK(s_fresh(dir, m));
    ASSERT_INT_EQ(0, s_drop_checksums(dir));
    ASSERT_INT_EQ(0, s_damage(dir, "model_algo-1", 0, 12, 0x10)); /* ntotal += 2^36 */
    ASSERT_ERR(KNN_EFORMAT, knn_model_load(&bad, dir));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1: byte 37: Flat vectors: count");

    ASSERT_OK(s_fresh(dir, m));
    ASSERT_INT_EQ(0, s_drop_checksums(dir));
    ASSERT_INT_EQ(0, s_damage(dir, "model_algo-1", 0, 0, 'I' ^ 'Q'));
    ASSERT_ERR(KNN_EUNSUPPORTED, knn_model_load(&bad, dir));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1: byte 0: index fourcc \"QxF2\"");

    ASSERT_OK(s_fresh(dir, m));
    ASSERT_INT_EQ(0, s_drop_checksums(dir));
    ASSERT_INT_EQ(0, s_damage(dir, "model_algo-1.labels", NROWS * 4 - 4, 0, 0));
    ASSERT_ERR(KNN_EMISMATCH, knn_model_load(&bad, dir));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1.labels: 7996 bytes, but the index holds 2000 vectors");

    /* the JSON: syntax, values, and agreement with the index */
    ASSERT_OK(s_fresh(dir, m));
    s_path(p, sizeof(p), dir, "model_algo-1.json");
    FILE *f = fopen(p, "w");
    fputs("{\"k\": 5,\n \"predictor_type\": }", f);
    fclose(f);
    ASSERT_ERR(KNN_EFORMAT, knn_model_load(&bad, dir));
    ASSERT_CONTAINS(knn_error_message(), "model_algo-1.json: line 2");

    static const struct {
        const char *key, *value, *needle;
        int code;
    } edits[] = {
        {"k", "0", "key \"k\": 0 is outside [1, 1024]", KNN_EFORMAT},
        {"k", "\"5\"", "key \"k\": expected an integer", KNN_EFORMAT},
        {"predictor_type", "\"voter\"", "key \"predictor_type\"", KNN_EFORMAT},
        {"index_type", "\"faiss.IVFPQ\"", "says index_type faiss.IVFPQ", KNN_EMISMATCH},
        {"effective_dim", "11", "says effective_dim = 11", KNN_EMISMATCH},
        {"normalize", "true", "says normalize (COSINE), but model_algo-1 is an L2 index", KNN_EMISMATCH},
        {"version", "\"2.0\"", "only version 1.x", KNN_EUNSUPPORTED},
    };
    for (size_t e = 0; e < sizeof(edits) / sizeof(edits[0]); e++) {
        ASSERT_OK(s_fresh(dir, m));
        json_t *j = s_load_json(dir);
        json_object_set_new(j, edits[e].key, json_loads(edits[e].value, JSON_DECODE_ANY, NULL));
        ASSERT_INT_EQ(0, s_save_json(dir, j));
        json_decref(j);
        ASSERT_ERR(edits[e].code, knn_model_load(&bad, dir));
        ASSERT_CONTAINS(knn_error_message(), edits[e].needle);
    }

    /* a missing file */
    ASSERT_OK(s_fresh(dir, m));
    s_path(p, sizeof(p), dir, "model_algo-1");
    unlink(p);
    ASSERT_ERR(KNN_ENOTFOUND, knn_model_load(&bad, dir));
    ASSERT_TRUE(bad == NULL);
    knn_model_destroy(m);
    knn_test_rmtree(dir);
    return 0;
}

static size_t s_count_entries(const char *dir, int *other)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    *other = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
            continue;
        n++;
        if (strncmp(e->d_name, "model_algo-1", 12) != 0)
            *other = 1;
    }
    closedir(d);
    return n;
}

/* Saving fails cleanly at every allocation (no temporary file left) and replaces a model whole. */
int test_model_save_is_all_or_nothing(void)
{
    char dir[1024];
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    struct knn_model_config cfg = s_config(KNN_INDEX_IVFFLAT, KNN_MODEL_METRIC_L2);
    struct knn_model *a, *b, *loaded;
    ASSERT_OK(s_build(&a, &cfg, 1000));
    cfg.k = 3; /* tells b's files from a's */
    ASSERT_OK(s_build(&b, &cfg, 1001));
    ASSERT_OK(knn_model_save(a, dir));
    int other;
    ASSERT_UINT_EQ(3, s_count_entries(dir, &other));
    ASSERT_FALSE(other);

    knn_alloc_fail_after(0);
    ASSERT_OK(knn_model_save(b, dir));
    uint64_t allocs = knn_alloc_fail_after(0);
    ASSERT_OK(knn_model_save(a, dir));
    for (uint64_t i = 1; i <= allocs; i++) {
        knn_alloc_fail_after(i);
        int rc = knn_model_save(b, dir);
        knn_alloc_fail_after(0);
        ASSERT_UINT_EQ(3, s_count_entries(dir, &other));
        /* Either the save completed, or a's files are all still there. */
        ASSERT_OK(knn_model_load(&loaded, dir));
        ASSERT_UINT_EQ(rc == 0 ? 3 : 5, knn_model_get_config(loaded)->k);
        knn_model_destroy(loaded);
        if (rc == 0)
            ASSERT_OK(knn_model_save(a, dir));
    }
    ASSERT_ERR(KNN_EIO, knn_model_save(a, "/nonexistent-dir/for-knn-tests"));
    knn_model_destroy(a);
    knn_model_destroy(b);
    knn_test_rmtree(dir);
    return 0;
}
