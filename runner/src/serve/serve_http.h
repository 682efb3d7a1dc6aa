#ifndef KNN_RUNNER_SERVE_HTTP_H
#define KNN_RUNNER_SERVE_HTTP_H

/**
 * The HTTP side of the endpoint (libmicrohttpd): a route table, capped request bodies, a deadline
 * for a complete request, a per-client connection cap, a global memory budget, a log line per
 * request at DEBUG and a summary every log_interval_s at INFO, and a drain-then-stop shutdown.
 * It knows nothing about k-NN: handlers (serve_app.c) get whole requests and fill in responses.
 *
 * One event thread (epoll) does all the I/O of every connection, so an idle connection costs a
 * socket and a few KiB. Routes not marked `limited` (/ping) are answered on it at once; the
 * requests of `limited` routes are queued, first come, first served, for a pool of `threads`
 * workers, and their connections are suspended until a worker has answered. A route with a
 * `batch` handler gets the requests queued together (up to batch_max_requests, waiting at most
 * batch_wait_us for more) in one call: dynamic batching. Handlers run on the workers (limited) or
 * on the event thread (the others, which must be quick), so they must be thread-safe.
 *
 * Refused at once, never left hanging: a queue of max_queue requests full, or request bodies and
 * pending answers over budget_bytes (503 with Retry-After); a body over max_body_bytes (413);
 * ambiguous framing (400). A connection without a complete request request_timeout_s after it
 * opened (or after its previous answer) is closed, however slowly it trickles bytes.
 */

#include "knn/common/buf.h"

#include <stddef.h>
#include <stdint.h>

struct knn_http_request {
    const char *method;       /* "GET", "POST" */
    const char *path;         /* "/invocations" (no query string) */
    const char *content_type; /* header value or NULL */
    const char *accept;       /* header value or NULL */
    const char *custom_attributes; /* X-Amzn-SageMaker-Custom-Attributes or NULL */
    const uint8_t *body;      /* NUL-terminated (not counted in body_len) */
    size_t body_len;
};

struct knn_http_response {
    unsigned status;          /* 200 unless the handler changes it */
    const char *content_type; /* static string; "application/json" unless changed */
    struct knn_buf body;      /* capped at the server's max_response_bytes */
    size_t rows;              /* rows served (for the log) */
};

typedef void(knn_http_handler_fn)(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp);

/* One request of a batch, with its response to fill. */
struct knn_http_job {
    const struct knn_http_request *req;
    struct knn_http_response *resp;
};

/** Answer n requests of one route at once (each job's response is its own answer). */
typedef void(knn_http_batch_fn)(void *ctx, struct knn_http_job *jobs, size_t n);

struct knn_http_route {
    const char *method;
    const char *path;
    knn_http_handler_fn *handler;
    int limited; /* CPU-bound: runs on one of the server's `threads` workers */
    knn_http_batch_fn *batch; /* optional (limited routes): used instead of handler */
};

struct knn_http_server_options {
    const char *host; /* address to bind ("0.0.0.0", "127.0.0.1", "::"); NULL = all IPv4 addresses */
    uint16_t port;    /* 0 = a free port (see knn_http_server_port) */
    size_t threads;   /* workers for `limited` routes; 0 = the number of cores */
    size_t max_body_bytes;     /* larger bodies get 413 */
    size_t max_response_bytes; /* cap on a response body */
    unsigned idle_timeout_s;   /* a connection silent this long is closed */
    unsigned request_timeout_s; /* a request not complete (headers and body) this long after the
                                   connection opened or its previous answer: the connection is closed */
    unsigned log_interval_s;    /* an INFO summary line this often (requests by status, rows, p50/p99); 0 = none */
    const struct knn_http_route *routes;
    size_t nroutes;
    void *ctx; /* passed to the handlers */
    size_t max_connections;     /* open at once; 0 = what RLIMIT_NOFILE allows (at most 65536) */
    size_t max_per_client;      /* open at once from one client address; 0 = no cap */
    size_t max_queue;           /* requests waiting for a worker; more get 503 */
    size_t budget_bytes;        /* request bodies buffered + answers not yet sent; more get 503 */
    size_t batch_max_requests;  /* requests in one batch call (1 = no batching) */
    unsigned batch_wait_us;     /* how long a worker waits for more requests to fill a batch */
};

#define KNN_HTTP_SERVER_OPTIONS_INIT                                                                                  \
    {NULL, 8080, 0, 6u << 20, 256u << 20, 60, 60, 60, NULL, 0, NULL, 0, 1024, 1024, 256u << 20, 64, 0}

struct knn_http_server;

/**
 * Bind and start serving. Errors: KNN_EINVAL (bad host), KNN_EHTTP (cannot bind or start; the
 * message says why, e.g. the port is in use).
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
