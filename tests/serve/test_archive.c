/* model.tar.gz pack and safe unpack (runner/src/model_archive.c). Hostile archives are written
 * with libarchive's own writer; the packed archive is listed with tar(1), an independent reader. */
#include "knn_test.h"

#include "model_archive.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int s_write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    return 0;
}

static size_t s_count_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

int test_archive_round_trip(void)
{
    char tmp[512], src[600], dst[600], tar[600], path[700], cmd[1400];
    ASSERT_OK(knn_test_mkdtemp(tmp, sizeof(tmp)));
    snprintf(src, sizeof(src), "%s/src", tmp);
    snprintf(dst, sizeof(dst), "%s/dst", tmp);
    snprintf(tar, sizeof(tar), "%s/model.tar.gz", tmp);
    mkdir(src, 0755);
    mkdir(dst, 0755);
    ASSERT_OK(s_write_file(src, "model_algo-1", "index bytes\n"));
    ASSERT_OK(s_write_file(src, "model_algo-1.json", "{\"k\": 5}"));
    const char *names[] = {"model_algo-1", "model_algo-1.json"};
    ASSERT_OK(knn_archive_pack(tar, src, names, 2));
    snprintf(path, sizeof(path), "%s.tmp", tar);
    ASSERT_TRUE(access(path, F_OK) != 0);

    /* tar(1) sees two top-level members. */
    snprintf(cmd, sizeof(cmd), "tar -tzf '%s'", tar);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    char listing[256] = "";
    size_t got = fread(listing, 1, sizeof(listing) - 1, p);
    listing[got] = '\0';
    ASSERT_INT_EQ(0, pclose(p));
    ASSERT_STR_EQ("model_algo-1\nmodel_algo-1.json\n", listing);

    ASSERT_OK(knn_archive_unpack(dst, tar, NULL));
    uint8_t *data;
    size_t len;
    snprintf(path, sizeof(path), "%s/model_algo-1.json", dst);
    ASSERT_OK(knn_test_read_file(path, &data, &len));
    ASSERT_MEM_EQ("{\"k\": 5}", 8, data, len);
    knn_free(data);
    /* Unpacking again over the same files is refused (never overwrite). */
    char dst2[700];
    snprintf(dst2, sizeof(dst2), "%s", dst);
    ASSERT_ERR(KNN_EEXISTS, knn_archive_unpack(dst2, tar, NULL));
    ASSERT_UINT_EQ(2, s_count_entries(dst));
    /* A missing source file fails the pack and leaves nothing. */
    const char *missing[] = {"model_algo-1", "nope"};
    snprintf(path, sizeof(path), "%s/other.tar.gz", tmp);
    ASSERT_ERR(KNN_ENOTFOUND, knn_archive_pack(path, src, missing, 2));
    ASSERT_TRUE(access(path, F_OK) != 0);
    knn_test_rmtree(tmp);
    return 0;
}

enum s_evil { S_ABSOLUTE, S_DOTDOT, S_SYMLINK, S_HARDLINK, S_FIFO, S_DUPLICATE, S_NESTED_OK };

/* An archive with one good file first, then the hostile member. */
static int s_make_evil(const char *path, enum s_evil kind)
{
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK)
        return -1;
    const char *good = "good bytes";
    archive_entry_set_pathname(e, "model_algo-1");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(good));
    archive_write_header(a, e);
    archive_write_data(a, good, strlen(good));
    archive_entry_clear(e);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, 4);
    switch (kind) {
    case S_ABSOLUTE: archive_entry_set_pathname(e, "/tmp/knn-evil"); break;
    case S_DOTDOT: archive_entry_set_pathname(e, "sub/../../escape"); break;
    case S_SYMLINK:
        archive_entry_set_pathname(e, "link");
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, "/etc/passwd");
        archive_entry_set_size(e, 0);
        break;
    case S_HARDLINK:
        archive_entry_set_pathname(e, "hard");
        archive_entry_set_hardlink(e, "model_algo-1");
        archive_entry_set_size(e, 0);
        break;
    case S_FIFO:
        archive_entry_set_pathname(e, "fifo");
        archive_entry_set_filetype(e, AE_IFIFO);
        archive_entry_set_size(e, 0);
        break;
    case S_DUPLICATE: archive_entry_set_pathname(e, "./model_algo-1"); break;
    case S_NESTED_OK: archive_entry_set_pathname(e, "./dir/inner.bin"); break;
    }
    archive_write_header(a, e);
    if (archive_entry_size(e) > 0)
        archive_write_data(a, "abcd", 4);
    archive_write_close(a);
    archive_write_free(a);
    archive_entry_free(e);
    return 0;
}

int test_archive_refuses_hostile_members(void)
{
    static const struct {
        enum s_evil kind;
        int code;
    } cases[] = {
        {S_ABSOLUTE, KNN_EFORMAT}, {S_DOTDOT, KNN_EFORMAT},  {S_SYMLINK, KNN_EFORMAT},
        {S_HARDLINK, KNN_EFORMAT}, {S_FIFO, KNN_EFORMAT},    {S_DUPLICATE, KNN_EEXISTS},
    };
    char tmp[512], dst[600], tar[600];
    ASSERT_OK(knn_test_mkdtemp(tmp, sizeof(tmp)));
    snprintf(tar, sizeof(tar), "%s/evil.tar.gz", tmp);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(dst, sizeof(dst), "%s/dst%zu", tmp, i);
        mkdir(dst, 0755);
        ASSERT_INT_EQ(0, s_make_evil(tar, cases[i].kind));
        ASSERT_ERR(cases[i].code, knn_archive_unpack(dst, tar, NULL));
        ASSERT_UINT_EQ(0, s_count_entries(dst)); /* the good file written first is removed again */
    }
    ASSERT_TRUE(access("/tmp/knn-evil", F_OK) != 0);
    /* Nested directories inside the target are fine. */
    snprintf(dst, sizeof(dst), "%s/nested", tmp);
    mkdir(dst, 0755);
    ASSERT_INT_EQ(0, s_make_evil(tar, S_NESTED_OK));
    ASSERT_OK(knn_archive_unpack(dst, tar, NULL));
    char path[700];
    snprintf(path, sizeof(path), "%s/dir/inner.bin", dst);
    ASSERT_TRUE(access(path, F_OK) == 0);
    knn_test_rmtree(tmp);
    return 0;
}

int test_archive_caps_and_garbage(void)
{
    char tmp[512], src[600], dst[600], tar[600];
    ASSERT_OK(knn_test_mkdtemp(tmp, sizeof(tmp)));
    snprintf(src, sizeof(src), "%s/src", tmp);
    snprintf(dst, sizeof(dst), "%s/dst", tmp);
    snprintf(tar, sizeof(tar), "%s/m.tar.gz", tmp);
    mkdir(src, 0755);
    mkdir(dst, 0755);
    ASSERT_OK(s_write_file(src, "a", "0123456789"));
    ASSERT_OK(s_write_file(src, "b", "0123456789"));
    const char *names[] = {"a", "b"};
    ASSERT_OK(knn_archive_pack(tar, src, names, 2));

    struct knn_archive_limits lim = KNN_ARCHIVE_LIMITS_INIT;
    lim.max_members = 1;
    ASSERT_ERR(KNN_ETOOBIG, knn_archive_unpack(dst, tar, &lim));
    ASSERT_UINT_EQ(0, s_count_entries(dst));
    lim.max_members = 10;
    lim.max_member_bytes = 9;
    ASSERT_ERR(KNN_ETOOBIG, knn_archive_unpack(dst, tar, &lim));
    lim.max_member_bytes = 100;
    lim.max_total_bytes = 15;
    ASSERT_ERR(KNN_ETOOBIG, knn_archive_unpack(dst, tar, &lim));
    ASSERT_CONTAINS(knn_error_message(), "'b'");
    ASSERT_UINT_EQ(0, s_count_entries(dst));

    /* Truncated gzip: every byte but the last 30. */
    uint8_t *data;
    size_t len;
    ASSERT_OK(knn_test_read_file(tar, &data, &len));
    FILE *f = fopen(tar, "wb");
    fwrite(data, 1, len - 30, f);
    fclose(f);
    ASSERT_ERR(KNN_EFORMAT, knn_archive_unpack(dst, tar, NULL));
    ASSERT_UINT_EQ(0, s_count_entries(dst));
    /* Not an archive at all. */
    f = fopen(tar, "wb");
    fwrite("this is not a tar file, not even close to one.....", 1, 50, f);
    fclose(f);
    ASSERT_ERR(KNN_EFORMAT, knn_archive_unpack(dst, tar, NULL));
    knn_free(data);
    ASSERT_ERR(KNN_ENOTFOUND, knn_archive_unpack(dst, "/nonexistent/m.tar.gz", NULL));
    knn_test_rmtree(tmp);
    return 0;
}
