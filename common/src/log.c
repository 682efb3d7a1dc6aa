#include "knn/common/log.h"
#include "knn/common/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int s_level = -1; /* -1: not yet read from the environment */
static knn_log_sink_fn *s_sink;
static void *s_sink_user;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_host[64]; /* "" or the host every line starts with */

static const char *const s_level_names[] = {"ERROR", "WARNING", "INFO", "DEBUG", "TRACE"};
static const char *const s_subject_names[KNN_LS_COUNT] = {"", "recordio", "s3", "algorithms", "http", "runner"};

int knn_log_parse_level(enum knn_log_level *out, const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (enum knn_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = KNN_LOG_WARN;
        return 0;
    }
    return knn_error_set(KNN_EINVAL, "unknown log level '%s' (error, warn, info, debug, trace)", name);
}

void knn_log_set_level(enum knn_log_level level)
{
    atomic_store(&s_level, (int)level);
}

enum knn_log_level knn_log_get_level(void)
{
    int level = atomic_load(&s_level);
    if (level < 0) {
        enum knn_log_level parsed = KNN_LOG_INFO;
        const char *env = getenv("KNN_LOG_LEVEL");
        if (env && *env && knn_log_parse_level(&parsed, env) != 0)
            parsed = KNN_LOG_INFO;
        int expected = -1;
        atomic_compare_exchange_strong(&s_level, &expected, (int)parsed);
        level = atomic_load(&s_level);
    }
    return (enum knn_log_level)level;
}

int knn_log_enabled(enum knn_log_level level)
{
    return (int)level <= (int)knn_log_get_level();
}

void knn_log_set_sink(knn_log_sink_fn *fn, void *user)
{
    pthread_mutex_lock(&s_lock);
    s_sink = fn;
    s_sink_user = user;
    pthread_mutex_unlock(&s_lock);
}

void knn_log_set_host(const char *host)
{
    pthread_mutex_lock(&s_lock);
    snprintf(s_host, sizeof(s_host), "%s", host ? host : "");
    pthread_mutex_unlock(&s_lock);
}

void knn_log_write(enum knn_log_level level, enum knn_log_subject subject, const char *fmt, ...)
{
    char line[4096];
    struct timespec now;
    struct tm tm;
    size_t n;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = 0;
    if (s_host[0])
        n = (size_t)snprintf(line, sizeof(line), "%s | ", s_host);
    n += (size_t)snprintf(
        line + n, sizeof(line) - n, "[%02d/%02d/%04d %02d:%02d:%02d %s %lu] ", tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900,
        tm.tm_hour, tm.tm_min, tm.tm_sec, s_level_names[level], (unsigned long)pthread_self());
    if (subject != KNN_LS_JOB && subject < KNN_LS_COUNT && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s: ", s_subject_names[subject]);
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }

    pthread_mutex_lock(&s_lock);
    if (s_sink) {
        s_sink(s_sink_user, level, line);
    } else {
        /* One write per line: under mpirun the ranks' lines would otherwise interleave mid-line. */
        size_t len = strnlen(line, sizeof(line) - 1);
        line[len] = '\n';
        fwrite(line, 1, len + 1, stderr);
        fflush(stderr);
    }
    pthread_mutex_unlock(&s_lock);
}
