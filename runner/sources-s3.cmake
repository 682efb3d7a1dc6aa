# The `knn-runner s3` command: ls, cp, rm against S3-compatible storage (s3/ does the work).
list(APPEND KNN_RUNNER_SOURCES src/cmd_s3.c)
list(APPEND KNN_RUNNER_LIBS knn_s3)
