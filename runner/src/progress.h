#ifndef KNN_RUNNER_PROGRESS_H
#define KNN_RUNNER_PROGRESS_H

/**
 * Live progress of a training job on stderr.
 *
 * On a terminal (interactive) one line is rewritten about five times a second: while reading,
 * bytes and rows done of the listing's total, the rate and the time left; during other steps
 * (building the index), the step's name and its elapsed time. Log lines printed meanwhile go
 * above it (the progress installs a log sink that clears and redraws the line).
 * Not on a terminal, a log line every `log_interval_ms` (default 5 s) says the same.
 *
 * A background thread does the drawing. knn_progress_add() is lock-free and may be called from
 * any thread; the other functions are for the job's main thread.
 */

#include <stddef.h>
#include <stdint.h>

struct knn_progress;

struct knn_progress_options {
    int interactive;          /* 1 rewrite a line, 0 log lines, -1 decide with isatty(stderr) */
    uint64_t log_interval_ms; /* non-interactive: time between lines; 0 = 5000 */
};

#define KNN_PROGRESS_OPTIONS_INIT {-1, 0}

int knn_progress_new(struct knn_progress **out, const struct knn_progress_options *opts);
/** Stops the thread, ends the line, restores the default log sink. NULL is a no-op. */
void knn_progress_destroy(struct knn_progress *p);

/** Start reading `what` (e.g. "train"): `total_bytes` from the listing (UINT64_MAX if unknown). */
void knn_progress_start_read(struct knn_progress *p, const char *what, uint64_t total_bytes);
/** Count bytes and rows done in the current reading phase. Thread-safe. */
void knn_progress_add(struct knn_progress *p, uint64_t bytes, uint64_t rows);
/** Start a step without counters (e.g. "building index faiss.IVFFlat"). */
void knn_progress_start_step(struct knn_progress *p, const char *what);
/** End the current phase (an interactive line is finished with a newline). */
void knn_progress_end(struct knn_progress *p);

/** `bytes` for people: "512 B", "3.4 MiB" (1024-based units) into buf. */
void knn_progress_format_bytes(char *buf, size_t size, double bytes);

/** Whether the display rewrites a line (for callers that print their own lines). */
int knn_progress_interactive(const struct knn_progress *p);

#endif
