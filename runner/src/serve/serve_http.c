#include "serve/serve_http.h"

#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_PATH_LOG_MAX 96
/* Connections served at once (a thread each); more wait in the listen backlog. */
#define S_MAX_CONNECTIONS 512
#define S_LISTEN_BACKLOG 1024

/*
 * At most `threads` handlers of limited routes run at once, each in a slot. A connection's thread
 * runs its handler itself when a slot is free and nobody waits; otherwise it queues the request
 * (first come, first served) for a pool of `threads` workers and sleeps until one has answered it.
 * Under load the workers go from one request to the next without sleeping. Measured with 64
 * connections on 2 cores (100-row requests on the 50k x 20 model), two simpler designs did worse:
 * handing a freed slot to the next waiting connection thread left the cores ~15% idle at every
 * hand-over (240-280 against 310-360 requests/s), and a sem_t, where any waiter may win, doubled
 * the p99 on top.
 */
struct s_job {
    const struct knn_http_route *route;
    void *ctx;
    const struct knn_http_request *req;
    struct knn_http_response *resp;
    pthread_cond_t done_cond;
    int done;
    struct s_job *next;
};

struct s_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct s_job *head, *tail; /* queued, oldest first */
    int stopping;
    size_t free; /* of the `threads` slots: a handler runs in one, on a worker or inline */
    size_t nthreads;
    pthread_t *threads;
};

static void *s_worker(void *arg)
{
    struct s_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!(p->head && p->free) && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        struct s_job *j = p->head;
        if (!j || !p->free)
            break; /* stopping: no connection thread is left to queue anything */
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->free--;
        pthread_mutex_unlock(&p->lock);
        j->route->handler(j->ctx, j->req, j->resp);
        pthread_mutex_lock(&p->lock);
        p->free++;
        j->done = 1;
        pthread_cond_signal(&j->done_cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/*
 * Run the handler within the `threads` limit: on this thread if a slot is free and nobody is
 * queued (no hand-over when the server is not busy), else queued for a worker.
 */
static void s_pool_run(struct s_pool *p, const struct knn_http_route *route, void *ctx,
                       const struct knn_http_request *req, struct knn_http_response *resp)
{
    pthread_mutex_lock(&p->lock);
    if (p->free && !p->head) {
        p->free--;
        pthread_mutex_unlock(&p->lock);
        route->handler(ctx, req, resp);
        pthread_mutex_lock(&p->lock);
        p->free++;
        if (p->head)
            pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    struct s_job j = {route, ctx, req, resp, PTHREAD_COND_INITIALIZER, 0, NULL};
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    pthread_cond_signal(&p->work);
    while (!j.done)
        pthread_cond_wait(&j.done_cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&j.done_cond);
}

static void s_pool_stop(struct s_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    knn_free(p->threads);
    p->threads = NULL;
    p->nthreads = 0;
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
}

static int s_pool_start(struct s_pool *p, size_t n)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    p->free = n;
    if (!(p->threads = knn_malloc_array(n, sizeof(pthread_t)))) {
        s_pool_stop(p);
        return KNN_ENOMEM;
    }
    for (; p->nthreads < n; p->nthreads++) {
        if (pthread_create(&p->threads[p->nthreads], NULL, s_worker, p) != 0) {
            s_pool_stop(p);
            return knn_error_set(KNN_EHTTP, "cannot start the search threads");
        }
    }
    return 0;
}

/*
 * Request counts for the INFO summary line, every `log_interval_s`: requests by status, rows, and
 * latency percentiles from a log-scale histogram (16 buckets per power of two of microseconds,
 * so a percentile is within 6%). /ping is counted apart and left out of the percentiles.
 */
#define S_LAT_BUCKETS (32 + 16 * 40)
#define S_STATUS_MAX 600

struct s_stats {
    pthread_mutex_t lock;
    uint64_t requests, pings, rows, dropped; /* dropped: ended without an answer (timeout, client gone) */
    uint32_t by_status[S_STATUS_MAX];
    uint32_t latency[S_LAT_BUCKETS];
};

static size_t s_lat_bucket(uint64_t us)
{
    if (us < 32)
        return (size_t)us;
    int e = 63 - __builtin_clzll(us); /* >= 5 */
    size_t b = 32 + (size_t)(e - 5) * 16 + (size_t)((us >> (e - 4)) & 15);
    return b < S_LAT_BUCKETS ? b : S_LAT_BUCKETS - 1;
}

/* The upper end of a bucket, in microseconds. */
static double s_lat_upper(size_t b)
{
    if (b < 32)
        return (double)b + 1;
    size_t e = 5 + (b - 32) / 16, m = (b - 32) % 16;
    return (double)((uint64_t)(17 + m) << (e - 4));
}

static double s_lat_percentile(const struct s_stats *st, uint64_t n, double q)
{
    uint64_t want = (uint64_t)(q * (double)n + 0.999999), seen = 0;
    for (size_t b = 0; b < S_LAT_BUCKETS; b++) {
        seen += st->latency[b];
        if (seen >= want && seen)
            return s_lat_upper(b);
    }
    return 0;
}

static void s_stats_add(struct s_stats *st, int ping, unsigned status, size_t rows, uint64_t us, int answered)
{
    pthread_mutex_lock(&st->lock);
    if (ping) {
        st->pings++;
    } else {
        st->requests++;
        st->rows += rows;
        if (!answered)
            st->dropped++;
        else if (status < S_STATUS_MAX)
            st->by_status[status]++;
        st->latency[s_lat_bucket(us)]++;
    }
    pthread_mutex_unlock(&st->lock);
}

/* One INFO line for what happened since the last one (nothing if no request came), then reset. */
static void s_stats_flush(struct s_stats *st, double seconds)
{
    char line[1024];
    size_t n = 0;
    pthread_mutex_lock(&st->lock);
    uint64_t requests = st->requests;
    if (requests) {
        n += (size_t)snprintf(line + n, sizeof(line) - n, "last %.0f s: %llu requests (", seconds,
                              (unsigned long long)requests);
        const char *sep = "";
        for (unsigned code = 100; code < S_STATUS_MAX && n < sizeof(line) - 64; code++) {
            if (st->by_status[code]) {
                n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%u: %u", sep, code, st->by_status[code]);
                sep = ", ";
            }
        }
        if (st->dropped)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%sunanswered: %llu", sep,
                                  (unsigned long long)st->dropped);
        snprintf(line + n, sizeof(line) - n, "), %llu rows, %.0f rows/s, p50 %.3f ms, p99 %.3f ms, %llu pings",
                 (unsigned long long)st->rows, seconds > 0 ? (double)st->rows / seconds : 0.0,
                 s_lat_percentile(st, requests, 0.50) / 1e3, s_lat_percentile(st, requests, 0.99) / 1e3,
                 (unsigned long long)st->pings);
    }
    st->requests = st->pings = st->rows = st->dropped = 0;
    memset(st->by_status, 0, sizeof(st->by_status));
    memset(st->latency, 0, sizeof(st->latency));
    pthread_mutex_unlock(&st->lock);
    if (requests)
        KNN_LOG(KNN_LOG_INFO, KNN_LS_HTTP, "%s", line);
}

struct knn_http_server {
    struct MHD_Daemon *daemon;
    struct knn_http_server_options opts;
    uint16_t port;
    int listen_fd;
    atomic_size_t in_flight; /* requests between their first callback and their completion */
    struct s_pool pool;      /* opts.threads workers running the handlers of `limited` routes */
    struct s_stats stats;
    pthread_t summary_thread; /* the INFO summary line every opts.log_interval_s */
    int summary_started;
    pthread_mutex_t summary_lock;
    pthread_cond_t summary_cond; /* on CLOCK_MONOTONIC */
    int summary_stop;
};

static void *s_summary_main(void *arg)
{
    struct knn_http_server *server = arg;
    uint64_t last = knn_clock_monotonic_ns();
    pthread_mutex_lock(&server->summary_lock);
    while (!server->summary_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)server->opts.log_interval_s;
        pthread_cond_timedwait(&server->summary_cond, &server->summary_lock, &ts);
        pthread_mutex_unlock(&server->summary_lock);
        s_stats_flush(&server->stats, knn_clock_seconds_since(last));
        last = knn_clock_monotonic_ns();
        pthread_mutex_lock(&server->summary_lock);
    }
    pthread_mutex_unlock(&server->summary_lock);
    return NULL;
}

static int s_summary_start(struct knn_http_server *server)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&server->summary_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&server->summary_lock, NULL);
    pthread_mutex_init(&server->stats.lock, NULL);
    if (!server->opts.log_interval_s)
        return 0;
    if (pthread_create(&server->summary_thread, NULL, s_summary_main, server) != 0)
        return knn_error_set(KNN_EHTTP, "cannot start the log summary thread");
    server->summary_started = 1;
    return 0;
}

/* Stop the summary thread; it writes a last line for the requests since the previous one. */
static void s_summary_stop(struct knn_http_server *server)
{
    if (server->summary_started) {
        pthread_mutex_lock(&server->summary_lock);
        server->summary_stop = 1;
        pthread_cond_signal(&server->summary_cond);
        pthread_mutex_unlock(&server->summary_lock);
        pthread_join(server->summary_thread, NULL);
    }
    pthread_cond_destroy(&server->summary_cond);
    pthread_mutex_destroy(&server->summary_lock);
    pthread_mutex_destroy(&server->stats.lock);
}

/* Per-request state, from the first access-handler call to the completion callback. */
struct s_request {
    uint64_t start_ns;
    const struct knn_http_route *route;
    struct knn_buf body;
    int rejected;             /* a response was queued before the body was read */
    int close;                /* the body cannot be delimited: close the connection after the answer */
    unsigned deferred_status; /* an error to answer once the body is in (the body is dropped) */
    char deferred_message[160];
    unsigned status;
    size_t rows;
    char method[8];
    char path[S_PATH_LOG_MAX + 1];
};

static const char *s_reason(unsigned status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Append `s` as the inside of a JSON string; bytes >= 0x80 and controls become \u00XX. */
static int s_append_json_escaped(struct knn_buf *out, const char *s)
{
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        if (*p == '"' || *p == '\\')
            rc = knn_buf_printf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            rc = knn_buf_printf(out, "\\u%04x", *p);
        else
            rc = knn_buf_append(out, p, 1);
    }
    return rc;
}

void knn_http_response_error(struct knn_http_response *resp, unsigned status, const char *message)
{
    resp->status = status;
    resp->content_type = "application/json";
    knn_buf_reset(&resp->body);
    int rc = knn_buf_printf(&resp->body, "{\"error\": \"%s\", \"message\": \"", s_reason(status));
    if (rc == 0)
        rc = s_append_json_escaped(&resp->body, message);
    if (rc == 0)
        rc = knn_buf_append_str(&resp->body, "\"}");
    if (rc) { /* out of memory: an empty body still carries the status */
        knn_buf_reset(&resp->body);
    }
}

static enum MHD_Result s_queue(struct MHD_Connection *conn, struct s_request *r, struct knn_http_response *resp)
{
    size_t len = resp->body.len;
    void *data = resp->body.data;
    resp->body.data = NULL;
    resp->body.len = resp->body.cap = 0;
    struct MHD_Response *mr = data ? MHD_create_response_from_buffer_with_free_callback(len, data, knn_free)
                                   : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!mr) {
        knn_free(data);
        return MHD_NO;
    }
    if (resp->content_type)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    if (r->close)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = resp->status;
    r->rows = resp->rows;
    enum MHD_Result ok = MHD_queue_response(conn, resp->status, mr);
    MHD_destroy_response(mr);
    return ok;
}

static enum MHD_Result s_queue_error(
    struct knn_http_server *server, struct MHD_Connection *conn, struct s_request *r, unsigned status,
    const char *message)
{
    struct knn_http_response resp = {200, "application/json", KNN_BUF_INIT(64u << 10), 0};
    knn_http_response_error(&resp, status, message);
    enum MHD_Result ok = s_queue(conn, r, &resp);
    knn_buf_clean_up(&resp.body);
    return ok;
}

/*
 * Refuse a request whose headers are in. A client that waits for "100 Continue" has not sent its
 * body: answer now. Others may be sending it already, and answering now would close the
 * connection under them (a reset can eat the answer), so their body is read, dropped, and the
 * error is the answer at its end.
 */
static enum MHD_Result s_reject(
    struct knn_http_server *server, struct MHD_Connection *conn, struct s_request *r, unsigned status,
    const char *message)
{
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    if (expect && strcasecmp(expect, "100-continue") == 0) {
        r->rejected = 1;
        return s_queue_error(server, conn, r, status, message);
    }
    r->deferred_status = status;
    snprintf(r->deferred_message, sizeof(r->deferred_message), "%s", message);
    return MHD_YES;
}

/* What the framing headers say, each occurrence counted (a smuggling attempt repeats them). */
struct s_framing {
    unsigned n_length, n_encoding;
    int length_bad;             /* a Content-Length that is not plain digits, or two that differ */
    unsigned long long length;  /* the first Content-Length's value */
    char encoding[40];          /* the first Transfer-Encoding's value (cut) */
};

static enum MHD_Result s_framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct s_framing *f = cls;
    if (!value)
        value = "";
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        const char *p = value;
        unsigned long long v = 0;
        int bad = !*p;
        for (; *p && !bad; p++) {
            if (*p < '0' || *p > '9' || v > (ULLONG_MAX - 9) / 10)
                bad = 1;
            else
                v = v * 10 + (unsigned long long)(*p - '0');
        }
        if (bad || (f->n_length && v != f->length))
            f->length_bad = 1;
        if (!f->n_length)
            f->length = v;
        f->n_length++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (!f->n_encoding)
            snprintf(f->encoding, sizeof(f->encoding), "%s", value);
        f->n_encoding++;
    }
    return MHD_YES;
}

/*
 * Refuse at once a request whose body framing is ambiguous or unsupported (RFC 9112 §6.3): a
 * Transfer-Encoding other than a single "chunked", Content-Length together with
 * Transfer-Encoding, or a Content-Length that is not one number. Behind a proxy, any of these
 * lets the two ends disagree on where a request ends (request smuggling); and the body cannot be
 * read, so the answer comes before it and the connection is closed. Returns 0 if the framing is
 * sound, else the status with `msg` set.
 */
static unsigned s_check_framing(struct MHD_Connection *conn, char *msg, size_t size)
{
    struct s_framing f;
    memset(&f, 0, sizeof(f));
    MHD_get_connection_values(conn, MHD_HEADER_KIND, s_framing_header, &f);
    if (f.n_encoding && f.n_length) {
        snprintf(msg, size, "the request has both Content-Length and Transfer-Encoding: send one of them");
        return 400;
    }
    if (f.n_encoding > 1 || (f.n_encoding && strcasecmp(f.encoding, "chunked") != 0)) {
        snprintf(msg, size, "Transfer-Encoding '%s' is not supported: send the body as is or chunked",
                 f.n_encoding > 1 ? "(several)" : f.encoding);
        return 400;
    }
    if (f.length_bad) {
        snprintf(msg, size, "Content-Length is not a single number of bytes");
        return 400;
    }
    return 0;
}

static void s_copy_path(char *dst, size_t size, const char *url)
{
    size_t n = strcspn(url, "?");
    if (n >= size)
        n = size - 1;
    memcpy(dst, url, n);
    dst[n] = '\0';
}

static enum MHD_Result s_access(
    void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
    const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct knn_http_server *server = cls;
    struct s_request *r = *con_cls;

    if (!r) { /* first call: headers are in */
        r = knn_calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->start_ns = knn_clock_monotonic_ns();
        knn_buf_init(&r->body, server->opts.max_body_bytes);
        snprintf(r->method, sizeof(r->method), "%s", method);
        s_copy_path(r->path, sizeof(r->path), url);
        *con_cls = r;
        atomic_fetch_add(&server->in_flight, 1);

        char msg[160];
        unsigned bad = s_check_framing(conn, msg, sizeof(msg));
        if (bad) {
            r->rejected = 1;
            r->close = 1;
            return s_queue_error(server, conn, r, bad, msg);
        }
        int path_known = 0;
        size_t url_len = strcspn(url, "?");
        for (size_t i = 0; i < server->opts.nroutes; i++) {
            const struct knn_http_route *rt = &server->opts.routes[i];
            if (strlen(rt->path) != url_len || strncmp(rt->path, url, url_len) != 0)
                continue;
            path_known = 1;
            if (strcmp(rt->method, method) == 0)
                r->route = rt;
        }
        if (!r->route) {
            snprintf(msg, sizeof(msg), path_known ? "method %s is not allowed on %s" : "no route for %s %s",
                     r->method, r->path);
            return s_reject(server, conn, r, path_known ? 405 : 404, msg);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (end != cl && v > server->opts.max_body_bytes) {
                snprintf(msg, sizeof(msg), "request body of %llu bytes is over the limit of %zu bytes", v,
                         server->opts.max_body_bytes);
                return s_reject(server, conn, r, 413, msg);
            }
        }
        return MHD_YES;
    }

    if (*upload_data_size) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->rejected)
            return MHD_YES;
        if (server->opts.request_timeout_s &&
            knn_clock_seconds_since(r->start_ns) > (double)server->opts.request_timeout_s) {
            KNN_LOG(KNN_LOG_WARN, KNN_LS_HTTP, "%s %s: body still arriving after %u s, closing", r->method, r->path,
                    server->opts.request_timeout_s);
            r->status = 408;
            return MHD_NO;
        }
        if (!r->deferred_status && knn_buf_append(&r->body, upload_data, n) != 0) {
            /* libmicrohttpd cannot answer in the middle of a body: drop it and answer at its end
             * (the request timeout bounds how long a client can keep sending). */
            r->deferred_status = 413;
            snprintf(r->deferred_message, sizeof(r->deferred_message),
                     "request body is over the limit of %zu bytes", server->opts.max_body_bytes);
            knn_buf_clean_up(&r->body);
        }
        return MHD_YES;
    }

    if (r->rejected)
        return MHD_YES; /* the response is queued already */
    if (r->deferred_status)
        return s_queue_error(server, conn, r, r->deferred_status, r->deferred_message);

    /* The whole request is in: run the handler. */
    struct knn_http_request req = {
        method, r->path, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
        r->body.data ? r->body.data : (const uint8_t *)"", r->body.len};
    struct knn_http_response resp = {200, "application/json", KNN_BUF_INIT(server->opts.max_response_bytes), 0};
    if (r->route->limited)
        s_pool_run(&server->pool, r->route, server->opts.ctx, &req, &resp);
    else
        r->route->handler(server->opts.ctx, &req, &resp);
    knn_buf_clean_up(&r->body); /* the request body is not needed any more */
    enum MHD_Result ok = s_queue(conn, r, &resp);
    knn_buf_clean_up(&resp.body);
    return ok;
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct knn_http_server *server = cls;
    struct s_request *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    double ms = knn_clock_seconds_since(r->start_ns) * 1e3;
    const char *how = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK         ? ""
                      : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED    ? " (timed out)"
                      : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT       ? " (client closed)"
                      : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN    ? " (server stopping)"
                      : toe == MHD_REQUEST_TERMINATED_READ_ERROR         ? " (read error)"
                                                                         : " (aborted)";
    /* A line per request only at DEBUG (under load INFO would write tens of MB a minute); INFO has
     * the summary every log_interval_s. */
    KNN_LOG(KNN_LOG_DEBUG, KNN_LS_HTTP, "%s %s %u rows=%zu %.3f ms%s", r->method, r->path, r->status, r->rows, ms,
            how);
    s_stats_add(&server->stats, strcmp(r->path, "/ping") == 0, r->status, r->rows, (uint64_t)(ms * 1e3),
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status);
    knn_buf_clean_up(&r->body);
    knn_free(r);
    atomic_fetch_sub(&server->in_flight, 1);
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    KNN_LOG(KNN_LOG_DEBUG, KNN_LS_HTTP, "libmicrohttpd: %s", line);
}

/*
 * The listening socket, made here rather than by libmicrohttpd so that a port in use is a clear
 * error. SO_REUSEADDR only lets a restarted server bind over connections in TIME_WAIT; there is
 * no SO_REUSEPORT, with which a second server on the same port would start too and the kernel
 * would split the requests between two models without a word.
 */
static int s_listen(int *out, const struct sockaddr_storage *ss, socklen_t sslen, const char *host, uint16_t port)
{
    *out = -1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return knn_error_set(KNN_EHTTP, "cannot create a socket for %s port %u: %s", host, port, strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, sslen) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return knn_error_set(KNN_EHTTP, "port %u on %s is already in use (is another server running there?)",
                                 port, host);
        return knn_error_set(KNN_EHTTP, "cannot listen on %s port %u: %s", host, port, strerror(e));
    }
    if (listen(fd, S_LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return knn_error_set(KNN_EHTTP, "cannot listen on %s port %u: %s", host, port, strerror(e));
    }
    *out = fd;
    return 0;
}

static int s_resolve(struct sockaddr_storage *ss, socklen_t *sslen, const char *host, uint16_t port)
{
    struct addrinfo hints, *res = NULL;
    char service[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%u", port);
    int g = getaddrinfo(host, service, &hints, &res);
    if (g != 0 || !res)
        return knn_error_set(KNN_EINVAL, "host '%s': %s", host, gai_strerror(g));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int knn_http_server_start(struct knn_http_server **out, const struct knn_http_server_options *opts)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int rc, listen_fd = -1;
    *out = NULL;
    struct knn_http_server *server = knn_calloc(1, sizeof(*server));
    if (!server)
        return KNN_ENOMEM;
    server->opts = *opts;
    size_t threads = opts->threads;
    if (!threads) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        threads = ncpu > 0 ? (size_t)ncpu : 1;
    }
    server->opts.threads = threads;
    if ((rc = s_summary_start(server)) != 0)
        goto on_error;
    rc = s_resolve(&ss, &sslen, opts->host ? opts->host : "0.0.0.0", opts->port);
    if (rc)
        goto on_error;
    if ((rc = s_listen(&listen_fd, &ss, sslen, opts->host ? opts->host : "0.0.0.0", opts->port)) != 0)
        goto on_error;
    if ((rc = s_pool_start(&server->pool, threads)) != 0)
        goto on_error;
    /* A thread per connection, not a pool of event loops: libmicrohttpd binds a connection to the
     * pool thread that accepted it, so two busy keep-alive connections could share one thread while
     * the other core idled (measured: 100-row requests on 2 connections ran at the speed of one).
     * The `pool` keeps the searches in flight to `threads`. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    server->daemon = MHD_start_daemon(
        flags, opts->port, NULL, NULL, s_access, server, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, server,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_CONNECTION_TIMEOUT, opts->idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, s_completed, server,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)S_MAX_CONNECTIONS, MHD_OPTION_END);
    if (!server->daemon) {
        s_pool_stop(&server->pool);
        rc = knn_error_set(KNN_EHTTP, "cannot start the HTTP server on %s port %u",
                           opts->host ? opts->host : "0.0.0.0", opts->port);
        goto on_error;
    }
    server->listen_fd = listen_fd;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    server->port = opts->port;
    if (getsockname(listen_fd, (struct sockaddr *)&bound, &blen) == 0)
        server->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                         : ((struct sockaddr_in *)&bound)->sin_port);
    *out = server;
    return 0;
on_error:
    if (listen_fd >= 0)
        close(listen_fd);
    s_summary_stop(server);
    knn_free(server);
    return rc;
}

uint16_t knn_http_server_port(const struct knn_http_server *server)
{
    return server->port;
}

void knn_http_server_stop(struct knn_http_server *server, unsigned drain_ms)
{
    if (!server)
        return;
    MHD_quiesce_daemon(server->daemon); /* stops accepting; the socket stays ours to close */
    uint64_t start = knn_clock_monotonic_ns();
    size_t n;
    while ((n = atomic_load(&server->in_flight)) > 0 && knn_clock_seconds_since(start) * 1e3 < drain_ms) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (n)
        KNN_LOG(KNN_LOG_WARN, KNN_LS_HTTP, "stopping with %zu requests still in flight after %u ms", n, drain_ms);
    MHD_stop_daemon(server->daemon);
    close(server->listen_fd);
    s_pool_stop(&server->pool); /* after MHD_stop_daemon: no connection thread can queue any more */
    s_summary_stop(server);
    knn_free(server);
}
