/* Live progress: one rewritten line on a terminal, periodic log lines elsewhere. */
#include "progress.h"

#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_TICK_MS 200

enum s_mode { S_IDLE, S_READ, S_STEP };

struct knn_progress {
    int interactive;
    uint64_t log_interval_ms;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    /* the current phase (under lock) */
    enum s_mode mode;
    char what[128];
    uint64_t total_bytes;
    uint64_t start_ns;
    uint64_t last_log_ns;
    int line_shown; /* interactive: a progress line is on screen */
    atomic_uint_fast64_t bytes;
    atomic_uint_fast64_t rows;
};

void knn_progress_format_bytes(char *buf, size_t size, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static void s_duration(char *buf, size_t size, double s)
{
    if (s < 60)
        snprintf(buf, size, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* The status text of the current phase; "" when idle. Called with the lock held. */
static void s_render(struct knn_progress *p, char *line, size_t size)
{
    double elapsed = knn_clock_seconds_since(p->start_ns);
    char done[32], total[32], rate[32], eta[32];
    line[0] = '\0';
    if (p->mode == S_STEP) {
        s_duration(eta, sizeof(eta), elapsed);
        snprintf(line, size, "%s: %s", p->what, eta);
        return;
    }
    if (p->mode != S_READ)
        return;
    uint64_t bytes = atomic_load(&p->bytes), rows = atomic_load(&p->rows);
    double bps = elapsed > 0 ? (double)bytes / elapsed : 0;
    knn_progress_format_bytes(done, sizeof(done), (double)bytes);
    knn_progress_format_bytes(rate, sizeof(rate), bps);
    if (p->total_bytes != UINT64_MAX && p->total_bytes > 0) {
        double frac = (double)bytes / (double)p->total_bytes;
        knn_progress_format_bytes(total, sizeof(total), (double)p->total_bytes);
        if (bps > 0 && bytes < p->total_bytes)
            s_duration(eta, sizeof(eta), (double)(p->total_bytes - bytes) / bps);
        else
            snprintf(eta, sizeof(eta), "-");
        snprintf(line, size, "%s: %s of %s (%.0f%%), %llu rows, %s/s, ETA %s", p->what, done, total,
                 100.0 * (frac > 1 ? 1 : frac), (unsigned long long)rows, rate, eta);
    } else {
        snprintf(line, size, "%s: %s, %llu rows, %s/s", p->what, done, (unsigned long long)rows, rate);
    }
}

/* Interactive: redraw the line. Called with the lock held. */
static void s_draw(struct knn_progress *p)
{
    char line[512];
    s_render(p, line, sizeof(line));
    if (!line[0])
        return;
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    p->line_shown = 1;
}

static void s_clear(struct knn_progress *p)
{
    if (p->line_shown) {
        fputs("\r\033[K", stderr);
        p->line_shown = 0;
    }
}

/* Log lines go above the progress line. */
static void s_sink(void *user, enum knn_log_level level, const char *text)
{
    struct knn_progress *p = user;
    pthread_mutex_lock(&p->lock);
    s_clear(p);
    fputs(text, stderr);
    fputc('\n', stderr);
    if (p->mode != S_IDLE)
        s_draw(p);
    fflush(stderr);
    pthread_mutex_unlock(&p->lock);
}

static void *s_thread(void *arg)
{
    struct knn_progress *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)S_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->wake, &p->lock, &until);
        if (p->stop || p->mode == S_IDLE)
            continue;
        if (p->interactive) {
            s_draw(p);
            continue;
        }
        uint64_t now = knn_clock_monotonic_ns();
        if (now - p->last_log_ns < p->log_interval_ms * 1000000ULL)
            continue;
        p->last_log_ns = now;
        char line[512];
        s_render(p, line, sizeof(line));
        pthread_mutex_unlock(&p->lock); /* logging takes the log lock; never hold ours across it */
        if (line[0])
            KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "%s", line);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int knn_progress_new(struct knn_progress **out, const struct knn_progress_options *opts)
{
    struct knn_progress_options defaults = KNN_PROGRESS_OPTIONS_INIT;
    struct knn_progress *p;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (!(p = knn_calloc(1, sizeof(*p))))
        return KNN_ENOMEM;
    p->interactive = opts->interactive >= 0 ? opts->interactive : isatty(STDERR_FILENO);
    p->log_interval_ms = opts->log_interval_ms ? opts->log_interval_ms : 5000;
    p->mode = S_IDLE;
    atomic_init(&p->bytes, 0);
    atomic_init(&p->rows, 0);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    int err = pthread_create(&p->thread, NULL, s_thread, p);
    if (err != 0) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->wake);
        knn_free(p);
        return knn_error_set(KNN_ENOMEM, "cannot start the progress thread: %s", strerror(err));
    }
    p->thread_started = 1;
    if (p->interactive)
        knn_log_set_sink(s_sink, p);
    *out = p;
    return 0;
}

void knn_progress_destroy(struct knn_progress *p)
{
    if (!p)
        return;
    if (p->interactive)
        knn_log_set_sink(NULL, NULL);
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (p->thread_started)
        pthread_join(p->thread, NULL);
    if (p->line_shown) {
        fputc('\n', stderr);
        fflush(stderr);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    knn_free(p);
}

static void s_start(struct knn_progress *p, enum s_mode mode, const char *what, uint64_t total_bytes)
{
    pthread_mutex_lock(&p->lock);
    if (p->interactive && p->line_shown) {
        s_draw(p); /* the previous phase's last state stays on its own line */
        fputc('\n', stderr);
        p->line_shown = 0;
    }
    p->mode = mode;
    snprintf(p->what, sizeof(p->what), "%s", what);
    p->total_bytes = total_bytes;
    p->start_ns = knn_clock_monotonic_ns();
    p->last_log_ns = p->start_ns;
    atomic_store(&p->bytes, 0);
    atomic_store(&p->rows, 0);
    pthread_mutex_unlock(&p->lock);
}

void knn_progress_start_read(struct knn_progress *p, const char *what, uint64_t total_bytes)
{
    if (p)
        s_start(p, S_READ, what, total_bytes);
}

void knn_progress_start_step(struct knn_progress *p, const char *what)
{
    if (p)
        s_start(p, S_STEP, what, 0);
}

void knn_progress_add(struct knn_progress *p, uint64_t bytes, uint64_t rows)
{
    if (!p)
        return;
    atomic_fetch_add_explicit(&p->bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->rows, rows, memory_order_relaxed);
}

void knn_progress_end(struct knn_progress *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->interactive && p->mode != S_IDLE) {
        s_draw(p);
        fputc('\n', stderr);
        fflush(stderr);
        p->line_shown = 0;
    }
    p->mode = S_IDLE;
    pthread_mutex_unlock(&p->lock);
}

int knn_progress_interactive(const struct knn_progress *p)
{
    return p && p->interactive;
}
