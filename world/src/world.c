/*
 * The world's collectives, written once over an engine's point-to-point calls (world_impl.h),
 * and the single world, where they are local copies.
 */
#include "world_impl.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A failed rank's message is sent to the others; longer ones are cut (error messages are 1 KiB). */
#define S_MAX_MESSAGE 1024

int knn_world_started_by_mpirun(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return 1;
    }
    return 0;
}

static void s_name_host(struct knn_world *w)
{
    snprintf(w->host, sizeof(w->host), "algo-%d", w->rank + 1);
}

int knn_world_new_single(struct knn_world **out)
{
    struct knn_world *w = knn_calloc(1, sizeof(*w));
    *out = NULL;
    if (!w)
        return knn_error_set(KNN_ENOMEM, "out of memory");
    w->size = 1;
    w->chunk_bytes = KNN_WORLD_DEFAULT_CHUNK_BYTES;
    w->engine = "single";
    s_name_host(w);
    *out = w;
    return 0;
}

int knn_world_new(struct knn_world **out)
{
    int rc = knn_world_new_single(out);
    if (rc < 0 || !knn_world_started_by_mpirun())
        return rc;
    if ((rc = knn_world__mpi_start(*out)) < 0) {
        knn_free(*out);
        *out = NULL;
        return rc;
    }
    s_name_host(*out);
    return 0;
}

void knn_world_destroy(struct knn_world *world)
{
    if (!world)
        return;
    if (world->ops)
        world->ops->destroy(world->impl);
    knn_free(world);
}

int knn_world_rank(const struct knn_world *world)
{
    return world->rank;
}

int knn_world_size(const struct knn_world *world)
{
    return world->size;
}

const char *knn_world_host(const struct knn_world *world)
{
    return world->host;
}

const char *knn_world_engine(const struct knn_world *world)
{
    return world->engine;
}

const char *knn_world_library_version(const struct knn_world *world)
{
    return world->library_version;
}

int knn_world_is_mpi(const struct knn_world *world)
{
    return world->ops != NULL;
}

void knn_world_set_chunk_bytes(struct knn_world *world, size_t chunk_bytes)
{
    if (chunk_bytes < 1)
        chunk_bytes = 1;
    if (chunk_bytes > KNN_WORLD_MAX_CHUNK_BYTES)
        chunk_bytes = KNN_WORLD_MAX_CHUNK_BYTES;
    world->chunk_bytes = chunk_bytes;
}

static int s_check_rank(const struct knn_world *w, int rank, const char *what)
{
    if (rank < 0 || rank >= w->size)
        return knn_error_set(KNN_EINVAL, "%s: rank %d is outside the world of %d", what, rank, w->size);
    return 0;
}

static int s_send_chunked(struct knn_world *w, int dest, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < w->chunk_bytes ? len - off : w->chunk_bytes;
        int rc = w->ops->send(w->impl, dest, p + off, n);
        if (rc < 0)
            return rc;
        off += n;
    }
    return 0;
}

static int s_recv_chunked(struct knn_world *w, int source, void *buf, size_t len)
{
    unsigned char *p = buf;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < w->chunk_bytes ? len - off : w->chunk_bytes;
        int rc = w->ops->recv(w->impl, source, p + off, n);
        if (rc < 0)
            return rc;
        off += n;
    }
    return 0;
}

int knn_world_broadcast(struct knn_world *world, int root, void *buf, size_t len)
{
    int rc;
    if ((rc = s_check_rank(world, root, "broadcast")) < 0)
        return rc;
    if (!world->ops)
        return 0;
    unsigned char *p = buf;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < world->chunk_bytes ? len - off : world->chunk_bytes;
        if ((rc = world->ops->broadcast(world->impl, root, p + off, n)) < 0)
            return rc;
        off += n;
    }
    return 0;
}

int knn_world_barrier(struct knn_world *world)
{
    return world->ops ? world->ops->barrier(world->impl) : 0;
}

int knn_world_gather_u64(struct knn_world *world, int root, uint64_t value, uint64_t *values)
{
    int rc;
    if ((rc = s_check_rank(world, root, "gather")) < 0)
        return rc;
    if (world->rank != root)
        return world->ops->send(world->impl, root, &value, sizeof(value));
    values[root] = value;
    for (int r = 0; r < world->size; r++) {
        if (r != root && (rc = world->ops->recv(world->impl, r, &values[r], sizeof(values[r]))) < 0)
            return rc;
    }
    return 0;
}

int knn_world_gather(struct knn_world *world, int root, const void *send, size_t len, void *recv,
                     const uint64_t *lens)
{
    int rc;
    if ((rc = s_check_rank(world, root, "gather")) < 0)
        return rc;
    if (world->rank != root) {
        uint64_t announced = len;
        if ((rc = world->ops->send(world->impl, root, &announced, sizeof(announced))) < 0)
            return rc;
        return s_send_chunked(world, root, send, len);
    }
    if (len != lens[root])
        return knn_error_set(KNN_EMISMATCH, "gather: the root sends %zu bytes but its length says %llu", len,
                             (unsigned long long)lens[root]);
    unsigned char *at = recv;
    for (int r = 0; r < world->size; r++) {
        if (r == root) {
            if (at != send && len)
                memmove(at, send, len);
        } else {
            uint64_t announced = 0;
            if ((rc = world->ops->recv(world->impl, r, &announced, sizeof(announced))) < 0)
                return rc;
            if (announced != lens[r])
                return knn_error_set(KNN_EMISMATCH, "gather: rank %d sends %llu bytes, %llu were announced", r,
                                     (unsigned long long)announced, (unsigned long long)lens[r]);
            if ((rc = s_recv_chunked(world, r, at, (size_t)lens[r])) < 0)
                return rc;
        }
        at += lens[r];
    }
    return 0;
}

int knn_world_agree(struct knn_world *world, int status, const char *message, int *failed_rank)
{
    char text[S_MAX_MESSAGE + 1];
    int rc, failed = -1, code = status;
    if (failed_rank)
        *failed_rank = -1;
    if (status > 0)
        status = KNN_EINTERNAL; /* statuses are 0 or negative codes */
    if (!message || !*message)
        message = status ? knn_error_str(status) : "";
    snprintf(text, sizeof(text), "%s", message);

    if (world->ops) {
        /* Everyone's status to rank 0, then the list to everyone. */
        uint64_t *statuses = knn_calloc((size_t)world->size, sizeof(*statuses));
        if (!statuses)
            return knn_error_set(KNN_ENOMEM, "out of memory");
        if ((rc = knn_world_gather_u64(world, 0, (uint64_t)(int64_t)status, world->rank == 0 ? statuses : NULL)) < 0 ||
            (rc = knn_world_broadcast(world, 0, statuses, sizeof(uint64_t) * (size_t)world->size)) < 0) {
            knn_free(statuses);
            return rc;
        }
        for (int r = 0; r < world->size && failed < 0; r++) {
            if (statuses[r] != 0) {
                failed = r;
                code = (int)(int64_t)statuses[r];
            }
        }
        knn_free(statuses);
        if (failed >= 0 && (rc = knn_world_broadcast(world, failed, text, sizeof(text))) < 0)
            return rc;
        text[S_MAX_MESSAGE] = '\0';
    } else if (status != 0) {
        failed = 0;
        code = status;
    }
    if (failed < 0)
        return 0;
    if (failed_rank)
        *failed_rank = failed;
    return knn_error_set(code, "algo-%d: %s", failed + 1, text);
}

int knn_world_alarm_raise(struct knn_world *world)
{
    return world->ops ? world->ops->alarm_raise(world->impl) : 0;
}

int knn_world_alarm_poll(struct knn_world *world, int *raised, int *rank)
{
    *raised = 0;
    *rank = -1;
    return world->ops ? world->ops->alarm_poll(world->impl, raised, rank) : 0;
}

/* ---- messages of a service loop ---- */

static int s_check_message(const struct knn_world *w, int rank, int tag, size_t len, const char *what)
{
    if (!w->ops)
        return knn_error_set(KNN_EINVAL, "%s: the single world has no other rank", what);
    if (rank < -1 || rank >= w->size || rank == w->rank)
        return knn_error_set(KNN_EINVAL, "%s: rank %d is not another rank of the world of %d", what, rank, w->size);
    if (tag < KNN_WORLD_TAG_MIN || tag > KNN_WORLD_TAG_MAX)
        return knn_error_set(KNN_EINVAL, "%s: tag %d is outside %d..%d", what, tag, KNN_WORLD_TAG_MIN,
                             KNN_WORLD_TAG_MAX);
    if (len > KNN_WORLD_MAX_CHUNK_BYTES)
        return knn_error_set(KNN_ETOOBIG, "%s: %zu bytes, more than a message may hold (%zu)", what, len,
                             KNN_WORLD_MAX_CHUNK_BYTES);
    return 0;
}

int knn_world_send_start(
    struct knn_world *world, int dest, int tag, const void *buf, size_t len, struct knn_world_send **out)
{
    int rc = s_check_message(world, dest, tag, len, "send");
    if (rc < 0)
        return rc;
    if (dest < 0)
        return knn_error_set(KNN_EINVAL, "send: no destination rank");
    return world->ops->send_start(world->impl, dest, tag, buf, len, (void **)out);
}

int knn_world_send_test(struct knn_world *world, struct knn_world_send *send, int *done)
{
    return world->ops->send_test(world->impl, send, done);
}

void knn_world_send_abandon(struct knn_world *world, struct knn_world_send *send)
{
    if (send && world->ops)
        world->ops->send_abandon(world->impl, send);
}

int knn_world_probe(struct knn_world *world, int source, int tag, int *arrived, int *from, size_t *len)
{
    int rc = s_check_message(world, source, tag, 0, "probe");
    if (rc < 0)
        return rc;
    return world->ops->probe(world->impl, source, tag, arrived, from, len);
}

int knn_world_recv_arrived(struct knn_world *world, int source, int tag, void *buf, size_t len)
{
    int rc = s_check_message(world, source, tag, len, "receive");
    if (rc < 0)
        return rc;
    if (source < 0)
        return knn_error_set(KNN_EINVAL, "receive: no source rank");
    return world->ops->recv_tag(world->impl, source, tag, buf, len);
}

void knn_world_destroy_lost(struct knn_world *world)
{
    if (!world)
        return;
    if (world->ops)
        world->ops->destroy_lost(world->impl);
    knn_free(world);
}

void knn_world_abort(struct knn_world *world, int exit_code)
{
    if (world && world->ops)
        world->ops->abort(world->impl, exit_code);
    _exit(exit_code);
}
