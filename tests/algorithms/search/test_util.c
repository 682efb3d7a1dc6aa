#include "test_util.h"

#include <math.h>
#include <stdlib.h>

double tu_gauss(struct tu_rng *r)
{
    double u1 = tu_uniform(r), u2 = tu_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void tu_fill_gauss(struct tu_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)tu_gauss(r);
}

struct s_pair {
    double d;
    int64_t id;
};

static int s_ip;

static int s_cmp(const void *a, const void *b)
{
    const struct s_pair *x = a, *y = b;
    if (x->d != y->d) {
        if (s_ip)
            return x->d > y->d ? -1 : 1;
        return x->d < y->d ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

void tu_brute_force(
    const float *q, size_t nq, const float *base, size_t nb, size_t d, int ip, size_t k, double *dist, int64_t *ids)
{
    struct s_pair *p = malloc(nb * sizeof(*p));
    s_ip = ip;
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < nb; j++) {
            double s = 0;
            for (size_t t = 0; t < d; t++) {
                double a = q[i * d + t], b = base[j * d + t];
                s += ip ? a * b : (a - b) * (a - b);
            }
            p[j].d = s;
            p[j].id = (int64_t)j;
        }
        qsort(p, nb, sizeof(*p), s_cmp);
        for (size_t j = 0; j < k; j++) {
            dist[i * k + j] = j < nb ? p[j].d : (ip ? -INFINITY : INFINITY);
            ids[i * k + j] = j < nb ? p[j].id : -1;
        }
    }
    free(p);
}
