#include "transform/transform_store.h"

#include "transform/transform_store_impl.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/s3/uri.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- names ---- */

int knn__transform_names_add(struct knn__transform_names *l, const char *name)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = knn_realloc_array(l->names, cap, sizeof(*p));
        if (!p)
            return KNN_ENOMEM;
        l->names = p;
        l->cap = cap;
    }
    if (!(l->names[l->n] = knn_strdup(name)))
        return KNN_ENOMEM;
    l->n++;
    return 0;
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void knn_transform_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        knn_free(names[i]);
    knn_free(names);
}

/* "-": stdin as the input location (one object, named "-"), stdout as the output location (every
 * output written to it in turn). */
static int s_is_stdio(const struct knn_transform_store *store)
{
    return store->kind == KNN__STORE_LOCAL && strcmp(store->location, "-") == 0;
}

/* ---- local directories ---- */

static int s_walk(struct knn__transform_names *l, const char *root, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char child[4096], full[4096];
        struct stat st;
        if ((size_t)snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= sizeof(child))
            continue;
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, child) >= sizeof(full) || lstat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = s_walk(l, root, child);
        else if (S_ISREG(st.st_mode))
            rc = knn__transform_names_add(l, child);
    }
    closedir(d);
    return rc;
}

int knn_transform_store_open(struct knn_transform_store **out, const char *location)
{
    *out = NULL;
    if (knn_s3_uri_is_s3(location))
        return knn__transform_store_open_s3(out, location);
    struct knn_transform_store *s = knn_calloc(1, sizeof(*s));
    if (!s)
        return KNN_ENOMEM;
    s->kind = KNN__STORE_LOCAL;
    if (!(s->location = knn_strdup(location))) {
        knn_free(s);
        return KNN_ENOMEM;
    }
    size_t n = strlen(s->location);
    while (n > 1 && s->location[n - 1] == '/')
        s->location[--n] = '\0';
    *out = s;
    return 0;
}

void knn_transform_store_destroy(struct knn_transform_store *store)
{
    if (!store)
        return;
    if (store->kind == KNN__STORE_S3)
        knn__transform_store_destroy_s3(store);
    knn_free(store->location);
    knn_free(store);
}

int knn_transform_store_list(struct knn_transform_store *store, char ***names, size_t *n)
{
    struct knn__transform_names l = {NULL, 0, 0};
    int rc;
    *names = NULL;
    *n = 0;
    if (store->kind == KNN__STORE_S3) {
        rc = knn__transform_store_list_s3(store, &l);
    } else if (s_is_stdio(store)) {
        rc = knn__transform_names_add(&l, "-");
    } else {
        struct stat st;
        if (stat(store->location, &st) != 0) {
            rc = knn_error_set(KNN_ENOTFOUND, "%s: %s", store->location, strerror(errno));
        } else if (S_ISREG(st.st_mode)) {
            /* A single file: list it by base name; the location becomes its directory. */
            char *slash = strrchr(store->location, '/');
            rc = knn__transform_names_add(&l, slash ? slash + 1 : store->location);
            if (rc == 0) {
                if (slash == store->location)
                    slash[1] = '\0';
                else if (slash)
                    *slash = '\0';
                else {
                    knn_free(store->location);
                    store->location = knn_strdup(".");
                    if (!store->location)
                        rc = KNN_ENOMEM;
                }
            }
        } else {
            rc = s_walk(&l, store->location, "");
        }
    }
    if (rc) {
        knn_transform_names_free(l.names, l.n);
        return rc;
    }
    if (l.n)
        qsort(l.names, l.n, sizeof(*l.names), s_cmp_names);
    *names = l.names;
    *n = l.n;
    return 0;
}

int knn_transform_store_describe(char *buf, size_t size, const struct knn_transform_store *store, const char *name)
{
    if (store->kind == KNN__STORE_S3)
        return knn__transform_store_describe_s3(buf, size, store, name);
    if (s_is_stdio(store))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%s/%s", store->location, name);
    return 0;
}

int knn_transform_reader_open(struct knn_transform_reader **out, struct knn_transform_store *store, const char *name)
{
    *out = NULL;
    if (store->kind == KNN__STORE_S3)
        return knn__transform_reader_open_s3(out, store, name);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", store->location, name);
    struct knn_transform_reader *r = knn_calloc(1, sizeof(*r));
    if (!r)
        return KNN_ENOMEM;
    r->kind = KNN__STORE_LOCAL;
    r->fd = s_is_stdio(store) ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", path, strerror(errno));
        knn_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int knn_transform_reader_read(struct knn_transform_reader *r, void *buf, size_t cap, size_t *got)
{
    if (r->kind == KNN__STORE_S3)
        return knn__transform_reader_read_s3(r, buf, cap, got);
    for (;;) {
        ssize_t n = read(r->fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return knn_error_set(KNN_EIO, "read: %s", strerror(errno));
        *got = (size_t)n;
        return 0;
    }
}

uint64_t knn_transform_reader_size(const struct knn_transform_reader *r)
{
    if (r->kind == KNN__STORE_S3)
        return knn__transform_reader_size_s3(r);
    struct stat st;
    return fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : UINT64_MAX;
}

void knn_transform_reader_close(struct knn_transform_reader *r)
{
    if (!r)
        return;
    if (r->kind == KNN__STORE_S3)
        knn__transform_reader_close_s3(r);
    else if (r->fd != STDIN_FILENO)
        close(r->fd);
    knn_free(r);
}

/* Create the parent directories of `path` (the part before its last '/'). */
static int s_mkdirs_for(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len >= sizeof(buf))
        return knn_error_set(KNN_EINVAL, "%s: path too long", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i < len; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return knn_error_set(KNN_EIO, "mkdir %s: %s", buf, strerror(errno));
        buf[i] = '/';
    }
    return 0;
}

int knn_transform_writer_open(struct knn_transform_writer **out, struct knn_transform_store *store, const char *name)
{
    *out = NULL;
    if (store->kind == KNN__STORE_S3)
        return knn__transform_writer_open_s3(out, store, name);
    struct knn_transform_writer *w = knn_calloc(1, sizeof(*w));
    if (!w)
        return KNN_ENOMEM;
    w->kind = KNN__STORE_LOCAL;
    int rc = 0;
    if (s_is_stdio(store)) {
        if ((rc = knn_file_writer_open(&w->file, "-")) != 0)
            goto on_error;
        *out = w;
        return 0;
    }
    if ((size_t)snprintf(w->path, sizeof(w->path), "%s/%s", store->location, name) >= sizeof(w->path)) {
        rc = knn_error_set(KNN_EINVAL, "%s/%s: path too long", store->location, name);
        goto on_error;
    }
    if ((rc = s_mkdirs_for(w->path)) != 0 || (rc = knn_file_writer_open(&w->file, w->path)) != 0)
        goto on_error;
    *out = w;
    return 0;
on_error:
    knn_free(w);
    return rc;
}

int knn_transform_writer_write(struct knn_transform_writer *w, const void *data, size_t len)
{
    if (w->kind == KNN__STORE_S3)
        return knn__transform_writer_write_s3(w, data, len);
    return knn_file_writer_write(&w->file, data, len);
}

int knn_transform_writer_commit(struct knn_transform_writer *w)
{
    if (w->kind == KNN__STORE_S3)
        return knn__transform_writer_commit_s3(w);
    int rc = knn_file_writer_commit(&w->file);
    knn_free(w);
    return rc;
}

void knn_transform_writer_abort(struct knn_transform_writer *w)
{
    if (!w)
        return;
    if (w->kind == KNN__STORE_S3) {
        knn__transform_writer_abort_s3(w);
        return;
    }
    knn_file_writer_abort(&w->file);
    knn_free(w);
}
