/*
 * A part of a model (part.h): the whole model's JSON, transform and settings (knn__model_load_with,
 * the same checks as knn_model_load), its share of the index (knn_index_read_faiss_part, through
 * pread on the file) and the labels of the vectors it holds; the merge of per-part top-k lists.
 *
 * Labels of a part: Flat holds the contiguous rows [id_offset, id_offset + held), so its labels are
 * one range of the labels file. An IVF part holds scattered ids (a slice of every list): they are
 * kept sorted with their labels, read in windows of the labels file around them, and a search's
 * ids are looked up by binary search.
 */
#include "index_impl.h"
#include "index_ivf.h"
#include "model_impl.h"
#include "topk.h"

#include "knn/algorithms/part.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Labels read per positional read (floats). */
#define S_LABEL_WINDOW 16384

struct knn_model_part {
    struct knn_model *model;        /* index = this part's share; labels = NULL */
    struct knn_index_part_info info;
    size_t part, nparts;
    int64_t *ids;                   /* IVF: the held ids, ascending; Flat: NULL (contiguous) */
    float *labels;                  /* held labels: Flat by local id, IVF parallel to ids */
};

/* ---- positional reads of a local file ---- */

struct s_file {
    int fd;
    const char *name;
};

static int s_pread(void *user, void *data, size_t len, uint64_t offset)
{
    const struct s_file *f = user;
    uint8_t *p = data;
    while (len > 0) {
        ssize_t got = pread(f->fd, p, len, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return knn_error_set(KNN_EIO, "%s: read at byte %" PRIu64 " failed: %s", f->name, offset, strerror(errno));
        if (got == 0)
            return knn_error_set(KNN_ETRUNCATED, "%s: the file ended at byte %" PRIu64, f->name, offset);
        p += got;
        len -= (size_t)got;
        offset += (uint64_t)got;
    }
    return 0;
}

/* Open a regular file for positional reads; *size gets its length. */
static int s_open(struct s_file *f, const char *path, const char *name, uint64_t *size)
{
    f->name = name;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: cannot open: %s", name, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f->fd);
        f->fd = -1;
        return knn_error_set(KNN_EIO, "%s: not a regular file", name);
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

/* ---- the reader given to knn__model_load_with ---- */

static int s_read_index(void *user, const char *path, struct knn_index **out, uint64_t *ntotal)
{
    struct knn_model_part *p = user;
    struct s_file f;
    uint64_t size;
    int rc = s_open(&f, path, path, &size);
    if (rc)
        return rc;
    rc = knn_index_read_faiss_part(out, &p->info, s_pread, &f, size, p->part, p->nparts);
    close(f.fd);
    if (rc)
        return knn_error_wrap(rc, "%s", path);
    *ntotal = p->info.ntotal;
    return 0;
}

static int s_cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* IVF: the held ids, ascending. */
static int s_collect_ids(struct knn_model_part *p)
{
    const struct knn_index *index = p->model->index;
    size_t held = (size_t)p->info.held, at = 0;
    if (!(p->ids = knn_malloc_array(held ? held : 1, sizeof(int64_t))))
        return knn_error_wrap(KNN_ENOMEM, "model part: ids of %zu vectors", held);
    for (size_t l = 0; l < index->opts.nlist; l++) {
        size_t size;
        const uint8_t *codes;
        const int64_t *ids;
        knn__ivf_list(index, l, &size, &codes, &ids);
        if (size > held - at)
            return knn_error_set(KNN_EINTERNAL, "model part: the lists hold more than %zu vectors", held);
        if (size) /* an empty list may have no ids array at all */
            memcpy(p->ids + at, ids, size * sizeof(int64_t));
        at += size;
    }
    if (at != held)
        return knn_error_set(KNN_EINTERNAL, "model part: the lists hold %zu vectors, not %zu", at, held);
    qsort(p->ids, held, sizeof(int64_t), s_cmp_id);
    return 0;
}

static int s_read_labels(void *user, const char *path, uint64_t ntotal, struct knn_model *model)
{
    struct knn_model_part *p = user;
    const char *name = "model_algo-1.labels";
    struct s_file f;
    uint64_t size;
    float *window = NULL;
    int rc = s_open(&f, path, name, &size);
    if (rc)
        return rc;
    size_t held = (size_t)p->info.held;
    p->model = model; /* s_collect_ids reads the index */
    if (size != ntotal * sizeof(float)) {
        rc = knn_error_set(
            KNN_EMISMATCH,
            "%s: %" PRIu64 " bytes, but the index holds %" PRIu64 " vectors (expected %" PRIu64
            " bytes: one float32 label each)",
            name, size, ntotal, ntotal * sizeof(float));
        goto done;
    }
    if (!(p->labels = knn_malloc_array(held ? held : 1, sizeof(float)))) {
        rc = knn_error_wrap(KNN_ENOMEM, "%s: labels of %zu vectors", name, held);
        goto done;
    }
    if (model->index->opts.type == KNN_INDEX_FLAT) {
        rc = s_pread(&f, p->labels, held * sizeof(float), (uint64_t)p->info.id_offset * sizeof(float));
    } else {
        if ((rc = s_collect_ids(p)))
            goto done;
        if (!(window = knn_malloc_array(S_LABEL_WINDOW, sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto done;
        }
        /* The window starting at the next id still to read covers every held id inside it. */
        for (size_t i = 0; i < held && rc == 0;) {
            uint64_t first = (uint64_t)p->ids[i];
            uint64_t count = ntotal - first < S_LABEL_WINDOW ? ntotal - first : S_LABEL_WINDOW;
            if ((rc = s_pread(&f, window, (size_t)count * sizeof(float), first * sizeof(float))))
                break;
            for (; i < held && (uint64_t)p->ids[i] < first + count; i++)
                p->labels[i] = window[(uint64_t)p->ids[i] - first];
        }
    }
    for (size_t i = 0; i < held && rc == 0; i++) {
        uint64_t id = p->ids ? (uint64_t)p->ids[i] : (uint64_t)p->info.id_offset + i;
        if (!isfinite(p->labels[i]))
            rc = knn_error_set(KNN_ERANGE, "%s: byte %" PRIu64 ": label %" PRIu64 " is not a finite number", name,
                               4 * id, id);
    }
done:
    knn_free(window);
    close(f.fd);
    return rc;
}

/* ---- load and accessors ---- */

int knn_model_part_load(
    struct knn_model_part **out, const char *dir, size_t part, size_t nparts, const struct knn_model_part_options *opts)
{
    static const struct knn_model_part_options s_defaults = KNN_MODEL_PART_OPTIONS_INIT;
    if (!out || !dir)
        return knn_error_set(KNN_EINVAL, "model part: NULL argument");
    *out = NULL;
    if (nparts == 0 || part >= nparts)
        return knn_error_set(KNN_EINVAL, "model part: part %zu of %zu does not exist", part, nparts);
    if (!opts)
        opts = &s_defaults;
    struct knn_model_part *p = knn_calloc(1, sizeof(*p));
    if (!p)
        return knn_error_wrap(KNN_ENOMEM, "model part");
    p->part = part;
    p->nparts = nparts;
    struct knn__model_reader reader = {s_read_index, s_read_labels, p, opts->verify};
    struct knn_model *model = NULL;
    int rc = knn__model_load_with(&model, dir, &reader);
    if (rc) {
        p->model = NULL; /* the labels reader saw the model the loader has destroyed */
        knn_model_part_destroy(p);
        return rc;
    }
    p->model = model;
    *out = p;
    return 0;
}

void knn_model_part_destroy(struct knn_model_part *p)
{
    if (!p)
        return;
    knn_model_destroy(p->model);
    knn_free(p->ids);
    knn_free(p->labels);
    knn_free(p);
}

const struct knn_model_config *knn_model_part_config(const struct knn_model_part *p)
{
    return &p->model->cfg;
}

const struct knn_model *knn_model_part_model(const struct knn_model_part *p)
{
    return p->model;
}

size_t knn_model_part_ntotal(const struct knn_model_part *p)
{
    return (size_t)p->info.ntotal;
}

size_t knn_model_part_held(const struct knn_model_part *p)
{
    return (size_t)p->info.held;
}

uint64_t knn_model_part_bytes(const struct knn_model_part *p)
{
    const struct knn_index *index = p->model->index;
    uint64_t held = p->info.held, per;
    if (index->opts.type == KNN_INDEX_FLAT) /* vectors, norms (L2), labels */
        per = index->opts.dim * sizeof(float) + (index->opts.metric == KNN_METRIC_L2 ? 4 : 0) + 4;
    else /* codes and ids in the lists, sorted ids and labels for the lookup */
        per = knn__ivf_code_size(index) + 8 + 8 + 4;
    return held * per;
}

size_t knn_model_part_k(const struct knn_model_part *p)
{
    size_t k = p->model->cfg.k;
    return k < p->info.ntotal ? k : (size_t)p->info.ntotal;
}

size_t knn_model_part_query_dim(const struct knn_model_part *p)
{
    return p->model->effective_dim;
}

/* ---- search, merge, predict ---- */

int knn_model_part_transform(const struct knn_model_part *p, size_t n, const float *x, float *out)
{
    const struct knn_model *model = p->model;
    size_t fd = model->cfg.feature_dim;
    if (n > 0 && (!x || !out))
        return knn_error_set(KNN_EINVAL, "predict: NULL argument");
    if (p->info.ntotal == 0)
        return knn_error_set(KNN_EINVAL, "predict: the model has no indexed vectors");
    for (size_t i = 0; i < n * fd; i++) {
        if (!isfinite(x[i]))
            return knn_error_set(
                KNN_ERANGE, "predict: query %zu, feature %zu is not a finite number", i / fd, i % fd);
    }
    /* In knn_model_predict's steps: the reduction's sgemm sees the batches it sees there. */
    size_t chunk = n ? knn__model_predict_chunk(n, knn_model_part_k(p)) : 0;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        int rc = knn__model_transform(model, m, x + i0 * fd, out + i0 * model->effective_dim);
        if (rc)
            return knn_error_wrap(rc, "predict");
    }
    return 0;
}

static float s_label_of(const struct knn_model_part *p, int64_t id)
{
    if (!p->ids)
        return p->labels[id - p->info.id_offset];
    const int64_t *at = bsearch(&id, p->ids, (size_t)p->info.held, sizeof(int64_t), s_cmp_id);
    return at ? p->labels[at - p->ids] : NAN;
}

int knn_model_part_search(
    const struct knn_model_part *p, size_t n, const float *xt, const struct knn_predict_options *opts,
    struct knn_neighbour *out)
{
    static const struct knn_predict_options s_defaults = KNN_PREDICT_OPTIONS_INIT;
    const struct knn_model *model = p->model;
    size_t k = knn_model_part_k(p), d = model->effective_dim;
    if (n == 0)
        return 0;
    if (!xt || !out)
        return knn_error_set(KNN_EINVAL, "predict: NULL argument");
    if (k == 0)
        return knn_error_set(KNN_EINVAL, "predict: the model has no indexed vectors");
    if (!opts)
        opts = &s_defaults;
    size_t chunk = knn__model_predict_chunk(n, k);
    float *dist = knn_malloc_array(chunk, k * sizeof(float));
    int64_t *ids = knn_malloc_array(chunk, k * sizeof(int64_t));
    int rc = 0;
    if (!dist || !ids) {
        rc = knn_error_wrap(KNN_ENOMEM, "predict: %zu queries x k=%zu", chunk, k);
        goto done;
    }
    struct knn_search_params params = KNN_SEARCH_PARAMS_INIT;
    params.nprobe = opts->nprobe;
    params.threads = opts->threads ? opts->threads : model->cfg.threads;
    int64_t offset = p->ids ? 0 : p->info.id_offset;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        if ((rc = knn_index_search(model->index, m, xt + i0 * d, k, dist, ids, &params)) != 0) {
            knn_error_wrap(rc, "predict");
            goto done;
        }
        for (size_t j = 0; j < m * k; j++) {
            struct knn_neighbour *o = out + i0 * k + j;
            o->distance = dist[j];
            o->id = ids[j] >= 0 ? ids[j] + offset : -1;
            o->label = ids[j] >= 0 ? s_label_of(p, o->id) : NAN;
        }
    }
done:
    knn_free(dist);
    knn_free(ids);
    return rc;
}

int knn_neighbours_merge(
    const struct knn_neighbour *in, size_t nparts, size_t n, size_t k, int ip, struct knn_neighbour *out)
{
    size_t *pos = knn_malloc_array(nparts ? nparts : 1, sizeof(size_t));
    if (!pos)
        return knn_error_wrap(KNN_ENOMEM, "merge: %zu lists", nparts);
    /* Each part's list is best first: walk them together, taking the best head each time. */
    for (size_t i = 0; i < n; i++) {
        memset(pos, 0, nparts * sizeof(size_t));
        struct knn_neighbour *o = out + i * k;
        for (size_t j = 0; j < k; j++) {
            const struct knn_neighbour *best = NULL;
            size_t best_part = 0;
            for (size_t q = 0; q < nparts; q++) {
                if (pos[q] >= k)
                    continue;
                const struct knn_neighbour *c = in + (q * n + i) * k + pos[q];
                if (c->id < 0)
                    continue;
                if (!best || (ip ? c->distance > best->distance : c->distance < best->distance) ||
                    (c->distance == best->distance && c->id < best->id)) {
                    best = c;
                    best_part = q;
                }
            }
            if (!best) {
                o[j].distance = ip ? -INFINITY : INFINITY;
                o[j].label = NAN;
                o[j].id = -1;
                continue;
            }
            o[j] = *best;
            pos[best_part]++;
        }
    }
    knn_free(pos);
    return 0;
}

int knn_model_part_predict(
    const struct knn_model_part *p, size_t n, const struct knn_neighbour *merged, const struct knn_predict_options *opts,
    struct knn_predictions *out)
{
    static const struct knn_predict_options s_defaults = KNN_PREDICT_OPTIONS_INIT;
    if (!out)
        return knn_error_set(KNN_EINVAL, "predict: NULL output");
    memset(out, 0, sizeof(*out));
    if (!opts)
        opts = &s_defaults;
    size_t k = knn_model_part_k(p), nk;
    out->n = n;
    out->k = k;
    if (n == 0)
        return 0;
    if (knn_mul_size(&nk, n, k) != 0)
        return knn_error_set(KNN_ENOMEM, "predict: %zu queries x k=%zu overflows", n, k);
    float *dist = knn_malloc_array(nk, sizeof(float)), *labels = knn_malloc_array(nk, sizeof(float));
    int64_t *ids = knn_malloc_array(nk, sizeof(int64_t));
    int rc = 0;
    if (!dist || !labels || !ids || !(out->predicted = knn_malloc_array(n, sizeof(float)))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    for (size_t j = 0; j < nk; j++) {
        dist[j] = merged[j].distance;
        ids[j] = merged[j].id;
        labels[j] = merged[j].id >= 0 ? merged[j].label : NAN;
    }
    if ((rc = knn__model_predict_neighbours(p->model, n, k, dist, ids, labels, out->predicted)))
        goto done;
    if (opts->verbose) {
        out->labels = labels;
        out->distances = dist;
        labels = dist = NULL;
    }
done:
    knn_free(dist);
    knn_free(labels);
    knn_free(ids);
    if (rc) {
        knn_predictions_clean_up(out);
        return knn_error_wrap(rc, "predict");
    }
    return 0;
}
