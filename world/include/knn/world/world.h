#ifndef KNN_WORLD_WORLD_H
#define KNN_WORLD_WORLD_H

/**
 * A "world": the processes that run one job together. Rank r of a world of `size` is SageMaker's
 * host `algo-(r+1)`. Two implementations sit behind this interface:
 *
 * - the single world (one process, rank 0 of 1): every collective is a local copy; no MPI call;
 * - Open MPI, when the process was started by `mpirun` (detected from the environment before
 *   MPI is touched: OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK). A process not started by mpirun
 *   never initialises MPI.
 *
 * Everything moves as bytes, so training (samples, per-host reports) and serving (query batches,
 * per-rank top-k) share it. Large transfers go in chunks of at most `chunk_bytes` (default 64 MiB,
 * never above 1 GiB): MPI counts are `int`.
 *
 * Failure handling: a collective blocks until every rank joins it, so a rank that fails must not
 * simply leave. Before each collective every rank calls knn_world_agree() with its status; if any
 * rank failed, all of them return the same error ("algo-2: <cause>") and stop together. A rank
 * that fails while the others are still busy (reading data) raises an alarm with
 * knn_world_alarm_raise(); the others see it with knn_world_alarm_poll() and stop early instead
 * of finishing their work first. A rank that dies (SIGKILL) is seen by mpirun, which ends the job.
 *
 * Threads: call a world from one thread only (the job's main thread); MPI runs at
 * MPI_THREAD_FUNNELED. Worker threads never touch the world.
 *
 * Errors: KNN_EINVAL (bad argument), KNN_ENOMEM, KNN_EIO (the MPI layer failed: message names the
 * call and MPI's error string), and the code a failed rank agreed on (knn_world_agree).
 */

#include <stddef.h>
#include <stdint.h>

struct knn_world;

/** MPI counts are int: no single message is ever larger than this. */
#define KNN_WORLD_MAX_CHUNK_BYTES ((size_t)1 << 30)
#define KNN_WORLD_DEFAULT_CHUNK_BYTES ((size_t)64 << 20)

/** 1 if this process was started by mpirun (or another PMI launcher), from the environment only. */
int knn_world_started_by_mpirun(void);

/**
 * The world of this process: Open MPI if knn_world_started_by_mpirun(), else the single world.
 * KNN_EIO if MPI was expected but did not start (message says why). Destroy with
 * knn_world_destroy() (which finalises MPI) before the process exits.
 */
int knn_world_new(struct knn_world **out);

/** The single world (rank 0 of 1), whatever the environment says. Never fails but for KNN_ENOMEM. */
int knn_world_new_single(struct knn_world **out);

/** Finalises MPI for an MPI world (after draining alarms). NULL is a no-op. */
void knn_world_destroy(struct knn_world *world);

int knn_world_rank(const struct knn_world *world);
int knn_world_size(const struct knn_world *world);
/** "algo-(rank+1)". */
const char *knn_world_host(const struct knn_world *world);
/** "single" or "Open MPI". */
const char *knn_world_engine(const struct knn_world *world);
/** The MPI library's version ("Open MPI v4.1.4, ...") or "" for the single world. */
const char *knn_world_library_version(const struct knn_world *world);
/** The MPI this program was built with, "Open MPI 4.1.4" (no MPI call: safe without mpirun). */
const char *knn_world_mpi_version(void);
/** 1 for an MPI world. */
int knn_world_is_mpi(const struct knn_world *world);

/**
 * Largest message of chunked transfers (clamped to 1 .. KNN_WORLD_MAX_CHUNK_BYTES). Every rank
 * must set the same value (tests use small ones to exercise the chunking).
 */
void knn_world_set_chunk_bytes(struct knn_world *world, size_t chunk_bytes);

/**
 * Agree on a status: every rank passes its own (0, or a negative KNN_E* code with `message`
 * saying why; NULL message = the code's sentence). Returns 0 on every rank if all passed 0;
 * otherwise the lowest failed rank's code on every rank, with the thread's error message set to
 * "<host>: <message>" of that rank. *failed_rank (may be NULL) gets that rank, or -1.
 */
int knn_world_agree(struct knn_world *world, int status, const char *message, int *failed_rank);

/**
 * Wait until every rank is here, sleeping (a millisecond at a time) rather than spinning: for
 * ranks that wait long (while rank 0 builds an index) on a machine whose cores others need.
 */
int knn_world_barrier(struct knn_world *world);

/**
 * Broadcast `len` bytes from `root` into `buf` on every other rank (every rank passes the same
 * `len`; the root's buffer is the source). In chunks.
 */
int knn_world_broadcast(struct knn_world *world, int root, void *buf, size_t len);

/** Every rank passes `value`; on `root`, values[r] (size entries) gets rank r's. Others: NULL. */
int knn_world_gather_u64(struct knn_world *world, int root, uint64_t value, uint64_t *values);

/**
 * Gather bytes in rank order: rank r sends `len` bytes from `send`; on `root`, they land at
 * `recv + sum(lens[0..r))`, where lens[r] is every rank's `len` (from knn_world_gather_u64) and
 * `recv` holds their sum. On root `send` may already be at its place in `recv` (no copy then).
 * Other ranks pass recv = lens = NULL. In chunks of at most chunk_bytes. KNN_EMISMATCH if a rank's
 * len differs from lens[r] on the root.
 */
int knn_world_gather(struct knn_world *world, int root, const void *send, size_t len, void *recv,
                     const uint64_t *lens);

/**
 * Tell every other rank, without blocking, that this one is stopping (once; later calls do
 * nothing). Used when a rank fails while the others are busy outside collectives.
 */
int knn_world_alarm_raise(struct knn_world *world);

/**
 * Without blocking: *raised = 1 if another rank raised its alarm (then *rank = that rank), else 0.
 * Cheap enough to call every few milliseconds.
 */
int knn_world_alarm_poll(struct knn_world *world, int *raised, int *rank);

/* ---- Messages of a service loop (sharded serving): point to point, tagged, never blocking on a peer ---- */

/*
 * A service loop (rank 0 dispatching searches, the other ranks answering) must notice a rank that
 * died instead of waiting for it forever: these calls never wait for another rank. A message is
 * at most KNN_WORLD_MAX_CHUNK_BYTES; tags are KNN_WORLD_TAG_MIN..KNN_WORLD_TAG_MAX (the
 * collectives above use others, so the two never mix). The single world has no other rank: these
 * return KNN_EINVAL there.
 */
#define KNN_WORLD_TAG_MIN 100
#define KNN_WORLD_TAG_MAX 999

struct knn_world_send;

/** Start sending `len` bytes of `buf` (which must stay valid until the send is done) to `dest`. */
int knn_world_send_start(
    struct knn_world *world, int dest, int tag, const void *buf, size_t len, struct knn_world_send **out);
/** *done = 1 once the send completed (then `send` is freed), else 0. */
int knn_world_send_test(struct knn_world *world, struct knn_world_send *send, int *done);
/** Forget a send that will not complete (its peer is lost): frees `send`, keeps nothing waiting on it. */
void knn_world_send_abandon(struct knn_world *world, struct knn_world_send *send);

/**
 * Whether a message with `tag` from `source` (-1: any rank) has arrived: *arrived, and then its
 * sender and length. Receive it with knn_world_recv_arrived().
 */
int knn_world_probe(struct knn_world *world, int source, int tag, int *arrived, int *from, size_t *len);
/** Receive a message knn_world_probe() saw arrive (exactly `len` bytes, else KNN_EMISMATCH). */
int knn_world_recv_arrived(struct knn_world *world, int source, int tag, void *buf, size_t len);

/**
 * Free the world after a rank was lost (knn_world_destroy would wait for it in its final barrier
 * forever): nothing is finalised, the process exits without meeting the others.
 */
void knn_world_destroy_lost(struct knn_world *world);

/** End every rank of the world now (MPI_Abort); for the single world, _exit(exit_code). Never returns. */
void knn_world_abort(struct knn_world *world, int exit_code) __attribute__((noreturn));

#endif
