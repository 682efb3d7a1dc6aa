/*
 * Distance kernels: exact search by tiled sgemm for batches, a fused streaming kernel for single
 * queries, and the small vector helpers the index types share.
 *
 * Batches (knn__exact_search_block), d <= 128: a register-blocked kernel (6 queries x 16 base
 * vectors of dot products in registers, the base packed in panels) tests each distance against the
 * query's running k-th best before it leaves the registers. Wider vectors: queries and base are cut
 * into tiles; one cblas_sgemm per tile computes -2 x.y (L2) or x.y (inner product) into a scratch
 * tile that stays in the L2 cache, and a scan adds the norms and tests 16 distances at a time
 * (AVX2 compare + movemask) before anything touches the heap.
 *
 * Single queries (knn__scan_one) are memory-bound: the base is streamed once and each 8 rows are
 * reduced to 8 distances in registers, tested against the threshold in the same pass.
 *
 * The AVX2/FMA kernels are compiled with __attribute__((target)) and chosen at run time; the
 * portable versions (and the sgemm path they use for batches) give the same answers up to float
 * rounding: bit for bit on exactly representable data, which is how the tests compare them.
 */
#include "distances.h"

#include "parallel.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define S_HAVE_X86 1
#else
#define S_HAVE_X86 0
#endif

/*
 * Tile sizes of the batch search. S_QUERY_TILE queries x S_BASE_TILE base vectors of distances is
 * 256 KiB: it stays in the L2 between the sgemm that writes it and the scan that reads it, next to
 * the packed operands. The register-blocked kernel (d <= 128) takes S_REG_QUERY_TILE queries per
 * packing of the base: larger tiles pack less often (the packing re-reads the whole base).
 */
#ifndef S_QUERY_TILE
#define S_QUERY_TILE 256
#endif
#ifndef S_REG_QUERY_TILE
#define S_REG_QUERY_TILE 512
#endif
#ifndef S_BASE_TILE
#define S_BASE_TILE 256
#endif

/* ---- CPU dispatch ---- */

static int s_simd_state = -1; /* -1 unknown, 0 portable, 1 AVX2+FMA */
static int s_simd_disabled;

int knn__simd_enabled(void)
{
    int v = __atomic_load_n(&s_simd_state, __ATOMIC_RELAXED);
    if (v < 0) {
#if S_HAVE_X86
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        v = 0;
#endif
        __atomic_store_n(&s_simd_state, v, __ATOMIC_RELAXED);
    }
    return v && !__atomic_load_n(&s_simd_disabled, __ATOMIC_RELAXED);
}

void knn__simd_set_enabled(int on)
{
    __atomic_store_n(&s_simd_disabled, !on, __ATOMIC_RELAXED);
}

/* ---- small helpers ---- */

static float s_l2sqr_portable(const float *a, const float *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

static float s_dot_portable(const float *a, const float *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++)
        s += a[i] * b[i];
    return s;
}

#if S_HAVE_X86
__attribute__((target("avx2,fma"))) static inline float s_hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

__attribute__((target("avx2,fma"))) static float s_l2sqr_avx2(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    float s = s_hsum(_mm256_add_ps(s0, s1));
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

__attribute__((target("avx2,fma"))) static float s_dot_avx2(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = s_hsum(_mm256_add_ps(s0, s1));
    for (; i < d; i++)
        s += a[i] * b[i];
    return s;
}
#endif

float knn__l2sqr(const float *a, const float *b, size_t d)
{
#if S_HAVE_X86
    if (d >= 16 && knn__simd_enabled())
        return s_l2sqr_avx2(a, b, d);
#endif
    return s_l2sqr_portable(a, b, d);
}

float knn__dot(const float *a, const float *b, size_t d)
{
#if S_HAVE_X86
    if (d >= 16 && knn__simd_enabled())
        return s_dot_avx2(a, b, d);
#endif
    return s_dot_portable(a, b, d);
}

void knn__norms_sqr(const float *x, size_t n, size_t d, float *out)
{
#if S_HAVE_X86
    if (d >= 16 && knn__simd_enabled()) {
        for (size_t i = 0; i < n; i++)
            out[i] = s_dot_avx2(x + i * d, x + i * d, d);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        out[i] = s_dot_portable(x + i * d, x + i * d, d);
}

void knn__normalize_rows(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        float *row = x + i * d;
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += (double)row[j] * row[j];
        if (s > 0) {
            float inv = (float)(1.0 / sqrt(s));
            for (size_t j = 0; j < d; j++)
                row[j] *= inv;
        }
    }
}

/* ---- the scan of one row of a distance tile ---- */

/*
 * Offer tile[j] (+ base_norms[j] + qnorm, clamped at 0, for L2) for j < nb to h, with ids id0 + j.
 * A candidate reaches the heap only if it is at least as good as the current threshold; equal
 * distances go through so that the heap's id rule decides.
 */
static void s_scan_tile_row_portable(
    const float *tile, const float *base_norms, size_t nb, float qnorm, struct knn__topk *h, int64_t id0)
{
    float thr = knn__topk_threshold(h);
    if (h->ip) {
        for (size_t j = 0; j < nb; j++) {
            float v = tile[j];
            if (v >= thr) {
                knn__topk_push(h, v, id0 + (int64_t)j);
                thr = knn__topk_threshold(h);
            }
        }
    } else {
        for (size_t j = 0; j < nb; j++) {
            float v = (tile[j] + base_norms[j]) + qnorm;
            v = v > 0 ? v : 0;
            if (v <= thr) {
                knn__topk_push(h, v, id0 + (int64_t)j);
                thr = knn__topk_threshold(h);
            }
        }
    }
}

#if S_HAVE_X86
__attribute__((target("avx2,fma"))) static void s_scan_tile_row_avx2(
    const float *tile, const float *base_norms, size_t nb, float qnorm, struct knn__topk *h, int64_t id0)
{
    float thr = knn__topk_threshold(h);
    __m256 vthr = _mm256_set1_ps(thr);
    size_t j = 0;
    if (h->ip) {
        for (; j + 16 <= nb; j += 16) {
            __m256 v0 = _mm256_loadu_ps(tile + j);
            __m256 v1 = _mm256_loadu_ps(tile + j + 8);
            unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v0, vthr, _CMP_GE_OQ)) |
                         ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v1, vthr, _CMP_GE_OQ)) << 8);
            if (m) {
                while (m) {
                    unsigned b = (unsigned)__builtin_ctz(m);
                    m &= m - 1;
                    float v = tile[j + b];
                    if (v >= thr) {
                        knn__topk_push(h, v, id0 + (int64_t)(j + b));
                        thr = knn__topk_threshold(h);
                    }
                }
                vthr = _mm256_set1_ps(thr);
            }
        }
        for (; j < nb; j++) {
            float v = tile[j];
            if (v >= thr) {
                knn__topk_push(h, v, id0 + (int64_t)j);
                thr = knn__topk_threshold(h);
            }
        }
        return;
    }
    __m256 vq = _mm256_set1_ps(qnorm);
    __m256 zero = _mm256_setzero_ps();
    float buf[16];
    for (; j + 16 <= nb; j += 16) {
        __m256 v0 = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(tile + j), _mm256_loadu_ps(base_norms + j)), vq);
        __m256 v1 =
            _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(tile + j + 8), _mm256_loadu_ps(base_norms + j + 8)), vq);
        v0 = _mm256_max_ps(v0, zero);
        v1 = _mm256_max_ps(v1, zero);
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v0, vthr, _CMP_LE_OQ)) |
                     ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v1, vthr, _CMP_LE_OQ)) << 8);
        if (m) {
            _mm256_storeu_ps(buf, v0);
            _mm256_storeu_ps(buf + 8, v1);
            while (m) {
                unsigned b = (unsigned)__builtin_ctz(m);
                m &= m - 1;
                if (buf[b] <= thr) {
                    knn__topk_push(h, buf[b], id0 + (int64_t)(j + b));
                    thr = knn__topk_threshold(h);
                }
            }
            vthr = _mm256_set1_ps(thr);
        }
    }
    if (j < nb)
        s_scan_tile_row_portable(tile + j, base_norms + j, nb - j, qnorm, h, id0 + (int64_t)j);
}
#endif

static void
s_scan_tile_row(const float *tile, const float *base_norms, size_t nb, float qnorm, struct knn__topk *h, int64_t id0)
{
#if S_HAVE_X86
    if (knn__simd_enabled()) {
        s_scan_tile_row_avx2(tile, base_norms, nb, qnorm, h, id0);
        return;
    }
#endif
    s_scan_tile_row_portable(tile, base_norms, nb, qnorm, h, id0);
}

/* ---- batches up to d = 128: a register-blocked kernel instead of sgemm ---- */

/*
 * Distances are computed in registers and tested there: 6 queries x 16 base vectors per step, the
 * base packed in panels of 8 vectors (d x 8, dimension-major) so one load feeds 6 FMAs, and only
 * the distances that pass a query's threshold leave the registers. Against sgemm tiles + scan,
 * measured in thread CPU time on the anchor data (1 thread): d = 20, 39 ms vs 68 ms per 1,000
 * queries (sgemm with K = 20 runs at a third of the FMA peak, and the scan reads every distance);
 * d = 128, 190 ms vs 206 ms per 256 queries. Wider vectors keep the sgemm tiles, whose K-blocking
 * handles the caches better.
 */
#ifndef S_SMALL_D_MAX
#define S_SMALL_D_MAX 128
#endif
/* Base vectors packed at a time: a block of about S_PANEL_FLOATS floats stays in the L2 cache. */
#ifndef S_PANEL_FLOATS
#define S_PANEL_FLOATS (48 * 1024)
#endif

static size_t s_panel_block(size_t d)
{
    size_t b = S_PANEL_FLOATS / d / 16 * 16;
    return b < 64 ? 64 : b;
}

/*
 * Pack nb base vectors into panels of 8 (panel p holds d x 8 floats), zero-filled up to `padded`
 * vectors (a multiple of 16).
 */
static void s_pack_panels(const float *base, size_t nb, size_t padded, size_t d, float *packed)
{
    for (size_t p = 0; p < padded; p += 8) {
        float *dst = packed + p * d;
        for (size_t j = 0; j < d; j++)
            for (size_t l = 0; l < 8; l++)
                dst[j * 8 + l] = p + l < nb ? base[(p + l) * d + j] : 0.0f;
    }
}

#if S_HAVE_X86
#define S_ACC_INIT(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps()
#define S_ACC_STEP(r)                                                                                                  \
    do {                                                                                                               \
        __m256 s_qb = _mm256_broadcast_ss(q##r + j);                                                                   \
        a##r##0 = _mm256_fmadd_ps(s_qb, b0, a##r##0);                                                                  \
        a##r##1 = _mm256_fmadd_ps(s_qb, b1, a##r##1);                                                                  \
    } while (0)

/* The slow path: push the distances of v (6 rows x 16, row-major) whose bit is set in masks[r]. */
static void s_small_push(
    const float *v, const unsigned *masks, size_t rows, int ip, struct knn__topk *heaps, float *thr, int64_t id0)
{
    for (size_t r = 0; r < rows; r++) {
        unsigned m = masks[r];
        while (m) {
            unsigned b = (unsigned)__builtin_ctz(m);
            m &= m - 1;
            float x = v[r * 16 + b];
            x = ip || x > 0 ? x : 0;
            if (ip ? x >= thr[r] : x <= thr[r]) {
                knn__topk_push(&heaps[r], x, id0 + (int64_t)b);
                thr[r] = knn__topk_threshold(&heaps[r]);
            }
        }
    }
}

/* Row r's 16 distances (L2: ||q||^2 + ||y||^2 - 2 q.y; IP: q.y) and their pass mask. */
#define S_ROW_EPILOGUE(r)                                                                                              \
    do {                                                                                                               \
        __m256 s_t = _mm256_broadcast_ss(&tl[r]);                                                                      \
        if (ip) {                                                                                                      \
            m##r = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(s_t, a##r##0, _CMP_LE_OQ)) |                             \
                   ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(s_t, a##r##1, _CMP_LE_OQ)) << 8);                       \
        } else {                                                                                                       \
            __m256 s_q = _mm256_broadcast_ss(&ql[r]);                                                                  \
            a##r##0 = _mm256_add_ps(_mm256_fmadd_ps(a##r##0, neg2, bn0), s_q);                                         \
            a##r##1 = _mm256_add_ps(_mm256_fmadd_ps(a##r##1, neg2, bn1), s_q);                                         \
            /* thr >= 0, so max(v, 0) <= thr exactly when v <= thr */                                                  \
            m##r = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a##r##0, s_t, _CMP_LE_OQ)) |                             \
                   ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a##r##1, s_t, _CMP_LE_OQ)) << 8);                       \
        }                                                                                                              \
    } while (0)

#define S_ROW_STORE(r)                                                                                                 \
    do {                                                                                                               \
        _mm256_storeu_ps(vbuf + r * 16, a##r##0);                                                                      \
        _mm256_storeu_ps(vbuf + r * 16 + 8, a##r##1);                                                                  \
    } while (0)

/*
 * One query row of s_small_block_avx2 on its own: the same arithmetic for its lanes (so the same
 * distances to the last bit), without computing five copies of it. A lone query costs 1/6.
 */
__attribute__((target("avx2,fma"))) static void s_small_row1_avx2(
    const float *q0, float qnorm, const float *packed, const float *bnorms, size_t nb, size_t d, int ip,
    struct knn__topk *heap, float *thr, int64_t id0, unsigned last_valid)
{
    const __m256 neg2 = _mm256_set1_ps(-2.0f);
    float vbuf[16];
    float tl[1] = {*thr}, ql[1] = {ip ? 0 : qnorm};
    for (size_t p = 0; p < nb; p += 16) {
        const float *pa = packed + p * d, *pb = packed + (p + 8) * d;
        S_ACC_INIT(0);
#pragma GCC unroll 4
        for (size_t j = 0; j < d; j++) {
            __m256 b0 = _mm256_load_ps(pa + j * 8);
            __m256 b1 = _mm256_load_ps(pb + j * 8);
            S_ACC_STEP(0);
        }
        __m256 bn0 = _mm256_setzero_ps(), bn1 = _mm256_setzero_ps();
        if (!ip) {
            bn0 = _mm256_loadu_ps(bnorms + p);
            bn1 = _mm256_loadu_ps(bnorms + p + 8);
        }
        unsigned m0;
        S_ROW_EPILOGUE(0);
        if (p + 16 == nb && last_valid != 0xFFFFu)
            m0 &= last_valid;
        if (m0 == 0)
            continue;
        S_ROW_STORE(0);
        s_small_push(vbuf, &m0, 1, ip, heap, tl, id0 + (int64_t)p);
    }
    *thr = tl[0];
}

/*
 * Queries [0, nq) against nb (a multiple of 16) packed base vectors with ids from id0; of the last
 * 16, only the lanes set in last_valid exist.
 */
__attribute__((target("avx2,fma"))) static void s_small_block_avx2(
    const float *q, const float *qnorms, size_t nq, const float *packed, const float *bnorms, size_t nb, size_t d,
    int ip, struct knn__topk *heaps, float *thr, int64_t id0, unsigned last_valid)
{
    const __m256 neg2 = _mm256_set1_ps(-2.0f);
    float vbuf[96];
    for (size_t i = 0; i < nq; i += 6) {
        size_t rows = nq - i < 6 ? nq - i : 6;
        if (rows == 1) {
            s_small_row1_avx2(q + i * d, ip ? 0 : qnorms[i], packed, bnorms, nb, d, ip, heaps + i, thr + i, id0,
                              last_valid);
            continue;
        }
        /* Rows beyond the last repeat it, with a threshold nothing passes. */
        const float *q0 = q + i * d;
        const float *q1 = q + (i + (rows > 1 ? 1 : 0)) * d;
        const float *q2 = q + (i + (rows > 2 ? 2 : 0)) * d;
        const float *q3 = q + (i + (rows > 3 ? 3 : 0)) * d;
        const float *q4 = q + (i + (rows > 4 ? 4 : 0)) * d;
        const float *q5 = q + (i + (rows > 5 ? 5 : 0)) * d;
        float tl[6], ql[6];
        for (size_t r = 0; r < 6; r++) {
            tl[r] = r < rows ? thr[i + r] : (ip ? INFINITY : -INFINITY);
            ql[r] = r < rows && !ip ? qnorms[i + r] : 0;
        }
        for (size_t p = 0; p < nb; p += 16) {
            const float *pa = packed + p * d, *pb = packed + (p + 8) * d;
            S_ACC_INIT(0);
            S_ACC_INIT(1);
            S_ACC_INIT(2);
            S_ACC_INIT(3);
            S_ACC_INIT(4);
            S_ACC_INIT(5);
#pragma GCC unroll 4
            for (size_t j = 0; j < d; j++) {
                __m256 b0 = _mm256_load_ps(pa + j * 8);
                __m256 b1 = _mm256_load_ps(pb + j * 8);
                S_ACC_STEP(0);
                S_ACC_STEP(1);
                S_ACC_STEP(2);
                S_ACC_STEP(3);
                S_ACC_STEP(4);
                S_ACC_STEP(5);
            }
            __m256 bn0 = _mm256_setzero_ps(), bn1 = _mm256_setzero_ps();
            if (!ip) {
                bn0 = _mm256_loadu_ps(bnorms + p);
                bn1 = _mm256_loadu_ps(bnorms + p + 8);
            }
            unsigned m0, m1, m2, m3, m4, m5;
            S_ROW_EPILOGUE(0);
            S_ROW_EPILOGUE(1);
            S_ROW_EPILOGUE(2);
            S_ROW_EPILOGUE(3);
            S_ROW_EPILOGUE(4);
            S_ROW_EPILOGUE(5);
            if (p + 16 == nb && last_valid != 0xFFFFu) {
                /* lanes past the end of the base: zero padding, never a result */
                m0 &= last_valid;
                m1 &= last_valid;
                m2 &= last_valid;
                m3 &= last_valid;
                m4 &= last_valid;
                m5 &= last_valid;
            }
            if ((m0 | m1 | m2 | m3 | m4 | m5) == 0)
                continue;
            S_ROW_STORE(0);
            S_ROW_STORE(1);
            S_ROW_STORE(2);
            S_ROW_STORE(3);
            S_ROW_STORE(4);
            S_ROW_STORE(5);
            unsigned masks[6] = {m0, m1, m2, m3, m4, m5};
            s_small_push(vbuf, masks, rows, ip, heaps + i, tl, id0 + (int64_t)p);
            for (size_t r = 0; r < rows; r++)
                thr[i + r] = tl[r];
        }
    }
}
#endif

#if S_HAVE_X86
/*
 * All of a query tile against the base with the register-blocked kernel. packed: s_panel_block(d) x d
 * scratch, or NULL when `prepacked` holds the whole base packed already (knn__pack_base).
 */
static void s_small_search(
    const float *q, const float *qnorms, size_t nq, const float *base, const float *bnorms, size_t nb, size_t d, int ip,
    struct knn__topk *heaps, float *thr, float *packed, const float *prepacked, int64_t id_offset)
{
    for (size_t i = 0; i < nq; i++)
        thr[i] = knn__topk_threshold(&heaps[i]);
    size_t block = s_panel_block(d);
    float tail_norms[16];
    for (size_t b0 = 0; b0 < nb; b0 += block) {
        size_t bn = nb - b0 < block ? nb - b0 : block;
        size_t padded = (bn + 15) / 16 * 16;
        unsigned last_valid = bn % 16 ? (1u << (bn % 16)) - 1 : 0xFFFFu;
        const float *norms = ip ? NULL : bnorms + b0;
        if (!ip && padded > bn) {
            /* the last 16 norms, padded (the padded lanes are masked out) */
            size_t last = padded - 16;
            for (size_t l = 0; l < 16; l++)
                tail_norms[l] = last + l < bn ? bnorms[b0 + last + l] : 0.0f;
        }
        if (prepacked)
            packed = (float *)prepacked + b0 * d; /* read only */
        else
            s_pack_panels(base + b0 * d, bn, padded, d, packed);
        if (padded > bn && padded > 16) {
            /* the full panels first, then the padded last 16 with their own norms */
            s_small_block_avx2(
                q, qnorms, nq, packed, norms, padded - 16, d, ip, heaps, thr, id_offset + (int64_t)b0, 0xFFFFu);
            s_small_block_avx2(
                q, qnorms, nq, packed + (padded - 16) * d, ip ? NULL : tail_norms, 16, d, ip, heaps, thr,
                id_offset + (int64_t)(b0 + padded - 16), last_valid);
        } else {
            s_small_block_avx2(
                q, qnorms, nq, packed, padded > bn ? tail_norms : norms, padded, d, ip, heaps, thr,
                id_offset + (int64_t)b0, last_valid);
        }
    }
}
#endif

/* ---- the base packed once ---- */

size_t knn__packed_floats(size_t nb, size_t d)
{
#if S_HAVE_X86
    if (d <= S_SMALL_D_MAX && nb <= SIZE_MAX / 2 / d)
        return (nb + 15) / 16 * 16 * d;
#endif
    return 0;
}

void knn__pack_base(const float *base, size_t nb, size_t d, float *packed)
{
    s_pack_panels(base, nb, (nb + 15) / 16 * 16, d, packed);
}

static int s_exact_search(
    const float *queries, size_t nq, const float *base, const float *prepacked, const float *base_norms, size_t nb,
    size_t d, int ip, size_t k, float *distances, int64_t *labels, int64_t id_offset, int init);

int knn__exact_search_packed(
    const float *queries, size_t nq, const float *packed, const float *base_norms, size_t nb, size_t d, int ip,
    size_t k, float *distances, int64_t *labels, int64_t id_offset, int init)
{
    return s_exact_search(queries, nq, NULL, packed, base_norms, nb, d, ip, k, distances, labels, id_offset, init);
}

/* ---- batches: tiled sgemm ---- */

int knn__exact_search_block(
    const float *queries, size_t nq, const float *base, const float *base_norms, size_t nb, size_t d, int ip, size_t k,
    float *distances, int64_t *labels, int64_t id_offset, int init)
{
    return s_exact_search(queries, nq, base, NULL, base_norms, nb, d, ip, k, distances, labels, id_offset, init);
}

static int s_exact_search(
    const float *queries, size_t nq, const float *base, const float *prepacked, const float *base_norms, size_t nb,
    size_t d, int ip, size_t k, float *distances, int64_t *labels, int64_t id_offset, int init)
{
    float *tile = NULL, *qnorms = NULL, *own_norms = NULL, *packed = NULL, *thr = NULL;
    int rc = 0;

    if (nq == 0 || k == 0)
        return 0;
    if (init) {
        for (size_t i = 0; i < nq * k; i++) {
            distances[i] = ip ? -INFINITY : INFINITY;
            labels[i] = -1;
        }
    }
    if (nb == 0)
        return 0;
    knn__blas_single_threaded();

    int small = d <= S_SMALL_D_MAX && knn__simd_enabled();
    KNN_ASSERT(small || !prepacked);
    size_t qtile = small ? S_REG_QUERY_TILE : S_QUERY_TILE;
    size_t qt = nq < qtile ? nq : qtile;
    size_t bt = nb < S_BASE_TILE ? nb : S_BASE_TILE;
    struct knn__topk *heaps = NULL;
    if (!(qnorms = knn_malloc_array(qt, sizeof(float))) || !(heaps = knn_malloc_array(qt, sizeof(*heaps)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if (small) {
        if ((!prepacked && !(packed = knn_aligned_alloc(32, s_panel_block(d) * d * sizeof(float)))) ||
            !(thr = knn_malloc_array(qt, sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
    } else if (!(tile = knn_malloc_array(qt * bt, sizeof(float)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if (!ip && !base_norms) {
        KNN_ASSERT(base);
        if (!(own_norms = knn_malloc_array(nb, sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
        knn__norms_sqr(base, nb, d, own_norms);
        base_norms = own_norms;
    }

    for (size_t q0 = 0; q0 < nq; q0 += qt) {
        size_t qn = nq - q0 < qt ? nq - q0 : qt;
        const float *q = queries + q0 * d;
        for (size_t i = 0; i < qn; i++) {
            knn__topk_resume(&heaps[i], k, ip, distances + (q0 + i) * k, labels + (q0 + i) * k);
        }
        if (!ip)
            knn__norms_sqr(q, qn, d, qnorms);
#if S_HAVE_X86
        if (small)
            s_small_search(q, qnorms, qn, base, base_norms, nb, d, ip, heaps, thr, packed, prepacked, id_offset);
#endif
        for (size_t b0 = 0; !small && b0 < nb; b0 += bt) {
            size_t bn = nb - b0 < bt ? nb - b0 : bt;
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, (int)qn, (int)bn, (int)d, ip ? 1.0f : -2.0f, q, (int)d,
                base + b0 * d, (int)d, 0.0f, tile, (int)bn);
            for (size_t i = 0; i < qn; i++) {
                s_scan_tile_row(
                    tile + i * bn, ip ? NULL : base_norms + b0, bn, ip ? 0 : qnorms[i], &heaps[i],
                    id_offset + (int64_t)b0);
            }
        }
        for (size_t i = 0; i < qn; i++)
            knn__topk_finish(&heaps[i]);
    }

on_error:
    knn_free(tile);
    knn_free(qnorms);
    knn_free(own_norms);
    knn_free(packed);
    knn_free(thr);
    knn_free(heaps);
    return rc;
}

/* ---- single queries: the fused streaming kernel ---- */

static void
s_scan_one_portable(const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset)
{
    float thr = knn__topk_threshold(h);
    for (size_t j = 0; j < nb; j++) {
        const float *y = base + j * d;
        float v = h->ip ? s_dot_portable(query, y, d) : s_l2sqr_portable(query, y, d);
        if (h->ip ? v >= thr : v <= thr) {
            knn__topk_push(h, v, id_offset + (int64_t)j);
            thr = knn__topk_threshold(h);
        }
    }
}

#if S_HAVE_X86
/* Sum each of 8 vectors horizontally: the result holds sum(a0), ..., sum(a7). */
__attribute__((target("avx2,fma"))) static inline __m256
s_hsum8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6, __m256 a7)
{
    __m256 t0 = _mm256_hadd_ps(a0, a1);
    __m256 t1 = _mm256_hadd_ps(a2, a3);
    __m256 t2 = _mm256_hadd_ps(a4, a5);
    __m256 t3 = _mm256_hadd_ps(a6, a7);
    __m256 u0 = _mm256_hadd_ps(t0, t1);
    __m256 u1 = _mm256_hadd_ps(t2, t3);
    __m256 lo = _mm256_permute2f128_ps(u0, u1, 0x20);
    __m256 hi = _mm256_permute2f128_ps(u0, u1, 0x31);
    return _mm256_add_ps(lo, hi);
}

static const int32_t s_tail_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* acc += (y - q)^2 (L2) or y * q (inner product), 8 lanes. */
#define S_ACC(acc, yv, qv)                                                                                             \
    do {                                                                                                               \
        if (ip) {                                                                                                      \
            acc = _mm256_fmadd_ps(yv, qv, acc);                                                                        \
        } else {                                                                                                       \
            __m256 s_t = _mm256_sub_ps(yv, qv);                                                                        \
            acc = _mm256_fmadd_ps(s_t, s_t, acc);                                                                      \
        }                                                                                                              \
    } while (0)

/* Test 8 distances against the threshold and push the ones that pass. */
#define S_TEST8(v, j)                                                                                                  \
    do {                                                                                                               \
        /* v >= thr for inner product, v <= thr for L2 */                                                              \
        __m256 s_pass = ip ? _mm256_cmp_ps(vthr, v, _CMP_LE_OQ) : _mm256_cmp_ps(v, vthr, _CMP_LE_OQ);                  \
        unsigned s_m = (unsigned)_mm256_movemask_ps(s_pass);                                                           \
        if (s_m) {                                                                                                     \
            float s_buf[8];                                                                                            \
            _mm256_storeu_ps(s_buf, v);                                                                                \
            while (s_m) {                                                                                              \
                unsigned s_b = (unsigned)__builtin_ctz(s_m);                                                           \
                s_m &= s_m - 1;                                                                                        \
                if (ip ? s_buf[s_b] >= thr : s_buf[s_b] <= thr) {                                                      \
                    knn__topk_push(h, s_buf[s_b], id_offset + (int64_t)((j) + s_b));                                   \
                    thr = knn__topk_threshold(h);                                                                      \
                }                                                                                                      \
            }                                                                                                          \
            vthr = _mm256_set1_ps(thr);                                                                                \
        }                                                                                                              \
    } while (0)

/*
 * Narrow rows (d <= 32): 8 rows at a time, slice by slice of 8 dimensions: the query slice is
 * loaded once for 8 rows (adjacent in memory), so the loop costs are shared by 8 rows (~20% less
 * CPU at d = 20 than row by row). `ip` is a constant in each instantiation below.
 */
__attribute__((target("avx2,fma"), always_inline)) static inline void s_scan_one_slices(
    const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset, const int ip)
{
    const __m256i tail = _mm256_loadu_si256((const __m256i *)(s_tail_masks + 8 - d % 8));
    const size_t dfull = d / 8 * 8;
    float thr = knn__topk_threshold(h);
    __m256 vthr = _mm256_set1_ps(thr);
    size_t j = 0;
    for (; j + 8 <= nb; j += 8) {
        const float *y = base + j * d;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps(),
               a4 = _mm256_setzero_ps(), a5 = _mm256_setzero_ps(), a6 = _mm256_setzero_ps(), a7 = _mm256_setzero_ps();
        size_t c = 0;
        for (; c < dfull; c += 8) {
            __m256 q = _mm256_loadu_ps(query + c);
            S_ACC(a0, _mm256_loadu_ps(y + c), q);
            S_ACC(a1, _mm256_loadu_ps(y + d + c), q);
            S_ACC(a2, _mm256_loadu_ps(y + 2 * d + c), q);
            S_ACC(a3, _mm256_loadu_ps(y + 3 * d + c), q);
            S_ACC(a4, _mm256_loadu_ps(y + 4 * d + c), q);
            S_ACC(a5, _mm256_loadu_ps(y + 5 * d + c), q);
            S_ACC(a6, _mm256_loadu_ps(y + 6 * d + c), q);
            S_ACC(a7, _mm256_loadu_ps(y + 7 * d + c), q);
        }
        if (c < d) {
            __m256 q = _mm256_maskload_ps(query + c, tail);
            S_ACC(a0, _mm256_maskload_ps(y + c, tail), q);
            S_ACC(a1, _mm256_maskload_ps(y + d + c, tail), q);
            S_ACC(a2, _mm256_maskload_ps(y + 2 * d + c, tail), q);
            S_ACC(a3, _mm256_maskload_ps(y + 3 * d + c, tail), q);
            S_ACC(a4, _mm256_maskload_ps(y + 4 * d + c, tail), q);
            S_ACC(a5, _mm256_maskload_ps(y + 5 * d + c, tail), q);
            S_ACC(a6, _mm256_maskload_ps(y + 6 * d + c, tail), q);
            S_ACC(a7, _mm256_maskload_ps(y + 7 * d + c, tail), q);
        }
        __m256 v = s_hsum8(a0, a1, a2, a3, a4, a5, a6, a7);
        S_TEST8(v, j);
    }
    if (j < nb)
        s_scan_one_portable(query, base + j * d, nb - j, d, h, id_offset + (int64_t)j);
}

/* acc += row y against the query, the whole row at once. */
#define S_ROW(acc, yrow)                                                                                               \
    do {                                                                                                               \
        const float *s_y = (yrow);                                                                                     \
        size_t s_c = 0;                                                                                                \
        for (; s_c < dfull; s_c += 8)                                                                                  \
            S_ACC(acc, _mm256_loadu_ps(s_y + s_c), _mm256_loadu_ps(query + s_c));                                      \
        if (s_c < d)                                                                                                   \
            S_ACC(acc, _mm256_maskload_ps(s_y + s_c, tail), _mm256_maskload_ps(query + s_c, tail));                    \
    } while (0)

/*
 * Wide rows: memory-bound, so the base is read strictly in order (row after row, which the hardware
 * prefetchers follow best: slice-interleaving 8 rows 512 bytes apart was 25% slower at d = 128).
 */
__attribute__((target("avx2,fma"), always_inline)) static inline void s_scan_one_rows(
    const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset, const int ip)
{
    const __m256i tail = _mm256_loadu_si256((const __m256i *)(s_tail_masks + 8 - d % 8));
    const size_t dfull = d / 8 * 8;
    float thr = knn__topk_threshold(h);
    __m256 vthr = _mm256_set1_ps(thr);
    size_t j = 0;
    for (; j + 8 <= nb; j += 8) {
        const float *y = base + j * d;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps(),
               a4 = _mm256_setzero_ps(), a5 = _mm256_setzero_ps(), a6 = _mm256_setzero_ps(), a7 = _mm256_setzero_ps();
        S_ROW(a0, y);
        S_ROW(a1, y + d);
        S_ROW(a2, y + 2 * d);
        S_ROW(a3, y + 3 * d);
        S_ROW(a4, y + 4 * d);
        S_ROW(a5, y + 5 * d);
        S_ROW(a6, y + 6 * d);
        S_ROW(a7, y + 7 * d);
        __m256 v = s_hsum8(a0, a1, a2, a3, a4, a5, a6, a7);
        S_TEST8(v, j);
    }
    if (j < nb)
        s_scan_one_portable(query, base + j * d, nb - j, d, h, id_offset + (int64_t)j);
}

__attribute__((target("avx2,fma"), always_inline)) static inline void s_scan_one_body(
    const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset, const int ip)
{
    if (d <= 32)
        s_scan_one_slices(query, base, nb, d, h, id_offset, ip);
    else
        s_scan_one_rows(query, base, nb, d, h, id_offset, ip);
}

__attribute__((target("avx2,fma"))) static void
s_scan_one_avx2_l2(const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset)
{
    s_scan_one_body(query, base, nb, d, h, id_offset, 0);
}

__attribute__((target("avx2,fma"))) static void
s_scan_one_avx2_ip(const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset)
{
    s_scan_one_body(query, base, nb, d, h, id_offset, 1);
}
#endif

void knn__scan_one(const float *query, const float *base, size_t nb, size_t d, struct knn__topk *h, int64_t id_offset)
{
#if S_HAVE_X86
    if (knn__simd_enabled()) {
        if (h->ip)
            s_scan_one_avx2_ip(query, base, nb, d, h, id_offset);
        else
            s_scan_one_avx2_l2(query, base, nb, d, h, id_offset);
        return;
    }
#endif
    s_scan_one_portable(query, base, nb, d, h, id_offset);
}
