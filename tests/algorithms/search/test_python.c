/*
 * Comparisons with references computed in Python (reference.py, run with $KNN_PYTHON at test time
 * into a temporary directory; nothing is committed):
 * - accuracy on scikit-learn's digits: our classifier (Flat, L2) against KNeighborsClassifier with
 *   the same k, within 0.5 percentage points of test accuracy;
 * - MSE on scikit-learn's diabetes: our regressor against KNeighborsRegressor, within 0.5%;
 * - the sign and fjlt transforms against an independent numpy implementation of the documented
 *   construction (same generator, same draws), so the transform is pinned across machines.
 */
#include "knn_test.h"

#include "knn/algorithms/dimred.h"
#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *s_python(void)
{
    const char *p = getenv("KNN_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static int s_have_sklearn(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s -c 'import numpy, sklearn' >/dev/null 2>&1", s_python());
    return system(cmd) == 0;
}

/* Run `reference.py <command> <dir> <args>` into a fresh directory `dir`. */
static int s_reference(char *dir, size_t size, const char *command, const char *args)
{
    char cmd[4096], script[1024];
    ASSERT_OK(knn_test_mkdtemp(dir, size));
    knn_test_source_path(script, sizeof(script), "tests/algorithms/search/reference.py");
    snprintf(cmd, sizeof(cmd), "%s '%s' %s '%s' %s", s_python(), script, command, dir, args);
    if (system(cmd) != 0)
        FAIL("%s failed", cmd);
    return 0;
}

/* A raw float32 file of the reference directory, with its element count. */
static float *s_floats(const char *dir, const char *name, size_t *count)
{
    char path[1024];
    uint8_t *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (knn_test_read_file(path, &data, &len) != 0)
        return NULL;
    *count = len / sizeof(float);
    return (float *)data;
}

/* A number from meta.json ("key": value). */
static double s_meta(const char *dir, const char *key)
{
    char path[1024], pat[128];
    uint8_t *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/meta.json", dir);
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    if (knn_test_read_file(path, &data, &len) != 0)
        return NAN;
    char *text = knn_malloc(len + 1);
    memcpy(text, data, len);
    text[len] = 0;
    knn_free(data);
    const char *p = strstr(text, pat);
    double v = p ? strtod(p + strlen(pat), NULL) : NAN;
    knn_free(text);
    return v;
}

struct s_split {
    float *xtr, *ytr, *xte, *yte;
    size_t ntr, nte, d;
};

static void s_split_free(struct s_split *s)
{
    knn_free(s->xtr);
    knn_free(s->ytr);
    knn_free(s->xte);
    knn_free(s->yte);
}

static int s_load_split(const char *dir, struct s_split *s)
{
    size_t nxtr = 0, nxte = 0;
    memset(s, 0, sizeof(*s));
    s->xtr = s_floats(dir, "train_x", &nxtr);
    s->ytr = s_floats(dir, "train_y", &s->ntr);
    s->xte = s_floats(dir, "test_x", &nxte);
    s->yte = s_floats(dir, "test_y", &s->nte);
    ASSERT_TRUE(s->xtr && s->ytr && s->xte && s->yte && s->ntr > 0 && s->nte > 0);
    s->d = nxtr / s->ntr;
    ASSERT_UINT_EQ(s->ntr * s->d, nxtr);
    ASSERT_UINT_EQ(s->nte * s->d, nxte);
    ASSERT_UINT_EQ((size_t)s_meta(dir, "d"), s->d);
    return 0;
}

static int s_predict_split(const struct s_split *s, size_t k, enum knn_predictor pred, struct knn_predictions *p)
{
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    cfg.feature_dim = s->d;
    cfg.k = k;
    cfg.predictor = pred;
    struct knn_model *m = NULL;
    ASSERT_OK(knn_model_build(&m, &cfg, s->ntr, s->xtr, s->ytr));
    int rc = knn_model_predict(m, s->nte, s->xte, NULL, p);
    knn_model_destroy(m);
    ASSERT_OK(rc);
    return 0;
}

int test_python_digits_classifier_matches_sklearn(void)
{
    if (!s_have_sklearn())
        SKIP("%s cannot import numpy and sklearn (python3-sklearn)", s_python());
    size_t ks[] = {1, 5, 15};
    for (size_t i = 0; i < 3; i++) {
        char dir[512], args[32];
        struct s_split s;
        struct knn_predictions p;
        snprintf(args, sizeof(args), "%zu", ks[i]);
        ASSERT_OK(s_reference(dir, sizeof(dir), "digits", args));
        ASSERT_OK(s_load_split(dir, &s));
        ASSERT_OK(s_predict_split(&s, ks[i], KNN_PREDICTOR_CLASSIFIER, &p));
        size_t right = 0;
        for (size_t j = 0; j < s.nte; j++)
            right += p.predicted[j] == s.yte[j];
        double ours = (double)right / (double)s.nte, ref = s_meta(dir, "accuracy");
        fprintf(stderr, "digits k=%zu: accuracy ours %.4f, scikit-learn %.4f\n", ks[i], ours, ref);
        knn_predictions_clean_up(&p);
        s_split_free(&s);
        knn_test_rmtree(dir);
        ASSERT_TRUE(ref > 0.9); /* the reference itself is sane */
        ASSERT_NEAR(ref, ours, 0.005);
    }
    return 0;
}

int test_python_diabetes_regressor_matches_sklearn(void)
{
    if (!s_have_sklearn())
        SKIP("%s cannot import numpy and sklearn (python3-sklearn)", s_python());
    size_t ks[] = {3, 10};
    for (size_t i = 0; i < 2; i++) {
        char dir[512], args[32];
        struct s_split s;
        struct knn_predictions p;
        snprintf(args, sizeof(args), "%zu", ks[i]);
        ASSERT_OK(s_reference(dir, sizeof(dir), "diabetes", args));
        ASSERT_OK(s_load_split(dir, &s));
        ASSERT_OK(s_predict_split(&s, ks[i], KNN_PREDICTOR_REGRESSOR, &p));
        double se = 0;
        for (size_t j = 0; j < s.nte; j++)
            se += ((double)p.predicted[j] - s.yte[j]) * ((double)p.predicted[j] - s.yte[j]);
        double ours = se / (double)s.nte, ref = s_meta(dir, "mse");
        fprintf(stderr, "diabetes k=%zu: MSE ours %.2f, scikit-learn %.2f\n", ks[i], ours, ref);
        knn_predictions_clean_up(&p);
        s_split_free(&s);
        knn_test_rmtree(dir);
        ASSERT_TRUE(ref > 0);
        ASSERT_NEAR(ref, ours, 0.005 * ref);
    }
    return 0;
}

int test_python_dimred_matches_numpy_construction(void)
{
    if (!s_have_sklearn())
        SKIP("%s cannot import numpy (python3-numpy)", s_python());
    struct {
        enum knn_dimred_type type;
        size_t d, t;
        uint64_t seed;
    } cases[] = {
        {KNN_DIMRED_SIGN, 50, 17, 3},
        {KNN_DIMRED_SIGN, 130, 64, 12345678901ull},
        {KNN_DIMRED_FJLT, 100, 30, 7},
        {KNN_DIMRED_FJLT, 64, 64, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[512], args[128];
        size_t n = 6, nx = 0, ny = 0;
        snprintf(
            args, sizeof(args), "%s %zu %zu %llu %zu", knn_dimred_type_name(cases[i].type), cases[i].d, cases[i].t,
            (unsigned long long)cases[i].seed, n);
        ASSERT_OK(s_reference(dir, sizeof(dir), "dimred", args));
        float *x = s_floats(dir, "x", &nx), *want = s_floats(dir, "y", &ny);
        ASSERT_TRUE(x && want);
        ASSERT_UINT_EQ(n * cases[i].d, nx);
        ASSERT_UINT_EQ(n * cases[i].t, ny);
        struct knn_dimred *tr = NULL;
        float *got = knn_malloc_array(ny, sizeof(float));
        ASSERT_OK(knn_dimred_new(&tr, cases[i].type, cases[i].d, cases[i].t, cases[i].seed));
        ASSERT_OK(knn_dimred_apply(tr, n, x, got));
        for (size_t j = 0; j < ny; j++)
            ASSERT_NEAR(want[j], got[j], 1e-4 * (1 + fabs(want[j])));
        knn_dimred_destroy(tr);
        knn_free(x);
        knn_free(want);
        knn_free(got);
        knn_test_rmtree(dir);
    }
    return 0;
}
