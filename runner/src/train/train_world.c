/* The steps where the ranks of a training job meet: size check, agreement, the sample's gather. */
#include "train/train_world.h"

#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int knn_train_world_check_size(const struct knn_world *world, uint64_t instance_count, const char *source)
{
    uint64_t size = (uint64_t)knn_world_size(world);
    if (!knn_world_is_mpi(world) || instance_count == size)
        return 0;
    return knn_error_set(KNN_ECONFIG,
                         "%s is %" PRIu64 " but mpirun started %" PRIu64 " rank(s): they must be equal (mpirun -np %" PRIu64
                         ", or %s %" PRIu64 ")",
                         source, instance_count, size, instance_count, source, size);
}

int knn_train_world_agree(struct knn_world *world, int rc, int stopped_by_others)
{
    if (!knn_world_is_mpi(world))
        return rc;
    int status = rc < 0 && !stopped_by_others ? rc : 0;
    int agreed = knn_world_agree(world, status, status ? knn_error_message() : NULL, NULL);
    if (agreed == 0 && rc < 0)
        return rc; /* cannot happen (the alarm's sender reports its failure); never lose a failure */
    return agreed;
}

/* Rank 0: room for `total` rows in *x and *labels, its own first *n rows kept. */
static int s_grow(float **x, float **labels, size_t total, size_t dim)
{
    if (total == 0)
        return 0;
    float *bx = knn_realloc_array(*x, total, dim * sizeof(float));
    if (!bx)
        return knn_error_set(KNN_ENOMEM, "out of memory for the gathered sample of %zu rows of %zu features", total,
                             dim);
    *x = bx;
    float *bl = knn_realloc_array(*labels, total, sizeof(float));
    if (!bl)
        return knn_error_set(KNN_ENOMEM, "out of memory for the gathered sample's %zu labels", total);
    *labels = bl;
    return 0;
}

int knn_train_world_gather_sample(struct knn_world *world, size_t dim, size_t *n, float **x, float **labels,
                                  struct knn_job_host *reports)
{
    int rank = knn_world_rank(world), size = knn_world_size(world), root = rank == 0, rc;
    uint64_t t0 = knn_clock_monotonic_ns(), *counts = NULL, *lens = NULL;
    size_t total = *n, mine = *n;

    rc = 0;
    if (root && (!(counts = knn_calloc((size_t)size, sizeof(*counts))) ||
                 !(lens = knn_calloc((size_t)size, sizeof(*lens)))))
        rc = knn_error_set(KNN_ENOMEM, "out of memory");
    /* Rank 0 must be able to receive before anyone sends. */
    if ((rc = knn_train_world_agree(world, rc, 0)) < 0)
        goto done;
    if ((rc = knn_world_gather_u64(world, 0, mine, counts)) < 0)
        goto done;
    int grown = 0;
    if (root) {
        total = 0;
        for (int r = 0; r < size; r++)
            total += (size_t)counts[r];
        grown = s_grow(x, labels, total, dim);
    }
    if ((rc = knn_train_world_agree(world, grown, 0)) < 0)
        goto done;

    for (int r = 0; root && r < size; r++)
        lens[r] = counts[r] * dim * sizeof(float);
    if ((rc = knn_world_gather(world, 0, *x, mine * dim * sizeof(float), *x, lens)) < 0)
        goto done;
    for (int r = 0; root && r < size; r++)
        lens[r] = counts[r] * sizeof(float);
    if ((rc = knn_world_gather(world, 0, *labels, mine * sizeof(float), *labels, lens)) < 0)
        goto done;

    reports[rank].gather_seconds = knn_clock_seconds_since(t0);
    reports[rank].peak_memory_bytes = knn_peak_rss_bytes();
    for (int r = 0; root && r < size; r++)
        lens[r] = sizeof(*reports);
    if ((rc = knn_world_gather(world, 0, &reports[rank], sizeof(*reports), reports, lens)) < 0)
        goto done;
    if (root) {
        *n = total;
    } else {
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "Worker %s: sent its sample (%zu rows) to algo-1 in %.2f s",
                knn_world_host(world), mine, reports[rank].gather_seconds);
        knn_free(*x);
        knn_free(*labels);
        *x = *labels = NULL;
        *n = 0;
    }
done:
    knn_free(counts);
    knn_free(lens);
    return rc;
}

#define S_SHARE_PIECE ((size_t)8 << 20)

/* One file from rank 0 to the others; a local I/O failure is kept in *status, the broadcasts go on. */
static int s_share_file(struct knn_world *world, const char *path, unsigned char *piece, int *status)
{
    int root = knn_world_rank(world) == 0, rc;
    uint64_t size = 0;
    FILE *f = NULL;
    if (root) {
        struct stat st;
        if (stat(path, &st) == 0)
            size = (uint64_t)st.st_size;
        else if (*status == 0)
            *status = knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
    }
    if ((rc = knn_world_broadcast(world, 0, &size, sizeof(size))) < 0)
        return rc;
    if (*status == 0 && !(f = fopen(path, root ? "rb" : "wb")))
        *status = knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < S_SHARE_PIECE ? (size_t)(size - off) : S_SHARE_PIECE;
        if (root && f && fread(piece, 1, n, f) != n && *status == 0)
            *status = knn_error_set(KNN_EIO, "%s: short read at offset %" PRIu64, path, off);
        if ((rc = knn_world_broadcast(world, 0, piece, n)) < 0) {
            if (f)
                fclose(f);
            return rc;
        }
        if (!root && f && *status == 0 && fwrite(piece, 1, n, f) != n)
            *status = knn_error_set(KNN_EIO, "%s: write failed at offset %" PRIu64 ": %s", path, off, strerror(errno));
        off += n;
    }
    if (f && fclose(f) != 0 && *status == 0)
        *status = knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

int knn_train_world_share_files(struct knn_world *world, const char *dir, const char *const *names, size_t count)
{
    int status = 0, rc = 0;
    unsigned char *piece = knn_malloc(S_SHARE_PIECE);
    /* Without the buffer this rank cannot take part: say so before anything moves. */
    if ((rc = knn_train_world_agree(world, piece ? 0 : knn_error_set(KNN_ENOMEM, "out of memory"), 0)) < 0) {
        knn_free(piece);
        return rc;
    }
    for (size_t i = 0; i < count && rc == 0; i++) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path) && status == 0)
            status = knn_error_set(KNN_ECONFIG, "%.64s...: path too long", dir);
        rc = s_share_file(world, path, piece, &status);
    }
    knn_free(piece);
    if (rc < 0)
        return rc; /* the transport itself failed: the ranks can no longer agree */
    return knn_train_world_agree(world, status, 0);
}

int knn_train_world_sum(struct knn_world *world, double *values, size_t count)
{
    int size = knn_world_size(world), root = knn_world_rank(world) == 0, rc;
    double *all = NULL;
    uint64_t *lens = NULL;
    if (size < 2)
        return 0;
    if (root && (!(all = knn_calloc((size_t)size * count, sizeof(*all))) ||
                 !(lens = knn_calloc((size_t)size, sizeof(*lens))))) {
        knn_free(all);
        return knn_error_set(KNN_ENOMEM, "out of memory");
    }
    for (int r = 0; root && r < size; r++)
        lens[r] = count * sizeof(double);
    rc = knn_world_gather(world, 0, values, count * sizeof(double), all, lens);
    if (rc == 0 && root) {
        for (size_t i = 0; i < count; i++) {
            double sum = 0;
            for (int r = 0; r < size; r++)
                sum += all[(size_t)r * count + i];
            values[i] = sum;
        }
    }
    knn_free(all);
    knn_free(lens);
    return rc;
}
