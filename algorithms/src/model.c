/*
 * The model pipeline: configuration checks, the transform (dimension reduction, COSINE
 * normalization, PQ zero-padding), building the index, and prediction (majority vote or mean).
 * The three model files are model_io.c's.
 */
#include "model_impl.h"

#include "distances.h"
#include "index_flat.h"
#include "index_ivf.h"

#include "knn/algorithms/recall.h"
#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Rows transformed and searched per step of build and predict (bounds the scratch memory). */
#define S_CHUNK_ROWS 4096
/* knn_model_build_consume adds owned rows in chunks of this many, giving back each chunk's pages:
 * the peak is the sample plus one chunk, not the sample twice. */
#define S_CONSUME_ROWS 16384

static size_t s_round_up(size_t x, size_t m)
{
    return (x + m - 1) / m * m;
}

int knn__model_setup_transform(struct knn_model *model)
{
    const struct knn_model_config *cfg = &model->cfg;
    if (cfg->feature_dim == 0)
        return knn_error_set(KNN_ECONFIG, "feature_dim must be positive");
    if (cfg->k == 0)
        return knn_error_set(KNN_ECONFIG, "k must be positive");
    if (cfg->predictor != KNN_PREDICTOR_CLASSIFIER && cfg->predictor != KNN_PREDICTOR_REGRESSOR)
        return knn_error_set(KNN_ECONFIG, "unknown predictor type %d", (int)cfg->predictor);
    if (cfg->metric != KNN_MODEL_METRIC_L2 && cfg->metric != KNN_MODEL_METRIC_INNER_PRODUCT &&
        cfg->metric != KNN_MODEL_METRIC_COSINE)
        return knn_error_set(KNN_ECONFIG, "unknown metric %d", (int)cfg->metric);
    if (cfg->index_type != KNN_INDEX_FLAT && cfg->index_type != KNN_INDEX_IVFFLAT && cfg->index_type != KNN_INDEX_IVFPQ &&
        cfg->index_type != KNN_INDEX_IVFSQ8 && cfg->index_type != KNN_INDEX_HNSW)
        return knn_error_set(KNN_ECONFIG, "unknown index type %d", (int)cfg->index_type);
    if (cfg->index_type == KNN_INDEX_IVFPQ && cfg->metric != KNN_MODEL_METRIC_L2)
        return knn_error_set(
            KNN_ECONFIG, "index_metric %s is not supported with faiss.IVFPQ (L2 only)",
            knn_model_metric_name(cfg->metric));
    if (cfg->index_type == KNN_INDEX_IVFPQ && cfg->pq_m == 0)
        return knn_error_set(KNN_ECONFIG, "faiss.IVFPQ needs faiss_index_pq_m");

    size_t d0 = cfg->feature_dim;
    if (cfg->dimred != KNN_DIMRED_NONE) {
        if (cfg->dimred_target == 0)
            return knn_error_set(KNN_ECONFIG, "dimension_reduction_target must be positive");
        if (cfg->index_type == KNN_INDEX_IVFPQ && cfg->dimred_target % cfg->pq_m != 0)
            return knn_error_set(
                KNN_ECONFIG, "dimension_reduction_target %zu is not a multiple of faiss_index_pq_m %zu",
                cfg->dimred_target, cfg->pq_m);
        knn_dimred_destroy(model->dimred);
        model->dimred = NULL;
        int rc = knn_dimred_new(&model->dimred, cfg->dimred, cfg->feature_dim, cfg->dimred_target, cfg->dimred_seed);
        if (rc != 0)
            return rc;
        d0 = cfg->dimred_target;
    }
    model->effective_dim = cfg->index_type == KNN_INDEX_IVFPQ ? s_round_up(d0, cfg->pq_m) : d0;
    model->normalize = cfg->metric == KNN_MODEL_METRIC_COSINE;
    return 0;
}

int knn__model_transform(const struct knn_model *model, size_t n, const float *x, float *out)
{
    size_t in = model->cfg.feature_dim, d = model->effective_dim;
    size_t d0 = model->dimred ? knn_dimred_output_dim(model->dimred) : in;
    if (n == 0)
        return 0;
    if (model->dimred) {
        if (d0 == d) {
            int rc = knn_dimred_apply(model->dimred, n, x, out);
            if (rc != 0)
                return rc;
        } else {
            /* Not reached for models built here (the target is raised instead), but a model file may ask. */
            float *tmp = knn_malloc_array(n, d0 * sizeof(float));
            if (!tmp)
                return KNN_ENOMEM;
            int rc = knn_dimred_apply(model->dimred, n, x, tmp);
            for (size_t i = 0; rc == 0 && i < n; i++) {
                memcpy(out + i * d, tmp + i * d0, d0 * sizeof(float));
                memset(out + i * d + d0, 0, (d - d0) * sizeof(float));
            }
            knn_free(tmp);
            if (rc != 0)
                return rc;
        }
    } else if (d == in) {
        memcpy(out, x, n * in * sizeof(float));
    } else {
        for (size_t i = 0; i < n; i++) {
            memcpy(out + i * d, x + i * in, in * sizeof(float));
            memset(out + i * d + in, 0, (d - in) * sizeof(float));
        }
    }
    if (model->normalize)
        knn__normalize_rows(out, n, d);
    return 0;
}

void knn_model_destroy(struct knn_model *model)
{
    if (!model)
        return;
    knn_dimred_destroy(model->dimred);
    knn_index_destroy(model->index);
    knn_free(model->labels);
    knn_free(model);
}

/* The first non-finite value of x (n rows, d wide): 1 and its position, or 0. */
static int s_find_nonfinite(const float *x, size_t n, size_t d, size_t *row, size_t *col)
{
    for (size_t i = 0; i < n * d; i++) {
        if (!isfinite(x[i])) {
            *row = i / d;
            *col = i % d;
            return 1;
        }
    }
    return 0;
}

/*
 * Give the whole pages of rows [from, to) of x back to the system: knn_model_build_consume has
 * added them to the index and will not read them again. The block stays allocated (freed as usual
 * at the end); a dropped page would read back as zeros. Memory is private and anonymous, so this
 * is safe wherever the allocator put the block.
 */
static void s_release_rows(float *x, size_t from, size_t to, size_t dim)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
    uintptr_t lo = (uintptr_t)(x + from * dim), hi = (uintptr_t)(x + to * dim);
    lo = (lo + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    hi &= ~((uintptr_t)page - 1);
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* Add n rows of x (already transformed) a chunk at a time; with `release`, drop each chunk's pages. */
static int s_add_chunks(struct knn_index *index, size_t n, float *x, size_t dim, int release)
{
    int rc;
    if (!release)
        return knn_index_add(index, n, x); /* one call: a Flat index sizes its storage exactly */
    for (size_t i = 0; i < n; i += S_CONSUME_ROWS) {
        size_t m = n - i < S_CONSUME_ROWS ? n - i : S_CONSUME_ROWS;
        if ((rc = knn_index_add(index, m, x + i * dim)) != 0)
            return rc;
        if (release)
            s_release_rows(x, i, i + m, dim);
    }
    return 0;
}

/* The held-out queries' exact answers, from the n rows the index is being built from (index space). */
static int s_recall_truth(struct knn_recall_truth **out, const struct knn_model *model, size_t n, const float *base)
{
    const struct knn_model_config *c = &model->cfg;
    *out = NULL;
    if (c->index_type == KNN_INDEX_FLAT || (c->recall_queries == 0 && c->target_recall <= 0.0) || n < 2)
        return 0;
    size_t q = c->recall_queries ? c->recall_queries : knn_recall_default_queries(n);
    enum knn_metric metric = c->metric == KNN_MODEL_METRIC_L2 ? KNN_METRIC_L2 : KNN_METRIC_INNER_PRODUCT;
    /* Its own seed, so the queries do not depend on the k-means draws. */
    return knn_recall_truth_new(out, base, n, model->effective_dim, metric, q, c->k, c->seed ^ 0x726563616c6cULL,
                                c->threads);
}

/* Measure the built index's recall on the truth's queries, tuning nprobe first when a target is set. */
static int s_recall(struct knn_model *model, const struct knn_recall_truth *truth, uint64_t t0)
{
    struct knn_model_config *c = &model->cfg;
    struct knn_model_recall *r = &model->recall;
    int rc;
    memset(r, 0, sizeof(*r));
    r->k = knn_recall_truth_k(truth);
    r->queries = knn_recall_truth_queries(truth);
    int hnsw = c->index_type == KNN_INDEX_HNSW;
    r->param = hnsw ? "efSearch" : "nprobe";
    r->target = c->target_recall > 0.0 ? c->target_recall : 0.0;
    if (r->target > 0.0) {
        struct knn_recall_tuning tu;
        if ((rc = knn_recall_tune(&tu, model->index, truth, r->target)) != 0)
            return rc;
        if (hnsw) {
            if ((rc = knn_index_set_ef_search(model->index, tu.setting)) != 0)
                return rc;
            c->ef_search = tu.setting;
        } else {
            if ((rc = knn_index_set_nprobe(model->index, tu.setting)) != 0)
                return rc;
            c->nprobe = tu.setting;
        }
        r->param_value = tu.setting;
        r->value = tu.recall;
        r->reached = tu.reached;
        r->evaluated = tu.evaluated;
    } else {
        if ((rc = knn_recall_measure(&r->value, model->index, truth, NULL)) != 0)
            return rc;
        r->param_value = hnsw ? knn_index_get_options(model->index)->ef_search : knn_index_get_options(model->index)->nprobe;
        r->evaluated = 1;
    }
    r->seconds = knn_clock_seconds_since(t0);
    model->has_recall = 1;
    return 0;
}

/*
 * Build from n rows. With `own` (knn_model_build_consume) x and labels are ours: they are taken
 * into the model where possible (Flat storage, labels), released page by page as they are added
 * elsewhere, and freed in every case; without it they are the caller's and only read.
 */
static int s_build(
    struct knn_model **out, const struct knn_model_config *cfg, size_t n, float *x, float *labels, int own)
{
    struct knn_model *model = NULL;
    struct knn_recall_truth *truth = NULL;
    uint64_t recall_ns = 0; /* time spent on recall: the exact search before adding, then the measure */
    float *xt = NULL;
    int rc = 0;

    if (!out || !cfg || (n > 0 && (!x || !labels))) {
        rc = knn_error_set(KNN_EINVAL, "model build: NULL argument");
        goto on_error;
    }
    *out = NULL;
    if (n == 0) {
        rc = knn_error_set(KNN_EINVAL, "model build: no rows to index");
        goto on_error;
    }
    if (!(model = knn_calloc(1, sizeof(*model)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    model->cfg = *cfg;
    struct knn_model_config *c = &model->cfg;

    /* Spec §2.6: IVFPQ needs pq_m | dim. With reduction the target is raised (and stored raised, so
     * a loaded model rebuilds the same transform); without, rows are zero-padded. */
    if (c->index_type == KNN_INDEX_IVFPQ && c->dimred != KNN_DIMRED_NONE && c->pq_m > 0 &&
        c->dimred_target % c->pq_m != 0) {
        size_t raised = s_round_up(c->dimred_target, c->pq_m);
        KNN_LOG(
            KNN_LOG_INFO, KNN_LS_ALGO,
            "dimension_reduction_target raised from %zu to %zu, a multiple of faiss_index_pq_m", c->dimred_target,
            raised);
        c->dimred_target = raised;
    }
    if ((rc = knn__model_setup_transform(model)) != 0)
        goto on_error;
    if (c->index_type == KNN_INDEX_IVFPQ && model->effective_dim != (c->dimred ? c->dimred_target : c->feature_dim))
        KNN_LOG(
            KNN_LOG_INFO, KNN_LS_ALGO, "rows zero-padded from %zu to %zu features, a multiple of faiss_index_pq_m",
            c->feature_dim, model->effective_dim);
    size_t row, col;
    if (s_find_nonfinite(x, n, c->feature_dim, &row, &col)) {
        rc = knn_error_set(KNN_ERANGE, "row %zu, feature %zu is not a finite number", row, col);
        goto on_error;
    }
    if (s_find_nonfinite(labels, n, 1, &row, &col)) {
        rc = knn_error_set(KNN_ERANGE, "the label of row %zu is not a finite number", row);
        goto on_error;
    }
    if (c->index_type == KNN_INDEX_HNSW) {
        c->hnsw_m = c->hnsw_m ? c->hnsw_m : 32;
        c->ef_construction = c->ef_construction ? c->ef_construction : 40;
        c->ef_search = c->ef_search ? c->ef_search : KNN_MODEL_DEFAULT_EF_SEARCH;
    } else if (c->index_type != KNN_INDEX_FLAT) {
        if (c->nlist == 0) {
            c->nlist = (size_t)floor(sqrt((double)n));
            if (c->nlist == 0)
                c->nlist = 1;
        }
        if (c->nlist > n) {
            KNN_LOG(KNN_LOG_WARN, KNN_LS_ALGO, "nlist %zu clamped to the %zu sampled rows", c->nlist, n);
            c->nlist = n;
        }
        if (c->nprobe == 0)
            c->nprobe = knn__ivf_default_nprobe(c->nlist);
        if (c->nprobe > c->nlist)
            c->nprobe = c->nlist;
    }
    if (c->k > n)
        KNN_LOG(
            KNN_LOG_WARN, KNN_LS_ALGO, "k=%zu is larger than the %zu indexed rows: predictions will use k=%zu", c->k, n,
            n);

    struct knn_index_options io = KNN_INDEX_OPTIONS_INIT;
    io.type = c->index_type;
    io.metric = c->metric == KNN_MODEL_METRIC_L2 ? KNN_METRIC_L2 : KNN_METRIC_INNER_PRODUCT;
    io.dim = model->effective_dim;
    io.nlist = c->nlist;
    io.pq_m = c->pq_m;
    io.nprobe = c->index_type == KNN_INDEX_FLAT || c->index_type == KNN_INDEX_HNSW ? 1 : c->nprobe;
    if (c->index_type == KNN_INDEX_HNSW) {
        io.hnsw_m = c->hnsw_m;
        io.ef_construction = c->ef_construction;
        io.ef_search = c->ef_search;
    }
    io.seed = c->seed;
    io.threads = c->threads;
    if ((rc = knn_index_new(&model->index, &io)) != 0)
        goto on_error;

    int identity = !model->dimred && !model->normalize && model->effective_dim == c->feature_dim;
    /* Our own rows whose only change is COSINE's normalization: normalize them where they are. */
    if (own && !identity && !model->dimred && model->effective_dim == c->feature_dim) {
        knn__normalize_rows(x, n, c->feature_dim);
        identity = 1;
    }
    if (identity) {
        if (own && c->index_type == KNN_INDEX_FLAT) {
            if ((rc = knn__index_flat_adopt(model->index, n, x)) != 0)
                goto on_error;
            x = NULL; /* the index's storage now */
        } else {
            if ((rc = knn_index_train(model->index, n, x)) != 0)
                goto on_error;
            uint64_t t = knn_clock_monotonic_ns();
            if ((rc = s_recall_truth(&truth, model, n, x)) != 0)
                goto on_error;
            recall_ns += knn_clock_monotonic_ns() - t;
            if ((rc = s_add_chunks(model->index, n, x, c->feature_dim, own)) != 0)
                goto on_error;
        }
    } else if (c->index_type == KNN_INDEX_FLAT) {
        /* Nothing to train: transform and add a chunk at a time. */
        if (!(xt = knn_malloc_array(S_CHUNK_ROWS, model->effective_dim * sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
        for (size_t i = 0; i < n; i += S_CHUNK_ROWS) {
            size_t m = n - i < S_CHUNK_ROWS ? n - i : S_CHUNK_ROWS;
            if ((rc = knn__model_transform(model, m, x + i * c->feature_dim, xt)) != 0 ||
                (rc = knn_index_add(model->index, m, xt)) != 0)
                goto on_error;
            if (own)
                s_release_rows(x, i, i + m, c->feature_dim);
        }
    } else {
        if (!(xt = knn_malloc_array(n, model->effective_dim * sizeof(float)))) {
            rc = knn_error_wrap(KNN_ENOMEM, "%zu transformed rows", n);
            goto on_error;
        }
        if ((rc = knn__model_transform(model, n, x, xt)) != 0)
            goto on_error;
        if (own) {
            knn_free(x);
            x = NULL;
        }
        if ((rc = knn_index_train(model->index, n, xt)) != 0)
            goto on_error;
        uint64_t t = knn_clock_monotonic_ns();
        if ((rc = s_recall_truth(&truth, model, n, xt)) != 0)
            goto on_error;
        recall_ns += knn_clock_monotonic_ns() - t;
        if ((rc = s_add_chunks(model->index, n, xt, model->effective_dim, 1)) != 0)
            goto on_error;
    }
    if (truth) {
        knn_free(xt); /* released page by page already; the measure needs its memory no more than the index */
        xt = NULL;
        if ((rc = s_recall(model, truth, knn_clock_monotonic_ns() - recall_ns)) != 0)
            goto on_error;
        knn_recall_truth_destroy(truth);
        truth = NULL;
    }
    if (own) {
        model->labels = labels;
        labels = NULL;
        knn_free(x);
    } else {
        if (!(model->labels = knn_malloc_array(n, sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
        memcpy(model->labels, labels, n * sizeof(float));
    }
    knn_free(xt);
    *out = model;
    return 0;

on_error:
    knn_recall_truth_destroy(truth);
    knn_free(xt);
    if (own) {
        knn_free(x);
        knn_free(labels);
    }
    knn_model_destroy(model);
    return knn_error_wrap(rc, "model build");
}

int knn_model_build(
    struct knn_model **out, const struct knn_model_config *cfg, size_t n, const float *x, const float *labels)
{
    /* Only read when not owned: s_build writes to x and labels only with own != 0. */
    return s_build(out, cfg, n, (float *)x, (float *)labels, 0);
}

int knn_model_build_consume(
    struct knn_model **out, const struct knn_model_config *cfg, size_t n, float *x, float *labels)
{
    return s_build(out, cfg, n, x, labels, 1);
}

/* ---- prediction ---- */

struct s_vote {
    float label;
    float dist;
    size_t pos;
};

static int s_vote_cmp(const void *a, const void *b)
{
    const struct s_vote *x = a, *y = b;
    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static void s_sort_votes(struct s_vote *v, size_t n)
{
    if (n > 32) {
        qsort(v, n, sizeof(*v), s_vote_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct s_vote t = v[i];
        size_t j = i;
        while (j > 0 && s_vote_cmp(&v[j - 1], &t) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = t;
    }
}

/*
 * Majority vote over the neighbours (best first; id -1 = missing). Ties: the label whose nearest
 * occurrence is closest, then the smallest label value (spec §2.7). NaN when no neighbour exists.
 */
static float
s_classify(const float *labels, const float *dist, const int64_t *ids, size_t k, int ip, struct s_vote *votes)
{
    size_t n = 0;
    for (size_t j = 0; j < k; j++) {
        if (ids[j] < 0)
            continue;
        votes[n].label = labels[ids[j]];
        votes[n].dist = dist[j];
        votes[n].pos = j;
        n++;
    }
    if (n == 0)
        return NAN;
    s_sort_votes(votes, n);
    float best = votes[0].label, best_dist = votes[0].dist;
    size_t best_count = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && votes[j].label == votes[i].label)
            j++;
        size_t count = j - i;
        float d = votes[i].dist; /* the run is sorted by position: its first is the nearest */
        int better = count > best_count || (count == best_count && (ip ? d > best_dist : d < best_dist));
        if (better) {
            best = votes[i].label;
            best_dist = d;
            best_count = count;
        }
        i = j;
    }
    return best;
}

static float s_regress(const float *labels, const int64_t *ids, size_t k)
{
    double sum = 0;
    size_t n = 0;
    for (size_t j = 0; j < k; j++) {
        if (ids[j] >= 0) {
            sum += labels[ids[j]];
            n++;
        }
    }
    return n ? (float)(sum / (double)n) : NAN;
}

size_t knn__model_predict_chunk(size_t n, size_t k)
{
    /* Scratch of chunk * k results: about 12 MiB at most, whatever k. */
    size_t chunk = ((size_t)1 << 20) / k;
    chunk = chunk < 512 ? 512 : chunk > S_CHUNK_ROWS ? S_CHUNK_ROWS : chunk;
    return n < chunk ? n : chunk;
}

int knn__model_predict_neighbours(
    const struct knn_model *model, size_t n, size_t k, const float *dist, const int64_t *ids, const float *nlabels,
    float *predicted)
{
    /* s_classify and s_regress read labels[ids[j]]: give them positions into this query's labels. */
    struct s_vote *votes = knn_malloc_array(k, sizeof(*votes));
    int64_t *pos = knn_malloc_array(k, sizeof(int64_t));
    if (!votes || !pos) {
        knn_free(votes);
        knn_free(pos);
        return knn_error_wrap(KNN_ENOMEM, "predict: votes of k=%zu neighbours", k);
    }
    int ip = model->cfg.metric != KNN_MODEL_METRIC_L2;
    for (size_t i = 0; i < n; i++) {
        const int64_t *qi = ids + i * k;
        for (size_t j = 0; j < k; j++)
            pos[j] = qi[j] >= 0 ? (int64_t)j : -1;
        predicted[i] = model->cfg.predictor == KNN_PREDICTOR_CLASSIFIER
                           ? s_classify(nlabels + i * k, dist + i * k, pos, k, ip, votes)
                           : s_regress(nlabels + i * k, pos, k);
    }
    knn_free(votes);
    knn_free(pos);
    return 0;
}

static int s_clamp_warned;

int knn_model_predict(
    const struct knn_model *model, size_t n, const float *x, const struct knn_predict_options *opts,
    struct knn_predictions *out)
{
    static const struct knn_predict_options s_defaults = KNN_PREDICT_OPTIONS_INIT;
    float *xt = NULL, *dist = NULL;
    int64_t *ids = NULL;
    struct s_vote *votes = NULL;
    int rc = 0;

    if (!out)
        return knn_error_set(KNN_EINVAL, "predict: NULL output");
    memset(out, 0, sizeof(*out));
    if (!model || (n > 0 && !x))
        return knn_error_set(KNN_EINVAL, "predict: NULL argument");
    if (!opts)
        opts = &s_defaults;
    size_t ntotal = knn_index_ntotal(model->index);
    if (ntotal == 0)
        return knn_error_set(KNN_EINVAL, "predict: the model has no indexed vectors");
    size_t k = model->cfg.k < ntotal ? model->cfg.k : ntotal;
    if (k < model->cfg.k && !__atomic_exchange_n(&s_clamp_warned, 1, __ATOMIC_RELAXED))
        KNN_LOG(
            KNN_LOG_WARN, KNN_LS_ALGO, "k=%zu is larger than the %zu indexed vectors: using k=%zu", model->cfg.k,
            ntotal, k);
    out->n = n;
    out->k = k;
    if (n == 0)
        return 0;
    size_t row, col;
    if (s_find_nonfinite(x, n, model->cfg.feature_dim, &row, &col))
        return knn_error_set(KNN_ERANGE, "predict: query %zu, feature %zu is not a finite number", row, col);

    size_t chunk = knn__model_predict_chunk(n, k);
    size_t d = model->effective_dim;
    if (!(out->predicted = knn_malloc_array(n, sizeof(float))) || !(xt = knn_malloc_array(chunk, d * sizeof(float))) ||
        !(dist = knn_malloc_array(chunk, k * sizeof(float))) || !(ids = knn_malloc_array(chunk, k * sizeof(int64_t))) ||
        !(votes = knn_malloc_array(k, sizeof(*votes)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if (opts->verbose) {
        if (!(out->labels = knn_malloc_array(n, k * sizeof(float))) ||
            !(out->distances = knn_malloc_array(n, k * sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
    }
    if (opts->ids && !(out->ids = knn_malloc_array(n, k * sizeof(int64_t)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    struct knn_search_params params = KNN_SEARCH_PARAMS_INIT;
    params.nprobe = opts->nprobe;
    params.ef_search = opts->ef_search;
    params.threads = opts->threads ? opts->threads : model->cfg.threads;
    int ip = model->cfg.metric != KNN_MODEL_METRIC_L2;

    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        if ((rc = knn__model_transform(model, m, x + i0 * model->cfg.feature_dim, xt)) != 0 ||
            (rc = knn_index_search(model->index, m, xt, k, dist, ids, &params)) != 0)
            goto on_error;
        for (size_t i = 0; i < m; i++) {
            const float *qd = dist + i * k;
            const int64_t *qi = ids + i * k;
            out->predicted[i0 + i] = model->cfg.predictor == KNN_PREDICTOR_CLASSIFIER
                                         ? s_classify(model->labels, qd, qi, k, ip, votes)
                                         : s_regress(model->labels, qi, k);
            if (opts->verbose) {
                float *ol = out->labels + (i0 + i) * k, *od = out->distances + (i0 + i) * k;
                for (size_t j = 0; j < k; j++) {
                    ol[j] = qi[j] >= 0 ? model->labels[qi[j]] : NAN;
                    od[j] = qd[j];
                }
            }
            if (opts->ids)
                memcpy(out->ids + (i0 + i) * k, qi, k * sizeof(int64_t));
        }
    }
    knn_free(xt);
    knn_free(dist);
    knn_free(ids);
    knn_free(votes);
    return 0;

on_error:
    knn_free(xt);
    knn_free(dist);
    knn_free(ids);
    knn_free(votes);
    knn_predictions_clean_up(out);
    return knn_error_wrap(rc, "predict");
}

void knn_predictions_clean_up(struct knn_predictions *p)
{
    if (!p)
        return;
    knn_free(p->predicted);
    knn_free(p->labels);
    knn_free(p->distances);
    knn_free(p->ids);
    memset(p, 0, sizeof(*p));
}

const struct knn_model_config *knn_model_get_config(const struct knn_model *model)
{
    return &model->cfg;
}

const struct knn_model_recall *knn_model_recall(const struct knn_model *model)
{
    return model->has_recall ? &model->recall : NULL;
}

size_t knn_model_ntotal(const struct knn_model *model)
{
    return knn_index_ntotal(model->index);
}

const struct knn_index *knn_model_index(const struct knn_model *model)
{
    return model->index;
}

/* ---- names ---- */

int knn_predictor_parse(enum knn_predictor *out, const char *name)
{
    if (!out || !name)
        return knn_error_set(KNN_EINVAL, "predictor_type: NULL argument");
    if (strcmp(name, "classifier") == 0)
        *out = KNN_PREDICTOR_CLASSIFIER;
    else if (strcmp(name, "regressor") == 0)
        *out = KNN_PREDICTOR_REGRESSOR;
    else
        return knn_error_set(KNN_EINVAL, "predictor_type \"%s\" is not classifier or regressor", name);
    return 0;
}

const char *knn_predictor_name(enum knn_predictor p)
{
    switch (p) {
        case KNN_PREDICTOR_CLASSIFIER:
            return "classifier";
        case KNN_PREDICTOR_REGRESSOR:
            return "regressor";
    }
    return "unknown";
}

int knn_model_metric_parse(enum knn_model_metric *out, const char *name)
{
    if (!out || !name)
        return knn_error_set(KNN_EINVAL, "index_metric: NULL argument");
    if (strcmp(name, "L2") == 0)
        *out = KNN_MODEL_METRIC_L2;
    else if (strcmp(name, "INNER_PRODUCT") == 0)
        *out = KNN_MODEL_METRIC_INNER_PRODUCT;
    else if (strcmp(name, "COSINE") == 0)
        *out = KNN_MODEL_METRIC_COSINE;
    else
        return knn_error_set(KNN_EINVAL, "index_metric \"%s\" is not L2, INNER_PRODUCT or COSINE", name);
    return 0;
}

const char *knn_model_metric_name(enum knn_model_metric m)
{
    switch (m) {
        case KNN_MODEL_METRIC_L2:
            return "L2";
        case KNN_MODEL_METRIC_INNER_PRODUCT:
            return "INNER_PRODUCT";
        case KNN_MODEL_METRIC_COSINE:
            return "COSINE";
    }
    return "unknown";
}

int knn_index_type_parse(enum knn_index_type *out, const char *name)
{
    if (!out || !name)
        return knn_error_set(KNN_EINVAL, "index_type: NULL argument");
    if (strcmp(name, "faiss.Flat") == 0)
        *out = KNN_INDEX_FLAT;
    else if (strcmp(name, "faiss.IVFFlat") == 0)
        *out = KNN_INDEX_IVFFLAT;
    else if (strcmp(name, "faiss.IVFPQ") == 0)
        *out = KNN_INDEX_IVFPQ;
    else if (strcmp(name, "ivf_sq8") == 0)
        *out = KNN_INDEX_IVFSQ8;
    else if (strcmp(name, "hnsw") == 0)
        *out = KNN_INDEX_HNSW;
    else
        return knn_error_set(
            KNN_EINVAL, "index_type \"%s\" is not faiss.Flat, faiss.IVFFlat, faiss.IVFPQ, ivf_sq8 or hnsw", name);
    return 0;
}

const char *knn_index_type_name(enum knn_index_type t)
{
    switch (t) {
        case KNN_INDEX_FLAT:
            return "faiss.Flat";
        case KNN_INDEX_IVFFLAT:
            return "faiss.IVFFlat";
        case KNN_INDEX_IVFPQ:
            return "faiss.IVFPQ";
        case KNN_INDEX_IVFSQ8:
            return "ivf_sq8";
        case KNN_INDEX_HNSW:
            return "hnsw";
    }
    return "unknown";
}
