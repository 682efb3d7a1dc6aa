/* Credentials from HTTP endpoints: containers (ECS/EKS/SageMaker) and EC2 instance metadata (IMDSv2). */
#include "credentials_impl.h"
#include "curl_init.h"
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/credentials.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_MAX_BODY (64 * 1024)
#define S_CONTAINER_HOST "http://169.254.170.2"
#define S_IMDS_ENDPOINT "http://169.254.169.254"

/* ---- a minimal HTTP client for these small endpoints ---- */

static size_t s_write(char *data, size_t size, size_t n, void *user)
{
    struct knn__s3_http_result *r = user;
    size_t len = size * n;
    return knn_buf_append(&r->body, data, len) ? 0 : len;
}

void knn__s3_http_result_clean_up(struct knn__s3_http_result *r)
{
    if (r->body.data)
        OPENSSL_cleanse(r->body.data, r->body.cap); /* credentials bodies hold secrets */
    knn_buf_clean_up(&r->body);
}

int knn__s3_http_simple(
    struct knn__s3_http_result *out, const char *method, const char *url, const char *const *headers, int header_count,
    int timeout_ms)
{
    int rc = 0;
    struct curl_slist *list = NULL;
    out->status = 0;
    out->curl_code = 0;
    knn_buf_init(&out->body, S_MAX_BODY);
    if ((rc = knn__s3_curl_global_init()))
        return rc;
    CURL *h = curl_easy_init();
    if (!h)
        return knn_error_set(KNN_ENOMEM, "curl_easy_init failed");
    for (int i = 0; i < header_count; i++) {
        struct curl_slist *next = curl_slist_append(list, headers[i]);
        if (!next) {
            rc = KNN_ENOMEM;
            goto done;
        }
        list = next;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* link-local and loopback endpoints: never through a proxy */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    const char *ca = getenv("AWS_CA_BUNDLE");
    if (ca && *ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    CURLcode cc = curl_easy_perform(h);
    out->curl_code = (int)cc;
    if (cc != CURLE_OK) {
        /* The URL is not secret (tokens travel in headers); the headers are never printed. */
        rc = knn_error_set(KNN_ES3_NET, "%s %s: %s", method, url, curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
done:
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
    return rc;
}

/* ---- ISO 8601 and a minimal JSON object reader ---- */

static int s_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int knn__s3_parse_iso8601(int64_t *out, const char *s, size_t len)
{
    int y, mo, d, h, mi, sec;
    struct tm tm;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' ||
        s_digits(s, 4, &y) || s_digits(s + 5, 2, &mo) || s_digits(s + 8, 2, &d) || s_digits(s + 11, 2, &h) ||
        s_digits(s + 14, 2, &mi) || s_digits(s + 17, 2, &sec))
        return knn_error_set(KNN_EFORMAT, "'%.*s' is not an ISO 8601 time", (int)(len > 64 ? 64 : len), s);
    size_t i = 19;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    int ok = (len - i == 1 && (s[i] == 'Z' || s[i] == 'z')) || (len - i == 6 && strncmp(s + i, "+00:00", 6) == 0);
    if (!ok || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return knn_error_set(KNN_EFORMAT, "'%.*s' is not an ISO 8601 UTC time", (int)(len > 64 ? 64 : len), s);
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (int64_t)timegm(&tm);
    return 0;
}

struct s_json {
    const char *p;
    const char *end;
    const char *start;
    int depth;
};

static void s_ws(struct s_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int s_json_error(struct s_json *j, const char *what)
{
    return knn_error_set(KNN_EFORMAT, "JSON: %s at offset %zu", what, (size_t)(j->p - j->start));
}

/* A string starting at j->p (the quote); decoded into `out` if not NULL. */
static int s_json_string(struct s_json *j, struct knn_buf *out)
{
    if (j->p >= j->end || *j->p != '"')
        return s_json_error(j, "expected a string");
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return out ? knn_buf_append(out, "", 0) : 0;
        if (c < 0x20)
            return s_json_error(j, "control character in a string");
        if (c != '\\') {
            if (out && knn_buf_append(out, &c, 1))
                return KNN_ETOOBIG;
            continue;
        }
        if (j->p >= j->end)
            break;
        char e = *j->p++;
        char lit = 0;
        switch (e) {
            case '"':
                lit = '"';
                break;
            case '\\':
                lit = '\\';
                break;
            case '/':
                lit = '/';
                break;
            case 'b':
                lit = '\b';
                break;
            case 'f':
                lit = '\f';
                break;
            case 'n':
                lit = '\n';
                break;
            case 'r':
                lit = '\r';
                break;
            case 't':
                lit = '\t';
                break;
            case 'u': {
                unsigned cp = 0;
                for (int k = 0; k < 4; k++) {
                    if (j->p >= j->end)
                        return s_json_error(j, "truncated \\u escape");
                    char hc = *j->p++;
                    int v = (hc >= '0' && hc <= '9')   ? hc - '0'
                            : (hc >= 'a' && hc <= 'f') ? hc - 'a' + 10
                            : (hc >= 'A' && hc <= 'F') ? hc - 'A' + 10
                                                       : -1;
                    if (v < 0)
                        return s_json_error(j, "bad \\u escape");
                    cp = cp * 16 + (unsigned)v;
                }
                if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x7F)
                    return s_json_error(j, "non-ASCII \\u escape in a credentials field");
                lit = (char)cp;
                break;
            }
            default:
                return s_json_error(j, "bad escape");
        }
        if (out && knn_buf_append(out, &lit, 1))
            return KNN_ETOOBIG;
    }
    return s_json_error(j, "unterminated string");
}

static int s_json_skip_value(struct s_json *j)
{
    s_ws(j);
    if (j->p >= j->end)
        return s_json_error(j, "expected a value");
    char c = *j->p;
    if (c == '"')
        return s_json_string(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        if (++j->depth > 32)
            return s_json_error(j, "nested too deep");
        j->p++;
        s_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return 0;
        }
        for (;;) {
            int rc;
            if (c == '{') {
                s_ws(j);
                if ((rc = s_json_string(j, NULL)))
                    return rc;
                s_ws(j);
                if (j->p >= j->end || *j->p != ':')
                    return s_json_error(j, "expected ':'");
                j->p++;
            }
            if ((rc = s_json_skip_value(j)))
                return rc;
            s_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == close) {
                j->p++;
                j->depth--;
                return 0;
            }
            return s_json_error(j, "expected ',' or a closing bracket");
        }
    }
    /* number, true, false, null: a run of their characters */
    const char *start = j->p;
    while (j->p < j->end && strchr("+-.0123456789eEtruefalsn", *j->p))
        j->p++;
    if (j->p == start)
        return s_json_error(j, "unexpected character");
    return 0;
}

enum { S_F_AK, S_F_SK, S_F_TOKEN, S_F_EXPIRATION, S_F_CODE, S_F_SESSION_TOKEN, S_F_COUNT };
/* "SessionToken" is credential_process's name for the token. */
static const char *const s_fields[S_F_COUNT] = {"AccessKeyId", "SecretAccessKey", "Token",
                                                "Expiration",  "Code",            "SessionToken"};

int knn__s3_credentials_from_json(struct knn_s3_credentials *out, const char *json, size_t len, const char *what)
{
    struct s_json j = {json, json + len, json, 0};
    struct knn_buf key = KNN_BUF_INIT(256);
    struct knn_buf val[S_F_COUNT];
    int rc = 0;
    for (int i = 0; i < S_F_COUNT; i++)
        knn_buf_init(&val[i], 16 * 1024);
    memset(out, 0, sizeof(*out));

    s_ws(&j);
    if (j.p >= j.end || *j.p != '{') {
        rc = s_json_error(&j, "expected an object");
        goto done;
    }
    j.p++;
    s_ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            s_ws(&j);
            knn_buf_reset(&key);
            if ((rc = s_json_string(&j, &key)))
                goto done;
            s_ws(&j);
            if (j.p >= j.end || *j.p != ':') {
                rc = s_json_error(&j, "expected ':'");
                goto done;
            }
            j.p++;
            s_ws(&j);
            int field = -1;
            for (int i = 0; i < S_F_COUNT; i++)
                if (key.len && strcmp((const char *)key.data, s_fields[i]) == 0)
                    field = i;
            if (field >= 0 && j.p < j.end && *j.p == '"') {
                knn_buf_reset(&val[field]);
                rc = s_json_string(&j, &val[field]);
            } else {
                rc = s_json_skip_value(&j);
            }
            if (rc)
                goto done;
            s_ws(&j);
            if (j.p < j.end && *j.p == ',') {
                j.p++;
                continue;
            }
            if (j.p < j.end && *j.p == '}') {
                j.p++;
                break;
            }
            rc = s_json_error(&j, "expected ',' or '}'");
            goto done;
        }
    }
    s_ws(&j);
    if (j.p != j.end) {
        rc = s_json_error(&j, "trailing bytes after the object");
        goto done;
    }
    if (val[S_F_CODE].len && strcmp((const char *)val[S_F_CODE].data, "Success") != 0) {
        rc = knn_error_set(
            KNN_ES3_CREDENTIALS, "%s: credentials response has Code '%.64s'", what, (const char *)val[S_F_CODE].data);
        goto done;
    }
    if (!val[S_F_AK].len || !val[S_F_SK].len) {
        rc = knn_error_set(KNN_ES3_CREDENTIALS, "%s: response has no AccessKeyId or SecretAccessKey", what);
        goto done;
    }
    int64_t expiration = 0;
    if (val[S_F_EXPIRATION].len &&
        (rc = knn__s3_parse_iso8601(&expiration, (const char *)val[S_F_EXPIRATION].data, val[S_F_EXPIRATION].len))) {
        rc = knn_error_wrap(rc, "%s: Expiration", what);
        goto done;
    }
    int tk = val[S_F_TOKEN].len ? S_F_TOKEN : S_F_SESSION_TOKEN;
    rc = knn__s3_credentials_set(
        out, (const char *)val[S_F_AK].data, val[S_F_AK].len, (const char *)val[S_F_SK].data, val[S_F_SK].len,
        (const char *)val[tk].data, val[tk].len, expiration);
    if (rc == 0)
        snprintf(out->source, sizeof(out->source), "%s", what);
done:
    if (rc && rc != KNN_ES3_CREDENTIALS && rc != KNN_ENOMEM)
        rc = knn_error_wrap(KNN_EFORMAT, "%s: credentials response", what);
    knn_buf_clean_up(&key);
    for (int i = 0; i < S_F_COUNT; i++) {
        if (val[i].data)
            OPENSSL_cleanse(val[i].data, val[i].cap);
        knn_buf_clean_up(&val[i]);
    }
    return rc;
}

/* ---- container credentials ---- */

struct s_http_opts {
    int timeout_ms;
    int max_attempts;
};

static int s_env_int(const char *name, int fallback, int scale)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || d <= 0 || d > 3600)
        return fallback;
    return (int)(d * scale);
}

/* http:// is allowed only to loopback and the ECS/EKS link-local addresses (as the SDKs do). */
static int s_full_uri_allowed(const char *uri)
{
    if (strncasecmp(uri, "https://", 8) == 0)
        return 1;
    if (strncasecmp(uri, "http://", 7) != 0)
        return 0;
    const char *host = uri + 7;
    size_t hl;
    if (*host == '[') {
        hl = strcspn(host, "]");
        if (host[hl] != ']')
            return 0;
        hl++;
    } else {
        hl = strcspn(host, ":/?#");
    }
    static const char *const allowed[] = {"localhost", "[::1]", "169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (strlen(allowed[i]) == hl && strncasecmp(host, allowed[i], hl) == 0)
            return 1;
    /* 127.0.0.0/8 */
    if (hl >= 9 && strncmp(host, "127.", 4) == 0) {
        for (size_t i = 4; i < hl; i++)
            if (!((host[i] >= '0' && host[i] <= '9') || host[i] == '.'))
                return 0;
        return 1;
    }
    return 0;
}

static int s_read_token_file(char **out, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return knn_error_set(
            KNN_ES3_CREDENTIALS, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s", path, strerror(errno));
    struct knn_buf b = KNN_BUF_INIT(16 * 1024);
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && !rc)
        rc = knn_buf_append(&b, chunk, n);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    fclose(f);
    if (!rc)
        rc = knn_buf_append(&b, "", 0);
    if (rc) {
        knn_buf_clean_up(&b);
        return knn_error_wrap(rc, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s", path);
    }
    while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
        b.data[--b.len] = '\0';
    *out = (char *)knn_buf_detach(&b, NULL);
    return 0;
}

static int s_container_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    const struct s_http_opts *o = p->impl;
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    struct knn_buf url = KNN_BUF_INIT(8192);
    struct knn_buf auth = KNN_BUF_INIT(16 * 1024 + 64);
    char *token = NULL;
    struct knn__s3_http_result r = {0};
    int rc = 0;

    if (rel && *rel) {
        rc = knn_buf_printf(&url, "%s%s%s", S_CONTAINER_HOST, rel[0] == '/' ? "" : "/", rel);
    } else if (full && *full) {
        if (!s_full_uri_allowed(full))
            return knn_error_set(
                KNN_EINVAL,
                "AWS_CONTAINER_CREDENTIALS_FULL_URI '%s': http:// is only allowed to a loopback address or "
                "169.254.170.2 / 169.254.170.23; use https://",
                full);
        rc = knn_buf_append_str(&url, full);
    } else {
        return knn_error_set(
            KNN_ENOTFOUND, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
    }
    if (rc)
        goto done;
    const char *token_file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *token_env = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (token_file && *token_file) {
        if ((rc = s_read_token_file(&token, token_file)))
            goto done;
    } else if (token_env && *token_env) {
        if (!(token = knn_strdup(token_env))) {
            rc = KNN_ENOMEM;
            goto done;
        }
    }
    const char *headers[2] = {"Accept: application/json", NULL};
    int nh = 1;
    if (token) {
        if (strpbrk(token, "\r\n")) {
            rc = knn_error_set(KNN_ES3_CREDENTIALS, "the container authorization token contains a line break");
            goto done;
        }
        if ((rc = knn_buf_printf(&auth, "Authorization: %s", token)))
            goto done;
        headers[nh++] = (const char *)auth.data;
    }
    for (int attempt = 1; attempt <= o->max_attempts; attempt++) {
        knn__s3_http_result_clean_up(&r);
        rc = knn__s3_http_simple(&r, "GET", (const char *)url.data, headers, nh, o->timeout_ms);
        if (rc == 0 && r.status == 200)
            break;
        if (rc == 0) {
            rc = knn_error_set(
                KNN_ES3_CREDENTIALS, "container credentials endpoint %s answered HTTP %ld", (const char *)url.data,
                r.status);
            if (r.status < 500 && r.status != 429)
                break; /* 4xx: retrying will not help */
        }
        KNN_LOG(KNN_LOG_DEBUG, KNN_LS_S3, "container credentials attempt %d: %s", attempt, knn_error_message());
    }
    if (rc) {
        if (rc == KNN_ES3_NET)
            rc = knn_error_wrap(KNN_ES3_CREDENTIALS, "container credentials");
        goto done;
    }
    rc = knn__s3_credentials_from_json(out, (const char *)r.body.data, r.body.len, "container credentials");
done:
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        knn_free(token);
    }
    if (auth.data)
        OPENSSL_cleanse(auth.data, auth.cap);
    knn_buf_clean_up(&auth);
    knn_buf_clean_up(&url);
    knn__s3_http_result_clean_up(&r);
    return rc;
}

static void s_http_destroy(struct knn_s3_credentials_provider *p)
{
    knn_free(p->impl);
    knn_free(p);
}

static const struct knn_s3_credentials_provider_vtable s_container_vtable = {s_container_get, s_http_destroy};

static int s_http_provider_new(
    struct knn_s3_credentials_provider **out, const struct knn_s3_credentials_provider_vtable *vt, const char *name,
    const struct knn_s3_http_credentials_options *opts, int default_timeout_ms, int default_attempts)
{
    *out = NULL;
    struct s_http_opts *o = knn_calloc(1, sizeof(*o));
    if (!o)
        return KNN_ENOMEM;
    o->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : default_timeout_ms;
    o->max_attempts = opts && opts->max_attempts > 0 ? opts->max_attempts : default_attempts;
    int rc = knn__s3_provider_new(out, vt, name, o);
    if (rc)
        knn_free(o);
    return rc;
}

int knn_s3_credentials_provider_new_container(
    struct knn_s3_credentials_provider **out, const struct knn_s3_http_credentials_options *opts)
{
    return s_http_provider_new(out, &s_container_vtable, "container", opts, 2000, 3);
}

/* ---- EC2 instance metadata ---- */

static int s_imds_disabled(void)
{
    const char *v = getenv("AWS_EC2_METADATA_DISABLED");
    return v && strcasecmp(v, "true") == 0;
}

/* One IMDS request with its retries; 0 with r->status set, or KNN_ES3_NET. */
static int s_imds_call(
    struct knn__s3_http_result *r, const struct s_http_opts *o, const char *method, const char *url,
    const char *const *headers, int nh)
{
    int rc = 0;
    for (int attempt = 1; attempt <= o->max_attempts; attempt++) {
        knn__s3_http_result_clean_up(r);
        rc = knn__s3_http_simple(r, method, url, headers, nh, o->timeout_ms);
        if (rc == 0 && r->status < 500)
            return 0;
    }
    return rc;
}

static int s_imds_get(struct knn_s3_credentials_provider *p, struct knn_s3_credentials *out)
{
    const struct s_http_opts *o = p->impl;
    struct knn_buf base = KNN_BUF_INIT(4096), url = KNN_BUF_INIT(8192), token_header = KNN_BUF_INIT(8192);
    struct knn__s3_http_result r = {0};
    int rc = 0, nh = 0;
    const char *headers[1];

    if (s_imds_disabled())
        return knn_error_set(KNN_ENOTFOUND, "EC2 instance metadata is disabled (AWS_EC2_METADATA_DISABLED)");
    const char *endpoint = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!endpoint || !*endpoint)
        endpoint = S_IMDS_ENDPOINT;
    if ((rc = knn_buf_append_str(&base, endpoint)))
        goto done;
    while (base.len && base.data[base.len - 1] == '/')
        base.data[--base.len] = '\0';

    /* IMDSv2: a session token first. */
    const char *ttl[1] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600"};
    if ((rc = knn_buf_printf(&url, "%s/latest/api/token", (const char *)base.data)))
        goto done;
    rc = s_imds_call(&r, o, "PUT", (const char *)url.data, ttl, 1);
    if (rc) {
        rc = knn_error_wrap(KNN_ENOTFOUND, "EC2 instance metadata did not answer");
        goto done;
    }
    if (r.status == 200 && r.body.len > 0 && r.body.len < 4096) {
        if (strpbrk((const char *)r.body.data, "\r\n")) {
            rc = knn_error_set(KNN_ES3_CREDENTIALS, "EC2 instance metadata: the session token has a line break");
            goto done;
        }
        if ((rc = knn_buf_printf(&token_header, "X-aws-ec2-metadata-token: %s", (const char *)r.body.data)))
            goto done;
        headers[nh++] = (const char *)token_header.data;
    } else if (r.status == 403 || r.status == 404 || r.status == 405) {
        KNN_LOG(KNN_LOG_DEBUG, KNN_LS_S3, "IMDSv2 token refused (HTTP %ld): falling back to IMDSv1", r.status);
    } else {
        rc = knn_error_set(KNN_ENOTFOUND, "EC2 instance metadata: token request answered HTTP %ld", r.status);
        goto done;
    }

    /* The role name, then its credentials. */
    knn_buf_reset(&url);
    if ((rc = knn_buf_printf(&url, "%s/latest/meta-data/iam/security-credentials/", (const char *)base.data)))
        goto done;
    if ((rc = s_imds_call(&r, o, "GET", (const char *)url.data, headers, nh))) {
        rc = knn_error_wrap(KNN_ES3_CREDENTIALS, "EC2 instance metadata");
        goto done;
    }
    if (r.status == 404) {
        rc = knn_error_set(KNN_ENOTFOUND, "EC2 instance metadata: the instance has no IAM role");
        goto done;
    }
    if (r.status != 200 || r.body.len == 0) { /* as the SDKs do: no usable instance role, try elsewhere */
        rc = knn_error_set(KNN_ENOTFOUND, "EC2 instance metadata: role query answered HTTP %ld", r.status);
        goto done;
    }
    size_t role_len = strcspn((const char *)r.body.data, "\r\n");
    const char *role = (const char *)r.body.data;
    for (size_t i = 0; i < role_len; i++) {
        char c = role[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("+=,.@_-", c))) {
            rc = knn_error_set(KNN_EFORMAT, "EC2 instance metadata: the role name has a bad character at %zu", i);
            goto done;
        }
    }
    struct knn_buf role_url = KNN_BUF_INIT(8192);
    rc = knn_buf_printf(&role_url, "%s%.*s", (const char *)url.data, (int)role_len, role);
    if (!rc)
        rc = s_imds_call(&r, o, "GET", (const char *)role_url.data, headers, nh);
    knn_buf_clean_up(&role_url);
    if (rc) {
        rc = knn_error_wrap(KNN_ES3_CREDENTIALS, "EC2 instance metadata");
        goto done;
    }
    if (r.status != 200) {
        rc = knn_error_set(KNN_ES3_CREDENTIALS, "EC2 instance metadata: credentials query answered HTTP %ld", r.status);
        goto done;
    }
    rc = knn__s3_credentials_from_json(out, (const char *)r.body.data, r.body.len, "EC2 instance metadata");
done:
    if (token_header.data)
        OPENSSL_cleanse(token_header.data, token_header.cap);
    knn_buf_clean_up(&token_header);
    knn_buf_clean_up(&base);
    knn_buf_clean_up(&url);
    knn__s3_http_result_clean_up(&r);
    return rc;
}

static const struct knn_s3_credentials_provider_vtable s_imds_vtable = {s_imds_get, s_http_destroy};

int knn_s3_credentials_provider_new_imds(
    struct knn_s3_credentials_provider **out, const struct knn_s3_http_credentials_options *opts)
{
    int timeout_ms = s_env_int("AWS_METADATA_SERVICE_TIMEOUT", 1000, 1000);
    int attempts = s_env_int("AWS_METADATA_SERVICE_NUM_ATTEMPTS", 1, 1);
    return s_http_provider_new(out, &s_imds_vtable, "imds", opts, timeout_ms, attempts);
}
