#define _GNU_SOURCE
#include "knn_test.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

void knn_test_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: FAIL: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

size_t knn_test_first_difference(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return i;
    }
    return n;
}

const char *knn_test_error_name(int code)
{
    return knn_error_name(code);
}

const char *knn_test_error_message(void)
{
    return knn_error_message();
}

static const char *s_env_path(char *buf, size_t size, const char *var, const char *fallback, const char *relative)
{
    const char *base = getenv(var);
    if (!base || !*base)
        base = fallback;
    snprintf(buf, size, "%s/%s", base, relative);
    return buf;
}

const char *knn_test_fixture_path(char *buf, size_t size, const char *relative)
{
    return s_env_path(buf, size, "KNN_FIXTURES_DIR", "tests/fixtures", relative);
}

const char *knn_test_source_path(char *buf, size_t size, const char *relative)
{
    return s_env_path(buf, size, "KNN_SOURCE_DIR", ".", relative);
}

int knn_test_read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return knn_error_set(KNN_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return knn_error_set(KNN_EIO, "%s: cannot seek", path);
    }
    long size = ftell(f);
    rewind(f);
    uint8_t *buf = knn_malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return KNN_ENOMEM;
    }
    if (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        knn_free(buf);
        fclose(f);
        return knn_error_set(KNN_EIO, "%s: short read", path);
    }
    buf[size] = '\0';
    fclose(f);
    *data = buf;
    *len = (size_t)size;
    return 0;
}

int knn_test_mkdtemp(char *buf, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, size, "%s/knn-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(buf))
        return knn_error_set(KNN_EIO, "mkdtemp %s: %s", buf, strerror(errno));
    return 0;
}

static int s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int knn_test_rmtree(const char *path)
{
    if (nftw(path, s_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return knn_error_set(KNN_EIO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static int s_run(const struct knn_test_entry *t)
{
    int64_t before = knn_alloc_outstanding();
    knn_error_clear();
    int rc = t->fn();
    knn_alloc_fail_after(0);
    int64_t leaked = knn_alloc_outstanding() - before;
    if (rc == KNN_TEST_PASS && leaked != 0) {
        fprintf(stderr, "%s: FAIL: %lld block(s) allocated with knn_malloc were not freed\n", t->name,
                (long long)leaked);
        rc = KNN_TEST_FAIL;
    }
    fprintf(stderr, "%s: %s\n", t->name, rc == KNN_TEST_PASS ? "ok" : rc == KNN_TEST_SKIP ? "skipped" : "FAILED");
    return rc;
}

int knn_test_main(int argc, char **argv, const struct knn_test_entry *tests)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2) {
        for (const struct knn_test_entry *t = tests; t->name; t++) {
            if (strcmp(t->name, argv[1]) == 0)
                return s_run(t);
        }
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    int failed = 0;
    for (const struct knn_test_entry *t = tests; t->name; t++) {
        int rc = s_run(t);
        if (rc != KNN_TEST_PASS && rc != KNN_TEST_SKIP)
            failed++;
    }
    return failed ? 1 : 0;
}
