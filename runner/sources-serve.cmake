# serve: the inference endpoint (knn-runner serve) and batch transform (knn-runner transform),
# wired from knn_algorithms (models, predict), knn_recordio (RecordIO-protobuf and CSV bodies) and
# knn_s3 (models and transform data on S3).
set(KNN_SERVE_ENABLED ON CACHE INTERNAL "serve and transform are in knn_runner_core (tests/serve reads it)")
set(KNN_SERVE_S3 ON CACHE INTERNAL "transform and serve can reach S3 (tests/serve reads it)")
list(APPEND KNN_RUNNER_SOURCES
    src/cmd_serve.c
    src/cmd_transform.c
    src/infer_json_fast.c
    src/infer_request.c
    src/infer_response.c
    src/mime.c
    src/model_archive.c
    src/serve_app.c
    src/serve_fetch.c
    src/serve_http.c
    src/serve_model.c
    src/transform_run.c
    src/transform_store.c
    src/transform_store_s3.c)
list(APPEND KNN_RUNNER_LIBS knn_algorithms knn_recordio knn_s3 PkgConfig::JANSSON PkgConfig::MHD PkgConfig::LIBARCHIVE)
