#ifndef KNN_S3_IMPL_H
#define KNN_S3_IMPL_H

/*
 * Internals shared by the files of s3/: the HTTP transport vtable, the client's state, one S3
 * request and its attempts, error classification, the XML reader and the async engine.
 *
 * Layers, bottom up:
 *   transport (transport_curl.c)   one HTTP exchange at a time or many at once in a session
 *                                  (curl multi); knows nothing of S3.
 *   request (s3_request.c)         an S3 request -> URL, headers, SigV4 -> one attempt on a
 *                                  session -> a response (status, headers, capped body, S3 error);
 *                                  classification (s3_errors.c) and the retry loop.
 *   engine (s3_engine.c)           a background thread running many requests on one session,
 *                                  each with its own retries (reader and upload use it).
 *   operations (s3_objects.c, s3_reader.c, s3_upload.c).
 */

#include "knn/common/buf.h"
#include "knn/s3/client.h"
#include "knn/s3/sigv4.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* Transport                                                                                  */

struct knn_s3_http_session;

/** One HTTP request and its response, driven by a transport session. */
struct knn_s3_http_exchange {
    /* request (borrowed; must outlive the exchange) */
    const char *method;
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t header_count;
    const uint8_t *body; /* request body for PUT/POST (NULL: none) */
    size_t body_len;
    int connect_timeout_ms;
    int stall_timeout_ms;
    const char *ca_bundle; /* NULL: system default */
    /* response callbacks, called on the thread that polls the session */
    int (*on_header)(void *user, const char *line, size_t len);  /* each header line, status lines included */
    int (*on_body)(void *user, const uint8_t *data, size_t len); /* 0, or an error code to abort the exchange */
    /* NULL, or polled at least every 100 ms while the exchange runs: 0, or an error code that stops it */
    int (*should_stop)(void *user);
    void *user;
    /* result, set when the exchange completes */
    int result; /* 0: a complete response arrived; KNN_ES3_NET / KNN_ETIMEOUT / KNN_ETRUNCATED; or on_body's code */
    int net_retryable;    /* for KNN_ES3_NET: whether the failure is worth retrying (resets yes, bad TLS no) */
    int unreachable;      /* for KNN_ES3_NET: no connection was made (name not resolved, connection refused) */
    char error[256];      /* why, when result != 0 (never secrets) */
    uint64_t bytes_sent;  /* request body bytes the transport handed over */
    void *transport_data; /* the transport's own */
};

struct knn_s3_transport_vtable {
    int (*session_new)(const struct knn_s3_transport *transport, struct knn_s3_http_session **out);
    void (*session_destroy)(struct knn_s3_http_session *session);
    /** Begin an exchange (non-blocking). */
    int (*start)(struct knn_s3_http_session *session, struct knn_s3_http_exchange *x);
    /**
     * Run the session's transfers for at most timeout_ms (or until woken); *done gets one completed
     * exchange (its result set) or NULL. Errors: only internal ones (KNN_ENOMEM, KNN_EINTERNAL).
     */
    int (*poll)(struct knn_s3_http_session *session, int timeout_ms, struct knn_s3_http_exchange **done);
    /** Stop an exchange that has not completed; it will not be returned by poll. */
    void (*cancel)(struct knn_s3_http_session *session, struct knn_s3_http_exchange *x);
    /** Make a blocked poll return early. Thread-safe. */
    void (*wakeup)(struct knn_s3_http_session *session);
};

struct knn_s3_transport {
    const struct knn_s3_transport_vtable *vtable;
    void *impl;
};

struct knn_s3_http_session {
    const struct knn_s3_transport *transport;
    void *impl;
};

/** The libcurl transport (curl multi sessions). */
const struct knn_s3_transport *knn__s3_transport_curl(void);

/** Start `x` and poll until it completes (a synchronous exchange). */
int knn__s3_http_perform(struct knn_s3_http_session *session, struct knn_s3_http_exchange *x);

/* ------------------------------------------------------------------------------------------ */
/* Client                                                                                     */

struct knn_s3_client {
    char *endpoint; /* "https://s3.us-east-1.amazonaws.com" (no trailing slash) */
    char *scheme;   /* "http" or "https" */
    char *host;     /* host[:port] as sent in Host (port only when not the scheme's default) */
    int is_aws;     /* an amazonaws.com endpoint */
    char *region;
    enum knn_s3_addressing addressing;
    int sign_payload; /* SHA-256 of single-request bodies (PutObject, Complete) */
    int sign_parts;   /* SHA-256 of UploadPart bodies too (payload_signing ON) */
    struct knn_s3_credentials_provider *credentials;
    int max_attempts;
    int retry_base_ms;
    int retry_max_ms;
    int connect_timeout_ms;
    int stall_timeout_ms;
    size_t part_size;
    size_t multipart_threshold;
    int max_concurrency;
    char *ca_bundle;
    knn_s3_clock_fn *clock;
    void *clock_user;
    const struct knn_s3_transport *transport;
    knn_s3_cancel_fn *cancel;
    void *cancel_user;
    int cleanup_timeout_ms;
    _Atomic uint64_t cancel_ns; /* monotonic time the cancel hook was first seen set; 0: not yet */

    pthread_mutex_t lock;              /* guards the fields below */
    struct knn_s3_http_session **idle; /* sessions for synchronous calls, reused */
    size_t idle_count;
    size_t idle_cap;
    int64_t skew_s; /* server time - local time, learnt from RequestTimeTooSkewed */
    char credentials_used[256]; /* knn_s3_credentials_describe() of the last request's, for 403 messages */
    struct knn_s3_retry_count retries[KNN_S3_RETRY_CAUSES_MAX];
    size_t retry_causes;
    struct {
        const char *op; /* a string literal of the request */
        uint64_t last_warn_ns;
        uint64_t unlogged; /* retries of this operation since its last WARN line */
    } retry_warn[16];
    uint64_t rng;   /* backoff jitter */
};

/** A session for one synchronous call (from the client's idle list, or new); give it back after. */
int knn__s3_session_acquire(struct knn_s3_client *client, struct knn_s3_http_session **out);
void knn__s3_session_release(struct knn_s3_client *client, struct knn_s3_http_session *session, int reusable);

/** The signing time: the client's clock plus the learnt skew. */
int64_t knn__s3_client_now(struct knn_s3_client *client);

/** Backoff before attempt `attempt` (2 for the first retry): full jitter, milliseconds. */
int knn__s3_backoff_ms(struct knn_s3_client *client, int attempt);

/** Sleep for ms milliseconds. */
void knn__s3_sleep_ms(int ms);

/* How often a request polls the client's cancel hook while it runs or waits. */
#define KNN_S3__CANCEL_POLL_MS 100

/* ------------------------------------------------------------------------------------------ */
/* One S3 request                                                                             */

#define KNN_S3__MAX_QUERY 8
#define KNN_S3__MAX_HEADERS 8
#define KNN_S3__MAX_LINES 16

struct knn_s3__request {
    const char *op; /* "GetObject", for messages */
    const char *method;
    const char *bucket;
    const char *key; /* NULL: a bucket-level request */
    struct knn_s3_kv query[KNN_S3__MAX_QUERY];
    size_t query_count;
    struct knn_s3_kv headers[KNN_S3__MAX_HEADERS]; /* extra headers to sign: range, if-match, content-md5, ... */
    size_t header_count;
    const uint8_t *body;
    size_t body_len;
    const char *payload_hash; /* hex SHA-256 of the body; NULL: computed per the client's policy */
    size_t body_cap;          /* cap on a captured success body (XML); 0: 1 MiB */
    int cleanup;              /* undoes a failed job's work: still runs for a while after a cancel */
};

/** S3's <Error> document. */
struct knn_s3__error {
    char code[64];
    char message[512];
    char request_id[128];
};

struct knn_s3__response {
    long status;
    int64_t content_length; /* -1: absent */
    char etag[128];
    char request_id[128];
    char content_range[96];
    char bucket_region[64]; /* x-amz-bucket-region (AWS names the bucket's region on redirects) */
    int64_t last_modified_s;
    int64_t date_s;
    struct knn_buf body;        /* error bodies, and success bodies unless streamed to a sink */
    struct knn_s3__error error; /* parsed from an error body, or derived from the status */
    uint64_t body_bytes;        /* body bytes received in this attempt (also streamed ones) */
};

void knn__s3_response_init(struct knn_s3__response *resp, size_t body_cap);
void knn__s3_response_reset(struct knn_s3__response *resp);
void knn__s3_response_clean_up(struct knn_s3__response *resp);

/** An attempt's URL and header lines, signed. */
struct knn_s3__prepared {
    struct knn_buf url;
    struct knn_buf storage; /* header lines, NUL-separated */
    const char *lines[KNN_S3__MAX_LINES];
    size_t line_count;
    char payload_hash[65];
};

void knn__s3_prepared_init(struct knn_s3__prepared *p);
void knn__s3_prepared_clean_up(struct knn_s3__prepared *p);

/**
 * Build the URL and the signed header lines of `req` for an attempt now (fresh date and
 * credentials). Errors: KNN_ES3_CREDENTIALS and the like from the provider, KNN_EINVAL, KNN_ENOMEM.
 */
int knn__s3_prepare(struct knn_s3__prepared *out, struct knn_s3_client *client, const struct knn_s3__request *req);

/**
 * 0, or KNN_ECANCELED (message set) when `req` must stop now: the client's cancel hook fired and
 * `req` is not a clean-up request, or it is one and the clean-up time is over.
 */
int knn__s3_check_cancel(struct knn_s3_client *client, const struct knn_s3__request *req);

/** Sleep `ms` before a retry of `req`, waking early with knn__s3_check_cancel's error. */
int knn__s3_backoff_sleep(struct knn_s3_client *client, const struct knn_s3__request *req, int ms);

/** The printable URI of a request, "s3://bucket/key", for messages (truncated to fit). */
void knn__s3_request_uri(char *out, size_t size, const struct knn_s3__request *req);

/**
 * Sink for a streamed success body: called with the response headers known (resp) for the first
 * and every later chunk. Return 0 or an error code.
 */
typedef int(knn_s3__sink_fn)(void *user, const struct knn_s3__response *resp, const uint8_t *data, size_t len);

/** The callbacks' context of one exchange (lives as long as the exchange). */
struct knn_s3__exchange_ctx {
    struct knn_s3_client *client;      /* set by knn__s3_exchange_setup */
    const struct knn_s3__request *req; /* set by knn__s3_exchange_setup */
    struct knn_s3__response *resp;
    knn_s3__sink_fn *sink; /* NULL: a success body is captured in resp->body */
    void *sink_user;
};

/** Set up `x` (callbacks through `ctx` into ctx->resp / ctx->sink) for the prepared request. */
void knn__s3_exchange_setup(
    struct knn_s3_http_exchange *x, struct knn_s3__exchange_ctx *ctx, struct knn_s3_client *client,
    const struct knn_s3__request *req, const struct knn_s3__prepared *prep);

/** After the exchange completes: parse an error body into resp->error. */
void knn__s3_exchange_finish(struct knn_s3_http_exchange *x, struct knn_s3__response *resp);

enum knn_s3__verdict {
    KNN_S3__OK,
    KNN_S3__RETRY,
    KNN_S3__FAIL,
};

/**
 * Classify an attempt's outcome: OK (2xx and complete), RETRY, or FAIL. On RETRY and FAIL it sets
 * the thread's message (the one-line format of client.h) and *code to the KNN_E* to report;
 * `attempt` and the client's max_attempts turn a RETRY on the last attempt into a FAIL.
 */
enum knn_s3__verdict knn__s3_classify(
    int *code, struct knn_s3_client *client, const struct knn_s3__request *req, const struct knn_s3_http_exchange *x,
    const struct knn_s3__response *resp, int attempt);

/** True for S3 error codes worth a retry (SlowDown, InternalError, RequestTimeout, ...). */
int knn__s3_code_is_retryable(const char *code);

/** The KNN_E* for an S3 error code and HTTP status. */
int knn__s3_code_to_error(const char *code, long status);

/**
 * A retry of `req` after the attempt (x, resp) failed and `knn__s3_classify` set the message: count it
 * by cause and log the message at WARN, at most once per operation every 10 s (else at DEBUG).
 */
void knn__s3_note_retry(
    struct knn_s3_client *client, const struct knn_s3__request *req, const struct knn_s3_http_exchange *x,
    const struct knn_s3__response *resp, int wait_ms);

/** Learn the clock skew from a RequestTimeTooSkewed response's Date header. */
void knn__s3_note_skew(struct knn_s3_client *client, const struct knn_s3__response *resp);

/** "bytes a-b/total" (total '*' gives UINT64_MAX); 0 or -1. */
int knn__s3_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total);

/** One PutObject of a buffer (Content-MD5, payload hash per policy), with retries. */
int knn__s3_put_single(
    char **etag_out, struct knn_s3_client *client, const char *bucket, const char *key, const void *data, size_t len,
    const char *content_type);

/**
 * One request with retries and backoff, synchronously; the body (capped) ends up in resp->body.
 * `resp` must be initialized; it holds the last attempt's response. Returns 0 or the error.
 */
int knn__s3_execute(struct knn_s3_client *client, const struct knn_s3__request *req, struct knn_s3__response *resp);

/**
 * knn__s3_execute that also counts, in *uncertain, the attempts that failed after the request may
 * have reached the server (a network error, a body we could not read): for a request that is not
 * idempotent (CreateMultipartUpload), such an attempt may have acted without our knowing.
 */
int knn__s3_execute_counted(
    struct knn_s3_client *client, const struct knn_s3__request *req, struct knn_s3__response *resp, int *uncertain);

/* ------------------------------------------------------------------------------------------ */
/* XML                                                                                        */

/**
 * Called at the end of each element with its path from the root ("ListBucketResult/Contents/Key",
 * namespaces dropped) and its text (entities decoded; only the element's own text). Return 0 or an
 * error code to stop.
 */
typedef int(knn_s3__xml_fn)(void *user, const char *path, const char *text, size_t len);

/**
 * Parse an XML document with libxml2's SAX push parser: no DTD (a DOCTYPE is an error), no entity
 * but the predefined five, no network, paths up to 1 KiB, text up to 64 KiB per element.
 * Errors: KNN_EFORMAT (with the line and column), or the callback's code.
 */
int knn__s3_xml_parse(const uint8_t *data, size_t len, knn_s3__xml_fn *fn, void *user);
/** The same, and the document element must be `root` (else KNN_EFORMAT naming both): an answer of the wrong kind. */
int knn__s3_xml_parse_root(const uint8_t *data, size_t len, const char *root, knn_s3__xml_fn *fn, void *user);

/** Parse an S3 <Error> document into `out`. Returns 1 if the root element is Error. */
int knn__s3_xml_error(struct knn_s3__error *out, const uint8_t *data, size_t len);

/** Append `s` to `out` with & < > " ' escaped. */
int knn__s3_xml_escape(struct knn_buf *out, const char *s);

/* ------------------------------------------------------------------------------------------ */
/* Hashes                                                                                     */

/** MD5 (base64, for Content-MD5, out 25 bytes) and, if sha_hex, SHA-256 (hex, 65 bytes) in one pass. */
int knn__s3_hash(const uint8_t *data, size_t len, char md5_b64[25], unsigned char md5_raw[16], char *sha_hex);

/* ------------------------------------------------------------------------------------------ */
/* Engine: many requests at once on one session, in a background thread                       */

struct knn_s3__engine;

enum knn_s3__job_state {
    KNN_S3__JOB_IDLE = 0,
    KNN_S3__JOB_QUEUED,
    KNN_S3__JOB_RUNNING,
    KNN_S3__JOB_BACKOFF,
    KNN_S3__JOB_DONE,
};

struct knn_s3__job {
    struct knn_s3__request req; /* set by the submitter; strings must outlive the job */
    /* GET into a buffer: the expected bytes, delivered at dst[received..]; or, with to_fd, written
     * with pwrite() at file offset range_start + received of fd (dst NULL). */
    uint8_t *dst;
    int to_fd;
    int fd;
    uint64_t dst_len;
    uint64_t range_start; /* offset of dst[0] in the object */
    uint64_t object_size; /* for Content-Range checks; 0 with dst NULL */
    const char *if_match; /* ETag, also on the first attempt */
    int whole_object;     /* the GET asks for the whole object (no Range) */
    uint64_t received;
    /* result */
    int rc;
    char message[512];
    struct knn_s3__response resp;
    /* engine-private */
    enum knn_s3__job_state state;
    int attempt;
    uint64_t not_before_ns;
    size_t base_headers; /* req.header_count as submitted; the engine adds Range / If-Match after */
    int checked;         /* this attempt's response headers were validated */
    char range_header[64];
    struct knn_s3__prepared prep;
    struct knn_s3_http_exchange x;
    struct knn_s3__exchange_ctx ctx;
    struct knn_s3__job *next;
};

/** Prepare a job struct once (buffers); reuse it for many submissions; clean it up at the end. */
void knn__s3_job_init(struct knn_s3__job *job);

int knn__s3_engine_new(struct knn_s3__engine **out, struct knn_s3_client *client, int max_running);

/** Queue a job (its req and buffers set). Thread-safe. The job must stay alive until done or the engine is destroyed.
 */
int knn__s3_engine_submit(struct knn_s3__engine *engine, struct knn_s3__job *job);

/** Block until `job` is done; returns its rc with its message set on this thread. */
int knn__s3_engine_wait(struct knn_s3__engine *engine, struct knn_s3__job *job);

/** Stop the thread and cancel what runs. NULL-safe. */
void knn__s3_engine_destroy(struct knn_s3__engine *engine);

void knn__s3_job_clean_up(struct knn_s3__job *job);

#endif
