#ifndef KNN_ALGORITHMS_SQ_H
#define KNN_ALGORITHMS_SQ_H

/*
 * The 8-bit scalar quantizer (sq.c), FAISS's ScalarQuantizer with qtype QT_8bit and rangestat
 * RS_minmax (rangestat_arg 0): each of the d components gets its own range [vmin_j, vmin_j +
 * vdiff_j], the minimum and maximum of the training vectors; a component x_j is stored as the byte
 * (int)(255 * clamp((x_j - vmin_j) / vdiff_j, 0, 1)) (0 when vdiff_j is 0) and decoded as
 * vmin_j + (code_j + 0.5) / 255 * vdiff_j. `trained` is FAISS's: 2d floats, vmin then vdiff.
 * A code is d bytes: 4x smaller than the float vector.
 *
 * Distances to a decoded code without decoding it, per query (and per list, for residuals):
 *   L2:  sum_j (r_j - decoded_j)^2 = sum_j (a_j - s_j c_j)^2,  a_j = r_j - vmin_j - s_j / 2,
 *        s_j = vdiff_j / 255;
 *   IP:  sum_j q_j decoded_j = sum_j q_j (vmin_j + s_j / 2) + sum_j (q_j s_j) c_j.
 *
 * Ownership: IVF-SQ8 (index_ivf.c) owns one. Immutable once trained (or read): thread-safe.
 */

#include "topk.h"

#include <stddef.h>
#include <stdint.h>

/* FAISS's enum values, as they appear in index files. */
#define KNN__SQ_QT_8BIT 0
#define KNN__SQ_RS_MINMAX 0

struct knn__sq {
    size_t d;
    float *trained; /* 2d: vmin[d], vdiff[d] */
    float *step;    /* d: vdiff / 255 */
};

int knn__sq_init(struct knn__sq *sq, size_t d);
void knn__sq_clean_up(struct knn__sq *sq);

/** Ranges from n training vectors (min and max per component). */
void knn__sq_train(struct knn__sq *sq, size_t n, const float *x);
/** After `trained` was set (train or read): derived values. */
void knn__sq_prepare(struct knn__sq *sq);
/** n codes of d bytes. */
void knn__sq_encode(const struct knn__sq *sq, size_t n, const float *x, uint8_t *codes);
/** One code decoded (tests, reconstruction). */
void knn__sq_decode(const struct knn__sq *sq, const uint8_t *code, float *x);

/**
 * The query side: L2 (ip = 0): a (d floats) from the residual r, and *dis0 = 0; IP: a = q_j s_j and
 * *dis0 = sum_j q_j (vmin_j + s_j / 2), the part of every distance that does not depend on the code.
 */
void knn__sq_query(const struct knn__sq *sq, const float *r, int ip, float *a, float *dis0);

/**
 * Scan n row-major codes: distances dis0 + sum (L2: (a_j - s_j c_j)^2; IP: a_j c_j), offered to h
 * with `ids` (h->ip selects the metric).
 */
void knn__sq_scan(
    const struct knn__sq *sq, const uint8_t *codes, size_t n, const float *a, float dis0, const int64_t *ids,
    struct knn__topk *h);

#endif
