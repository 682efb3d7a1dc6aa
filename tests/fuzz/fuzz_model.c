/*
 * Fuzz target: loading a model from outside. The first byte picks what the rest is:
 *   even: a model.tar.gz (or plain tar), unpacked by knn_model_archive_unpack into a scratch
 *         folder and, if accepted, loaded by knn_model_load;
 *   odd:  a model_algo-1.json, loaded with knn_model_load beside a valid tiny Flat model's
 *         model_algo-1 and model_algo-1.labels (so the JSON reaches every check).
 * Checks besides no crash/leak: a refusal has a message and leaves the scratch folder empty
 * (unpack removes what it wrote); an accepted archive never wrote more than its declared sizes.
 */
#include "fuzz_util.h"
#include "model_archive.h"

#include "knn/algorithms/model.h"
#include "knn/common/error.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_model: property broken: %s (last error: %s)\n", what, knn_error_message());
        abort();
    }
}

static int s_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n == 0;
}

/* A Flat index of one 1-dimensional vector, as FAISS writes it ("IxF2"), and its one label. */
static const uint8_t s_flat_index[] = {
    'I', 'x', 'F', '2', 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f,
};
static const uint8_t s_label[] = {0, 0, 0x80, 0x3f};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *base = knn_fuzz_scratch();
    char out[1024], tar[1024];
    if (!base || size < 1 || size > (4u << 20))
        return 0;
    knn_fuzz_empty(base);
    snprintf(out, sizeof(out), "%s/model", base);
    snprintf(tar, sizeof(tar), "%s/model.tar.gz", base);
    mkdir(out, 0755);
    struct knn_model *model = NULL;
    if ((data[0] & 1) == 0) {
        if (knn_fuzz_write(base, "model.tar.gz", data + 1, size - 1) != 0)
            return 0;
        struct knn_archive_limits lim = {64, (uint64_t)64 << 20, (uint64_t)64 << 20};
        int rc = knn_model_archive_unpack(out, tar, &lim);
        s_check(rc == 0 || knn_error_message()[0], "a refused archive has a message");
        s_check(rc == 0 || s_is_empty(out), "a refused archive leaves nothing behind");
        if (rc == 0 && knn_model_load(&model, out) == 0)
            knn_model_destroy(model);
        return 0;
    }
    if (knn_fuzz_write(out, "model_algo-1", s_flat_index, sizeof(s_flat_index)) != 0 ||
        knn_fuzz_write(out, "model_algo-1.labels", s_label, sizeof(s_label)) != 0 ||
        knn_fuzz_write(out, "model_algo-1.json", data + 1, size - 1) != 0)
        return 0;
    int rc = knn_model_load(&model, out);
    s_check(rc == 0 || knn_error_message()[0], "a refused model has a message");
    if (rc == 0)
        knn_model_destroy(model);
    return 0;
}
