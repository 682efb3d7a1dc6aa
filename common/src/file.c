#define _GNU_SOURCE /* mkostemp */
#include "knn/common/file.h"
#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void s_release(struct knn_file_writer *w)
{
    knn_free(w->path);
    knn_free(w->tmp_path);
    w->path = NULL;
    w->tmp_path = NULL;
    w->fd = -1;
}

int knn_file_writer_open(struct knn_file_writer *w, const char *path)
{
    struct stat st;
    int rc;

    w->fd = -1;
    w->tmp_path = NULL;
    if (!*path)
        return knn_error_set(KNN_EINVAL, "empty output path");
    if (!(w->path = knn_strdup(path)))
        return KNN_ENOMEM;

    if (strcmp(path, "-") == 0) {
        w->fd = STDOUT_FILENO;
        return 0;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) {
            rc = knn_error_set(KNN_EINVAL, "%s: is a folder, not a file", path);
            goto on_error;
        }
        /* A device, FIFO or socket: write into it, never rename a file over it. */
        w->fd = open(path, O_WRONLY | O_CLOEXEC);
        if (w->fd < 0) {
            rc = knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
            goto on_error;
        }
        return 0;
    }

    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    if (!*base) {
        rc = knn_error_set(KNN_EINVAL, "%s: not a file name", path);
        goto on_error;
    }
    size_t n = strlen(path) + 32;
    if (!(w->tmp_path = knn_malloc(n))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    snprintf(w->tmp_path, n, "%.*s.%s.tmp.XXXXXX", (int)dir_len, path, base);
    w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
    if (w->fd < 0) {
        rc = knn_error_set(KNN_EIO, "%s: cannot create a file in its folder: %s", path, strerror(errno));
        goto on_error;
    }
    /* mkstemp makes the file 0600; give it the usual mode (0666 less the umask). */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(w->fd, 0666 & ~mask) != 0) {
        rc = knn_error_set(KNN_EIO, "%s: %s", w->tmp_path, strerror(errno));
        goto on_error;
    }
    return 0;

on_error:
    if (w->fd >= 0) {
        close(w->fd);
        if (w->tmp_path)
            unlink(w->tmp_path);
    }
    s_release(w);
    return rc;
}

int knn_file_writer_write(struct knn_file_writer *w, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return knn_error_set(KNN_EIO, "%s: write failed: %s", w->path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int knn_file_writer_commit(struct knn_file_writer *w)
{
    int rc = 0;
    if (!w->path)
        return knn_error_set(KNN_EINVAL, "file writer already released");
    if (!w->tmp_path) {
        if (w->fd != STDOUT_FILENO && close(w->fd) != 0)
            rc = knn_error_set(KNN_EIO, "%s: write failed: %s", w->path, strerror(errno));
        s_release(w);
        return rc;
    }
    if (fsync(w->fd) != 0)
        rc = knn_error_set(KNN_EIO, "%s: write failed: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && !rc)
        rc = knn_error_set(KNN_EIO, "%s: write failed: %s", w->path, strerror(errno));
    if (!rc && rename(w->tmp_path, w->path) != 0)
        rc = knn_error_set(KNN_EIO, "%s: cannot rename the finished file into place: %s", w->path, strerror(errno));
    if (rc)
        unlink(w->tmp_path);
    s_release(w);
    return rc;
}

void knn_file_writer_abort(struct knn_file_writer *w)
{
    if (!w->path)
        return;
    if (w->tmp_path) {
        close(w->fd);
        unlink(w->tmp_path);
    } else if (w->fd != STDOUT_FILENO) {
        close(w->fd);
    }
    s_release(w);
}
