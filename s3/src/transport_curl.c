/* The HTTP transport on libcurl: a session is one curl multi handle running many exchanges. */
#include "curl_init.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "s3_impl.h"

#include <curl/curl.h>
#include <string.h>

#define S_FREE_HANDLES 16

/* Per-exchange state. */
struct s_xfer {
    CURL *easy;
    struct curl_slist *headers;
    struct knn_s3_http_exchange *x;
    size_t read_off;
    int body_rc; /* code returned by on_body or on_header */
    char errbuf[CURL_ERROR_SIZE];
    struct s_xfer *prev, *next; /* the session's active list */
};

struct s_session {
    CURLM *multi;
    struct s_xfer *active;
    CURL *free_handles[S_FREE_HANDLES];
    int free_count;
    struct knn_s3_http_exchange **done; /* completed, not yet returned by poll */
    size_t done_count;
    size_t done_cap;
};

static size_t s_on_write(char *data, size_t size, size_t n, void *user)
{
    struct s_xfer *t = user;
    size_t len = size * n;
    if (t->x->on_body) {
        int rc = t->x->on_body(t->x->user, (const uint8_t *)data, len);
        if (rc) {
            t->body_rc = rc;
            return 0; /* abort the transfer */
        }
    }
    return len;
}

static size_t s_on_header(char *data, size_t size, size_t n, void *user)
{
    struct s_xfer *t = user;
    size_t len = size * n;
    if (t->x->on_header) {
        int rc = t->x->on_header(t->x->user, data, len);
        if (rc) {
            t->body_rc = rc;
            return 0;
        }
    }
    return len;
}

static size_t s_on_read(char *buf, size_t size, size_t n, void *user)
{
    struct s_xfer *t = user;
    size_t room = size * n;
    size_t left = t->x->body_len - t->read_off;
    size_t k = left < room ? left : room;
    if (k)
        memcpy(buf, t->x->body + t->read_off, k);
    t->read_off += k;
    t->x->bytes_sent = t->read_off;
    return k;
}

/* Rewinding the request body, when curl resends it (e.g. on a reused connection that closed). */
static int s_on_seek(void *user, curl_off_t offset, int origin)
{
    struct s_xfer *t = user;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > t->x->body_len)
        return CURL_SEEKFUNC_FAIL;
    t->read_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void s_set_result(struct s_xfer *t, CURLcode cc)
{
    struct knn_s3_http_exchange *x = t->x;
    x->net_retryable = 0;
    x->unreachable = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY;
    x->error[0] = '\0';
    if (cc == CURLE_OK) {
        x->result = 0;
        return;
    }
    if ((cc == CURLE_WRITE_ERROR || cc == CURLE_ABORTED_BY_CALLBACK) && t->body_rc) {
        x->result = t->body_rc;
        snprintf(x->error, sizeof(x->error), "stopped by the receiver");
        return;
    }
    const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(cc);
    switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
            x->result = KNN_ETIMEOUT;
            x->net_retryable = 1;
            break;
        case CURLE_PARTIAL_FILE:
            x->result = KNN_ETRUNCATED;
            x->net_retryable = 1;
            break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_READ_ERROR:
        case CURLE_SEND_FAIL_REWIND:
            x->result = KNN_ES3_NET;
            x->net_retryable = 1;
            break;
        default: /* DNS failures, TLS verification, bad URLs: retrying will not help */
            x->result = KNN_ES3_NET;
            break;
    }
    snprintf(x->error, sizeof(x->error), "%.200s (curl %d)", detail, (int)cc);
    /* Drop a trailing newline curl sometimes leaves in errbuf. */
    size_t n = strlen(x->error);
    while (n && (x->error[n - 1] == '\n' || x->error[n - 1] == '\r'))
        x->error[--n] = '\0';
}

static int s_session_new(const struct knn_s3_transport *transport, struct knn_s3_http_session **out)
{
    int rc = knn__s3_curl_global_init();
    if (rc)
        return rc;
    struct knn_s3_http_session *s = knn_calloc(1, sizeof(*s));
    struct s_session *impl = knn_calloc(1, sizeof(*impl));
    if (!s || !impl) {
        knn_free(s);
        knn_free(impl);
        return KNN_ENOMEM;
    }
    if (!(impl->multi = curl_multi_init())) {
        knn_free(s);
        knn_free(impl);
        return knn_error_set(KNN_ENOMEM, "curl_multi_init failed");
    }
    s->transport = transport;
    s->impl = impl;
    *out = s;
    return 0;
}

static void s_xfer_free(struct s_session *impl, struct s_xfer *t)
{
    if (!t)
        return;
    curl_multi_remove_handle(impl->multi, t->easy);
    if (t->prev)
        t->prev->next = t->next;
    else
        impl->active = t->next;
    if (t->next)
        t->next->prev = t->prev;
    curl_slist_free_all(t->headers);
    if (impl->free_count < S_FREE_HANDLES) {
        curl_easy_reset(t->easy);
        impl->free_handles[impl->free_count++] = t->easy;
    } else {
        curl_easy_cleanup(t->easy);
    }
    t->x->transport_data = NULL;
    knn_free(t);
}

static void s_session_destroy(struct knn_s3_http_session *s)
{
    if (!s)
        return;
    struct s_session *impl = s->impl;
    /* Remove whatever is still attached (cancelled exchanges were removed already). */
    while (impl->active)
        s_xfer_free(impl, impl->active);
    for (int i = 0; i < impl->free_count; i++)
        curl_easy_cleanup(impl->free_handles[i]);
    curl_multi_cleanup(impl->multi);
    knn_free(impl->done);
    knn_free(impl);
    knn_free(s);
}

static int s_start(struct knn_s3_http_session *s, struct knn_s3_http_exchange *x)
{
    struct s_session *impl = s->impl;
    struct s_xfer *t = knn_calloc(1, sizeof(*t));
    if (!t)
        return KNN_ENOMEM;
    t->x = x;
    x->result = 0;
    x->error[0] = '\0';
    x->bytes_sent = 0;
    t->easy = impl->free_count ? impl->free_handles[--impl->free_count] : curl_easy_init();
    if (!t->easy) {
        knn_free(t);
        return knn_error_set(KNN_ENOMEM, "curl_easy_init failed");
    }
    CURL *h = t->easy;
    for (size_t i = 0; i < x->header_count; i++) {
        struct curl_slist *next = curl_slist_append(t->headers, x->headers[i]);
        if (!next)
            goto oom;
        t->headers = next;
    }
    /* No "Expect: 100-continue" round trip, no Accept we did not ask for. */
    static const char *const extra[] = {"Expect:", "Accept:"};
    for (size_t i = 0; i < 2; i++) {
        struct curl_slist *next = curl_slist_append(t->headers, extra[i]);
        if (!next)
            goto oom;
        t->headers = next;
    }
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)t);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* keys like "a/../b" are sent as they are */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    if (x->connect_timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)x->connect_timeout_ms);
    if (x->stall_timeout_ms > 0) {
        long secs = (x->stall_timeout_ms + 999) / 1000;
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, secs);
    }
    if (x->ca_bundle)
        curl_easy_setopt(h, CURLOPT_CAINFO, x->ca_bundle);

    if (strcmp(x->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(x->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(x->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, s_on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, t);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, s_on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, t);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body_len);
    } else if (strcmp(x->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body ? (const char *)x->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
    }
    CURLMcode mc = curl_multi_add_handle(impl->multi, h);
    if (mc != CURLM_OK) {
        curl_slist_free_all(t->headers);
        curl_easy_cleanup(h);
        knn_free(t);
        return knn_error_set(KNN_EINTERNAL, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    x->transport_data = t;
    t->next = impl->active;
    if (impl->active)
        impl->active->prev = t;
    impl->active = t;
    return 0;

oom:
    curl_slist_free_all(t->headers);
    curl_easy_cleanup(h);
    knn_free(t);
    return KNN_ENOMEM;
}

/* Move finished transfers to the done queue. */
static int s_harvest(struct s_session *impl)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(impl->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct s_xfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        struct knn_s3_http_exchange *x = t->x;
        s_set_result(t, msg->data.result);
        if (impl->done_count == impl->done_cap) {
            size_t cap = impl->done_cap ? impl->done_cap * 2 : 16;
            void *p = knn_realloc_array(impl->done, cap, sizeof(*impl->done));
            if (!p)
                return KNN_ENOMEM;
            impl->done = p;
            impl->done_cap = cap;
        }
        impl->done[impl->done_count++] = x;
        s_xfer_free(impl, t);
    }
    return 0;
}

static int s_pop_done(struct s_session *impl, struct knn_s3_http_exchange **done)
{
    if (!impl->done_count)
        return 0;
    *done = impl->done[0];
    memmove(impl->done, impl->done + 1, (impl->done_count - 1) * sizeof(*impl->done));
    impl->done_count--;
    return 1;
}

static int s_poll(struct knn_s3_http_session *s, int timeout_ms, struct knn_s3_http_exchange **done)
{
    struct s_session *impl = s->impl;
    int running, rc;
    *done = NULL;
    if (s_pop_done(impl, done))
        return 0;
    CURLMcode mc = curl_multi_perform(impl->multi, &running);
    if (mc != CURLM_OK)
        return knn_error_set(KNN_EINTERNAL, "curl_multi_perform: %s", curl_multi_strerror(mc));
    if ((rc = s_harvest(impl)))
        return rc;
    if (s_pop_done(impl, done))
        return 0;
    mc = curl_multi_poll(impl->multi, NULL, 0, timeout_ms, NULL);
    if (mc != CURLM_OK)
        return knn_error_set(KNN_EINTERNAL, "curl_multi_poll: %s", curl_multi_strerror(mc));
    mc = curl_multi_perform(impl->multi, &running);
    if (mc != CURLM_OK)
        return knn_error_set(KNN_EINTERNAL, "curl_multi_perform: %s", curl_multi_strerror(mc));
    if ((rc = s_harvest(impl)))
        return rc;
    s_pop_done(impl, done);
    return 0;
}

static void s_cancel(struct knn_s3_http_session *s, struct knn_s3_http_exchange *x)
{
    struct s_session *impl = s->impl;
    if (x->transport_data) {
        s_xfer_free(impl, x->transport_data);
        return;
    }
    /* Completed but not returned yet: forget it. */
    for (size_t i = 0; i < impl->done_count; i++) {
        if (impl->done[i] == x) {
            memmove(impl->done + i, impl->done + i + 1, (impl->done_count - i - 1) * sizeof(*impl->done));
            impl->done_count--;
            return;
        }
    }
}

static void s_wakeup(struct knn_s3_http_session *s)
{
    struct s_session *impl = s->impl;
    curl_multi_wakeup(impl->multi);
}

static const struct knn_s3_transport_vtable s_vtable = {
    s_session_new, s_session_destroy, s_start, s_poll, s_cancel, s_wakeup,
};

static const struct knn_s3_transport s_curl_transport = {&s_vtable, NULL};

const struct knn_s3_transport *knn__s3_transport_curl(void)
{
    return &s_curl_transport;
}

int knn__s3_http_perform(struct knn_s3_http_session *session, struct knn_s3_http_exchange *x)
{
    const struct knn_s3_transport_vtable *vt = session->transport->vtable;
    int rc = vt->start(session, x);
    if (rc)
        return rc;
    for (;;) {
        struct knn_s3_http_exchange *done = NULL;
        if ((rc = vt->poll(session, x->should_stop ? KNN_S3__CANCEL_POLL_MS : 1000, &done))) {
            vt->cancel(session, x);
            return rc;
        }
        if (done == x)
            return 0;
        if (x->should_stop && (rc = x->should_stop(x->user))) {
            /* Stopped from outside (a cancel): the exchange ends now with that code and message. */
            vt->cancel(session, x);
            x->result = rc;
            x->net_retryable = 0;
            snprintf(x->error, sizeof(x->error), "%s", knn_error_message());
            return 0;
        }
    }
}
