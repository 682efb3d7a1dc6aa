# train: the training job (knn-runner train): channels streamed from S3 or local files through the
# row decoder into reservoir samples, the index, the test score, model.tar.gz and its upload.
# TEMPORARY guard (while s3/ lands piece by piece): wait until knn_s3 has its client, reader and
# upload, and knn_algorithms its model, so a half-landed library does not break the link for
# everyone; until then the train placeholder stays.
set(KNN_TRAIN_READY ON)
foreach(_lib knn_s3 knn_recordio knn_algorithms)
    if(NOT TARGET ${_lib})
        set(KNN_TRAIN_READY OFF)
    endif()
endforeach()
if(KNN_TRAIN_READY)
    set(_knn_train_needs "s3:knn_s3_reader_new" "s3:knn_s3_upload_new" "s3:knn_s3_list_each" "algorithms:knn_model_save")
    foreach(_need IN LISTS _knn_train_needs)
        string(REPLACE ":" ";" _pair "${_need}")
        list(GET _pair 0 _area)
        list(GET _pair 1 _fn)
        if(_area STREQUAL "s3")
            get_target_property(_srcs knn_s3 SOURCES)
            set(_dir "${CMAKE_SOURCE_DIR}/s3")
        else()
            get_target_property(_srcs knn_algorithms SOURCES)
            set(_dir "")
        endif()
        set(_found OFF)
        foreach(_src IN LISTS _srcs)
            if(NOT IS_ABSOLUTE "${_src}")
                set(_src "${_dir}/${_src}")
            endif()
            if(EXISTS "${_src}")
                file(READ "${_src}" _text)
                string(FIND "${_text}" "\nint ${_fn}(" _at)
                if(NOT _at EQUAL -1)
                    set(_found ON)
                endif()
            endif()
        endforeach()
        if(NOT _found)
            set(KNN_TRAIN_READY OFF)
        endif()
    endforeach()
endif()
set(KNN_TRAIN_ENABLED ${KNN_TRAIN_READY} CACHE INTERNAL "the train command is in knn_runner_core (tests/train reads it)")
if(KNN_TRAIN_READY)
    list(APPEND KNN_RUNNER_SOURCES
        src/cmd_train.c
        src/train.c
        src/train_io.c
        src/model_archive.c)
    list(APPEND KNN_RUNNER_LIBS knn_s3 knn_recordio knn_algorithms PkgConfig::JANSSON PkgConfig::LIBARCHIVE
        Threads::Threads m)
else()
    list(APPEND KNN_RUNNER_SOURCES src/placeholder_train.c)
endif()
