#define _GNU_SOURCE /* nftw */
#include "fuzz_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[512];

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

void knn_fuzz_empty(const char *dir)
{
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void s_at_exit(void)
{
    if (s_dir[0]) {
        knn_fuzz_empty(s_dir);
        rmdir(s_dir);
    }
}

const char *knn_fuzz_scratch(void)
{
    if (s_dir[0])
        return s_dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof(s_dir), "%s/knn-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_dir)) {
        s_dir[0] = '\0';
        return NULL;
    }
    atexit(s_at_exit);
    return s_dir;
}

int knn_fuzz_write(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    return close(fd);
}

void knn_fuzz_split(const uint8_t *data, size_t size, size_t n, const uint8_t **parts, size_t *lens)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i] = data + at;
        if (i + 1 == n) {
            lens[i] = size - at;
            break;
        }
        const uint8_t *z = at < size ? memchr(data + at, 0, size - at) : NULL;
        size_t end = z ? (size_t)(z - data) : size;
        lens[i] = end - at;
        at = z ? end + 1 : size;
    }
}
