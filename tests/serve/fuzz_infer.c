/*
 * Fuzz target: the endpoint's request readers (mime.c, infer_request.c). The input is
 * "<Content-Type>\n<Accept>\n<body>", decoded into rows of a width taken from the first body
 * byte, as POST /invocations does. Properties: never crash or leak; on success every value is
 * finite and the row count is within the cap; on failure a message is set.
 * Runs as libFuzzer (KNN_BUILD_FUZZERS with clang) and as a corpus replay in every build.
 */
#include "infer/infer_impl.h"
#include "infer/infer_request.h"
#include "infer/mime.h"

#include "knn/common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *s_line(const uint8_t *p, const uint8_t *end, char *out, size_t cap)
{
    size_t n = 0;
    while (p < end && *p != '\n') {
        if (n + 1 < cap && *p)
            out[n++] = (char)*p;
        p++;
    }
    out[n] = '\0';
    return p < end ? p + 1 : end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ct_s[256], accept_s[256];
    const uint8_t *end = data + size, *p = data;
    p = s_line(p, end, ct_s, sizeof(ct_s));
    p = s_line(p, end, accept_s, sizeof(accept_s));
    size_t dim = p < end ? (size_t)(*p++ % 16) + 1 : 4;

    struct knn_mime ct, accept, fallback = {KNN_MEDIA_JSON, 0, -1};
    if (knn_mime_negotiate(&accept, accept_s, &fallback) == 0 && accept.media != KNN_MEDIA_JSON &&
        accept.media != KNN_MEDIA_JSONLINES && accept.media != KNN_MEDIA_RECORDIO_PB)
        abort(); /* negotiation only ever picks a type we produce */
    if (knn_mime_parse(&ct, ct_s) != 0)
        return 0;
    struct knn_infer_rows rows;
    knn_infer_rows_init(&rows, dim, 1000);
    knn_error_clear();
    int rc = knn_infer_decode(&rows, &ct, p, (size_t)(end - p));
    if (rc == 0) {
        if (rows.n > 1000)
            abort();
        for (size_t i = 0; i < rows.n * dim; i++) {
            if (!isfinite(rows.x[i]))
                abort();
        }
    } else if (rc > 0 || knn_error_message()[0] == '\0') {
        abort(); /* errors are negative codes with a message */
    }
    /* The JSON fast path must agree with jansson on everything it accepts (and it only ever
     * accepts, so the error codes and messages come from the same place). */
    if (ct.media == KNN_MEDIA_JSON || ct.media == KNN_MEDIA_JSONLINES) {
        struct knn_infer_rows slow;
        knn_infer_rows_init(&slow, dim, 1000);
        knn__infer_json_fast_enabled = 0;
        int rc2 = knn_infer_decode(&slow, &ct, p, (size_t)(end - p));
        knn__infer_json_fast_enabled = 1;
        if (rc2 != rc || (rc == 0 && (slow.n != rows.n ||
                                      (rows.n && memcmp(slow.x, rows.x, rows.n * dim * sizeof(float)) != 0))))
            abort();
        knn_infer_rows_clean_up(&slow);
    }
    knn_infer_rows_clean_up(&rows);
    return 0;
}
