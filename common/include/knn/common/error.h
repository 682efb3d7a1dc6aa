#ifndef KNN_COMMON_ERROR_H
#define KNN_COMMON_ERROR_H

/**
 * Errors are values (libgit2 style): a fallible function returns `int`, 0 on success or a negative
 * KNN_E* code, with its outputs as the first parameters. The detail -- one line naming the object,
 * the position and the cause -- lives in a thread-local message set with knn_error_set() and read
 * with knn_error_message() only after a failure.
 *
 * Codes come in per-component ranges; each code has one row in the table behind knn_error_name()
 * and knn_error_str() (common/src/error.c). Add a code by adding it here and to that table.
 */

#include <stdarg.h>

enum knn_error_code {
    KNN_OK = 0,

    /* common: -1 .. -99 */
    KNN_EINVAL = -1,       /* invalid argument or option */
    KNN_ENOMEM = -2,       /* out of memory, or a size computation overflowed */
    KNN_EIO = -3,          /* a local read or write failed */
    KNN_EFORMAT = -4,      /* malformed input bytes */
    KNN_ETRUNCATED = -5,   /* input ended in the middle of an item */
    KNN_ETOOBIG = -6,      /* a length or size is over its cap */
    KNN_ENOTFOUND = -7,    /* no such file, object or key */
    KNN_EEXISTS = -8,      /* the target already exists */
    KNN_EUNSUPPORTED = -9, /* valid but not supported */
    KNN_ERANGE = -10,      /* a value is out of its allowed range (NaN, Inf, index out of bounds) */
    KNN_ECANCELED = -11,   /* stopped on request (signal, deadline) */
    KNN_ETIMEOUT = -12,    /* a deadline passed */
    KNN_EINTERNAL = -13,   /* a bug: an invariant did not hold */
    KNN_ECHECKSUM = -14,   /* a checksum did not match */
    KNN_EMISMATCH = -15,   /* two things that must agree do not (dimensions, versions) */
    KNN_ECONFIG = -16,     /* a user configuration (manifest, hyperparameters, options) is invalid */

    /* protobuf-recordio: -100 .. -199 */
    KNN_ERECORDIO_MAGIC = -100, /* a RecordIO frame does not start with the magic number */

    /* s3: -200 .. -299 */
    KNN_ES3 = -200,              /* S3 answered with an error */
    KNN_ES3_NET = -201,          /* connection failed, reset or timed out */
    KNN_ES3_CREDENTIALS = -202,  /* no usable credentials */
    KNN_ES3_NO_SUCH_KEY = -203,  /* the object does not exist */
    KNN_ES3_NO_SUCH_BUCKET = -204,
    KNN_ES3_ACCESS_DENIED = -205,
    KNN_ES3_RETRIES_EXHAUSTED = -206, /* a retryable error persisted past the last attempt */
    KNN_ES3_CHANGED = -207,           /* the object changed while it was read (its ETag no longer matches) */
    KNN_ES3_NO_SUCH_UPLOAD = -208,    /* the multipart upload does not exist (completed or aborted) */
    KNN_ES3_UNREACHABLE = -209,       /* no connection to the endpoint could be made (name, refused): a setting */

    /* algorithms: -300 .. -399 */
    KNN_EINDEX_NOT_TRAINED = -300, /* the index needs training before vectors are added */

    /* runner: -400 .. -499 */
    KNN_EHTTP = -400, /* an HTTP request could not be served */
};

/**
 * Set this thread's error message (printf format) and return `code`, so a failure site reads
 * `return knn_error_set(KNN_EFORMAT, "record %zu at offset %zu: bad magic", i, off);`.
 * The message is truncated to 1 KiB. Never put secrets in it.
 */
int knn_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int knn_error_setv(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/**
 * Prefix this thread's current message with context and return `code` unchanged:
 * `return knn_error_wrap(rc, "s3://%s/%s", bucket, key);` turns "bad magic at offset 88" into
 * "s3://b/k: bad magic at offset 88". If no message is set, the code's sentence is used.
 */
int knn_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** This thread's last error message; "" if none was set since the last knn_error_clear(). */
const char *knn_error_message(void);

/** Clear this thread's error message. */
void knn_error_clear(void);

/** The code's symbolic name ("KNN_EFORMAT"), or "KNN_E?" for an unknown code. */
const char *knn_error_name(int code);

/** The code's one-sentence meaning ("malformed input"). */
const char *knn_error_str(int code);

/** Assert a programming error (libgit2 style): aborts with file and line, in every build type. */
#define KNN_ASSERT(cond)                                                                                            \
    do {                                                                                                            \
        if (!(cond))                                                                                                \
            knn__assert_fail(#cond, __FILE__, __LINE__);                                                            \
    } while (0)

_Noreturn void knn__assert_fail(const char *expr, const char *file, int line);

#endif
