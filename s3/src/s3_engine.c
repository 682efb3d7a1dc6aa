/* The engine: a background thread that runs many S3 requests at once on one transport session
 * (curl multi), each with its own retries and backoff. Readers (ranged GETs into buffers) and
 * uploads (UploadPart from buffers) submit jobs and wait for them. */
#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "s3_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct knn_s3__engine {
    struct knn_s3_client *client;
    struct knn_s3_http_session *session;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct knn_s3__job *queue; /* QUEUED and BACKOFF jobs, in submission order */
    struct knn_s3__job **running;
    struct knn_s3__job **to_start; /* scratch of the thread */
    int running_count;
    int max_running;
    int stop;
};

void knn__s3_job_init(struct knn_s3__job *job)
{
    memset(job, 0, sizeof(*job));
    knn__s3_prepared_init(&job->prep);
    knn__s3_response_init(&job->resp, 0);
}

void knn__s3_job_clean_up(struct knn_s3__job *job)
{
    knn__s3_prepared_clean_up(&job->prep);
    knn__s3_response_clean_up(&job->resp);
}

/* ---- the GET-into-a-buffer sink ---- */

static int s_job_check(struct knn_s3__job *j, const struct knn_s3__response *r)
{
    char uri[1200];
    knn__s3_request_uri(uri, sizeof(uri), &j->req);
    uint64_t from = j->range_start + j->received;
    if (j->whole_object && j->received == 0) {
        if (r->status != 200 || r->content_length < 0 || (uint64_t)r->content_length != j->dst_len)
            return knn_error_set(
                KNN_ES3_CHANGED,
                "GetObject %s: expected %llu bytes, got HTTP %ld with Content-Length "
                "%lld (the object changed?)",
                uri, (unsigned long long)j->dst_len, r->status, (long long)r->content_length);
    } else {
        uint64_t a, b, t;
        if (r->status != 206 || knn__s3_parse_content_range(r->content_range, &a, &b, &t) != 0 || a != from ||
            b != j->range_start + j->dst_len - 1)
            return knn_error_set(
                KNN_EFORMAT,
                "GetObject %s: asked for bytes %llu-%llu, got HTTP %ld with "
                "Content-Range '%s'",
                uri, (unsigned long long)from, (unsigned long long)(j->range_start + j->dst_len - 1), r->status,
                r->content_range);
        if (t != UINT64_MAX && t != j->object_size)
            return knn_error_set(
                KNN_ES3_CHANGED, "GetObject %s: the object is %llu bytes now, %llu before: it changed", uri,
                (unsigned long long)t, (unsigned long long)j->object_size);
    }
    if (j->if_match && r->etag[0] && strcmp(j->if_match, r->etag) != 0)
        return knn_error_set(
            KNN_ES3_CHANGED, "GetObject %s: the object changed while it was read (ETag %s, then %s)", uri, j->if_match,
            r->etag);
    j->checked = 1;
    return 0;
}

static int s_job_sink(void *user, const struct knn_s3__response *r, const uint8_t *data, size_t len)
{
    struct knn_s3__job *j = user;
    int rc;
    if (!j->checked && (rc = s_job_check(j, r)))
        return rc;
    if (len > j->dst_len - j->received)
        return knn_error_set(KNN_EFORMAT, "GetObject s3://%s/%s: more bytes than asked for", j->req.bucket, j->req.key);
    if (!j->to_fd) {
        memcpy(j->dst + j->received, data, len);
        j->received += len;
        return 0;
    }
    while (len > 0) {
        ssize_t n = pwrite(j->fd, data, len, (off_t)(j->range_start + j->received));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return knn_error_set(
                KNN_EIO, "GetObject s3://%s/%s: writing at offset %llu: %s", j->req.bucket, j->req.key,
                (unsigned long long)(j->range_start + j->received), strerror(errno));
        data += n;
        len -= (size_t)n;
        j->received += (uint64_t)n;
    }
    return 0;
}

/* ---- attempts (engine thread only) ---- */

static void s_fail(struct knn_s3__job *j, int rc)
{
    j->rc = rc;
    snprintf(j->message, sizeof(j->message), "%s", knn_error_message()[0] ? knn_error_message() : knn_error_str(rc));
}

/* The client's cancel hook fired (cheap: engine jobs are never clean-up requests). */
static int s_cancelled(struct knn_s3__engine *e)
{
    struct knn_s3_client *c = e->client;
    return c->cancel && (atomic_load(&c->cancel_ns) || c->cancel(c->cancel_user));
}

/* Prepare and start the next attempt of `j`; on failure the job is finished with the error. */
static int s_start_attempt(struct knn_s3__engine *e, struct knn_s3__job *j)
{
    int rc;
    if ((rc = knn__s3_check_cancel(e->client, &j->req))) {
        s_fail(j, rc);
        return rc;
    }
    j->attempt++;
    j->checked = 0;
    j->req.header_count = j->base_headers;
    if ((j->dst || j->to_fd) && !(j->whole_object && j->received == 0)) {
        snprintf(
            j->range_header, sizeof(j->range_header), "bytes=%llu-%llu",
            (unsigned long long)(j->range_start + j->received), (unsigned long long)(j->range_start + j->dst_len - 1));
        j->req.headers[j->req.header_count++] = (struct knn_s3_kv){"range", j->range_header};
    }
    if (j->if_match)
        j->req.headers[j->req.header_count++] = (struct knn_s3_kv){"if-match", j->if_match};
    knn__s3_response_reset(&j->resp);
    if ((rc = knn__s3_prepare(&j->prep, e->client, &j->req))) {
        s_fail(j, rc);
        return rc;
    }
    j->ctx.resp = &j->resp;
    j->ctx.sink = j->dst || j->to_fd ? s_job_sink : NULL;
    j->ctx.sink_user = j;
    knn__s3_exchange_setup(&j->x, &j->ctx, e->client, &j->req, &j->prep);
    if ((rc = e->session->transport->vtable->start(e->session, &j->x))) {
        s_fail(j, rc);
        return rc;
    }
    return 0;
}

/* An attempt completed: decide DONE or BACKOFF (engine thread, lock not held). */
static void s_attempt_done(struct knn_s3__engine *e, struct knn_s3__job *j)
{
    int code = 0;
    struct knn_s3_http_exchange *x = &j->x;
    knn__s3_exchange_finish(x, &j->resp);
    if (x->result == 0 && j->resp.status >= 200 && j->resp.status < 300 && (j->dst || j->to_fd)) {
        if (!j->checked && j->dst_len > 0) {
            int rc = s_job_check(j, &j->resp);
            if (rc) {
                s_fail(j, rc);
                j->state = KNN_S3__JOB_DONE;
                return;
            }
        }
        if (j->received != j->dst_len) {
            x->result = KNN_ETRUNCATED;
            x->net_retryable = 1;
            snprintf(
                x->error, sizeof(x->error), "%llu of %llu bytes", (unsigned long long)j->received,
                (unsigned long long)j->dst_len);
        }
    }
    enum knn_s3__verdict v = knn__s3_classify(&code, e->client, &j->req, x, &j->resp, j->attempt);
    if (v == KNN_S3__OK) {
        j->rc = 0;
        j->state = KNN_S3__JOB_DONE;
        return;
    }
    knn__s3_note_skew(e->client, &j->resp);
    if (v == KNN_S3__FAIL) {
        s_fail(j, code);
        j->state = KNN_S3__JOB_DONE;
        return;
    }
    int wait = knn__s3_backoff_ms(e->client, j->attempt + 1);
    knn__s3_note_retry(e->client, &j->req, x, &j->resp, wait);
    j->not_before_ns = knn_clock_monotonic_ns() + (uint64_t)wait * 1000000u;
    j->state = KNN_S3__JOB_BACKOFF;
}

static void s_queue_append(struct knn_s3__engine *e, struct knn_s3__job *j)
{
    j->next = NULL;
    struct knn_s3__job **p = &e->queue;
    while (*p)
        p = &(*p)->next;
    *p = j;
}

static void s_running_remove(struct knn_s3__engine *e, struct knn_s3__job *j)
{
    for (int i = 0; i < e->running_count; i++) {
        if (e->running[i] == j) {
            e->running[i] = e->running[--e->running_count];
            return;
        }
    }
}

static void *s_thread(void *arg)
{
    struct knn_s3__engine *e = arg;
    const struct knn_s3_transport_vtable *vt = e->session->transport->vtable;
    struct knn_s3__job **to_start = e->to_start;
    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        /* Pick the ready jobs to start, in order, within the concurrency limit. */
        uint64_t now = knn_clock_monotonic_ns();
        int cancelled = s_cancelled(e); /* then waiting jobs start at once, and fail */
        uint64_t next_wake = now + (e->client->cancel ? KNN_S3__CANCEL_POLL_MS : 1000u) * 1000000u;
        int n_start = 0;
        struct knn_s3__job **p = &e->queue;
        while (*p && e->running_count + n_start < e->max_running) {
            struct knn_s3__job *j = *p;
            if (!cancelled && j->state == KNN_S3__JOB_BACKOFF && j->not_before_ns > now) {
                if (j->not_before_ns < next_wake)
                    next_wake = j->not_before_ns;
                p = &j->next;
                continue;
            }
            *p = j->next;
            j->state = KNN_S3__JOB_RUNNING;
            to_start[n_start++] = j;
        }
        for (struct knn_s3__job *j = e->queue; j; j = j->next)
            if (j->state == KNN_S3__JOB_BACKOFF && j->not_before_ns < next_wake)
                next_wake = j->not_before_ns;
        pthread_mutex_unlock(&e->lock);

        int finished = 0;
        for (int i = 0; i < n_start; i++) {
            struct knn_s3__job *j = to_start[i];
            if (s_start_attempt(e, j) != 0) {
                j->state = KNN_S3__JOB_DONE;
                finished = 1;
                to_start[i] = NULL;
            }
        }
        pthread_mutex_lock(&e->lock);
        for (int i = 0; i < n_start; i++)
            if (to_start[i])
                e->running[e->running_count++] = to_start[i];
        if (finished)
            pthread_cond_broadcast(&e->cond);
        if (e->stop)
            break;
        pthread_mutex_unlock(&e->lock);

        /* Run the transfers until one completes or the next backoff ends. */
        now = knn_clock_monotonic_ns();
        int timeout_ms = next_wake > now ? (int)((next_wake - now) / 1000000u) + 1 : 0;
        struct knn_s3_http_exchange *done = NULL;
        int rc = vt->poll(e->session, timeout_ms, &done);
        if (!rc && !done && s_cancelled(e)) {
            /* Stop what runs now, whatever the network does; each job fails with the cancel message. */
            pthread_mutex_lock(&e->lock);
            for (int i = 0; i < e->running_count; i++) {
                struct knn_s3__job *j = e->running[i];
                vt->cancel(e->session, &j->x);
                s_fail(j, knn__s3_check_cancel(e->client, &j->req));
                j->state = KNN_S3__JOB_DONE;
            }
            e->running_count = 0;
            pthread_cond_broadcast(&e->cond);
            continue;
        }
        pthread_mutex_lock(&e->lock);
        if (rc) { /* the transport itself broke: fail everything that runs */
            for (int i = 0; i < e->running_count; i++) {
                struct knn_s3__job *j = e->running[i];
                vt->cancel(e->session, &j->x);
                s_fail(j, rc);
                j->state = KNN_S3__JOB_DONE;
            }
            e->running_count = 0;
            pthread_cond_broadcast(&e->cond);
            continue;
        }
        while (done) {
            struct knn_s3__job *j = done->user ? ((struct knn_s3__exchange_ctx *)done->user)->sink_user : NULL;
            /* sink_user is the job for every engine exchange (see s_start_attempt). */
            s_running_remove(e, j);
            pthread_mutex_unlock(&e->lock);
            s_attempt_done(e, j);
            pthread_mutex_lock(&e->lock);
            if (j->state == KNN_S3__JOB_BACKOFF)
                s_queue_append(e, j);
            else
                pthread_cond_broadcast(&e->cond);
            pthread_mutex_unlock(&e->lock);
            done = NULL;
            rc = vt->poll(e->session, 0, &done);
            pthread_mutex_lock(&e->lock);
            if (rc)
                break;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int knn__s3_engine_new(struct knn_s3__engine **out, struct knn_s3_client *client, int max_running)
{
    int rc;
    struct knn_s3__engine *e = knn_calloc(1, sizeof(*e));
    *out = NULL;
    if (!e)
        return KNN_ENOMEM;
    e->client = client;
    e->max_running = max_running > 0 ? max_running : 1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    if (!(e->running = knn_calloc((size_t)e->max_running, sizeof(*e->running))) ||
        !(e->to_start = knn_calloc((size_t)e->max_running, sizeof(*e->to_start)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if ((rc = client->transport->vtable->session_new(client->transport, &e->session)))
        goto on_error;
    if (pthread_create(&e->thread, NULL, s_thread, e) != 0) {
        rc = knn_error_set(KNN_EINTERNAL, "cannot start the S3 I/O thread");
        goto on_error;
    }
    e->started = 1;
    *out = e;
    return 0;
on_error:
    knn__s3_engine_destroy(e);
    return rc;
}

int knn__s3_engine_submit(struct knn_s3__engine *e, struct knn_s3__job *j)
{
    j->state = KNN_S3__JOB_QUEUED;
    j->attempt = 0;
    j->received = 0;
    j->rc = 0;
    j->message[0] = '\0';
    j->base_headers = j->req.header_count;
    if (j->base_headers + 2 > KNN_S3__MAX_HEADERS)
        return knn_error_set(KNN_EINTERNAL, "too many headers on an engine job");
    pthread_mutex_lock(&e->lock);
    s_queue_append(e, j);
    pthread_mutex_unlock(&e->lock);
    e->session->transport->vtable->wakeup(e->session);
    return 0;
}

int knn__s3_engine_wait(struct knn_s3__engine *e, struct knn_s3__job *j)
{
    pthread_mutex_lock(&e->lock);
    while (j->state != KNN_S3__JOB_DONE && j->state != KNN_S3__JOB_IDLE)
        pthread_cond_wait(&e->cond, &e->lock);
    int rc = j->rc;
    pthread_mutex_unlock(&e->lock);
    if (rc)
        knn_error_set(rc, "%s", j->message);
    return rc;
}

void knn__s3_engine_destroy(struct knn_s3__engine *e)
{
    if (!e)
        return;
    if (e->started) {
        pthread_mutex_lock(&e->lock);
        e->stop = 1;
        pthread_mutex_unlock(&e->lock);
        e->session->transport->vtable->wakeup(e->session);
        pthread_join(e->thread, NULL);
    }
    if (e->session) {
        for (int i = 0; i < e->running_count; i++)
            e->session->transport->vtable->cancel(e->session, &e->running[i]->x);
        e->session->transport->vtable->session_destroy(e->session);
    }
    knn_free(e->running);
    knn_free(e->to_start);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    knn_free(e);
}
