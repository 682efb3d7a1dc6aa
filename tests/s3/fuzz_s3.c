/*
 * Fuzz target for every reader of outside bytes in s3/: the first byte picks the parser, the rest
 * is its input.
 *   0  XML (element-path SAX): paths and texts stay within their caps
 *   1  S3 <Error> documents: fields are NUL-terminated one-liners
 *   2  credentials JSON (container / IMDS answers): success means both keys are non-empty
 *   3  S3 URIs: success means a non-empty bucket without '/' and a key without control bytes
 *   4  URI encoding: decode(encode(x)) == x for any bytes without NUL, and encode uses only
 *      unreserved characters and %XX
 *   5  ISO 8601 times and Content-Range values: no crash, sane results
 * Built as a libFuzzer target with KNN_BUILD_FUZZERS=ON (clang), and always as a corpus replay test
 * (tests/s3/corpora/s3/, labels fuzz;sanitize).
 */
#include "credentials_impl.h"
#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/uri.h"
#include "s3_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_s3: property broken: %s (last error: %s)\n", what, knn_error_message());
        abort();
    }
}

static int s_xml_cb(void *user, const char *path, const char *text, size_t len)
{
    s_check(strlen(path) <= 1024, "XML path within its cap");
    s_check(len <= 64 * 1024, "XML text within its cap");
    (*(size_t *)user)++;
    return 0;
}

static char *s_cstr(const uint8_t *data, size_t size)
{
    char *s = knn_malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t which = data[0] % 6;
    data++;
    size--;
    switch (which) {
        case 0: {
            size_t elements = 0;
            (void)knn__s3_xml_parse(data, size, s_xml_cb, &elements);
            break;
        }
        case 1: {
            struct knn_s3__error e;
            if (knn__s3_xml_error(&e, data, size)) {
                s_check(memchr(e.code, '\0', sizeof(e.code)) != NULL, "code terminated");
                s_check(strchr(e.message, '\n') == NULL, "message on one line");
            }
            break;
        }
        case 2: {
            struct knn_s3_credentials c;
            if (knn__s3_credentials_from_json(&c, (const char *)data, size, "fuzz") == 0) {
                s_check(
                    c.access_key_id && *c.access_key_id && c.secret_access_key && *c.secret_access_key,
                    "credentials have both keys");
                knn_s3_credentials_clean_up(&c);
            }
            break;
        }
        case 3: {
            char *text = s_cstr(data, size);
            if (!text)
                return 0;
            struct knn_s3_uri u;
            if (knn_s3_uri_parse(&u, text) == 0) {
                s_check(u.bucket && *u.bucket && !strchr(u.bucket, '/'), "bucket non-empty, no '/'");
                for (const char *k = u.key; *k; k++)
                    s_check((unsigned char)*k >= 0x20 && *k != 0x7f, "key without control bytes");
                s_check(knn_s3_uri_is_s3(text), "a parsed URI is an S3 URI");
            }
            knn_s3_uri_clean_up(&u);
            knn_free(text);
            break;
        }
        case 4: {
            if (memchr(data, '\0', size))
                return 0;
            struct knn_buf enc = KNN_BUF_INIT(4 * size + 16), dec = KNN_BUF_INIT(4 * size + 16);
            int keep_slash = size && (data[0] & 1);
            s_check(knn_s3_uri_encode(&enc, (const char *)data, size, keep_slash) == 0, "encode succeeds");
            for (size_t i = 0; i < enc.len; i++) {
                char ch = (char)enc.data[i];
                s_check(
                    (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                        strchr("-._~%", ch) || (keep_slash && ch == '/'),
                    "encoded text is unreserved characters and %XX");
            }
            s_check(
                knn_s3_uri_decode(&dec, enc.data ? (const char *)enc.data : "", enc.len, 0) == 0, "decode succeeds");
            s_check(dec.len == size && (size == 0 || memcmp(dec.data, data, size) == 0), "decode(encode(x)) == x");
            knn_buf_clean_up(&enc);
            knn_buf_clean_up(&dec);
            break;
        }
        case 5: {
            char *text = s_cstr(data, size);
            if (!text)
                return 0;
            int64_t t;
            (void)knn__s3_parse_iso8601(&t, text, strlen(text));
            uint64_t a, b, total;
            if (knn__s3_parse_content_range(text, &a, &b, &total) == 0)
                s_check(b >= a && (total == UINT64_MAX || total > b), "a valid Content-Range is ordered");
            knn_free(text);
            break;
        }
    }
    return 0;
}
