# train: the training job (knn-runner train): channels streamed from S3 or local files through the
# row decoder into reservoir samples, the index, the test score, model.tar.gz and its upload.
set(KNN_TRAIN_ENABLED ON CACHE INTERNAL "the train command is in knn_runner_core (tests/train reads it)")
list(APPEND KNN_RUNNER_SOURCES
    src/cmd_train.c
    src/train.c
    src/train_io.c
    src/model_archive.c)
list(APPEND KNN_RUNNER_LIBS knn_s3 knn_recordio knn_algorithms PkgConfig::JANSSON PkgConfig::LIBARCHIVE
    Threads::Threads m)
