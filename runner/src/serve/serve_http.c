#include "serve/serve_http.h"

#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_PATH_LOG_MAX 96
#define S_LISTEN_BACKLOG 4096
/* Connections at most, whatever RLIMIT_NOFILE allows; and descriptors kept for everything else. */
#define S_MAX_CONNECTIONS_CAP 65536
#define S_FD_RESERVE 64
/* libmicrohttpd's memory per connection (request line, headers, its read and write buffers):
 * headers larger than about this get 431. */
#define S_CONNECTION_MEMORY (32u << 10)
/* How often the housekeeping thread checks the request deadlines. */
#define S_TICK_MS 100

struct s_request;

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

/*
 * Connections, for the request deadline. libmicrohttpd restarts its idle timeout on every byte,
 * so a client sending a header byte every few seconds would hold its connection forever; the
 * housekeeping thread shuts down (shutdown(2): libmicrohttpd then closes it as a client gone) a
 * connection that has not completed a request request_timeout_s after it opened or after its
 * previous answer. A connection whose request is with the workers or whose answer is being sent
 * is `busy`: the idle timeout covers a client that stops reading.
 */
struct s_conn {
    struct s_conn *prev, *next;
    int fd;
    _Atomic uint64_t since_ns; /* when it started waiting for its current request */
    atomic_int busy;
    int cut; /* shut down by the deadline (under the list lock) */
};

struct s_conns {
    pthread_mutex_t lock;
    struct s_conn *head;
    size_t n;
};

/*
 * Requests of `limited` routes wait here for the workers, oldest first. A worker takes the oldest;
 * if its route has a batch handler, also the requests of the same route queued behind it (up to
 * batch_max_requests), after waiting up to batch_wait_us for more to arrive.
 */
struct s_worker {
    struct s_pool *pool;
    struct s_request **batch;    /* batch_max */
    struct knn_http_job *jobs;   /* batch_max */
    pthread_t thread;
};

struct s_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;    /* a request was queued, or stopping */
    struct s_request *head, *tail;
    size_t queued, max_queue;
    size_t batch_max;
    unsigned batch_wait_us;
    int stopping;
    size_t nthreads;
    struct s_worker *workers;
    struct knn_http_server *server;
};

struct knn_http_server {
    struct MHD_Daemon *daemon;
    struct knn_http_server_options opts;
    uint16_t port;
    int listen_fd;
    atomic_size_t in_flight; /* requests between their first callback and their completion */
    atomic_size_t budget_used; /* bytes of bodies buffered and answers not yet sent */
    struct s_pool pool;
    struct s_conns conns;
    struct s_stats stats;
    pthread_t house_thread; /* request deadlines, and the INFO summary every opts.log_interval_s */
    int house_started;
    pthread_mutex_t house_lock;
    pthread_cond_t house_cond; /* on CLOCK_MONOTONIC */
    int house_stop;
};

/* Per-request state, from the first access-handler call to the completion callback. */
struct s_request {
    uint64_t start_ns;
    const struct knn_http_route *route;
    struct MHD_Connection *conn;
    struct s_conn *c;         /* its connection's deadline record (NULL if unknown) */
    struct knn_buf body;
    size_t reserved;          /* budget bytes held for the body */
    int rejected;             /* a response was queued before the body was read */
    int close;                /* close the connection after the answer */
    unsigned deferred_status; /* an error to answer once the body is in (the body is dropped) */
    char deferred_message[192];
    unsigned status;
    size_t rows;
    char method[8];
    char path[S_PATH_LOG_MAX + 1];
    /* with the workers: */
    int queued;
    atomic_int done; /* the worker has filled resp */
    struct knn_http_request req;
    struct knn_http_response resp;
    struct s_request *next;
};

/* Take n bytes of the global budget; 0 if they do not fit. */
static int s_budget_take(struct knn_http_server *server, size_t n)
{
    size_t used = atomic_load(&server->budget_used);
    do {
        if (n > server->opts.budget_bytes || used > server->opts.budget_bytes - n)
            return 0;
    } while (!atomic_compare_exchange_weak(&server->budget_used, &used, used + n));
    return 1;
}

static void s_budget_give(struct knn_http_server *server, size_t n)
{
    atomic_fetch_sub(&server->budget_used, n);
}

static void s_run_batch(struct s_pool *p, struct s_request **batch, struct knn_http_job *jobs, size_t n)
{
    const struct knn_http_route *route = batch[0]->route;
    void *ctx = p->server->opts.ctx;
    if (route->batch) {
        for (size_t i = 0; i < n; i++) {
            jobs[i].req = &batch[i]->req;
            jobs[i].resp = &batch[i]->resp;
        }
        route->batch(ctx, jobs, n);
    } else {
        for (size_t i = 0; i < n; i++)
            route->handler(ctx, &batch[i]->req, &batch[i]->resp);
    }
    for (size_t i = 0; i < n; i++) {
        struct s_request *r = batch[i];
        atomic_store(&r->done, 1);
        MHD_resume_connection(r->conn); /* the event thread then queues r->resp */
    }
}

/* Move up to `max` requests of `route` from the head of the queue into batch[*n...]. */
static void s_take(struct s_pool *p, struct s_request **batch, size_t *n, size_t max)
{
    while (*n < max && p->head && (*n == 0 || (batch[0]->route->batch && p->head->route == batch[0]->route))) {
        struct s_request *r = p->head;
        p->head = r->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        batch[(*n)++] = r;
    }
}

static void *s_worker_main(void *arg)
{
    struct s_worker *w = arg;
    struct s_pool *p = w->pool;
    struct s_request **batch = w->batch;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        if (!p->head)
            break; /* stopping, and nothing left: requests still arriving get 503 */
        size_t n = 0, max = p->batch_max;
        s_take(p, batch, &n, max);
        if (n < max && batch[0]->route->batch && p->batch_wait_us && !p->stopping) {
            /* Wait a little for more requests to fill the batch (bounded: batch_wait_us). */
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)p->batch_wait_us * 1000u;
            until.tv_sec += (time_t)(ns / 1000000000u);
            until.tv_nsec = (long)(ns % 1000000000u);
            while (n < max && !p->stopping && pthread_cond_timedwait(&p->work, &p->lock, &until) == 0)
                s_take(p, batch, &n, max);
            s_take(p, batch, &n, max);
        }
        if (p->head)
            pthread_cond_signal(&p->work); /* more for another worker */
        pthread_mutex_unlock(&p->lock);
        s_run_batch(p, batch, w->jobs, n);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/*
 * Suspend the request's connection and queue it for the workers; 0 (nothing done) if the queue is
 * full or the server is stopping. Suspended before it is queued: a worker may answer (and resume)
 * at once.
 */
static int s_pool_push(struct s_pool *p, struct s_request *r)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopping || p->queued >= p->max_queue) {
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    MHD_suspend_connection(r->conn);
    r->queued = 1;
    r->next = NULL;
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    p->queued++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return 1;
}

/* Stop the workers once the queue is empty (they answer what is queued first). */
static void s_pool_stop(struct s_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->workers[i].thread, NULL);
    if (p->workers) {
        for (size_t i = 0; i < p->server->opts.threads; i++) {
            knn_free(p->workers[i].batch);
            knn_free(p->workers[i].jobs);
        }
    }
    knn_free(p->workers);
    p->workers = NULL;
    p->nthreads = 0;
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
}

static int s_pool_start(struct s_pool *p, struct knn_http_server *server)
{
    const struct knn_http_server_options *o = &server->opts;
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, &ca);
    pthread_condattr_destroy(&ca);
    p->server = server;
    p->max_queue = o->max_queue ? o->max_queue : 1;
    p->batch_max = o->batch_max_requests ? o->batch_max_requests : 1;
    p->batch_wait_us = o->batch_wait_us;
    if (!(p->workers = knn_calloc(o->threads, sizeof(*p->workers)))) {
        s_pool_stop(p);
        return KNN_ENOMEM;
    }
    for (size_t i = 0; i < o->threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].batch = knn_malloc_array(p->batch_max, sizeof(*p->workers[i].batch));
        p->workers[i].jobs = knn_malloc_array(p->batch_max, sizeof(*p->workers[i].jobs));
        if (!p->workers[i].batch || !p->workers[i].jobs) {
            s_pool_stop(p);
            return KNN_ENOMEM;
        }
    }
    for (; p->nthreads < o->threads; p->nthreads++) {
        if (pthread_create(&p->workers[p->nthreads].thread, NULL, s_worker_main, &p->workers[p->nthreads]) != 0) {
            s_pool_stop(p);
            return knn_error_set(KNN_EHTTP, "cannot start the search threads");
        }
    }
    return 0;
}
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

/* ---- connections and the housekeeping thread ---- */

static void s_notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                                enum MHD_ConnectionNotificationCode code)
{
    struct knn_http_server *server = cls;
    struct s_conns *cs = &server->conns;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct s_conn *c = knn_calloc(1, sizeof(*c));
        *socket_context = c;
        if (!c || !info)
            return; /* no deadline for this one: the idle timeout still applies */
        c->fd = info->connect_fd;
        atomic_store(&c->since_ns, knn_clock_monotonic_ns());
        pthread_mutex_lock(&cs->lock);
        c->next = cs->head;
        if (cs->head)
            cs->head->prev = c;
        cs->head = c;
        cs->n++;
        pthread_mutex_unlock(&cs->lock);
        return;
    }
    /* Closed: libmicrohttpd closes the socket after this returns, so under the lock the
     * housekeeping thread never shuts down a descriptor that was closed (and maybe reused). */
    struct s_conn *c = *socket_context;
    *socket_context = NULL;
    if (!c)
        return;
    if (c->fd) {
        pthread_mutex_lock(&cs->lock);
        if (c->prev)
            c->prev->next = c->next;
        else if (cs->head == c)
            cs->head = c->next;
        if (c->next)
            c->next->prev = c->prev;
        cs->n--;
        pthread_mutex_unlock(&cs->lock);
    }
    knn_free(c);
}

/* Shut down the connections whose request is not complete within request_timeout_s. */
static void s_enforce_deadlines(struct knn_http_server *server)
{
    if (!server->opts.request_timeout_s)
        return;
    uint64_t now = knn_clock_monotonic_ns(), limit = (uint64_t)server->opts.request_timeout_s * 1000000000u;
    size_t cut = 0;
    pthread_mutex_lock(&server->conns.lock);
    for (struct s_conn *c = server->conns.head; c; c = c->next) {
        if (c->cut || atomic_load(&c->busy))
            continue;
        uint64_t since = atomic_load(&c->since_ns);
        if (now > since && now - since > limit) {
            shutdown(c->fd, SHUT_RDWR);
            c->cut = 1;
            cut++;
        }
    }
    pthread_mutex_unlock(&server->conns.lock);
    if (cut)
        KNN_LOG(KNN_LOG_DEBUG, KNN_LS_HTTP, "closed %zu connections without a complete request after %u s", cut,
                server->opts.request_timeout_s);
}

static void *s_house_main(void *arg)
{
    struct knn_http_server *server = arg;
    uint64_t last = knn_clock_monotonic_ns();
    pthread_mutex_lock(&server->house_lock);
    while (!server->house_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + S_TICK_MS * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&server->house_cond, &server->house_lock, &ts);
        pthread_mutex_unlock(&server->house_lock);
        s_enforce_deadlines(server);
        double since = knn_clock_seconds_since(last);
        if (server->opts.log_interval_s && since >= (double)server->opts.log_interval_s) {
            s_stats_flush(&server->stats, since);
            last = knn_clock_monotonic_ns();
        }
        pthread_mutex_lock(&server->house_lock);
    }
    pthread_mutex_unlock(&server->house_lock);
    if (server->opts.log_interval_s)
        s_stats_flush(&server->stats, knn_clock_seconds_since(last)); /* the requests since the last line */
    return NULL;
}

static int s_house_start(struct knn_http_server *server)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&server->house_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&server->house_lock, NULL);
    pthread_mutex_init(&server->stats.lock, NULL);
    pthread_mutex_init(&server->conns.lock, NULL);
    if (pthread_create(&server->house_thread, NULL, s_house_main, server) != 0)
        return knn_error_set(KNN_EHTTP, "cannot start the housekeeping thread");
    server->house_started = 1;
    return 0;
}

static void s_house_stop(struct knn_http_server *server)
{
    if (server->house_started) {
        pthread_mutex_lock(&server->house_lock);
        server->house_stop = 1;
        pthread_cond_signal(&server->house_cond);
        pthread_mutex_unlock(&server->house_lock);
        pthread_join(server->house_thread, NULL);
    }
    pthread_cond_destroy(&server->house_cond);
    pthread_mutex_destroy(&server->house_lock);
    pthread_mutex_destroy(&server->stats.lock);
    pthread_mutex_destroy(&server->conns.lock);
}

/* ---- answers ---- */

struct s_answer {
    struct knn_http_server *server;
    void *data;
    size_t charged; /* budget bytes held until libmicrohttpd is done with it */
};

static void s_answer_free(void *cls)
{
    struct s_answer *a = cls;
    s_budget_give(a->server, a->charged);
    knn_free(a->data);
    knn_free(a);
}

/*
 * Queue resp as the answer. Its body is handed to libmicrohttpd, which sends it from our buffer
 * as the socket drains, and is charged to the budget until then (a client that never reads holds
 * it until the idle timeout).
 */
static enum MHD_Result s_queue(
    struct knn_http_server *server, struct MHD_Connection *conn, struct s_request *r, struct knn_http_response *resp)
{
    size_t len = resp->body.len;
    void *data = resp->body.data;
    struct MHD_Response *mr = NULL;
    resp->body.data = NULL;
    resp->body.len = resp->body.cap = 0;
    if (data) {
        struct s_answer *a = knn_malloc(sizeof(*a));
        if (!a) {
            knn_free(data);
            return MHD_NO;
        }
        a->server = server;
        a->data = data;
        a->charged = len;
        atomic_fetch_add(&server->budget_used, len); /* answers are made already: charged, never refused */
        mr = MHD_create_response_from_buffer_with_free_callback_cls(len, data, s_answer_free, a);
        if (!mr) {
            s_answer_free(a);
            return MHD_NO;
        }
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!mr)
            return MHD_NO;
    }
    if (resp->content_type)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    if (resp->status == 503)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->close)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = resp->status;
    r->rows = resp->rows;
    if (r->c)
        atomic_store(&r->c->busy, 1); /* answered: the deadline is met */
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
    enum MHD_Result ok = s_queue(server, conn, r, &resp);
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

static void s_release_body(struct knn_http_server *server, struct s_request *r)
{
    knn_buf_clean_up(&r->body);
    s_budget_give(server, r->reserved);
    r->reserved = 0;
}

/* The capacity knn_buf_reserve gives a buffer of capacity `cap` that must hold `need` bytes and a NUL. */
static size_t s_buf_cap_for(size_t cap, size_t need, size_t max)
{
    if (need + 1 <= cap)
        return cap;
    size_t c = cap ? cap : 256;
    while (c < need + 1)
        c = c > SIZE_MAX / 2 ? need + 1 : c * 2;
    return c > max + 1 ? max + 1 : c;
}

/* Make room for `need` bytes of body, charging the growth to the budget first; 0 if over it. */
static int s_body_room(struct knn_http_server *server, struct s_request *r, size_t need)
{
    size_t cap = s_buf_cap_for(r->body.cap, need, server->opts.max_body_bytes);
    if (cap > r->reserved) {
        if (!s_budget_take(server, cap - r->reserved))
            return 0;
        r->reserved = cap;
    }
    return knn_buf_reserve(&r->body, need - r->body.len) == 0;
}

static void s_defer_busy(struct knn_http_server *server, struct s_request *r)
{
    r->deferred_status = 503;
    snprintf(r->deferred_message, sizeof(r->deferred_message),
             "the server is busy (request bodies and answers over its memory budget of %zu bytes): retry later",
             server->opts.budget_bytes);
    s_release_body(server, r);
}

/* Append a piece of the body, within the body cap and the budget. */
static void s_take_body(struct knn_http_server *server, struct s_request *r, const char *data, size_t n)
{
    if (n > server->opts.max_body_bytes - r->body.len) {
        /* libmicrohttpd cannot answer in the middle of a body: drop it and answer at its end
         * (the request deadline bounds how long a client can keep sending). */
        r->deferred_status = 413;
        snprintf(r->deferred_message, sizeof(r->deferred_message), "request body is over the limit of %zu bytes",
                 server->opts.max_body_bytes);
        s_release_body(server, r);
        return;
    }
    if (!s_body_room(server, r, r->body.len + n)) {
        s_defer_busy(server, r);
        return;
    }
    knn_buf_append(&r->body, data, n);
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

/* ---- the request's life ---- */

static struct s_conn *s_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct s_conn *c = info ? info->socket_context : NULL;
    return c && c->fd ? c : NULL;
}

/* The headers are in: route, framing, size and budget checks. */
static enum MHD_Result s_headers_in(
    struct knn_http_server *server, struct MHD_Connection *conn, struct s_request *r, const char *url,
    const char *method)
{
    char msg[192];
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
        snprintf(msg, sizeof(msg), path_known ? "method %s is not allowed on %s" : "no route for %s %s", r->method,
                 r->path);
        return s_reject(server, conn, r, path_known ? 405 : 404, msg);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        unsigned long long v = strtoull(cl, NULL, 10); /* digits only: s_check_framing */
        if (v > server->opts.max_body_bytes) {
            snprintf(msg, sizeof(msg), "request body of %llu bytes is over the limit of %zu bytes", v,
                     server->opts.max_body_bytes);
            return s_reject(server, conn, r, 413, msg);
        }
        /* The whole body is charged now: a request that does not fit waits for nothing. */
        if (v && !s_body_room(server, r, (size_t)v)) {
            s_release_body(server, r);
            snprintf(msg, sizeof(msg),
                     "the server is busy (request bodies and answers over its memory budget of %zu bytes): retry later",
                     server->opts.budget_bytes);
            return s_reject(server, conn, r, 503, msg);
        }
    }
    return MHD_YES;
}

/* The whole request is in: answer it here (routes not limited) or queue it for the workers. */
static enum MHD_Result s_request_in(
    struct knn_http_server *server, struct MHD_Connection *conn, struct s_request *r, const char *method)
{
    struct knn_http_request req = {
        method,
        r->path,
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Amzn-SageMaker-Custom-Attributes"),
        r->body.data ? r->body.data : (const uint8_t *)"",
        r->body.len,
    };
    struct knn_http_response init = {200, "application/json", KNN_BUF_INIT(server->opts.max_response_bytes), 0};
    r->req = req;
    r->resp = init;
    if (!r->route->limited) {
        r->route->handler(server->opts.ctx, &r->req, &r->resp);
        s_release_body(server, r);
        enum MHD_Result ok = s_queue(server, conn, r, &r->resp);
        knn_buf_clean_up(&r->resp.body);
        return ok;
    }
    if (r->c)
        atomic_store(&r->c->busy, 1); /* complete: the deadline is met */
    if (s_pool_push(&server->pool, r))
        return MHD_YES;
    s_release_body(server, r);
    return s_queue_error(server, conn, r, 503,
                         "the server is busy (its queue of requests waiting for a search is full): retry later");
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
        r->conn = conn;
        r->c = s_conn_of(conn);
        knn_buf_init(&r->body, server->opts.max_body_bytes);
        snprintf(r->method, sizeof(r->method), "%s", method);
        s_copy_path(r->path, sizeof(r->path), url);
        *con_cls = r;
        atomic_fetch_add(&server->in_flight, 1);
        return s_headers_in(server, conn, r, url, method);
    }

    if (*upload_data_size) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!r->rejected && !r->deferred_status)
            s_take_body(server, r, upload_data, n);
        return MHD_YES;
    }

    if (r->rejected)
        return MHD_YES; /* the response is queued already */
    if (r->queued) { /* resumed: the worker has answered */
        if (!atomic_load(&r->done))
            return MHD_YES; /* not yet (a spurious call) */
        r->queued = 0;
        s_release_body(server, r);
        enum MHD_Result ok = s_queue(server, conn, r, &r->resp);
        knn_buf_clean_up(&r->resp.body);
        return ok;
    }
    if (r->deferred_status)
        return s_queue_error(server, conn, r, r->deferred_status, r->deferred_message);
    return s_request_in(server, conn, r, method);
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
    struct s_conn *c = s_conn_of(conn);
    if (c) { /* waiting for its next request from now on */
        atomic_store(&c->since_ns, knn_clock_monotonic_ns());
        atomic_store(&c->busy, 0);
    }
    s_release_body(server, r);
    knn_buf_clean_up(&r->resp.body);
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

/* Connections the descriptor limit allows: raise the soft limit to the hard one, keep a reserve. */
static size_t s_connection_limit(size_t wanted)
{
    struct rlimit rl;
    size_t fit = S_MAX_CONNECTIONS_CAP;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY)
            fit = rl.rlim_cur > S_FD_RESERVE + 16 ? (size_t)rl.rlim_cur - S_FD_RESERVE : 16;
    }
    if (fit > S_MAX_CONNECTIONS_CAP)
        fit = S_MAX_CONNECTIONS_CAP;
    if (wanted && wanted > fit) {
        KNN_LOG(KNN_LOG_WARN, KNN_LS_HTTP,
                "at most %zu connections instead of %zu: the open-files limit (ulimit -n) allows no more", fit, wanted);
        return fit;
    }
    return wanted ? wanted : fit;
}

int knn_http_server_start(struct knn_http_server **out, const struct knn_http_server_options *opts)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int rc, listen_fd = -1;
    const char *host = opts->host ? opts->host : "0.0.0.0";
    *out = NULL;
    struct knn_http_server *server = knn_calloc(1, sizeof(*server));
    if (!server)
        return KNN_ENOMEM;
    server->opts = *opts;
    if (!server->opts.threads) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        server->opts.threads = ncpu > 0 ? (size_t)ncpu : 1;
    }
    server->opts.max_connections = s_connection_limit(opts->max_connections);
    if ((rc = s_house_start(server)) != 0)
        goto on_error;
    if ((rc = s_resolve(&ss, &sslen, host, opts->port)) != 0)
        goto on_error;
    if ((rc = s_listen(&listen_fd, &ss, sslen, host, opts->port)) != 0)
        goto on_error;
    if ((rc = s_pool_start(&server->pool, server)) != 0)
        goto on_error;
    /*
     * One event thread (epoll) for every connection's I/O; the searches run on the pool. (A
     * thread per connection capped the connections at 512 and made /ping fail beyond; a
     * libmicrohttpd thread pool binds a connection to one event thread, so two busy connections
     * could share it while a core idled. Here no event thread runs a search.)
     */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    server->daemon = MHD_start_daemon(
        flags, opts->port, NULL, NULL, s_access, server, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, server,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd, MHD_OPTION_CONNECTION_TIMEOUT, opts->idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, server, MHD_OPTION_NOTIFY_CONNECTION, s_notify_connection, server,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)server->opts.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)opts->max_per_client, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_CONNECTION_MEMORY,
        MHD_OPTION_END);
    if (!server->daemon) {
        s_pool_stop(&server->pool);
        rc = knn_error_set(KNN_EHTTP, "cannot start the HTTP server on %s port %u", host, opts->port);
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
    s_house_stop(server);
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
    /* The workers answer what is queued and stop (later requests get 503), so that no connection
     * is left suspended when libmicrohttpd stops. */
    s_pool_stop(&server->pool);
    MHD_stop_daemon(server->daemon);
    close(server->listen_fd);
    s_house_stop(server);
    knn_free(server);
}
