/*
 * The three model files of spec §6, in one directory:
 *
 *   model_algo-1         the index in FAISS's file format (index_io.c)
 *   model_algo-1.labels  ntotal little-endian float32, the label of index id i at offset 4 i
 *   model_algo-1.json    {"k", "predictor_type", "dimension_reduction", "normalize", "version"} as
 *                        SageMaker writes them, and ours: "index_type", "index_metric", "nlist",
 *                        "nprobe" (IVF only), "pq_m" (IVFPQ only), "effective_dim", "feature_dim",
 *                        "rng", and "sha256": {"model_algo-1": hex, "model_algo-1.labels": hex}.
 *
 * "dimension_reduction" is null when there is none (the key is always there, so code that reads
 * it as SageMaker's example shows finds it); we read null, an absent key or {"type": "none"} as
 * none. The JSON is what inference obeys: editing k, predictor_type or nprobe changes predictions.
 *
 * Saving writes each file under a temporary name in the directory, fsyncs it, and renames it into
 * place, the JSON last; the JSON carries the checksums of the two others, so a crash between two
 * renames leaves a directory that load rejects (checksum mismatch), never a silently mixed model.
 *
 * Loading reads a model of ours or one SageMaker made (no "index_type" key: the index file says
 * what the index is; no checksums: nothing to verify). Every size is checked before allocating
 * and every disagreement between the files is an error naming the file and the field.
 */
#include "model_impl.h"

#include "knn/algorithms/dimred.h"
#include "knn/algorithms/index.h"
#include "knn/algorithms/model.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_INDEX_NAME "model_algo-1"
#define S_LABELS_NAME "model_algo-1.labels"
#define S_JSON_NAME "model_algo-1.json"
/* The JSON is small; anything bigger is not a model file. */
#define S_JSON_MAX_BYTES ((size_t)1 << 20)
/* Name of our random generator (rng.h), written so a loader knows it can rebuild the transform. */
#define S_RNG_NAME "splitmix64-xoshiro256**"
#define S_MAX_K 1024

/* ------------------------------------------------------------------------------------------ */
/* Files and hashing                                                                            */
/* ------------------------------------------------------------------------------------------ */

struct s_out {
    FILE *f;
    EVP_MD_CTX *sha;
    uint64_t bytes;
    char tmp[4096]; /* the temporary file's path */
};

static int s_path(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return knn_error_set(KNN_EINVAL, "%s/%s: path too long", dir, name);
    return 0;
}

static int s_out_open(struct s_out *o, const char *dir, const char *name)
{
    memset(o, 0, sizeof(*o));
    char pattern[64];
    snprintf(pattern, sizeof(pattern), ".%s.tmp-XXXXXX", name);
    int rc = s_path(o->tmp, sizeof(o->tmp), dir, pattern);
    if (rc)
        return rc;
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        o->tmp[0] = 0;
        return knn_error_set(KNN_EIO, "%s: cannot create a temporary file: %s", dir, strerror(errno));
    }
    if (!(o->f = fdopen(fd, "wb"))) {
        close(fd);
        return knn_error_set(KNN_EIO, "%s: %s", o->tmp, strerror(errno));
    }
    if (!(o->sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(o->sha, EVP_sha256(), NULL) != 1)
        return knn_error_set(KNN_ENOMEM, "SHA-256: cannot start a digest");
    return 0;
}

static int s_out_write(void *user, const void *data, size_t len)
{
    struct s_out *o = user;
    if (fwrite(data, 1, len, o->f) != len)
        return knn_error_set(KNN_EIO, "%s: write failed: %s", o->tmp, strerror(errno));
    EVP_DigestUpdate(o->sha, data, len);
    o->bytes += len;
    return 0;
}

static void s_hex(const unsigned char *md, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = 0;
}

/* Flush, fsync and close; the digest (hex) into sha_hex if not NULL. */
static int s_out_finish(struct s_out *o, char sha_hex[65])
{
    int rc = 0;
    if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
        rc = knn_error_set(KNN_EIO, "%s: write failed: %s", o->tmp, strerror(errno));
    if (fclose(o->f) != 0 && rc == 0)
        rc = knn_error_set(KNN_EIO, "%s: close failed: %s", o->tmp, strerror(errno));
    o->f = NULL;
    if (rc == 0 && sha_hex) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        EVP_DigestFinal_ex(o->sha, md, &len);
        s_hex(md, sha_hex);
    }
    return rc;
}

/* Close (if open) and remove the temporary file, and free the digest. */
static void s_out_discard(struct s_out *o)
{
    if (o->f)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp[0])
        unlink(o->tmp);
    o->tmp[0] = 0;
    EVP_MD_CTX_free(o->sha);
    o->sha = NULL;
}

static int s_out_commit(struct s_out *o, const char *dir, const char *name)
{
    char path[4096];
    int rc = s_path(path, sizeof(path), dir, name);
    if (rc)
        return rc;
    if (rename(o->tmp, path) != 0)
        return knn_error_set(KNN_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
    o->tmp[0] = 0;
    return 0;
}

/* SHA-256 of a whole file (hex), streaming. */
static int s_sha256_file(const char *path, const char *name, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: cannot open: %s", name, strerror(errno));
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    int rc = 0;
    if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        rc = knn_error_set(KNN_ENOMEM, "SHA-256: cannot start a digest");
        goto done;
    }
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(sha, buf, n);
    if (ferror(f)) {
        rc = knn_error_set(KNN_EIO, "%s: read failed: %s", name, strerror(errno));
        goto done;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(sha, md, &len);
    s_hex(md, hex);
done:
    EVP_MD_CTX_free(sha);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Save                                                                                         */
/* ------------------------------------------------------------------------------------------ */

static int s_json_set(json_t *obj, const char *key, json_t *value)
{
    if (!value || json_object_set_new(obj, key, value) != 0)
        return knn_error_set(KNN_ENOMEM, "model_algo-1.json: cannot set \"%s\"", key);
    return 0;
}

static int s_build_json(
    json_t **out, const struct knn_model *model, const char *index_sha, const char *labels_sha, uint64_t index_bytes,
    uint64_t labels_bytes)
{
    const struct knn_model_config *c = &model->cfg;
    const struct knn_index_options *io = knn_index_get_options(model->index);
    json_t *j = json_object(), *dr = NULL, *sums = NULL;
    int rc = 0;
    if (!j)
        return KNN_ENOMEM;
    if (model->dimred) {
        dr = json_object();
        if (!dr || (rc = s_json_set(dr, "type", json_string(knn_dimred_type_name(c->dimred)))) ||
            (rc = s_json_set(dr, "seed", json_integer((json_int_t)c->dimred_seed))) ||
            (rc = s_json_set(dr, "target_dim", json_integer((json_int_t)knn_dimred_output_dim(model->dimred)))) ||
            (rc = s_json_set(dr, "input_dim", json_integer((json_int_t)knn_dimred_input_dim(model->dimred)))))
            goto on_error;
    } else {
        dr = json_null();
    }
    if ((rc = s_json_set(j, "k", json_integer((json_int_t)c->k))) ||
        (rc = s_json_set(j, "predictor_type", json_string(knn_predictor_name(c->predictor)))) ||
        (rc = s_json_set(j, "dimension_reduction", dr)))
        goto on_error;
    dr = NULL;
    if ((rc = s_json_set(j, "normalize", json_boolean(model->normalize))) ||
        (rc = s_json_set(j, "version", json_string("1.0"))) ||
        (rc = s_json_set(j, "index_type", json_string(knn_index_type_name(io->type)))) ||
        (rc = s_json_set(j, "index_metric", json_string(knn_model_metric_name(c->metric)))))
        goto on_error;
    if (io->type == KNN_INDEX_HNSW &&
        ((rc = s_json_set(j, "hnsw_m", json_integer((json_int_t)io->hnsw_m))) ||
         (rc = s_json_set(j, "ef_construction", json_integer((json_int_t)io->ef_construction))) ||
         (rc = s_json_set(j, "ef_search", json_integer((json_int_t)io->ef_search)))))
        goto on_error;
    if (io->type != KNN_INDEX_FLAT && io->type != KNN_INDEX_HNSW &&
        ((rc = s_json_set(j, "nlist", json_integer((json_int_t)io->nlist))) ||
                                       (rc = s_json_set(j, "nprobe", json_integer((json_int_t)io->nprobe)))))
        goto on_error;
    if (io->type == KNN_INDEX_IVFPQ && (rc = s_json_set(j, "pq_m", json_integer((json_int_t)io->pq_m))))
        goto on_error;
    if ((rc = s_json_set(j, "effective_dim", json_integer((json_int_t)model->effective_dim))) ||
        (rc = s_json_set(j, "feature_dim", json_integer((json_int_t)c->feature_dim))) ||
        (rc = s_json_set(j, "rng", json_string(S_RNG_NAME))))
        goto on_error;
    if (!(sums = json_object()) || (rc = s_json_set(sums, S_INDEX_NAME, json_string(index_sha))) ||
        (rc = s_json_set(sums, S_LABELS_NAME, json_string(labels_sha))) || (rc = s_json_set(j, "sha256", sums))) {
        rc = rc ? rc : KNN_ENOMEM;
        goto on_error;
    }
    /* The sizes too: whoever unpacks model.tar.gz can cap each member before writing a byte of it. */
    if (!(sums = json_object()) || (rc = s_json_set(sums, S_INDEX_NAME, json_integer((json_int_t)index_bytes))) ||
        (rc = s_json_set(sums, S_LABELS_NAME, json_integer((json_int_t)labels_bytes))) ||
        (rc = s_json_set(j, "bytes", sums))) {
        rc = rc ? rc : KNN_ENOMEM;
        goto on_error;
    }
    *out = j;
    return 0;

on_error:
    json_decref(dr);
    json_decref(j);
    return rc ? rc : KNN_ENOMEM;
}

int knn_model_save(const struct knn_model *model, const char *dir)
{
    struct s_out idx, lab, js;
    char index_sha[65], labels_sha[65];
    json_t *j = NULL;
    char *text = NULL;
    int rc;

    memset(&idx, 0, sizeof(idx));
    memset(&lab, 0, sizeof(lab));
    memset(&js, 0, sizeof(js));
    if (!model || !dir)
        return knn_error_set(KNN_EINVAL, "model save: NULL argument");

    size_t ntotal = knn_index_ntotal(model->index);
    if ((rc = s_out_open(&idx, dir, S_INDEX_NAME)) || (rc = knn_index_write_faiss(model->index, s_out_write, &idx)) ||
        (rc = s_out_finish(&idx, index_sha)))
        goto on_error;
    if ((rc = s_out_open(&lab, dir, S_LABELS_NAME)) ||
        (rc = s_out_write(&lab, model->labels, ntotal * sizeof(float))) || (rc = s_out_finish(&lab, labels_sha)))
        goto on_error;
    if ((rc = s_build_json(&j, model, index_sha, labels_sha, idx.bytes, lab.bytes)))
        goto on_error;
    if (!(text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER))) {
        rc = knn_error_set(KNN_ENOMEM, "model_algo-1.json: cannot serialize");
        goto on_error;
    }
    if ((rc = s_out_open(&js, dir, S_JSON_NAME)) || (rc = s_out_write(&js, text, strlen(text))) ||
        (rc = s_out_write(&js, "\n", 1)) || (rc = s_out_finish(&js, NULL)))
        goto on_error;
    /* Into place, the JSON (with the checksums of the others) last. */
    if ((rc = s_out_commit(&idx, dir, S_INDEX_NAME)) || (rc = s_out_commit(&lab, dir, S_LABELS_NAME)) ||
        (rc = s_out_commit(&js, dir, S_JSON_NAME)))
        goto on_error;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }

on_error:
    s_out_discard(&idx);
    s_out_discard(&lab);
    s_out_discard(&js);
    free(text);
    json_decref(j);
    if (rc)
        return knn_error_wrap(rc, "model save to %s", dir);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Load                                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Read a whole small file (at most `max` bytes) into a NUL-terminated knn_malloc'ed buffer. */
static int s_read_small(const char *path, const char *name, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: cannot open: %s", name, strerror(errno));
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = knn_error_set(KNN_EIO, "%s: not a regular file", name);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        rc = knn_error_set(
            KNN_ETOOBIG, "%s: %" PRIu64 " bytes, more than the %zu a model file may have", name, (uint64_t)st.st_size,
            max);
        goto done;
    }
    size_t n = (size_t)st.st_size;
    if (!(buf = knn_malloc(n + 1))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    if (fread(buf, 1, n, f) != n) {
        rc = knn_error_set(KNN_EIO, "%s: read failed", name);
        goto done;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    buf = NULL;
done:
    knn_free(buf);
    fclose(f);
    return rc;
}

/* What model_algo-1.json says. Fields not in the file stay at their "absent" value. */
struct s_meta {
    size_t k;
    enum knn_predictor predictor;
    int has_dimred;
    enum knn_dimred_type dimred;
    uint64_t dimred_seed;
    size_t dimred_target, dimred_input;
    int normalize;
    int ours; /* written by knn-runner (has "index_type") */
    enum knn_index_type index_type;
    enum knn_model_metric metric;
    int has_metric;
    size_t nlist, nprobe, pq_m, effective_dim, feature_dim, ef_search; /* 0 = absent */
    int has_rng;
    char index_sha[65], labels_sha[65]; /* "" = absent */
};

static int s_bad_key(const char *key, const char *what)
{
    return knn_error_set(KNN_EFORMAT, "%s: key \"%s\": %s", S_JSON_NAME, key, what);
}

/* An optional non-negative integer key in [lo, hi]: 0 and *v untouched when absent. */
static int s_get_size(json_t *obj, const char *key, size_t lo, size_t hi, int required, size_t *v)
{
    json_t *x = json_object_get(obj, key);
    if (!x || json_is_null(x)) {
        if (required)
            return knn_error_set(KNN_EFORMAT, "%s: key \"%s\" is missing", S_JSON_NAME, key);
        return 0;
    }
    if (!json_is_integer(x))
        return s_bad_key(key, "expected an integer");
    json_int_t i = json_integer_value(x);
    if (i < 0 || (uint64_t)i < lo || (uint64_t)i > hi) {
        char what[128];
        snprintf(what, sizeof(what), "%lld is outside [%zu, %zu]", (long long)i, lo, hi);
        return s_bad_key(key, what);
    }
    *v = (size_t)i;
    return 0;
}

static int s_get_sha(json_t *sums, const char *key, char out[65])
{
    json_t *x = json_object_get(sums, key);
    out[0] = 0;
    if (!x)
        return 0;
    const char *s = json_string_value(x);
    if (!s || strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64)
        return knn_error_set(
            KNN_EFORMAT, "%s: key \"sha256\".\"%s\": expected 64 lowercase hex digits", S_JSON_NAME, key);
    memcpy(out, s, 65);
    return 0;
}

static int s_parse_json(struct s_meta *m, const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    int rc = 0;
    if (!j)
        return knn_error_set(
            KNN_EFORMAT, "%s: line %d, column %d (byte %d): %s", S_JSON_NAME, err.line, err.column, err.position,
            err.text);
    if (!json_is_object(j)) {
        rc = knn_error_set(KNN_EFORMAT, "%s: not a JSON object", S_JSON_NAME);
        goto done;
    }
    if ((rc = s_get_size(j, "k", 1, S_MAX_K, 1, &m->k)))
        goto done;
    json_t *x = json_object_get(j, "predictor_type");
    if (!x) {
        rc = knn_error_set(KNN_EFORMAT, "%s: key \"predictor_type\" is missing", S_JSON_NAME);
        goto done;
    }
    if (!json_is_string(x) || knn_predictor_parse(&m->predictor, json_string_value(x)) != 0) {
        rc = s_bad_key("predictor_type", "expected \"classifier\" or \"regressor\"");
        goto done;
    }
    x = json_object_get(j, "version");
    if (x && (!json_is_string(x) || strncmp(json_string_value(x), "1.", 2) != 0)) {
        rc =
            knn_error_set(KNN_EUNSUPPORTED, "%s: key \"version\": only version 1.x models are understood", S_JSON_NAME);
        goto done;
    }
    x = json_object_get(j, "normalize");
    if (x && !json_is_boolean(x)) {
        rc = s_bad_key("normalize", "expected true or false");
        goto done;
    }
    m->normalize = x ? json_is_true(x) : 0;

    x = json_object_get(j, "dimension_reduction");
    if (x && !json_is_null(x)) {
        if (!json_is_object(x)) {
            rc = s_bad_key("dimension_reduction", "expected an object or null");
            goto done;
        }
        json_t *t = json_object_get(x, "type");
        if (!json_is_string(t) || knn_dimred_type_parse(&m->dimred, json_string_value(t)) != 0) {
            rc = s_bad_key("dimension_reduction", "\"type\" must be \"sign\", \"fjlt\" or \"none\"");
            goto done;
        }
        if (m->dimred != KNN_DIMRED_NONE) {
            size_t seed = 0;
            m->has_dimred = 1;
            if ((rc = s_get_size(x, "seed", 0, SIZE_MAX, 1, &seed)) ||
                (rc = s_get_size(x, "target_dim", 1, SIZE_MAX, 1, &m->dimred_target)) ||
                (rc = s_get_size(x, "input_dim", 1, SIZE_MAX, 1, &m->dimred_input))) {
                knn_error_wrap(rc, "in \"dimension_reduction\"");
                goto done;
            }
            m->dimred_seed = seed;
        }
    }

    x = json_object_get(j, "index_type");
    if (x) {
        if (!json_is_string(x) || knn_index_type_parse(&m->index_type, json_string_value(x)) != 0) {
            rc = s_bad_key("index_type", "expected \"faiss.Flat\", \"faiss.IVFFlat\", \"faiss.IVFPQ\" or \"ivf_sq8\"");
            goto done;
        }
        m->ours = 1;
    }
    x = json_object_get(j, "index_metric");
    if (x) {
        if (!json_is_string(x) || knn_model_metric_parse(&m->metric, json_string_value(x)) != 0) {
            rc = s_bad_key("index_metric", "expected \"L2\", \"INNER_PRODUCT\" or \"COSINE\"");
            goto done;
        }
        m->has_metric = 1;
    }
    if ((rc = s_get_size(j, "nlist", 1, INT32_MAX, 0, &m->nlist)) ||
        (rc = s_get_size(j, "nprobe", 1, INT32_MAX, 0, &m->nprobe)) ||
        (rc = s_get_size(j, "ef_search", 1, INT32_MAX, 0, &m->ef_search)) ||
        (rc = s_get_size(j, "pq_m", 1, 1 << 16, 0, &m->pq_m)) ||
        (rc = s_get_size(j, "effective_dim", 1, (size_t)1 << 24, 0, &m->effective_dim)) ||
        (rc = s_get_size(j, "feature_dim", 1, (size_t)1 << 30, 0, &m->feature_dim)))
        goto done;
    m->has_rng = json_object_get(j, "rng") != NULL;
    json_t *sums = json_object_get(j, "sha256");
    if (sums) {
        if (!json_is_object(sums)) {
            rc = s_bad_key("sha256", "expected an object");
            goto done;
        }
        if ((rc = s_get_sha(sums, S_INDEX_NAME, m->index_sha)) || (rc = s_get_sha(sums, S_LABELS_NAME, m->labels_sha)))
            goto done;
    }
done:
    json_decref(j);
    return rc;
}

static int s_verify(const char *path, const char *name, const char *want)
{
    if (!want[0])
        return 0;
    char got[65];
    int rc = s_sha256_file(path, name, got);
    if (rc)
        return rc;
    if (strcmp(got, want) != 0)
        return knn_error_set(
            KNN_ECHECKSUM,
            "%s: SHA-256 %s, but %s says %s (the file is corrupt or from another "
            "model)",
            name, got, S_JSON_NAME, want);
    return 0;
}

static int s_load_labels(const char *path, size_t ntotal, float **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return knn_error_set(
            errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: cannot open: %s", S_LABELS_NAME, strerror(errno));
    struct stat st;
    float *labels = NULL;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = knn_error_set(KNN_EIO, "%s: not a regular file", S_LABELS_NAME);
        goto done;
    }
    if ((uint64_t)st.st_size != (uint64_t)ntotal * sizeof(float)) {
        rc = knn_error_set(
            KNN_EMISMATCH,
            "%s: %" PRIu64 " bytes, but the index holds %zu vectors (expected %" PRIu64
            " bytes: one float32 label each)",
            S_LABELS_NAME, (uint64_t)st.st_size, ntotal, (uint64_t)ntotal * sizeof(float));
        goto done;
    }
    if (!(labels = knn_malloc_array(ntotal ? ntotal : 1, sizeof(float)))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    if (fread(labels, sizeof(float), ntotal, f) != ntotal) {
        rc = knn_error_set(KNN_EIO, "%s: read failed", S_LABELS_NAME);
        goto done;
    }
    for (size_t i = 0; i < ntotal; i++) {
        if (!isfinite(labels[i])) {
            rc = knn_error_set(KNN_ERANGE, "%s: byte %zu: label %zu is not a finite number", S_LABELS_NAME, 4 * i, i);
            goto done;
        }
    }
    *out = labels;
    labels = NULL;
done:
    knn_free(labels);
    fclose(f);
    return rc;
}

static int s_mismatch(const char *what, size_t json_value, size_t index_value)
{
    return knn_error_set(
        KNN_EMISMATCH, "%s says %s = %zu, but %s has %zu", S_JSON_NAME, what, json_value, S_INDEX_NAME, index_value);
}

/* The default reader: the whole index and every label. */
static int s_read_whole_index(void *user, const char *path, struct knn_index **out, uint64_t *ntotal)
{
    (void)user;
    int rc = knn_index_read_faiss_file(out, path);
    if (rc == 0)
        *ntotal = knn_index_ntotal(*out);
    return rc;
}

static int s_read_all_labels(void *user, const char *path, uint64_t ntotal, struct knn_model *model)
{
    (void)user;
    return s_load_labels(path, (size_t)ntotal, &model->labels);
}

int knn_model_load(struct knn_model **out, const char *dir)
{
    static const struct knn__model_reader s_whole = {s_read_whole_index, s_read_all_labels, NULL, 1};
    return knn__model_load_with(out, dir, &s_whole);
}

int knn__model_load_with(struct knn_model **out, const char *dir, const struct knn__model_reader *reader)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    struct s_meta m;
    struct knn_model *model = NULL;
    int rc;

    if (!out || !dir)
        return knn_error_set(KNN_EINVAL, "model load: NULL argument");
    *out = NULL;
    memset(&m, 0, sizeof(m));

    if ((rc = s_path(path, sizeof(path), dir, S_JSON_NAME)) ||
        (rc = s_read_small(path, S_JSON_NAME, S_JSON_MAX_BYTES, &text, &len)) || (rc = s_parse_json(&m, text, len)))
        goto on_error;
    if (m.has_dimred && !m.has_rng) {
        rc = knn_error_set(
            KNN_EUNSUPPORTED,
            "%s: \"dimension_reduction\" of a model made by SageMaker: its random "
            "projection cannot be rebuilt outside SageMaker",
            S_JSON_NAME);
        goto on_error;
    }

    if (!(model = knn_calloc(1, sizeof(*model)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if ((rc = s_path(path, sizeof(path), dir, S_INDEX_NAME)) ||
        (reader->verify && (rc = s_verify(path, S_INDEX_NAME, m.index_sha))))
        goto on_error;
    uint64_t ntotal;
    if ((rc = reader->index(reader->user, path, &model->index, &ntotal))) {
        /* The reader's message starts with the path: name the file as the user knows it. */
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", knn_error_message());
        const char *tail = strncmp(msg, path, strlen(path)) == 0 ? msg + strlen(path) : msg;
        knn_error_set(rc, "%s%s%s", S_INDEX_NAME, tail == msg ? ": " : "", tail);
        goto on_error;
    }
    const struct knn_index_options *io = knn_index_get_options(model->index);

    /* The configuration: the JSON where it speaks, the index file for the rest. */
    struct knn_model_config *c = &model->cfg;
    static const struct knn_model_config s_defaults = KNN_MODEL_CONFIG_INIT;
    *c = s_defaults;
    c->k = m.k;
    c->predictor = m.predictor;
    c->index_type = io->type;
    if (m.ours && m.index_type != io->type) {
        rc = knn_error_set(
            KNN_EMISMATCH, "%s says index_type %s, but %s holds a %s index", S_JSON_NAME,
            knn_index_type_name(m.index_type), S_INDEX_NAME, knn_index_type_name(io->type));
        goto on_error;
    }
    if (io->metric == KNN_METRIC_L2)
        c->metric = KNN_MODEL_METRIC_L2;
    else
        c->metric = m.normalize ? KNN_MODEL_METRIC_COSINE : KNN_MODEL_METRIC_INNER_PRODUCT;
    if (m.normalize && io->metric != KNN_METRIC_INNER_PRODUCT) {
        rc = knn_error_set(
            KNN_EMISMATCH, "%s says normalize (COSINE), but %s is an L2 index", S_JSON_NAME, S_INDEX_NAME);
        goto on_error;
    }
    if (m.has_metric && m.metric != c->metric) {
        rc = knn_error_set(
            KNN_EMISMATCH, "%s says index_metric %s, but %s with normalize = %s means %s", S_JSON_NAME,
            knn_model_metric_name(m.metric), S_INDEX_NAME, m.normalize ? "true" : "false",
            knn_model_metric_name(c->metric));
        goto on_error;
    }
    if (io->type == KNN_INDEX_HNSW) {
        c->hnsw_m = io->hnsw_m;
        c->ef_construction = io->ef_construction;
        c->ef_search = m.ef_search ? m.ef_search : io->ef_search;
        if ((rc = knn_index_set_ef_search(model->index, c->ef_search)))
            goto on_error;
    } else if (io->type != KNN_INDEX_FLAT) {
        if (m.nlist && m.nlist != io->nlist) {
            rc = s_mismatch("nlist", m.nlist, io->nlist);
            goto on_error;
        }
        c->nlist = io->nlist;
        c->nprobe = m.nprobe ? m.nprobe : io->nprobe;
        if (c->nprobe > c->nlist)
            c->nprobe = c->nlist;
        if ((rc = knn_index_set_nprobe(model->index, c->nprobe)))
            goto on_error;
    }
    if (io->type == KNN_INDEX_IVFPQ) {
        if (m.pq_m && m.pq_m != io->pq_m) {
            rc = s_mismatch("pq_m", m.pq_m, io->pq_m);
            goto on_error;
        }
        c->pq_m = io->pq_m;
    }
    if (m.effective_dim && m.effective_dim != io->dim) {
        rc = s_mismatch("effective_dim", m.effective_dim, io->dim);
        goto on_error;
    }
    if (m.has_dimred) {
        c->dimred = m.dimred;
        c->dimred_target = m.dimred_target;
        c->dimred_seed = m.dimred_seed;
    }
    if (m.has_dimred && m.feature_dim && m.feature_dim != m.dimred_input) {
        rc = knn_error_set(
            KNN_EMISMATCH, "%s: feature_dim = %zu, but dimension_reduction.input_dim = %zu", S_JSON_NAME, m.feature_dim,
            m.dimred_input);
        goto on_error;
    }
    c->feature_dim = m.has_dimred ? m.dimred_input : m.feature_dim ? m.feature_dim : io->dim;
    if ((rc = knn__model_setup_transform(model))) {
        knn_error_wrap(rc, "%s", S_JSON_NAME);
        goto on_error;
    }
    if (model->effective_dim != io->dim) {
        rc = knn_error_set(
            KNN_EMISMATCH,
            "%s describes vectors of %zu floats for the index, but %s holds vectors of "
            "%zu",
            S_JSON_NAME, model->effective_dim, S_INDEX_NAME, io->dim);
        goto on_error;
    }

    if ((rc = s_path(path, sizeof(path), dir, S_LABELS_NAME)) ||
        (reader->verify && (rc = s_verify(path, S_LABELS_NAME, m.labels_sha))) ||
        (rc = reader->labels(reader->user, path, ntotal, model)))
        goto on_error;

    knn_free(text);
    *out = model;
    return 0;

on_error:
    knn_free(text);
    knn_model_destroy(model);
    return knn_error_wrap(rc, "model %s", dir);
}
