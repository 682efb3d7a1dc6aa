#include "serve/serve_app.h"

#include "infer/infer_request.h"
#include "infer/infer_response.h"
#include "infer/search_attrs.h"

#include "knn/common/alloc.h"
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
    app->batch_max_rows = 1;
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
    const char *down;
    if (!atomic_load(&app->model)) {
        knn_http_response_error(resp, 503, "the model is still loading");
        return;
    }
    if (app->backend && (down = app->backend->unavailable(app->backend->ctx))) {
        knn_http_response_error(resp, 503, down);
        return;
    }
    resp->content_type = "text/plain";
}

static void s_execution_parameters(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp)
{
    struct knn_serve_app *app = ctx;
    if (knn_buf_printf(
            &resp->body, "{\"MaxConcurrentTransforms\": %zu, \"BatchStrategy\": \"MULTI_RECORD\", \"MaxPayloadInMB\": %zu",
            app->cores, app->max_payload_mb) != 0 ||
        (app->backend && app->backend->describe(app->backend->ctx, &resp->body) != 0) ||
        knn_buf_append_str(&resp->body, "}") != 0)
        knn_http_response_error(resp, 500, knn_error_message());
}

/* A request of a batch once decoded: its answer's type and its rows. */
struct s_prepared {
    struct knn_mime accept;
    struct knn_infer_rows rows;
    int ready;    /* decoded, waiting for its search */
    size_t first; /* its first row in its group's search */
    struct knn_search_attrs attrs; /* X-Amzn-SageMaker-Custom-Attributes: nprobe=, efSearch= */
};

/* Decode one request; 0 when it has rows to search, else its response holds the error. */
static int s_prepare(const struct knn_serve_app *app, const struct knn_model *model,
                     const struct knn_http_request *req, struct knn_http_response *resp, struct s_prepared *pr)
{
    struct knn_mime ct;
    int rc;
    knn_infer_rows_init(&pr->rows, knn_model_get_config(model)->feature_dim, app->max_rows);
    rc = knn_mime_parse(&ct, req->content_type);
    if (rc) {
        knn_http_response_error(resp, rc == KNN_EUNSUPPORTED ? 415 : 400, knn_error_message());
        return rc;
    }
    if (ct.media == KNN_MEDIA_NONE || ct.media == KNN_MEDIA_ANY || ct.media == KNN_MEDIA_UNKNOWN) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "Content-Type '%s' is not supported: use text/csv, application/json, application/jsonlines or "
                 "application/x-recordio-protobuf",
                 req->content_type ? req->content_type : "");
        knn_http_response_error(resp, 415, msg);
        return KNN_EUNSUPPORTED;
    }
    rc = knn_mime_negotiate(&pr->accept, req->accept, &app->default_accept);
    if (rc) {
        knn_http_response_error(resp, rc == KNN_EUNSUPPORTED ? 406 : 400, knn_error_message());
        return rc;
    }
    rc = knn_infer_decode(&pr->rows, &ct, req->body, req->body_len);
    if (rc) {
        knn_http_response_error(resp, knn_serve_status_for(rc), knn_error_message());
        return rc;
    }
    if (pr->rows.n == 0) {
        knn_http_response_error(resp, 400, "the request has no rows (empty body)");
        return KNN_EFORMAT;
    }
    rc = knn_search_attrs_parse(&pr->attrs, req->custom_attributes, model);
    if (rc) {
        knn_http_response_error(resp, 400, knn_error_message());
        return rc;
    }
    return 0;
}

/* Requests can share a search only with equal per-request parameters (Custom-Attributes). */
static int s_same_params(const struct knn_http_request *a, const struct knn_http_request *b)
{
    if (!a->custom_attributes || !b->custom_attributes)
        return a->custom_attributes == b->custom_attributes;
    return strcmp(a->custom_attributes, b->custom_attributes) == 0;
}

/*
 * One search for the requests in group[0..n), then each answer encoded from its own rows. A row's
 * neighbours do not depend on the other rows of the search, so each answer is the one the
 * request would get alone.
 */
static void s_search_group(struct knn_serve_app *app, const struct knn_model *model, struct knn_http_job *jobs,
                           struct s_prepared *prep, const size_t *group, size_t n, size_t total)
{
    struct knn_predictions pred;
    const float *x = prep[group[0]].rows.x;
    float *joined = NULL;
    size_t dim = prep[group[0]].rows.dim;
    int rc = 0;
    memset(&pred, 0, sizeof(pred));
    if (n > 1) {
        if (!(joined = knn_malloc_array(total, dim * sizeof(float)))) {
            rc = KNN_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            struct s_prepared *pr = &prep[group[i]];
            memcpy(joined + pr->first * dim, pr->rows.x, pr->rows.n * dim * sizeof(float));
        }
        x = joined;
    }
    size_t predicting = atomic_fetch_add(&app->predicting, 1) + 1;
    struct knn_predict_options po = KNN_PREDICT_OPTIONS_INIT;
    po.verbose = 1; /* distances even when not asked for: a row whose distances overflow is refused */
    po.nprobe = prep[group[0]].attrs.nprobe; /* a group shares its custom attributes (s_same_params) */
    po.ef_search = prep[group[0]].attrs.ef_search;
    po.threads = app->search_threads ? app->search_threads : app->cores / predicting;
    if (po.threads < 1)
        po.threads = 1;
    rc = app->backend ? app->backend->predict(app->backend->ctx, total, x, &po, &pred)
                      : knn_model_predict(model, total, x, &po, &pred);
    atomic_fetch_sub(&app->predicting, 1);
    if (rc)
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_HTTP, "predict failed on %zu rows: %s", total, knn_error_message());
done:
    for (size_t i = 0; i < n; i++) {
        struct s_prepared *pr = &prep[group[i]];
        struct knn_http_response *resp = jobs[group[i]].resp;
        int erc = rc;
        if (erc == 0)
            erc = knn_infer_encode(&resp->body, &pr->accept, &pred, pr->first, pr->rows.n);
        if (erc) {
            const char *down = rc && app->backend ? app->backend->unavailable(app->backend->ctx) : NULL;
            knn_http_response_error(resp, down ? 503 : knn_serve_status_for(erc), down ? down : knn_error_message());
            continue;
        }
        resp->content_type = knn_media_name(pr->accept.media);
        resp->rows = pr->rows.n;
    }
    knn_free(joined);
    knn_predictions_clean_up(&pred);
}

/*
 * POST /invocations for the requests a worker took together (dynamic batching): each is decoded
 * on its own (its errors are its own), then those with equal parameters are searched together,
 * at most batch_max_rows rows per search (a larger request is searched alone).
 */
static void s_invocations_batch(void *ctx, struct knn_http_job *jobs, size_t n)
{
    struct knn_serve_app *app = ctx;
    const struct knn_model *model = atomic_load(&app->model);
    struct s_prepared one, *prep = n == 1 ? &one : knn_calloc(n, sizeof(*prep));
    size_t one_index, *group = n == 1 ? &one_index : knn_malloc_array(n, sizeof(*group));

    if (!prep || !group) {
        for (size_t i = 0; i < n; i++)
            knn_http_response_error(jobs[i].resp, 503, "out of memory for this batch of requests: retry later");
        goto done;
    }
    memset(prep, 0, n * sizeof(*prep));
    if (!model) {
        for (size_t i = 0; i < n; i++)
            knn_http_response_error(jobs[i].resp, 503, "the model is still loading");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        prep[i].ready = s_prepare(app, model, jobs[i].req, jobs[i].resp, &prep[i]) == 0;
    size_t max_rows = app->batch_max_rows ? app->batch_max_rows : 1;
    for (size_t i = 0; i < n; i++) {
        if (!prep[i].ready)
            continue;
        size_t ng = 0, total = 0;
        for (size_t j = i; j < n; j++) {
            if (!prep[j].ready || !s_same_params(jobs[i].req, jobs[j].req))
                continue;
            if (ng && total + prep[j].rows.n > max_rows)
                continue;
            prep[j].ready = 0;
            prep[j].first = total;
            total += prep[j].rows.n;
            group[ng++] = j;
        }
        if (ng > 1)
            KNN_LOG(KNN_LOG_DEBUG, KNN_LS_HTTP, "batch: %zu requests, %zu rows in one search", ng, total);
        s_search_group(app, model, jobs, prep, group, ng, total);
    }
done:
    if (prep) {
        for (size_t i = 0; i < n; i++)
            knn_infer_rows_clean_up(&prep[i].rows);
    }
    if (prep != &one)
        knn_free(prep);
    if (group != &one_index)
        knn_free(group);
}

static void s_invocations(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp)
{
    struct knn_http_job job = {req, resp};
    s_invocations_batch(ctx, &job, 1);
}

static const struct knn_http_route s_routes[] = {
    {"GET", "/ping", s_ping, 0, NULL},
    {"POST", "/invocations", s_invocations, 1, s_invocations_batch},
    {"GET", "/execution-parameters", s_execution_parameters, 0, NULL},
};

const struct knn_http_route *knn_serve_app_routes(size_t *n)
{
    *n = sizeof(s_routes) / sizeof(s_routes[0]);
    return s_routes;
}
