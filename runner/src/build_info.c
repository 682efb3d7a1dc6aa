/* The version block of `knn-runner --version`; see build_info.h. */
#include "build_info.h"

#include "knn/world/world.h"
#include "knn_git_commit.h" /* generated at build time: KNN_GIT_COMMIT */

#include <cblas.h>
#include <unistd.h>

#ifndef KNN_VERSION
#define KNN_VERSION "unknown"
#endif

/* A feature line: name, then a description written by the function. */
struct s_feature {
    const char *name;
    void (*describe)(FILE *out);
};

static void s_blas(FILE *out)
{
    /* openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP (OpenBLAS's own documentation). */
    int parallel = openblas_get_parallel();
    const char *threading = parallel == 2 ? "OpenMP" : parallel == 1 ? "pthreads" : "sequential";
    fprintf(out, "%s; %s build, kernel %s; called single-threaded inside our own worker threads", openblas_get_config(),
            threading, openblas_get_corename());
}

static void s_threads(FILE *out)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(out, "our own worker threads (no OpenMP), one per core unless told otherwise (%ld cores here)", cpus > 0 ? cpus : 1);
}

static void s_mpi(FILE *out)
{
    /* The version compiled against, without an MPI call: --version never initialises MPI. */
    fprintf(out, "%s; used only when started by mpirun (one rank per SageMaker host)", knn_world_mpi_version());
}

/* The features compiled in, one line each: a new feature adds its describe function here. */
static const struct s_feature s_features[] = {
    {"blas", s_blas},
    {"threads", s_threads},
    {"mpi", s_mpi},
};

const char *knn_build_info_version(void)
{
    return KNN_VERSION;
}

void knn_build_info_print(FILE *out)
{
    fprintf(out, "knn-runner %s\ncommit: %s\nfeatures:\n", KNN_VERSION, KNN_GIT_COMMIT);
    for (size_t i = 0; i < sizeof(s_features) / sizeof(s_features[0]); i++) {
        fprintf(out, "  %-8s ", s_features[i].name);
        s_features[i].describe(out);
        fputc('\n', out);
    }
}
