/*
 * The library's worker threads: one process-wide pool, started on first use and kept (a search on
 * a small index takes tens of microseconds, so threads are not created per call).
 *
 * A job splits [0, n) into up to S_CHUNKS_PER_WORKER contiguous chunks per worker, handed out
 * through an atomic counter: whoever is running takes the next chunk. On a busy machine a worker
 * thread may not get a core for milliseconds; the caller (worker 0) then simply takes its chunks
 * too, instead of waiting for a fixed half. A worker may run several chunks, one at a time.
 *
 * One job runs in the pool at a time. A caller that finds the pool busy (another thread's search,
 * or a nested call from inside a chunk) runs all the chunks itself, as worker 0.
 *
 * Hand-off: the caller publishes the job and bumps `generation` under the mutex; idle workers spin
 * on it briefly (so back-to-back searches do not pay a futex wake-up each) and then sleep on a
 * condition variable. A worker joins a job under the mutex (`active`), and a new job is published
 * only once no worker is still inside the previous one, so a late worker can never take a chunk of
 * a job with another job's function.
 */
#define _GNU_SOURCE
#include "parallel.h"

#include "knn/common/error.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define S_PAUSE() _mm_pause()
#else
#define S_PAUSE() ((void)0)
#endif

#define S_MAX_THREADS 64
#define S_CHUNKS_PER_WORKER 4
/* Spin iterations before sleeping (a PAUSE is ~10-140 cycles: this is tens of microseconds). */
#define S_SPIN 2000
#define S_MESSAGE_MAX 1024

struct s_pool {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new job, for sleeping workers */
    pthread_cond_t done; /* the last chunk finished, or the last worker left a job */
    size_t nworkers;     /* started threads, numbered 1..nworkers */
    uint64_t generation;
    size_t sleepers;
    size_t active; /* workers inside the current job */
    uint64_t start_generation[S_MAX_THREADS + 1];

    /* the current job, written before generation is bumped */
    knn__chunk_fn *fn;
    void *ctx;
    size_t n;
    size_t nthreads; /* workers 0..nthreads-1 take part */
    size_t nchunks;
    size_t next;     /* atomic: the next chunk to hand out */
    size_t finished; /* atomic: chunks done */

    /* the failure of the lowest-numbered failing chunk */
    int status;
    size_t status_chunk;
    char message[S_MESSAGE_MAX];
};

static struct s_pool s_pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};
/* Held by the thread whose job is in the pool. */
static pthread_mutex_t s_submit = PTHREAD_MUTEX_INITIALIZER;

/*
 * Per thread, not once per process (do not make this a pthread_once again: commit 5ea316c, and
 * tests/serve test_blas_single_threaded_in_every_thread): the OpenMP flavour of OpenBLAS takes its
 * thread count from the calling thread's OpenMP setting (omp_get_max_threads(), a per-thread
 * value) and resets its global count to it on every call, so a thread that never set it (a pool
 * worker, an HTTP worker of the endpoint) runs a 2-thread sgemm whose OpenMP team spin-waits
 * against the other threads: 84% of knn-runner serve's CPU in libgomp, requests 10x slower.
 */
static _Thread_local int tl_blas_single;

void knn__blas_single_threaded(void)
{
    if (!tl_blas_single) {
        openblas_set_num_threads(1);
        tl_blas_single = 1;
    }
}

size_t knn__ncores(void)
{
    static size_t cached;
    size_t n = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (n == 0) {
        cpu_set_t set;
        n = 1;
        if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
            n = (size_t)CPU_COUNT(&set);
        __atomic_store_n(&cached, n, __ATOMIC_RELAXED);
    }
    return n;
}

size_t knn__resolve_threads(size_t threads, size_t work_items)
{
    size_t t = threads ? threads : knn__ncores();
    if (t > S_MAX_THREADS)
        t = S_MAX_THREADS;
    if (t > work_items)
        t = work_items;
    return t ? t : 1;
}

static void s_chunk_range(size_t n, size_t nchunks, size_t i, size_t *begin, size_t *end)
{
    *begin = (size_t)((unsigned __int128)n * i / nchunks);
    *end = (size_t)((unsigned __int128)n * (i + 1) / nchunks);
}

/* Take and run chunks of the current job until none is left. Records a failure under the mutex. */
static void s_run_chunks(knn__chunk_fn *fn, void *ctx, size_t n, size_t nchunks, size_t worker)
{
    for (;;) {
        size_t i = __atomic_fetch_add(&s_pool.next, 1, __ATOMIC_RELAXED);
        if (i >= nchunks)
            return;
        size_t begin, end;
        s_chunk_range(n, nchunks, i, &begin, &end);
        int rc = fn(ctx, begin, end, worker);
        if (rc != 0) {
            pthread_mutex_lock(&s_pool.mu);
            if (s_pool.status == 0 || i < s_pool.status_chunk) {
                s_pool.status = rc;
                s_pool.status_chunk = i;
                snprintf(s_pool.message, sizeof(s_pool.message), "%s", knn_error_message());
            }
            pthread_mutex_unlock(&s_pool.mu);
        }
        if (__atomic_add_fetch(&s_pool.finished, 1, __ATOMIC_RELEASE) == nchunks) {
            pthread_mutex_lock(&s_pool.mu);
            pthread_cond_broadcast(&s_pool.done);
            pthread_mutex_unlock(&s_pool.mu);
        }
    }
}

static void *s_worker_main(void *arg)
{
    size_t self = (size_t)(uintptr_t)arg;

    pthread_mutex_lock(&s_pool.mu);
    uint64_t seen = s_pool.start_generation[self];
    pthread_mutex_unlock(&s_pool.mu);

    for (;;) {
        int spins = 0;
        while (__atomic_load_n(&s_pool.generation, __ATOMIC_ACQUIRE) == seen && spins < S_SPIN) {
            S_PAUSE();
            spins++;
        }
        pthread_mutex_lock(&s_pool.mu);
        s_pool.sleepers++;
        while (__atomic_load_n(&s_pool.generation, __ATOMIC_RELAXED) == seen)
            pthread_cond_wait(&s_pool.wake, &s_pool.mu);
        s_pool.sleepers--;
        seen = s_pool.generation;
        if (self >= s_pool.nthreads) {
            pthread_mutex_unlock(&s_pool.mu);
            continue;
        }
        s_pool.active++;
        knn__chunk_fn *fn = s_pool.fn;
        void *ctx = s_pool.ctx;
        size_t n = s_pool.n, nchunks = s_pool.nchunks;
        pthread_mutex_unlock(&s_pool.mu);

        s_run_chunks(fn, ctx, n, nchunks, self);

        pthread_mutex_lock(&s_pool.mu);
        if (--s_pool.active == 0)
            pthread_cond_broadcast(&s_pool.done);
        pthread_mutex_unlock(&s_pool.mu);
    }
    return NULL;
}

/* All chunks on the calling thread, as worker 0; returns the first failure in chunk order. */
static int s_run_inline(size_t n, size_t nchunks, knn__chunk_fn *fn, void *ctx)
{
    int status = 0;
    for (size_t i = 0; i < nchunks; i++) {
        size_t begin, end;
        s_chunk_range(n, nchunks, i, &begin, &end);
        int rc = fn(ctx, begin, end, 0);
        if (rc != 0 && status == 0)
            status = rc;
    }
    return status;
}

int knn__parallel_for(size_t n, size_t threads, knn__chunk_fn *fn, void *ctx)
{
    if (n == 0)
        return 0;
    size_t nthreads = knn__resolve_threads(threads, n);
    if (nthreads == 1)
        return fn(ctx, 0, n, 0);
    size_t nchunks = nthreads * S_CHUNKS_PER_WORKER < n ? nthreads * S_CHUNKS_PER_WORKER : n;
    if (pthread_mutex_trylock(&s_submit) != 0)
        return s_run_inline(n, nchunks, fn, ctx);

    pthread_mutex_lock(&s_pool.mu);
    /* Start the workers this job needs (the pool only grows; if it cannot, fewer threads work). */
    while (s_pool.nworkers + 1 < nthreads) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        s_pool.start_generation[s_pool.nworkers + 1] = s_pool.generation;
        int err = pthread_create(&tid, &attr, s_worker_main, (void *)(uintptr_t)(s_pool.nworkers + 1));
        pthread_attr_destroy(&attr);
        if (err != 0)
            break;
        s_pool.nworkers++;
    }
    /* A worker still leaving the previous job must be gone before its fields change. */
    while (s_pool.active != 0)
        pthread_cond_wait(&s_pool.done, &s_pool.mu);
    s_pool.fn = fn;
    s_pool.ctx = ctx;
    s_pool.n = n;
    s_pool.nthreads = nthreads;
    s_pool.nchunks = nchunks;
    __atomic_store_n(&s_pool.next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s_pool.finished, 0, __ATOMIC_RELAXED);
    s_pool.status = 0;
    s_pool.status_chunk = 0;
    __atomic_store_n(&s_pool.generation, s_pool.generation + 1, __ATOMIC_RELEASE);
    if (s_pool.sleepers)
        pthread_cond_broadcast(&s_pool.wake);
    pthread_mutex_unlock(&s_pool.mu);

    s_run_chunks(fn, ctx, n, nchunks, 0);

    int spins = 0;
    while (__atomic_load_n(&s_pool.finished, __ATOMIC_ACQUIRE) != nchunks && spins < S_SPIN) {
        S_PAUSE();
        spins++;
    }
    pthread_mutex_lock(&s_pool.mu);
    while (__atomic_load_n(&s_pool.finished, __ATOMIC_ACQUIRE) != nchunks)
        pthread_cond_wait(&s_pool.done, &s_pool.mu);
    int status = s_pool.status;
    if (status != 0)
        knn_error_set(status, "%s", s_pool.message);
    pthread_mutex_unlock(&s_pool.mu);
    pthread_mutex_unlock(&s_submit);
    return status;
}
