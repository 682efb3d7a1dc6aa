/* The client, and one S3 request: URL, SigV4 headers, an attempt on a session, retries. */
#include "curl_init.h"
#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/credentials.h"
#include "knn/s3/uri.h"
#include "s3_impl.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_DEFAULT_BODY_CAP (1024 * 1024)
#define S_ERROR_BODY_CAP (64 * 1024)
#define S_MIN_PART (5u * 1024 * 1024)

int64_t knn__s3_system_clock(void *user);

/* ---- client ---- */

static int s_dup(char **dst, const char *s)
{
    *dst = knn_strdup(s);
    return *dst ? 0 : KNN_ENOMEM;
}

static const char *s_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int s_host_is_aws(const char *host, size_t n)
{
    static const char *const suffixes[] = {".amazonaws.com", ".amazonaws.com.cn"};
    for (size_t i = 0; i < 2; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n > sl && strncasecmp(host + n - sl, suffixes[i], sl) == 0)
            return 1;
    }
    return 0;
}

/* "scheme://host[:port][/]" into the client's endpoint fields. */
static int s_parse_endpoint(struct knn_s3_client *c, const char *raw)
{
    const char *p;
    int https;
    char url[1024]; /* the URL as messages show it: no password, no signature */
    knn_s3_url_redact(url, sizeof(url), raw);
    const char *scheme_end = strstr(raw, "://");
    if (scheme_end && memchr(scheme_end + 3, '@', strcspn(scheme_end + 3, "/?#")))
        return knn_error_set(
            KNN_EINVAL,
            "endpoint URL '%s': a user name or password in the URL is not supported (S3 requests are signed with "
            "access keys: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)",
            url);
    if (strncasecmp(raw, "https://", 8) == 0) {
        https = 1;
        p = raw + 8;
    } else if (strncasecmp(raw, "http://", 7) == 0) {
        https = 0;
        p = raw + 7;
    } else {
        return knn_error_set(KNN_EINVAL, "endpoint URL '%s' must start with http:// or https://", url);
    }
    size_t hl = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/?#");
    if (hl == 0 || (*p == '[' && p[hl - 1] != ']'))
        return knn_error_set(KNN_EINVAL, "endpoint URL '%s' has no host", url);
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch == '@' || ch >= 0x7f)
            return knn_error_set(KNN_EINVAL, "endpoint URL '%s': bad character in the host", url);
    }
    const char *q = p + hl;
    long port = 0;
    if (*q == ':') {
        char *end;
        errno = 0;
        port = strtol(q + 1, &end, 10);
        if (errno || end == q + 1 || port < 1 || port > 65535)
            return knn_error_set(KNN_EINVAL, "endpoint URL '%s' has a bad port", url);
        q = end;
    }
    if (*q == '/')
        q++;
    if (*q)
        return knn_error_set(
            KNN_EINVAL, "endpoint URL '%s': a path, query or fragment after the host is not supported", url);
    int default_port = port == 0 || (https && port == 443) || (!https && port == 80);
    struct knn_buf host = KNN_BUF_INIT(1024), ep = KNN_BUF_INIT(1200);
    int rc =
        default_port ? knn_buf_printf(&host, "%.*s", (int)hl, p) : knn_buf_printf(&host, "%.*s:%ld", (int)hl, p, port);
    if (!rc) {
        for (uint8_t *h = host.data; *h; h++) /* host names are case-insensitive; sign them lower-case */
            if (*h >= 'A' && *h <= 'Z')
                *h = (uint8_t)(*h - 'A' + 'a');
        rc = knn_buf_printf(&ep, "%s://%s", https ? "https" : "http", (const char *)host.data);
    }
    if (!rc) {
        c->host = (char *)knn_buf_detach(&host, NULL);
        c->endpoint = (char *)knn_buf_detach(&ep, NULL);
        rc = s_dup(&c->scheme, https ? "https" : "http");
        c->is_aws = s_host_is_aws(p, hl);
    }
    knn_buf_clean_up(&host);
    knn_buf_clean_up(&ep);
    return rc;
}

static int s_valid_region(const char *r)
{
    if (!*r || strlen(r) > 64)
        return 0;
    for (const char *c = r; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || (*c >= 'A' && *c <= 'Z')))
            return 0;
    return 1;
}

int knn_s3_client_new(struct knn_s3_client **out, const struct knn_s3_client_options *opts)
{
    struct knn_s3_client_options defaults = KNN_S3_CLIENT_OPTIONS_INIT;
    struct knn_s3_client *c = NULL;
    struct knn_s3_profile_config pc;
    int rc;
    memset(&pc, 0, sizeof(pc));
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if ((rc = knn__s3_curl_global_init()))
        return rc;
    if (!(c = knn_calloc(1, sizeof(*c))))
        return KNN_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);

    /* The profile's settings (config file), used below wherever nothing more explicit is set. */
    {
        struct knn_s3_profile_options po = KNN_S3_PROFILE_OPTIONS_INIT;
        po.profile = opts->profile;
        if ((rc = knn_s3_profile_config_read(&pc, &po)) == KNN_ECONFIG)
            goto on_error;
        if (rc) {
            KNN_LOG(KNN_LOG_WARN, KNN_LS_S3, "reading the AWS config: %s", knn_error_message());
            rc = 0;
        }
    }

    /* Region: option, environment, profile, us-east-1. */
    const char *region = opts->region ? opts->region : s_env("AWS_REGION");
    if (!region)
        region = s_env("AWS_DEFAULT_REGION");
    if (!region)
        region = pc.region;
    if (!region)
        region = "us-east-1";
    if (!s_valid_region(region)) {
        rc = knn_error_set(KNN_EINVAL, "region '%s' is not a valid AWS region name", region);
        goto on_error;
    }
    if ((rc = s_dup(&c->region, region)))
        goto on_error;

    /*
     * Endpoint, in the AWS CLI's order: option (--endpoint-url), AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
     * the s3 endpoint_url of the profile's services section, the profile's endpoint_url, else AWS's
     * regional endpoint. AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (or the profile's
     * ignore_configured_endpoint_urls) skips the four configured ones.
     */
    const char *ignore = s_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    int configured = !(ignore ? strcasecmp(ignore, "true") == 0 : pc.ignore_configured_endpoint_urls);
    const char *endpoint = opts->endpoint_url;
    if (!endpoint && configured) {
        endpoint = s_env("AWS_ENDPOINT_URL_S3");
        if (!endpoint)
            endpoint = s_env("AWS_ENDPOINT_URL");
        if (!endpoint)
            endpoint = pc.s3_endpoint_url;
        if (!endpoint)
            endpoint = pc.endpoint_url;
    }
    if (endpoint) {
        if ((rc = s_parse_endpoint(c, endpoint)))
            goto on_error;
    } else {
        char aws[160];
        snprintf(
            aws, sizeof(aws), "https://s3.%s.amazonaws.com%s", c->region,
            strncmp(c->region, "cn-", 3) == 0 ? ".cn" : "");
        if ((rc = s_parse_endpoint(c, aws)))
            goto on_error;
    }
    c->addressing = opts->addressing;
    if (c->addressing == KNN_S3_ADDRESSING_AUTO && pc.addressing_style) {
        /* The profile's "s3 =" block, addressing_style = auto | path | virtual. */
        if (strcmp(pc.addressing_style, "path") == 0) {
            c->addressing = KNN_S3_ADDRESSING_PATH;
        } else if (strcmp(pc.addressing_style, "virtual") == 0) {
            c->addressing = KNN_S3_ADDRESSING_VIRTUAL;
        } else if (strcmp(pc.addressing_style, "auto") != 0) {
            rc = knn_error_set(KNN_EINVAL, "%s: s3 addressing_style '%.64s' is not auto, path or virtual",
                               pc.config_path ? pc.config_path : "AWS config", pc.addressing_style);
            goto on_error;
        }
    }
    if (c->addressing == KNN_S3_ADDRESSING_AUTO)
        c->addressing = c->is_aws ? KNN_S3_ADDRESSING_VIRTUAL : KNN_S3_ADDRESSING_PATH;
    int https = strcmp(c->scheme, "https") == 0;
    c->sign_payload = opts->payload_signing == KNN_S3_ON || (opts->payload_signing == KNN_S3_AUTO && !https);
    c->sign_parts = opts->payload_signing == KNN_S3_ON;

    c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 5;
    c->retry_base_ms = opts->retry_base_ms > 0 ? opts->retry_base_ms : 100;
    c->retry_max_ms = opts->retry_max_ms > 0 ? opts->retry_max_ms : 20000;
    c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
    c->stall_timeout_ms = opts->stall_timeout_ms > 0 ? opts->stall_timeout_ms : 60000;
    c->part_size = opts->part_size ? opts->part_size : 8u * 1024 * 1024;
    if (c->part_size < S_MIN_PART || c->part_size > 5ull * 1024 * 1024 * 1024) {
        rc = knn_error_set(KNN_EINVAL, "part size %zu is outside S3's 5 MiB..5 GiB", c->part_size);
        goto on_error;
    }
    c->multipart_threshold = opts->multipart_threshold ? opts->multipart_threshold : c->part_size;
    c->max_concurrency = opts->max_concurrency > 0 ? opts->max_concurrency : 8;
    if (c->max_concurrency > 64) {
        rc = knn_error_set(KNN_EINVAL, "max_concurrency %d is over 64", c->max_concurrency);
        goto on_error;
    }
    const char *ca = opts->ca_bundle ? opts->ca_bundle : s_env("AWS_CA_BUNDLE");
    if (!ca)
        ca = pc.ca_bundle;
    if (ca && (rc = s_dup(&c->ca_bundle, ca)))
        goto on_error;
    c->clock = opts->clock ? opts->clock : knn__s3_system_clock;
    c->clock_user = opts->clock_user;
    c->transport = opts->transport ? opts->transport : knn__s3_transport_curl();
    c->cancel = opts->cancel;
    c->cancel_user = opts->cancel_user;
    c->cleanup_timeout_ms = opts->cleanup_timeout_ms > 0 ? opts->cleanup_timeout_ms : 4000;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ull;

    if (opts->credentials) {
        c->credentials = knn_s3_credentials_provider_acquire(opts->credentials);
    } else if ((rc = knn_s3_credentials_provider_new_default(&c->credentials, opts->profile))) {
        goto on_error;
    }
    knn_s3_profile_config_clean_up(&pc);
    KNN_LOG(
        KNN_LOG_DEBUG, KNN_LS_S3, "id=%p: client for %s, region %s, %s-style, payload %s, parts %s", (void *)c,
        c->endpoint, c->region, c->addressing == KNN_S3_ADDRESSING_PATH ? "path" : "virtual-host",
        c->sign_payload ? "signed" : "unsigned", c->sign_parts ? "signed" : "Content-MD5 only");
    *out = c;
    return 0;

on_error:
    knn_s3_profile_config_clean_up(&pc);
    knn_s3_client_destroy(c);
    return rc;
}

void knn_s3_client_destroy(struct knn_s3_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->idle_count; i++)
        c->transport->vtable->session_destroy(c->idle[i]);
    knn_free(c->idle);
    knn_s3_credentials_provider_release(c->credentials);
    knn_free(c->endpoint);
    knn_free(c->scheme);
    knn_free(c->host);
    knn_free(c->region);
    knn_free(c->ca_bundle);
    pthread_mutex_destroy(&c->lock);
    knn_free(c);
}

const char *knn_s3_client_region(const struct knn_s3_client *client)
{
    return client->region;
}

const char *knn_s3_client_endpoint(const struct knn_s3_client *client)
{
    return client->endpoint;
}

int knn__s3_session_acquire(struct knn_s3_client *c, struct knn_s3_http_session **out)
{
    pthread_mutex_lock(&c->lock);
    if (c->idle_count) {
        *out = c->idle[--c->idle_count];
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);
    return c->transport->vtable->session_new(c->transport, out);
}

void knn__s3_session_release(struct knn_s3_client *c, struct knn_s3_http_session *s, int reusable)
{
    if (!s)
        return;
    pthread_mutex_lock(&c->lock);
    if (reusable && c->idle_count < 8) {
        if (c->idle_count == c->idle_cap) {
            size_t cap = c->idle_cap ? c->idle_cap * 2 : 4;
            void *p = knn_realloc_array(c->idle, cap, sizeof(*c->idle));
            if (p) {
                c->idle = p;
                c->idle_cap = cap;
            }
        }
        if (c->idle_count < c->idle_cap) {
            c->idle[c->idle_count++] = s;
            s = NULL;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (s)
        c->transport->vtable->session_destroy(s);
}

int64_t knn__s3_client_now(struct knn_s3_client *c)
{
    pthread_mutex_lock(&c->lock);
    int64_t skew = c->skew_s;
    pthread_mutex_unlock(&c->lock);
    return c->clock(c->clock_user) + skew;
}

int knn__s3_backoff_ms(struct knn_s3_client *c, int attempt)
{
    int64_t cap = c->retry_base_ms;
    for (int i = 2; i < attempt && cap < c->retry_max_ms; i++)
        cap *= 2;
    if (cap > c->retry_max_ms)
        cap = c->retry_max_ms;
    pthread_mutex_lock(&c->lock);
    uint64_t x = c->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    pthread_mutex_unlock(&c->lock);
    uint64_t r = x * 0x2545F4914F6CDD1Dull;
    return (int)(r % (uint64_t)(cap + 1)); /* full jitter: uniform in [0, cap] */
}

void knn__s3_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int knn__s3_check_cancel(struct knn_s3_client *c, const struct knn_s3__request *req)
{
    if (!c->cancel)
        return 0;
    uint64_t since = atomic_load(&c->cancel_ns);
    if (!since) {
        if (!c->cancel(c->cancel_user))
            return 0;
        uint64_t expected = 0, now = knn_clock_monotonic_ns();
        if (atomic_compare_exchange_strong(&c->cancel_ns, &expected, now))
            since = now;
        else
            since = expected;
    }
    char uri[1200];
    knn__s3_request_uri(uri, sizeof(uri), req);
    if (!req->cleanup)
        return knn_error_set(KNN_ECANCELED, "%s %s: cancelled: the job is stopping", req->op, uri);
    if (knn_clock_monotonic_ns() - since < (uint64_t)c->cleanup_timeout_ms * 1000000u)
        return 0;
    return knn_error_set(
        KNN_ECANCELED, "%s %s: no answer within the %d ms given to clean-up after the stop", req->op, uri,
        c->cleanup_timeout_ms);
}

int knn__s3_backoff_sleep(struct knn_s3_client *c, const struct knn_s3__request *req, int ms)
{
    if (!c->cancel) {
        knn__s3_sleep_ms(ms);
        return 0;
    }
    for (;;) {
        int rc = knn__s3_check_cancel(c, req);
        if (rc || ms <= 0)
            return rc;
        int step = ms < KNN_S3__CANCEL_POLL_MS ? ms : KNN_S3__CANCEL_POLL_MS;
        knn__s3_sleep_ms(step);
        ms -= step;
    }
}

/* ---- retries: counted by cause, logged at WARN at most once per operation every 10 s ---- */

#define S_RETRY_WARN_INTERVAL_NS (10ull * 1000000000ull)

static void s_retry_cause(char *out, size_t size, const struct knn_s3_http_exchange *x, const struct knn_s3__response *r)
{
    if (x->result != 0)
        snprintf(out, size, "%s", x->result == KNN_ETIMEOUT     ? "timeout"
                                  : x->result == KNN_ETRUNCATED ? "truncated"
                                                                : "connection");
    else if (r->error.code[0])
        snprintf(out, size, "%.40s", r->error.code);
    else
        snprintf(out, size, "HTTP %ld", r->status);
}

void knn__s3_note_retry(
    struct knn_s3_client *c, const struct knn_s3__request *req, const struct knn_s3_http_exchange *x,
    const struct knn_s3__response *resp, int wait_ms)
{
    char cause[48];
    s_retry_cause(cause, sizeof(cause), x, resp);
    uint64_t now = knn_clock_monotonic_ns(), unlogged = 0;
    int warn = 0;
    pthread_mutex_lock(&c->lock);
    size_t i = 0;
    while (i < c->retry_causes && strcmp(c->retries[i].cause, cause) != 0)
        i++;
    if (i == c->retry_causes && i == KNN_S3_RETRY_CAUSES_MAX) {
        i = KNN_S3_RETRY_CAUSES_MAX - 1; /* the last slot becomes "other" */
        snprintf(c->retries[i].cause, sizeof(c->retries[i].cause), "other");
    } else if (i == c->retry_causes) {
        snprintf(c->retries[i].cause, sizeof(c->retries[i].cause), "%s", cause);
        c->retry_causes++;
    }
    c->retries[i].count++;
    size_t n = sizeof(c->retry_warn) / sizeof(c->retry_warn[0]), w = 0;
    while (w < n && c->retry_warn[w].op && strcmp(c->retry_warn[w].op, req->op) != 0)
        w++;
    if (w == n) {
        warn = 1; /* more operations than slots: never hide one */
    } else {
        if (!c->retry_warn[w].op) {
            c->retry_warn[w].op = req->op;
            c->retry_warn[w].last_warn_ns = 0;
        }
        if (!c->retry_warn[w].last_warn_ns || now - c->retry_warn[w].last_warn_ns >= S_RETRY_WARN_INTERVAL_NS) {
            warn = 1;
            unlogged = c->retry_warn[w].unlogged;
            c->retry_warn[w].unlogged = 0;
            c->retry_warn[w].last_warn_ns = now;
        } else {
            c->retry_warn[w].unlogged++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (warn && unlogged)
        KNN_LOG(
            KNN_LOG_WARN, KNN_LS_S3, "%s; retrying in %d ms (and %llu more %s retries since the last such line)",
            knn_error_message(), wait_ms, (unsigned long long)unlogged, req->op);
    else
        KNN_LOG(warn ? KNN_LOG_WARN : KNN_LOG_DEBUG, KNN_LS_S3, "%s; retrying in %d ms", knn_error_message(), wait_ms);
}

size_t knn_s3_client_retries(struct knn_s3_client *c, struct knn_s3_retry_count *out, size_t max)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->retry_causes;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = c->retries[i];
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* ---- responses ---- */

void knn__s3_response_init(struct knn_s3__response *resp, size_t body_cap)
{
    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    knn_buf_init(&resp->body, body_cap ? body_cap : S_DEFAULT_BODY_CAP);
}

void knn__s3_response_reset(struct knn_s3__response *resp)
{
    struct knn_buf body = resp->body;
    knn_buf_reset(&body);
    memset(resp, 0, sizeof(*resp));
    resp->body = body;
    resp->content_length = -1;
}

void knn__s3_response_clean_up(struct knn_s3__response *resp)
{
    knn_buf_clean_up(&resp->body);
}

void knn__s3_prepared_init(struct knn_s3__prepared *p)
{
    memset(p, 0, sizeof(*p));
    knn_buf_init(&p->url, 16 * 1024);
    knn_buf_init(&p->storage, 64 * 1024);
}

void knn__s3_prepared_clean_up(struct knn_s3__prepared *p)
{
    knn_buf_clean_up(&p->url);
    knn_buf_clean_up(&p->storage);
}

void knn__s3_request_uri(char *out, size_t size, const struct knn_s3__request *req)
{
    if (req->key)
        snprintf(out, size, "s3://%s/%s", req->bucket, req->key);
    else
        snprintf(out, size, "s3://%s", req->bucket);
}

/* ---- preparing an attempt ---- */

static int s_use_virtual(const struct knn_s3_client *c, const char *bucket)
{
    if (c->addressing != KNN_S3_ADDRESSING_VIRTUAL || !bucket)
        return 0;
    if (!knn_s3_bucket_name_is_valid(bucket))
        return 0;
    if (strcmp(c->scheme, "https") == 0 && strchr(bucket, '.')) /* the wildcard certificate covers one label */
        return 0;
    return 1;
}

int knn__s3_prepare(struct knn_s3__prepared *p, struct knn_s3_client *c, const struct knn_s3__request *req)
{
    struct knn_s3_credentials creds = {0};
    struct knn_s3_sigv4_signature sig;
    struct knn_buf path = KNN_BUF_INIT(8192), host = KNN_BUF_INIT(2048);
    char amz_date[17];
    int rc;
    knn_s3_sigv4_signature_init(&sig);
    knn_buf_reset(&p->url);
    knn_buf_reset(&p->storage);
    p->line_count = 0;

    int virt = s_use_virtual(c, req->bucket);
    if (virt)
        rc = knn_buf_printf(&host, "%s.%s", req->bucket, c->host);
    else
        rc = knn_buf_append_str(&host, c->host);
    if (rc)
        goto done;
    if (!virt && req->bucket) {
        if ((rc = knn_buf_append_str(&path, "/")) ||
            (rc = knn_s3_uri_encode(&path, req->bucket, strlen(req->bucket), 0)))
            goto done;
    }
    if (req->key) {
        if ((rc = knn_buf_append_str(&path, "/")) || (rc = knn_s3_uri_encode(&path, req->key, strlen(req->key), 1)))
            goto done;
    }
    if (path.len == 0 && (rc = knn_buf_append_str(&path, "/")))
        goto done;

    /* Payload hash: given, empty, computed (signed payload) or UNSIGNED-PAYLOAD. */
    if (req->payload_hash) {
        snprintf(p->payload_hash, sizeof(p->payload_hash), "%s", req->payload_hash);
    } else if (req->body_len == 0) {
        snprintf(p->payload_hash, sizeof(p->payload_hash), "%s", KNN_S3_EMPTY_SHA256);
    } else if (c->sign_payload) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        static const char hex[] = "0123456789abcdef";
        SHA256(req->body, req->body_len, d);
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
            p->payload_hash[2 * i] = hex[d[i] >> 4];
            p->payload_hash[2 * i + 1] = hex[d[i] & 15];
        }
        p->payload_hash[64] = '\0';
    } else {
        snprintf(p->payload_hash, sizeof(p->payload_hash), "%s", KNN_S3_UNSIGNED_PAYLOAD);
    }

    if ((rc = knn_s3_credentials_provider_get(&creds, c->credentials)))
        goto done;
    pthread_mutex_lock(&c->lock);
    knn_s3_credentials_describe(c->credentials_used, sizeof(c->credentials_used), &creds);
    pthread_mutex_unlock(&c->lock);
    int64_t now = knn__s3_client_now(c);
    if ((rc = knn_s3_sigv4_amz_date(amz_date, now)))
        goto done;

    struct knn_s3_kv headers[KNN_S3__MAX_HEADERS + 4];
    size_t nh = 0;
    headers[nh++] = (struct knn_s3_kv){"host", (const char *)host.data};
    headers[nh++] = (struct knn_s3_kv){"x-amz-date", amz_date};
    headers[nh++] = (struct knn_s3_kv){"x-amz-content-sha256", p->payload_hash};
    if (creds.session_token)
        headers[nh++] = (struct knn_s3_kv){"x-amz-security-token", creds.session_token};
    for (size_t i = 0; i < req->header_count; i++)
        headers[nh++] = req->headers[i];

    struct knn_s3_sigv4_config cfg = {&creds, c->region, "s3", now};
    struct knn_s3_sigv4_request sreq = {req->method, (const char *)path.data, req->query, req->query_count, headers,
                                        nh,          p->payload_hash};
    if ((rc = knn_s3_sigv4_sign(&sig, &cfg, &sreq)))
        goto done;

    rc = knn_buf_printf(
        &p->url, "%s://%s%s%s%s", c->scheme, (const char *)host.data, (const char *)path.data,
        sig.canonical_query.len ? "?" : "", (const char *)sig.canonical_query.data);
    if (rc)
        goto done;
    /* Header lines, NUL-separated in storage; pointers fixed up once storage stops moving. */
    size_t offsets[KNN_S3__MAX_LINES];
    size_t nl = 0;
    for (size_t i = 0; i < nh && !rc; i++) {
        offsets[nl++] = p->storage.len;
        rc = knn_buf_printf(&p->storage, "%s: %s", headers[i].name, headers[i].value);
        if (!rc)
            rc = knn_buf_append(&p->storage, "", 1);
    }
    if (!rc) {
        offsets[nl++] = p->storage.len;
        rc = knn_buf_printf(&p->storage, "Authorization: %s", (const char *)sig.authorization.data);
        if (!rc)
            rc = knn_buf_append(&p->storage, "", 1);
    }
    if (rc)
        goto done;
    for (size_t i = 0; i < nl; i++)
        p->lines[i] = (const char *)p->storage.data + offsets[i];
    p->line_count = nl;
done:
    knn_s3_credentials_clean_up(&creds);
    knn_s3_sigv4_signature_clean_up(&sig);
    knn_buf_clean_up(&path);
    knn_buf_clean_up(&host);
    return rc;
}

/* ---- one exchange ---- */

static int s_header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return 0;
    const char *v = line + n + 1;
    size_t vl = len - n - 1;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    *value = v;
    *vlen = vl;
    return 1;
}

static void s_copy_header(char *dst, size_t size, const char *v, size_t vl)
{
    size_t n = vl < size - 1 ? vl : size - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int64_t s_http_date(const char *v, size_t vl)
{
    char tmp[128];
    s_copy_header(tmp, sizeof(tmp), v, vl);
    time_t t = curl_getdate(tmp, NULL);
    return t < 0 ? 0 : (int64_t)t;
}

static int s_on_header(void *user, const char *line, size_t len)
{
    struct knn_s3__exchange_ctx *ctx = user;
    struct knn_s3__response *r = ctx->resp;
    const char *v;
    size_t vl;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a 1xx, or the only one): start over. */
        knn__s3_response_reset(r);
        const char *sp = memchr(line, ' ', len);
        if (sp && (size_t)(sp - line) + 4 <= len)
            r->status = strtol(sp + 1, NULL, 10);
        return 0;
    }
    if (s_header_is(line, len, "Content-Length", &v, &vl)) {
        char tmp[32];
        s_copy_header(tmp, sizeof(tmp), v, vl);
        char *end;
        errno = 0;
        long long n = strtoll(tmp, &end, 10);
        if (errno || *end || n < 0)
            return knn_error_set(KNN_EFORMAT, "bad Content-Length '%s'", tmp);
        r->content_length = n;
    } else if (s_header_is(line, len, "ETag", &v, &vl)) {
        s_copy_header(r->etag, sizeof(r->etag), v, vl);
    } else if (s_header_is(line, len, "x-amz-request-id", &v, &vl)) {
        s_copy_header(r->request_id, sizeof(r->request_id), v, vl);
    } else if (s_header_is(line, len, "x-amz-bucket-region", &v, &vl)) {
        s_copy_header(r->bucket_region, sizeof(r->bucket_region), v, vl);
    } else if (s_header_is(line, len, "Content-Range", &v, &vl)) {
        s_copy_header(r->content_range, sizeof(r->content_range), v, vl);
    } else if (s_header_is(line, len, "Last-Modified", &v, &vl)) {
        r->last_modified_s = s_http_date(v, vl);
    } else if (s_header_is(line, len, "Date", &v, &vl)) {
        r->date_s = s_http_date(v, vl);
    }
    return 0;
}

static int s_should_stop(void *user)
{
    struct knn_s3__exchange_ctx *ctx = user;
    return knn__s3_check_cancel(ctx->client, ctx->req);
}

static int s_on_body(void *user, const uint8_t *data, size_t len)
{
    struct knn_s3__exchange_ctx *ctx = user;
    struct knn_s3__response *r = ctx->resp;
    r->body_bytes += len;
    if (r->status >= 200 && r->status < 300 && ctx->sink)
        return ctx->sink(ctx->sink_user, r, data, len);
    if (r->status >= 300) { /* error bodies: keep the first 64 KiB, drop the rest */
        size_t room = r->body.len < S_ERROR_BODY_CAP ? S_ERROR_BODY_CAP - r->body.len : 0;
        if (room > r->body.max - r->body.len)
            room = r->body.max - r->body.len;
        (void)knn_buf_append(&r->body, data, len < room ? len : room);
        return 0;
    }
    int rc = knn_buf_append(&r->body, data, len);
    if (rc)
        return knn_error_wrap(rc, "response body");
    return 0;
}

void knn__s3_exchange_setup(
    struct knn_s3_http_exchange *x, struct knn_s3__exchange_ctx *ctx, struct knn_s3_client *c,
    const struct knn_s3__request *req, const struct knn_s3__prepared *prep)
{
    memset(x, 0, sizeof(*x));
    x->method = req->method;
    x->url = (const char *)prep->url.data;
    x->headers = prep->lines;
    x->header_count = prep->line_count;
    x->body = req->body;
    x->body_len = req->body_len;
    x->connect_timeout_ms = c->connect_timeout_ms;
    x->stall_timeout_ms = c->stall_timeout_ms;
    x->ca_bundle = c->ca_bundle;
    x->on_header = s_on_header;
    x->on_body = s_on_body;
    x->should_stop = c->cancel ? s_should_stop : NULL;
    x->user = ctx;
    ctx->client = c;
    ctx->req = req;
}

void knn__s3_exchange_finish(struct knn_s3_http_exchange *x, struct knn_s3__response *resp)
{
    if (x->result != 0)
        return;
    const uint8_t *b = resp->body.data;
    size_t n = resp->body.len;
    if (resp->status >= 300) {
        if (!knn__s3_xml_error(&resp->error, b, n))
            memset(&resp->error, 0, sizeof(resp->error));
        return;
    }
    /* "200 OK" with an <Error> body (CompleteMultipartUpload can do this): look near the start. */
    if (b && n) {
        size_t look = n < 512 ? n : 512;
        char head[513];
        memcpy(head, b, look);
        head[look] = '\0';
        if (strstr(head, "<Error>") && !knn__s3_xml_error(&resp->error, b, n))
            memset(&resp->error, 0, sizeof(resp->error));
    }
}

void knn__s3_note_skew(struct knn_s3_client *c, const struct knn_s3__response *resp)
{
    if (strcmp(resp->error.code, "RequestTimeTooSkewed") != 0 || resp->date_s <= 0)
        return;
    int64_t skew = resp->date_s - c->clock(c->clock_user);
    pthread_mutex_lock(&c->lock);
    c->skew_s = skew;
    pthread_mutex_unlock(&c->lock);
    KNN_LOG(
        KNN_LOG_WARN, KNN_LS_S3, "the local clock differs from the server's by %lld s: correcting", (long long)skew);
}

int knn__s3_execute(struct knn_s3_client *c, const struct knn_s3__request *req, struct knn_s3__response *resp)
{
    int uncertain;
    return knn__s3_execute_counted(c, req, resp, &uncertain);
}

int knn__s3_execute_counted(
    struct knn_s3_client *c, const struct knn_s3__request *req, struct knn_s3__response *resp, int *uncertain)
{
    struct knn_s3__prepared prep;
    struct knn_s3_http_exchange x;
    struct knn_s3__exchange_ctx ctx = {.resp = resp};
    struct knn_s3_http_session *session = NULL;
    int rc = 0, code = 0;
    knn__s3_prepared_init(&prep);
    *uncertain = 0;
    if ((rc = knn__s3_session_acquire(c, &session)))
        goto done;
    for (int attempt = 1;; attempt++) {
        knn__s3_response_reset(resp);
        if ((rc = knn__s3_check_cancel(c, req)) || (rc = knn__s3_prepare(&prep, c, req)))
            goto done;
        knn__s3_exchange_setup(&x, &ctx, c, req, &prep);
        if ((rc = knn__s3_http_perform(session, &x))) {
            knn__s3_session_release(c, session, 0);
            session = NULL;
            goto done;
        }
        knn__s3_exchange_finish(&x, resp);
        if (x.result == 0 && resp->content_length >= 0 && strcmp(req->method, "HEAD") != 0 &&
            resp->body_bytes != (uint64_t)resp->content_length) {
            x.result = KNN_ETRUNCATED; /* curl checks this too; never take a short body for a whole one */
            x.net_retryable = 1;
            snprintf(
                x.error, sizeof(x.error), "%llu of %lld bytes", (unsigned long long)resp->body_bytes,
                (long long)resp->content_length);
        }
        /* The request may have been acted on: the exchange failed after it was sent, or the
         * answer was a success we could not read in full. */
        if (x.result != 0 && (x.bytes_sent > 0 || req->body_len == 0 || resp->status != 0))
            (*uncertain)++;
        enum knn_s3__verdict v = knn__s3_classify(&code, c, req, &x, resp, attempt);
        if (v == KNN_S3__OK) {
            rc = 0;
            goto done;
        }
        if (v == KNN_S3__FAIL) {
            rc = code;
            goto done;
        }
        knn__s3_note_skew(c, resp);
        int wait = knn__s3_backoff_ms(c, attempt + 1);
        knn__s3_note_retry(c, req, &x, resp, wait);
        if ((rc = knn__s3_backoff_sleep(c, req, wait)))
            goto done;
    }
done:
    knn__s3_session_release(c, session, 1);
    knn__s3_prepared_clean_up(&prep);
    return rc;
}
