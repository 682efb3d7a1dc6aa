#ifndef KNN_RUNNER_JOB_REPORT_H
#define KNN_RUNNER_JOB_REPORT_H

/**
 * How a training job reports its end (spec §1.6, §5.4):
 * - a failure reason "ClientError: <message>" (the user's input or configuration: manifest,
 *   hyperparameters, data, missing objects, denied access, a deadline or stop request) or
 *   "AlgorithmError: <message>" (our side or the platform's: memory, I/O, the S3 service failing),
 *   written to <base>/output/failure in container mode (SageMaker surfaces its first 1024 bytes);
 * - a job summary (JSON): status, hyperparameters, channels read, rows sampled, metrics, timings
 *   per phase, peak memory (VmHWM), the artifact's URI.
 * Not thread-safe.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/**
 * A metric value as SageMaker's `#test_score` line prints it: the repr of its Python 2 container,
 * 17 significant digits ("%.17g") with ".0" added to a number that has neither a point nor an
 * exponent, so a perfect accuracy is `1.0` and 0.561 is `0.56100000000000005` (spec §1.6: the
 * documented lines `0.98666666666666669`, `0.013333333333333334`); `nan`, `inf`, `-inf` as Python.
 * Writes at most `size` bytes (32 always suffice); returns buf.
 */
const char *knn_score_repr(char *buf, size_t size, double value);

/** "ClientError" or "AlgorithmError" for a KNN_E* code. */
const char *knn_failure_class(int code);

/** "<class>: <message>" into buf (truncated to size); returns buf. */
const char *knn_failure_reason(char *buf, size_t size, int code, const char *message);

/** Write `reason` to `path` (created or replaced, mode 0644). 0 or KNN_EIO. */
int knn_failure_write_file(const char *path, const char *reason);

enum knn_job_phase {
    KNN_PHASE_SETUP,  /* configuration, listing */
    KNN_PHASE_SAMPLE, /* reading the train channel into the sample */
    KNN_PHASE_BUILD,  /* dimension reduction, index training, adding */
    KNN_PHASE_SCORE,  /* the test channel */
    KNN_PHASE_SAVE,   /* model files and model.tar.gz */
    KNN_PHASE_UPLOAD, /* the artifact to its output path */
    KNN_PHASE_COUNT,
};

const char *knn_job_phase_name(enum knn_job_phase phase);

struct knn_job_summary_channel {
    int present;
    uint64_t objects;
    uint64_t bytes;
    uint64_t rows;
};

/* recall@k of an approximate index, measured by the build (knn_model_recall). */
struct knn_job_summary_recall {
    int present;
    uint64_t k, queries;
    const char *param; /* "nprobe" */
    uint64_t param_value;
    double value;
    double seconds; /* what the measurement (and tuning) added to the build */
    double target;  /* 0: none asked */
    int reached;
};

/*
 * One host of the job (spec: SageMaker's algo-N): rank r of an MPI world, or simulated host r of a
 * single process (then every host has the same pid and the process's peak memory). Plain numbers,
 * so ranks can send it as bytes.
 */
struct knn_job_host {
    char host[32];           /* "algo-2" */
    uint64_t rank;
    uint64_t pid;
    uint64_t objects;        /* train objects it read */
    uint64_t bytes;
    uint64_t rows;           /* rows read */
    uint64_t rows_sampled;
    uint64_t peak_memory_bytes;
    double sample_seconds;   /* reading and sampling its share */
    double gather_seconds;   /* sending its sample to algo-1 (0 in one process) */
};

struct knn_job_summary {
    const char *job_name;
    int failed;
    int dry_run;                 /* validated and planned only (train --dry-run): status "Validated" */
    const char *failure_reason;  /* when failed */
    json_t *hyperparameters;     /* borrowed; NULL if not validated */
    struct knn_job_summary_channel channels[2]; /* train, test */
    uint64_t instance_count;
    uint64_t rows_sampled;
    uint64_t index_vectors;      /* the model's ntotal */
    const char *metric_name;     /* "test:accuracy" | "test:mse" | NULL */
    double metric_value;
    struct knn_job_summary_recall recall; /* "Recall": {"k", <param>, "queries", "value", "seconds"[, "target", "reached"]} */
    double phase_seconds[KNN_PHASE_COUNT];
    double total_seconds;
    uint64_t peak_rss_bytes;
    const char *artifact;        /* model.tar.gz URI, or the model directory in container mode */
    const char *world_engine;    /* "Open MPI", or "single process" (simulated hosts); NULL: no World */
    uint64_t world_size;         /* processes */
    const struct knn_job_host *hosts; /* host_count entries (borrowed), in rank order */
    size_t host_count;
    json_t *s3_retries;          /* borrowed; "S3Retries": {"SlowDown": 40, "timeout": 2}; NULL: S3 not used */
};

/** The summary as a JSON object (new reference; NULL on ENOMEM). */
json_t *knn_job_summary_to_json(const struct knn_job_summary *s);

/** A few human-readable lines. */
void knn_job_summary_print(FILE *out, const struct knn_job_summary *s);

/** Peak resident set size of this program so far, in bytes (VmHWM; getrusage where /proc is missing). */
uint64_t knn_peak_rss_bytes(void);

#endif
