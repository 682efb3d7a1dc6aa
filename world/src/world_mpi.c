/*
 * The Open MPI engine: MPI_COMM_WORLD for the data, a duplicate of it for alarms (so an alarm
 * never matches a data receive), errors returned instead of aborting (MPI_ERRORS_RETURN), and
 * MPI_THREAD_FUNNELED: only the thread that made the world calls it.
 */
#include "world_impl.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_TAG_DATA 17
#define S_TAG_ALARM 23

struct s_mpi {
    MPI_Comm alarm_comm;
    MPI_Request *alarm_sends; /* one per other rank, once raised */
    int alarm_raised;
    int alarm_seen;
    int alarm_rank;
    int size;
    int rank;
};

static int s_mpi_error(int err, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof(text), "error %d", err);
    return knn_error_set(KNN_EIO, "MPI: %s failed: %s", call, text);
}

static int s_send(void *impl, int dest, const void *buf, size_t len)
{
    (void)impl;
    int err = MPI_Send(buf, (int)len, MPI_BYTE, dest, S_TAG_DATA, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? 0 : s_mpi_error(err, "MPI_Send");
}

/* Exactly len bytes with `tag` from `source`: the collectives' S_TAG_DATA, or a service loop's tag. */
static int s_recv_tag(void *impl, int source, int tag, void *buf, size_t len)
{
    (void)impl;
    MPI_Status st;
    int err = MPI_Recv(buf, (int)len, MPI_BYTE, source, tag, MPI_COMM_WORLD, &st);
    if (err != MPI_SUCCESS)
        return s_mpi_error(err, "MPI_Recv");
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (got < 0 || (size_t)got != len)
        return knn_error_set(KNN_EMISMATCH, "MPI: rank %d sent %d bytes where %zu were expected", source, got, len);
    return 0;
}

static int s_recv(void *impl, int source, void *buf, size_t len)
{
    return s_recv_tag(impl, source, S_TAG_DATA, buf, len);
}

static int s_broadcast(void *impl, int root, void *buf, size_t len)
{
    (void)impl;
    int err = MPI_Bcast(buf, (int)len, MPI_BYTE, root, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? 0 : s_mpi_error(err, "MPI_Bcast");
}

/* Non-blocking barrier, tested between short sleeps: a blocked MPI call would spin a core. */
static int s_polite_barrier(MPI_Comm comm)
{
    MPI_Request req = MPI_REQUEST_NULL;
    int err = MPI_Ibarrier(comm, &req), done = 0;
    if (err != MPI_SUCCESS)
        return s_mpi_error(err, "MPI_Ibarrier");
    while ((err = MPI_Test(&req, &done, MPI_STATUS_IGNORE)) == MPI_SUCCESS && !done) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return err == MPI_SUCCESS ? 0 : s_mpi_error(err, "MPI_Test");
}

static int s_barrier(void *impl)
{
    (void)impl;
    return s_polite_barrier(MPI_COMM_WORLD);
}

static int s_alarm_raise(void *impl)
{
    struct s_mpi *m = impl;
    static const int one = 1;
    if (m->alarm_raised)
        return 0;
    m->alarm_raised = 1;
    if (!(m->alarm_sends = knn_calloc((size_t)m->size, sizeof(*m->alarm_sends))))
        return knn_error_set(KNN_ENOMEM, "out of memory");
    for (int r = 0; r < m->size; r++) {
        m->alarm_sends[r] = MPI_REQUEST_NULL;
        if (r == m->rank)
            continue;
        int err = MPI_Isend(&one, 1, MPI_INT, r, S_TAG_ALARM, m->alarm_comm, &m->alarm_sends[r]);
        if (err != MPI_SUCCESS)
            return s_mpi_error(err, "MPI_Isend");
    }
    return 0;
}

/* Receive every alarm that has arrived; remember the first sender. */
static int s_alarm_drain(struct s_mpi *m)
{
    for (;;) {
        int flag = 0, value = 0;
        MPI_Status st;
        int err = MPI_Iprobe(MPI_ANY_SOURCE, S_TAG_ALARM, m->alarm_comm, &flag, &st);
        if (err != MPI_SUCCESS)
            return s_mpi_error(err, "MPI_Iprobe");
        if (!flag)
            return 0;
        if ((err = MPI_Recv(&value, 1, MPI_INT, st.MPI_SOURCE, S_TAG_ALARM, m->alarm_comm, MPI_STATUS_IGNORE)) !=
            MPI_SUCCESS)
            return s_mpi_error(err, "MPI_Recv");
        if (!m->alarm_seen) {
            m->alarm_seen = 1;
            m->alarm_rank = st.MPI_SOURCE;
        }
    }
}

static int s_alarm_poll(void *impl, int *raised, int *rank)
{
    struct s_mpi *m = impl;
    int rc = s_alarm_drain(m);
    *raised = m->alarm_seen;
    *rank = m->alarm_seen ? m->alarm_rank : -1;
    return rc;
}

static void s_destroy(void *impl)
{
    struct s_mpi *m = impl;
    int finalized = 0;
    if (m->alarm_sends)
        MPI_Waitall(m->size, m->alarm_sends, MPI_STATUSES_IGNORE);
    /*
     * Every rank is here: alarms sent before this barrier are received below, none is left queued.
     * The barrier is polled with a sleep, not blocked in: a blocked MPI call spins a core, and ranks
     * that finished early would take it from rank 0's work on a shared machine.
     */
    s_polite_barrier(m->alarm_comm);
    s_alarm_drain(m);
    MPI_Comm_free(&m->alarm_comm);
    knn_free(m->alarm_sends);
    knn_free(m);
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Finalize();
}

static void s_abort(void *impl, int exit_code)
{
    (void)impl;
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    _Exit(exit_code);
}

/* ---- messages of a service loop: MPI_COMM_WORLD, the caller's tags (never S_TAG_DATA / S_TAG_ALARM) ---- */

static int s_send_start(void *impl, int dest, int tag, const void *buf, size_t len, void **req)
{
    (void)impl;
    MPI_Request *r = knn_malloc(sizeof(*r));
    if (!r)
        return knn_error_set(KNN_ENOMEM, "out of memory");
    int err = MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, MPI_COMM_WORLD, r);
    if (err != MPI_SUCCESS) {
        knn_free(r);
        return s_mpi_error(err, "MPI_Isend");
    }
    *req = r;
    return 0;
}

static int s_send_test(void *impl, void *req, int *done)
{
    (void)impl;
    MPI_Request *r = req;
    int flag = 0, err = MPI_Test(r, &flag, MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS)
        return s_mpi_error(err, "MPI_Test");
    *done = flag;
    if (flag)
        knn_free(r);
    return 0;
}

static void s_send_abandon(void *impl, void *req)
{
    (void)impl;
    MPI_Request *r = req;
    /* MPI_Request_free lets MPI drop it whenever; the buffer may be freed by the caller afterwards only
       because the peer is gone and the transfer will never read it again. */
    MPI_Request_free(r);
    knn_free(r);
}

static int s_probe(void *impl, int source, int tag, int *arrived, int *from, size_t *len)
{
    (void)impl;
    MPI_Status st;
    int flag = 0, count = 0;
    int err = MPI_Iprobe(source < 0 ? MPI_ANY_SOURCE : source, tag, MPI_COMM_WORLD, &flag, &st);
    if (err != MPI_SUCCESS)
        return s_mpi_error(err, "MPI_Iprobe");
    *arrived = flag;
    if (flag) {
        MPI_Get_count(&st, MPI_BYTE, &count);
        *from = st.MPI_SOURCE;
        *len = count > 0 ? (size_t)count : 0;
    }
    return 0;
}

static void s_destroy_lost(void *impl)
{
    struct s_mpi *m = impl;
    knn_free(m->alarm_sends);
    knn_free(m);
}

static const struct knn_world_ops s_mpi_ops = {
    .destroy = s_destroy,
    .send = s_send,
    .recv = s_recv,
    .broadcast = s_broadcast,
    .barrier = s_barrier,
    .alarm_raise = s_alarm_raise,
    .alarm_poll = s_alarm_poll,
    .abort = s_abort,
    .send_start = s_send_start,
    .send_test = s_send_test,
    .send_abandon = s_send_abandon,
    .probe = s_probe,
    .recv_tag = s_recv_tag,
    .destroy_lost = s_destroy_lost,
};

int knn_world__mpi_start(struct knn_world *world)
{
    int provided = 0, err, len = 0;
    struct s_mpi *m = knn_calloc(1, sizeof(*m));
    if (!m)
        return knn_error_set(KNN_ENOMEM, "out of memory");
    if ((err = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS) {
        knn_free(m);
        return s_mpi_error(err, "MPI_Init_thread");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->size);
    if ((err = MPI_Comm_dup(MPI_COMM_WORLD, &m->alarm_comm)) != MPI_SUCCESS) {
        knn_free(m);
        MPI_Finalize();
        return s_mpi_error(err, "MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(m->alarm_comm, MPI_ERRORS_RETURN);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    if (MPI_Get_library_version(version, &len) == MPI_SUCCESS) {
        version[strcspn(version, ",\n")] = '\0';
        snprintf(world->library_version, sizeof(world->library_version), "%s", version);
    }
    world->ops = &s_mpi_ops;
    world->impl = m;
    world->rank = m->rank;
    world->size = m->size;
    world->engine = "Open MPI";
    return 0;
}

const char *knn_world_mpi_version(void)
{
#define S_STR2(x) #x
#define S_STR(x) S_STR2(x)
    return "Open MPI " S_STR(OMPI_MAJOR_VERSION) "." S_STR(OMPI_MINOR_VERSION) "." S_STR(OMPI_RELEASE_VERSION);
}
