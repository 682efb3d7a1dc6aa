#ifndef KNN_COMMON_LOG_H
#define KNN_COMMON_LOG_H

/**
 * Logging (redis serverLog style): KNN_LOG checks the level before any formatting happens.
 * Lines go to stderr (or a sink set with knn_log_set_sink) in SageMaker's 1P-algorithm shape:
 *
 *     [11/30/2026 10:09:54 INFO 140026520049408] message
 *
 * so that SageMaker metric regexes (`#test_score (algo-1) : ('accuracy', ...)`) match our job logs.
 * Lines of a component subject other than KNN_LS_JOB carry the subject after the bracket
 * ("s3: ..."), so a reader knows which part spoke. Never log a secret.
 *
 * The level comes from knn_log_set_level() or the KNN_LOG_LEVEL environment variable
 * (error|warn|info|debug|trace), read once on first use. Thread-safe.
 */

#include <stdarg.h>

enum knn_log_level {
    KNN_LOG_ERROR = 0,
    KNN_LOG_WARN = 1,
    KNN_LOG_INFO = 2,
    KNN_LOG_DEBUG = 3,
    KNN_LOG_TRACE = 4,
};

enum knn_log_subject {
    KNN_LS_JOB = 0, /* the job's own lines (training/serving progress, metrics): no prefix */
    KNN_LS_RECORDIO,
    KNN_LS_S3,
    KNN_LS_ALGO,
    KNN_LS_HTTP,
    KNN_LS_RUNNER,
    KNN_LS_COUNT,
};

/** Writes one complete, formatted line (without its newline); must be thread-safe. */
typedef void(knn_log_sink_fn)(void *user, enum knn_log_level level, const char *line);

void knn_log_set_level(enum knn_log_level level);
enum knn_log_level knn_log_get_level(void);
/** Parse "error", "warn", "info", "debug", "trace"; returns 0 or KNN_EINVAL. */
int knn_log_parse_level(enum knn_log_level *out, const char *name);
/** Replace the stderr sink (NULL restores it). For tests and the progress display. */
void knn_log_set_sink(knn_log_sink_fn *fn, void *user);

/**
 * Start every line with "<host> | " (NULL or "" removes it), as SageMaker's multi-host logs name
 * the host of each line: set by a rank of a multi-process job (train under mpirun).
 */
void knn_log_set_host(const char *host);

int knn_log_enabled(enum knn_log_level level);
void knn_log_write(enum knn_log_level level, enum knn_log_subject subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define KNN_LOG(level, subject, ...)                                                                                \
    do {                                                                                                            \
        if (knn_log_enabled(level))                                                                                 \
            knn_log_write((level), (subject), __VA_ARGS__);                                                         \
    } while (0)

#endif
