/* The world without mpirun: the single world's collectives, and that MPI is never started. */
#include "knn_test.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/world/world.h"

#include <mpi.h>
#include <stdlib.h>

static const char *const s_launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};

int test_world_single_identity(void)
{
    struct knn_world *w = NULL;
    ASSERT_OK(knn_world_new_single(&w));
    ASSERT_INT_EQ(0, knn_world_rank(w));
    ASSERT_INT_EQ(1, knn_world_size(w));
    ASSERT_STR_EQ("algo-1", knn_world_host(w));
    ASSERT_STR_EQ("single", knn_world_engine(w));
    ASSERT_FALSE(knn_world_is_mpi(w));
    knn_world_destroy(w);
    return 0;
}

int test_world_detects_launcher_from_environment(void)
{
    for (size_t i = 0; i < 3; i++)
        unsetenv(s_launcher_vars[i]);
    ASSERT_FALSE(knn_world_started_by_mpirun());
    for (size_t i = 0; i < 3; i++) {
        setenv(s_launcher_vars[i], "2", 1);
        ASSERT_TRUE(knn_world_started_by_mpirun());
        setenv(s_launcher_vars[i], "", 1); /* empty is as good as unset */
        ASSERT_FALSE(knn_world_started_by_mpirun());
        unsetenv(s_launcher_vars[i]);
    }
    return 0;
}

int test_world_plain_run_never_starts_mpi(void)
{
    struct knn_world *w = NULL;
    int initialized = 1;
    for (size_t i = 0; i < 3; i++)
        unsetenv(s_launcher_vars[i]);
    ASSERT_OK(knn_world_new(&w));
    ASSERT_STR_EQ("single", knn_world_engine(w));
    ASSERT_INT_EQ(1, knn_world_size(w));
    MPI_Initialized(&initialized);
    ASSERT_INT_EQ(0, initialized);
    knn_world_destroy(w);
    MPI_Initialized(&initialized);
    ASSERT_INT_EQ(0, initialized);
    return 0;
}

int test_world_single_agree(void)
{
    struct knn_world *w = NULL;
    int failed = 7;
    ASSERT_OK(knn_world_new_single(&w));
    ASSERT_OK(knn_world_agree(w, 0, NULL, &failed));
    ASSERT_INT_EQ(-1, failed);
    ASSERT_ERR(KNN_EFORMAT, knn_world_agree(w, KNN_EFORMAT, "s3://b/p/part-3.rec: record 17 at offset 8812: bad", &failed));
    ASSERT_INT_EQ(0, failed);
    ASSERT_STR_EQ("algo-1: s3://b/p/part-3.rec: record 17 at offset 8812: bad", knn_error_message());
    /* No message: the code's sentence. */
    ASSERT_ERR(KNN_ENOMEM, knn_world_agree(w, KNN_ENOMEM, NULL, NULL));
    ASSERT_CONTAINS(knn_error_message(), "algo-1: ");
    ASSERT_TRUE(strlen(knn_error_message()) > strlen("algo-1: "));
    knn_world_destroy(w);
    return 0;
}

int test_world_single_gather_and_broadcast(void)
{
    struct knn_world *w = NULL;
    unsigned char send[5] = {1, 2, 3, 4, 5}, recv[5] = {0};
    uint64_t lens[1] = {0};
    ASSERT_OK(knn_world_new_single(&w));
    knn_world_set_chunk_bytes(w, 2);
    ASSERT_OK(knn_world_gather_u64(w, 0, sizeof(send), lens));
    ASSERT_UINT_EQ(5, lens[0]);
    ASSERT_OK(knn_world_gather(w, 0, send, sizeof(send), recv, lens));
    ASSERT_MEM_EQ(send, 5, recv, 5);
    /* In place: the root's own part already where it belongs. */
    ASSERT_OK(knn_world_gather(w, 0, recv, sizeof(recv), recv, lens));
    ASSERT_MEM_EQ(send, 5, recv, 5);
    /* A length that disagrees with what was announced is refused. */
    ASSERT_ERR(KNN_EMISMATCH, knn_world_gather(w, 0, send, 4, recv, lens));
    ASSERT_OK(knn_world_barrier(w));
    ASSERT_OK(knn_world_broadcast(w, 0, recv, sizeof(recv)));
    ASSERT_MEM_EQ(send, 5, recv, 5);
    ASSERT_ERR(KNN_EINVAL, knn_world_broadcast(w, 1, recv, sizeof(recv)));
    ASSERT_ERR(KNN_EINVAL, knn_world_gather_u64(w, -1, 1, lens));
    knn_world_destroy(w);
    return 0;
}

int test_world_single_alarm_is_silent(void)
{
    struct knn_world *w = NULL;
    int raised = 1, rank = 5;
    ASSERT_OK(knn_world_new_single(&w));
    ASSERT_OK(knn_world_alarm_raise(w));
    ASSERT_OK(knn_world_alarm_poll(w, &raised, &rank));
    ASSERT_INT_EQ(0, raised);
    ASSERT_INT_EQ(-1, rank);
    knn_world_destroy(w);
    return 0;
}

int test_world_mpi_version_without_mpi(void)
{
    int initialized = 1;
    ASSERT_CONTAINS(knn_world_mpi_version(), "Open MPI ");
    ASSERT_TRUE(strlen(knn_world_mpi_version()) > strlen("Open MPI 4."));
    MPI_Initialized(&initialized);
    ASSERT_INT_EQ(0, initialized);
    return 0;
}
