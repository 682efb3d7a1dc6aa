#include "knn/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MESSAGE_MAX 1024

static _Thread_local char tl_message[S_MESSAGE_MAX];

struct s_error_row {
    int code;
    const char *name;
    const char *sentence;
};

static const struct s_error_row s_errors[] = {
    {KNN_OK, "KNN_OK", "success"},
    {KNN_EINVAL, "KNN_EINVAL", "invalid argument"},
    {KNN_ENOMEM, "KNN_ENOMEM", "out of memory"},
    {KNN_EIO, "KNN_EIO", "input/output error"},
    {KNN_EFORMAT, "KNN_EFORMAT", "malformed input"},
    {KNN_ETRUNCATED, "KNN_ETRUNCATED", "input ended in the middle of an item"},
    {KNN_ETOOBIG, "KNN_ETOOBIG", "size over its limit"},
    {KNN_ENOTFOUND, "KNN_ENOTFOUND", "not found"},
    {KNN_EEXISTS, "KNN_EEXISTS", "already exists"},
    {KNN_EUNSUPPORTED, "KNN_EUNSUPPORTED", "not supported"},
    {KNN_ERANGE, "KNN_ERANGE", "value out of range"},
    {KNN_ECANCELED, "KNN_ECANCELED", "canceled"},
    {KNN_ETIMEOUT, "KNN_ETIMEOUT", "timed out"},
    {KNN_EINTERNAL, "KNN_EINTERNAL", "internal error"},
    {KNN_ECHECKSUM, "KNN_ECHECKSUM", "checksum mismatch"},
    {KNN_EMISMATCH, "KNN_EMISMATCH", "mismatch"},
    {KNN_ECONFIG, "KNN_ECONFIG", "invalid configuration"},
    {KNN_ERECORDIO_MAGIC, "KNN_ERECORDIO_MAGIC", "bad RecordIO magic"},
    {KNN_ES3, "KNN_ES3", "S3 error"},
    {KNN_ES3_NET, "KNN_ES3_NET", "network error"},
    {KNN_ES3_CREDENTIALS, "KNN_ES3_CREDENTIALS", "no usable credentials"},
    {KNN_ES3_NO_SUCH_KEY, "KNN_ES3_NO_SUCH_KEY", "no such key"},
    {KNN_ES3_NO_SUCH_BUCKET, "KNN_ES3_NO_SUCH_BUCKET", "no such bucket"},
    {KNN_ES3_ACCESS_DENIED, "KNN_ES3_ACCESS_DENIED", "access denied"},
    {KNN_ES3_RETRIES_EXHAUSTED, "KNN_ES3_RETRIES_EXHAUSTED", "retries exhausted"},
    {KNN_ES3_CHANGED, "KNN_ES3_CHANGED", "object changed while being read"},
    {KNN_ES3_NO_SUCH_UPLOAD, "KNN_ES3_NO_SUCH_UPLOAD", "no such multipart upload"},
    {KNN_ES3_UNREACHABLE, "KNN_ES3_UNREACHABLE", "S3 endpoint unreachable"},
    {KNN_EINDEX_NOT_TRAINED, "KNN_EINDEX_NOT_TRAINED", "index not trained"},
    {KNN_EHTTP, "KNN_EHTTP", "HTTP error"},
};

static const struct s_error_row *s_find(int code)
{
    for (size_t i = 0; i < sizeof(s_errors) / sizeof(s_errors[0]); i++) {
        if (s_errors[i].code == code)
            return &s_errors[i];
    }
    return NULL;
}

int knn_error_setv(int code, const char *fmt, va_list ap)
{
    vsnprintf(tl_message, sizeof(tl_message), fmt, ap);
    return code;
}

int knn_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    knn_error_setv(code, fmt, ap);
    va_end(ap);
    return code;
}

int knn_error_wrap(int code, const char *fmt, ...)
{
    char old[S_MESSAGE_MAX];
    char prefix[S_MESSAGE_MAX];
    va_list ap;

    if (tl_message[0])
        memcpy(old, tl_message, sizeof(old));
    else
        snprintf(old, sizeof(old), "%s", knn_error_str(code));
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    /* "prefix: old", truncated to the buffer (by hand: snprintf would warn about the intended cut). */
    size_t n = strlen(prefix);
    memcpy(tl_message, prefix, n);
    if (n + 2 < sizeof(tl_message)) {
        memcpy(tl_message + n, ": ", 2);
        n += 2;
        size_t rest = strnlen(old, sizeof(tl_message) - 1 - n);
        memcpy(tl_message + n, old, rest);
        n += rest;
    }
    tl_message[n] = '\0';
    return code;
}

const char *knn_error_message(void)
{
    return tl_message;
}

void knn_error_clear(void)
{
    tl_message[0] = '\0';
}

const char *knn_error_name(int code)
{
    const struct s_error_row *row = s_find(code);
    return row ? row->name : "KNN_E?";
}

const char *knn_error_str(int code)
{
    const struct s_error_row *row = s_find(code);
    return row ? row->sentence : "unknown error";
}

void knn__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "knn-runner: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
