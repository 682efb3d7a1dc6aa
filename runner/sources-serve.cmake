# serve: the inference endpoint (knn-runner serve) and batch transform (knn-runner transform).
# Needs knn_algorithms (models, predict) and knn_recordio (RecordIO-protobuf and CSV bodies).
# TEMPORARY (while algorithms/ lands piece by piece): also wait for the file that defines
# knn_model_load, so a half-landed knn_algorithms does not break the knn-runner link for everyone.
set(KNN_SERVE_HAVE_MODEL_LOAD OFF)
if(TARGET knn_algorithms)
    get_target_property(_knn_algo_srcs knn_algorithms SOURCES)
    foreach(_src IN LISTS _knn_algo_srcs)
        if(EXISTS "${_src}")
            file(READ "${_src}" _text)
            string(FIND "${_text}" "\nint knn_model_load(" _at)
            if(NOT _at EQUAL -1)
                set(KNN_SERVE_HAVE_MODEL_LOAD ON)
            endif()
        endif()
    endforeach()
endif()
if(TARGET knn_algorithms AND TARGET knn_recordio AND KNN_SERVE_HAVE_MODEL_LOAD)
    set(KNN_SERVE_ENABLED ON CACHE INTERNAL "serve and transform are in knn_runner_core (tests/serve reads it)")
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
    set(KNN_SERVE_ENABLED OFF CACHE INTERNAL "serve and transform are in knn_runner_core (tests/serve reads it)")
    # Not buildable yet: keep the placeholders (runner/CMakeLists.txt adds them when the feature is absent).
    list(APPEND KNN_RUNNER_SOURCES src/placeholder_serve.c src/placeholder_transform.c)
endif()
