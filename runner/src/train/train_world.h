#ifndef KNN_RUNNER_TRAIN_WORLD_H
#define KNN_RUNNER_TRAIN_WORLD_H

/**
 * A training job across the ranks of a world (world/, `mpirun -np N knn-runner train`): rank r is
 * host algo-(r+1); each rank samples its share as one host of the simulated-host code in train.c,
 * then the samples meet on rank 0, which builds, scores and uploads the one model. These are the
 * steps where ranks meet; between them ranks never wait for each other. Main thread only.
 */

#include "train/job_report.h"

#include "knn/world/world.h"

#include <stddef.h>
#include <stdint.h>

/**
 * Under mpirun the world's size is the job's instance count: KNN_ECONFIG naming both when they
 * differ. `source` says where the count came from ("ResourceConfig.InstanceCount").
 */
int knn_train_world_check_size(const struct knn_world *world, uint64_t instance_count, const char *source);

/**
 * Agree with the other ranks on how the step went: `rc` is this rank's result (message in the
 * thread's error). A rank that stopped only because another one raised its alarm
 * (`stopped_by_others`) reports success, so the failure named is the cause, not an echo of it.
 * Returns 0 everywhere when every rank succeeded, else the first failed rank's code with
 * "algo-N: <cause>". The single world returns `rc` untouched.
 */
int knn_train_world_agree(struct knn_world *world, int rc, int stopped_by_others);

/**
 * The ranks' samples to rank 0, in rank order (bounded chunks). On rank 0, *x / *labels (this
 * rank's *n rows, knn_malloc'ed, or NULL) grow in place to every rank's rows and *n to their
 * total; on the others they are freed and *n is 0. `reports[rank]` (this rank's own entry,
 * gather_seconds filled here) goes to rank 0's `reports` (world-size entries). Every rank calls it
 * after agreeing that sampling succeeded.
 */
int knn_train_world_gather_sample(struct knn_world *world, size_t dim, size_t *n, float **x, float **labels,
                                  struct knn_job_host *reports);

/**
 * Copy files from rank 0's `dir` into every other rank's `dir` (which exists), in pieces of at
 * most 8 MiB, so memory stays bounded whatever the files' size (the model, for the test channel).
 * Every rank learns every rank's I/O status: 0 everywhere, or the first failure ("algo-N: ...").
 */
int knn_train_world_share_files(struct knn_world *world, const char *dir, const char *const *names, size_t count);

/**
 * Sum `count` values over the ranks, in rank order (the same result on every run): on rank 0,
 * values[i] becomes the sum of every rank's values[i]; the others' are left as they were.
 */
int knn_train_world_sum(struct knn_world *world, double *values, size_t count);

#endif
