/*
 * knn-runner serve: the inference endpoint, as a SageMaker inference container runs it
 * (`docker run image serve`): load the model, answer /ping, /invocations and
 * /execution-parameters until SIGTERM, then finish the requests in flight and exit.
 */
#include "s3_settings.h"
#include "commands.h"
#include "serve/serve_app.h"
#include "serve/serve_http.h"
#include "serve/serve_model.h"
#include "serve/serve_shard.h"
#include "usage.h"

#include "knn/common/error.h"
#include "knn/common/log.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SIGTERM is followed by SIGKILL after 30 s on SageMaker: finish within 25. */
#define S_DRAIN_MS 25000

#define S_SYNOPSIS                                                                                                     \
    "usage: knn-runner serve [--model s3://bucket/key/model.tar.gz | DIR | FILE] [--port N] [--host ADDR]\n"            \
    "                        [--workers N] [--search-threads N] [--max-payload-mb N] [--timeout S]\n"            \
    "                        [--endpoint-url URL] [--region NAME] [--profile NAME]\n"

static void s_usage(FILE *out)
{
    fputs(S_SYNOPSIS, out);
    fprintf(out,
            "\n"
            "Serves a k-NN model (ours, or SageMaker's model.tar.gz layout) with SageMaker's HTTP contract:\n"
            "  GET /ping, POST /invocations, GET /execution-parameters.\n"
            "\n"
            "  --model SRC         model.tar.gz (local, s3:// or an AWS https:// S3 URL), or a directory\n"
            "                      holding model_algo-1*\n"
            "                      (default: /opt/ml/model, as in a SageMaker container)\n"
            "  --port N            port (default: $SAGEMAKER_BIND_TO_PORT, else 8080; 0 = any free port)\n"
            "  --host ADDR         address to listen on (default 0.0.0.0)\n"
            "  --workers N         requests searching at once (default: $SAGEMAKER_MODEL_SERVER_WORKERS, else the\n"
            "                      number of cores)\n"
            "  --max-payload-mb N  largest request body (default: $SAGEMAKER_MAX_PAYLOAD_IN_MB, else 6)\n"
            "  --search-threads N  search threads per request (default 1: requests run side by side on the\n"
            "                      --workers; 0: the cores divided among the requests searching now)\n"
            "  --timeout S         idle and request-body timeout in seconds\n"
            "                      (default: $SAGEMAKER_MODEL_SERVER_TIMEOUT, else 60)\n"
            "  --max-connections N open connections at most (default: what ulimit -n allows, up to 65536)\n"
            "  --max-connections-per-client N  from one client address (default 1024; 0 = no cap)\n"
            "  --max-queue N       requests waiting for a search; more get 503 + Retry-After (default 1024)\n"
            "  --memory-budget-mb N  request bodies and answers held at once; more get 503 (default 256)\n"
            "  --batch-max-rows N  dynamic batching: requests queued together are searched as one batch of\n"
            "                      at most N rows (default 256; 1 = each request alone)\n"
            "  --batch-wait-us N   how long a free worker waits for more requests to batch (default 0)\n"
            "  --log-interval S    an INFO line every S seconds: requests by status, rows, p50/p99 latency\n"
            "                      (default 60; 0 = none). Each request is logged at KNN_LOG_LEVEL=debug\n"
            "  --endpoint-url URL  S3 endpoint for an s3:// --model (default: $AWS_ENDPOINT_URL_S3,\n"
            "                      $AWS_ENDPOINT_URL, ~/.aws/config, AWS)\n"
            "  --region NAME       (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's, us-east-1)\n"
            "  --profile NAME      a profile of ~/.aws/credentials and ~/.aws/config\n"
            "\n"
            "Responses default to $SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else application/json.\n"
            "Under mpirun (mpirun -np N --enable-recovery knn-runner serve ...) each rank holds 1/N of the\n"
            "model and rank 0 answers HTTP with the same answers (docs/sharded-serving.md).\n"
            "A line 'knn-runner serve: ready on port N' on stderr says the endpoint is up.\n"
            "\n"
            "examples:\n"
            "  knn-runner serve --model build/quickstart/model.tar.gz --port 8080\n"
            "  knn-runner serve --model s3://bucket/output/my-job/output/model.tar.gz --host 127.0.0.1\n"
            "  curl -s -H 'Content-Type: text/csv' -H 'Accept: application/jsonlines; verbose=true' \\\n"
            "       --data-binary @rows.csv http://localhost:8080/invocations\n");
}

static int s_parse_uint(unsigned long *out, const char *s, unsigned long max, const char *what)
{
    char *end;
    if (!s || !*s || *s == '-')
        return knn_error_set(KNN_EINVAL, "%s: '%s' is not a number", what, s ? s : "");
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v > max)
        return knn_error_set(KNN_EINVAL, "%s: '%s' is not a number from 0 to %lu", what, s, max);
    *out = v;
    return 0;
}

static size_t s_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* Sharded serving: the HTTP server drains on this thread while rank 0's main thread dispatches. */
struct s_drain {
    struct knn_http_server *server;
    atomic_int done;
};

static void *s_drain_thread(void *arg)
{
    struct s_drain *d = arg;
    knn_http_server_stop(d->server, S_DRAIN_MS);
    atomic_store(&d->done, 1);
    return NULL;
}

int knn_cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},          {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},           {"workers", required_argument, NULL, 'w'},
        {"max-payload-mb", required_argument, NULL, 'M'}, {"timeout", required_argument, NULL, 't'},
        {"search-threads", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {"log-interval", required_argument, NULL, 'L'},
        {"max-connections", required_argument, NULL, 'C'}, {"max-connections-per-client", required_argument, NULL, 'P'},
        {"max-queue", required_argument, NULL, 'Q'},       {"memory-budget-mb", required_argument, NULL, 'B'},
        {"batch-max-rows", required_argument, NULL, 'R'},  {"batch-wait-us", required_argument, NULL, 'W'},
        {"endpoint-url", required_argument, NULL, 'E'},    {"region", required_argument, NULL, 'G'},
        {"profile", required_argument, NULL, 'F'},         {NULL, 0, NULL, 0},
    };
    const char *model_src = "/opt/ml/model", *host = "0.0.0.0";
    const char *port_s = getenv("SAGEMAKER_BIND_TO_PORT");
    const char *payload_s = getenv("SAGEMAKER_MAX_PAYLOAD_IN_MB");
    const char *timeout_s = getenv("SAGEMAKER_MODEL_SERVER_TIMEOUT");
    const char *workers_s = getenv("SAGEMAKER_MODEL_SERVER_WORKERS"), *search_s = NULL;
    unsigned long port = 8080, payload_mb = 6, timeout = 60, workers = 0, search_threads = 1, log_interval = 60;
    const char *log_interval_s = NULL;
    const char *s3_endpoint = NULL, *s3_region = NULL, *s3_profile = NULL; /* an s3:// --model */
    /* Connections, the queue, the memory budget and dynamic batching (see docs/endpoint-api.md). */
    const char *limit_s[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    unsigned long limits[6] = {0, 1024, 1024, 256, 256, 0};
    static const char *const limit_names[6] = {"max connections", "max connections per client", "max queue",
                                               "memory budget (MB)", "batch max rows", "batch wait (us)"};
    static const unsigned long limit_max[6] = {1u << 20, 1u << 20, 1u << 20, 1u << 20, 1u << 20, 1000000};
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:p:H:w:M:t:S:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_src = optarg; break;
        case 'p': port_s = optarg; break;
        case 'H': host = optarg; break;
        case 'w': workers_s = optarg; break;
        case 'M': payload_s = optarg; break;
        case 't': timeout_s = optarg; break;
        case 'S': search_s = optarg; break;
        case 'L': log_interval_s = optarg; break;
        case 'C': limit_s[0] = optarg; break;
        case 'P': limit_s[1] = optarg; break;
        case 'Q': limit_s[2] = optarg; break;
        case 'B': limit_s[3] = optarg; break;
        case 'R': limit_s[4] = optarg; break;
        case 'W': limit_s[5] = optarg; break;
        case 'E': s3_endpoint = optarg; break;
        case 'G': s3_region = optarg; break;
        case 'F': s3_profile = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: return knn_usage_getopt_error("serve", S_SYNOPSIS, c, argv);
        }
    }
    if (optind < argc)
        return knn_usage_error("serve", S_SYNOPSIS, "unexpected argument '%s'", argv[optind]);
    knn_s3_settings_set(s3_endpoint, s3_region, s3_profile);
    if ((port_s && *port_s && s_parse_uint(&port, port_s, 65535, "port")) ||
        (payload_s && *payload_s && s_parse_uint(&payload_mb, payload_s, 1024, "max payload (MB)")) ||
        (timeout_s && *timeout_s && s_parse_uint(&timeout, timeout_s, 86400, "timeout (s)")) ||
        (workers_s && *workers_s && s_parse_uint(&workers, workers_s, 1024, "workers")) ||
        (search_s && s_parse_uint(&search_threads, search_s, 1024, "search threads")) ||
        (log_interval_s && s_parse_uint(&log_interval, log_interval_s, 86400, "log interval (s)"))) {
        return knn_usage_error("serve", S_SYNOPSIS, "%s", knn_error_message());
    }
    for (size_t i = 0; i < 6; i++) {
        if (limit_s[i] && s_parse_uint(&limits[i], limit_s[i], limit_max[i], limit_names[i]) != 0)
            return knn_usage_error("serve", S_SYNOPSIS, "%s", knn_error_message());
    }
    if (limits[2] == 0 || limits[3] == 0 || limits[4] == 0)
        return knn_usage_error("serve", S_SYNOPSIS,
                               "--max-queue, --memory-budget-mb and --batch-max-rows must be at least 1");
    if (payload_mb == 0)
        return knn_usage_error("serve", S_SYNOPSIS, "max payload must be at least 1 MB");

    struct knn_serve_app app;
    if (knn_serve_app_init(&app, getenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"), s_cores(), payload_mb) != 0) {
        fprintf(stderr, "knn-runner serve: %s\n", knn_error_message());
        return 2;
    }
    app.search_threads = search_threads;

    /* SIGTERM/SIGINT are taken with sigwait() by this thread; the server threads inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Under mpirun: the model is spread over the ranks; only rank 0 answers HTTP (serve_shard.h). */
    struct knn_serve_shard *shard = NULL;
    if (knn_serve_shard_start(&shard) != 0) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "knn-runner serve: %s", knn_error_message());
        return 1;
    }
    if (shard && knn_serve_shard_rank(shard) != 0) {
        int wstatus = 1;
        if (knn_serve_shard_load(shard, model_src, &stop_signals) == 0)
            wstatus = knn_serve_shard_work(shard, &stop_signals);
        else
            knn_serve_shard_work(shard, &stop_signals); /* wait for rank 0's STOP */
        knn_serve_shard_destroy(shard);
        return wstatus;
    }

    size_t nroutes;
    struct knn_http_server_options hopts = KNN_HTTP_SERVER_OPTIONS_INIT;
    hopts.host = host;
    hopts.port = (uint16_t)port;
    hopts.threads = workers;
    hopts.max_body_bytes = (size_t)payload_mb << 20;
    hopts.idle_timeout_s = (unsigned)timeout;
    hopts.request_timeout_s = (unsigned)timeout;
    hopts.log_interval_s = (unsigned)log_interval;
    hopts.max_connections = limits[0];
    hopts.max_per_client = limits[1];
    hopts.max_queue = limits[2];
    hopts.budget_bytes = (size_t)limits[3] << 20;
    hopts.batch_max_requests = limits[4];
    hopts.batch_wait_us = (unsigned)limits[5];
    app.batch_max_rows = limits[4];
    hopts.routes = knn_serve_app_routes(&nroutes);
    hopts.nroutes = nroutes;
    hopts.ctx = &app;
    struct knn_http_server *server = NULL;
    struct knn_model *model = NULL;
    int status = 1;
    if (knn_http_server_start(&server, &hopts) != 0) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "knn-runner serve: %s", knn_error_message());
        knn_serve_shard_destroy(shard);
        return 1;
    }
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "knn-runner serve: listening on %s port %u; loading the model from %s", host,
            knn_http_server_port(server), model_src);

    if (shard) {
        if (knn_serve_shard_load(shard, model_src, &stop_signals) != 0) {
            KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "knn-runner serve: cannot load the model: %s", knn_error_message());
            goto done;
        }
        app.backend = knn_serve_shard_backend(shard);
        knn_serve_app_set_model(&app, knn_serve_shard_model(shard));
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "knn-runner serve: ready on port %u", knn_http_server_port(server));
        int ssig = knn_serve_shard_dispatch(shard, &stop_signals, NULL);
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "knn-runner serve: %s received, finishing the requests in flight",
                ssig == SIGTERM ? "SIGTERM" : "SIGINT");
        /* The requests in flight need the dispatcher (this thread): the server drains on another. */
        struct s_drain drain = {server, 0};
        pthread_t drainer;
        if (pthread_create(&drainer, NULL, s_drain_thread, &drain) == 0) {
            knn_serve_shard_dispatch(shard, NULL, &drain.done);
            pthread_join(drainer, NULL);
            server = NULL;
        }
        status = 0;
        goto done;
    }
    if (knn_serve_model_load(&model, model_src) != 0) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "knn-runner serve: cannot load the model: %s", knn_error_message());
        goto done;
    }
    const struct knn_model_config *cfg = knn_model_get_config(model);
    knn_serve_app_set_model(&app, model);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB,
            "model: %s %s, %zu vectors of dimension %zu, k=%zu, predictor_type=%s; max payload %lu MB, "
            "%zu requests searching at once",
            knn_index_type_name(cfg->index_type), knn_model_metric_name(cfg->metric), knn_model_ntotal(model),
            cfg->feature_dim, cfg->k, knn_predictor_name(cfg->predictor), payload_mb,
            workers ? (size_t)workers : s_cores());
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "knn-runner serve: ready on port %u", knn_http_server_port(server));

    int sig = 0;
    sigwait(&stop_signals, &sig);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "knn-runner serve: %s received, finishing the requests in flight",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    status = 0;
done:
    knn_http_server_stop(server, S_DRAIN_MS);
    knn_model_destroy(model);
    knn_serve_shard_destroy(shard);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "knn-runner serve: stopped");
    return status;
}
