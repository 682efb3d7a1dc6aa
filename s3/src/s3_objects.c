/* The simple object operations: HEAD, list, GET (streamed, resumed), single PUT, DELETE, uploads. */
#include "credentials_impl.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/client.h"
#include "knn/s3/uri.h"
#include "s3_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LIST_BODY_CAP (16u * 1024 * 1024) /* a page of 1,000 keys of 1 KiB each is ~1.3 MiB */

static int s_check_args(const char *op, const char *bucket, const char *key)
{
    if (!bucket || !*bucket)
        return knn_error_set(KNN_EINVAL, "%s: no bucket", op);
    if (key && strlen(key) > 1024)
        return knn_error_set(KNN_EINVAL, "%s s3://%s/%.64s...: key longer than S3's 1024 bytes", op, bucket, key);
    return 0;
}

void knn_s3_object_info_clean_up(struct knn_s3_object_info *info)
{
    if (!info)
        return;
    knn_free(info->key);
    knn_free(info->etag);
    memset(info, 0, sizeof(*info));
}

/* ---- HEAD ---- */

int knn_s3_head(struct knn_s3_object_info *out, struct knn_s3_client *client, const char *bucket, const char *key)
{
    struct knn_s3__request req = {.op = "HeadObject", .method = "HEAD", .bucket = bucket, .key = key};
    struct knn_s3__response resp;
    memset(out, 0, sizeof(*out));
    int rc = s_check_args(req.op, bucket, key ? key : "");
    if (rc)
        return rc;
    if (!key || !*key)
        return knn_error_set(KNN_EINVAL, "HeadObject s3://%s: no key", bucket);
    knn__s3_response_init(&resp, 0);
    rc = knn__s3_execute(client, &req, &resp);
    if (rc == KNN_ENOTFOUND && resp.status == 404)
        rc = knn_error_set(
            KNN_ES3_NO_SUCH_KEY,
            "HeadObject s3://%s/%s: no such key (HTTP 404, request id %s; a HEAD "
            "cannot tell a missing key from a missing bucket)",
            bucket, key, resp.request_id[0] ? resp.request_id : "none");
    if (!rc) {
        if (resp.content_length < 0) {
            rc = knn_error_set(KNN_EFORMAT, "HeadObject s3://%s/%s: no Content-Length in the response", bucket, key);
        } else if (!(out->key = knn_strdup(key)) || !(out->etag = knn_strdup(resp.etag))) {
            rc = KNN_ENOMEM;
        } else {
            out->size = (uint64_t)resp.content_length;
            out->last_modified_s = resp.last_modified_s;
        }
        if (rc)
            knn_s3_object_info_clean_up(out);
    }
    knn__s3_response_clean_up(&resp);
    return rc;
}

int knn_s3_exists(int *exists, struct knn_s3_client *client, const char *bucket, const char *key)
{
    struct knn_s3_object_info info;
    *exists = 0;
    int rc = knn_s3_head(&info, client, bucket, key);
    if (rc == KNN_ES3_NO_SUCH_KEY) {
        knn_error_clear();
        return 0;
    }
    if (rc)
        return rc;
    *exists = 1;
    knn_s3_object_info_clean_up(&info);
    return 0;
}

/* ---- ListObjectsV2 ---- */

struct s_entry {
    char *key; /* or common prefix */
    uint64_t size;
    char *etag;
    int64_t last_modified_s;
    int is_prefix;
};

struct s_page {
    struct s_entry *items;
    size_t count;
    size_t cap;
    struct s_entry cur;
    int truncated;
    int url_encoded;
    char *next_token;
    int rc;
};

static void s_entry_clean_up(struct s_entry *e)
{
    knn_free(e->key);
    knn_free(e->etag);
    memset(e, 0, sizeof(*e));
}

static void s_page_clean_up(struct s_page *p)
{
    for (size_t i = 0; i < p->count; i++)
        s_entry_clean_up(&p->items[i]);
    knn_free(p->items);
    s_entry_clean_up(&p->cur);
    knn_free(p->next_token);
    memset(p, 0, sizeof(*p));
}

static int s_page_push(struct s_page *p)
{
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct s_entry *items = knn_realloc_array(p->items, cap, sizeof(*items));
        if (!items)
            return KNN_ENOMEM;
        p->items = items;
        p->cap = cap;
    }
    p->items[p->count++] = p->cur;
    memset(&p->cur, 0, sizeof(p->cur));
    return 0;
}

static int s_set_str(char **dst, const char *text, size_t len)
{
    knn_free(*dst);
    *dst = knn_strndup(text, len);
    return *dst ? 0 : KNN_ENOMEM;
}

static int s_parse_u64(uint64_t *out, const char *text, size_t len, const char *what)
{
    char tmp[32];
    if (len == 0 || len >= sizeof(tmp))
        return knn_error_set(KNN_EFORMAT, "%s '%.*s' is not a number", what, (int)(len > 40 ? 40 : len), text);
    memcpy(tmp, text, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(tmp, &end, 10);
    if (errno || *end || tmp[0] == '-')
        return knn_error_set(KNN_EFORMAT, "%s '%s' is not a number", what, tmp);
    *out = v;
    return 0;
}

static int s_list_cb(void *user, const char *path, const char *text, size_t len)
{
    struct s_page *p = user;
    const char *root = "ListBucketResult/";
    if (strncmp(path, root, strlen(root)) != 0)
        return 0;
    const char *sub = path + strlen(root);
    if (strcmp(sub, "Contents/Key") == 0)
        return s_set_str(&p->cur.key, text, len);
    if (strcmp(sub, "Contents/Size") == 0)
        return s_parse_u64(&p->cur.size, text, len, "Size");
    if (strcmp(sub, "Contents/ETag") == 0)
        return s_set_str(&p->cur.etag, text, len);
    if (strcmp(sub, "Contents/LastModified") == 0) {
        if (knn__s3_parse_iso8601(&p->cur.last_modified_s, text, len) != 0)
            p->cur.last_modified_s = 0; /* not worth failing a listing for */
        return 0;
    }
    if (strcmp(sub, "Contents") == 0) {
        if (!p->cur.key)
            return knn_error_set(KNN_EFORMAT, "a <Contents> entry without a <Key>");
        return s_page_push(p);
    }
    if (strcmp(sub, "CommonPrefixes/Prefix") == 0) {
        int rc = s_set_str(&p->cur.key, text, len);
        p->cur.is_prefix = 1;
        return rc ? rc : s_page_push(p);
    }
    if (strcmp(sub, "IsTruncated") == 0)
        p->truncated = len == 4 && strncmp(text, "true", 4) == 0;
    else if (strcmp(sub, "NextContinuationToken") == 0)
        return s_set_str(&p->next_token, text, len);
    else if (strcmp(sub, "EncodingType") == 0)
        p->url_encoded = len == 3 && strncmp(text, "url", 3) == 0;
    return 0;
}

static int s_decode_in_place(char **s)
{
    struct knn_buf b = KNN_BUF_INIT(8192);
    int rc = knn_s3_uri_decode(&b, *s, strlen(*s), 1);
    if (!rc)
        rc = knn_buf_append(&b, "", 0);
    if (rc) {
        knn_buf_clean_up(&b);
        return rc;
    }
    knn_free(*s);
    *s = (char *)knn_buf_detach(&b, NULL);
    return 0;
}

int knn_s3_list_each(
    struct knn_s3_client *client, const char *bucket, const char *prefix, const char *delimiter, knn_s3_list_fn *fn,
    void *user)
{
    struct knn_s3__response resp;
    struct s_page page;
    char *token = NULL;
    int rc = s_check_args("ListObjectsV2", bucket, prefix);
    if (rc)
        return rc;
    knn__s3_response_init(&resp, S_LIST_BODY_CAP);
    memset(&page, 0, sizeof(page));
    for (int page_no = 1;; page_no++) {
        struct knn_s3__request req = {.op = "ListObjectsV2", .method = "GET", .bucket = bucket};
        req.query[req.query_count++] = (struct knn_s3_kv){"list-type", "2"};
        req.query[req.query_count++] = (struct knn_s3_kv){"encoding-type", "url"};
        req.query[req.query_count++] = (struct knn_s3_kv){"prefix", prefix ? prefix : ""};
        if (delimiter && *delimiter)
            req.query[req.query_count++] = (struct knn_s3_kv){"delimiter", delimiter};
        if (token)
            req.query[req.query_count++] = (struct knn_s3_kv){"continuation-token", token};
        req.body_cap = S_LIST_BODY_CAP;
        if ((rc = knn__s3_execute(client, &req, &resp)))
            goto done;
        s_page_clean_up(&page);
        rc = knn__s3_xml_parse_root(resp.body.data, resp.body.len, "ListBucketResult", s_list_cb, &page);
        if (rc) {
            if (client->addressing == KNN_S3_ADDRESSING_VIRTUAL && strstr(knn_error_message(), "ListAllMyBuckets")) {
                char why[512];
                snprintf(why, sizeof(why), "%s", knn_error_message());
                knn_error_set(rc, "%s: the server took the request for a list of buckets, so it does not serve "
                                  "virtual-hosted-style requests; use path-style addressing (--path-style, or s3 = "
                                  "addressing_style = path in ~/.aws/config)", why);
            }
            rc = knn_error_wrap(rc, "ListObjectsV2 s3://%s/%s page %d", bucket, prefix ? prefix : "", page_no);
            goto done;
        }
        for (size_t i = 0; i < page.count; i++) {
            struct s_entry *e = &page.items[i];
            if (page.url_encoded && (rc = s_decode_in_place(&e->key))) {
                rc = knn_error_wrap(rc, "ListObjectsV2 s3://%s: key '%.200s'", bucket, e->key);
                goto done;
            }
            struct knn_s3_object_info info = {e->key, e->size, e->etag, e->last_modified_s};
            struct knn_s3_list_entry entry = {e->is_prefix ? NULL : &info, e->is_prefix ? e->key : NULL};
            if ((rc = fn(user, &entry)))
                goto done;
        }
        if (!page.truncated)
            break;
        if (!page.next_token || !*page.next_token || (token && strcmp(token, page.next_token) == 0)) {
            rc = knn_error_set(
                KNN_EFORMAT,
                "ListObjectsV2 s3://%s: page %d is truncated but has no new continuation "
                "token",
                bucket, page_no);
            goto done;
        }
        knn_free(token);
        token = page.next_token;
        page.next_token = NULL;
    }
done:
    s_page_clean_up(&page);
    knn_free(token);
    knn__s3_response_clean_up(&resp);
    return rc;
}

struct s_collect {
    struct knn_s3_object_list *list;
    size_t cap;
};

static int s_collect_cb(void *user, const struct knn_s3_list_entry *entry)
{
    struct s_collect *c = user;
    struct knn_s3_object_list *l = c->list;
    if (!entry->info)
        return 0;
    if (l->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        struct knn_s3_object_info *items = knn_realloc_array(l->items, cap, sizeof(*items));
        if (!items)
            return KNN_ENOMEM;
        l->items = items;
        c->cap = cap;
    }
    struct knn_s3_object_info *dst = &l->items[l->count];
    memset(dst, 0, sizeof(*dst));
    if (!(dst->key = knn_strdup(entry->info->key)) ||
        (entry->info->etag && !(dst->etag = knn_strdup(entry->info->etag)))) {
        knn_s3_object_info_clean_up(dst);
        return KNN_ENOMEM;
    }
    dst->size = entry->info->size;
    dst->last_modified_s = entry->info->last_modified_s;
    l->count++;
    l->total_size += dst->size;
    return 0;
}

int knn_s3_list(struct knn_s3_object_list *out, struct knn_s3_client *client, const char *bucket, const char *prefix)
{
    struct s_collect c = {out, 0};
    memset(out, 0, sizeof(*out));
    return knn_s3_list_each(client, bucket, prefix, NULL, s_collect_cb, &c);
}

void knn_s3_object_list_clean_up(struct knn_s3_object_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        knn_s3_object_info_clean_up(&list->items[i]);
    knn_free(list->items);
    memset(list, 0, sizeof(*list));
}

/* ---- GET, streamed, resumed ---- */

/* "bytes a-b/total" -> a, b, total (total may be '*'). */
int knn__s3_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total)
{
    unsigned long long a, b, t;
    char star;
    if (sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
        *first = a;
        *last = b;
        *total = t;
        return b >= a && t > b ? 0 : -1;
    }
    if (sscanf(v, "bytes %llu-%llu/%c", &a, &b, &star) == 3 && star == '*') {
        *first = a;
        *last = b;
        *total = UINT64_MAX;
        return b >= a ? 0 : -1;
    }
    return -1;
}

struct s_get {
    const char *bucket, *key;
    knn_s3_data_fn *fn;
    void *user;
    uint64_t start; /* first byte wanted */
    uint64_t end;   /* one past the last byte wanted; UINT64_MAX: to the end of the object */
    uint64_t delivered;
    uint64_t object_size;
    int size_known;
    char etag[128];
    /* this attempt */
    int ranged;
    uint64_t attempt_start;
    int checked;
};

/* Validate the response headers of an attempt before its first byte goes to the caller. */
static int s_get_check(struct s_get *g, const struct knn_s3__response *r)
{
    if (g->ranged) {
        uint64_t a, b, t;
        if (r->status != 206 || knn__s3_parse_content_range(r->content_range, &a, &b, &t) != 0 || a != g->attempt_start)
            return knn_error_set(
                KNN_EFORMAT,
                "GetObject s3://%s/%s: asked for bytes from %llu, got HTTP %ld with "
                "Content-Range '%s'",
                g->bucket, g->key, (unsigned long long)g->attempt_start, r->status, r->content_range);
        if (t != UINT64_MAX) {
            if (g->size_known && t != g->object_size)
                return knn_error_set(
                    KNN_ES3_CHANGED,
                    "GetObject s3://%s/%s: the object's size changed from %llu to "
                    "%llu while it was read",
                    g->bucket, g->key, (unsigned long long)g->object_size, (unsigned long long)t);
            g->object_size = t;
            g->size_known = 1;
        }
        if (r->content_length >= 0 && (uint64_t)r->content_length != b - a + 1)
            return knn_error_set(
                KNN_EFORMAT,
                "GetObject s3://%s/%s: Content-Length %lld does not match Content-Range "
                "'%s'",
                g->bucket, g->key, (long long)r->content_length, r->content_range);
    } else {
        if (r->status != 200)
            return knn_error_set(
                KNN_EFORMAT, "GetObject s3://%s/%s: unexpected HTTP %ld", g->bucket, g->key, r->status);
        if (r->content_length < 0)
            return knn_error_set(KNN_EFORMAT, "GetObject s3://%s/%s: no Content-Length", g->bucket, g->key);
        g->object_size = (uint64_t)r->content_length;
        g->size_known = 1;
    }
    if (g->etag[0] && r->etag[0] && strcmp(g->etag, r->etag) != 0)
        return knn_error_set(
            KNN_ES3_CHANGED,
            "GetObject s3://%s/%s: the object changed while it was read (ETag %s, "
            "then %s)",
            g->bucket, g->key, g->etag, r->etag);
    if (!g->etag[0])
        snprintf(g->etag, sizeof(g->etag), "%s", r->etag);
    g->checked = 1;
    return 0;
}

static int s_get_sink(void *user, const struct knn_s3__response *r, const uint8_t *data, size_t len)
{
    struct s_get *g = user;
    int rc;
    if (!g->checked && (rc = s_get_check(g, r)))
        return rc;
    if (g->end != UINT64_MAX && g->start + g->delivered + len > g->end)
        return knn_error_set(KNN_EFORMAT, "GetObject s3://%s/%s: more bytes than asked for", g->bucket, g->key);
    if ((rc = g->fn(g->user, data, len)))
        return rc;
    g->delivered += len;
    return 0;
}

int knn_s3_get(
    struct knn_s3_object_info *info_out, struct knn_s3_client *client, const char *bucket, const char *key,
    const struct knn_s3_get_options *opts, knn_s3_data_fn *fn, void *user)
{
    struct knn_s3_get_options defaults = KNN_S3_GET_OPTIONS_INIT;
    struct knn_s3__response resp;
    struct knn_s3__prepared prep;
    struct knn_s3_http_exchange x;
    struct knn_s3_http_session *session = NULL;
    struct s_get g;
    char range[64];
    int rc, code = 0;
    if (info_out)
        memset(info_out, 0, sizeof(*info_out));
    if ((rc = s_check_args("GetObject", bucket, key)))
        return rc;
    if (!key || !*key)
        return knn_error_set(KNN_EINVAL, "GetObject s3://%s: no key", bucket);
    if (!opts)
        opts = &defaults;
    memset(&g, 0, sizeof(g));
    g.bucket = bucket;
    g.key = key;
    g.fn = fn;
    g.user = user;
    g.start = opts->offset;
    g.end = opts->length == UINT64_MAX || opts->length > UINT64_MAX - opts->offset ? UINT64_MAX
                                                                                   : opts->offset + opts->length;
    if (opts->if_match)
        snprintf(g.etag, sizeof(g.etag), "%s", opts->if_match);
    if (opts->length == 0) { /* nothing to read: just the object's metadata */
        struct knn_s3_object_info info;
        if ((rc = knn_s3_head(&info, client, bucket, key)))
            return rc;
        if (info_out)
            *info_out = info;
        else
            knn_s3_object_info_clean_up(&info);
        return 0;
    }

    struct knn_s3__exchange_ctx ctx;
    knn__s3_response_init(&resp, 0);
    ctx.resp = &resp;
    ctx.sink = s_get_sink;
    ctx.sink_user = &g;
    knn__s3_prepared_init(&prep);
    if ((rc = knn__s3_session_acquire(client, &session)))
        goto done;
    for (int attempt = 1;; attempt++) {
        struct knn_s3__request req = {.op = "GetObject", .method = "GET", .bucket = bucket, .key = key};
        uint64_t from = g.start + g.delivered;
        g.checked = 0;
        g.attempt_start = from;
        g.ranged = from > 0 || g.end != UINT64_MAX;
        if (g.ranged) {
            if (g.end != UINT64_MAX)
                snprintf(
                    range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)from, (unsigned long long)(g.end - 1));
            else
                snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)from);
            req.headers[req.header_count++] = (struct knn_s3_kv){"range", range};
        }
        if (g.etag[0])
            req.headers[req.header_count++] = (struct knn_s3_kv){"if-match", g.etag};
        knn__s3_response_reset(&resp);
        if ((rc = knn__s3_check_cancel(client, &req)) || (rc = knn__s3_prepare(&prep, client, &req)))
            goto done;
        knn__s3_exchange_setup(&x, &ctx, client, &req, &prep);
        if ((rc = knn__s3_http_perform(session, &x))) {
            knn__s3_session_release(client, session, 0);
            session = NULL;
            goto done;
        }
        knn__s3_exchange_finish(&x, &resp);
        if (x.result == 0 && resp.status >= 200 && resp.status < 300) {
            if (!g.checked && (rc = s_get_check(&g, &resp))) /* an empty body never reached the sink */
                goto done;
            uint64_t want = g.end != UINT64_MAX ? g.end : g.object_size;
            if (g.start + g.delivered != want) {
                x.result = KNN_ETRUNCATED;
                x.net_retryable = 1;
                snprintf(
                    x.error, sizeof(x.error), "received %llu of %llu bytes",
                    (unsigned long long)(g.start + g.delivered - from), (unsigned long long)(want - from));
            }
        }
        enum knn_s3__verdict v = knn__s3_classify(&code, client, &req, &x, &resp, attempt);
        if (v == KNN_S3__OK)
            break;
        knn__s3_note_skew(client, &resp);
        if (v == KNN_S3__FAIL) {
            rc = code;
            if (rc == KNN_ES3_CHANGED && g.delivered > 0)
                knn_error_wrap(
                    rc, "the object changed while it was read (after %llu bytes)", (unsigned long long)g.delivered);
            goto done;
        }
        /* Retry from the last byte delivered; If-Match keeps it the same object. */
        if (g.size_known && g.end == UINT64_MAX)
            g.end = g.object_size;
        if (g.end != UINT64_MAX && g.start + g.delivered >= g.end)
            break; /* everything arrived before the failure */
        int wait = knn__s3_backoff_ms(client, attempt + 1);
        knn__s3_note_retry(client, &req, &x, &resp, wait);
        KNN_LOG(
            KNN_LOG_DEBUG, KNN_LS_S3, "GetObject s3://%s/%s: resuming at byte %llu", bucket, key,
            (unsigned long long)(g.start + g.delivered));
        if ((rc = knn__s3_backoff_sleep(client, &req, wait)))
            goto done;
    }
    rc = 0;
    if (info_out) {
        if (!(info_out->key = knn_strdup(key)) || !(info_out->etag = knn_strdup(g.etag))) {
            knn_s3_object_info_clean_up(info_out);
            rc = KNN_ENOMEM;
        }
        info_out->size = g.object_size;
        info_out->last_modified_s = resp.last_modified_s;
    }
done:
    knn__s3_session_release(client, session, 1);
    knn__s3_prepared_clean_up(&prep);
    knn__s3_response_clean_up(&resp);
    return rc;
}

/* ---- PUT (single request), DELETE ---- */

int knn__s3_put_single(
    char **etag_out, struct knn_s3_client *client, const char *bucket, const char *key, const void *data, size_t len,
    const char *content_type)
{
    char md5[25], sha[65];
    struct knn_s3__response resp;
    int rc;
    if (etag_out)
        *etag_out = NULL;
    if ((rc = knn__s3_hash(data, len, md5, NULL, client->sign_payload ? sha : NULL)))
        return rc;
    struct knn_s3__request req = {.op = "PutObject", .method = "PUT", .bucket = bucket, .key = key};
    req.body = data;
    req.body_len = len;
    req.payload_hash = client->sign_payload ? sha : (len ? KNN_S3_UNSIGNED_PAYLOAD : KNN_S3_EMPTY_SHA256);
    req.headers[req.header_count++] = (struct knn_s3_kv){"content-md5", md5};
    req.headers[req.header_count++] =
        (struct knn_s3_kv){"content-type", content_type ? content_type : "application/octet-stream"};
    knn__s3_response_init(&resp, 0);
    rc = knn__s3_execute(client, &req, &resp);
    if (!rc && etag_out && !(*etag_out = knn_strdup(resp.etag)))
        rc = KNN_ENOMEM;
    knn__s3_response_clean_up(&resp);
    return rc;
}

int knn_s3_delete(struct knn_s3_client *client, const char *bucket, const char *key)
{
    struct knn_s3__request req = {.op = "DeleteObject", .method = "DELETE", .bucket = bucket, .key = key, .cleanup = 1};
    struct knn_s3__response resp;
    int rc = s_check_args(req.op, bucket, key);
    if (rc)
        return rc;
    if (!key || !*key)
        return knn_error_set(KNN_EINVAL, "DeleteObject s3://%s: no key", bucket);
    knn__s3_response_init(&resp, 0);
    rc = knn__s3_execute(client, &req, &resp);
    knn__s3_response_clean_up(&resp);
    return rc;
}

/* ---- multipart uploads in progress ---- */

struct s_uploads {
    struct knn_s3_upload_entry cur;
    char *key, *id;
    int64_t initiated;
    int truncated;
    int url_encoded;
    char *next_key, *next_id;
    struct s_entry *items; /* key in key, upload id in etag */
    size_t count, cap;
};

static int s_uploads_cb(void *user, const char *path, const char *text, size_t len)
{
    struct s_uploads *u = user;
    const char *root = "ListMultipartUploadsResult/";
    if (strncmp(path, root, strlen(root)) != 0)
        return 0;
    const char *sub = path + strlen(root);
    if (strcmp(sub, "Upload/Key") == 0)
        return s_set_str(&u->key, text, len);
    if (strcmp(sub, "Upload/UploadId") == 0)
        return s_set_str(&u->id, text, len);
    if (strcmp(sub, "Upload/Initiated") == 0) {
        if (knn__s3_parse_iso8601(&u->initiated, text, len) != 0)
            u->initiated = 0;
        return 0;
    }
    if (strcmp(sub, "Upload") == 0) {
        if (!u->key || !u->id)
            return knn_error_set(KNN_EFORMAT, "an <Upload> without <Key> or <UploadId>");
        if (u->count == u->cap) {
            size_t cap = u->cap ? u->cap * 2 : 16;
            struct s_entry *items = knn_realloc_array(u->items, cap, sizeof(*items));
            if (!items)
                return KNN_ENOMEM;
            u->items = items;
            u->cap = cap;
        }
        u->items[u->count++] = (struct s_entry){u->key, 0, u->id, u->initiated, 0};
        u->key = u->id = NULL;
        return 0;
    }
    if (strcmp(sub, "IsTruncated") == 0)
        u->truncated = len == 4 && strncmp(text, "true", 4) == 0;
    else if (strcmp(sub, "NextKeyMarker") == 0)
        return s_set_str(&u->next_key, text, len);
    else if (strcmp(sub, "NextUploadIdMarker") == 0)
        return s_set_str(&u->next_id, text, len);
    else if (strcmp(sub, "EncodingType") == 0)
        u->url_encoded = len == 3 && strncmp(text, "url", 3) == 0;
    return 0;
}

static void s_uploads_clean_up(struct s_uploads *u)
{
    for (size_t i = 0; i < u->count; i++)
        s_entry_clean_up(&u->items[i]);
    knn_free(u->items);
    knn_free(u->key);
    knn_free(u->id);
    knn_free(u->next_key);
    knn_free(u->next_id);
    memset(u, 0, sizeof(*u));
}

int knn_s3_list_uploads(
    struct knn_s3_client *client, const char *bucket, const char *prefix, knn_s3_upload_list_fn *fn, void *user)
{
    struct knn_s3__response resp;
    struct s_uploads u;
    char *key_marker = NULL, *id_marker = NULL;
    int rc = s_check_args("ListMultipartUploads", bucket, prefix);
    if (rc)
        return rc;
    knn__s3_response_init(&resp, S_LIST_BODY_CAP);
    memset(&u, 0, sizeof(u));
    for (int page_no = 1;; page_no++) {
        struct knn_s3__request req = {.op = "ListMultipartUploads", .method = "GET", .bucket = bucket, .cleanup = 1};
        req.query[req.query_count++] = (struct knn_s3_kv){"uploads", ""};
        req.query[req.query_count++] = (struct knn_s3_kv){"encoding-type", "url"};
        req.query[req.query_count++] = (struct knn_s3_kv){"prefix", prefix ? prefix : ""};
        if (key_marker)
            req.query[req.query_count++] = (struct knn_s3_kv){"key-marker", key_marker};
        if (id_marker)
            req.query[req.query_count++] = (struct knn_s3_kv){"upload-id-marker", id_marker};
        req.body_cap = S_LIST_BODY_CAP;
        if ((rc = knn__s3_execute(client, &req, &resp)))
            goto done;
        s_uploads_clean_up(&u);
        if ((rc = knn__s3_xml_parse_root(resp.body.data, resp.body.len, "ListMultipartUploadsResult", s_uploads_cb, &u))) {
            rc = knn_error_wrap(rc, "ListMultipartUploads s3://%s page %d", bucket, page_no);
            goto done;
        }
        for (size_t i = 0; i < u.count; i++) {
            if (u.url_encoded && (rc = s_decode_in_place(&u.items[i].key)))
                goto done;
            struct knn_s3_upload_entry e = {u.items[i].key, u.items[i].etag, u.items[i].last_modified_s};
            if ((rc = fn(user, &e)))
                goto done;
        }
        if (!u.truncated)
            break;
        if (!u.next_key) {
            rc = knn_error_set(
                KNN_EFORMAT, "ListMultipartUploads s3://%s: truncated page without NextKeyMarker", bucket);
            goto done;
        }
        knn_free(key_marker);
        knn_free(id_marker);
        key_marker = u.next_key;
        id_marker = u.next_id;
        u.next_key = u.next_id = NULL;
    }
done:
    s_uploads_clean_up(&u);
    knn_free(key_marker);
    knn_free(id_marker);
    knn__s3_response_clean_up(&resp);
    return rc;
}

int knn_s3_abort_upload(struct knn_s3_client *client, const char *bucket, const char *key, const char *upload_id)
{
    struct knn_s3__request req = {.op = "AbortMultipartUpload", .method = "DELETE", .bucket = bucket, .key = key, .cleanup = 1};
    struct knn_s3__response resp;
    int rc = s_check_args(req.op, bucket, key);
    if (rc)
        return rc;
    if (!upload_id || !*upload_id)
        return knn_error_set(KNN_EINVAL, "AbortMultipartUpload s3://%s/%s: no upload id", bucket, key);
    req.query[req.query_count++] = (struct knn_s3_kv){"uploadId", upload_id};
    knn__s3_response_init(&resp, 0);
    rc = knn__s3_execute(client, &req, &resp);
    knn__s3_response_clean_up(&resp);
    return rc;
}
