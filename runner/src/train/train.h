#ifndef KNN_RUNNER_TRAIN_H
#define KNN_RUNNER_TRAIN_H

/**
 * A SageMaker k-NN training job, start to finish (spec §1, §2, §5):
 *
 *  1. configuration: a CreateTrainingJob-shaped manifest, or the /opt/ml container contract;
 *     hyperparameters validated (every violation at once) before any data is read;
 *  2. the output must not exist yet (unless `overwrite`);
 *  3. the channels are listed; with InstanceCount W > 1, W hosts are simulated: ShardedByS3Key
 *     gives object i to host i mod W, FullyReplicated gives every host everything, and each host
 *     samples sample_size / W rows;
 *  4. each host's objects stream through the row decoder into reservoir samples: `streams`
 *     reservoirs per host (objects dealt round-robin; 1 for RecordIO, whose decoding outruns the
 *     network, 2 for CSV, whose parsing is CPU-bound), run on worker threads beside the S3
 *     reader's I/O thread and merged (knn_reservoir_merge) in a fixed order, so a job's sample
 *     depends on its inputs and settings, not on timing; the data set is never stored;
 *  5. the index is built from the hosts' samples together (auto nlists = floor(sqrt(sample_size)),
 *     at most the rows sampled);
 *  6. a test channel is scored (accuracy or mse) and logged as SageMaker does:
 *     "#test_score (algo-1) : ('accuracy', 0.98666666666666669)";
 *  7. the three model files are written (container: into <base>/model), or packed into
 *     model.tar.gz and put at <S3OutputPath>/<TrainingJobName>/output/model.tar.gz, with
 *     job-summary.json beside it.
 *
 * Any failure ends with a "ClientError: ..." or "AlgorithmError: ..." reason on stderr (and in
 * <base>/output/failure in container mode), exit status 1, and nothing at the output path.
 * MaxRuntimeInSeconds, SIGTERM and SIGINT stop the job the same way.
 */

#include <stddef.h>

struct knn_train_options {
    const char *manifest_path; /* NULL: the container contract */
    const char *base_dir;      /* container: NULL = $SAGEMAKER_BASE_DIR or /opt/ml */
    const char *endpoint_url;  /* overrides the manifest's EndpointUrl; NULL = manifest, then environment */
    int overwrite;             /* replace an existing model */
    int dry_run;               /* validate, check the output, list the channels; read and write nothing */
    int json;                  /* print the summary as JSON on stdout (else a few lines) */
    int progress;              /* -1: a live line if stderr is a terminal; 0 log lines; 1 live line */
    size_t streams;            /* reservoirs (decoders) per simulated host; 0 = 1 (RecordIO) or 2 (CSV) */
    size_t threads;            /* worker threads for decoding; 0 = the number of cores */
    int gzip_level;            /* model.tar.gz: 0 stored .. 9; -1 auto: 6 below 4 MiB of model files, else 0
                                  (float32 index data shrinks ~7% at ~20 MB/s with deflate) */
    double target_recall;      /* IVF nprobe tuned to this recall@k; 0 = the manifest's KnnRunner.TargetRecall */
    long recall_queries;       /* held-out recall queries; -1 = the manifest's, else min(1000, 1%); 0 = none */
    int stop_timeout_s;        /* after SIGTERM/SIGINT or MaxRuntimeInSeconds: transfers stop at once, clean-up
                                  gets 4/5 of this, and the process ends by then whatever the network does */
};

#define KNN_TRAIN_OPTIONS_INIT {NULL, NULL, NULL, 0, 0, 0, -1, 0, 0, -1, 0.0, -1, 5}

/** Run one job. Returns the process exit status: 0 completed, 1 failed. */
int knn_train_run(const struct knn_train_options *opts);

#endif
