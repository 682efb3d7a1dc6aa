#ifndef KNN_WORLD_IMPL_H
#define KNN_WORLD_IMPL_H

/*
 * What an engine provides: point-to-point bytes, one broadcast chunk, the alarm, abort. Every
 * count here is at most KNN_WORLD_MAX_CHUNK_BYTES, so it fits MPI's int. The collectives of
 * world.h (agree, chunked broadcast and gather) are written once in world.c on top of these.
 */

#include "knn/world/world.h"

struct knn_world_ops {
    void (*destroy)(void *impl);
    int (*send)(void *impl, int dest, const void *buf, size_t len);
    int (*recv)(void *impl, int source, void *buf, size_t len);
    int (*broadcast)(void *impl, int root, void *buf, size_t len);
    int (*barrier)(void *impl);
    int (*alarm_raise)(void *impl);
    int (*alarm_poll)(void *impl, int *raised, int *rank);
    void (*abort)(void *impl, int exit_code); /* does not return */
    /* messages of a service loop (world.h): tagged, never waiting on a peer */
    int (*send_start)(void *impl, int dest, int tag, const void *buf, size_t len, void **req);
    int (*send_test)(void *impl, void *req, int *done); /* frees req when done */
    void (*send_abandon)(void *impl, void *req);
    int (*probe)(void *impl, int source, int tag, int *arrived, int *from, size_t *len);
    int (*recv_tag)(void *impl, int source, int tag, void *buf, size_t len);
    void (*destroy_lost)(void *impl);
};

struct knn_world {
    const struct knn_world_ops *ops; /* NULL: the single world */
    void *impl;
    int rank;
    int size;
    size_t chunk_bytes;
    const char *engine;
    char library_version[256];
    char host[32];
};

/* world_mpi.c: start MPI and fill `world` (ops, impl, rank, size, library_version). KNN_EIO. */
int knn_world__mpi_start(struct knn_world *world);

#endif
