/* AWS Signature Version 4 for S3: canonical request, string to sign, signing key, signature. */
#include "knn/s3/sigv4.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/s3/credentials.h"
#include "knn/s3/uri.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_MAX_STAGE (256 * 1024) /* cap of each stage's text (headers and query are small) */
#define S_MAX_PARAMS 64
#define S_ALGORITHM "AWS4-HMAC-SHA256"

void knn_s3_sigv4_signature_init(struct knn_s3_sigv4_signature *sig)
{
    knn_buf_init(&sig->canonical_query, S_MAX_STAGE);
    knn_buf_init(&sig->canonical_request, S_MAX_STAGE);
    knn_buf_init(&sig->string_to_sign, S_MAX_STAGE);
    knn_buf_init(&sig->signed_headers, S_MAX_STAGE);
    knn_buf_init(&sig->authorization, S_MAX_STAGE);
    sig->signature[0] = '\0';
}

void knn_s3_sigv4_signature_clean_up(struct knn_s3_sigv4_signature *sig)
{
    knn_buf_clean_up(&sig->canonical_query);
    knn_buf_clean_up(&sig->canonical_request);
    knn_buf_clean_up(&sig->string_to_sign);
    knn_buf_clean_up(&sig->signed_headers);
    knn_buf_clean_up(&sig->authorization);
    sig->signature[0] = '\0';
}

static void s_reset(struct knn_s3_sigv4_signature *sig)
{
    knn_buf_reset(&sig->canonical_query);
    knn_buf_reset(&sig->canonical_request);
    knn_buf_reset(&sig->string_to_sign);
    knn_buf_reset(&sig->signed_headers);
    knn_buf_reset(&sig->authorization);
    sig->signature[0] = '\0';
}

int knn_s3_sigv4_amz_date(char out[17], int64_t time_s)
{
    struct tm tm;
    time_t t = (time_t)time_s;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return knn_error_set(KNN_ERANGE, "signing time %lld is outside years 0000-9999", (long long)time_s);
    /* Each field is in range (checked above and by gmtime_r), so the 16 characters always fit. */
    unsigned fields[6] = {(unsigned)(tm.tm_year + 1900), (unsigned)(tm.tm_mon + 1), (unsigned)tm.tm_mday,
                          (unsigned)tm.tm_hour,          (unsigned)tm.tm_min,       (unsigned)tm.tm_sec};
    static const int widths[6] = {4, 2, 2, 2, 2, 2};
    char *p = out;
    for (int f = 0; f < 6; f++) {
        for (int d = widths[f] - 1; d >= 0; d--) {
            p[d] = (char)('0' + fields[f] % 10);
            fields[f] /= 10;
        }
        p += widths[f];
        if (f == 2)
            *p++ = 'T';
    }
    *p++ = 'Z';
    *p = '\0';
    return 0;
}

static void s_hex(char *out, const unsigned char *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

/* One encoded query parameter, for sorting. */
struct s_param {
    char *name;
    char *value;
};

static int s_param_cmp(const void *a, const void *b)
{
    const struct s_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *s_encode(const char *s, int keep_slash)
{
    struct knn_buf b = KNN_BUF_INIT(S_MAX_STAGE);
    if (knn_s3_uri_encode(&b, s, strlen(s), keep_slash) || knn_buf_append(&b, "", 0)) {
        knn_buf_clean_up(&b);
        return NULL;
    }
    return (char *)knn_buf_detach(&b, NULL);
}

/* canonical_query from the request's parameters plus `extra` (presigning). */
static int s_canonical_query(
    struct knn_buf *out, const struct knn_s3_kv *query, size_t n, const struct knn_s3_kv *extra, size_t n_extra)
{
    struct s_param params[S_MAX_PARAMS];
    size_t count = 0;
    int rc = 0;
    if (n + n_extra > S_MAX_PARAMS)
        return knn_error_set(KNN_EINVAL, "%zu query parameters: more than %d", n + n_extra, S_MAX_PARAMS);
    for (size_t i = 0; i < n + n_extra; i++) {
        const struct knn_s3_kv *kv = i < n ? &query[i] : &extra[i - n];
        if (!kv->name || !*kv->name) {
            rc = knn_error_set(KNN_EINVAL, "query parameter %zu has no name", i);
            goto done;
        }
        params[count].name = s_encode(kv->name, 0);
        params[count].value = s_encode(kv->value ? kv->value : "", 0);
        count++;
        if (!params[count - 1].name || !params[count - 1].value) {
            rc = KNN_ENOMEM;
            goto done;
        }
    }
    qsort(params, count, sizeof(params[0]), s_param_cmp);
    for (size_t i = 0; i < count && !rc; i++) {
        rc = knn_buf_printf(out, "%s%s=%s", i ? "&" : "", params[i].name, params[i].value);
    }
    if (!rc)
        rc = knn_buf_append(out, "", 0); /* a NUL-terminated empty buffer when there is no query */
done:
    for (size_t i = 0; i < count; i++) {
        knn_free(params[i].name);
        knn_free(params[i].value);
    }
    return rc;
}

/* One canonical header: lower-case name, trimmed value with inner runs of spaces collapsed. */
struct s_header {
    char *name;
    char *value;
    size_t order; /* input position, for a stable sort */
};

static int s_header_cmp(const void *a, const void *b)
{
    const struct s_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static char *s_canonical_value(const char *v)
{
    size_t n = strlen(v);
    char *out = knn_malloc(n + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == ' ' || c == '\t') {
            space = 1;
            continue;
        }
        if (space && j > 0)
            out[j++] = ' ';
        space = 0;
        out[j++] = c;
    }
    out[j] = '\0';
    return out;
}

static int s_valid_header_name(const char *name)
{
    if (!name || !*name)
        return 0;
    for (const char *c = name; *c; c++) {
        if (*c <= ' ' || *c == ':' || *c >= 0x7f)
            return 0;
    }
    return 1;
}

/* Canonical headers block and signed-header list into sig; finds host and x-amz-date. */
static int s_canonical_headers(
    struct knn_buf *block, struct knn_buf *signed_headers, const struct knn_s3_kv *headers, size_t n,
    const char **amz_date)
{
    struct s_header *hs = NULL;
    int rc = 0, have_host = 0;
    *amz_date = NULL;
    if (n == 0)
        return knn_error_set(KNN_EINVAL, "no headers to sign (host is required)");
    if (!(hs = knn_calloc(n, sizeof(*hs))))
        return KNN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!s_valid_header_name(headers[i].name) || !headers[i].value) {
            rc = knn_error_set(KNN_EINVAL, "header %zu has an invalid name or no value", i);
            goto done;
        }
        if (strpbrk(headers[i].value, "\r\n")) {
            rc = knn_error_set(KNN_EINVAL, "header '%s' has a line break in its value", headers[i].name);
            goto done;
        }
        hs[i].order = i;
        if (!(hs[i].name = knn_strdup(headers[i].name)) || !(hs[i].value = s_canonical_value(headers[i].value))) {
            rc = KNN_ENOMEM;
            goto done;
        }
        for (char *c = hs[i].name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        if (strcmp(hs[i].name, "host") == 0)
            have_host = 1;
        if (strcmp(hs[i].name, "x-amz-date") == 0)
            *amz_date = headers[i].value;
    }
    if (!have_host) {
        rc = knn_error_set(KNN_EINVAL, "the host header is not among the signed headers");
        goto done;
    }
    qsort(hs, n, sizeof(*hs), s_header_cmp);
    for (size_t i = 0; i < n && !rc; i++) {
        int same = i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0;
        if (same) {
            /* "name:v1,v2": drop the previous line's newline and append ",v2\n". */
            block->len--;
            rc = knn_buf_printf(block, ",%s\n", hs[i].value);
        } else {
            rc = knn_buf_printf(block, "%s:%s\n", hs[i].name, hs[i].value);
            if (!rc)
                rc = knn_buf_printf(signed_headers, "%s%s", signed_headers->len ? ";" : "", hs[i].name);
        }
    }
done:
    for (size_t i = 0; i < n; i++) {
        knn_free(hs[i].name);
        knn_free(hs[i].value);
    }
    knn_free(hs);
    return rc;
}

/* signature = hex(HMAC(kSigning, string_to_sign)), with every derived key wiped. */
static int s_signature(
    char out[65], const char *secret, const char *date8, const char *region, const char *service,
    const struct knn_buf *string_to_sign)
{
    unsigned char k1[EVP_MAX_MD_SIZE], k2[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int rc = 0;
    size_t slen = strlen(secret);
    char *seed = knn_malloc(slen + 5);
    if (!seed)
        return KNN_ENOMEM;
    memcpy(seed, "AWS4", 4);
    memcpy(seed + 4, secret, slen + 1);
    if (!HMAC(EVP_sha256(), seed, (int)(slen + 4), (const unsigned char *)date8, strlen(date8), k1, &len) ||
        !HMAC(EVP_sha256(), k1, (int)len, (const unsigned char *)region, strlen(region), k2, &len) ||
        !HMAC(EVP_sha256(), k2, (int)len, (const unsigned char *)service, strlen(service), k1, &len) ||
        !HMAC(EVP_sha256(), k1, (int)len, (const unsigned char *)"aws4_request", 12, k2, &len) ||
        !HMAC(EVP_sha256(), k2, (int)len, string_to_sign->data, string_to_sign->len, k1, &len)) {
        rc = knn_error_set(KNN_EINTERNAL, "HMAC-SHA256 failed in OpenSSL");
    } else {
        s_hex(out, k1, len);
    }
    OPENSSL_cleanse(seed, slen + 5);
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    knn_free(seed);
    return rc;
}

/* Shared by header signing and presigning: fills every stage of `out`. */
static int s_sign(
    struct knn_s3_sigv4_signature *out, const struct knn_s3_sigv4_config *config,
    const struct knn_s3_sigv4_request *request, const struct knn_s3_kv *extra_query, size_t n_extra,
    const char *amz_date, const char *signed_headers_check)
{
    int rc;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char digest_hex[65];
    struct knn_buf headers_block = KNN_BUF_INIT(S_MAX_STAGE);
    const char *service = config->service ? config->service : "s3";
    const char *header_date;

    if ((rc = s_canonical_query(&out->canonical_query, request->query, request->query_count, extra_query, n_extra)))
        goto done;
    if ((rc = s_canonical_headers(
             &headers_block, &out->signed_headers, request->headers, request->header_count, &header_date)))
        goto done;
    if (signed_headers_check && strcmp((const char *)out->signed_headers.data, signed_headers_check) != 0) {
        rc = knn_error_set(KNN_EINTERNAL, "signed headers changed while presigning");
        goto done;
    }
    if (!signed_headers_check) { /* header signing: x-amz-date must be there and agree */
        if (!header_date) {
            rc = knn_error_set(KNN_EINVAL, "the x-amz-date header is not among the signed headers");
            goto done;
        }
        if (strcmp(header_date, amz_date) != 0) {
            rc = knn_error_set(
                KNN_EINVAL, "x-amz-date header '%s' differs from the signing time %s", header_date, amz_date);
            goto done;
        }
    }
    rc = knn_buf_printf(
        &out->canonical_request, "%s\n%s\n%s\n%s\n%s\n%s", request->method, request->path,
        (const char *)out->canonical_query.data, headers_block.data ? (const char *)headers_block.data : "",
        (const char *)out->signed_headers.data, request->payload_hash);
    if (rc)
        goto done;
    SHA256(out->canonical_request.data, out->canonical_request.len, digest);
    s_hex(digest_hex, digest, sizeof(digest));
    rc = knn_buf_printf(
        &out->string_to_sign, "%s\n%s\n%.8s/%s/%s/aws4_request\n%s", S_ALGORITHM, amz_date, amz_date, config->region,
        service, digest_hex);
    if (rc)
        goto done;
    char date8[9];
    memcpy(date8, amz_date, 8);
    date8[8] = '\0';
    rc = s_signature(
        out->signature, config->credentials->secret_access_key, date8, config->region, service, &out->string_to_sign);
done:
    knn_buf_clean_up(&headers_block);
    return rc;
}

static int
s_check(const struct knn_s3_sigv4_config *config, const struct knn_s3_sigv4_request *request, char amz_date[17])
{
    if (!config || !config->credentials || !config->credentials->access_key_id ||
        !config->credentials->secret_access_key || !*config->credentials->access_key_id)
        return knn_error_set(KNN_EINVAL, "signing needs an access key and a secret key");
    if (!config->region || !*config->region)
        return knn_error_set(KNN_EINVAL, "signing needs a region");
    if (!request->method || !request->path || request->path[0] != '/' || !request->payload_hash)
        return knn_error_set(KNN_EINVAL, "signing needs a method, an absolute path and a payload hash");
    return knn_s3_sigv4_amz_date(amz_date, config->time_s);
}

int knn_s3_sigv4_sign(
    struct knn_s3_sigv4_signature *out, const struct knn_s3_sigv4_config *config,
    const struct knn_s3_sigv4_request *request)
{
    char amz_date[17];
    int rc;
    s_reset(out);
    if ((rc = s_check(config, request, amz_date)))
        return rc;
    if ((rc = s_sign(out, config, request, NULL, 0, amz_date, NULL)))
        return rc;
    return knn_buf_printf(
        &out->authorization, "%s Credential=%s/%.8s/%s/%s/aws4_request,SignedHeaders=%s,Signature=%s", S_ALGORITHM,
        config->credentials->access_key_id, amz_date, config->region, config->service ? config->service : "s3",
        (const char *)out->signed_headers.data, out->signature);
}

int knn_s3_sigv4_presign(
    struct knn_s3_sigv4_signature *out, const struct knn_s3_sigv4_config *config,
    const struct knn_s3_sigv4_request *request, int64_t expires_s)
{
    char amz_date[17];
    char credential[512];
    char expires[24];
    int rc;
    struct knn_buf signed_headers = KNN_BUF_INIT(S_MAX_STAGE);
    struct knn_buf block = KNN_BUF_INIT(S_MAX_STAGE);
    const char *ignored;

    s_reset(out);
    if ((rc = s_check(config, request, amz_date)))
        return rc;
    if (expires_s < 1 || expires_s > 604800)
        return knn_error_set(KNN_ERANGE, "presigned URL expiry of %lld s is outside 1..604800", (long long)expires_s);
    /* The signed-header list goes into the query, so compute it first. */
    if ((rc = s_canonical_headers(&block, &signed_headers, request->headers, request->header_count, &ignored)))
        goto done;
    int n = snprintf(
        credential, sizeof(credential), "%s/%.8s/%s/%s/aws4_request", config->credentials->access_key_id, amz_date,
        config->region, config->service ? config->service : "s3");
    if (n < 0 || (size_t)n >= sizeof(credential)) {
        rc = knn_error_set(KNN_EINVAL, "access key id or region too long");
        goto done;
    }
    snprintf(expires, sizeof(expires), "%lld", (long long)expires_s);
    struct knn_s3_kv extra[6] = {
        {"X-Amz-Algorithm", S_ALGORITHM},
        {"X-Amz-Credential", credential},
        {"X-Amz-Date", amz_date},
        {"X-Amz-Expires", expires},
        {"X-Amz-SignedHeaders", (const char *)signed_headers.data},
        {"X-Amz-Security-Token", config->credentials->session_token},
    };
    size_t n_extra = config->credentials->session_token ? 6 : 5;
    rc = s_sign(out, config, request, extra, n_extra, amz_date, (const char *)signed_headers.data);
done:
    knn_buf_clean_up(&signed_headers);
    knn_buf_clean_up(&block);
    return rc;
}
