/*
 * The replay driver (libgit2's USE_STANDALONE_FUZZERS idea): the same LLVMFuzzerTestOneInput as
 * the libFuzzer build, called once for each file of the corpus folders (or files) given on the
 * command line. It runs as a plain ctest test in every build, under ASan+UBSan in the sanitizer
 * build, and fails if an input leaks a knn_malloc block (a broken property aborts).
 */
#include "knn/common/alloc.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
            }
            buf = p;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "out of memory reading %s\n", path);
        return 1;
    }
    int64_t before = knn_alloc_outstanding();
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    if (knn_alloc_outstanding() != before) {
        fprintf(stderr, "%s: leaked %lld block(s)\n", path, (long long)(knn_alloc_outstanding() - before));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0, files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "no such file or folder: %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed |= s_run_file(argv[i]);
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            failed |= s_run_file(path);
            files++;
        }
        if (d)
            closedir(d);
    }
    if (!files) {
        fprintf(stderr, "no corpus files given\n");
        return 1;
    }
    printf("%d corpus file(s) replayed%s\n", files, failed ? ", with failures" : "");
    return failed;
}
