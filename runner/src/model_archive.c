#include "model_archive.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/file.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define S_IO_CHUNK ((size_t)1 << 20)
#define S_MODEL_JSON "model_algo-1.json"
#define S_MODEL_JSON_MAX ((size_t)1 << 20)
#define S_MAX_EXPECT 8
/* Room left free on the disk when an archive declares no sizes (logs, the server's own files). */
#define S_DISK_RESERVE ((uint64_t)64 << 20)

/* A member model_algo-1.json declares: its size (-1: not declared) and SHA-256 ("": not declared). */
struct s_expect {
    char name[64];
    int64_t bytes;
    char sha[65];
    int seen;
};

/* ---- pack ---- */

int knn_archive_pack(const char *tar_path, const char *dir, const char *const *names, size_t nnames)
{
    return knn_archive_pack_level(tar_path, dir, names, nnames, -1);
}

int knn_archive_pack_level(const char *tar_path, const char *dir, const char *const *names, size_t nnames,
                           int gzip_level)
{
    char src[4096], level[2] = {(char)('0' + gzip_level), '\0'};
    struct knn_file_writer out;
    struct archive *a = NULL;
    struct archive_entry *e = NULL;
    uint8_t *chunk = NULL;
    int fd = -1, rc = 0;

    if (!(chunk = knn_malloc(S_IO_CHUNK)))
        return KNN_ENOMEM;
    if ((rc = knn_file_writer_open(&out, tar_path)) != 0) {
        knn_free(chunk);
        return rc;
    }
    a = archive_write_new();
    e = archive_entry_new();
    if (!a || !e) {
        rc = knn_error_set(KNN_ENOMEM, "%s: cannot create an archive writer", tar_path);
        goto on_error;
    }
    if (gzip_level > 9)
        gzip_level = -1;
    if (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        (gzip_level >= 0 && archive_write_set_filter_option(a, "gzip", "compression-level", level) != ARCHIVE_OK) ||
        archive_write_set_format_pax_restricted(a) != ARCHIVE_OK || archive_write_open_fd(a, out.fd) != ARCHIVE_OK) {
        rc = knn_error_set(KNN_EIO, "%s: %s", tar_path, archive_error_string(a));
        goto on_error;
    }
    for (size_t i = 0; i < nnames; i++) {
        struct stat st;
        const char *base = strrchr(names[i], '/') ? strrchr(names[i], '/') + 1 : names[i];
        if ((size_t)snprintf(src, sizeof(src), "%s/%s", dir, names[i]) >= sizeof(src)) {
            rc = knn_error_set(KNN_EINVAL, "%s/%s: path too long", dir, names[i]);
            goto on_error;
        }
        fd = open(src, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            rc = knn_error_set(fd < 0 && errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", src,
                               fd < 0 ? strerror(errno) : "not a regular file");
            goto on_error;
        }
        archive_entry_clear(e);
        archive_entry_set_pathname(e, base);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, st.st_size);
        archive_entry_set_mtime(e, st.st_mtime, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK) {
            rc = knn_error_set(KNN_EIO, "%s: member %s: %s", tar_path, base, archive_error_string(a));
            goto on_error;
        }
        for (;;) {
            ssize_t n = read(fd, chunk, S_IO_CHUNK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = knn_error_set(KNN_EIO, "%s: read: %s", src, strerror(errno));
                goto on_error;
            }
            if (n == 0)
                break;
            if (archive_write_data(a, chunk, (size_t)n) != n) {
                rc = knn_error_set(KNN_EIO, "%s: member %s: %s", tar_path, base, archive_error_string(a));
                goto on_error;
            }
        }
        close(fd);
        fd = -1;
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        rc = knn_error_set(KNN_EIO, "%s: %s", tar_path, archive_error_string(a));
        goto on_error;
    }
    if ((rc = knn_file_writer_commit(&out)) != 0)
        goto on_error;
    archive_entry_free(e);
    archive_write_free(a);
    knn_free(chunk);
    return 0;
on_error:
    if (fd >= 0)
        close(fd);
    if (e)
        archive_entry_free(e);
    if (a)
        archive_write_free(a);
    knn_file_writer_abort(&out);
    knn_free(chunk);
    return rc;
}

/* ---- unpack ---- */

/* What we wrote, to remove it again after a failure (children before parents: reverse order). */
struct s_written {
    char **paths;
    int *is_dir;
    size_t n, cap;
};

static int s_written_add(struct s_written *w, const char *path, int is_dir)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        char **p = knn_realloc_array(w->paths, cap, sizeof(*p));
        if (!p)
            return KNN_ENOMEM;
        w->paths = p;
        int *d = knn_realloc_array(w->is_dir, cap, sizeof(*d));
        if (!d)
            return KNN_ENOMEM;
        w->is_dir = d;
        w->cap = cap;
    }
    if (!(w->paths[w->n] = knn_strdup(path)))
        return KNN_ENOMEM;
    w->is_dir[w->n++] = is_dir;
    return 0;
}

static void s_written_clean_up(struct s_written *w, int dirfd, int remove)
{
    for (size_t i = w->n; i-- > 0;) {
        if (remove)
            unlinkat(dirfd, w->paths[i], w->is_dir[i] ? AT_REMOVEDIR : 0);
        knn_free(w->paths[i]);
    }
    knn_free(w->paths);
    knn_free(w->is_dir);
}

/*
 * Check a member name and normalize it into `out` (no leading "./", no trailing "/", no empty
 * or "." components). Refuses absolute names and "..".
 */
static int s_clean_name(char *out, size_t size, const char *name, const char *tar_path)
{
    size_t n = 0;
    if (!name || !*name)
        return knn_error_set(KNN_EFORMAT, "%s: a member has no name", tar_path);
    if (name[0] == '/')
        return knn_error_set(KNN_EFORMAT, "%s: member '%s': absolute names are refused", tar_path, name);
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return knn_error_set(KNN_EFORMAT, "%s: member '%s': '..' is refused", tar_path, name);
        if (len && !(len == 1 && p[0] == '.')) {
            if (n + len + 2 > size)
                return knn_error_set(KNN_EFORMAT, "%s: member '%.64s...': name too long", tar_path, name);
            if (n)
                out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p += len;
        if (*p == '/')
            p++;
    }
    out[n] = '\0';
    return 0;
}

/* Create the missing parent directories of `rel` under dirfd (each checked to be a real directory). */
static int s_make_parents(int dirfd, const char *rel, struct s_written *w, const char *tar_path)
{
    char path[4096];
    size_t len = strlen(rel);
    memcpy(path, rel, len + 1);
    for (size_t i = 0; i < len; i++) {
        if (path[i] != '/')
            continue;
        path[i] = '\0';
        struct stat st;
        if (mkdirat(dirfd, path, 0755) == 0) {
            int rc = s_written_add(w, path, 1);
            if (rc)
                return rc;
        } else if (errno != EEXIST || fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
            return knn_error_set(KNN_EFORMAT, "%s: member '%s': cannot create directory '%s'", tar_path, rel, path);
        }
        path[i] = '/';
    }
    return 0;
}

/* A reader of tar (gzip or not) on tar_path: 0 and *out, or the error (message set). */
static int s_reader_open(struct archive **out, const char *tar_path)
{
    struct archive *a = archive_read_new();
    *out = NULL;
    if (!a)
        return knn_error_set(KNN_ENOMEM, "%s: cannot create an archive reader", tar_path);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_none(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open_filename(a, tar_path, 64 << 10) != ARCHIVE_OK) {
        int code = archive_errno(a) == ENOENT ? KNN_ENOTFOUND : KNN_EFORMAT;
        int rc = knn_error_set(code, "%s: %s", tar_path, archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

static void s_hex(const unsigned char *md, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = 0;
}

/* Bytes free for us in dir's file system (UINT64_MAX if unknown). */
static uint64_t s_free_bytes(int dirfd)
{
    struct statvfs st;
    if (fstatvfs(dirfd, &st) != 0)
        return UINT64_MAX;
    return (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
}

static struct s_expect *s_expect_find(struct s_expect *ex, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ex[i].name, name) == 0)
            return &ex[i];
    return NULL;
}

/*
 * Unpack with the rules of model_archive.h. With declarations (n_ex > 0), every file member must be
 * declared, its header size must be the declared one before a byte is written, its SHA-256 is
 * computed while it is written and compared at its end, and the total is capped by the declared
 * sizes; without, each member must also fit in the disk's free space.
 */
static int s_unpack(const char *dir, const char *tar_path, const struct knn_archive_limits *limits,
                    struct s_expect *ex, size_t n_ex)
{
    struct knn_archive_limits lim = KNN_ARCHIVE_LIMITS_INIT;
    struct s_written written = {NULL, NULL, 0, 0};
    struct archive *a = NULL;
    struct archive_entry *e;
    EVP_MD_CTX *sha = NULL;
    uint8_t *chunk = NULL;
    uint64_t total = 0;
    size_t members = 0;
    int dirfd = -1, fd = -1, rc = 0, r;
    char name[4096];

    if (limits)
        lim = *limits;
    if (n_ex > 0) {
        uint64_t declared = 0;
        int all = 1;
        for (size_t i = 0; i < n_ex; i++) {
            if (ex[i].bytes < 0)
                all = 0;
            else
                declared += (uint64_t)ex[i].bytes;
        }
        if (all && declared < lim.max_total_bytes)
            lim.max_total_bytes = declared;
    }
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", dir, strerror(errno));
    if (!(chunk = knn_malloc(S_IO_CHUNK)) || !(sha = EVP_MD_CTX_new())) {
        rc = knn_error_set(KNN_ENOMEM, "%s: out of memory", tar_path);
        goto on_error;
    }
    if ((rc = s_reader_open(&a, tar_path)) != 0)
        goto on_error;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *raw = archive_entry_pathname(e);
        if (++members > lim.max_members) {
            rc = knn_error_set(KNN_ETOOBIG, "%s: more than %zu members", tar_path, lim.max_members);
            goto on_error;
        }
        rc = s_clean_name(name, sizeof(name), raw, tar_path);
        if (rc)
            goto on_error;
        mode_t type = archive_entry_filetype(e);
        if (archive_entry_hardlink(e) || archive_entry_symlink(e) || (type != AE_IFREG && type != AE_IFDIR)) {
            rc = knn_error_set(
                KNN_EFORMAT, "%s: member '%s': only regular files and directories are accepted (links and devices "
                             "are refused)", tar_path, raw);
            goto on_error;
        }
        if (!*name) /* "./" itself */
            continue;
        rc = s_make_parents(dirfd, name, &written, tar_path);
        if (rc)
            goto on_error;
        if (type == AE_IFDIR) {
            struct stat st;
            if (mkdirat(dirfd, name, 0755) == 0) {
                if ((rc = s_written_add(&written, name, 1)) != 0)
                    goto on_error;
            } else if (errno != EEXIST || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
                rc = knn_error_set(KNN_EFORMAT, "%s: member '%s': cannot create directory", tar_path, raw);
                goto on_error;
            }
            continue;
        }
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        struct s_expect *want = n_ex ? s_expect_find(ex, n_ex, name) : NULL;
        if (n_ex && !want) {
            rc = knn_error_set(KNN_EFORMAT, "%s: member '%s' is not one of the files %s declares", tar_path, raw,
                               S_MODEL_JSON);
            goto on_error;
        }
        if (want && want->bytes >= 0 && size != want->bytes) {
            rc = knn_error_set(KNN_EFORMAT, "%s: member '%s': %lld bytes, but %s declares %lld (refused before "
                               "writing it)", tar_path, raw, (long long)size, S_MODEL_JSON, (long long)want->bytes);
            goto on_error;
        }
        if (size < 0 || (uint64_t)size > lim.max_member_bytes || (uint64_t)size > lim.max_total_bytes - total) {
            rc = knn_error_set(
                KNN_ETOOBIG, "%s: member '%s': %lld bytes is over the cap (%llu per file, %llu in all)", tar_path, raw,
                (long long)size, (unsigned long long)lim.max_member_bytes, (unsigned long long)lim.max_total_bytes);
            goto on_error;
        }
        uint64_t room = n_ex ? UINT64_MAX : s_free_bytes(dirfd);
        if (room != UINT64_MAX && (uint64_t)size + S_DISK_RESERVE > room) {
            rc = knn_error_set(KNN_ETOOBIG, "%s: member '%s': %lld bytes would not fit in the %llu bytes free in %s "
                               "(with %llu MiB kept free)", tar_path, raw, (long long)size, (unsigned long long)room,
                               dir, (unsigned long long)(S_DISK_RESERVE >> 20));
            goto on_error;
        }
        if (want)
            want->seen = 1;
        if (want && want->sha[0] && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
            rc = knn_error_set(KNN_ENOMEM, "%s: SHA-256: cannot start a digest", tar_path);
            goto on_error;
        }
        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = knn_error_set(errno == EEXIST ? KNN_EEXISTS : KNN_EIO, "%s: member '%s': %s", tar_path, raw,
                               errno == EEXIST ? "a file of that name exists already (duplicate member?)"
                                               : strerror(errno));
            goto on_error;
        }
        if ((rc = s_written_add(&written, name, 0)) != 0)
            goto on_error;
        uint64_t got = 0;
        for (;;) {
            la_ssize_t n = archive_read_data(a, chunk, S_IO_CHUNK);
            if (n == 0)
                break;
            if (n < 0) {
                rc = knn_error_set(KNN_EFORMAT, "%s: member '%s' at byte %llu: %s", tar_path, raw,
                                   (unsigned long long)got, archive_error_string(a));
                goto on_error;
            }
            got += (uint64_t)n;
            if (got > (uint64_t)size) {
                rc = knn_error_set(KNN_EFORMAT, "%s: member '%s': more data than its header says", tar_path, raw);
                goto on_error;
            }
            if (want && want->sha[0])
                EVP_DigestUpdate(sha, chunk, (size_t)n);
            for (la_ssize_t off = 0; off < n;) {
                ssize_t w = write(fd, chunk + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0) {
                    rc = knn_error_set(KNN_EIO, "%s/%s: write: %s", dir, name, strerror(errno));
                    goto on_error;
                }
                off += w;
            }
        }
        total += got;
        if (want && want->sha[0]) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int mdlen = 0;
            char hex[65];
            EVP_DigestFinal_ex(sha, md, &mdlen);
            s_hex(md, hex);
            if (strcmp(hex, want->sha) != 0) {
                rc = knn_error_set(KNN_ECHECKSUM, "%s: member '%s': SHA-256 %s, but %s declares %s (the archive is "
                                   "corrupt or was altered)", tar_path, raw, hex, S_MODEL_JSON, want->sha);
                goto on_error;
            }
        }
        if (close(fd) != 0) {
            fd = -1;
            rc = knn_error_set(KNN_EIO, "%s/%s: close: %s", dir, name, strerror(errno));
            goto on_error;
        }
        fd = -1;
    }
    if (r != ARCHIVE_EOF) {
        rc = knn_error_set(KNN_EFORMAT, "%s: after %zu members: %s", tar_path, members, archive_error_string(a));
        goto on_error;
    }
    for (size_t i = 0; i < n_ex; i++) {
        if (!ex[i].seen) {
            rc = knn_error_set(KNN_EFORMAT, "%s: no member '%s', which %s declares", tar_path, ex[i].name,
                               S_MODEL_JSON);
            goto on_error;
        }
    }
    archive_read_free(a);
    s_written_clean_up(&written, dirfd, 0);
    close(dirfd);
    knn_free(chunk);
    EVP_MD_CTX_free(sha);
    return 0;
on_error:
    if (fd >= 0)
        close(fd);
    if (a)
        archive_read_free(a);
    s_written_clean_up(&written, dirfd, 1);
    close(dirfd);
    knn_free(chunk);
    EVP_MD_CTX_free(sha);
    return rc;
}

int knn_archive_unpack(const char *dir, const char *tar_path, const struct knn_archive_limits *limits)
{
    return s_unpack(dir, tar_path, limits, NULL, 0);
}

/* ---- model archives: what model_algo-1.json declares ---- */

/*
 * Pass 1: the bytes of the top-level model_algo-1.json (at most 1 MiB), reading the archive without
 * writing anything; *json NULL if there is none.
 */
static int s_read_json(uint8_t **json, size_t *len, const char *tar_path, const struct knn_archive_limits *lim)
{
    struct archive *a;
    struct archive_entry *e;
    size_t members = 0;
    char name[4096];
    int r, rc = s_reader_open(&a, tar_path);
    *json = NULL;
    *len = 0;
    if (rc)
        return rc;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if (++members > lim->max_members) {
            rc = knn_error_set(KNN_ETOOBIG, "%s: more than %zu members", tar_path, lim->max_members);
            goto done;
        }
        if ((rc = s_clean_name(name, sizeof(name), archive_entry_pathname(e), tar_path)) != 0)
            goto done;
        if (strcmp(name, S_MODEL_JSON) != 0 || archive_entry_filetype(e) != AE_IFREG)
            continue; /* its data is skipped by the next header read */
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        if (size < 0 || (uint64_t)size > S_MODEL_JSON_MAX) {
            rc = knn_error_set(KNN_ETOOBIG, "%s: member '%s': %lld bytes, more than the %zu it may have", tar_path,
                               S_MODEL_JSON, (long long)size, S_MODEL_JSON_MAX);
            goto done;
        }
        if (!(*json = knn_malloc((size_t)size + 1))) {
            rc = KNN_ENOMEM;
            goto done;
        }
        while (*len < (size_t)size) {
            la_ssize_t n = archive_read_data(a, *json + *len, (size_t)size - *len);
            if (n <= 0) {
                rc = knn_error_set(KNN_EFORMAT, "%s: member '%s' at byte %zu: %s", tar_path, S_MODEL_JSON, *len,
                                   n < 0 ? archive_error_string(a) : "truncated");
                goto done;
            }
            *len += (size_t)n;
        }
        goto done;
    }
    if (r != ARCHIVE_EOF)
        rc = knn_error_set(KNN_EFORMAT, "%s: after %zu members: %s", tar_path, members, archive_error_string(a));
done:
    archive_read_free(a);
    if (rc) {
        knn_free(*json);
        *json = NULL;
        *len = 0;
    }
    return rc;
}

/* The members model_algo-1.json declares ("sha256" and "bytes" objects), and itself; *n 0 if none. */
static int s_declared(struct s_expect *ex, size_t *n, const uint8_t *text, size_t len, const char *tar_path)
{
    json_error_t err;
    *n = 0;
    json_t *j = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        return knn_error_set(KNN_EFORMAT, "%s: member '%s': line %d, column %d: %s", tar_path, S_MODEL_JSON,
                             err.line, err.column, err.text);
    json_t *sums = json_object_get(j, "sha256"), *bytes = json_object_get(j, "bytes"), *v;
    const char *key;
    int rc = 0;
    if (!json_is_object(sums))
        goto done; /* a model without checksums (SageMaker's own): nothing declared */
    json_object_foreach(sums, key, v) {
        const char *hex = json_string_value(v);
        if (*n == S_MAX_EXPECT - 1 || strlen(key) >= sizeof(ex->name) || strchr(key, '/') || !hex ||
            strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64) {
            rc = knn_error_set(KNN_EFORMAT, "%s: member '%s': \"sha256\".\"%.64s\": expected a file name and 64 "
                               "lowercase hex digits", tar_path, S_MODEL_JSON, key);
            goto done;
        }
        struct s_expect *x = &ex[(*n)++];
        snprintf(x->name, sizeof(x->name), "%s", key);
        snprintf(x->sha, sizeof(x->sha), "%s", hex);
        x->bytes = -1;
        x->seen = 0;
        json_t *b = json_is_object(bytes) ? json_object_get(bytes, key) : NULL;
        if (b && (!json_is_integer(b) || json_integer_value(b) < 0)) {
            rc = knn_error_set(KNN_EFORMAT, "%s: member '%s': \"bytes\".\"%s\": expected a size", tar_path,
                               S_MODEL_JSON, key);
            goto done;
        }
        if (b)
            x->bytes = (int64_t)json_integer_value(b);
    }
    /* The JSON itself: the same bytes in the second pass. */
    struct s_expect *self = &ex[(*n)++];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    snprintf(self->name, sizeof(self->name), "%s", S_MODEL_JSON);
    self->bytes = (int64_t)len;
    self->seen = 0;
    if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        rc = knn_error_set(KNN_ENOMEM, "%s: SHA-256 failed", tar_path);
        goto done;
    }
    s_hex(md, self->sha);
done:
    json_decref(j);
    if (rc)
        *n = 0;
    return rc;
}

int knn_model_archive_unpack(const char *dir, const char *tar_path, const struct knn_archive_limits *limits)
{
    struct knn_archive_limits lim = KNN_ARCHIVE_LIMITS_INIT;
    struct s_expect ex[S_MAX_EXPECT];
    uint8_t *json = NULL;
    size_t len = 0, n = 0;
    if (limits)
        lim = *limits;
    int rc = s_read_json(&json, &len, tar_path, &lim);
    if (rc == 0 && json)
        rc = s_declared(ex, &n, json, len, tar_path);
    knn_free(json);
    if (rc == 0)
        rc = s_unpack(dir, tar_path, &lim, ex, n);
    return rc;
}
