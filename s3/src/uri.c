/* S3 URIs (s3://, AWS https:// URLs) and the URI encoding of SigV4. */
#include "knn/s3/uri.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <string.h>
#include <strings.h>

#define S_MAX_URI 8192 /* S3 keys are at most 1024 bytes; a URI is far below this */

static const char s_hex[] = "0123456789ABCDEF";

static int s_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

int knn_s3_uri_encode(struct knn_buf *out, const char *s, size_t len, int keep_slash)
{
    size_t worst;
    if (knn_mul_size(&worst, len, 3))
        return KNN_ENOMEM;
    int rc = knn_buf_reserve(out, worst);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (s_is_unreserved(c) || (keep_slash && c == '/')) {
            *p++ = c;
        } else {
            *p++ = '%';
            *p++ = (uint8_t)s_hex[c >> 4];
            *p++ = (uint8_t)s_hex[c & 15];
        }
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

static int s_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int knn_s3_uri_decode(struct knn_buf *out, const char *s, size_t len, int plus_is_space)
{
    int rc = knn_buf_reserve(out, len);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return knn_error_set(
                    KNN_EFORMAT, "percent-encoding: '%%' at offset %zu is not followed by two hex digits", i);
            int h = s_hex_value((unsigned char)s[i + 1]), l = s_hex_value((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return knn_error_set(
                    KNN_EFORMAT, "percent-encoding: '%%' at offset %zu is not followed by two hex digits", i);
            c = (unsigned char)(h * 16 + l);
            if (c == 0)
                return knn_error_set(KNN_EFORMAT, "percent-encoding: %%00 (a NUL byte) at offset %zu", i);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        *p++ = c;
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int knn_s3_bucket_name_is_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    int all_digits_and_dots = 1;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-')
            return 0;
        if ((i == 0 || i == n - 1) && !alnum)
            return 0;
        if (c == '.' && (b[i + 1] == '.' || b[i + 1] == '-' || (i > 0 && b[i - 1] == '-')))
            return 0;
        if (!(c >= '0' && c <= '9') && c != '.')
            all_digits_and_dots = 0;
    }
    return !all_digits_and_dots; /* 192.168.5.4 looks like an IP address */
}

static int s_bucket_loosely_valid(const char *b, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return 0;
    }
    return 1;
}

void knn_s3_uri_clean_up(struct knn_s3_uri *uri)
{
    if (!uri)
        return;
    knn_free(uri->bucket);
    knn_free(uri->key);
    knn_free(uri->region);
    uri->bucket = uri->key = uri->region = NULL;
}

static int s_starts_with_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* A host of AWS S3: returns 1 and sets *bucket_len (0 for path style) and the region span. */
static int s_aws_host(const char *host, size_t host_len, size_t *bucket_len, const char **region, size_t *region_len)
{
    static const char *const suffixes[] = {".amazonaws.com", ".amazonaws.com.cn"};
    size_t base_len = 0;
    int found = 0;
    for (size_t i = 0; i < 2 && !found; i++) {
        size_t sl = strlen(suffixes[i]);
        if (host_len > sl && strncasecmp(host + host_len - sl, suffixes[i], sl) == 0) {
            base_len = host_len - sl;
            found = 1;
        }
    }
    if (!found)
        return 0;
    /* Labels of host[0..base_len); the S3 label is the right-most "s3" or "s3-*" followed by at
     * most two labels (REGION, or dualstack.REGION). */
    size_t starts[128];
    size_t lens[128];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= base_len; i++) {
        if (i == base_len || host[i] == '.') {
            if (n == 128)
                return 0;
            starts[n] = start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    for (size_t k = n; k-- > 0;) {
        const char *label = host + starts[k];
        size_t ll = lens[k];
        int is_s3 = ll == 2 && strncasecmp(label, "s3", 2) == 0;
        int is_s3_dash = ll > 3 && strncasecmp(label, "s3-", 3) == 0;
        if (!is_s3 && !is_s3_dash)
            continue;
        size_t tail = n - 1 - k;
        if (tail > 2)
            return 0;
        *region = NULL;
        *region_len = 0;
        if (is_s3_dash) {
            if (tail != 0)
                return 0;
            if (ll == strlen("s3-external-1") && strncasecmp(label, "s3-external-1", ll) == 0) {
                *region = "us-east-1";
                *region_len = 9;
            } else {
                *region = label + 3;
                *region_len = ll - 3;
            }
        } else if (tail == 1) {
            *region = host + starts[k + 1];
            *region_len = lens[k + 1];
        } else if (tail == 2) {
            if (!(lens[k + 1] == 9 && strncasecmp(host + starts[k + 1], "dualstack", 9) == 0))
                return 0;
            *region = host + starts[k + 2];
            *region_len = lens[k + 2];
        }
        *bucket_len = k == 0 ? 0 : starts[k] - 1;
        return 1;
    }
    return 0;
}

int knn_s3_uri_is_s3(const char *text)
{
    if (!text)
        return 0;
    if (s_starts_with_ci(text, "s3://"))
        return 1;
    if (!s_starts_with_ci(text, "https://"))
        return 0;
    const char *host = text + 8;
    size_t host_len = strcspn(host, "/:?#");
    size_t bl, rl;
    const char *r;
    return s_aws_host(host, host_len, &bl, &r, &rl);
}

static int s_set(char **dst, const char *s, size_t n)
{
    *dst = knn_strndup(s, n);
    return *dst ? 0 : KNN_ENOMEM;
}

int knn_s3_uri_parse(struct knn_s3_uri *out, const char *text)
{
    int rc = 0;
    struct knn_buf key = KNN_BUF_INIT(S_MAX_URI);
    memset(out, 0, sizeof(*out));
    if (!text || !*text)
        return knn_error_set(KNN_EINVAL, "empty S3 URI");
    size_t tlen = strlen(text);
    if (tlen > S_MAX_URI)
        return knn_error_set(KNN_EINVAL, "S3 URI of %zu bytes is longer than %d", tlen, S_MAX_URI);
    for (size_t i = 0; i < tlen; i++) {
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return knn_error_set(KNN_EINVAL, "S3 URI has a control character at offset %zu", i);
    }

    if (s_starts_with_ci(text, "s3://")) {
        const char *b = text + 5;
        size_t bl = strcspn(b, "/");
        if (!s_bucket_loosely_valid(b, bl))
            return knn_error_set(
                KNN_EINVAL, "'%s': '%.*s' is not a valid bucket name (expected s3://bucket/key)", text, (int)bl, b);
        const char *k = b[bl] == '/' ? b + bl + 1 : b + bl;
        if ((rc = s_set(&out->bucket, b, bl)) || (rc = s_set(&out->key, k, strlen(k))))
            goto on_error;
        return 0;
    }

    if (!s_starts_with_ci(text, "https://")) {
        return knn_error_set(
            KNN_EINVAL, "'%s' is not an S3 URI (expected s3://bucket/key or an https:// S3 URL of AWS)", text);
    }
    const char *host = text + 8;
    size_t host_len = strcspn(host, "/:?#");
    size_t bucket_len;
    const char *region;
    size_t region_len;
    if (!s_aws_host(host, host_len, &bucket_len, &region, &region_len))
        return knn_error_set(
            KNN_EINVAL, "'%s' is not an AWS S3 URL; for other servers use s3://bucket/key and --endpoint-url", text);
    const char *p = host + host_len;
    if (*p == ':') { /* a port: skip its digits */
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strpbrk(p, "?#"))
        return knn_error_set(KNN_EINVAL, "'%s': S3 URLs with a query string or fragment are not supported", text);
    const char *path = *p == '/' ? p + 1 : p;
    if (*p && *p != '/')
        return knn_error_set(KNN_EINVAL, "'%s': bad host or port", text);
    const char *b;
    size_t bl;
    const char *k;
    if (bucket_len > 0) { /* virtual-hosted: the bucket is in the host */
        b = host;
        bl = bucket_len;
        k = path;
    } else { /* path style: the first path segment is the bucket */
        b = path;
        bl = strcspn(path, "/");
        k = path[bl] == '/' ? path + bl + 1 : path + bl;
    }
    if (!s_bucket_loosely_valid(b, bl))
        return knn_error_set(KNN_EINVAL, "'%s': '%.*s' is not a valid bucket name", text, (int)bl, b);
    if ((rc = knn_s3_uri_decode(&key, k, strlen(k), 0))) {
        knn_error_wrap(rc, "'%s'", text);
        goto on_error;
    }
    if ((rc = s_set(&out->bucket, b, bl)) || (rc = s_set(&out->key, key.data ? (const char *)key.data : "", key.len)))
        goto on_error;
    if (region_len && (rc = s_set(&out->region, region, region_len)))
        goto on_error;
    for (char *c = out->bucket; bucket_len > 0 && *c; c++) /* host names are case-insensitive */
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    knn_buf_clean_up(&key);
    return 0;

on_error:
    knn_buf_clean_up(&key);
    knn_s3_uri_clean_up(out);
    return rc;
}

static int s_secret_param(const char *name, size_t len)
{
    static const char *const words[] = {"signature", "credential", "token", "secret", "password", "key"};
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= len; i++)
            if (strncasecmp(name + i, words[w], wl) == 0)
                return 1;
    }
    return 0;
}

const char *knn_s3_url_redact(char *buf, size_t size, const char *url)
{
    size_t o = 0;
#define S_PUT(ch)                                                                                                      \
    do {                                                                                                               \
        if (o + 1 < size)                                                                                              \
            buf[o++] = (ch);                                                                                           \
    } while (0)
    if (size == 0)
        return buf;
    const char *p = url;
    const char *scheme = strstr(url, "://");
    if (scheme) {
        for (; p < scheme + 3; p++)
            S_PUT(*p);
        size_t auth = strcspn(p, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < auth; i++)
            if (p[i] == '@')
                at = p + i;
        if (at) {
            for (const char *r = "***"; *r; r++)
                S_PUT(*r);
            p = at;
        }
    }
    const char *q = strchr(p, '?');
    for (; *p && p != q; p++)
        S_PUT(*p);
    while (q && *q) { /* q points at '?' or '&' */
        S_PUT(*q); /* never *q++ inside S_PUT: with buf full it is not evaluated, and q would not move */
        q++;
        size_t nl = strcspn(q, "=&#");
        for (size_t i = 0; i < nl; i++)
            S_PUT(q[i]);
        q += nl;
        if (*q == '=') {
            S_PUT(*q);
            q++;
            size_t vl = strcspn(q, "&#");
            if (s_secret_param(q - 1 - nl, nl)) {
                for (const char *r = "***"; *r; r++)
                    S_PUT(*r);
            } else {
                for (size_t i = 0; i < vl; i++)
                    S_PUT(q[i]);
            }
            q += vl;
        }
        if (*q == '#') {
            for (; *q; q++)
                S_PUT(*q);
        }
    }
#undef S_PUT
    buf[o] = '\0';
    return buf;
}
