/*
 * The 8-bit scalar quantizer (sq.h): FAISS's QT_8bit / RS_minmax, byte for byte, and the scan of
 * codes against a query without decoding them.
 */
#include "sq.h"

#include "distances.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

int knn__sq_init(struct knn__sq *sq, size_t d)
{
    memset(sq, 0, sizeof(*sq));
    if (d == 0)
        return knn_error_set(KNN_EINVAL, "scalar quantizer: dimension 0");
    sq->d = d;
    if (!(sq->trained = knn_calloc(2 * d, sizeof(float))) || !(sq->step = knn_calloc(d, sizeof(float)))) {
        knn__sq_clean_up(sq);
        return KNN_ENOMEM;
    }
    return 0;
}

void knn__sq_clean_up(struct knn__sq *sq)
{
    knn_free(sq->trained);
    knn_free(sq->step);
    memset(sq, 0, sizeof(*sq));
}

void knn__sq_prepare(struct knn__sq *sq)
{
    for (size_t j = 0; j < sq->d; j++)
        sq->step[j] = sq->trained[sq->d + j] / 255.0f;
}

void knn__sq_train(struct knn__sq *sq, size_t n, const float *x)
{
    const size_t d = sq->d;
    float *vmin = sq->trained, *vmax = sq->trained + d;
    if (n == 0) {
        memset(sq->trained, 0, 2 * d * sizeof(float));
        knn__sq_prepare(sq);
        return;
    }
    memcpy(vmin, x, d * sizeof(float));
    memcpy(vmax, x, d * sizeof(float));
    for (size_t i = 1; i < n; i++) {
        const float *xi = x + i * d;
        for (size_t j = 0; j < d; j++) {
            vmin[j] = xi[j] < vmin[j] ? xi[j] : vmin[j];
            vmax[j] = xi[j] > vmax[j] ? xi[j] : vmax[j];
        }
    }
    for (size_t j = 0; j < d; j++)
        vmax[j] -= vmin[j]; /* vdiff, in place as FAISS keeps it (rangestat_arg 0: no widening) */
    knn__sq_prepare(sq);
}

void knn__sq_encode(const struct knn__sq *sq, size_t n, const float *x, uint8_t *codes)
{
    const size_t d = sq->d;
    const float *vmin = sq->trained, *vdiff = sq->trained + d;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        uint8_t *c = codes + i * d;
        for (size_t j = 0; j < d; j++) {
            float v = 0;
            if (vdiff[j] != 0) {
                v = (xi[j] - vmin[j]) / vdiff[j];
                v = v < 0 ? 0 : v > 1.0f ? 1.0f : v;
            }
            c[j] = (uint8_t)(int)(255 * v);
        }
    }
}

void knn__sq_decode(const struct knn__sq *sq, const uint8_t *code, float *x)
{
    const size_t d = sq->d;
    for (size_t j = 0; j < d; j++)
        x[j] = sq->trained[j] + (code[j] + 0.5f) / 255.0f * sq->trained[d + j];
}

void knn__sq_query(const struct knn__sq *sq, const float *r, int ip, float *a, float *dis0)
{
    const float *vmin = sq->trained;
    float c0 = 0;
    for (size_t j = 0; j < sq->d; j++) {
        if (ip) {
            a[j] = r[j] * sq->step[j];
            c0 += r[j] * (vmin[j] + 0.5f * sq->step[j]);
        } else {
            a[j] = r[j] - vmin[j] - 0.5f * sq->step[j];
        }
    }
    *dis0 = c0;
}

static float s_code_dist(const uint8_t *c, size_t d, const float *a, const float *s, int ip)
{
    float v = 0;
    for (size_t j = 0; j < d; j++) {
        if (ip) {
            v += a[j] * (float)c[j];
        } else {
            float t = a[j] - s[j] * (float)c[j];
            v += t * t;
        }
    }
    return v;
}

static void s_scan_portable(
    const uint8_t *codes, size_t n, size_t d, const float *a, const float *s, float dis0, const int64_t *ids,
    struct knn__topk *h)
{
    const int ip = h->ip;
    float thr = knn__topk_threshold(h);
    for (size_t i = 0; i < n; i++) {
        float v = dis0 + s_code_dist(codes + i * d, d, a, s, ip);
        if (ip ? v >= thr : v <= thr) {
            knn__topk_push(h, v, ids[i]);
            thr = knn__topk_threshold(h);
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static inline __m256 s_load8(const uint8_t *c)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c)));
}

__attribute__((target("avx2,fma"))) static inline float s_hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/*
 * Two codes per step, 8 components at a time (bytes widened to floats in registers): the
 * independent accumulators keep both FMA pipes busy. The d % 8 tail is summed in scalar code.
 */
__attribute__((target("avx2,fma"))) static void s_scan_avx2(
    const uint8_t *codes, size_t n, size_t d, const float *a, const float *s, float dis0, const int64_t *ids,
    struct knn__topk *h)
{
    const int ip = h->ip;
    const size_t d8 = d / 8 * 8;
    float thr = knn__topk_threshold(h);
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint8_t *c0 = codes + i * d, *c1 = c0 + d;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (size_t j = 0; j < d8; j += 8) {
            __m256 va = _mm256_loadu_ps(a + j);
            __m256 x0 = s_load8(c0 + j), x1 = s_load8(c1 + j);
            if (ip) {
                acc0 = _mm256_fmadd_ps(va, x0, acc0);
                acc1 = _mm256_fmadd_ps(va, x1, acc1);
            } else {
                __m256 vs = _mm256_loadu_ps(s + j);
                __m256 t0 = _mm256_fnmadd_ps(vs, x0, va), t1 = _mm256_fnmadd_ps(vs, x1, va);
                acc0 = _mm256_fmadd_ps(t0, t0, acc0);
                acc1 = _mm256_fmadd_ps(t1, t1, acc1);
            }
        }
        float v0 = dis0 + s_hsum(acc0), v1 = dis0 + s_hsum(acc1);
        if (d8 < d) {
            v0 += s_code_dist(c0 + d8, d - d8, a + d8, s + d8, ip);
            v1 += s_code_dist(c1 + d8, d - d8, a + d8, s + d8, ip);
        }
        if (ip ? v0 >= thr : v0 <= thr) {
            knn__topk_push(h, v0, ids[i]);
            thr = knn__topk_threshold(h);
        }
        if (ip ? v1 >= thr : v1 <= thr) {
            knn__topk_push(h, v1, ids[i + 1]);
            thr = knn__topk_threshold(h);
        }
    }
    if (i < n)
        s_scan_portable(codes + i * d, n - i, d, a, s, dis0, ids + i, h);
}
#endif

void knn__sq_scan(
    const struct knn__sq *sq, const uint8_t *codes, size_t n, const float *a, float dis0, const int64_t *ids,
    struct knn__topk *h)
{
#if defined(__x86_64__) || defined(__i386__)
    if (sq->d >= 8 && knn__simd_enabled()) {
        s_scan_avx2(codes, n, sq->d, a, sq->step, dis0, ids, h);
        return;
    }
#endif
    s_scan_portable(codes, n, sq->d, a, sq->step, dis0, ids, h);
}
