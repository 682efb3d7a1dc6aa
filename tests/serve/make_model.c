/*
 * make_model: build a k-NN model with the algorithms library and save it (the three files of spec
 * §6) for the serve and transform tests, from rows and labels written by numpy.
 *
 *   make_model OUT_DIR X_F32 LABELS_F32 DIM K classifier|regressor L2|INNER_PRODUCT|COSINE
 *              faiss.Flat|faiss.IVFFlat|faiss.IVFPQ [NLIST [PQ_M]]
 *
 * X_F32 holds n*DIM little-endian float32 values (row-major), LABELS_F32 n float32 values.
 */
#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <stdio.h>
#include <stdlib.h>

static float *s_read_floats(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    float *v = knn_malloc((size_t)size + 1);
    if (v && fread(v, 1, (size_t)size, f) != (size_t)size) {
        knn_free(v);
        v = NULL;
    }
    fclose(f);
    *count = (size_t)size / sizeof(float);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 9) {
        fprintf(stderr, "usage: make_model OUT_DIR X_F32 LABELS_F32 DIM K PREDICTOR METRIC INDEX [NLIST [PQ_M]]\n");
        return 2;
    }
    struct knn_model_config cfg = KNN_MODEL_CONFIG_INIT;
    size_t nx = 0, nl = 0;
    float *x = s_read_floats(argv[2], &nx), *labels = s_read_floats(argv[3], &nl);
    cfg.feature_dim = strtoul(argv[4], NULL, 10);
    cfg.k = strtoul(argv[5], NULL, 10);
    if (!x || !labels || !cfg.feature_dim || nx != nl * cfg.feature_dim || knn_predictor_parse(&cfg.predictor, argv[6]) ||
        knn_model_metric_parse(&cfg.metric, argv[7]) || knn_index_type_parse(&cfg.index_type, argv[8])) {
        fprintf(stderr, "make_model: bad arguments or input files: %s\n", knn_error_message());
        return 2;
    }
    if (argc > 9)
        cfg.nlist = strtoul(argv[9], NULL, 10);
    if (argc > 10)
        cfg.pq_m = strtoul(argv[10], NULL, 10);
    struct knn_model *model = NULL;
    int rc = knn_model_build(&model, &cfg, nl, x, labels);
    if (rc == 0)
        rc = knn_model_save(model, argv[1]);
    if (rc)
        fprintf(stderr, "make_model: %s\n", knn_error_message());
    knn_model_destroy(model);
    knn_free(x);
    knn_free(labels);
    return rc ? 1 : 0;
}
