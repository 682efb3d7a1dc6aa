/*
 * Fuzz target: FAISS index files (knn_index_read_faiss). Any input must be read or refused with
 * an error, never crash, hang, leak or allocate beyond its own size (ASan's allocator limits
 * catch that); an index that is read is searched and written back, and must behave.
 *
 *   cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DKNN_ENABLE_SANITIZERS=ON -DKNN_BUILD_FUZZERS=ON
 *   cmake --build build-fuzz --target fuzz_index_read
 *   build-fuzz/tests/algorithms/ivf/fuzz_index_read -max_total_time=300 \
 *       tests/algorithms/ivf/corpora/index_read
 *
 * Without libFuzzer the same function runs over the committed corpus as the ctest
 * fuzz.index_read_corpus (tests/fuzz/standalone.c's replay driver).
 */
#include "knn/algorithms/index.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct s_input {
    const uint8_t *data;
    size_t len, pos;
};

static int s_read(void *user, void *out, size_t len)
{
    struct s_input *in = user;
    if (len > in->len - in->pos)
        return knn_error_set(KNN_ETRUNCATED, "end of input");
    memcpy(out, in->data + in->pos, len);
    in->pos += len;
    return 0;
}

static int s_discard(void *user, const void *data, size_t len)
{
    (void)data;
    *(size_t *)user += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s_input in = {data, size, 0};
    struct knn_index *index = NULL;
    if (knn_index_read_faiss(&index, s_read, &in, size) != 0) {
        if (index)
            abort(); /* a failed read must not hand out an index */
        return 0;
    }
    const struct knn_index_options *o = knn_index_get_options(index);
    size_t ntotal = knn_index_ntotal(index);
    if (o->dim <= 4096) {
        enum { NQ = 2, K = 4 };
        float *q = calloc(NQ * o->dim, sizeof(float));
        float dist[NQ * K];
        int64_t ids[NQ * K];
        for (size_t j = 0; q && j < o->dim; j++)
            q[o->dim + j] = 1.0f;
        if (q && knn_index_search(index, NQ, q, K, dist, ids, NULL) == 0) {
            for (size_t i = 0; i < NQ * K; i++)
                if (ids[i] < -1 || (ids[i] >= 0 && (size_t)ids[i] >= ntotal))
                    abort();
        }
        free(q);
    }
    size_t written = 0;
    if (knn_index_write_faiss(index, s_discard, &written) != 0 || written > size)
        abort(); /* what we read we can write, and never bigger (we drop only the direct map) */
    knn_index_destroy(index);
    return 0;
}
