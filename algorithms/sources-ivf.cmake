# The IVF half of knn_algorithms: k-means, the product quantizer, IVFFlat / IVFPQ, FAISS's index
# file format, and the model files (spec §6).
list(APPEND KNN_ALGO_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/src/kmeans.c
    ${CMAKE_CURRENT_LIST_DIR}/src/pq.c
    ${CMAKE_CURRENT_LIST_DIR}/src/index_ivf.c
    ${CMAKE_CURRENT_LIST_DIR}/src/index_io.c
    ${CMAKE_CURRENT_LIST_DIR}/src/model_io.c
)
