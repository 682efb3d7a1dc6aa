/*
 * RecordIO-protobuf requests and responses of the endpoint (spec §3.2, §3.3, §4).
 * TEMPORARY: protobuf-recordio/ has not landed its reader and Record writer yet; until it does,
 * these say so (HTTP 415 / 406) rather than pretend.
 */
#include "infer_request.h"
#include "infer_response.h"

#include "knn/common/error.h"

int knn__infer_decode_recordio(struct knn_infer_rows *rows, size_t *n, const uint8_t *body, size_t len);
int knn__infer_encode_recordio(
    struct knn_buf *out, const struct knn_predictions *p, size_t first, size_t count, int verbose);

int knn__infer_decode_recordio(struct knn_infer_rows *rows, size_t *n, const uint8_t *body, size_t len)
{
    return knn_error_set(KNN_EUNSUPPORTED, "application/x-recordio-protobuf requests are not available in this build");
}

int knn__infer_encode_recordio(
    struct knn_buf *out, const struct knn_predictions *p, size_t first, size_t count, int verbose)
{
    return knn_error_set(KNN_EUNSUPPORTED, "application/x-recordio-protobuf responses are not available in this build");
}
