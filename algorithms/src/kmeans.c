/*
 * k-means (see kmeans.h): Lloyd's iterations as FAISS runs them, with Hamerly's bounds (2010) so
 * that a point whose nearest centroid provably did not change is not measured again.
 *
 * Hamerly, for the L2 metric: every point keeps an upper bound u on the distance to its assigned
 * centroid a and a lower bound l on the distance to every other centroid. After an update that
 * moves centroid j by p(j), u grows by p(a) and l shrinks by the largest move of another centroid.
 * Before measuring a point, if u <= max(l, s(a)) (s(a): half the distance from a to its nearest
 * other centroid) no centroid can be nearer than a; otherwise u is tightened to the true distance
 * and tested again, and only then are all k distances computed (the nearest two give a, u, l).
 * The assignments are those of plain Lloyd's iterations (up to float rounding at exact ties), at
 * a fraction of the distance computations once the centroids settle.
 *
 * Bounds are used for narrow vectors (d <= KNN__KMEANS_SMALL_D: the PQ sub-quantizers) only; inner
 * product (spherical k-means) and wide vectors run plain Lloyd's iterations.
 *
 * Inner product: the centroids are kept unit vectors (spherical k-means, as FAISS does for IVF over
 * inner product), and for unit c the largest x.c is the smallest ||x - c||^2 = ||x||^2 + 1 - 2 x.c:
 * assignments are made in L2 (one kernel, and the balancing penalty applies unchanged).
 */
#include "kmeans.h"

#include "distances.h"
#include "parallel.h"
#include "rng.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define S_HAVE_X86 1
#endif

/* Points per assignment block: the sgemm tile of the wide path and the gather buffer. */
#define S_BLOCK 256
/* Relative move of the two halves of a split cluster (FAISS's EPS). */
#define S_SPLIT_EPS (1.0f / 1024.0f)
/* Bounds are compared with this relative margin, so float rounding never skips a needed check. */
#define S_BOUND_SLACK 1e-4f

/* ------------------------------------------------------------------------------------------ */
/* The fused nearest-centroid scan (narrow vectors)                                             */
/* ------------------------------------------------------------------------------------------ */

int knn__centroids_init(struct knn__centroids *c, const float *centroids, size_t k, size_t d, int ip)
{
    memset(c, 0, sizeof(*c));
    if (k == 0 || d == 0)
        return knn_error_set(KNN_EINVAL, "centroid table: k = %zu, d = %zu (both must be >= 1)", k, d);
    size_t ngroups = (k + 7) / 8;
    size_t n_table;
    if (knn_mul_size(&n_table, ngroups * 8, d) != 0 || n_table > SIZE_MAX / sizeof(float))
        return knn_error_set(KNN_ENOMEM, "centroid table: %zu x %zu is too large", k, d);
    c->table = knn_aligned_alloc(32, n_table * sizeof(float));
    c->bias = knn_aligned_alloc(32, ngroups * 8 * sizeof(float));
    if (!c->table || !c->bias) {
        knn__centroids_clean_up(c);
        return KNN_ENOMEM;
    }
    c->k = k;
    c->d = d;
    c->ngroups = ngroups;
    c->ip = ip;
    for (size_t g = 0; g < ngroups; g++) {
        for (size_t l = 0; l < 8; l++) {
            size_t ci = g * 8 + l;
            float *col = c->table + g * d * 8 + l;
            if (ci < k) {
                const float *src = centroids + ci * d;
                for (size_t j = 0; j < d; j++)
                    col[j * 8] = src[j];
                c->bias[ci] = ip ? 0.0f : knn__dot(src, src, d);
            } else {
                for (size_t j = 0; j < d; j++)
                    col[j * 8] = 0.0f;
                c->bias[ci] = INFINITY;
            }
        }
    }
    return 0;
}

void knn__centroids_clean_up(struct knn__centroids *c)
{
    knn_free(c->table);
    knn_free(c->bias);
    memset(c, 0, sizeof(*c));
}

/*
 * The score of centroid j for x is bias_j + alpha x.c_j with alpha = -2 (L2: ||c||^2 - 2 x.c, which
 * orders centroids as ||x - c||^2 does) or -1 (IP: -x.c). The smallest score wins; s1 and s2 are
 * the smallest and second smallest scores.
 */
static void s_scan_generic(const struct knn__centroids *c, const float *xi, int32_t *idx, float *s1, float *s2)
{
    const size_t d = c->d;
    const float alpha = c->ip ? -1.0f : -2.0f;
    float b1 = INFINITY, b2 = INFINITY;
    size_t bj = 0;
    for (size_t g = 0; g < c->ngroups; g++) {
        const float *t = c->table + g * d * 8;
        float acc[8];
        for (size_t l = 0; l < 8; l++)
            acc[l] = c->bias[g * 8 + l];
        for (size_t j = 0; j < d; j++) {
            float xa = alpha * xi[j];
            for (size_t l = 0; l < 8; l++)
                acc[l] += xa * t[j * 8 + l];
        }
        for (size_t l = 0; l < 8; l++) {
            if (acc[l] < b1) {
                b2 = b1;
                b1 = acc[l];
                bj = g * 8 + l;
            } else if (acc[l] < b2) {
                b2 = acc[l];
            }
        }
    }
    *idx = (int32_t)bj;
    *s1 = b1;
    *s2 = b2;
}

#ifdef S_HAVE_X86
__attribute__((target("avx2,fma"), always_inline)) static inline float s_hmin(__m256 v)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/*
 * The minimum of the 8 lanes of m1 into *best, and the smallest index (from im) among the lanes
 * holding it; INT32_MAX if none does (all NaN).
 */
__attribute__((target("avx2,fma"), always_inline)) static inline int32_t
s_lane_argmin(__m256 m1, __m256i im, float *best)
{
    *best = s_hmin(m1);
    __m256 at_min = _mm256_cmp_ps(m1, _mm256_set1_ps(*best), _CMP_EQ_OQ);
    __m256i cand = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(_mm256_set1_epi32(INT32_MAX)), _mm256_castsi256_ps(im), at_min));
    __m128i cm = _mm_min_epi32(_mm256_castsi256_si128(cand), _mm256_extracti128_si256(cand, 1));
    cm = _mm_min_epi32(cm, _mm_shuffle_epi32(cm, 0x4e));
    cm = _mm_min_epi32(cm, _mm_shuffle_epi32(cm, 0xb1));
    return _mm_cvtsi128_si32(cm);
}

/*
 * One vector against all centroids. Two groups of 8 centroids are scored per step into separate
 * accumulators (two independent FMA chains); each lane keeps its running minimum and the group it
 * came from (strictly smaller wins, so ties keep the earlier group), and with NEED2 its running
 * second minimum (min2 = min(min2, max(min1, s))). The lanes are combined at the end: the winner
 * is the smallest score, ties to the smallest centroid index. `D` and NEED2 are compile-time
 * constants in the callers, so the loops unroll.
 */
__attribute__((target("avx2,fma"), always_inline)) static inline void s_scan_avx2(
    const struct knn__centroids *c, const float *xi, size_t D, int NEED2, float *buf, int32_t *idx, float *s1,
    float *s2)
{
    (void)buf;
    const float alpha = c->ip ? -1.0f : -2.0f;
    const size_t ng = c->ngroups;
    __m256 xb[KNN__KMEANS_SMALL_D];
    const size_t dreg = D <= KNN__KMEANS_SMALL_D ? D : 0;
    for (size_t j = 0; j < dreg; j++)
        xb[j] = _mm256_set1_ps(alpha * xi[j]);
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256 m1a = inf, m1b = inf, m2a = inf, m2b = inf;
    __m256i ga = _mm256_setzero_si256(), gb = _mm256_set1_epi32(1);
    __m256i gcur = _mm256_setzero_si256();
    const __m256i one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2);
    const float *t = c->table;
    size_t g = 0;
    for (; g + 2 <= ng; g += 2, t += 2 * D * 8) {
        __m256 a0 = _mm256_load_ps(c->bias + g * 8), a1 = _mm256_load_ps(c->bias + g * 8 + 8);
        if (dreg) {
#pragma GCC unroll 32
            for (size_t j = 0; j < D; j++) {
                a0 = _mm256_fmadd_ps(xb[j], _mm256_load_ps(t + j * 8), a0);
                a1 = _mm256_fmadd_ps(xb[j], _mm256_load_ps(t + D * 8 + j * 8), a1);
            }
        } else {
            const __m256 va = _mm256_set1_ps(alpha);
            __m256 p0 = _mm256_setzero_ps(), p1 = _mm256_setzero_ps();
            for (size_t j = 0; j < D; j++) {
                __m256 xj = _mm256_broadcast_ss(xi + j);
                p0 = _mm256_fmadd_ps(xj, _mm256_load_ps(t + j * 8), p0);
                p1 = _mm256_fmadd_ps(xj, _mm256_load_ps(t + D * 8 + j * 8), p1);
            }
            a0 = _mm256_fmadd_ps(va, p0, a0);
            a1 = _mm256_fmadd_ps(va, p1, a1);
        }
        if (NEED2) {
            m2a = _mm256_min_ps(m2a, _mm256_max_ps(m1a, a0));
            m2b = _mm256_min_ps(m2b, _mm256_max_ps(m1b, a1));
        }
        __m256 lt0 = _mm256_cmp_ps(a0, m1a, _CMP_LT_OQ), lt1 = _mm256_cmp_ps(a1, m1b, _CMP_LT_OQ);
        m1a = _mm256_min_ps(m1a, a0);
        m1b = _mm256_min_ps(m1b, a1);
        ga = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(ga), _mm256_castsi256_ps(gcur), lt0));
        gb = _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(gb), _mm256_castsi256_ps(_mm256_add_epi32(gcur, one)), lt1));
        gcur = _mm256_add_epi32(gcur, two);
    }
    if (g < ng) {
        __m256 a0 = _mm256_load_ps(c->bias + g * 8);
        if (dreg) {
#pragma GCC unroll 32
            for (size_t j = 0; j < D; j++)
                a0 = _mm256_fmadd_ps(xb[j], _mm256_load_ps(t + j * 8), a0);
        } else {
            __m256 p0 = _mm256_setzero_ps();
            for (size_t j = 0; j < D; j++)
                p0 = _mm256_fmadd_ps(_mm256_broadcast_ss(xi + j), _mm256_load_ps(t + j * 8), p0);
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(alpha), p0, a0);
        }
        if (NEED2)
            m2a = _mm256_min_ps(m2a, _mm256_max_ps(m1a, a0));
        __m256 lt0 = _mm256_cmp_ps(a0, m1a, _CMP_LT_OQ);
        m1a = _mm256_min_ps(m1a, a0);
        ga = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(ga), _mm256_castsi256_ps(gcur), lt0));
    }
    /* Centroid index of each lane's minimum: group * 8 + lane. */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i ia = _mm256_add_epi32(_mm256_slli_epi32(ga, 3), lane),
            ib = _mm256_add_epi32(_mm256_slli_epi32(gb, 3), lane);
    /* Merge the two accumulator sets lane by lane: b wins if smaller, or equal with a smaller index. */
    __m256 bwins = _mm256_or_ps(
        _mm256_cmp_ps(m1b, m1a, _CMP_LT_OQ),
        _mm256_and_ps(_mm256_cmp_ps(m1b, m1a, _CMP_EQ_OQ), _mm256_castsi256_ps(_mm256_cmpgt_epi32(ia, ib))));
    __m256 m1 = _mm256_blendv_ps(m1a, m1b, bwins);
    __m256i im = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(ia), _mm256_castsi256_ps(ib), bwins));
    int32_t found = s_lane_argmin(m1, im, s1);
    *idx = found == INT32_MAX ? 0 : found;
    if (NEED2) {
        /* Second smallest: every lane's second minimum, the loser of the a/b merge, and the other
         * lanes' minima (all but the winning lane). */
        __m256 m2 = _mm256_min_ps(_mm256_min_ps(m2a, m2b), _mm256_max_ps(m1a, m1b));
        __m256 winner = _mm256_castsi256_ps(_mm256_cmpeq_epi32(im, _mm256_set1_epi32(found)));
        __m256 at_min = _mm256_cmp_ps(m1, _mm256_set1_ps(*s1), _CMP_EQ_OQ);
        __m256 others = _mm256_blendv_ps(m1, inf, _mm256_and_ps(winner, at_min));
        *s2 = s_hmin(_mm256_min_ps(m2, others));
    }
}

/*
 * Four vectors against all centroids at once: for each pair of centroid groups, 8 accumulators
 * (4 vectors x 2 groups) fed by two table loads and four broadcasts per coordinate, so the FMA
 * chains are independent and the table is read once per four vectors. Scores go to buf (row r at
 * buf + r * stride_buf) and are reduced afterwards by s_select_row. `D` is a compile-time constant.
 */
__attribute__((target("avx2,fma"), always_inline)) static inline void
s_scores4_avx2(const struct knn__centroids *c, const float *const *xs, size_t D, float *buf, size_t stride_buf)
{
    const float alpha = c->ip ? -1.0f : -2.0f;
    const size_t ng = c->ngroups;
    float xa[4][KNN__KMEANS_SMALL_D];
    for (size_t r = 0; r < 4; r++)
        for (size_t j = 0; j < D; j++)
            xa[r][j] = alpha * xs[r][j];
    const float *t = c->table;
    size_t g = 0;
    for (; g + 2 <= ng; g += 2, t += 2 * D * 8) {
        const __m256 b0 = _mm256_load_ps(c->bias + g * 8), b1 = _mm256_load_ps(c->bias + g * 8 + 8);
        __m256 a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1;
#pragma GCC unroll 32
        for (size_t j = 0; j < D; j++) {
            const __m256 t0 = _mm256_load_ps(t + j * 8), t1 = _mm256_load_ps(t + D * 8 + j * 8);
            __m256 v = _mm256_broadcast_ss(&xa[0][j]);
            a00 = _mm256_fmadd_ps(v, t0, a00);
            a01 = _mm256_fmadd_ps(v, t1, a01);
            v = _mm256_broadcast_ss(&xa[1][j]);
            a10 = _mm256_fmadd_ps(v, t0, a10);
            a11 = _mm256_fmadd_ps(v, t1, a11);
            v = _mm256_broadcast_ss(&xa[2][j]);
            a20 = _mm256_fmadd_ps(v, t0, a20);
            a21 = _mm256_fmadd_ps(v, t1, a21);
            v = _mm256_broadcast_ss(&xa[3][j]);
            a30 = _mm256_fmadd_ps(v, t0, a30);
            a31 = _mm256_fmadd_ps(v, t1, a31);
        }
        float *o = buf + g * 8;
        _mm256_store_ps(o, a00);
        _mm256_store_ps(o + 8, a01);
        _mm256_store_ps(o + stride_buf, a10);
        _mm256_store_ps(o + stride_buf + 8, a11);
        _mm256_store_ps(o + 2 * stride_buf, a20);
        _mm256_store_ps(o + 2 * stride_buf + 8, a21);
        _mm256_store_ps(o + 3 * stride_buf, a30);
        _mm256_store_ps(o + 3 * stride_buf + 8, a31);
    }
    if (g < ng) {
        const __m256 b0 = _mm256_load_ps(c->bias + g * 8);
        __m256 a0 = b0, a1 = b0, a2 = b0, a3 = b0;
#pragma GCC unroll 32
        for (size_t j = 0; j < D; j++) {
            const __m256 t0 = _mm256_load_ps(t + j * 8);
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&xa[0][j]), t0, a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&xa[1][j]), t0, a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(&xa[2][j]), t0, a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(&xa[3][j]), t0, a3);
        }
        float *o = buf + g * 8;
        _mm256_store_ps(o, a0);
        _mm256_store_ps(o + stride_buf, a1);
        _mm256_store_ps(o + 2 * stride_buf, a2);
        _mm256_store_ps(o + 3 * stride_buf, a3);
    }
}

/*
 * The smallest score of a row of ng groups (ties: the first position) and, with NEED2, the second
 * smallest, in one pass: each lane keeps its minimum, the group it came from (strictly smaller
 * wins, so the earliest group keeps a tie) and, with NEED2, its second minimum.
 */
__attribute__((target("avx2,fma"), always_inline)) static inline void
s_select_row(const float *row, size_t ng, int NEED2, int32_t *idx, float *s1, float *s2)
{
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256 m1 = inf, m2 = inf;
    __m256i gi = _mm256_setzero_si256(), gcur = _mm256_setzero_si256();
    const __m256i one = _mm256_set1_epi32(1);
    for (size_t g = 0; g < ng; g++) {
        __m256 v = _mm256_load_ps(row + g * 8);
        if (NEED2)
            m2 = _mm256_min_ps(m2, _mm256_max_ps(m1, v));
        __m256 lt = _mm256_cmp_ps(v, m1, _CMP_LT_OQ);
        m1 = _mm256_min_ps(m1, v);
        gi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(gi), _mm256_castsi256_ps(gcur), lt));
        gcur = _mm256_add_epi32(gcur, one);
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i im = _mm256_add_epi32(_mm256_slli_epi32(gi, 3), lane);
    int32_t found = s_lane_argmin(m1, im, s1);
    *idx = found == INT32_MAX ? 0 : found;
    if (NEED2) {
        /* Lanes other than the winner's keep their minimum as a candidate for second place. */
        __m256 winner = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, _mm256_set1_epi32(found & 7)));
        *s2 = s_hmin(_mm256_min_ps(m2, _mm256_blendv_ps(m1, inf, winner)));
    }
}

/* The dimensions with kernels of their own (the compiler unrolls them); others take the _any ones. */
#define S_FIXED_DIMS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(10) X(12) X(16) X(20) X(24) X(32)

#define S_BLOCK4_FIXED(D)                                                                                              \
    __attribute__((target("avx2,fma"))) static void s_scores4_d##D(                                                    \
        const struct knn__centroids *c, const float *const *xs, float *buf, size_t stride_buf)                         \
    {                                                                                                                  \
        s_scores4_avx2(c, xs, D, buf, stride_buf);                                                                     \
    }
S_FIXED_DIMS(S_BLOCK4_FIXED)

__attribute__((target("avx2,fma"))) static void
s_scores4_any(const struct knn__centroids *c, const float *const *xs, float *buf, size_t stride_buf)
{
    s_scores4_avx2(c, xs, c->d, buf, stride_buf);
}

typedef void(s_scores4_fn)(const struct knn__centroids *c, const float *const *xs, float *buf, size_t stride_buf);

static s_scores4_fn *s_scores4_pick(size_t d)
{
#define S_CASE(D)                                                                                                      \
    case D:                                                                                                            \
        return s_scores4_d##D;
    switch (d) {
        S_FIXED_DIMS(S_CASE)
        default:
            return s_scores4_any;
    }
#undef S_CASE
}

__attribute__((target("avx2,fma"))) static void
s_select1(const float *row, size_t ng, int32_t *idx, float *s1, float *s2)
{
    s_select_row(row, ng, 0, idx, s1, s2);
}

__attribute__((target("avx2,fma"))) static void
s_select2(const float *row, size_t ng, int32_t *idx, float *s1, float *s2)
{
    s_select_row(row, ng, 1, idx, s1, s2);
}

#define S_SCAN_FIXED(D)                                                                                                \
    __attribute__((target("avx2,fma"))) static void s_scan1_d##D(                                                      \
        const struct knn__centroids *c, const float *xi, float *buf, int32_t *idx, float *s1, float *s2)               \
    {                                                                                                                  \
        s_scan_avx2(c, xi, D, 0, buf, idx, s1, s2);                                                                    \
    }                                                                                                                  \
    __attribute__((target("avx2,fma"))) static void s_scan2_d##D(                                                      \
        const struct knn__centroids *c, const float *xi, float *buf, int32_t *idx, float *s1, float *s2)               \
    {                                                                                                                  \
        s_scan_avx2(c, xi, D, 1, buf, idx, s1, s2);                                                                    \
    }
S_FIXED_DIMS(S_SCAN_FIXED)

__attribute__((target("avx2,fma"))) static void
s_scan1_any(const struct knn__centroids *c, const float *xi, float *buf, int32_t *idx, float *s1, float *s2)
{
    s_scan_avx2(c, xi, c->d, 0, buf, idx, s1, s2);
}

__attribute__((target("avx2,fma"))) static void
s_scan2_any(const struct knn__centroids *c, const float *xi, float *buf, int32_t *idx, float *s1, float *s2)
{
    s_scan_avx2(c, xi, c->d, 1, buf, idx, s1, s2);
}

typedef void(s_scan_fn)(
    const struct knn__centroids *c, const float *xi, float *buf, int32_t *idx, float *s1, float *s2);

static s_scan_fn *s_scan_pick(size_t d, int need2)
{
#define S_CASE(D)                                                                                                      \
    case D:                                                                                                            \
        return need2 ? s_scan2_d##D : s_scan1_d##D;
    switch (d) {
        S_FIXED_DIMS(S_CASE)
        default:
            return need2 ? s_scan2_any : s_scan1_any;
    }
#undef S_CASE
}

__attribute__((target("avx2,fma"))) static void s_dots_avx2(const struct knn__centroids *c, const float *x, float *out)
{
    const size_t d = c->d;
    const float *t = c->table;
    for (size_t g = 0; g < c->ngroups; g++, t += d * 8) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 2 <= d; j += 2) {
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + j), _mm256_load_ps(t + j * 8), a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + j + 1), _mm256_load_ps(t + j * 8 + 8), a1);
        }
        if (j < d)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + j), _mm256_load_ps(t + j * 8), a0);
        __m256 acc = _mm256_add_ps(a0, a1);
        if ((g + 1) * 8 <= c->k) {
            _mm256_storeu_ps(out + g * 8, acc);
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc);
            memcpy(out + g * 8, tmp, (c->k - g * 8) * sizeof(float));
        }
    }
}
#endif

/* Score -> squared L2 distance (L2) or inner product (IP). */
static float s_score_value(const struct knn__centroids *c, const float *xi, float score)
{
    if (c->ip)
        return -score;
    if (isinf(score))
        return score;
    float v = score + knn__dot(xi, xi, c->d);
    return v > 0.0f ? v : 0.0f;
}

/* Row i of a scan: rows[i] if given, else x + i * stride. */
static const float *s_row_at(const float *const *rows, const float *x, size_t stride, size_t i)
{
    return rows ? rows[i] : x + i * stride;
}

/* Nearest (and with d2, second nearest) of n vectors. */
static void s_nearest(
    const struct knn__centroids *c, size_t n, const float *const *rows, const float *x, size_t stride, int32_t *assign,
    float *d1, float *d2)
{
#ifdef S_HAVE_X86
    float stack_buf[4 * 2048] __attribute__((aligned(32)));
    const size_t ng8 = c->ngroups * 8;
    float *buf = 4 * ng8 <= 4 * 2048 ? stack_buf : knn_aligned_alloc(32, 4 * ng8 * sizeof(float));
    if (buf && knn__simd_enabled()) {
        size_t i = 0;
        if (c->d <= KNN__KMEANS_SMALL_D) {
            /* four at a time; a last group of three repeats its last vector, one or two go alone */
            s_scores4_fn *score4 = s_scores4_pick(c->d);
            void (*select)(const float *, size_t, int32_t *, float *, float *) = d2 ? s_select2 : s_select1;
            for (; i + 2 < n; i += 4) {
                const float *xs[4];
                for (size_t r = 0; r < 4; r++)
                    xs[r] = s_row_at(rows, x, stride, i + r < n ? i + r : n - 1);
                score4(c, xs, buf, ng8);
                for (size_t r = 0; r < 4 && i + r < n; r++) {
                    float s1, s2 = INFINITY;
                    select(buf + r * ng8, c->ngroups, assign + i + r, &s1, &s2);
                    if (!d1)
                        continue;
                    if (c->ip) {
                        d1[i + r] = -s1;
                        if (d2)
                            d2[i + r] = -s2;
                        continue;
                    }
                    float xn = 0.0f;
                    for (size_t j = 0; j < c->d; j++)
                        xn += xs[r][j] * xs[r][j];
                    float v1 = s1 + xn, v2 = s2 + xn;
                    d1[i + r] = v1 > 0.0f ? v1 : 0.0f;
                    if (d2)
                        d2[i + r] = isinf(s2) ? s2 : (v2 > 0.0f ? v2 : 0.0f);
                }
            }
        }
        s_scan_fn *fn = s_scan_pick(c->d, d2 != NULL);
        for (; i < n; i++) {
            const float *xi = s_row_at(rows, x, stride, i);
            float s1, s2 = INFINITY;
            fn(c, xi, buf, assign + i, &s1, &s2);
            if (d1)
                d1[i] = s_score_value(c, xi, s1);
            if (d2)
                d2[i] = s_score_value(c, xi, s2);
        }
        if (buf != stack_buf)
            knn_free(buf);
        return;
    }
    if (buf != stack_buf)
        knn_free(buf);
#endif
    for (size_t i = 0; i < n; i++) {
        const float *xi = s_row_at(rows, x, stride, i);
        float s1, s2;
        s_scan_generic(c, xi, assign + i, &s1, &s2);
        if (d1)
            d1[i] = s_score_value(c, xi, s1);
        if (d2)
            d2[i] = s_score_value(c, xi, s2);
    }
}

void knn__centroids_nearest(
    const struct knn__centroids *c, size_t n, const float *x, size_t stride, int32_t *assign, float *dist)
{
    s_nearest(c, n, NULL, x, stride, assign, dist, NULL);
}

void knn__centroids_nearest2(
    const struct knn__centroids *c, size_t n, const float *x, size_t stride, int32_t *assign, float *d1, float *d2)
{
    s_nearest(c, n, NULL, x, stride, assign, d1, d2);
}

void knn__centroids_dots(const struct knn__centroids *c, const float *x, float *out)
{
#ifdef S_HAVE_X86
    if (knn__simd_enabled()) {
        s_dots_avx2(c, x, out);
        return;
    }
#endif
    const size_t d = c->d;
    for (size_t g = 0; g < c->ngroups; g++) {
        const float *t = c->table + g * d * 8;
        float acc[8] = {0};
        for (size_t j = 0; j < d; j++)
            for (size_t l = 0; l < 8; l++)
                acc[l] += x[j] * t[j * 8 + l];
        for (size_t l = 0; l < 8 && g * 8 + l < c->k; l++)
            out[g * 8 + l] = acc[l];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Lloyd's iterations (with Hamerly's bounds for narrow vectors) and balancing                   */
/* ------------------------------------------------------------------------------------------ */

struct s_kmeans {
    const float *x; /* all n points */
    size_t d, k;
    const size_t *rows; /* the training rows (n_train), or NULL for 0..n_train-1 */
    size_t n_train;
    int ip;                      /* inner product: spherical centroids (unit norm after each update) */
    int bounds;                  /* Hamerly's bounds in use (L2) */
    int first;                   /* first assignment: measure everything */
    float *centroids;            /* k x d */
    float *cnorms;               /* kpad, for the sgemm path (L2); +INFINITY beyond k */
    float *pcent;                /* kpad x d: the centroids and zero rows, for the sgemm path (L2) */
    size_t kpad;                 /* k rounded up to 16 (L2 sgemm path), else k */
    struct knn__centroids small; /* for the fused path */
    int use_small;
    int32_t *assign; /* n_train */
    float *upper;    /* n_train: bound on the distance to the assigned centroid (without bounds:
                        the squared distance itself) */
    float *lower;    /* n_train: bound on the distance to any other centroid */
    float *half_sep; /* k: half the distance to the nearest other centroid */
    float *sums;     /* k x d */
    size_t *count;   /* k */
    size_t nworkers;
    float *scratch;       /* nworkers * S_BLOCK * (d + 2) floats */
    int64_t *scratch_ids; /* nworkers * S_BLOCK */
    size_t *scratch_rows; /* nworkers * S_BLOCK */
    size_t *measured;     /* nworkers: points fully measured this iteration */
};

static const float *s_row(const struct s_kmeans *km, size_t i)
{
    return km->x + (km->rows ? km->rows[i] : i) * km->d;
}

/* Assign points [begin, end): the ones the bounds cannot settle are measured in gathered blocks. */
static int s_assign_chunk(void *ctx, size_t begin, size_t end, size_t worker)
{
    struct s_kmeans *km = ctx;
    const size_t d = km->d;
    float *buf = km->scratch + worker * S_BLOCK * (d + 2);
    float *bd = buf + S_BLOCK * d; /* 2 * S_BLOCK distances */
    int64_t *bids = km->scratch_ids + worker * S_BLOCK;
    size_t *todo = km->scratch_rows + worker * S_BLOCK;
    int32_t a32[S_BLOCK];
    const float *ptrs[S_BLOCK];

    for (size_t i0 = begin; i0 < end; i0 += S_BLOCK) {
        size_t nb = end - i0 < S_BLOCK ? end - i0 : S_BLOCK, nt = 0;
        for (size_t i = i0; i < i0 + nb; i++) {
            if (km->bounds && !km->first) {
                float m = km->half_sep[km->assign[i]];
                if (km->lower[i] > m)
                    m = km->lower[i];
                m *= 1.0f - S_BOUND_SLACK;
                if (km->upper[i] <= m)
                    continue;
                const float *xi = s_row(km, i);
                km->upper[i] = sqrtf(knn__l2sqr(xi, km->centroids + (size_t)km->assign[i] * d, d));
                if (km->upper[i] <= m)
                    continue;
            }
            if (km->use_small)
                ptrs[nt] = s_row(km, i); /* the fused scan reads rows in place */
            else
                memcpy(buf + nt * d, s_row(km, i), d * sizeof(float));
            todo[nt++] = i;
        }
        km->measured[worker] += nt;
        if (nt == 0)
            continue;
        if (km->use_small) {
            float *d2 = km->bounds ? bd + S_BLOCK : NULL;
            s_nearest(&km->small, nt, ptrs, NULL, 0, a32, bd, d2);
            for (size_t t = 0; t < nt; t++) {
                size_t i = todo[t];
                km->assign[i] = a32[t];
                if (km->bounds) {
                    km->upper[i] = sqrtf(bd[t]);
                    km->lower[i] = sqrtf(d2[t]);
                } else {
                    km->upper[i] = bd[t]; /* the squared distance (or IP), for balancing */
                }
            }
            continue;
        }
        int rc = knn__exact_search_block(buf, nt, km->pcent, km->cnorms, km->kpad, d, 0, 1, bd, bids, 0, 1);
        if (rc != 0)
            return rc;
        for (size_t t = 0; t < nt; t++) {
            size_t i = todo[t];
            KNN_ASSERT(bids[t] >= 0 && (size_t)bids[t] < km->k);
            km->assign[i] = (int32_t)bids[t];
            km->upper[i] = bd[t]; /* the squared distance (or IP), for balancing */
        }
    }
    return 0;
}

/* s += x (d floats), the centroid update's inner loop. */
#ifdef S_HAVE_X86
__attribute__((target("avx2"))) static void s_add_avx2(float *s, const float *x, size_t d)
{
    size_t j = 0;
    for (; j + 8 <= d; j += 8)
        _mm256_storeu_ps(s + j, _mm256_add_ps(_mm256_loadu_ps(s + j), _mm256_loadu_ps(x + j)));
    for (; j < d; j++)
        s[j] += x[j];
}
#endif

/*
 * Sums (in float, as FAISS) of the points of centroids [begin, end): every worker reads all the
 * assignments and adds up its own centroids' points, in point order, so the result does not
 * depend on the number of threads.
 */
static int s_sum_chunk(void *ctx, size_t begin, size_t end, size_t worker)
{
    struct s_kmeans *km = ctx;
    const size_t d = km->d;
    memset(km->sums + begin * d, 0, (end - begin) * d * sizeof(float));
#ifdef S_HAVE_X86
    const int simd = knn__simd_enabled();
#else
    const int simd = 0;
#endif
    for (size_t i = 0; i < km->n_train; i++) {
        size_t a = (size_t)km->assign[i];
        if (a < begin || a >= end)
            continue;
        const float *xi = s_row(km, i);
        float *sum = km->sums + a * d;
#ifdef S_HAVE_X86
        if (simd) {
            s_add_avx2(sum, xi, d);
            continue;
        }
#endif
        (void)simd;
        for (size_t j = 0; j < d; j++)
            sum[j] += xi[j];
    }
    return 0;
}

/* Centroid tables for the next assignment, and (bounds) each centroid's half separation. */
static int s_prepare_centroids(struct s_kmeans *km)
{
    int rc;
    if (km->use_small) {
        knn__centroids_clean_up(&km->small);
        if ((rc = knn__centroids_init(&km->small, km->centroids, km->k, km->d, 0)) != 0)
            return rc;
    } else {
        /*
         * Padded to a multiple of 16 with rows that never win (norm +INFINITY): the batch kernel
         * works in panels of 16 base vectors and computes a ragged end one by one.
         */
        if (km->pcent != km->centroids)
            memcpy(km->pcent, km->centroids, km->k * km->d * sizeof(float));
        knn__norms_sqr(km->centroids, km->k, km->d, km->cnorms);
        for (size_t c = km->k; c < km->kpad; c++)
            km->cnorms[c] = INFINITY;
    }
    if (!km->bounds)
        return 0;
    /* The nearest other centroid of each centroid (the nearest is itself). */
    const size_t k = km->k;
    float *dd = knn_malloc_array(2 * k, sizeof(float));
    int32_t *a32 = knn_malloc_array(k, sizeof(int32_t));
    if (!dd || !a32) {
        rc = KNN_ENOMEM;
        goto done;
    }
    KNN_ASSERT(km->use_small); /* bounds are for the fused path only */
    knn__centroids_nearest2(&km->small, k, km->centroids, km->d, a32, dd, dd + k);
    for (size_t j = 0; j < k; j++) {
        float v = a32[j] == (int32_t)j ? dd[k + j] : dd[j];
        km->half_sep[j] = 0.5f * sqrtf(v > 0.0f ? v : 0.0f);
    }
    rc = 0;
done:
    knn_free(dd);
    knn_free(a32);
    return rc;
}

/* Uniform sorted selection of m of [0, n) (Knuth's Algorithm S): out[0..m). */
static void s_select(struct knn__rng *rng, size_t n, size_t m, size_t *out)
{
    size_t got = 0;
    for (size_t i = 0; i < n && got < m; i++) {
        if (knn__rng_below(rng, n - i) < m - got)
            out[got++] = i;
    }
    KNN_ASSERT(got == m);
}

/* FAISS's split of empty clusters; returns the number of clusters split. */
static size_t s_split_empty(struct s_kmeans *km, struct knn__rng *rng)
{
    const size_t k = km->k, d = km->d, n = km->n_train;
    size_t nsplit = 0;
    for (size_t ci = 0; ci < k; ci++) {
        if (km->count[ci] != 0)
            continue;
        size_t cj = 0;
        double denom = n > k ? (double)(n - k) : 1.0;
        for (;; cj = (cj + 1) % k) {
            double p = ((double)km->count[cj] - 1.0) / denom;
            if (knn__rng_double(rng) < p)
                break;
        }
        float *a = km->centroids + ci * d, *b = km->centroids + cj * d;
        memcpy(a, b, d * sizeof(float));
        for (size_t j = 0; j < d; j++) {
            float up = 1.0f + S_SPLIT_EPS, down = 1.0f - S_SPLIT_EPS;
            a[j] *= (j % 2 == 0) ? up : down;
            b[j] *= (j % 2 == 0) ? down : up;
        }
        km->count[ci] = km->count[cj] / 2;
        km->count[cj] -= km->count[ci];
        nsplit++;
    }
    return nsplit;
}

/*
 * Move every centroid to the mean of its points; split the empty ones (if `split`); IP: back to
 * unit norm. Balancing iterations do not split: there a centroid may lose all its points for an
 * iteration (its neighbours are cheaper), and moving it into the biggest cluster undoes the
 * balancing (measured: the largest list grew to 50x the mean instead of shrinking to 2.6x).
 */
static int s_update(struct s_kmeans *km, struct knn__rng *rng, size_t *nsplit, int split)
{
    const size_t k = km->k, d = km->d;
    memset(km->count, 0, k * sizeof(size_t));
    for (size_t i = 0; i < km->n_train; i++)
        km->count[km->assign[i]]++;
    int rc = knn__parallel_for(k, km->nworkers, s_sum_chunk, km);
    if (rc != 0)
        return rc;
    for (size_t c = 0; c < k; c++) {
        if (km->count[c] == 0)
            continue;
        double inv = 1.0 / (double)km->count[c];
        for (size_t j = 0; j < d; j++)
            km->centroids[c * d + j] = (float)(km->sums[c * d + j] * inv);
    }
    *nsplit = split ? s_split_empty(km, rng) : 0;
    if (km->ip)
        knn__normalize_rows(km->centroids, k, d);
    return 0;
}

/*
 * Size-penalized iterations (kmeans.h, "balance"): on a subset of the training points, each
 * iteration measures the plain assignment (sizes, mean squared distance), then assigns again with
 * every centroid's squared distance raised by balance * mean_d2 * size / mean_size, and updates.
 * The penalty is added to the centroid norms of the sgemm path or the biases of the fused scan.
 */
static int s_balance(struct s_kmeans *km, const struct knn__kmeans_options *opts, struct knn__rng *rng)
{
    const size_t k = km->k;
    size_t m = km->n_train;
    if (opts->balance_points_per_centroid && m / opts->balance_points_per_centroid > k)
        m = k * opts->balance_points_per_centroid;
    size_t *sel = knn_malloc_array(m, sizeof(size_t));
    float *penalty = knn_malloc_array(k, sizeof(float));
    int rc = 0;
    if (!sel || !penalty) {
        rc = KNN_ENOMEM;
        goto done;
    }
    if (m < km->n_train) {
        s_select(rng, km->n_train, m, sel);
        for (size_t i = 0; i < m; i++)
            sel[i] = km->rows ? km->rows[sel[i]] : sel[i];
        knn_free((void *)km->rows);
        km->rows = sel;
        km->n_train = m;
        sel = NULL;
    }
    km->bounds = 0;
    const double mean_size = (double)km->n_train / (double)k;
    for (size_t it = 0; it < opts->balance_niter; it++) {
        /* the plain assignment: who is nearest to whom */
        if ((rc = s_prepare_centroids(km)) != 0 ||
            (rc = knn__parallel_for(km->n_train, km->nworkers, s_assign_chunk, km)) != 0)
            goto done;
        memset(km->count, 0, k * sizeof(size_t));
        double md = 0.0;
        for (size_t i = 0; i < km->n_train; i++) {
            km->count[km->assign[i]]++;
            md += km->upper[i];
        }
        md /= (double)km->n_train;
        for (size_t c = 0; c < k; c++) {
            penalty[c] = (float)(opts->balance * md * (double)km->count[c] / mean_size);
            if (km->use_small)
                km->small.bias[c] += penalty[c];
            else
                km->cnorms[c] += penalty[c];
        }
        /* the penalized assignment, and the update */
        if ((rc = knn__parallel_for(km->n_train, km->nworkers, s_assign_chunk, km)) != 0)
            goto done;
        size_t unused = 0;
        if ((rc = s_update(km, rng, &unused, 0)) != 0)
            goto done;
        size_t biggest = 0, empty = 0;
        for (size_t c = 0; c < k; c++) {
            biggest = km->count[c] > biggest ? km->count[c] : biggest;
            empty += km->count[c] == 0;
        }
        KNN_LOG(
            KNN_LOG_TRACE, KNN_LS_ALGO,
            "k-means: balancing iteration %zu on %zu points: mean d2 %.4g, largest cluster %zu (mean %.1f), "
            "%zu empty",
            it, km->n_train, md, biggest, mean_size, empty);
    }
done:
    knn_free(sel);
    knn_free(penalty);
    return rc;
}

int knn__kmeans_train(
    float *centroids, const struct knn__kmeans_options *opts, size_t n, size_t d, const float *x, size_t k)
{
    struct s_kmeans km;
    memset(&km, 0, sizeof(km));
    size_t *init = NULL;
    float *old = NULL, *move = NULL;
    int rc = 0;

    if (d == 0 || k == 0)
        return knn_error_set(KNN_EINVAL, "k-means: d = %zu, k = %zu (both must be >= 1)", d, k);
    if (n < k)
        return knn_error_set(
            KNN_EINVAL, "k-means: %zu training points for %zu centroids (need at least as many points)", n, k);
    if (n > INT32_MAX || k > INT32_MAX)
        return knn_error_set(KNN_ETOOBIG, "k-means: n = %zu, k = %zu (limit 2^31 - 1)", n, k);

    struct knn__rng rng;
    knn__rng_seed(&rng, opts->seed);

    km.x = x;
    km.d = d;
    km.k = k;
    km.ip = opts->ip;
    /*
     * Bounds pay off for narrow vectors (PQ sub-quantizers: a third of the points skipped in later
     * iterations). For wide ones the distances concentrate, few points are ever settled by the
     * bounds (measured: >= 90% re-measured on the gaussian anchor set) and the second-nearest search
     * costs more than it saves.
     */
    km.bounds = !opts->ip && !opts->no_bounds && d <= KNN__KMEANS_SMALL_D;
    km.centroids = centroids;
    km.n_train = n;
    if (opts->max_points_per_centroid && n / opts->max_points_per_centroid >= k &&
        n > k * opts->max_points_per_centroid) {
        km.n_train = k * opts->max_points_per_centroid;
        size_t *rows = knn_malloc_array(km.n_train, sizeof(size_t));
        if (!rows)
            return KNN_ENOMEM;
        s_select(&rng, n, km.n_train, rows);
        km.rows = rows;
        KNN_LOG(KNN_LOG_DEBUG, KNN_LS_ALGO, "k-means: sampling %zu of %zu points for %zu centroids", km.n_train, n, k);
    }

    km.use_small = d <= KNN__KMEANS_SMALL_D;
    km.nworkers = knn__resolve_threads(opts->threads, (km.n_train + S_BLOCK - 1) / S_BLOCK);
    size_t scratch_floats;
    if (knn_mul_size(&scratch_floats, km.nworkers * S_BLOCK, d + 2) != 0) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    km.assign = knn_malloc_array(km.n_train, sizeof(int32_t));
    km.upper = knn_malloc_array(km.n_train, sizeof(float));
    km.lower = knn_malloc_array(km.n_train, sizeof(float));
    km.half_sep = knn_malloc_array(k, sizeof(float));
    km.sums = knn_malloc_array(k * d, sizeof(float));
    km.count = knn_malloc_array(k, sizeof(size_t));
    km.kpad = km.use_small ? k : (k + 15) / 16 * 16;
    km.cnorms = knn_malloc_array(km.kpad, sizeof(float));
    if (km.kpad == k) {
        km.pcent = centroids;
    } else if ((km.pcent = knn_calloc(km.kpad * d, sizeof(float))) == NULL) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    km.scratch = knn_malloc_array(scratch_floats, sizeof(float));
    km.scratch_ids = knn_malloc_array(km.nworkers * S_BLOCK, sizeof(int64_t));
    km.scratch_rows = knn_malloc_array(km.nworkers * S_BLOCK, sizeof(size_t));
    km.measured = knn_malloc_array(km.nworkers, sizeof(size_t));
    init = knn_malloc_array(k, sizeof(size_t));
    old = knn_malloc_array(k * d, sizeof(float));
    move = knn_malloc_array(k, sizeof(float));
    if (!km.assign || !km.upper || !km.lower || !km.half_sep || !km.sums || !km.count || !km.cnorms || !km.scratch ||
        !km.scratch_ids || !km.scratch_rows || !km.measured || !init || !old || !move) {
        rc = KNN_ENOMEM;
        goto on_error;
    }

    /* k distinct training points, uniformly. */
    s_select(&rng, km.n_train, k, init);
    for (size_t c = 0; c < k; c++)
        memcpy(centroids + c * d, s_row(&km, init[c]), d * sizeof(float));
    if (km.ip)
        knn__normalize_rows(centroids, k, d);

    size_t niter = opts->niter ? opts->niter : 1;
    km.first = 1;
    for (size_t it = 0; it < niter; it++) {
        if ((rc = s_prepare_centroids(&km)) != 0)
            goto on_error;
        memset(km.measured, 0, km.nworkers * sizeof(size_t));
        if ((rc = knn__parallel_for(km.n_train, km.nworkers, s_assign_chunk, &km)) != 0)
            goto on_error;
        km.first = 0;
        size_t measured = 0;
        for (size_t w = 0; w < km.nworkers; w++)
            measured += km.measured[w];
        memcpy(old, centroids, k * d * sizeof(float));
        size_t nsplit = 0;
        if ((rc = s_update(&km, &rng, &nsplit, 1)) != 0)
            goto on_error;
        if (km.bounds) {
            /* Loosen the bounds by how far the centroids moved. */
            float m1 = 0.0f, m2 = 0.0f;
            size_t j1 = 0;
            for (size_t c = 0; c < k; c++) {
                move[c] = sqrtf(knn__l2sqr(old + c * d, centroids + c * d, d));
                if (move[c] > m1) {
                    m2 = m1;
                    m1 = move[c];
                    j1 = c;
                } else if (move[c] > m2) {
                    m2 = move[c];
                }
            }
            for (size_t i = 0; i < km.n_train; i++) {
                size_t a = (size_t)km.assign[i];
                km.upper[i] += move[a] * (1.0f + S_BOUND_SLACK);
                km.lower[i] -= (a == j1 ? m2 : m1) * (1.0f + S_BOUND_SLACK);
            }
        }
        KNN_LOG(
            KNN_LOG_TRACE, KNN_LS_ALGO, "k-means: iteration %zu: %zu of %zu points measured, %zu clusters split", it,
            measured, km.n_train, nsplit);
    }
    if (opts->balance > 0 && opts->balance_niter > 0)
        rc = s_balance(&km, opts, &rng);

on_error:
    knn__centroids_clean_up(&km.small);
    knn_free((void *)km.rows);
    knn_free(km.assign);
    knn_free(km.upper);
    knn_free(km.lower);
    knn_free(km.half_sep);
    knn_free(km.sums);
    knn_free(km.count);
    knn_free(km.cnorms);
    if (km.pcent != centroids)
        knn_free(km.pcent);
    knn_free(km.scratch);
    knn_free(km.scratch_ids);
    knn_free(km.scratch_rows);
    knn_free(km.measured);
    knn_free(init);
    knn_free(old);
    knn_free(move);
    return rc;
}
