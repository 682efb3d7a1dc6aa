#include "infer_response.h"

#include "knn/common/error.h"
#include "knn/recordio/writer.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* The fewest significant digits that read back as the same float32 (at most 9 are needed).
     * Starting at 6 loses nothing for normal floats: one within half an ulp (6e-8 relative) of a
     * decimal of 6 or fewer digits rounds to that decimal at 6 digits, and the trailing zeros are
     * dropped below. */
    char sci[32];
    for (int prec = fabsf(v) < FLT_MIN ? 1 : 6; prec <= 9; prec++) { /* subnormals: fewer bits, so from 1 */
        snprintf(sci, sizeof(sci), "%.*e", prec - 1, (double)v);
        if (strtof(sci, NULL) == v)
            break;
    }
    /* sci is "[-]d[.ddd]e[+-]XX": collect the digits and the decimal exponent. */
    char digits[16];
    size_t nd = 0;
    const char *p = sci;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9' && nd < sizeof(digits) - 1)
            digits[nd++] = *p;
    }
    int exp10 = (int)strtol(p + 1, NULL, 10);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int decpt = exp10 + 1; /* value = 0.<digits> * 10^decpt */

    /* Python's repr layout: fixed notation when -4 < decpt <= 16, else d.ddde[+-]XX. */
    size_t n = 0;
    char out[48];
    if (neg)
        out[n++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[n++] = '0';
            memcpy(out + n, digits, nd);
            n += nd;
        } else if ((size_t)decpt >= nd) {
            memcpy(out + n, digits, nd);
            n += nd;
            for (size_t i = nd; i < (size_t)decpt; i++)
                out[n++] = '0';
            out[n++] = '.';
            out[n++] = '0';
        } else {
            memcpy(out + n, digits, (size_t)decpt);
            n += (size_t)decpt;
            out[n++] = '.';
            memcpy(out + n, digits + decpt, nd - (size_t)decpt);
            n += nd - (size_t)decpt;
        }
        out[n] = '\0';
    } else {
        int e = decpt - 1;
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        snprintf(out + n, sizeof(out) - n, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    return (size_t)snprintf(buf, size, "%s", out);
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

/* One prediction object: {"predicted_label": 2.0[, "distances": [...], "labels": [...]]}. */
static int s_append_object(struct knn_buf *out, const struct knn_predictions *p, size_t row, int verbose)
{
    int rc = knn_buf_append_str(out, "{\"predicted_label\": ");
    if (rc == 0)
        rc = s_append_float(out, p->predicted[row]);
    if (rc == 0 && verbose) {
        rc = knn_buf_append_str(out, ", \"distances\": ");
        if (rc == 0)
            rc = s_append_array(out, p->distances + row * p->k, p->k);
        if (rc == 0)
            rc = knn_buf_append_str(out, ", \"labels\": ");
        if (rc == 0)
            rc = s_append_array(out, p->labels + row * p->k, p->k);
    }
    return rc ? rc : knn_buf_append(out, "}", 1);
}

/* One Record per row with label["predicted_label"] (and "labels", "distances" when verbose). */
static int s_encode_recordio(
    struct knn_buf *out, const struct knn_predictions *p, size_t first, size_t count, int verbose)
{
    for (size_t i = first; i < first + count; i++) {
        int rc = knn_recordio_write_prediction(
            out, p->predicted[i], verbose ? p->labels + i * p->k : NULL, verbose ? p->distances + i * p->k : NULL,
            p->k);
        if (rc)
            return rc;
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
