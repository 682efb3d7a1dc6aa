# serve: the inference endpoint (knn-runner serve) and batch transform (knn-runner transform).
# Needs knn_algorithms (models, predict) and knn_recordio (RecordIO-protobuf and CSV bodies); the
# S3 halves need knn_s3.

# TEMPORARY (while algorithms/ and s3/ land piece by piece): use a library only once its sources
# define the functions we call, so a half-landed library does not break the knn-runner link for
# everyone in the shared tree.
function(knn_serve_target_defines out target)
    set(found ON)
    if(NOT TARGET ${target})
        set(${out} OFF PARENT_SCOPE)
        return()
    endif()
    get_target_property(srcs ${target} SOURCES)
    get_target_property(dir ${target} SOURCE_DIR)
    set(text "")
    foreach(src IN LISTS srcs)
        if(NOT IS_ABSOLUTE "${src}")
            set(src "${dir}/${src}")
        endif()
        if(EXISTS "${src}")
            file(READ "${src}" t)
            string(APPEND text "${t}")
        endif()
    endforeach()
    foreach(fn IN LISTS ARGN)
        string(REGEX MATCH "\n[a-z].*[ *]${fn}\\(" hit "${text}")
        if(NOT hit)
            set(found OFF)
        endif()
    endforeach()
    set(${out} ${found} PARENT_SCOPE)
endfunction()

knn_serve_target_defines(_knn_serve_algo knn_algorithms knn_model_load knn_model_predict)
knn_serve_target_defines(_knn_serve_s3 knn_s3 knn_s3_get_file knn_s3_list_each knn_s3_reader_next knn_s3_upload_finish)

if(_knn_serve_algo AND TARGET knn_recordio)
    set(KNN_SERVE_ENABLED ON CACHE INTERNAL "serve and transform are in knn_runner_core (tests/serve reads it)")
    list(APPEND KNN_RUNNER_SOURCES
        src/model_archive.c
        src/cmd_serve.c
        src/cmd_transform.c
        src/infer_json_fast.c
        src/infer_request.c
        src/infer_response.c
        src/mime.c
        src/serve_app.c
        src/serve_http.c
        src/serve_model.c
        src/transform_run.c
        src/transform_store.c)
    if(_knn_serve_s3)
        set(KNN_SERVE_S3 ON CACHE INTERNAL "transform and serve can reach S3")
        list(APPEND KNN_RUNNER_SOURCES src/serve_fetch.c src/transform_store_s3.c)
        list(APPEND KNN_RUNNER_LIBS knn_s3)
    else()
        set(KNN_SERVE_S3 OFF CACHE INTERNAL "transform and serve can reach S3")
        list(APPEND KNN_RUNNER_SOURCES src/serve_nos3.c)
    endif()
    list(APPEND KNN_RUNNER_LIBS knn_algorithms knn_recordio PkgConfig::JANSSON PkgConfig::MHD PkgConfig::LIBARCHIVE)
else()
    set(KNN_SERVE_ENABLED OFF CACHE INTERNAL "serve and transform are in knn_runner_core (tests/serve reads it)")
    set(KNN_SERVE_S3 OFF CACHE INTERNAL "transform and serve can reach S3")
    # Not buildable yet: keep the placeholders (runner/CMakeLists.txt adds them when the feature is absent).
    list(APPEND KNN_RUNNER_SOURCES src/placeholder_serve.c src/placeholder_transform.c)
endif()
