# The `knn-runner recordio` command: inspect and convert RecordIO-protobuf / CSV data.
list(APPEND KNN_RUNNER_SOURCES src/cmd_recordio.c)
list(APPEND KNN_RUNNER_LIBS knn_recordio PkgConfig::JANSSON)
