#ifndef KNN_ALGORITHMS_PARALLEL_H
#define KNN_ALGORITHMS_PARALLEL_H

/*
 * The library's own worker threads (no OpenMP): BLAS runs single-threaded inside them, so there is
 * never a second thread pool fighting for the cores.
 *
 * knn__parallel_for splits [0, n) into contiguous chunks (a few per worker) and runs
 * fn(ctx, begin, end, worker) for each, on up to `threads` workers (0 = the number of cores); the
 * calling thread takes part as worker 0. Chunks are handed out dynamically, so a worker (a
 * `worker` number < knn__resolve_threads(threads, n)) may run several chunks, one at a time: keep
 * per-worker state indexed by `worker` and accumulate into it, never assume one call per worker.
 * It returns the first non-zero status a chunk returned, with that chunk's error message (the
 * other chunks still finish). Nested calls, and calls while another thread's job is running, run
 * their chunks on the calling thread.
 */

#include <stddef.h>

typedef int(knn__chunk_fn)(void *ctx, size_t begin, size_t end, size_t worker);

int knn__parallel_for(size_t n, size_t threads, knn__chunk_fn *fn, void *ctx);

/** The number of cores this process may run on (sched_getaffinity), at least 1. */
size_t knn__ncores(void);

/** Worker count for `threads` (0 = ncores), never more than `work_items`, at least 1. */
size_t knn__resolve_threads(size_t threads, size_t work_items);

/**
 * Make OpenBLAS single-threaded for the calling thread (openblas_set_num_threads(1), once per
 * thread: OpenBLAS's OpenMP flavour follows each calling thread's own OpenMP thread count, so a
 * once-per-process call leaves every other thread running 2-thread sgemms whose OpenMP teams spin
 * against our workers). Every caller of BLAS in the library calls this first. Thread-safe.
 */
void knn__blas_single_threaded(void);

#endif
