/* Hyperparameter validation: one case per rule of spec §1, and all violations in one message. */
#include "knn_test.h"

#include "train/hyperparams.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <jansson.h>

#define BASE "\"feature_dim\": \"54\", \"k\": \"10\", \"sample_size\": \"200000\", \"predictor_type\": \"classifier\""

/* Parse hyperparameters given as the inside of a JSON object. Returns the rc; hp stays for checks. */
static int s_parse(struct knn_hyperparams *hp, const char *members)
{
    char text[4096];
    snprintf(text, sizeof(text), "{%s}", members);
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    if (!obj) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, jerr.text);
        return -999;
    }
    knn_hyperparams_init(hp);
    knn_error_clear();
    int rc = knn_hyperparams_parse(hp, obj);
    json_decref(obj);
    return rc;
}

/* Expect `members` to be rejected with a message containing `needle`. */
#define ASSERT_REJECTED(members, needle)                                                                            \
    do {                                                                                                            \
        struct knn_hyperparams hp_;                                                                                 \
        ASSERT_ERR(KNN_ECONFIG, s_parse(&hp_, members));                                                            \
        ASSERT_CONTAINS(knn_error_message(), needle);                                                               \
        knn_hyperparams_clean_up(&hp_);                                                                             \
    } while (0)

#define ASSERT_ACCEPTED(members)                                                                                    \
    do {                                                                                                            \
        struct knn_hyperparams hp_;                                                                                 \
        ASSERT_OK(s_parse(&hp_, members));                                                                          \
        knn_hyperparams_clean_up(&hp_);                                                                             \
    } while (0)

int test_hp_minimal_strings_and_defaults(void)
{
    struct knn_hyperparams hp;
    ASSERT_OK(s_parse(&hp, BASE));
    ASSERT_UINT_EQ(54, hp.feature_dim);
    ASSERT_UINT_EQ(10, hp.k);
    ASSERT_UINT_EQ(200000, hp.sample_size);
    ASSERT_STR_EQ("classifier", hp.predictor_type);
    ASSERT_STR_EQ("faiss.Flat", hp.index_type);
    ASSERT_STR_EQ("L2", hp.index_metric);
    ASSERT_STR_EQ("none", hp.dimension_reduction_type);
    ASSERT_UINT_EQ(0, hp.dimension_reduction_target);
    ASSERT_UINT_EQ(0, hp.ivf_nlists); /* auto */
    ASSERT_UINT_EQ(0, hp.pq_m);
    ASSERT_UINT_EQ(5000, hp.mini_batch_size);
    ASSERT_STR_EQ("auto", hp.values[KNN_HP_FAISS_INDEX_IVF_NLISTS]);
    ASSERT_TRUE(hp.values[KNN_HP_FAISS_INDEX_PQ_M] == NULL);
    knn_hyperparams_clean_up(&hp);
    return 0;
}

int test_hp_json_integers_accepted(void)
{
    struct knn_hyperparams hp;
    ASSERT_OK(s_parse(&hp, "\"feature_dim\": 54, \"k\": 1024, \"sample_size\": 7, \"predictor_type\": \"regressor\", "
                           "\"mini_batch_size\": 100, \"index_type\": \"faiss.IVFFlat\", \"faiss_index_ivf_nlists\": 3"));
    ASSERT_UINT_EQ(54, hp.feature_dim);
    ASSERT_UINT_EQ(1024, hp.k);
    ASSERT_UINT_EQ(7, hp.sample_size);
    ASSERT_UINT_EQ(100, hp.mini_batch_size);
    ASSERT_UINT_EQ(3, hp.ivf_nlists);
    ASSERT_STR_EQ("54", hp.values[KNN_HP_FEATURE_DIM]);
    knn_hyperparams_clean_up(&hp);
    return 0;
}

int test_hp_missing_required(void)
{
    ASSERT_REJECTED("\"feature_dim\": \"54\", \"predictor_type\": \"classifier\"",
                    "No value(s) were specified for 'k', 'sample_size' which are required hyperparameter(s)");
    ASSERT_REJECTED("", "'feature_dim', 'k', 'predictor_type', 'sample_size'");
    return 0;
}

int test_hp_unknown_key_rejected(void)
{
    ASSERT_REJECTED(BASE ", \"mini_batch_siz\": \"10\"",
                    "Additional hyperparameters are not allowed ('mini_batch_siz' was unexpected)");
    ASSERT_REJECTED(BASE ", \"a\": \"1\", \"_b\": \"2\"", "('a', '_b' were unexpected)");
    return 0;
}

int test_hp_integer_pattern(void)
{
    static const char *const bad[] = {"\"0\"", "\"-1\"", "\"+5\"", "\"05\"", "\" 5\"", "\"5 \"", "\"10.0\"",
                                      "\"1e3\"", "\"\"", "\"abc\"", "0", "-3", "10.0", "1e3", "true", "null",
                                      "[5]", "{}"};
    char members[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(members, sizeof(members),
                 "\"feature_dim\": %s, \"k\": \"10\", \"sample_size\": \"200000\", \"predictor_type\": \"classifier\"",
                 bad[i]);
        ASSERT_REJECTED(members, "feature_dim: ");
        ASSERT_REJECTED(members, "expected a positive integer (a JSON integer >= 1 or a string matching "
                                 "^([1-9][0-9]*)$)");
    }
    ASSERT_REJECTED("\"feature_dim\": \"abc\", \"k\": \"10\", \"sample_size\": \"1\", \"predictor_type\": \"regressor\"",
                    "feature_dim: 'abc' is not valid");
    ASSERT_ACCEPTED("\"feature_dim\": \"9\", \"k\": \"10\", \"sample_size\": \"1\", \"predictor_type\": \"regressor\"");
    return 0;
}

int test_hp_integer_overflow(void)
{
    ASSERT_REJECTED("\"feature_dim\": \"54\", \"k\": \"10\", \"sample_size\": \"99999999999999999999999\", "
                    "\"predictor_type\": \"classifier\"",
                    "sample_size: '99999999999999999999999' is too large");
    return 0;
}

int test_hp_k_at_most_1024(void)
{
    ASSERT_ACCEPTED("\"feature_dim\": \"5\", \"k\": \"1024\", \"sample_size\": \"10\", \"predictor_type\": \"classifier\"");
    ASSERT_REJECTED("\"feature_dim\": \"5\", \"k\": \"1025\", \"sample_size\": \"10\", \"predictor_type\": \"classifier\"",
                    "k: '1025' is out of range, expected an integer from 1 to 1024");
    ASSERT_REJECTED("\"feature_dim\": \"5\", \"k\": 2000, \"sample_size\": \"10\", \"predictor_type\": \"classifier\"",
                    "k: 2000 is out of range");
    return 0;
}

int test_hp_enums_case_sensitive(void)
{
    ASSERT_REJECTED("\"feature_dim\": \"5\", \"k\": \"1\", \"sample_size\": \"10\", \"predictor_type\": \"Classifier\"",
                    "predictor_type: 'Classifier' is not valid, expected one of 'classifier', 'regressor'");
    ASSERT_REJECTED(BASE ", \"index_type\": \"faiss.flat\"",
                    "index_type: 'faiss.flat' is not valid, expected one of 'faiss.Flat', 'faiss.IVFFlat', "
                    "'faiss.IVFPQ'");
    ASSERT_REJECTED(BASE ", \"index_metric\": \"l2\"", "index_metric: 'l2' is not valid");
    ASSERT_REJECTED(BASE ", \"dimension_reduction_type\": \"SIGN\", \"dimension_reduction_target\": \"4\"",
                    "dimension_reduction_type: 'SIGN' is not valid");
    ASSERT_REJECTED(BASE ", \"index_metric\": 1", "index_metric: 1 is not valid");
    ASSERT_ACCEPTED(BASE ", \"index_metric\": \"COSINE\", \"index_type\": \"faiss.IVFFlat\"");
    ASSERT_ACCEPTED(BASE ", \"index_metric\": \"INNER_PRODUCT\"");
    return 0;
}

int test_hp_nlists_auto_or_integer(void)
{
    ASSERT_ACCEPTED(BASE ", \"index_type\": \"faiss.IVFFlat\", \"faiss_index_ivf_nlists\": \"auto\"");
    ASSERT_ACCEPTED(BASE ", \"index_type\": \"faiss.IVFFlat\", \"faiss_index_ivf_nlists\": \"100\"");
    ASSERT_REJECTED(BASE ", \"faiss_index_ivf_nlists\": \"Auto\"",
                    "faiss_index_ivf_nlists: 'Auto' is not valid, expected 'auto' or a positive integer");
    ASSERT_REJECTED(BASE ", \"faiss_index_ivf_nlists\": \"0\"", "faiss_index_ivf_nlists: '0' is not valid");
    return 0;
}

int test_hp_pq_m_allowed_list(void)
{
    static const int allowed[] = {1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96};
    char members[512];
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        snprintf(members, sizeof(members), BASE ", \"index_type\": \"faiss.IVFPQ\", \"faiss_index_pq_m\": \"%d\"",
                 allowed[i]);
        ASSERT_ACCEPTED(members);
    }
    ASSERT_REJECTED(BASE ", \"index_type\": \"faiss.IVFPQ\", \"faiss_index_pq_m\": \"5\"",
                    "faiss_index_pq_m: '5' is not valid, expected one of 1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, "
                    "48, 56, 64, 96");
    ASSERT_REJECTED(BASE ", \"index_type\": \"faiss.IVFPQ\", \"faiss_index_pq_m\": 128", "faiss_index_pq_m: 128");
    return 0;
}

int test_hp_reduction_type_requires_target(void)
{
    ASSERT_REJECTED(BASE ", \"dimension_reduction_type\": \"sign\"",
                    "dimension_reduction_target is required when dimension_reduction_type is set");
    struct knn_hyperparams hp;
    ASSERT_OK(s_parse(&hp, BASE ", \"dimension_reduction_type\": \"fjlt\", \"dimension_reduction_target\": \"8\""));
    ASSERT_STR_EQ("fjlt", hp.dimension_reduction_type);
    ASSERT_UINT_EQ(8, hp.dimension_reduction_target);
    knn_hyperparams_clean_up(&hp);
    return 0;
}

int test_hp_target_without_type(void)
{
    ASSERT_REJECTED(BASE ", \"dimension_reduction_target\": \"8\"",
                    "dimension_reduction_target should only be set when dimension_reduction_type is set");
    return 0;
}

int test_hp_target_with_type_none(void)
{
    ASSERT_REJECTED(BASE ", \"dimension_reduction_type\": \"none\", \"dimension_reduction_target\": \"8\"",
                    "dimension_reduction_target should only be set when dimension_reduction_type is 'sign' or "
                    "'fjlt'");
    struct knn_hyperparams hp;
    ASSERT_OK(s_parse(&hp, BASE ", \"dimension_reduction_type\": \"none\""));
    ASSERT_STR_EQ("none", hp.dimension_reduction_type);
    knn_hyperparams_clean_up(&hp);
    return 0;
}

int test_hp_target_below_feature_dim(void)
{
    ASSERT_REJECTED(BASE ", \"dimension_reduction_type\": \"sign\", \"dimension_reduction_target\": \"54\"",
                    "dimension_reduction_target (54) must be less than feature_dim (54)");
    ASSERT_REJECTED(BASE ", \"dimension_reduction_type\": \"sign\", \"dimension_reduction_target\": \"60\"",
                    "dimension_reduction_target (60) must be less than feature_dim (54)");
    ASSERT_ACCEPTED(BASE ", \"dimension_reduction_type\": \"sign\", \"dimension_reduction_target\": \"53\"");
    return 0;
}

int test_hp_ivfpq_needs_l2(void)
{
    ASSERT_REJECTED(BASE ", \"index_type\": \"faiss.IVFPQ\", \"faiss_index_pq_m\": \"2\", "
                         "\"index_metric\": \"INNER_PRODUCT\"",
                    "index_metric 'INNER_PRODUCT' is not supported with index_type 'faiss.IVFPQ'");
    ASSERT_REJECTED(BASE ", \"index_type\": \"faiss.IVFPQ\", \"faiss_index_pq_m\": \"2\", \"index_metric\": \"COSINE\"",
                    "index_metric 'COSINE' is not supported with index_type 'faiss.IVFPQ'");
    ASSERT_ACCEPTED(BASE ", \"index_type\": \"faiss.IVFPQ\", \"faiss_index_pq_m\": \"2\", \"index_metric\": \"L2\"");
    return 0;
}

int test_hp_pq_m_only_with_ivfpq(void)
{
    ASSERT_REJECTED(BASE ", \"faiss_index_pq_m\": \"8\"",
                    "faiss_index_pq_m should only be set when index_type is 'faiss.IVFPQ'");
    ASSERT_REJECTED(BASE ", \"index_type\": \"faiss.IVFFlat\", \"faiss_index_pq_m\": \"8\"",
                    "faiss_index_pq_m should only be set when index_type is 'faiss.IVFPQ'");
    return 0;
}

/* IVFPQ without faiss_index_pq_m (optional in AWS's schema): the largest allowed m <= dim / 4. */
static int s_auto_pq_m(const char *members, uint64_t want)
{
    struct knn_hyperparams hp;
    ASSERT_OK(s_parse(&hp, members));
    ASSERT_UINT_EQ(want, hp.pq_m);
    ASSERT_TRUE(hp.values[KNN_HP_FAISS_INDEX_PQ_M] == NULL); /* not given: not in the final configuration */
    knn_hyperparams_clean_up(&hp);
    return 0;
}

int test_hp_ivfpq_auto_pq_m(void)
{
#define IVFPQ_HPS(dim) "\"feature_dim\": \"" dim "\", \"k\": \"10\", \"sample_size\": \"2000\", " \
                       "\"predictor_type\": \"classifier\", \"index_type\": \"faiss.IVFPQ\""
    /* 54 / 4 = 13.5: 12 (then padded to 60); SIFT's 128: 32; 784 / 4 = 196: capped at 96. */
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("54"), 12));
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("128"), 32));
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("784"), 96));
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("16"), 4));
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("15"), 3));
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("8"), 2));
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("7"), 1));
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("1"), 1));
    /* With dimension reduction the reduced dimension counts: 40 / 4 = 10 -> 8. */
    ASSERT_OK(s_auto_pq_m(IVFPQ_HPS("200") ", \"dimension_reduction_type\": \"sign\", "
                                          "\"dimension_reduction_target\": \"40\"", 8));
    /* A given value is kept. */
    struct knn_hyperparams hp;
    ASSERT_OK(s_parse(&hp, IVFPQ_HPS("128") ", \"faiss_index_pq_m\": \"3\""));
    ASSERT_UINT_EQ(3, hp.pq_m);
    knn_hyperparams_clean_up(&hp);
    /* Other index types keep 0. */
    ASSERT_OK(s_parse(&hp, BASE ", \"index_type\": \"faiss.IVFFlat\""));
    ASSERT_UINT_EQ(0, hp.pq_m);
    knn_hyperparams_clean_up(&hp);
#undef IVFPQ_HPS
    return 0;
}

int test_hp_platform_keys_accepted(void)
{
    struct knn_hyperparams hp;
    ASSERT_OK(s_parse(&hp, BASE ", \"_tuning_objective_metric\": \"test:accuracy\", \"_kvstore\": \"dist_async\", "
                                "\"_num_gpus\": \"auto\", \"_num_kv_servers\": \"auto\", \"_log_level\": \"info\", "
                                "\"epochs\": \"1\""));
    ASSERT_STR_EQ("test:accuracy", hp.values[KNN_HP_TUNING_OBJECTIVE_METRIC]);
    ASSERT_STR_EQ("dist_async", hp.values[KNN_HP_KVSTORE]);
    ASSERT_STR_EQ("1", hp.values[KNN_HP_EPOCHS]);
    knn_hyperparams_clean_up(&hp);
    ASSERT_ACCEPTED(BASE ", \"epochs\": 1, \"_num_gpus\": 0");
    return 0;
}

int test_hp_all_violations_at_once(void)
{
    struct knn_hyperparams hp;
    ASSERT_ERR(KNN_ECONFIG, s_parse(&hp, "\"feature_dim\": \"abc\", \"k\": \"0\", \"predictor_type\": \"Classifier\", "
                                         "\"index_type\": \"faiss.IVFPQ\", \"index_metric\": \"COSINE\", "
                                         "\"dimension_reduction_type\": \"sign\", \"typo\": \"1\""));
    ASSERT_STR_EQ(
        "Hyperparameter validation failed: "
        "No value(s) were specified for 'sample_size' which are required hyperparameter(s); "
        "Additional hyperparameters are not allowed ('typo' was unexpected); "
        "feature_dim: 'abc' is not valid, expected a positive integer (a JSON integer >= 1 or a string matching "
        "^([1-9][0-9]*)$); "
        "k: '0' is not valid, expected a positive integer (a JSON integer >= 1 or a string matching ^([1-9][0-9]*)$); "
        "predictor_type: 'Classifier' is not valid, expected one of 'classifier', 'regressor' (case-sensitive); "
        "dimension_reduction_target is required when dimension_reduction_type is set; "
        "index_metric 'COSINE' is not supported with index_type 'faiss.IVFPQ' (use 'L2')",
        knn_error_message());
    knn_hyperparams_clean_up(&hp);
    return 0;
}

int test_hp_not_an_object(void)
{
    struct knn_hyperparams hp;
    knn_hyperparams_init(&hp);
    json_t *arr = json_array();
    ASSERT_ERR(KNN_ECONFIG, knn_hyperparams_parse(&hp, arr));
    ASSERT_CONTAINS(knn_error_message(), "must be a JSON object");
    json_decref(arr);
    return 0;
}

int test_hp_format_like_python_dict(void)
{
    struct knn_hyperparams hp;
    struct knn_buf buf = KNN_BUF_INIT(4096);
    ASSERT_OK(s_parse(&hp, BASE ", \"_kvstore\": \"dist_async\""));
    ASSERT_OK(knn_hyperparams_format(&hp, 0, &buf));
    ASSERT_STR_EQ("{'feature_dim': '54', 'k': '10', 'predictor_type': 'classifier', 'sample_size': '200000', "
                  "'index_type': 'faiss.Flat', 'index_metric': 'L2', 'faiss_index_ivf_nlists': 'auto', "
                  "'mini_batch_size': '5000', '_kvstore': 'dist_async'}",
                  (char *)buf.data);
    knn_buf_reset(&buf);
    ASSERT_OK(knn_hyperparams_format(&hp, 1, &buf));
    ASSERT_STR_EQ("{'index_type': 'faiss.Flat', 'index_metric': 'L2', 'faiss_index_ivf_nlists': 'auto', "
                  "'mini_batch_size': '5000'}",
                  (char *)buf.data);
    json_t *obj = knn_hyperparams_to_json(&hp);
    ASSERT_TRUE(obj != NULL);
    ASSERT_STR_EQ("200000", json_string_value(json_object_get(obj, "sample_size")));
    ASSERT_STR_EQ("auto", json_string_value(json_object_get(obj, "faiss_index_ivf_nlists")));
    json_decref(obj);
    knn_buf_clean_up(&buf);
    knn_hyperparams_clean_up(&hp);
    return 0;
}

/* Every allocation of a parse failing in turn gives KNN_ENOMEM and leaks nothing (curl torture). */
int test_hp_allocation_failures(void)
{
    const char *members = BASE ", \"index_type\": \"faiss.IVFPQ\", \"faiss_index_pq_m\": \"2\", \"_kvstore\": \"x\"";
    struct knn_hyperparams hp;
    json_t *obj;
    char text[1024];
    snprintf(text, sizeof(text), "{%s}", members);
    obj = json_loads(text, 0, NULL);
    ASSERT_TRUE(obj != NULL);
    knn_hyperparams_init(&hp);
    knn_alloc_fail_after(0);
    ASSERT_OK(knn_hyperparams_parse(&hp, obj));
    uint64_t allocations = knn_alloc_fail_after(0);
    knn_hyperparams_clean_up(&hp);
    ASSERT_TRUE(allocations > 0);
    for (uint64_t n = 1; n <= allocations; n++) {
        knn_alloc_fail_after(n);
        int rc = knn_hyperparams_parse(&hp, obj);
        knn_alloc_fail_after(0);
        ASSERT_TRUE(rc == KNN_ENOMEM || rc == 0);
        knn_hyperparams_clean_up(&hp);
    }
    json_decref(obj);
    return 0;
}
