#include "ivf_test_util.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t iu_next(struct iu_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double iu_uniform(struct iu_rng *r)
{
    return (double)(iu_next(r) >> 11) * 0x1.0p-53;
}

double iu_gauss(struct iu_rng *r)
{
    double u = iu_uniform(r), v = iu_uniform(r);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

void iu_clustered(float *x, size_t n, size_t d, size_t clusters, double spread, uint64_t seed)
{
    struct iu_rng r = {seed};
    double *centres = malloc(clusters * d * sizeof(double));
    double *weight = malloc(clusters * sizeof(double));
    double total = 0;
    for (size_t c = 0; c < clusters; c++) {
        for (size_t j = 0; j < d; j++)
            centres[c * d + j] = iu_gauss(&r) * spread;
        weight[c] = 0.2 + iu_uniform(&r);
        total += weight[c];
    }
    for (size_t i = 0; i < n; i++) {
        double u = iu_uniform(&r) * total, acc = 0;
        size_t c = 0;
        while (c + 1 < clusters && (acc += weight[c]) < u)
            c++;
        double sigma = 0.5 + 0.5 * (double)(c % 3);
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (float)(centres[c * d + j] + sigma * iu_gauss(&r));
    }
    free(centres);
    free(weight);
}

struct s_cand {
    double dist;
    int64_t id;
};

static int s_cmp_l2(const void *a, const void *b)
{
    const struct s_cand *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int s_cmp_ip(const void *a, const void *b)
{
    const struct s_cand *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist > y->dist ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void iu_brute_force(
    const float *q, size_t nq, const float *base, size_t nb, size_t d, int ip, size_t k, double *dist, int64_t *ids)
{
    struct s_cand *c = malloc(nb * sizeof(*c));
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < nb; j++) {
            double s = 0;
            for (size_t t = 0; t < d; t++) {
                double a = q[i * d + t], b = base[j * d + t];
                s += ip ? a * b : (a - b) * (a - b);
            }
            c[j].dist = s;
            c[j].id = (int64_t)j;
        }
        qsort(c, nb, sizeof(*c), ip ? s_cmp_ip : s_cmp_l2);
        for (size_t t = 0; t < k; t++) {
            if (dist)
                dist[i * k + t] = t < nb ? c[t].dist : (ip ? -INFINITY : INFINITY);
            ids[i * k + t] = t < nb ? c[t].id : -1;
        }
    }
    free(c);
}

double iu_recall(const int64_t *found, const int64_t *truth, size_t nq, size_t k)
{
    size_t hits = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                hits += found[i * k + a] >= 0 && found[i * k + a] == truth[i * k + b];
    return (double)hits / (double)(nq * k);
}

int iu_mem_write(void *user, const void *data, size_t len)
{
    struct iu_mem *m = user;
    if (len > m->cap - m->len) {
        size_t cap = (m->len + len) * 2 + 64;
        uint8_t *p = knn_realloc_array(m->data, cap, 1);
        if (!p)
            return KNN_ENOMEM;
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    return 0;
}

int iu_mem_read(void *user, void *data, size_t len)
{
    struct iu_mem *m = user;
    if (len > m->len - m->pos)
        return knn_error_set(KNN_ETRUNCATED, "end of buffer");
    memcpy(data, m->data + m->pos, len);
    m->pos += len;
    return 0;
}
