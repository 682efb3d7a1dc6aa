# The search half of knn_algorithms: distances and top-k, threads, the Flat index and the public
# index dispatch, reservoir sampling, dimension reduction, and the model pipeline and prediction.
list(APPEND KNN_ALGO_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/src/distances.c
    ${CMAKE_CURRENT_LIST_DIR}/src/topk.c
    ${CMAKE_CURRENT_LIST_DIR}/src/parallel.c
    ${CMAKE_CURRENT_LIST_DIR}/src/index.c
    ${CMAKE_CURRENT_LIST_DIR}/src/index_flat.c
    ${CMAKE_CURRENT_LIST_DIR}/src/rng.c
    ${CMAKE_CURRENT_LIST_DIR}/src/sample.c
    ${CMAKE_CURRENT_LIST_DIR}/src/dimred.c
    ${CMAKE_CURRENT_LIST_DIR}/src/model.c
)
