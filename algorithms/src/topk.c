/*
 * Bounded top-k selection: a binary heap over caller-provided arrays whose root is the worst kept
 * result (the largest distance for L2, the smallest similarity for inner product).
 *
 * Order among equal distances is fixed: of two results at the same distance the smaller id is
 * better. A candidate therefore replaces the root when it is strictly better, or equally distant
 * with a smaller id, and the final results are the k best pairs under (distance, id) order whatever
 * order the candidates arrived in (so splitting a search over threads never changes the answer).
 */
#include "topk.h"

#include <math.h>

/* a is worse than b (for L2: larger distance, or equal distance and larger id). */
static inline int s_worse(int ip, float da, int64_t ia, float db, int64_t ib)
{
    if (da != db)
        return ip ? da < db : da > db;
    return ia > ib;
}

void knn__topk_init(struct knn__topk *h, size_t k, int ip, float *dist, int64_t *ids)
{
    h->k = k;
    h->size = 0;
    h->ip = ip;
    h->dist = dist;
    h->ids = ids;
}

void knn__topk_resume(struct knn__topk *h, size_t k, int ip, float *dist, int64_t *ids)
{
    knn__topk_init(h, k, ip, dist, ids);
    size_t size = 0;
    while (size < k && ids[size] >= 0)
        size++;
    /* Reversed, a best-first list is worst-first: a valid heap with the worst at the root. */
    for (size_t i = 0, j = size; i + 1 < j; i++, j--) {
        float td = dist[i];
        dist[i] = dist[j - 1];
        dist[j - 1] = td;
        int64_t ti = ids[i];
        ids[i] = ids[j - 1];
        ids[j - 1] = ti;
    }
    h->size = size;
}

/* Restore the heap below position i, holding (d, id) to place. */
static inline void s_sift_down(struct knn__topk *h, size_t i, size_t size, float d, int64_t id)
{
    float *dist = h->dist;
    int64_t *ids = h->ids;
    int ip = h->ip;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= size)
            break;
        if (c + 1 < size && s_worse(ip, dist[c + 1], ids[c + 1], dist[c], ids[c]))
            c++;
        if (!s_worse(ip, dist[c], ids[c], d, id))
            break;
        dist[i] = dist[c];
        ids[i] = ids[c];
        i = c;
    }
    dist[i] = d;
    ids[i] = id;
}

void knn__topk_push(struct knn__topk *h, float d, int64_t id)
{
    if (h->size < h->k) {
        /* sift up */
        size_t i = h->size++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!s_worse(h->ip, d, id, h->dist[p], h->ids[p]))
                break;
            h->dist[i] = h->dist[p];
            h->ids[i] = h->ids[p];
            i = p;
        }
        h->dist[i] = d;
        h->ids[i] = id;
        return;
    }
    if (h->k == 0 || !s_worse(h->ip, h->dist[0], h->ids[0], d, id))
        return;
    s_sift_down(h, 0, h->size, d, id);
}

float knn__topk_threshold(const struct knn__topk *h)
{
    if (h->size < h->k || h->k == 0)
        return h->ip ? -INFINITY : INFINITY;
    return h->dist[0];
}

void knn__topk_finish(struct knn__topk *h)
{
    /* Heap sort: move the worst to the end, repeatedly; leaves the best first. */
    size_t n = h->size;
    while (n > 1) {
        float d = h->dist[n - 1];
        int64_t id = h->ids[n - 1];
        h->dist[n - 1] = h->dist[0];
        h->ids[n - 1] = h->ids[0];
        n--;
        s_sift_down(h, 0, n, d, id);
    }
    for (size_t i = h->size; i < h->k; i++) {
        h->dist[i] = h->ip ? -INFINITY : INFINITY;
        h->ids[i] = -1;
    }
}
