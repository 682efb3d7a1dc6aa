#include "infer/infer_response.h"

#include "knn/common/error.h"
#include "knn/recordio/writer.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Exact powers of ten in double (10^0 .. 10^22 are exactly representable). */
static const double s_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* x * 10^k with one rounding when |k| <= 22 (else close enough: the result is verified anyway). */
static double s_scale10(double x, int k)
{
    if (k >= 0)
        return k <= 22 ? x * s_pow10[k] : x * pow(10.0, k);
    return -k <= 22 ? x / s_pow10[-k] : x / pow(10.0, -k);
}

/*
 * Fast path: the shortest digits of a positive normal float32 with 6..9 significant digits, by
 * rounding v * 10^(p-1-e) to an integer in double precision. Returns 0 and sets digits (no
 * trailing zeros) and decpt (value = 0.digits * 10^decpt) when a candidate reads back as v in
 * double arithmetic; the caller still checks the result with strtof.
 * Starting at 6 digits loses nothing for normal floats: a float within half an ulp (6e-8
 * relative) of a decimal of 6 or fewer digits rounds to that decimal at 6 digits, whose trailing
 * zeros are then dropped.
 */
static int s_digits_fast(char *digits, int *nd, int *decpt, float v)
{
    double x = v;
    int e = (int)floor(log10(x));
    for (int p = 6; p <= 9; p++) {
        double m = nearbyint(s_scale10(x, p - 1 - e));
        if (m >= s_pow10[p]) { /* log10 rounded up across a power of ten */
            e++;
            m = nearbyint(s_scale10(x, p - 1 - e));
        } else if (m < s_pow10[p - 1]) {
            e--;
            m = nearbyint(s_scale10(x, p - 1 - e));
        }
        if ((float)s_scale10(m, e - (p - 1)) != v)
            continue;
        uint64_t u = (uint64_t)m;
        char tmp[16];
        int n = 0;
        while (u) {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        }
        while (n > 1 && tmp[0] == '0') { /* drop trailing zeros (stored first) */
            memmove(tmp, tmp + 1, (size_t)--n);
        }
        for (int i = 0; i < n; i++)
            digits[i] = tmp[n - 1 - i];
        digits[n] = '\0';
        *nd = n;
        *decpt = e + 1;
        return 0;
    }
    return -1;
}

/* Slow path: the fewest %.Ne digits that strtof reads back as v (1..9 digits). */
static void s_digits_slow(char *digits, int *nd, int *decpt, float v)
{
    char sci[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(sci, sizeof(sci), "%.*e", prec - 1, (double)v);
        if (strtof(sci, NULL) == v)
            break;
    }
    /* sci is "d[.ddd]e[+-]XX" (v > 0 here) */
    int n = 0;
    const char *p = sci;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9' && n < 15)
            digits[n++] = *p;
    }
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    *nd = n;
    *decpt = (int)strtol(p + 1, NULL, 10) + 1;
}

/* Lay out 0.<digits> * 10^decpt as Python's repr does: fixed when -4 < decpt <= 16, else d.ddde+XX. */
static size_t s_layout(char *out, size_t size, int neg, const char *digits, int nd, int decpt)
{
    char b[48];
    size_t n = 0;
    if (neg)
        b[n++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            b[n++] = '0';
            b[n++] = '.';
            for (int i = 0; i < -decpt; i++)
                b[n++] = '0';
            memcpy(b + n, digits, (size_t)nd);
            n += (size_t)nd;
        } else if (decpt >= nd) {
            memcpy(b + n, digits, (size_t)nd);
            n += (size_t)nd;
            for (int i = nd; i < decpt; i++)
                b[n++] = '0';
            b[n++] = '.';
            b[n++] = '0';
        } else {
            memcpy(b + n, digits, (size_t)decpt);
            n += (size_t)decpt;
            b[n++] = '.';
            memcpy(b + n, digits + decpt, (size_t)(nd - decpt));
            n += (size_t)(nd - decpt);
        }
    } else {
        int e = decpt - 1;
        b[n++] = digits[0];
        if (nd > 1) {
            b[n++] = '.';
            memcpy(b + n, digits + 1, (size_t)(nd - 1));
            n += (size_t)(nd - 1);
        }
        n += (size_t)snprintf(b + n, sizeof(b) - n, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    if (n >= size)
        n = size - 1;
    memcpy(out, b, n);
    out[n] = '\0';
    return n;
}

size_t knn_infer_format_float(char *buf, size_t size, float v)
{
    if (isnan(v))
        return (size_t)snprintf(buf, size, "NaN");
    if (isinf(v))
        return (size_t)snprintf(buf, size, v > 0 ? "Infinity" : "-Infinity");
    if (v == 0.0f)
        return (size_t)snprintf(buf, size, signbit(v) ? "-0.0" : "0.0");

    /* Integers below 2^24 (class labels, item ids) are exact in float32 and need every digit:
     * no search ("7.0", "-123.0"). Larger ones can have shorter forms (123456792 is 123456790.0). */
    if (fabsf(v) < 16777216.0f && v == truncf(v)) {
        long long i = (long long)v;
        return (size_t)snprintf(buf, size, "%lld.0", i);
    }
    char digits[16];
    int nd, decpt, neg = v < 0;
    float a = fabsf(v);
    size_t n;
    if (a >= FLT_MIN && s_digits_fast(digits, &nd, &decpt, a) == 0) {
        n = s_layout(buf, size, neg, digits, nd, decpt);
        if (strtof(buf, NULL) == v)
            return n;
    }
    s_digits_slow(digits, &nd, &decpt, a); /* subnormals, and the rare case the fast path missed */
    return s_layout(buf, size, neg, digits, nd, decpt);
}

static int s_append_float(struct knn_buf *out, float v)
{
    char num[48];
    size_t n = knn_infer_format_float(num, sizeof(num), v);
    return knn_buf_append(out, num, n);
}

static int s_append_array(struct knn_buf *out, const float *v, size_t n)
{
    int rc = knn_buf_append(out, "[", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = knn_buf_append(out, ", ", 2);
        if (rc == 0)
            rc = s_append_float(out, v[i]);
    }
    return rc ? rc : knn_buf_append(out, "]", 1);
}

/*
 * The neighbours of a row that were found: an IVF search whose probed lists held fewer than k
 * vectors pads with label NaN (model.h), and those are left out of the answer (JSON has no NaN).
 */
static size_t s_found(const struct knn_predictions *p, size_t row)
{
    size_t n = 0;
    while (n < p->k && !isnan(p->labels[row * p->k + n]))
        n++;
    return n;
}

/* One prediction object: {"predicted_label": 2.0[, "distances": [...], "labels": [...]]}; a row
 * with no neighbour found at all has "predicted_label": null. */
static int s_append_object(struct knn_buf *out, const struct knn_predictions *p, size_t row, int verbose)
{
    int rc = knn_buf_append_str(out, "{\"predicted_label\": ");
    if (rc == 0)
        rc = isnan(p->predicted[row]) ? knn_buf_append_str(out, "null") : s_append_float(out, p->predicted[row]);
    if (rc == 0 && verbose) {
        size_t found = s_found(p, row);
        rc = knn_buf_append_str(out, ", \"distances\": ");
        if (rc == 0)
            rc = s_append_array(out, p->distances + row * p->k, found);
        if (rc == 0)
            rc = knn_buf_append_str(out, ", \"labels\": ");
        if (rc == 0)
            rc = s_append_array(out, p->labels + row * p->k, found);
    }
    return rc ? rc : knn_buf_append(out, "}", 1);
}

static int s_encode_recordio(
    struct knn_buf *out, const struct knn_predictions *p, size_t first, size_t count, int verbose)
{
    for (size_t i = first; i < first + count; i++) {
        int rc = knn_recordio_write_prediction(
            out, p->predicted[i], verbose ? p->labels + i * p->k : NULL, verbose ? p->distances + i * p->k : NULL,
            verbose ? s_found(p, i) : 0);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * A row whose answer would hold an infinity: finite features can still square to more than
 * float32 holds (a feature of 3e19), and a regressor's mean of huge labels can overflow. JSON has
 * no Infinity, and an overflowed distance no longer orders the neighbours, so the row is refused
 * (in every format, so that a row's fate does not depend on the Accept header).
 */
static int s_check_finite(const struct knn_predictions *p, size_t first, size_t count)
{
    for (size_t i = first; i < first + count; i++) {
        if (isinf(p->predicted[i]))
            return knn_error_set(KNN_ERANGE, "row %zu: the predicted label overflows float32 (labels too large)",
                                 i - first + 1);
        if (!p->distances || !p->labels)
            continue; /* not verbose: the search kept no distances */
        size_t found = s_found(p, i);
        for (size_t j = 0; j < found; j++) {
            if (!isfinite(p->distances[i * p->k + j]))
                return knn_error_set(
                    KNN_ERANGE, "row %zu: its distance to neighbour %zu overflows float32 (feature values too large)",
                    i - first + 1, j + 1);
        }
    }
    return 0;
}

int knn_infer_encode(
    struct knn_buf *out, const struct knn_mime *accept, const struct knn_predictions *p, size_t first, size_t count)
{
    int rc = 0;
    int verbose = accept->verbose;
    KNN_ASSERT(first + count <= p->n);
    if (verbose && count && (!p->labels || !p->distances))
        return knn_error_set(KNN_EINTERNAL, "verbose response without neighbour labels and distances");
    if ((rc = s_check_finite(p, first, count)) != 0)
        return rc;
    switch (accept->media) {
    case KNN_MEDIA_JSON:
        rc = knn_buf_append_str(out, "{\"predictions\": [");
        for (size_t i = 0; rc == 0 && i < count; i++) {
            if (i)
                rc = knn_buf_append(out, ", ", 2);
            if (rc == 0)
                rc = s_append_object(out, p, first + i, verbose);
        }
        if (rc == 0)
            rc = knn_buf_append_str(out, "]}");
        return rc;
    case KNN_MEDIA_JSONLINES:
        for (size_t i = 0; rc == 0 && i < count; i++) {
            rc = s_append_object(out, p, first + i, verbose);
            if (rc == 0)
                rc = knn_buf_append(out, "\n", 1);
        }
        return rc;
    case KNN_MEDIA_RECORDIO_PB:
        return s_encode_recordio(out, p, first, count, verbose);
    default:
        return knn_error_set(
            KNN_EUNSUPPORTED, "cannot produce '%s': Accept must be application/json, application/jsonlines or "
                              "application/x-recordio-protobuf", knn_media_name(accept->media));
    }
}
