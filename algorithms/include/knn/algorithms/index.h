#ifndef KNN_ALGORITHMS_INDEX_H
#define KNN_ALGORITHMS_INDEX_H

/**
 * k-NN indexes in FAISS's design: Flat (exact), IVFFlat, IVFPQ, IVF-SQ8, over the L2 or inner-product
 * metric. COSINE is not an index metric: the model layer (model.h) normalizes vectors and uses an
 * inner-product index, as FAISS users do.
 *
 * Vectors are row-major float32, `dim` wide. Ids are assigned in order of addition, 0..ntotal-1
 * (the row of model_algo-1.labels). Results are best first: for L2 the squared distances
 * ascending, for inner product the similarities descending. When fewer than k results exist, the
 * rest are padded with label -1 and distance +INFINITY (L2) or -INFINITY (inner product).
 *
 * Thread-safety: searches may run concurrently on one index; train, add and set_nprobe need
 * exclusive access. Searches parallelize over queries with the library's own threads and
 * single-threaded BLAS (a single query is split over the cores for large indexes).
 */

#include <stddef.h>
#include <stdint.h>

/* Values are FAISS's MetricType, as they appear in index files. */
enum knn_metric {
    KNN_METRIC_INNER_PRODUCT = 0,
    KNN_METRIC_L2 = 1,
};

enum knn_index_type {
    KNN_INDEX_FLAT = 0,    /* faiss.Flat: IndexFlatL2 / IndexFlatIP */
    KNN_INDEX_IVFFLAT = 1, /* faiss.IVFFlat: IndexIVFFlat over a flat quantizer */
    KNN_INDEX_IVFPQ = 2,   /* faiss.IVFPQ: IndexIVFPQ, 8-bit codes, residual encoding (L2 only) */
    KNN_INDEX_IVFSQ8 = 3,  /* ivf_sq8: IndexIVFScalarQuantizer, QT_8bit, residual encoding (d bytes a vector) */
    KNN_INDEX_HNSW = 4,    /* hnsw: IndexHNSWFlat, a graph over the float vectors */
};

struct knn_index_options {
    enum knn_index_type type;
    enum knn_metric metric;
    size_t dim;
    size_t nlist;   /* IVF: number of inverted lists (>= 1) */
    size_t pq_m;    /* IVFPQ: number of sub-quantizers; must divide dim */
    size_t nprobe;  /* IVF: lists scanned per query; default 1 */
    uint64_t seed;  /* k-means and PQ training */
    size_t threads; /* worker threads for train/add/search; 0 = the number of cores */
    size_t hnsw_m;          /* HNSW: links per vector and layer (2M on layer 0); FAISS's default 32 */
    size_t ef_construction; /* HNSW: the beam while adding; FAISS's default 40 */
    size_t ef_search;       /* HNSW: the beam while searching (at least k is used); FAISS's default 16 */
};

#define KNN_INDEX_OPTIONS_INIT {KNN_INDEX_FLAT, KNN_METRIC_L2, 0, 0, 0, 1, 1234, 0, 32, 40, 16}

/** Per-search overrides; zero fields mean "the index's own setting". */
struct knn_search_params {
    size_t nprobe;
    size_t threads;
    size_t ef_search; /* HNSW */
};

#define KNN_SEARCH_PARAMS_INIT {0, 0, 0}

struct knn_index;

/** A new empty index. Flat indexes are trained from the start; IVF ones need knn_index_train(). */
int knn_index_new(struct knn_index **out, const struct knn_index_options *opts);
void knn_index_destroy(struct knn_index *index);

/** Train the coarse quantizer (k-means, seeded) and the product quantizer; no-op for Flat. */
int knn_index_train(struct knn_index *index, size_t n, const float *x);
/** Add n vectors; KNN_EINDEX_NOT_TRAINED if the index needs training first. */
int knn_index_add(struct knn_index *index, size_t n, const float *x);

/**
 * Search n queries for their k nearest vectors. `distances` and `labels` are caller-owned arrays
 * of n*k entries. `params` may be NULL.
 */
int knn_index_search(
    const struct knn_index *index, size_t n, const float *x, size_t k, float *distances, int64_t *labels,
    const struct knn_search_params *params);

const struct knn_index_options *knn_index_get_options(const struct knn_index *index);
size_t knn_index_ntotal(const struct knn_index *index);
int knn_index_is_trained(const struct knn_index *index);
/** Change the default nprobe of an IVF index (KNN_EINVAL for 0 or for Flat). */
int knn_index_set_nprobe(struct knn_index *index, size_t nprobe);
/** Change the default efSearch of an HNSW index (KNN_EINVAL for 0, above 2^31 - 1, or another type). */
int knn_index_set_ef_search(struct knn_index *index, size_t ef_search);

/* ---- FAISS's index file format (faiss/impl/index_write.cpp, index_read.cpp, FAISS 1.7) ---- */

/** Writes exactly `len` bytes or fails with a KNN_E* code. */
typedef int(knn_write_fn)(void *user, const void *data, size_t len);
/** Reads exactly `len` bytes or fails (KNN_ETRUNCATED at end of input). */
typedef int(knn_read_fn)(void *user, void *data, size_t len);

/** Serialize as faiss.write_index would (IxF2 / IxFI / IwFl / IwPQ / IwSq / IHNf). */
int knn_index_write_faiss(const struct knn_index *index, knn_write_fn *write, void *user);

/**
 * Load an index in FAISS's format (as written by faiss.write_index or by us). `total_len` is the
 * number of bytes available; every size read from the file is checked against what remains before
 * anything is allocated. Errors name the byte offset and the field.
 */
int knn_index_read_faiss(struct knn_index **out, knn_read_fn *read, void *user, uint64_t total_len);

/** Convenience wrappers over a local file. */
int knn_index_write_faiss_file(const struct knn_index *index, const char *path);
int knn_index_read_faiss_file(struct knn_index **out, const char *path);

#endif
