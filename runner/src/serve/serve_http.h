#ifndef KNN_RUNNER_SERVE_HTTP_H
#define KNN_RUNNER_SERVE_HTTP_H

/**
 * The HTTP side of the endpoint (libmicrohttpd): a route table, capped request bodies, idle and
 * per-request timeouts, a log line per request at DEBUG and a summary every log_interval_s at
 * INFO, and a drain-then-stop shutdown. It knows
 * nothing about k-NN: handlers (serve_app.c) get a whole request and fill in a response.
 *
 * Each connection has its own thread (MHD_USE_THREAD_PER_CONNECTION), so handlers must be
 * thread-safe; at most `threads` handlers of routes marked `limited` run at once (the others are
 * queued, first come, first served, for a pool of `threads` workers), which keeps the CPU-bound
 * work to one per core while /ping still answers at once.
 */

#include "knn/common/buf.h"

#include <stddef.h>
#include <stdint.h>

struct knn_http_request {
    const char *method;       /* "GET", "POST" */
    const char *path;         /* "/invocations" (no query string) */
    const char *content_type; /* header value or NULL */
    const char *accept;       /* header value or NULL */
    const uint8_t *body;      /* NUL-terminated (not counted in body_len) */
    size_t body_len;
};

struct knn_http_response {
    unsigned status;          /* 200 unless the handler changes it */
    const char *content_type; /* static string; "application/json" unless changed */
    struct knn_buf body;      /* capped at the server's max_response_bytes */
    size_t rows;              /* rows served (for the access log) */
};

typedef void(knn_http_handler_fn)(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp);

struct knn_http_route {
    const char *method;
    const char *path;
    knn_http_handler_fn *handler;
    int limited; /* CPU-bound: runs in one of the server's `threads` slots */
};

struct knn_http_server_options {
    const char *host; /* address to bind ("0.0.0.0", "127.0.0.1", "::"); NULL = all IPv4 addresses */
    uint16_t port;    /* 0 = a free port (see knn_http_server_port) */
    size_t threads;   /* handlers of `limited` routes run at once; 0 = the number of cores */
    size_t max_body_bytes;     /* larger bodies get 413 */
    size_t max_response_bytes; /* cap on a response body */
    unsigned idle_timeout_s;   /* a connection silent this long is closed */
    unsigned request_timeout_s; /* a request body still arriving after this long is dropped */
    unsigned log_interval_s;    /* an INFO summary line this often (requests by status, rows, p50/p99); 0 = none */
    const struct knn_http_route *routes;
    size_t nroutes;
    void *ctx; /* passed to the handlers */
};

#define KNN_HTTP_SERVER_OPTIONS_INIT {NULL, 8080, 0, 6u << 20, 256u << 20, 60, 60, 60, NULL, 0, NULL}

struct knn_http_server;

/**
 * Bind and start serving. Errors: KNN_EINVAL (bad host), KNN_EHTTP (cannot bind or start; the
 * message says why).
 */
int knn_http_server_start(struct knn_http_server **out, const struct knn_http_server_options *opts);

/** The bound port (useful with port 0). */
uint16_t knn_http_server_port(const struct knn_http_server *server);

/**
 * Stop accepting connections, let requests in flight finish (at most `drain_ms`), then stop the
 * threads and free the server. NULL is a no-op.
 */
void knn_http_server_stop(struct knn_http_server *server, unsigned drain_ms);

/**
 * Fill `resp` with a JSON error {"error": "<reason phrase>", "message": "<message>"} and `status`.
 * The message is JSON-escaped.
 */
void knn_http_response_error(struct knn_http_response *resp, unsigned status, const char *message);

#endif
