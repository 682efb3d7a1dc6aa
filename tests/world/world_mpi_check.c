/*
 * Run under `mpirun -np N` (N >= 2): every collective of the world across real ranks, with tiny
 * chunks so that each transfer takes many messages. Each rank checks what it received against the
 * pattern the sender computed from first principles; exit 0 when every check on this rank passed.
 */
#include "knn/common/alloc.h"
#include "knn/common/clock.h"
#include "knn/common/error.h"
#include "knn/world/world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int s_failures;

#define CHECK(cond, ...)                                                                                            \
    do {                                                                                                            \
        if (!(cond)) {                                                                                              \
            fprintf(stderr, "rank %d: line %d: ", rank, __LINE__);                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                           \
            fprintf(stderr, "\n");                                                                                  \
            s_failures++;                                                                                           \
        }                                                                                                           \
    } while (0)

static unsigned char s_byte(int rank, size_t i)
{
    return (unsigned char)((size_t)rank * 31 + i * 7 + (i >> 8));
}

int main(void)
{
    struct knn_world *w = NULL;
    int rank = -1, rc;
    if ((rc = knn_world_new(&w)) < 0) {
        fprintf(stderr, "world: %s\n", knn_error_message());
        return 2;
    }
    rank = knn_world_rank(w);
    int size = knn_world_size(w);
    const char *env_size = getenv("OMPI_COMM_WORLD_SIZE");
    char host[32];
    snprintf(host, sizeof(host), "algo-%d", rank + 1);
    CHECK(knn_world_is_mpi(w), "not an MPI world");
    CHECK(strcmp(knn_world_engine(w), "Open MPI") == 0, "engine %s", knn_world_engine(w));
    CHECK(env_size && strtol(env_size, NULL, 10) == size, "size %d, OMPI_COMM_WORLD_SIZE %s", size, env_size ? env_size : "-");
    CHECK(strcmp(knn_world_host(w), host) == 0, "host %s", knn_world_host(w));
    CHECK(strstr(knn_world_library_version(w), "Open MPI") != NULL, "library %s", knn_world_library_version(w));

    /* Gather: rank r sends 1000 r + 13 bytes, 7 bytes per message. */
    knn_world_set_chunk_bytes(w, 7);
    size_t len = 1000 * (size_t)rank + 13;
    unsigned char *send = knn_malloc(len);
    for (size_t i = 0; i < len; i++)
        send[i] = s_byte(rank, i);
    uint64_t *lens = rank == 0 ? knn_calloc((size_t)size, sizeof(*lens)) : NULL;
    CHECK(knn_world_gather_u64(w, 0, len, lens) == 0, "gather_u64: %s", knn_error_message());
    unsigned char *recv = NULL;
    if (rank == 0) {
        uint64_t total = 0;
        for (int r = 0; r < size; r++) {
            CHECK(lens[r] == 1000 * (uint64_t)r + 13, "lens[%d] = %llu", r, (unsigned long long)lens[r]);
            total += lens[r];
        }
        recv = knn_malloc(total);
    }
    CHECK(knn_world_gather(w, 0, send, len, recv, lens) == 0, "gather: %s", knn_error_message());
    if (rank == 0) {
        size_t at = 0;
        for (int r = 0; r < size; r++) {
            for (size_t i = 0; i < lens[r]; i++, at++) {
                if (recv[at] != s_byte(r, i)) {
                    CHECK(0, "gathered byte %zu of rank %d is %u, expected %u", i, r, recv[at], s_byte(r, i));
                    break;
                }
            }
        }
    }

    /* Broadcast 1 MB + 3 from the last rank in 64 KiB chunks. */
    knn_world_set_chunk_bytes(w, 65536);
    size_t blen = 1000003;
    unsigned char *b = knn_calloc(blen, 1);
    if (rank == size - 1) {
        for (size_t i = 0; i < blen; i++)
            b[i] = s_byte(99, i);
    }
    CHECK(knn_world_broadcast(w, size - 1, b, blen) == 0, "broadcast: %s", knn_error_message());
    for (size_t i = 0; i < blen; i++) {
        if (b[i] != s_byte(99, i)) {
            CHECK(0, "broadcast byte %zu is %u", i, b[i]);
            break;
        }
    }

    /* Agree: all well; then the last rank fails; then ranks 1 and the last fail: the lowest wins. */
    int failed = 9;
    CHECK(knn_world_agree(w, 0, NULL, &failed) == 0 && failed == -1, "agree ok: failed %d", failed);
    rc = knn_world_agree(w, rank == size - 1 ? KNN_EFORMAT : 0, rank == size - 1 ? "bad byte at 12" : NULL, &failed);
    char expected[64];
    snprintf(expected, sizeof(expected), "algo-%d: bad byte at 12", size);
    CHECK(rc == KNN_EFORMAT && failed == size - 1, "agree failed: rc %d failed %d", rc, failed);
    CHECK(strcmp(knn_error_message(), expected) == 0, "agree message '%s'", knn_error_message());
    rc = knn_world_agree(w, rank == 1 ? KNN_ENOTFOUND : rank == size - 1 ? KNN_EIO : 0,
                         rank == 1 ? "s3://b/k: no such key" : "disk", &failed);
    CHECK(rc == KNN_ENOTFOUND && failed == 1, "agree two failed: rc %d failed %d", rc, failed);
    CHECK(strcmp(knn_error_message(), "algo-2: s3://b/k: no such key") == 0, "message '%s'", knn_error_message());

    /* Alarm: the last rank raises it; every other rank sees it within 10 s without a collective. */
    if (rank == size - 1) {
        CHECK(knn_world_alarm_raise(w) == 0, "alarm raise: %s", knn_error_message());
        CHECK(knn_world_alarm_raise(w) == 0, "second alarm raise");
    } else {
        int raised = 0, who = -1;
        uint64_t t0 = knn_clock_monotonic_ns();
        while (!raised && knn_clock_monotonic_ns() - t0 < 10000000000ULL) {
            CHECK(knn_world_alarm_poll(w, &raised, &who) == 0, "alarm poll: %s", knn_error_message());
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
        CHECK(raised && who == size - 1, "alarm: raised %d by %d", raised, who);
    }
    /* The polite barrier: the last rank arrives a quarter second late; nobody leaves before it. */
    if (rank == size - 1) {
        struct timespec ts = {0, 250000000};
        nanosleep(&ts, NULL);
    }
    uint64_t tb = knn_clock_monotonic_ns();
    CHECK(knn_world_barrier(w) == 0, "barrier: %s", knn_error_message());
    if (rank != size - 1)
        CHECK(knn_clock_monotonic_ns() - tb >= 200000000ULL, "left the barrier after %.3f s",
              (double)(knn_clock_monotonic_ns() - tb) / 1e9);
    CHECK(knn_world_agree(w, 0, NULL, NULL) == 0, "final agree");

    knn_free(send);
    knn_free(lens);
    knn_free(recv);
    knn_free(b);
    knn_world_destroy(w);
    if (s_failures == 0 && rank == 0)
        printf("world: %d ranks checked\n", size);
    return s_failures ? 1 : 0;
}
