#ifndef KNN_RUNNER_SERVE_SHARD_H
#define KNN_RUNNER_SERVE_SHARD_H

/**
 * Sharded serving: `mpirun -np N knn-runner serve --model M` spreads the model over N ranks
 * (algorithms' part.h: each rank holds about 1/N of the vectors). Rank 0 answers HTTP as one
 * process would; the other ranks only search their part.
 *
 * Rank 0's main thread is the dispatcher and the only thread that calls the world (MPI runs at
 * MPI_THREAD_FUNNELED). An HTTP worker with a batch of queries transforms them, queues the batch
 * and waits; the dispatcher sends it to every rank, searches its own part, receives the other
 * ranks' top-k lists, and the worker merges them (knn_neighbours_merge) and votes: the answer is
 * byte for byte the one process's answer.
 *
 * Health: the dispatcher pings every rank each S_PING_MS; a rank that has not answered a ping for
 * S_LOST_MS is lost: from then on /ping and /invocations answer 503 naming it (the others keep
 * running; a lost rank cannot come back into an MPI job). Run `mpirun --enable-recovery`, or
 * mpirun ends every rank, rank 0 included, when one dies. The other ranks stop when rank 0 tells
 * them to (after its SIGTERM drain) or when rank 0 has been silent for S_ORPHAN_MS.
 */

#include "serve/serve_app.h"

#include "knn/algorithms/part.h"

#include <signal.h>
#include <stdatomic.h>

struct knn_serve_shard;

/** Under mpirun: join the world. *out is NULL (and 0 returned) when not started by mpirun. */
int knn_serve_shard_start(struct knn_serve_shard **out);

/**
 * Load this rank's part of the model at `source` (directory, model.tar.gz or s3://). Rank 0 also
 * waits for every other rank's part, logs what each holds, and fails if any rank failed
 * ("algo-2: <why>").
 */
int knn_serve_shard_load(struct knn_serve_shard *s, const char *source, const sigset_t *stop_signals);

int knn_serve_shard_rank(const struct knn_serve_shard *s);

/** Ranks other than 0: answer searches until rank 0 says stop (or is lost). Returns the exit status. */
int knn_serve_shard_work(struct knn_serve_shard *s, const sigset_t *stop_signals);

/** Rank 0: the backend to give the app (model config for decoding; predict through the ranks). */
const struct knn_model *knn_serve_shard_model(const struct knn_serve_shard *s);
const struct knn_serve_backend *knn_serve_shard_backend(struct knn_serve_shard *s);

/**
 * Rank 0's main thread: dispatch batches until one of `stop_signals` arrives (returns it) or
 * `*until` becomes non-zero (returns 0; while the HTTP server drains). Either may be NULL.
 */
int knn_serve_shard_dispatch(struct knn_serve_shard *s, const sigset_t *stop_signals, const atomic_int *until);

/** Rank 0, after the HTTP server stopped: tell the other ranks to stop. Then destroy. */
void knn_serve_shard_destroy(struct knn_serve_shard *s);

#endif
