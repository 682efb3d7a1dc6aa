#define _GNU_SOURCE /* nftw */
#include "serve/serve_model.h"

#include "model_archive.h"
#include "serve/serve_fetch.h"

#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/uri.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void s_rmtree(const char *dir)
{
    nftw(dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int s_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int s_make_tmpdir(char *buf, size_t size, const char *what)
{
    const char *tmp = getenv("TMPDIR");
    if ((size_t)snprintf(buf, size, "%s/knn-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what) >= size)
        return knn_error_set(KNN_EINVAL, "TMPDIR is too long");
    if (!mkdtemp(buf))
        return knn_error_set(KNN_EIO, "cannot create a temporary directory %s: %s", buf, strerror(errno));
    return 0;
}

/* What is loaded from the model directory: the whole model, or a part of it (sharded serving). */
struct s_loader {
    int (*load_dir)(const struct s_loader *l, const char *dir);
    struct knn_model **model;
    struct knn_model_part **part;
    size_t part_no, nparts;
};

static int s_load_whole(const struct s_loader *l, const char *dir)
{
    return knn_model_load(l->model, dir);
}

static int s_load_part(const struct s_loader *l, const char *dir)
{
    return knn_model_part_load(l->part, dir, l->part_no, l->nparts, NULL);
}

/* Unpack a local model.tar.gz into a temporary directory, load it, remove the directory. */
static int s_load_archive(const struct s_loader *l, const char *tar_path, const char *shown)
{
    char dir[4096];
    int rc = s_make_tmpdir(dir, sizeof(dir), "model");
    if (rc)
        return rc;
    rc = knn_model_archive_unpack(dir, tar_path, NULL);
    if (rc) {
        /* The unpack's message names tar_path already (a temporary file for S3): name `shown` once. */
        const char *m = knn_error_message();
        size_t n = strlen(tar_path);
        if (strncmp(m, tar_path, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
            m += n + 2;
        char cause[512];
        snprintf(cause, sizeof(cause), "%s", m);
        s_rmtree(dir);
        return knn_error_set(rc, "%s: %s (a model is a model.tar.gz, or a folder holding model_algo-1)", shown, cause);
    }
    rc = l->load_dir(l, dir);
    s_rmtree(dir);
    return rc ? knn_error_wrap(rc, "%s", shown) : 0;
}

static int s_load(const struct s_loader *l, const char *source);

int knn_serve_model_load(struct knn_model **out, const char *source)
{
    struct s_loader l = {s_load_whole, out, NULL, 0, 1};
    *out = NULL;
    return s_load(&l, source);
}

int knn_serve_model_load_part(struct knn_model_part **out, const char *source, size_t part, size_t nparts)
{
    struct s_loader l = {s_load_part, NULL, out, part, nparts};
    *out = NULL;
    return s_load(&l, source);
}

static int s_load(const struct s_loader *l, const char *source)
{
    struct stat st;
    char path[4096];

    if (knn_s3_uri_is_s3(source)) {
        char dir[1024];
        int rc = s_make_tmpdir(dir, sizeof(dir), "download");
        if (rc)
            return rc;
        if ((size_t)snprintf(path, sizeof(path), "%s/model.tar.gz", dir) >= sizeof(path))
            rc = knn_error_set(KNN_EINVAL, "%s: temporary path too long", dir);
        if (rc == 0)
            rc = knn_serve_fetch(path, source);
        if (rc == 0)
            rc = s_load_archive(l, path, source);
        s_rmtree(dir);
        return rc;
    }
    if (stat(source, &st) != 0)
        return knn_error_set(KNN_ENOTFOUND, "model %s: %s", source, strerror(errno));
    if (S_ISREG(st.st_mode))
        return s_load_archive(l, source, source);
    if (!S_ISDIR(st.st_mode))
        return knn_error_set(KNN_EINVAL, "model %s: neither a file nor a directory", source);

    /* A directory: the model files themselves, or a model.tar.gz. */
    if ((size_t)snprintf(path, sizeof(path), "%s/model_algo-1", source) >= sizeof(path))
        return knn_error_set(KNN_EINVAL, "model %s: path too long", source);
    if (s_is_file(path)) {
        int rc = l->load_dir(l, source);
        return rc ? knn_error_wrap(rc, "model %s", source) : 0;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/model.tar.gz", source) < sizeof(path) && s_is_file(path))
        return s_load_archive(l, path, path);
    return knn_error_set(KNN_ENOTFOUND, "model %s: no model_algo-1 or model.tar.gz in this directory", source);
}
