/*
 * Reservoir sampling (sample.c): exact size, determinism per seed, uniformity (chi-square over many
 * seeds, of whole subsets, not just of inclusion counts), and the merge of two reservoirs.
 *
 * The statistical tests use fixed seeds, so they are deterministic; the threshold is the chi-square
 * critical value at p = 0.001 (Wilson-Hilferty), which a correct sampler passes and a biased one
 * (e.g. one favouring late rows, or a merge taking a fixed share from each side) fails by far.
 */
#include "knn_test.h"

#include "knn/algorithms/sample.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Chi-square critical value for `df` degrees of freedom at p = 0.001 (z = 3.0902). */
static double s_chi2_crit(double df)
{
    double z = 3.0902, a = 2.0 / (9.0 * df);
    double t = 1 - a + z * sqrt(a);
    return df * t * t * t;
}

static double s_chi2(const unsigned *counts, size_t cells, double expected)
{
    double s = 0;
    for (size_t i = 0; i < cells; i++)
        s += (counts[i] - expected) * (counts[i] - expected) / expected;
    return s;
}

/* Offer rows id0..id0+n-1 (row = {id, -id}, label = id) in batches of `batch`. */
static int s_feed(struct knn_reservoir *r, int id0, int n, int batch)
{
    float rows[2 * 64], labels[64];
    for (int i = 0; i < n; i += batch) {
        int m = n - i < batch ? n - i : batch;
        for (int j = 0; j < m; j++) {
            rows[2 * j] = (float)(id0 + i + j);
            rows[2 * j + 1] = (float)-(id0 + i + j);
            labels[j] = (float)(id0 + i + j);
        }
        int rc = knn_reservoir_add(r, (size_t)m, rows, labels);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Bitmask of the ids in the reservoir (each row must still match its label). */
static int s_subset(const struct knn_reservoir *r, uint64_t *mask)
{
    const float *rows = knn_reservoir_rows(r), *labels = knn_reservoir_labels(r);
    *mask = 0;
    for (size_t i = 0; i < knn_reservoir_count(r); i++) {
        int id = (int)labels[i];
        if (rows[2 * i] != (float)id || rows[2 * i + 1] != (float)-id)
            return 1;
        if (*mask & (1ull << id))
            return 1; /* kept twice */
        *mask |= 1ull << id;
    }
    return 0;
}

/* Rank of a k-subset of {0..n-1} (bitmask) in colex order. */
static size_t s_rank(uint64_t mask)
{
    size_t rank = 0, j = 0;
    for (int i = 0; i < 64; i++) {
        if (mask & (1ull << i)) {
            j++;
            /* binomial(i, j) */
            double b = 1;
            for (size_t t = 0; t < j; t++)
                b = b * (i - t) / (t + 1);
            rank += (size_t)llround(i >= (int)j ? b : 0);
        }
    }
    return rank;
}

int test_reservoir_size_and_determinism(void)
{
    struct knn_reservoir *a = NULL, *b = NULL, *c = NULL;
    ASSERT_OK(knn_reservoir_new(&a, 100, 2, 42));
    ASSERT_OK(knn_reservoir_new(&b, 100, 2, 42));
    ASSERT_OK(knn_reservoir_new(&c, 100, 2, 43));
    ASSERT_OK(s_feed(a, 0, 1000, 7));
    ASSERT_OK(s_feed(b, 0, 1000, 64)); /* batching does not matter */
    ASSERT_OK(s_feed(c, 0, 1000, 7));
    ASSERT_UINT_EQ(100, knn_reservoir_count(a));
    ASSERT_UINT_EQ(1000, knn_reservoir_seen(a));
    ASSERT_UINT_EQ(2, knn_reservoir_dim(a));
    ASSERT_MEM_EQ(knn_reservoir_rows(a), 200 * sizeof(float), knn_reservoir_rows(b), 200 * sizeof(float));
    ASSERT_MEM_EQ(knn_reservoir_labels(a), 100 * sizeof(float), knn_reservoir_labels(b), 100 * sizeof(float));
    ASSERT_TRUE(memcmp(knn_reservoir_labels(a), knn_reservoir_labels(c), 100 * sizeof(float)) != 0);
    /* each kept row is still paired with its label, and no row is kept twice */
    unsigned char seen[1000] = {0};
    for (size_t i = 0; i < 100; i++) {
        int id = (int)knn_reservoir_labels(a)[i];
        ASSERT_TRUE(id >= 0 && id < 1000 && !seen[id]);
        seen[id] = 1;
        ASSERT_NEAR(id, knn_reservoir_rows(a)[2 * i], 0);
        ASSERT_NEAR(-id, knn_reservoir_rows(a)[2 * i + 1], 0);
    }
    knn_reservoir_destroy(a);
    knn_reservoir_destroy(b);
    knn_reservoir_destroy(c);

    /* A short stream is kept whole, in order. */
    ASSERT_OK(knn_reservoir_new(&a, 50, 2, 1));
    ASSERT_OK(s_feed(a, 0, 30, 4));
    ASSERT_UINT_EQ(30, knn_reservoir_count(a));
    for (int i = 0; i < 30; i++)
        ASSERT_NEAR(i, knn_reservoir_labels(a)[i], 0);
    /* NULL labels mean 0.0 */
    float row[2] = {9, 9};
    ASSERT_OK(knn_reservoir_add(a, 1, row, NULL));
    ASSERT_NEAR(0, knn_reservoir_labels(a)[30], 0);
    knn_reservoir_destroy(a);

    ASSERT_ERR(KNN_EINVAL, knn_reservoir_new(&a, 0, 2, 1));
    ASSERT_ERR(KNN_EINVAL, knn_reservoir_new(&a, 2, 0, 1));
    return 0;
}

int test_reservoir_uniform_subsets(void)
{
    /* 6 rows, capacity 3: 20 equally likely subsets. 20,000 seeds, 1,000 expected per subset. */
    enum { N = 6, CAP = 3, CELLS = 20, TRIALS = 20000 };
    unsigned counts[CELLS] = {0};
    unsigned incl[N] = {0};
    for (uint64_t seed = 0; seed < TRIALS; seed++) {
        struct knn_reservoir *r = NULL;
        ASSERT_OK(knn_reservoir_new(&r, CAP, 2, seed));
        ASSERT_OK(s_feed(r, 0, N, 1 + (int)(seed % 3)));
        uint64_t mask;
        ASSERT_INT_EQ(0, s_subset(r, &mask));
        ASSERT_UINT_EQ(CAP, (unsigned)__builtin_popcountll(mask));
        counts[s_rank(mask)]++;
        for (int i = 0; i < N; i++)
            incl[i] += (mask >> i) & 1;
        knn_reservoir_destroy(r);
    }
    double chi = s_chi2(counts, CELLS, (double)TRIALS / CELLS);
    if (chi > s_chi2_crit(CELLS - 1))
        FAIL("subset chi-square %.1f > %.1f", chi, s_chi2_crit(CELLS - 1));
    double chi_incl = s_chi2(incl, N, (double)TRIALS * CAP / N);
    if (chi_incl > s_chi2_crit(N - 1))
        FAIL("inclusion chi-square %.1f > %.1f", chi_incl, s_chi2_crit(N - 1));
    return 0;
}

int test_reservoir_merge_uniform(void)
{
    /* dst sees rows 0..6, src rows 7..11, capacities 3: the merge must be a uniform 3-subset of
     * all 12 rows (220 subsets). 44,000 trials, 200 expected per subset. */
    enum { NA = 7, NB = 5, CAP = 3, CELLS = 220, TRIALS = 44000 };
    unsigned *counts = calloc(CELLS, sizeof(unsigned));
    for (uint64_t t = 0; t < TRIALS; t++) {
        struct knn_reservoir *a = NULL, *b = NULL;
        ASSERT_OK(knn_reservoir_new(&a, CAP, 2, 2 * t));
        ASSERT_OK(knn_reservoir_new(&b, CAP, 2, 2 * t + 1));
        ASSERT_OK(s_feed(a, 0, NA, 3));
        ASSERT_OK(s_feed(b, NA, NB, 2));
        ASSERT_OK(knn_reservoir_merge(a, b));
        ASSERT_UINT_EQ(CAP, knn_reservoir_count(a));
        ASSERT_UINT_EQ(NA + NB, knn_reservoir_seen(a));
        ASSERT_UINT_EQ(CAP, knn_reservoir_count(b)); /* src unchanged */
        ASSERT_UINT_EQ(NB, knn_reservoir_seen(b));
        uint64_t mask;
        ASSERT_INT_EQ(0, s_subset(a, &mask));
        counts[s_rank(mask)]++;
        knn_reservoir_destroy(a);
        knn_reservoir_destroy(b);
    }
    double chi = s_chi2(counts, CELLS, (double)TRIALS / CELLS);
    free(counts);
    if (chi > s_chi2_crit(CELLS - 1))
        FAIL("merged subset chi-square %.1f > %.1f", chi, s_chi2_crit(CELLS - 1));
    return 0;
}

int test_reservoir_merge_then_add_uniform(void)
{
    /* After a merge the reservoir keeps sampling uniformly: rows 0..3 | 4..6 merged, then 7..9 added,
     * capacity 2: 45 subsets of 10 rows, 45,000 trials. Also: merging into an empty reservoir. */
    enum { CAP = 2, CELLS = 45, TRIALS = 45000 };
    unsigned counts[CELLS] = {0};
    for (uint64_t t = 0; t < TRIALS; t++) {
        struct knn_reservoir *a = NULL, *b = NULL, *e = NULL;
        ASSERT_OK(knn_reservoir_new(&a, CAP, 2, 3 * t));
        ASSERT_OK(knn_reservoir_new(&b, CAP, 2, 3 * t + 1));
        ASSERT_OK(knn_reservoir_new(&e, CAP, 2, 3 * t + 2));
        ASSERT_OK(s_feed(a, 0, 4, 4));
        ASSERT_OK(s_feed(b, 4, 3, 1));
        ASSERT_OK(knn_reservoir_merge(e, a));
        ASSERT_OK(knn_reservoir_merge(e, b));
        ASSERT_OK(s_feed(e, 7, 3, 2));
        uint64_t mask;
        ASSERT_INT_EQ(0, s_subset(e, &mask));
        ASSERT_UINT_EQ(CAP, (unsigned)__builtin_popcountll(mask));
        counts[s_rank(mask)]++;
        knn_reservoir_destroy(a);
        knn_reservoir_destroy(b);
        knn_reservoir_destroy(e);
    }
    double chi = s_chi2(counts, CELLS, (double)TRIALS / CELLS);
    if (chi > s_chi2_crit(CELLS - 1))
        FAIL("merge-then-add chi-square %.1f > %.1f", chi, s_chi2_crit(CELLS - 1));
    return 0;
}

int test_reservoir_merge_rejects_what_cannot_be_uniform(void)
{
    struct knn_reservoir *a = NULL, *b = NULL, *c = NULL;
    ASSERT_OK(knn_reservoir_new(&a, 10, 2, 1));
    ASSERT_OK(knn_reservoir_new(&b, 4, 2, 2));
    ASSERT_OK(knn_reservoir_new(&c, 4, 3, 3));
    ASSERT_OK(s_feed(a, 0, 20, 5));
    ASSERT_OK(s_feed(b, 20, 20, 5)); /* kept 4 of 20: cannot stand for its stream in a sample of 10 */
    ASSERT_ERR(KNN_EINVAL, knn_reservoir_merge(a, b));
    ASSERT_UINT_EQ(20, knn_reservoir_seen(a)); /* unchanged */
    ASSERT_ERR(KNN_EMISMATCH, knn_reservoir_merge(a, c));
    ASSERT_ERR(KNN_EINVAL, knn_reservoir_merge(a, a));
    knn_reservoir_destroy(a);
    knn_reservoir_destroy(b);
    knn_reservoir_destroy(c);
    return 0;
}

/* detach hands over exactly the kept rows and labels (no copy needed by the caller), and empties. */
int test_reservoir_detach(void)
{
    struct knn_reservoir *a = NULL, *b = NULL;
    float *rows = NULL, *labels = NULL;
    size_t count = 0;
    /* a full reservoir, and a twin to compare with */
    ASSERT_OK(knn_reservoir_new(&a, 100, 2, 42));
    ASSERT_OK(knn_reservoir_new(&b, 100, 2, 42));
    ASSERT_OK(s_feed(a, 0, 1000, 7));
    ASSERT_OK(s_feed(b, 0, 1000, 7));
    ASSERT_OK(knn_reservoir_detach(a, &rows, &labels, &count));
    ASSERT_UINT_EQ(100, count);
    ASSERT_MEM_EQ(knn_reservoir_rows(b), 200 * sizeof(float), rows, 200 * sizeof(float));
    ASSERT_MEM_EQ(knn_reservoir_labels(b), 100 * sizeof(float), labels, 100 * sizeof(float));
    ASSERT_UINT_EQ(0, knn_reservoir_count(a));
    knn_free(rows);
    knn_free(labels);
    knn_reservoir_destroy(a);
    knn_reservoir_destroy(b);

    /* a short stream (fewer rows than the capacity): only those rows, still paired with labels */
    ASSERT_OK(knn_reservoir_new(&a, 5000, 2, 1));
    ASSERT_OK(s_feed(a, 0, 1500, 64));
    ASSERT_OK(knn_reservoir_detach(a, &rows, &labels, &count));
    ASSERT_UINT_EQ(1500, count);
    for (size_t i = 0; i < count; i++) {
        ASSERT_NEAR(i, labels[i], 0);
        ASSERT_NEAR(i, rows[2 * i], 0);
        ASSERT_NEAR(-(double)i, rows[2 * i + 1], 0);
    }
    knn_free(rows);
    knn_free(labels);
    /* an empty reservoir gives nothing */
    ASSERT_OK(knn_reservoir_detach(a, &rows, &labels, &count));
    ASSERT_UINT_EQ(0, count);
    ASSERT_TRUE(rows == NULL && labels == NULL);
    knn_reservoir_destroy(a);
    return 0;
}
