#include "knn_test.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/common/log.h"

int test_error_set_and_wrap(void)
{
    int rc = knn_error_set(KNN_EFORMAT, "bad magic at offset %d", 88);
    ASSERT_INT_EQ(KNN_EFORMAT, rc);
    ASSERT_STR_EQ("bad magic at offset 88", knn_error_message());
    rc = knn_error_wrap(rc, "s3://%s/%s", "b", "k");
    ASSERT_INT_EQ(KNN_EFORMAT, rc);
    ASSERT_STR_EQ("s3://b/k: bad magic at offset 88", knn_error_message());
    knn_error_clear();
    ASSERT_STR_EQ("", knn_error_message());
    /* Wrapping with no message uses the code's sentence. */
    knn_error_wrap(KNN_ENOTFOUND, "file.rec");
    ASSERT_STR_EQ("file.rec: not found", knn_error_message());
    knn_error_clear();
    return 0;
}

int test_error_names(void)
{
    ASSERT_STR_EQ("KNN_EFORMAT", knn_error_name(KNN_EFORMAT));
    ASSERT_STR_EQ("KNN_ES3_NO_SUCH_KEY", knn_error_name(KNN_ES3_NO_SUCH_KEY));
    ASSERT_STR_EQ("KNN_E?", knn_error_name(-9999));
    ASSERT_STR_EQ("malformed input", knn_error_str(KNN_EFORMAT));
    return 0;
}

int test_alloc_overflow_checked(void)
{
    size_t out = 1;
    ASSERT_ERR(KNN_ENOMEM, knn_mul_size(&out, SIZE_MAX / 2, 3));
    ASSERT_UINT_EQ(0, out);
    ASSERT_TRUE(knn_malloc_array(SIZE_MAX / 4, 8) == NULL);
    ASSERT_CONTAINS(knn_error_message(), "overflow");
    ASSERT_TRUE(knn_calloc(SIZE_MAX / 2, 4) == NULL);
    void *p = knn_malloc_array(4, 8);
    ASSERT_TRUE(p != NULL);
    /* A failed realloc leaves the old block alive. */
    ASSERT_TRUE(knn_realloc_array(p, SIZE_MAX / 2, 4) == NULL);
    knn_free(p);
    return 0;
}

int test_alloc_fail_nth(void)
{
    knn_alloc_fail_after(2);
    void *a = knn_malloc(8);
    void *b = knn_malloc(8);
    void *c = knn_malloc(8);
    knn_alloc_fail_after(0);
    ASSERT_TRUE(a != NULL);
    ASSERT_TRUE(b == NULL);
    ASSERT_TRUE(c != NULL);
    ASSERT_CONTAINS(knn_error_message(), "out of memory");
    knn_free(a);
    knn_free(c);
    return 0;
}

int test_buf_cap_enforced(void)
{
    struct knn_buf buf = KNN_BUF_INIT(10);
    ASSERT_OK(knn_buf_append(&buf, "0123456789", 10));
    ASSERT_ERR(KNN_ETOOBIG, knn_buf_append(&buf, "x", 1));
    ASSERT_UINT_EQ(10, buf.len);
    ASSERT_STR_EQ("0123456789", (const char *)buf.data);
    knn_buf_reset(&buf);
    ASSERT_UINT_EQ(0, buf.len);
    ASSERT_OK(knn_buf_append_str(&buf, "abc"));
    ASSERT_STR_EQ("abc", (const char *)buf.data);
    knn_buf_clean_up(&buf);
    return 0;
}

int test_buf_printf_and_detach(void)
{
    struct knn_buf buf = KNN_BUF_INIT(1 << 20);
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(knn_buf_printf(&buf, "%d,", i));
    ASSERT_TRUE(buf.len > 1000);
    ASSERT_TRUE(strncmp((const char *)buf.data, "0,1,2,3,", 8) == 0);
    size_t len = 0;
    uint8_t *data = knn_buf_detach(&buf, &len);
    ASSERT_TRUE(data != NULL);
    ASSERT_UINT_EQ(strlen((const char *)data), len);
    ASSERT_TRUE(buf.data == NULL && buf.len == 0);
    knn_free(data);
    return 0;
}

struct s_captured {
    int lines;
    char last[512];
};

static void s_capture(void *user, enum knn_log_level level, const char *line)
{
    struct s_captured *c = user;
    c->lines++;
    snprintf(c->last, sizeof(c->last), "%s", line);
}

int test_log_level_and_sink(void)
{
    struct s_captured cap = {0};
    enum knn_log_level saved = knn_log_get_level();
    enum knn_log_level parsed;
    ASSERT_OK(knn_log_parse_level(&parsed, "debug"));
    ASSERT_INT_EQ(KNN_LOG_DEBUG, parsed);
    ASSERT_ERR(KNN_EINVAL, knn_log_parse_level(&parsed, "loud"));

    knn_log_set_sink(s_capture, &cap);
    knn_log_set_level(KNN_LOG_INFO);
    KNN_LOG(KNN_LOG_DEBUG, KNN_LS_S3, "hidden %d", 1);
    ASSERT_INT_EQ(0, cap.lines);
    KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "#test_score (algo-1) : ('accuracy', %.17g)", 0.5);
    ASSERT_INT_EQ(1, cap.lines);
    /* SageMaker's shape: "[MM/DD/YYYY HH:MM:SS INFO tid] message" */
    ASSERT_TRUE(cap.last[0] == '[' && cap.last[3] == '/' && cap.last[6] == '/');
    ASSERT_CONTAINS(cap.last, " INFO ");
    ASSERT_CONTAINS(cap.last, "] #test_score (algo-1) : ('accuracy', 0.5)");
    KNN_LOG(KNN_LOG_WARN, KNN_LS_S3, "slow");
    ASSERT_CONTAINS(cap.last, "WARNING");
    ASSERT_CONTAINS(cap.last, "] s3: slow");
    knn_log_set_sink(NULL, NULL);
    knn_log_set_level(saved);
    return 0;
}

/* ---- knn_file_writer ---- */

#include "knn/common/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Number of entries in a folder, not counting . and .. */
static int s_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

int test_file_writer_commit_and_abort(void)
{
    char dir[512], path[600];
    uint8_t *data = NULL;
    size_t len = 0;
    struct knn_file_writer w;
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/out.bin", dir);

    /* Nothing appears at the target before commit; commit puts exactly the bytes there. */
    ASSERT_OK(knn_file_writer_open(&w, path));
    ASSERT_OK(knn_file_writer_write(&w, "hello ", 6));
    ASSERT_OK(knn_file_writer_write(&w, "world", 5));
    ASSERT_TRUE(access(path, F_OK) != 0);
    ASSERT_OK(knn_file_writer_commit(&w));
    ASSERT_OK(knn_test_read_file(path, &data, &len));
    ASSERT_MEM_EQ("hello world", 11, data, len);
    knn_free(data);
    ASSERT_INT_EQ(1, s_count_entries(dir));

    /* Abort leaves the old file untouched and no temporary file behind. */
    ASSERT_OK(knn_file_writer_open(&w, path));
    ASSERT_OK(knn_file_writer_write(&w, "partial", 7));
    knn_file_writer_abort(&w);
    knn_file_writer_abort(&w); /* twice is harmless */
    ASSERT_OK(knn_test_read_file(path, &data, &len));
    ASSERT_MEM_EQ("hello world", 11, data, len);
    knn_free(data);
    ASSERT_INT_EQ(1, s_count_entries(dir));

    /* A folder is refused; a missing folder is an error that leaves nothing. */
    ASSERT_ERR(KNN_EINVAL, knn_file_writer_open(&w, dir));
    snprintf(path, sizeof(path), "%s/missing/out.bin", dir);
    ASSERT_ERR(KNN_EIO, knn_file_writer_open(&w, path));
    ASSERT_INT_EQ(1, s_count_entries(dir));
    ASSERT_OK(knn_test_rmtree(dir));
    return 0;
}

int test_file_writer_writes_into_fifo(void)
{
    char dir[512], path[600], got[16] = {0};
    struct knn_file_writer w;
    struct stat st;
    ASSERT_OK(knn_test_mkdtemp(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/pipe", dir);
    ASSERT_TRUE(mkfifo(path, 0600) == 0);
    int reader = open(path, O_RDONLY | O_NONBLOCK);
    ASSERT_TRUE(reader >= 0);

    ASSERT_OK(knn_file_writer_open(&w, path));
    ASSERT_OK(knn_file_writer_write(&w, "rows", 4));
    ASSERT_OK(knn_file_writer_commit(&w));
    ASSERT_INT_EQ(4, read(reader, got, sizeof(got)));
    ASSERT_STR_EQ("rows", got);
    close(reader);
    /* Still a FIFO: written into, not replaced by a renamed regular file. */
    ASSERT_TRUE(stat(path, &st) == 0 && S_ISFIFO(st.st_mode));
    ASSERT_INT_EQ(1, s_count_entries(dir));
    ASSERT_OK(knn_test_rmtree(dir));
    return 0;
}
