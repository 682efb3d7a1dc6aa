# config: hyperparameters, job manifests, the /opt/ml container contract, channel object lists,
# failure reasons and the job summary, the progress display. Needs no S3, RecordIO or index code.
list(APPEND KNN_RUNNER_SOURCES
    src/hyperparams.c
    src/job_config.c
    src/manifest.c
    src/container.c
    src/channels.c
    src/job_report.c
    src/progress.c)
list(APPEND KNN_RUNNER_LIBS PkgConfig::JANSSON Threads::Threads)
