#include "serve/serve_app.h"

#include "infer/infer_request.h"
#include "infer/infer_response.h"

#include "knn/common/error.h"
#include "knn/common/log.h"

#include <stdio.h>
#include <string.h>

int knn_serve_app_init(struct knn_serve_app *app, const char *default_accept, size_t cores, size_t max_payload_mb)
{
    memset(app, 0, sizeof(*app));
    atomic_store(&app->model, NULL);
    atomic_store(&app->predicting, 0);
    app->cores = cores ? cores : 1;
    app->max_payload_mb = max_payload_mb;
    /* A row takes at least 2 bytes of any format ("1\n"); this only stops absurd counts early. */
    app->max_rows = (max_payload_mb << 20) / 2 + 1;
    struct knn_mime json = {KNN_MEDIA_JSON, 0, -1};
    app->default_accept = json;
    if (default_accept && *default_accept) {
        struct knn_mime m;
        int rc = knn_mime_parse(&m, default_accept);
        if (rc)
            return knn_error_wrap(rc, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT");
        if (m.media != KNN_MEDIA_JSON && m.media != KNN_MEDIA_JSONLINES && m.media != KNN_MEDIA_RECORDIO_PB)
            return knn_error_set(
                KNN_EUNSUPPORTED, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='%s': not a type the endpoint produces",
                default_accept);
        app->default_accept = m;
    }
    return 0;
}

void knn_serve_app_set_model(struct knn_serve_app *app, const struct knn_model *model)
{
    atomic_store(&app->model, model);
}

unsigned knn_serve_status_for(int code)
{
    switch (code) {
    case KNN_EFORMAT:
    case KNN_ETRUNCATED:
    case KNN_ERANGE:
    case KNN_EMISMATCH:
    case KNN_EINVAL:
    case KNN_ERECORDIO_MAGIC:
        return 400;
    case KNN_ETOOBIG:
        return 413;
    case KNN_EUNSUPPORTED:
        return 415;
    default:
        return 500;
    }
}

static void s_ping(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp)
{
    struct knn_serve_app *app = ctx;
    if (!atomic_load(&app->model)) {
        knn_http_response_error(resp, 503, "the model is still loading");
        return;
    }
    resp->content_type = "text/plain";
}

static void s_execution_parameters(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp)
{
    struct knn_serve_app *app = ctx;
    if (knn_buf_printf(
            &resp->body, "{\"MaxConcurrentTransforms\": %zu, \"BatchStrategy\": \"MULTI_RECORD\", \"MaxPayloadInMB\": %zu}",
            app->cores, app->max_payload_mb) != 0)
        knn_http_response_error(resp, 500, knn_error_message());
}

static void s_invocations(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp)
{
    struct knn_serve_app *app = ctx;
    const struct knn_model *model = atomic_load(&app->model);
    struct knn_mime ct, accept;
    struct knn_infer_rows rows;
    struct knn_predictions pred;
    int rc;

    memset(&pred, 0, sizeof(pred));
    if (!model) {
        knn_http_response_error(resp, 503, "the model is still loading");
        return;
    }
    rc = knn_mime_parse(&ct, req->content_type);
    if (rc) {
        knn_http_response_error(resp, rc == KNN_EUNSUPPORTED ? 415 : 400, knn_error_message());
        return;
    }
    if (ct.media == KNN_MEDIA_NONE || ct.media == KNN_MEDIA_ANY || ct.media == KNN_MEDIA_UNKNOWN) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "Content-Type '%s' is not supported: use text/csv, application/json, application/jsonlines or "
                 "application/x-recordio-protobuf",
                 req->content_type ? req->content_type : "");
        knn_http_response_error(resp, 415, msg);
        return;
    }
    rc = knn_mime_negotiate(&accept, req->accept, &app->default_accept);
    if (rc) {
        knn_http_response_error(resp, rc == KNN_EUNSUPPORTED ? 406 : 400, knn_error_message());
        return;
    }

    const struct knn_model_config *cfg = knn_model_get_config(model);
    knn_infer_rows_init(&rows, cfg->feature_dim, app->max_rows);
    rc = knn_infer_decode(&rows, &ct, req->body, req->body_len);
    if (rc) {
        knn_http_response_error(resp, knn_serve_status_for(rc), knn_error_message());
        goto done;
    }
    if (rows.n == 0) {
        knn_http_response_error(resp, 400, "the request has no rows (empty body)");
        goto done;
    }

    size_t predicting = atomic_fetch_add(&app->predicting, 1) + 1;
    struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
    po.verbose = 1; /* distances even when not asked for: a row whose distances overflow is refused */
    po.threads = app->search_threads ? app->search_threads : app->cores / predicting;
    if (po.threads < 1)
        po.threads = 1;
    rc = knn_model_predict(model, rows.n, rows.x, &po, &pred);
    atomic_fetch_sub(&app->predicting, 1);
    if (rc) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_HTTP, "predict failed on %zu rows: %s", rows.n, knn_error_message());
        knn_http_response_error(resp, knn_serve_status_for(rc) == 500 ? 500 : 400, knn_error_message());
        goto done;
    }
    rc = knn_infer_encode(&resp->body, &accept, &pred, 0, pred.n);
    if (rc) {
        knn_http_response_error(resp, knn_serve_status_for(rc), knn_error_message());
        goto done;
    }
    resp->content_type = knn_media_name(accept.media);
    resp->rows = rows.n;
done:
    knn_predictions_clean_up(&pred);
    knn_infer_rows_clean_up(&rows);
}

static const struct knn_http_route s_routes[] = {
    {"GET", "/ping", s_ping, 0},
    {"POST", "/invocations", s_invocations, 1},
    {"GET", "/execution-parameters", s_execution_parameters, 0},
};

const struct knn_http_route *knn_serve_app_routes(size_t *n)
{
    *n = sizeof(s_routes) / sizeof(s_routes[0]);
    return s_routes;
}
