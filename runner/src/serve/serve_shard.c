/*
 * Sharded serving over the world (serve_shard.h). Messages, rank 0 <-> rank r (world.h's tagged
 * messages, host byte order: the ranks of one job run the same build):
 *
 *   HELLO  r -> 0   after loading: {status, message length, vectors held, bytes held} + message
 *   SEARCH 0 -> r   {seq, n, dim, nprobe, threads} + n * dim transformed queries (float32)
 *   RESULT r -> 0   {seq, status, message length} + n * k neighbours (part.h) or the message
 *   PING   0 -> r   {seq}; PONG r -> 0 {seq}: answered at once, even during a search (the search
 *                   runs on a thread of its own; the main thread keeps the world)
 *   STOP   0 -> r   the endpoint stopped: leave
 *   BYE    r -> 0   rank r got SIGTERM (mpirun signals the ranks one by one, waiting for each to
 *                   end): rank 0 drains as on its own SIGTERM, then sends STOP
 *
 * Rank 0 sends one SEARCH at a time (its searches use every core anyway) and searches its own
 * part meanwhile. No call ever waits for a peer without a bound: a rank that does not answer the
 * pings for S_LOST_MS is lost, and every waiting request fails with 503.
 */
#define _GNU_SOURCE /* sigtimedwait */
#include "serve/serve_shard.h"

#include "serve/serve_model.h"

#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/world/world.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { S_TAG_HELLO = 300, S_TAG_SEARCH, S_TAG_RESULT, S_TAG_PING, S_TAG_PONG, S_TAG_STOP, S_TAG_BYE };

#define S_PING_MS 500
#define S_LOST_MS 3000
#define S_ORPHAN_MS 10000
#define S_PING_RING 64
#define S_MSG 512

struct s_hello {
    int32_t status;
    uint32_t msg_len;
    uint64_t held, bytes;
};

struct s_search_hdr {
    uint64_t seq, n, dim, nprobe, threads;
};

struct s_result_hdr {
    uint64_t seq;
    int32_t status;
    uint32_t msg_len;
};

/* A batch an HTTP worker waits for. */
struct s_job {
    size_t n;
    const float *xt;
    struct knn_predict_options opts;
    struct knn_neighbour *all; /* size * n * k: part r's lists at r * n * k */
    int rc;
    char msg[S_MSG];
    int done;
    struct s_job *next;
};

/* A send in flight and the buffer it reads (freed once done). */
struct s_pending {
    struct knn_world_send *send;
    void *buf;
};

struct knn_serve_shard {
    struct knn_world *world;
    int rank, size;
    struct knn_model_part *part;
    uint64_t *held, *bytes; /* per rank (rank 0) */
    struct knn_serve_backend backend;

    /* the HTTP workers' queue (rank 0) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct s_job *head, *tail;
    _Atomic(const char *) lost; /* set once: why the endpoint cannot answer */
    char lost_msg[S_MSG];
    int lost_rank;              /* -1, or the rank that stopped answering */
    int bye;                    /* a rank got SIGTERM: stop as on rank 0's own */

    /* the dispatcher's health checks (rank 0's main thread only) */
    uint64_t ping_seq, ping_due_ns, sent_ns[S_PING_RING];
    uint64_t *answered;       /* per rank: the last ping answered */
    uint64_t *ping_buf;       /* per rank: the ping being sent */
    struct knn_world_send **ping_send;
    uint64_t search_seq;
};

static uint64_t s_now_ms(void)
{
    return knn_clock_monotonic_ns() / 1000000u;
}

static void s_nap(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* A stop signal if one is pending (never waits). */
static int s_signal(const sigset_t *set)
{
    struct timespec zero = {0, 0};
    siginfo_t info;
    int sig = sigtimedwait(set, &info, &zero);
    return sig > 0 ? sig : 0;
}

/* Test the sends in flight; drop the finished ones. */
static void s_pending_poll(struct knn_world *w, struct s_pending *p, size_t *n)
{
    for (size_t i = 0; i < *n;) {
        int done = 0;
        if (knn_world_send_test(w, p[i].send, &done) != 0 || done) {
            knn_free(p[i].buf);
            p[i] = p[--*n];
        } else {
            i++;
        }
    }
}

int knn_serve_shard_start(struct knn_serve_shard **out)
{
    *out = NULL;
    if (!knn_world_started_by_mpirun())
        return 0;
    struct knn_serve_shard *s = knn_calloc(1, sizeof(*s));
    if (!s)
        return knn_error_wrap(KNN_ENOMEM, "sharded serving");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->lost_rank = -1;
    int rc = knn_world_new(&s->world);
    if (rc) {
        s->world = NULL;
        knn_serve_shard_destroy(s);
        return rc;
    }
    s->rank = knn_world_rank(s->world);
    s->size = knn_world_size(s->world);
    size_t sz = (size_t)s->size;
    if (!(s->held = knn_calloc(sz, sizeof(uint64_t))) || !(s->bytes = knn_calloc(sz, sizeof(uint64_t))) ||
        !(s->answered = knn_calloc(sz, sizeof(uint64_t))) || !(s->ping_buf = knn_calloc(sz, sizeof(uint64_t))) ||
        !(s->ping_send = knn_calloc(sz, sizeof(*s->ping_send)))) {
        knn_serve_shard_destroy(s);
        return knn_error_wrap(KNN_ENOMEM, "sharded serving: %d ranks", s->size);
    }
    *out = s;
    return 0;
}

int knn_serve_shard_rank(const struct knn_serve_shard *s)
{
    return s->rank;
}

const struct knn_model *knn_serve_shard_model(const struct knn_serve_shard *s)
{
    return knn_model_part_model(s->part);
}

/* ---- loading ---- */

static int s_send_wait(struct knn_world *w, int dest, int tag, const void *buf, size_t len, uint64_t limit_ms)
{
    struct knn_world_send *send = NULL;
    int rc = knn_world_send_start(w, dest, tag, buf, len, &send), done = 0;
    uint64_t t0 = s_now_ms();
    while (rc == 0 && !(rc = knn_world_send_test(w, send, &done)) && !done) {
        if (s_now_ms() - t0 > limit_ms) {
            knn_world_send_abandon(w, send);
            return knn_error_set(KNN_ETIMEOUT, "rank %d did not take a message within %" PRIu64 " ms", dest,
                                 limit_ms);
        }
        s_nap(200);
    }
    return rc;
}

int knn_serve_shard_load(struct knn_serve_shard *s, const char *source, const sigset_t *stop_signals)
{
    int rc = knn_serve_model_load_part(&s->part, source, (size_t)s->rank, (size_t)s->size);
    if (s->rank != 0) {
        /* Tell rank 0 how it went (it also waits for the ranks that failed). */
        uint8_t buf[sizeof(struct s_hello) + S_MSG];
        struct s_hello h = {rc, 0, rc ? 0 : knn_model_part_held(s->part), rc ? 0 : knn_model_part_bytes(s->part)};
        if (rc) {
            h.msg_len = (uint32_t)snprintf((char *)buf + sizeof(h), S_MSG, "%s", knn_error_message());
            h.msg_len = h.msg_len < S_MSG ? h.msg_len : S_MSG - 1;
        }
        memcpy(buf, &h, sizeof(h));
        int src = s_send_wait(s->world, 0, S_TAG_HELLO, buf, sizeof(h) + h.msg_len, 60000);
        return rc ? rc : src;
    }
    if (rc)
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "algo-1: cannot load its part of the model: %s", knn_error_message());
    s->held[0] = rc ? 0 : knn_model_part_held(s->part);
    s->bytes[0] = rc ? 0 : knn_model_part_bytes(s->part);
    /* Every other rank's HELLO; the first failure is the job's. */
    char first[S_MSG] = "";
    int first_rc = rc;
    if (rc)
        snprintf(first, sizeof(first), "algo-1: %s", knn_error_message());
    for (int got = 1; got < s->size;) {
        int arrived = 0, from = -1;
        size_t len = 0;
        if (stop_signals && s_signal(stop_signals))
            return knn_error_set(KNN_ECANCELED, "stopped while the ranks were loading the model");
        if ((rc = knn_world_probe(s->world, -1, S_TAG_HELLO, &arrived, &from, &len)) != 0)
            return rc;
        if (!arrived) {
            s_nap(1000);
            continue;
        }
        uint8_t buf[sizeof(struct s_hello) + S_MSG];
        struct s_hello h;
        if (len < sizeof(h) || len > sizeof(buf))
            return knn_error_set(KNN_EFORMAT, "rank %d: a start-up message of %zu bytes", from, len);
        if ((rc = knn_world_recv_arrived(s->world, from, S_TAG_HELLO, buf, len)) != 0)
            return rc;
        memcpy(&h, buf, sizeof(h));
        if (h.msg_len != len - sizeof(h))
            return knn_error_set(KNN_EFORMAT, "rank %d: a start-up message of %zu bytes says %u", from, len, h.msg_len);
        s->held[from] = h.held;
        s->bytes[from] = h.bytes;
        if (h.status != 0) {
            KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "algo-%d: cannot load its part of the model: %.*s", from + 1,
                    (int)h.msg_len, (const char *)buf + sizeof(h));
            if (!first_rc) {
                first_rc = h.status;
                snprintf(first, sizeof(first), "algo-%d: %.*s", from + 1, (int)h.msg_len, (const char *)buf + sizeof(h));
            }
        }
        got++;
    }
    if (first_rc)
        return knn_error_set(first_rc, "%s", first);
    uint64_t total = 0;
    for (int r = 0; r < s->size; r++)
        total += s->held[r];
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "sharded over %d ranks (%s): %" PRIu64 " vectors of %zu", s->size,
            knn_world_library_version(s->world), total, knn_model_part_ntotal(s->part));
    for (int r = 0; r < s->size; r++)
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "  algo-%d (rank %d) holds %" PRIu64 " vectors, %" PRIu64 " bytes", r + 1, r,
                s->held[r], s->bytes[r]);
    return 0;
}

/* ---- the other ranks ---- */

struct s_worker {
    struct knn_serve_shard *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int has_job, job_done, quit;
    uint8_t *in;  /* the SEARCH message */
    uint8_t *out; /* the RESULT message */
    size_t out_len;
};

static void *s_search_thread(void *arg)
{
    struct s_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->has_job && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit)
            break;
        pthread_mutex_unlock(&w->mu);

        struct s_search_hdr h;
        memcpy(&h, w->in, sizeof(h));
        size_t k = knn_model_part_k(w->s->part), nk = (size_t)h.n * k;
        struct s_result_hdr r = {h.seq, 0, 0};
        struct knn_predict_options o = KNN_PREDICT_OPTIONS_INIT;
        o.nprobe = (size_t)h.nprobe;
        o.threads = (size_t)h.threads;
        uint8_t *out = knn_malloc(sizeof(r) + (nk ? nk * sizeof(struct knn_neighbour) : S_MSG));
        size_t out_len = sizeof(r);
        if (!out) {
            /* Nothing to answer with: rank 0 sees a short RESULT. */
            static struct s_result_hdr oom;
            oom = r;
            oom.status = KNN_ENOMEM;
            out = knn_malloc(sizeof(oom));
            if (out)
                memcpy(out, &oom, sizeof(oom));
        } else {
            int rc = knn_model_part_search(w->s->part, (size_t)h.n, (const float *)(w->in + sizeof(h)), &o,
                                           (struct knn_neighbour *)(out + sizeof(r)));
            if (rc) {
                r.status = rc;
                int m = snprintf((char *)out + sizeof(r), S_MSG, "%s", knn_error_message());
                r.msg_len = (uint32_t)(m < 0 ? 0 : m < S_MSG ? m : S_MSG - 1);
                out_len += r.msg_len;
            } else {
                out_len += nk * sizeof(struct knn_neighbour);
            }
            memcpy(out, &r, sizeof(r));
        }
        pthread_mutex_lock(&w->mu);
        knn_free(w->in);
        w->in = NULL;
        w->out = out;
        w->out_len = out ? out_len : 0;
        w->has_job = 0;
        w->job_done = 1;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int knn_serve_shard_work(struct knn_serve_shard *s, const sigset_t *stop_signals)
{
    struct s_worker w = {.s = s};
    struct s_pending pending[64];
    size_t npending = 0;
    pthread_t thread;
    int status = 0, lost_root = 0, signalled = 0;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (pthread_create(&thread, NULL, s_search_thread, &w) != 0) {
        KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "%s: cannot start its search thread", knn_world_host(s->world));
        return 1;
    }
    uint64_t heard = s_now_ms(), last_busy = heard;
    for (;;) {
        int busy = 0, arrived = 0, from = 0;
        size_t len = 0;
        int sig = s_signal(stop_signals);
        if (sig && !signalled) {
            /*
             * mpirun passes SIGTERM to the ranks one at a time, waiting for each to end: tell rank 0,
             * which drains its requests, and keep answering until it says STOP.
             */
            static const uint64_t bye = 1;
            signalled = 1;
            s_send_wait(s->world, 0, S_TAG_BYE, &bye, sizeof(bye), 2000);
            KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "%s: %s received, serving until rank 0 stops", knn_world_host(s->world),
                    sig == SIGTERM ? "SIGTERM" : "SIGINT");
        }
        if (knn_world_probe(s->world, 0, S_TAG_STOP, &arrived, &from, &len) == 0 && arrived) {
            uint64_t v;
            knn_world_recv_arrived(s->world, 0, S_TAG_STOP, &v, sizeof(v));
            break;
        }
        if (knn_world_probe(s->world, 0, S_TAG_PING, &arrived, &from, &len) == 0 && arrived && len == 8 &&
            npending < 64) {
            uint64_t *seq = knn_malloc(sizeof(uint64_t));
            if (seq && knn_world_recv_arrived(s->world, 0, S_TAG_PING, seq, 8) == 0 &&
                knn_world_send_start(s->world, 0, S_TAG_PONG, seq, 8, &pending[npending].send) == 0) {
                pending[npending++].buf = seq;
            } else {
                knn_free(seq);
            }
            heard = s_now_ms();
            busy = 1;
        }
        pthread_mutex_lock(&w.mu);
        int idle = !w.has_job && !w.job_done;
        pthread_mutex_unlock(&w.mu);
        if (idle && knn_world_probe(s->world, 0, S_TAG_SEARCH, &arrived, &from, &len) == 0 && arrived) {
            struct s_search_hdr h;
            uint8_t *in = len >= sizeof(h) ? knn_malloc(len) : NULL;
            if (in && knn_world_recv_arrived(s->world, 0, S_TAG_SEARCH, in, len) == 0) {
                memcpy(&h, in, sizeof(h));
                if (h.dim != knn_model_part_query_dim(s->part) || len != sizeof(h) + h.n * h.dim * sizeof(float)) {
                    KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "%s: a search message of %zu bytes does not hold %" PRIu64
                            " queries of %" PRIu64 " floats", knn_world_host(s->world), len, h.n, h.dim);
                    status = 1;
                    knn_free(in);
                    break;
                }
                pthread_mutex_lock(&w.mu);
                w.in = in;
                w.has_job = 1;
                pthread_cond_signal(&w.cv);
                pthread_mutex_unlock(&w.mu);
            } else {
                knn_free(in);
                KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "%s: cannot receive a search: %s", knn_world_host(s->world),
                        knn_error_message());
                status = 1;
                break;
            }
            heard = s_now_ms();
            busy = 1;
        }
        pthread_mutex_lock(&w.mu);
        if (w.job_done && npending < 64) {
            w.job_done = 0;
            if (w.out && knn_world_send_start(s->world, 0, S_TAG_RESULT, w.out, w.out_len, &pending[npending].send) == 0)
                pending[npending++].buf = w.out;
            else
                knn_free(w.out);
            w.out = NULL;
            busy = 1;
        }
        pthread_mutex_unlock(&w.mu);
        s_pending_poll(s->world, pending, &npending);
        if (s_now_ms() - heard > S_ORPHAN_MS) {
            KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "%s: rank 0 has been silent for %d s: stopping",
                    knn_world_host(s->world), S_ORPHAN_MS / 1000);
            lost_root = 1;
            status = 1;
            break;
        }
        if (busy)
            last_busy = s_now_ms();
        else
            s_nap(s_now_ms() - last_busy < 50 ? 200 : 1000); /* idle: few wake-ups on a shared machine */
    }
    pthread_mutex_lock(&w.mu);
    w.quit = 1;
    pthread_cond_signal(&w.cv);
    pthread_mutex_unlock(&w.mu);
    pthread_join(thread, NULL);
    knn_free(w.in);
    knn_free(w.out);
    /* Let the last answers leave (bounded), then meet the others in the world's final barrier. */
    for (uint64_t t0 = s_now_ms(); npending > 0 && s_now_ms() - t0 < 1000; s_nap(500))
        s_pending_poll(s->world, pending, &npending);
    for (size_t i = 0; i < npending; i++) {
        knn_world_send_abandon(s->world, pending[i].send);
        knn_free(pending[i].buf);
    }
    if (lost_root || npending > 0)
        atomic_store(&s->lost, "rank 0 lost");
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return status;
}

/* ---- rank 0: the dispatcher ---- */

static void s_mark_lost(struct knn_serve_shard *s, int rank, const char *why)
{
    if (atomic_load(&s->lost))
        return;
    snprintf(s->lost_msg, sizeof(s->lost_msg),
             "rank %d (algo-%d) of the %d ranks serving this model %s: the vectors it holds cannot be searched, so "
             "the endpoint cannot answer (restart the job)",
             rank, rank + 1, s->size, why);
    s->lost_rank = rank;
    atomic_store(&s->lost, s->lost_msg);
    KNN_LOG(KNN_LOG_ERROR, KNN_LS_JOB, "%s", s->lost_msg);
    /* Fail every waiting request at once. */
    pthread_mutex_lock(&s->mu);
    for (struct s_job *j = s->head; j; j = j->next) {
        j->rc = KNN_EIO;
        snprintf(j->msg, sizeof(j->msg), "%s", s->lost_msg);
        j->done = 1;
    }
    s->head = s->tail = NULL;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Pings due, pongs arrived, and the ranks that stopped answering. */
static void s_health(struct knn_serve_shard *s)
{
    uint64_t now = s_now_ms();
    int arrived, from;
    size_t len;
    while (knn_world_probe(s->world, -1, S_TAG_PONG, &arrived, &from, &len) == 0 && arrived) {
        uint64_t seq = 0;
        if (len != 8 || knn_world_recv_arrived(s->world, from, S_TAG_PONG, &seq, 8) != 0)
            break;
        if (seq > s->answered[from] && seq <= s->ping_seq)
            s->answered[from] = seq;
    }
    while (knn_world_probe(s->world, -1, S_TAG_BYE, &arrived, &from, &len) == 0 && arrived) {
        uint64_t v = 0;
        if (len != 8 || knn_world_recv_arrived(s->world, from, S_TAG_BYE, &v, 8) != 0)
            break;
        if (!s->bye)
            KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "algo-%d got SIGTERM: stopping the endpoint", from + 1);
        s->bye = 1;
    }
    if (atomic_load(&s->lost))
        return;
    if (now >= s->ping_due_ns) {
        s->ping_seq++;
        s->sent_ns[s->ping_seq % S_PING_RING] = now;
        for (int r = 1; r < s->size; r++) {
            int done = 1;
            if (s->ping_send[r] && knn_world_send_test(s->world, s->ping_send[r], &done) == 0 && done)
                s->ping_send[r] = NULL;
            if (s->ping_send[r])
                continue; /* the last ping has not even left: the lost check below decides */
            s->ping_buf[r] = s->ping_seq;
            if (knn_world_send_start(s->world, r, S_TAG_PING, &s->ping_buf[r], 8, &s->ping_send[r]) != 0)
                s->ping_send[r] = NULL;
        }
        s->ping_due_ns = now + S_PING_MS;
    }
    for (int r = 1; r < s->size; r++) {
        uint64_t oldest = s->answered[r] + 1;
        if (oldest <= s->ping_seq && s->ping_seq - oldest < S_PING_RING && now - s->sent_ns[oldest % S_PING_RING] > S_LOST_MS) {
            char why[96];
            snprintf(why, sizeof(why), "has not answered for %.1f s",
                     (double)(now - s->sent_ns[oldest % S_PING_RING]) / 1000.0);
            s_mark_lost(s, r, why);
            return;
        }
    }
}

/* One batch through every rank; the job's all[] gets every part's lists. */
static void s_run(struct knn_serve_shard *s, struct s_job *job)
{
    size_t k = knn_model_part_k(s->part), dim = knn_model_part_query_dim(s->part), n = job->n;
    size_t part_bytes = n * k * sizeof(struct knn_neighbour);
    struct s_search_hdr h = {++s->search_seq, n, dim, job->opts.nprobe, job->opts.threads};
    size_t len = sizeof(h) + n * dim * sizeof(float);
    uint8_t *msg = knn_malloc(len), *in = knn_malloc(sizeof(struct s_result_hdr) + (part_bytes > S_MSG ? part_bytes : S_MSG));
    struct knn_world_send **sends = knn_calloc((size_t)s->size, sizeof(*sends));
    uint8_t *got = knn_calloc((size_t)s->size, 1);
    int rc = 0;
    if (!msg || !in || !sends || !got) {
        rc = knn_error_wrap(KNN_ENOMEM, "sharded search of %zu queries", n);
        goto done;
    }
    if (len > KNN_WORLD_MAX_CHUNK_BYTES || sizeof(struct s_result_hdr) + part_bytes > KNN_WORLD_MAX_CHUNK_BYTES) {
        rc = knn_error_set(KNN_ETOOBIG, "sharded search: %zu queries are more than one message holds", n);
        goto done;
    }
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), job->xt, n * dim * sizeof(float));
    for (int r = 1; r < s->size && rc == 0; r++)
        rc = knn_world_send_start(s->world, r, S_TAG_SEARCH, msg, len, &sends[r]);
    if (rc)
        goto done;
    if ((rc = knn_model_part_search(s->part, n, job->xt, &job->opts, job->all)) != 0) {
        knn_error_wrap(rc, "algo-1");
        goto done;
    }
    for (int left = s->size - 1; left > 0 && rc == 0;) {
        int busy = 0;
        s_health(s);
        if (atomic_load(&s->lost)) {
            rc = knn_error_set(KNN_EIO, "%s", s->lost_msg);
            break;
        }
        for (int r = 1; r < s->size; r++) {
            int done = 0;
            if (sends[r] && knn_world_send_test(s->world, sends[r], &done) == 0 && done)
                sends[r] = NULL;
        }
        int arrived = 0, from = -1;
        size_t mlen = 0;
        if ((rc = knn_world_probe(s->world, -1, S_TAG_RESULT, &arrived, &from, &mlen)) != 0 || !arrived) {
            if (!rc)
                s_nap(100);
            continue;
        }
        struct s_result_hdr rh;
        if (mlen < sizeof(rh) || mlen > sizeof(rh) + (part_bytes > S_MSG ? part_bytes : S_MSG)) {
            rc = knn_error_set(KNN_EFORMAT, "algo-%d: an answer of %zu bytes to %zu queries", from + 1, mlen, n);
            break;
        }
        if ((rc = knn_world_recv_arrived(s->world, from, S_TAG_RESULT, in, mlen)) != 0)
            break;
        memcpy(&rh, in, sizeof(rh));
        busy = 1;
        if (rh.seq < h.seq)
            continue; /* the late answer to a search that failed */
        if (rh.seq != h.seq || got[from]) {
            rc = knn_error_set(KNN_EINTERNAL, "algo-%d answered search %" PRIu64 " during search %" PRIu64, from + 1,
                               rh.seq, h.seq);
            break;
        }
        if (rh.status != 0) {
            rc = knn_error_set(rh.status, "algo-%d: %.*s", from + 1, (int)(mlen - sizeof(rh)), (const char *)in + sizeof(rh));
            break;
        }
        if (mlen != sizeof(rh) + part_bytes) {
            rc = knn_error_set(KNN_EFORMAT, "algo-%d: an answer of %zu bytes to %zu queries", from + 1, mlen, n);
            break;
        }
        memcpy((uint8_t *)job->all + (size_t)from * part_bytes, in + sizeof(rh), part_bytes);
        got[from] = 1;
        left--;
        (void)busy;
    }
    /* A failed search can leave answers on their way: they are for an old seq and dropped by the next search. */
    for (int r = 1; r < s->size; r++) {
        for (uint64_t t0 = s_now_ms(); sends[r] && !atomic_load(&s->lost) && s_now_ms() - t0 < S_LOST_MS;) {
            int done = 0;
            if (knn_world_send_test(s->world, sends[r], &done) != 0 || done)
                sends[r] = NULL;
            else
                s_health(s), s_nap(100);
        }
        if (sends[r])
            knn_world_send_abandon(s->world, sends[r]); /* the rank is lost: msg is freed below, never read */
    }
done:
    if (rc)
        snprintf(job->msg, sizeof(job->msg), "%s", knn_error_message());
    job->rc = rc;
    knn_free(msg);
    knn_free(in);
    knn_free(sends);
    knn_free(got);
}

int knn_serve_shard_dispatch(struct knn_serve_shard *s, const sigset_t *stop_signals, const atomic_int *until)
{
    for (;;) {
        int sig = stop_signals ? s_signal(stop_signals) : 0;
        if (sig)
            return sig;
        if (stop_signals && s->bye)
            return SIGTERM;
        if (until && atomic_load(until))
            return 0;
        s_health(s);
        pthread_mutex_lock(&s->mu);
        struct s_job *job = s->head;
        if (job) {
            s->head = job->next;
            if (!s->head)
                s->tail = NULL;
        } else {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += 5 * 1000 * 1000;
            if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
        }
        pthread_mutex_unlock(&s->mu);
        if (!job)
            continue;
        s_run(s, job);
        pthread_mutex_lock(&s->mu);
        job->done = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- the backend the HTTP workers call (any thread but the dispatcher) ---- */

static const char *s_unavailable(void *ctx)
{
    struct knn_serve_shard *s = ctx;
    return atomic_load(&s->lost);
}

static int s_predict(void *ctx, size_t n, const float *x, const struct knn_predict_options *o,
                     struct knn_predictions *out)
{
    struct knn_serve_shard *s = ctx;
    size_t k = knn_model_part_k(s->part), dim = knn_model_part_query_dim(s->part);
    const struct knn_model_config *cfg = knn_model_part_config(s->part);
    struct s_job job;
    struct knn_neighbour *merged = NULL;
    float *xt = knn_malloc_array(n ? n : 1, dim * sizeof(float));
    int rc;
    memset(&job, 0, sizeof(job));
    memset(out, 0, sizeof(*out));
    job.all = knn_malloc_array(n ? n * (size_t)s->size : 1, k * sizeof(struct knn_neighbour));
    merged = knn_malloc_array(n ? n : 1, k * sizeof(struct knn_neighbour));
    if (!xt || !job.all || !merged) {
        rc = knn_error_wrap(KNN_ENOMEM, "predict: %zu queries over %d ranks", n, s->size);
        goto done;
    }
    if ((rc = knn_model_part_transform(s->part, n, x, xt)) != 0)
        goto done;
    if (n == 0) {
        rc = knn_model_part_predict(s->part, 0, merged, o, out);
        goto done;
    }
    job.n = n;
    job.xt = xt;
    job.opts = *o;
    /* One batch at a time goes through the ranks: each searches it with all its cores. */
    job.opts.threads = 0;
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->lost)) {
        pthread_mutex_unlock(&s->mu);
        rc = knn_error_set(KNN_EIO, "%s", atomic_load(&s->lost));
        goto done;
    }
    if (s->tail)
        s->tail->next = &job;
    else
        s->head = &job;
    s->tail = &job;
    pthread_cond_broadcast(&s->cv);
    while (!job.done)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (job.rc) {
        rc = knn_error_set(job.rc, "%s", job.msg);
        goto done;
    }
    if ((rc = knn_neighbours_merge(job.all, (size_t)s->size, n, k, cfg->metric != KNN_MODEL_METRIC_L2, merged)) != 0 ||
        (rc = knn_model_part_predict(s->part, n, merged, o, out)) != 0)
        goto done;
done:
    knn_free(xt);
    knn_free(job.all);
    knn_free(merged);
    return rc;
}

static int s_describe(void *ctx, struct knn_buf *out)
{
    struct knn_serve_shard *s = ctx;
    int rc = knn_buf_printf(out, ", \"KnnRunnerWorld\": {\"Size\": %d, \"Vectors\": %zu, \"Ranks\": [", s->size,
                            knn_model_part_ntotal(s->part));
    for (int r = 0; r < s->size && rc == 0; r++)
        rc = knn_buf_printf(out, "%s{\"Rank\": %d, \"Host\": \"algo-%d\", \"Vectors\": %" PRIu64 ", \"Bytes\": %" PRIu64 "}",
                            r ? ", " : "", r, r + 1, s->held[r], s->bytes[r]);
    if (rc == 0)
        rc = knn_buf_printf(out, "], \"Available\": %s}", atomic_load(&s->lost) ? "false" : "true");
    return rc;
}

const struct knn_serve_backend *knn_serve_shard_backend(struct knn_serve_shard *s)
{
    s->backend.predict = s_predict;
    s->backend.unavailable = s_unavailable;
    s->backend.describe = s_describe;
    s->backend.ctx = s;
    return &s->backend;
}

void knn_serve_shard_destroy(struct knn_serve_shard *s)
{
    if (!s)
        return;
    int lost = atomic_load(&s->lost) != NULL;
    if (s->world && s->rank == 0 && s->size > 1) {
        /* STOP to every rank still there, then the world's final barrier (skipped once a rank is lost). */
        static const uint64_t stop = 0;
        for (int r = 1; r < s->size; r++) {
            if (s->ping_send && s->ping_send[r])
                knn_world_send_abandon(s->world, s->ping_send[r]);
            if (r != s->lost_rank && s_send_wait(s->world, r, S_TAG_STOP, &stop, sizeof(stop), 2000) != 0)
                lost = 1;
        }
    }
    if (s->world) {
        if (lost)
            knn_world_destroy_lost(s->world);
        else
            knn_world_destroy(s->world);
    }
    knn_model_part_destroy(s->part);
    knn_free(s->held);
    knn_free(s->bytes);
    knn_free(s->answered);
    knn_free(s->ping_buf);
    knn_free(s->ping_send);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    knn_free(s);
}
