/*
 * Dimension reduction (spec §2.5), rebuilt from (type, input_dim, target_dim, seed) alone.
 *
 * The random choices are drawn from the library generator (rng.h) seeded with `seed`, in this
 * order, so any implementation can rebuild the same transform:
 * - sign: the entries of R (input_dim x target_dim) in row-major order; entry e takes bit (e % 64)
 *   of the (e / 64)-th 64-bit output: 1 is +1/sqrt(target_dim), 0 is -1/sqrt(target_dim).
 *   y = x R.
 * - fjlt: d' = the smallest power of two >= input_dim. First the d' diagonal signs D, bit by bit as
 *   above (1 is +1). Then the kept coordinates: a partial Fisher-Yates shuffle of 0..d'-1, for
 *   i = 0..target_dim-1 swapping position i with i + knn__rng_below(d' - i); the first target_dim
 *   entries, sorted ascending, are kept. y_j = (H D x')[keep_j] / sqrt(target_dim), where x' is x
 *   zero-padded to d' and H the unnormalized Walsh-Hadamard matrix (Sylvester order):
 *   sqrt(d'/t) * (H/sqrt(d')) = H/sqrt(t).
 */
#include "knn/algorithms/dimred.h"

#include "parallel.h"
#include "rng.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Matrices or sign vectors above this many floats are refused (16 GiB). */
#define S_MAX_FLOATS ((size_t)1 << 32)

struct knn_dimred {
    enum knn_dimred_type type;
    size_t input_dim;
    size_t target_dim;
    uint64_t seed;
    float *matrix; /* sign: input_dim x target_dim, row-major */
    size_t dpad;   /* fjlt: padded width (a power of two) */
    float *signs;  /* fjlt: dpad values +-1 */
    size_t *keep;  /* fjlt: target_dim kept coordinates, ascending */
    float scale;   /* fjlt: 1 / sqrt(target_dim) */
};

/* Fill out[0..n) with +-value from the generator's bits (bit e % 64 of output e / 64; 1 is +). */
static void s_random_signs(struct knn__rng *rng, float *out, size_t n, float value)
{
    uint64_t word = 0;
    for (size_t e = 0; e < n; e++) {
        if (e % 64 == 0)
            word = knn__rng_next(rng);
        out[e] = (word >> (e % 64)) & 1 ? value : -value;
    }
}

static int s_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int knn_dimred_new(
    struct knn_dimred **out, enum knn_dimred_type type, size_t input_dim, size_t target_dim, uint64_t seed)
{
    struct knn_dimred *t = NULL;
    size_t *perm = NULL;
    int rc = 0;

    if (!out)
        return knn_error_set(KNN_EINVAL, "dimension reduction: NULL argument");
    *out = NULL;
    if (type != KNN_DIMRED_SIGN && type != KNN_DIMRED_FJLT)
        return knn_error_set(KNN_EINVAL, "dimension reduction: type %d is not sign or fjlt", (int)type);
    if (input_dim == 0 || target_dim == 0)
        return knn_error_set(
            KNN_EINVAL, "dimension reduction: input_dim %zu and target_dim %zu must be positive", input_dim,
            target_dim);
    if (input_dim > INT32_MAX || target_dim > INT32_MAX)
        return knn_error_set(
            KNN_ETOOBIG, "dimension reduction: input_dim %zu or target_dim %zu is too large", input_dim, target_dim);
    if (!(t = knn_calloc(1, sizeof(*t))))
        return KNN_ENOMEM;
    t->type = type;
    t->input_dim = input_dim;
    t->target_dim = target_dim;
    t->seed = seed;

    struct knn__rng rng;
    knn__rng_seed(&rng, seed);
    if (type == KNN_DIMRED_SIGN) {
        size_t n;
        if (knn_mul_size(&n, input_dim, target_dim) != 0 || n > S_MAX_FLOATS) {
            rc = knn_error_set(
                KNN_ETOOBIG, "dimension reduction: a %zu x %zu sign matrix is too large", input_dim, target_dim);
            goto on_error;
        }
        if (!(t->matrix = knn_malloc_array(n, sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
        s_random_signs(&rng, t->matrix, n, (float)(1.0 / sqrt((double)target_dim)));
    } else {
        size_t dpad = 1;
        while (dpad < input_dim) {
            if (dpad > S_MAX_FLOATS / 2) {
                rc = knn_error_set(KNN_ETOOBIG, "dimension reduction: input_dim %zu is too large for fjlt", input_dim);
                goto on_error;
            }
            dpad *= 2;
        }
        if (target_dim > dpad) {
            rc = knn_error_set(
                KNN_EINVAL, "dimension reduction: fjlt target_dim %zu exceeds the padded input width %zu", target_dim,
                dpad);
            goto on_error;
        }
        t->dpad = dpad;
        t->scale = (float)(1.0 / sqrt((double)target_dim));
        if (!(t->signs = knn_malloc_array(dpad, sizeof(float))) ||
            !(t->keep = knn_malloc_array(target_dim, sizeof(size_t))) ||
            !(perm = knn_malloc_array(dpad, sizeof(size_t)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
        s_random_signs(&rng, t->signs, dpad, 1.0f);
        for (size_t i = 0; i < dpad; i++)
            perm[i] = i;
        for (size_t i = 0; i < target_dim; i++) {
            size_t j = i + (size_t)knn__rng_below(&rng, dpad - i);
            size_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        memcpy(t->keep, perm, target_dim * sizeof(size_t));
        qsort(t->keep, target_dim, sizeof(size_t), s_cmp_size);
    }
    knn_free(perm);
    *out = t;
    return 0;

on_error:
    knn_free(perm);
    knn_dimred_destroy(t);
    return rc;
}

void knn_dimred_destroy(struct knn_dimred *t)
{
    if (!t)
        return;
    knn_free(t->matrix);
    knn_free(t->signs);
    knn_free(t->keep);
    knn_free(t);
}

/* In-place unnormalized Walsh-Hadamard transform of n = 2^m values. */
static void s_fwht(float *v, size_t n)
{
    for (size_t h = 1; h < n; h *= 2) {
        for (size_t i = 0; i < n; i += 2 * h) {
            float *a = v + i, *b = v + i + h;
            for (size_t j = 0; j < h; j++) {
                float x = a[j], y = b[j];
                a[j] = x + y;
                b[j] = x - y;
            }
        }
    }
}

struct s_apply {
    const struct knn_dimred *t;
    const float *x;
    float *y;
};

static int s_apply_chunk(void *ctx, size_t begin, size_t end, size_t worker)
{
    struct s_apply *a = ctx;
    const struct knn_dimred *t = a->t;
    size_t in = t->input_dim, out = t->target_dim;
    if (t->type == KNN_DIMRED_SIGN) {
        knn__blas_single_threaded();
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(end - begin), (int)out, (int)in, 1.0f, a->x + begin * in,
            (int)in, t->matrix, (int)out, 0.0f, a->y + begin * out, (int)out);
        return 0;
    }
    float *buf = knn_malloc_array(t->dpad, sizeof(float));
    if (!buf)
        return KNN_ENOMEM;
    for (size_t r = begin; r < end; r++) {
        const float *xr = a->x + r * in;
        float *yr = a->y + r * out;
        for (size_t i = 0; i < in; i++)
            buf[i] = xr[i] * t->signs[i];
        memset(buf + in, 0, (t->dpad - in) * sizeof(float));
        s_fwht(buf, t->dpad);
        for (size_t j = 0; j < out; j++)
            yr[j] = buf[t->keep[j]] * t->scale;
    }
    knn_free(buf);
    return 0;
}

int knn_dimred_apply(const struct knn_dimred *t, size_t n, const float *x, float *y)
{
    if (!t || (n > 0 && (!x || !y)))
        return knn_error_set(KNN_EINVAL, "dimension reduction: NULL argument");
    if (n == 0)
        return 0;
    if (n > (size_t)INT32_MAX && t->type == KNN_DIMRED_SIGN)
        return knn_error_set(KNN_ETOOBIG, "dimension reduction: %zu rows in one call", n);
    struct s_apply a = {t, x, y};
    /* Rows are independent: split them over the cores (small calls stay on this thread). */
    size_t work = n * (t->type == KNN_DIMRED_SIGN ? t->input_dim * t->target_dim : t->dpad * 8);
    size_t threads = work < ((size_t)1 << 20) ? 1 : 0;
    int rc = knn__parallel_for(n, threads, s_apply_chunk, &a);
    return rc ? knn_error_wrap(rc, "dimension reduction (%s)", knn_dimred_type_name(t->type)) : 0;
}

size_t knn_dimred_input_dim(const struct knn_dimred *t)
{
    return t->input_dim;
}

size_t knn_dimred_output_dim(const struct knn_dimred *t)
{
    return t->target_dim;
}

int knn_dimred_type_parse(enum knn_dimred_type *out, const char *name)
{
    static const struct {
        const char *name;
        enum knn_dimred_type type;
    } s_names[] = {{"none", KNN_DIMRED_NONE}, {"sign", KNN_DIMRED_SIGN}, {"fjlt", KNN_DIMRED_FJLT}};
    if (!out || !name)
        return knn_error_set(KNN_EINVAL, "dimension reduction type: NULL argument");
    for (size_t i = 0; i < sizeof(s_names) / sizeof(s_names[0]); i++) {
        if (strcmp(name, s_names[i].name) == 0) {
            *out = s_names[i].type;
            return 0;
        }
    }
    return knn_error_set(KNN_EINVAL, "dimension reduction type \"%s\" is not sign, fjlt or none", name);
}

const char *knn_dimred_type_name(enum knn_dimred_type type)
{
    switch (type) {
        case KNN_DIMRED_NONE:
            return "none";
        case KNN_DIMRED_SIGN:
            return "sign";
        case KNN_DIMRED_FJLT:
            return "fjlt";
    }
    return "unknown";
}
