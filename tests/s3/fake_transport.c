/* An in-memory S3 behind the transport vtable, with scripted faults (see fake_transport.h).
 * It allocates with malloc, never knn_malloc, so that the allocation-failure tests make only the
 * client under test fail, never the fake server. */
#include "fake_transport.h"

#include "knn/common/error.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_OBJECTS 256
#define MAX_UPLOADS 16
#define MAX_PARTS 64
#define MAX_RULES 16
#define PIECE (64 * 1024)

struct fake_object {
    char *bucket, *key;
    uint8_t *data;
    size_t len;
    char etag[80];
};

struct fake_part {
    uint8_t *data;
    size_t len;
    unsigned char md5[16];
};

struct fake_upload {
    char id[32];
    char *bucket, *key;
    time_t initiated;
    struct fake_part parts[MAX_PARTS + 1];
};

struct fake_rule {
    char method[8];
    char url_part[128];
    int skip, count, seen, fired;
    enum fake_action action;
    int status;
    char code[64];
    size_t after;
};

struct fake_s3 {
    struct knn_s3_transport transport;
    pthread_mutex_t lock;
    struct fake_object objects[MAX_OBJECTS];
    struct fake_upload uploads[MAX_UPLOADS];
    struct fake_rule rules[MAX_RULES];
    int n_rules;
    int next_upload;
    int requests;
    char last_range[64];
    char last_if_match[96];
    char last_url[2048];
    char last_headers[16][1024];
    int n_last_headers;
    char header_out[1024];
};

struct fake_session {
    struct fake_s3 *f;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct knn_s3_http_exchange *pending[64];
    int n_pending;
    int woken;
};

/* A growable byte buffer of the fake (malloc-based). */
struct fbuf {
    uint8_t *data;
    size_t len, cap;
};

static int fbuf_append(struct fbuf *b, const void *d, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static int fbuf_printf(struct fbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fbuf_printf(struct fbuf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= sizeof(tmp) ? -1 : fbuf_append(b, tmp, (size_t)n);
}

static void fbuf_free(struct fbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int s_hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode n bytes of s into out (NUL-terminated). */
static int s_decode(struct fbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n && s_hexval(s[i + 1]) >= 0 && s_hexval(s[i + 2]) >= 0) {
            c = (char)(s_hexval(s[i + 1]) * 16 + s_hexval(s[i + 2]));
            i += 2;
        }
        if (fbuf_append(out, &c, 1))
            return -1;
    }
    return fbuf_append(out, "", 0);
}

/* ---- the store ---- */

static void s_md5(const uint8_t *d, size_t n, unsigned char out[16])
{
    unsigned int l = 0;
    EVP_Digest(d, n, out, &l, EVP_md5(), NULL);
}

static void s_hex_etag(char *out, size_t size, const unsigned char md5[16], int parts)
{
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md5[i]);
    if (parts)
        snprintf(out, size, "\"%s-%d\"", hex, parts);
    else
        snprintf(out, size, "\"%s\"", hex);
}

static struct fake_object *s_find(struct fake_s3 *f, const char *bucket, const char *key)
{
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (f->objects[i].key && strcmp(f->objects[i].bucket, bucket) == 0 && strcmp(f->objects[i].key, key) == 0)
            return &f->objects[i];
    return NULL;
}

static void s_object_free(struct fake_object *o)
{
    free(o->bucket);
    free(o->key);
    free(o->data);
    memset(o, 0, sizeof(*o));
}

/* Takes ownership of data. */
static int s_store(struct fake_s3 *f, const char *bucket, const char *key, uint8_t *data, size_t len, const char *etag)
{
    struct fake_object *o = s_find(f, bucket, key);
    if (!data)
        return -1;
    if (o) {
        free(o->data);
    } else {
        for (int i = 0; i < MAX_OBJECTS && !o; i++)
            if (!f->objects[i].key)
                o = &f->objects[i];
        if (!o) {
            free(data);
            return -1;
        }
        o->bucket = strdup(bucket);
        o->key = strdup(key);
        if (!o->bucket || !o->key) {
            free(o->bucket);
            free(o->key);
            memset(o, 0, sizeof(*o));
            free(data);
            return -1;
        }
    }
    o->data = data;
    o->len = len;
    snprintf(o->etag, sizeof(o->etag), "%s", etag);
    return 0;
}

struct fake_s3 *fake_s3_new(void);

int fake_s3_put(struct fake_s3 *f, const char *bucket, const char *key, const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    unsigned char md5[16];
    char etag[80];
    if (!copy)
        return -1;
    memcpy(copy, data, len);
    s_md5(copy, len, md5);
    s_hex_etag(etag, sizeof(etag), md5, 0);
    pthread_mutex_lock(&f->lock);
    int rc = s_store(f, bucket, key, copy, len, etag);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

const uint8_t *fake_s3_get(struct fake_s3 *f, const char *bucket, const char *key, size_t *len)
{
    pthread_mutex_lock(&f->lock);
    struct fake_object *o = s_find(f, bucket, key);
    pthread_mutex_unlock(&f->lock);
    if (!o)
        return NULL;
    *len = o->len;
    return o->data ? o->data : (const uint8_t *)"";
}

int fake_s3_uploads(struct fake_s3 *f)
{
    int n = 0;
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < MAX_UPLOADS; i++)
        n += f->uploads[i].id[0] != 0;
    pthread_mutex_unlock(&f->lock);
    return n;
}

int fake_s3_requests(struct fake_s3 *f)
{
    return f->requests;
}

const char *fake_s3_last_range(struct fake_s3 *f)
{
    return f->last_range;
}

const char *fake_s3_last_if_match(struct fake_s3 *f)
{
    return f->last_if_match;
}

const char *fake_s3_last_url(struct fake_s3 *f)
{
    return f->last_url;
}

const char *fake_s3_last_header(struct fake_s3 *f, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < f->n_last_headers; i++)
        if (strncasecmp(f->last_headers[i], name, n) == 0 && f->last_headers[i][n] == ':')
            return f->last_headers[i];
    return "";
}

int fake_s3_fault(
    struct fake_s3 *f, const char *method, const char *url_part, int skip, int count, enum fake_action action,
    int status, const char *code, size_t after)
{
    pthread_mutex_lock(&f->lock);
    int i = f->n_rules++;
    struct fake_rule *r = &f->rules[i];
    memset(r, 0, sizeof(*r));
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->url_part, sizeof(r->url_part), "%s", url_part);
    r->skip = skip;
    r->count = count;
    r->action = action;
    r->status = status;
    snprintf(r->code, sizeof(r->code), "%s", code ? code : "SlowDown");
    r->after = after;
    pthread_mutex_unlock(&f->lock);
    return i;
}

int fake_s3_fired(struct fake_s3 *f, int i)
{
    pthread_mutex_lock(&f->lock);
    int n = f->rules[i].fired;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* ---- serving one exchange ---- */

struct s_reply {
    int status;
    char headers[1024];
    const uint8_t *body; /* borrowed from the store, or owned_body */
    size_t body_len;
    struct fbuf owned_body;
};

static void s_error(struct s_reply *r, int status, const char *code)
{
    r->status = status;
    fbuf_printf(
        &r->owned_body,
        "<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>fake %s</Message>"
        "<RequestId>fake-req</RequestId></Error>",
        code, code);
    r->body = r->owned_body.data;
    r->body_len = r->owned_body.len;
}

static const char *s_header(const struct knn_s3_http_exchange *x, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < x->header_count; i++) {
        if (strncasecmp(x->headers[i], name, n) == 0 && x->headers[i][n] == ':') {
            const char *v = x->headers[i] + n + 1;
            while (*v == ' ')
                v++;
            snprintf(out, size, "%s", v);
            return out;
        }
    }
    return NULL;
}

static int s_query(const char *query, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= n && strncmp(p, name, n) == 0 && (len == n || p[n] == '=')) {
            struct fbuf b = {0};
            const char *v = len > n ? p + n + 1 : "";
            size_t vl = len > n ? len - n - 1 : 0;
            s_decode(&b, v, vl);
            snprintf(out, size, "%s", b.data ? (const char *)b.data : "");
            fbuf_free(&b);
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

static int s_md5_ok(const struct knn_s3_http_exchange *x, unsigned char md5[16])
{
    char given[64];
    unsigned char b64[32];
    s_md5(x->body ? x->body : (const uint8_t *)"", x->body_len, md5);
    if (!s_header(x, "content-md5", given, sizeof(given)))
        return 1;
    EVP_EncodeBlock(b64, md5, 16);
    return strcmp((const char *)b64, given) == 0;
}

static void s_serve(struct fake_s3 *f, struct knn_s3_http_exchange *x, struct s_reply *r)
{
    char bucket[256] = "", query_buf[4096] = "", v[512];
    struct fbuf keyb = {0};
    const char *url = strstr(x->url, "://");
    const char *path = url ? strchr(url + 3, '/') : NULL;
    if (!path) {
        s_error(r, 400, "BadURL");
        return;
    }
    const char *q = strchr(path, '?');
    size_t path_len = q ? (size_t)(q - path) : strlen(path);
    if (q)
        snprintf(query_buf, sizeof(query_buf), "%s", q + 1);
    const char *b = path + 1;
    size_t bl = strcspn(b, "/?");
    snprintf(bucket, sizeof(bucket), "%.*s", (int)bl, b);
    const char *k = b + bl;
    if (*k == '/' && (size_t)(k + 1 - path) <= path_len)
        s_decode(&keyb, k + 1, path_len - (size_t)(k + 1 - path));
    const char *key = keyb.data ? (const char *)keyb.data : "";
    unsigned char md5[16];
    char etag[80];

    if (strcmp(x->method, "PUT") == 0) {
        char part[16], id[64];
        if (!s_md5_ok(x, md5)) {
            s_error(r, 400, "BadDigest");
        } else if (
            s_query(query_buf, "partNumber", part, sizeof(part)) && s_query(query_buf, "uploadId", id, sizeof(id))) {
            struct fake_upload *u = NULL;
            for (int i = 0; i < MAX_UPLOADS && !u; i++)
                if (strcmp(f->uploads[i].id, id) == 0)
                    u = &f->uploads[i];
            int pn = atoi(part); /* checksrc: allow (test fake) */
            if (!u) {
                s_error(r, 404, "NoSuchUpload");
            } else if (pn < 1 || pn > MAX_PARTS) {
                s_error(r, 400, "InvalidArgument");
            } else {
                free(u->parts[pn].data);
                u->parts[pn].data = malloc(x->body_len ? x->body_len : 1);
                if (!u->parts[pn].data) {
                    s_error(r, 500, "InternalError");
                } else {
                    memcpy(u->parts[pn].data, x->body, x->body_len);
                    u->parts[pn].len = x->body_len;
                    memcpy(u->parts[pn].md5, md5, 16);
                    s_hex_etag(etag, sizeof(etag), md5, 0);
                    r->status = 200;
                    snprintf(r->headers, sizeof(r->headers), "ETag: %s\r\n", etag);
                }
            }
        } else {
            uint8_t *copy = malloc(x->body_len ? x->body_len : 1);
            if (copy)
                memcpy(copy, x->body, x->body_len);
            s_hex_etag(etag, sizeof(etag), md5, 0);
            if (s_store(f, bucket, key, copy, x->body_len, etag) != 0) {
                s_error(r, 500, "InternalError");
            } else {
                r->status = 200;
                snprintf(r->headers, sizeof(r->headers), "ETag: %s\r\n", etag);
            }
        }
    } else if (strcmp(x->method, "POST") == 0) {
        char id[64];
        if (s_query(query_buf, "uploads", v, sizeof(v))) {
            struct fake_upload *u = NULL;
            for (int i = 0; i < MAX_UPLOADS && !u; i++)
                if (!f->uploads[i].id[0])
                    u = &f->uploads[i];
            char *ub = u ? strdup(bucket) : NULL, *uk = u ? strdup(key) : NULL;
            if (!ub || !uk) {
                free(ub);
                free(uk);
                s_error(r, 500, "InternalError");
                goto out;
            }
            snprintf(u->id, sizeof(u->id), "fake-upload-%d", ++f->next_upload);
            u->bucket = ub;
            u->key = uk;
            u->initiated = time(NULL);
            r->status = 200;
            fbuf_printf(
                &r->owned_body,
                "<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>x</Key><UploadId>%s"
                "</UploadId></InitiateMultipartUploadResult>",
                bucket, u->id);
            r->body = r->owned_body.data;
            r->body_len = r->owned_body.len;
        } else if (s_query(query_buf, "uploadId", id, sizeof(id))) {
            struct fake_upload *u = NULL;
            for (int i = 0; i < MAX_UPLOADS && !u; i++)
                if (strcmp(f->uploads[i].id, id) == 0)
                    u = &f->uploads[i];
            int n = 0;
            for (const char *p = (const char *)x->body; p && (p = strstr(p, "<Part>")); p += 6)
                n++;
            if (!u) {
                s_error(r, 404, "NoSuchUpload");
            } else {
                size_t total = 0;
                int ok = n > 0;
                EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
                for (int pn = 1; pn <= n && ok; pn++) {
                    ok = u->parts[pn].data != NULL && (pn == n || u->parts[pn].len >= 5 * 1024 * 1024);
                    total += u->parts[pn].len;
                    EVP_DigestUpdate(ctx, u->parts[pn].md5, 16);
                }
                unsigned int l;
                EVP_DigestFinal_ex(ctx, md5, &l);
                EVP_MD_CTX_free(ctx);
                if (!ok) {
                    s_error(r, 400, "EntityTooSmall");
                } else {
                    uint8_t *data = malloc(total ? total : 1);
                    if (!data) {
                        s_error(r, 500, "InternalError");
                        goto out;
                    }
                    size_t off = 0;
                    for (int pn = 1; pn <= n; pn++) {
                        memcpy(data + off, u->parts[pn].data, u->parts[pn].len);
                        off += u->parts[pn].len;
                    }
                    s_hex_etag(etag, sizeof(etag), md5, n);
                    if (s_store(f, u->bucket, u->key, data, total, etag) != 0) {
                        s_error(r, 500, "InternalError");
                        goto out;
                    }
                    for (int pn = 0; pn <= MAX_PARTS; pn++)
                        free(u->parts[pn].data);
                    free(u->bucket);
                    free(u->key);
                    memset(u, 0, sizeof(*u));
                    r->status = 200;
                    fbuf_printf(
                        &r->owned_body,
                        "<CompleteMultipartUploadResult><ETag>%s</ETag>"
                        "</CompleteMultipartUploadResult>",
                        etag);
                    r->body = r->owned_body.data;
                    r->body_len = r->owned_body.len;
                }
            }
        } else {
            s_error(r, 400, "InvalidRequest");
        }
    } else if (strcmp(x->method, "DELETE") == 0) {
        char id[64];
        if (s_query(query_buf, "uploadId", id, sizeof(id))) {
            struct fake_upload *u = NULL;
            for (int i = 0; i < MAX_UPLOADS && !u; i++)
                if (strcmp(f->uploads[i].id, id) == 0)
                    u = &f->uploads[i];
            if (!u) {
                s_error(r, 404, "NoSuchUpload");
            } else {
                for (int pn = 0; pn <= MAX_PARTS; pn++)
                    free(u->parts[pn].data);
                free(u->bucket);
                free(u->key);
                memset(u, 0, sizeof(*u));
                r->status = 204;
            }
        } else {
            struct fake_object *o = s_find(f, bucket, key);
            if (o)
                s_object_free(o);
            r->status = 204;
        }
    } else if (strcmp(x->method, "GET") == 0 && !*key && s_query(query_buf, "uploads", v, sizeof(v))) {
        /* ListMultipartUploads (one page, raw keys) */
        char prefix[512] = "";
        s_query(query_buf, "prefix", prefix, sizeof(prefix));
        int bad = fbuf_printf(&r->owned_body, "<ListMultipartUploadsResult><Bucket>%s</Bucket>", bucket);
        for (int i = 0; i < MAX_UPLOADS && !bad; i++) {
            struct fake_upload *u = &f->uploads[i];
            if (!u->id[0] || strcmp(u->bucket, bucket) != 0 || strncmp(u->key, prefix, strlen(prefix)) != 0)
                continue;
            struct tm tm;
            char when[32];
            gmtime_r(&u->initiated, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
            bad = fbuf_printf(
                &r->owned_body,
                "<Upload><Key>%s</Key><UploadId>%s</UploadId><Initiated>%s</Initiated>"
                "</Upload>",
                u->key, u->id, when);
        }
        if (!bad)
            bad = fbuf_printf(&r->owned_body, "<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>");
        if (bad) {
            s_error(r, 500, "InternalError");
        } else {
            r->status = 200;
            r->body = r->owned_body.data;
            r->body_len = r->owned_body.len;
        }
    } else { /* GET, HEAD */
        struct fake_object *o = s_find(f, bucket, key);
        char range[64], if_match[96];
        int has_range = s_header(x, "range", range, sizeof(range)) != NULL;
        int has_if = s_header(x, "if-match", if_match, sizeof(if_match)) != NULL;
        if (strcmp(x->method, "GET") == 0) {
            snprintf(f->last_range, sizeof(f->last_range), "%s", has_range ? range : "");
            snprintf(f->last_if_match, sizeof(f->last_if_match), "%s", has_if ? if_match : "");
        }
        if (!o) {
            if (strcmp(x->method, "HEAD") == 0)
                r->status = 404;
            else
                s_error(r, 404, "NoSuchKey");
        } else if (has_if && strcmp(if_match, o->etag) != 0) {
            s_error(r, 412, "PreconditionFailed");
        } else if (has_range) {
            unsigned long long a = 0, e = 0;
            int n = sscanf(range, "bytes=%llu-%llu", &a, &e);
            if (n < 2)
                e = o->len ? o->len - 1 : 0;
            if (n < 1 || a >= o->len || e < a) {
                s_error(r, 416, "InvalidRange");
            } else {
                if (e >= o->len)
                    e = o->len - 1;
                r->status = 206;
                if (fbuf_append(&r->owned_body, o->data + a, (size_t)(e - a + 1)) != 0) {
                    s_error(r, 500, "InternalError");
                    goto out;
                }
                r->body = r->owned_body.data;
                r->body_len = (size_t)(e - a + 1);
                snprintf(
                    r->headers, sizeof(r->headers), "ETag: %s\r\nContent-Range: bytes %llu-%llu/%zu\r\n", o->etag, a, e,
                    o->len);
            }
        } else {
            if (o->len && fbuf_append(&r->owned_body, o->data, o->len) != 0) {
                s_error(r, 500, "InternalError");
                goto out;
            }
            r->status = 200;
            r->body = r->owned_body.data;
            r->body_len = o->len;
            snprintf(r->headers, sizeof(r->headers), "ETag: %s\r\n", o->etag);
        }
    }
out:
    fbuf_free(&keyb);
}

static struct fake_rule *s_pick(struct fake_s3 *f, const struct knn_s3_http_exchange *x)
{
    for (int i = 0; i < f->n_rules; i++) {
        struct fake_rule *r = &f->rules[i];
        if (r->fired >= r->count || strcmp(r->method, x->method) != 0 || !strstr(x->url, r->url_part))
            continue;
        if (++r->seen <= r->skip)
            continue;
        r->fired++;
        return r;
    }
    return NULL;
}

/* Run one exchange to completion: its callbacks and its result. */
static void s_run(struct fake_s3 *f, struct knn_s3_http_exchange *x)
{
    struct s_reply r;
    memset(&r, 0, sizeof(r));

    pthread_mutex_lock(&f->lock);
    f->requests++;
    snprintf(f->last_url, sizeof(f->last_url), "%s", x->url);
    f->n_last_headers = 0;
    for (size_t i = 0; i < x->header_count && i < 16; i++)
        snprintf(f->last_headers[f->n_last_headers++], sizeof(f->last_headers[0]), "%s", x->headers[i]);
    struct fake_rule rule_copy, *rule = s_pick(f, x);
    if (rule)
        rule_copy = *rule;
    if (rule && rule_copy.action == FAKE_STATUS)
        s_error(&r, rule_copy.status, rule_copy.code);
    else if (!rule || rule_copy.action != FAKE_RESET)
        s_serve(f, x, &r);
    pthread_mutex_unlock(&f->lock);
    x->result = 0;
    x->net_retryable = 0;
    x->error[0] = '\0';
    if (rule && rule_copy.action == FAKE_RESET) {
        x->result = KNN_ES3_NET;
        x->net_retryable = 1;
        snprintf(x->error, sizeof(x->error), "Connection reset by peer (fake)");
        goto done;
    }
    char line[1200];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d Fake\r\n", r.status);
    int rc = x->on_header(x->user, line, (size_t)n);
    n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", r.body_len);
    if (!rc)
        rc = x->on_header(x->user, line, (size_t)n);
    n = snprintf(line, sizeof(line), "x-amz-request-id: fake-%d\r\n", f->requests);
    if (!rc)
        rc = x->on_header(x->user, line, (size_t)n);
    for (char *p = r.headers; !rc && *p;) {
        char *end = strstr(p, "\r\n");
        rc = x->on_header(x->user, p, (size_t)(end + 2 - p));
        p = end + 2;
    }
    if (!rc)
        rc = x->on_header(x->user, "\r\n", 2);
    size_t limit = rule && rule_copy.action == FAKE_TRUNCATE ? rule_copy.after : r.body_len;
    if (limit > r.body_len)
        limit = r.body_len;
    int head = strcmp(x->method, "HEAD") == 0;
    for (size_t off = 0; !rc && !head && off < limit;) {
        size_t k = limit - off < PIECE ? limit - off : PIECE;
        rc = x->on_body(x->user, r.body + off, k);
        off += k;
    }
    if (rc) {
        x->result = rc;
    } else if (!head && limit < r.body_len) {
        x->result = KNN_ETRUNCATED;
        x->net_retryable = 1;
        snprintf(x->error, sizeof(x->error), "transfer closed with %zu bytes remaining (fake)", r.body_len - limit);
    }
done:
    fbuf_free(&r.owned_body);
}

/* ---- the vtable ---- */

static int s_session_new(const struct knn_s3_transport *t, struct knn_s3_http_session **out)
{
    struct knn_s3_http_session *s = calloc(1, sizeof(*s));
    struct fake_session *fs = calloc(1, sizeof(*fs));
    fs->f = t->impl;
    pthread_mutex_init(&fs->lock, NULL);
    pthread_cond_init(&fs->cond, NULL);
    s->transport = t;
    s->impl = fs;
    *out = s;
    return 0;
}

static void s_session_destroy(struct knn_s3_http_session *s)
{
    struct fake_session *fs = s->impl;
    pthread_cond_destroy(&fs->cond);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
    free(s);
}

static int s_start(struct knn_s3_http_session *s, struct knn_s3_http_exchange *x)
{
    struct fake_session *fs = s->impl;
    pthread_mutex_lock(&fs->lock);
    fs->pending[fs->n_pending++] = x;
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

static int s_poll(struct knn_s3_http_session *s, int timeout_ms, struct knn_s3_http_exchange **done)
{
    struct fake_session *fs = s->impl;
    *done = NULL;
    pthread_mutex_lock(&fs->lock);
    if (fs->n_pending == 0 && !fs->woken && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&fs->cond, &fs->lock, &ts);
    }
    fs->woken = 0;
    struct knn_s3_http_exchange *x = NULL;
    if (fs->n_pending) {
        x = fs->pending[0];
        memmove(fs->pending, fs->pending + 1, (size_t)(fs->n_pending - 1) * sizeof(fs->pending[0]));
        fs->n_pending--;
    }
    pthread_mutex_unlock(&fs->lock);
    if (x) {
        s_run(fs->f, x);
        *done = x;
    }
    return 0;
}

static void s_cancel(struct knn_s3_http_session *s, struct knn_s3_http_exchange *x)
{
    struct fake_session *fs = s->impl;
    pthread_mutex_lock(&fs->lock);
    for (int i = 0; i < fs->n_pending; i++) {
        if (fs->pending[i] == x) {
            memmove(fs->pending + i, fs->pending + i + 1, (size_t)(fs->n_pending - i - 1) * sizeof(fs->pending[0]));
            fs->n_pending--;
            break;
        }
    }
    pthread_mutex_unlock(&fs->lock);
}

static void s_wakeup(struct knn_s3_http_session *s)
{
    struct fake_session *fs = s->impl;
    pthread_mutex_lock(&fs->lock);
    fs->woken = 1;
    pthread_cond_broadcast(&fs->cond);
    pthread_mutex_unlock(&fs->lock);
}

static const struct knn_s3_transport_vtable s_vtable = {
    s_session_new, s_session_destroy, s_start, s_poll, s_cancel, s_wakeup,
};

struct fake_s3 *fake_s3_new(void)
{
    struct fake_s3 *f = calloc(1, sizeof(*f));
    f->transport.vtable = &s_vtable;
    f->transport.impl = f;
    pthread_mutex_init(&f->lock, NULL);
    return f;
}

void fake_s3_destroy(struct fake_s3 *f)
{
    for (int i = 0; i < MAX_OBJECTS; i++)
        s_object_free(&f->objects[i]);
    for (int i = 0; i < MAX_UPLOADS; i++) {
        for (int pn = 0; pn <= MAX_PARTS; pn++)
            free(f->uploads[i].parts[pn].data);
        free(f->uploads[i].bucket);
        free(f->uploads[i].key);
    }
    pthread_mutex_destroy(&f->lock);
    free(f);
}

const struct knn_s3_transport *fake_s3_transport(struct fake_s3 *f)
{
    return &f->transport;
}
