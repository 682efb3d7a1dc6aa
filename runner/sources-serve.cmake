# serve: the inference endpoint (knn-runner serve) and batch transform (knn-runner transform).
# Needs knn_algorithms (models, predict) and knn_recordio (RecordIO-protobuf and CSV bodies).
if(TARGET knn_algorithms AND TARGET knn_recordio)
    list(APPEND KNN_RUNNER_SOURCES
        src/model_archive.c
        src/cmd_serve.c
        src/cmd_transform.c
        src/infer_request.c
        src/infer_response.c
        src/mime.c
        src/serve_app.c
        src/serve_http.c
        src/serve_model.c
        src/transform_run.c
        src/transform_store.c)
    # TEMPORARY guard: the S3 halves need knn_s3, which is still being built.
    if(TARGET knn_s3)
        list(APPEND KNN_RUNNER_SOURCES src/serve_fetch.c src/transform_store_s3.c)
        list(APPEND KNN_RUNNER_LIBS knn_s3)
    else()
        list(APPEND KNN_RUNNER_SOURCES src/serve_nos3.c)
    endif()
    list(APPEND KNN_RUNNER_LIBS knn_algorithms knn_recordio PkgConfig::JANSSON PkgConfig::MHD PkgConfig::LIBARCHIVE)
else()
    # Not buildable yet: keep the placeholders (runner/CMakeLists.txt adds them when the feature is absent).
    list(APPEND KNN_RUNNER_SOURCES src/placeholder_serve.c src/placeholder_transform.c)
endif()
