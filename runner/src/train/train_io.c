/* A training job's data in (channel listing, ordered streaming) and artifacts out, over S3 or local files. */
#include "train/train_io.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/common/file.h"
#include "knn/common/log.h"
#include "knn/s3/client.h"
#include "knn/s3/reader.h"
#include "knn/s3/uri.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* A data manifest (S3DataType=ManifestFile) is a small JSON document. */
#define S_DATA_MANIFEST_MAX_BYTES ((size_t)16 << 20)
#define S_LOCAL_CHUNK ((size_t)1 << 20)

int knn_train_uri_is_s3(const char *uri)
{
    return knn_s3_uri_is_s3(uri);
}

static int s_need_s3(struct knn_s3_client *s3, const char *uri)
{
    if (!s3)
        return knn_error_set(KNN_EINVAL, "%s: no S3 client for an s3:// location", uri);
    return 0;
}

/* The local path of a file:// URI or a plain (container) path. */
static const char *s_local_path(const char *uri)
{
    const char *p = knn_file_uri_path(uri);
    return p ? p : uri;
}

/* ---- listing ---- */

struct s_list_ctx {
    struct knn_object_list *out;
    const char *bucket;
    struct knn_buf uri;
};

static int s_on_list_entry(void *user, const struct knn_s3_list_entry *entry)
{
    struct s_list_ctx *ctx = user;
    const struct knn_s3_object_info *info = entry->info;
    if (!info)
        return 0;
    size_t klen = strlen(info->key);
    if (klen == 0 || info->key[klen - 1] == '/')
        return 0; /* a "folder/" marker, not data */
    knn_buf_reset(&ctx->uri);
    int rc = knn_buf_printf(&ctx->uri, "s3://%s/%s", ctx->bucket, info->key);
    if (rc == 0)
        rc = knn_object_list_add_etag(ctx->out, (char *)ctx->uri.data, info->size, info->etag);
    return rc;
}

static int s_list_s3_prefix(struct knn_object_list *out, const char *uri, struct knn_s3_client *s3)
{
    struct knn_s3_uri u = {0};
    int rc;
    if ((rc = s_need_s3(s3, uri)) < 0)
        return rc;
    if ((rc = knn_s3_uri_parse(&u, uri)) < 0)
        goto done;
    struct s_list_ctx ctx = {out, u.bucket, KNN_BUF_INIT(64 * 1024)};
    rc = knn_s3_list_each(s3, u.bucket, u.key, NULL, s_on_list_entry, &ctx);
    knn_buf_clean_up(&ctx.uri);
done:
    knn_s3_uri_clean_up(&u);
    return rc;
}

static int s_collect(void *user, const uint8_t *data, size_t len)
{
    return knn_buf_append(user, data, len);
}

/* Read a small object or file whole (capped). */
static int s_read_small(struct knn_buf *out, const char *uri, struct knn_s3_client *s3)
{
    int rc;
    if (knn_train_uri_is_s3(uri)) {
        struct knn_s3_uri u = {0};
        struct knn_s3_get_options opts = KNN_S3_GET_OPTIONS_INIT;
        if ((rc = s_need_s3(s3, uri)) < 0)
            return rc;
        if ((rc = knn_s3_uri_parse(&u, uri)) == 0)
            rc = knn_s3_get(NULL, s3, u.bucket, u.key, &opts, s_collect, out);
        knn_s3_uri_clean_up(&u);
    } else {
        const char *path = s_local_path(uri);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", path, strerror(errno));
        rc = 0;
        char buf[65536];
        for (;;) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = knn_error_set(KNN_EIO, "%s: read failed: %s", path, strerror(errno));
                break;
            }
            if (n == 0 || (rc = knn_buf_append(out, buf, (size_t)n)) < 0)
                break;
        }
        close(fd);
    }
    if (rc == KNN_ETOOBIG)
        knn_error_set(rc, "%s: larger than %zu bytes", uri, out->max);
    return rc;
}

static int s_list_manifest(struct knn_object_list *out, const char *uri, struct knn_s3_client *s3)
{
    struct knn_buf text = KNN_BUF_INIT(S_DATA_MANIFEST_MAX_BYTES);
    char **uris = NULL;
    size_t n = 0;
    int rc;

    if ((rc = s_read_small(&text, uri, s3)) < 0) {
        rc = knn_error_wrap(rc, "manifest file");
        goto done;
    }
    if ((rc = knn_job_parse_data_manifest(&uris, &n, text.data ? (char *)text.data : "", text.len, uri)) < 0)
        goto done;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (knn_train_uri_is_s3(uris[i])) {
            struct knn_s3_uri u = {0};
            struct knn_s3_object_info info = {0};
            if ((rc = s_need_s3(s3, uris[i])) == 0 && (rc = knn_s3_uri_parse(&u, uris[i])) == 0 &&
                (rc = knn_s3_head(&info, s3, u.bucket, u.key)) == 0)
                rc = knn_object_list_add_etag(out, uris[i], info.size, info.etag);
            knn_s3_object_info_clean_up(&info);
            knn_s3_uri_clean_up(&u);
        } else {
            struct stat st;
            const char *path = s_local_path(uris[i]);
            if (stat(path, &st) != 0)
                rc = knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", path, strerror(errno));
            else
                rc = knn_object_list_add(out, path, (uint64_t)st.st_size);
        }
        if (rc < 0)
            rc = knn_error_wrap(rc, "manifest %s, entry %zu", uri, i + 1);
    }
done:
    knn_job_free_strings(uris, n);
    knn_buf_clean_up(&text);
    return rc;
}

int knn_train_list_channel(struct knn_object_list *out, const struct knn_job_channel *channel, struct knn_s3_client *s3)
{
    int rc;
    if (channel->manifest_file)
        rc = s_list_manifest(out, channel->uri, s3);
    else if (knn_train_uri_is_s3(channel->uri))
        rc = s_list_s3_prefix(out, channel->uri, s3);
    else
        rc = knn_channel_list_local(out, s_local_path(channel->uri));
    if (rc < 0)
        return knn_error_wrap(rc, "channel '%s'", channel->name);
    if (out->count == 0)
        return knn_error_set(KNN_ENOTFOUND, "channel '%s': no objects under %s", channel->name, channel->uri);
    return 0;
}

/* ---- streaming ---- */

struct s_s3_stream {
    knn_train_chunk_fn *fn;
    void *user;
    size_t base; /* index of the run's first object in the caller's array */
    const struct knn_object *const *objects;
};

static int s_on_chunk(void *user, const struct knn_s3_chunk *chunk)
{
    struct s_s3_stream *st = user;
    int flags = ((chunk->flags & KNN_S3_CHUNK_FIRST) ? KNN_TRAIN_CHUNK_FIRST : 0) |
                ((chunk->flags & KNN_S3_CHUNK_LAST) ? KNN_TRAIN_CHUNK_LAST : 0);
    return st->fn(st->user, st->base + chunk->object_index, chunk->data, chunk->len, flags);
}

static int s_stream_s3(const struct knn_object *const *objects, size_t begin, size_t end, struct knn_s3_client *s3,
                       const struct knn_train_stream_options *opts, knn_train_chunk_fn *fn, void *user)
{
    struct knn_s3_reader_options ro = KNN_S3_READER_OPTIONS_INIT;
    struct knn_s3_reader *reader = NULL;
    int rc;

    if ((rc = s_need_s3(s3, objects[begin]->uri)) < 0)
        return rc;
    ro.part_size = opts->part_size;
    ro.max_in_flight = opts->max_in_flight;
    if ((rc = knn_s3_reader_new(&reader, s3, &ro)) < 0)
        return rc;
    for (size_t i = begin; i < end && rc == 0; i++) {
        struct knn_s3_uri u = {0};
        if ((rc = knn_s3_uri_parse(&u, objects[i]->uri)) == 0) {
            if (objects[i]->etag && objects[i]->size != KNN_OBJECT_SIZE_UNKNOWN) {
                struct knn_s3_object_info info = {u.key, objects[i]->size, objects[i]->etag, 0};
                rc = knn_s3_reader_add(reader, u.bucket, &info);
            } else {
                rc = knn_s3_reader_add_key(reader, u.bucket, u.key);
            }
        }
        knn_s3_uri_clean_up(&u);
    }
    if (rc == 0) {
        struct s_s3_stream st = {fn, user, begin, objects};
        rc = knn_s3_reader_run(reader, s_on_chunk, &st);
    }
    knn_s3_reader_destroy(reader);
    return rc;
}

static int s_stream_local(const struct knn_object *object, size_t index, uint8_t *buf, knn_train_chunk_fn *fn,
                          void *user)
{
    const char *path = s_local_path(object->uri);
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0, flags = KNN_TRAIN_CHUNK_FIRST;
    if (fd < 0)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", path, strerror(errno));
    for (;;) {
        ssize_t n = read(fd, buf, S_LOCAL_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = knn_error_set(KNN_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            rc = fn(user, index, buf, 0, flags | KNN_TRAIN_CHUNK_LAST);
            break;
        }
        if ((rc = fn(user, index, buf, (size_t)n, flags)) != 0)
            break;
        flags = 0;
    }
    close(fd);
    return rc;
}

/* ---- gzip: inflate each object between the reader and the caller's callback ---- */

#define S_GZ_OUT ((size_t)256 << 10)

struct s_gunzip {
    knn_train_chunk_fn *fn;
    void *user;
    const struct knn_object *const *objects;
    z_stream z;
    uint8_t *out;
    uint64_t in_offset; /* compressed bytes of the current object consumed so far */
    int first;          /* the next delivered chunk starts its object */
    int ended;          /* the last member seen ended (Z_STREAM_END) */
};

static int s_gz_error(struct s_gunzip *g, size_t index, const char *what)
{
    return knn_error_set(KNN_EFORMAT, "%s: gzip (CompressionType Gzip): %s at compressed byte %llu%s%s",
                         g->objects[index]->uri, what, (unsigned long long)g->in_offset, g->z.msg ? ": " : "",
                         g->z.msg ? g->z.msg : "");
}

/* One inflate call into the output buffer, and what it produced to the callback. */
static int s_gz_step(struct s_gunzip *g, size_t index)
{
    uInt before = g->z.avail_in;
    g->z.next_out = g->out;
    g->z.avail_out = (uInt)S_GZ_OUT;
    int zr = inflate(&g->z, Z_NO_FLUSH);
    g->in_offset += before - g->z.avail_in;
    if (zr == Z_STREAM_END)
        g->ended = 1;
    else if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR)
        return s_gz_error(g, index, g->in_offset < 10 && g->first ? "not gzip data" : "corrupt data");
    else if (zr == Z_MEM_ERROR)
        return knn_error_set(KNN_ENOMEM, "%s: inflate: out of memory", g->objects[index]->uri);
    else if (zr != Z_OK && zr != Z_BUF_ERROR)
        return s_gz_error(g, index, "inflate failed");
    size_t produced = S_GZ_OUT - g->z.avail_out;
    if (!produced)
        return 0;
    int rc = g->fn(g->user, index, g->out, produced, g->first ? KNN_TRAIN_CHUNK_FIRST : 0);
    g->first = 0;
    return rc;
}

static int s_gz_chunk(void *user, size_t index, const uint8_t *data, size_t len, int flags)
{
    struct s_gunzip *g = user;
    int rc;
    if (flags & KNN_TRAIN_CHUNK_FIRST) {
        if (inflateReset2(&g->z, 16 + MAX_WBITS) != Z_OK)
            return knn_error_set(KNN_EINTERNAL, "inflateReset2 failed");
        g->in_offset = 0;
        g->first = 1;
        g->ended = 0;
    }
    g->z.next_in = (Bytef *)data;
    g->z.avail_in = (uInt)len;
    g->z.avail_out = 1; /* nothing pending yet */
    while (g->z.avail_in > 0) {
        if (g->ended) { /* another gzip member follows (as `cat a.gz b.gz`); gunzip reads them all */
            if (inflateReset2(&g->z, 16 + MAX_WBITS) != Z_OK)
                return knn_error_set(KNN_EINTERNAL, "inflateReset2 failed");
            g->ended = 0;
        }
        if ((rc = s_gz_step(g, index)) != 0)
            return rc;
    }
    /* The input is used up; a full output buffer means inflate may hold more: drain it. */
    while (!g->ended && g->z.avail_out == 0) {
        if ((rc = s_gz_step(g, index)) != 0)
            return rc;
    }
    if (flags & KNN_TRAIN_CHUNK_LAST) {
        if (!g->ended)
            return s_gz_error(g, index, g->in_offset == 0 ? "an empty object is not gzip data" : "cut short");
        return g->fn(g->user, index, g->out, 0, (g->first ? KNN_TRAIN_CHUNK_FIRST : 0) | KNN_TRAIN_CHUNK_LAST);
    }
    return 0;
}

static int s_stream_plain(const struct knn_object *const *objects, size_t n, struct knn_s3_client *s3,
                          const struct knn_train_stream_options *opts, knn_train_chunk_fn *fn, void *user);

int knn_train_stream_objects(
    const struct knn_object *const *objects, size_t n, struct knn_s3_client *s3,
    const struct knn_train_stream_options *opts, knn_train_chunk_fn *fn, void *user)
{
    if (!opts || !opts->gzip)
        return s_stream_plain(objects, n, s3, opts, fn, user);
    struct s_gunzip g;
    memset(&g, 0, sizeof(g));
    g.fn = fn;
    g.user = user;
    g.objects = objects;
    if (!(g.out = knn_malloc(S_GZ_OUT)))
        return KNN_ENOMEM;
    if (inflateInit2(&g.z, 16 + MAX_WBITS) != Z_OK) {
        knn_free(g.out);
        return knn_error_set(KNN_ENOMEM, "inflateInit2 failed");
    }
    int rc = s_stream_plain(objects, n, s3, opts, s_gz_chunk, &g);
    inflateEnd(&g.z);
    knn_free(g.out);
    return rc;
}

static int s_stream_plain(const struct knn_object *const *objects, size_t n, struct knn_s3_client *s3,
                          const struct knn_train_stream_options *opts, knn_train_chunk_fn *fn, void *user)
{
    struct knn_train_stream_options defaults = KNN_TRAIN_STREAM_OPTIONS_INIT;
    uint8_t *buf = NULL;
    int rc = 0;
    if (!opts)
        opts = &defaults;
    for (size_t i = 0; i < n && rc == 0;) {
        if (knn_train_uri_is_s3(objects[i]->uri)) {
            size_t j = i;
            while (j < n && knn_train_uri_is_s3(objects[j]->uri))
                j++;
            rc = s_stream_s3(objects, i, j, s3, opts, fn, user);
            i = j;
        } else {
            if (!buf && !(buf = knn_malloc(S_LOCAL_CHUNK))) {
                rc = KNN_ENOMEM;
                break;
            }
            rc = s_stream_local(objects[i], i, buf, fn, user);
            i++;
        }
    }
    knn_free(buf);
    return rc;
}

/* ---- output ---- */

int knn_train_make_parent_dirs(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len >= sizeof(tmp))
        return knn_error_set(KNN_EINVAL, "%s: path too long", path);
    memcpy(tmp, path, len + 1);
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp)
        return 0;
    *slash = '\0';
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return knn_error_set(KNN_EIO, "%s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return knn_error_set(KNN_EIO, "%s: %s", tmp, strerror(errno));
    return 0;
}

/* Stops a listing at its first entry: one page is enough to know the bucket is there. */
static int s_stop_listing(void *user, const struct knn_s3_list_entry *entry)
{
    return 1;
}

/*
 * A HEAD of a missing object is a bodiless 404 whether the key or the whole bucket is missing. List
 * the key's own prefix (one short page) so a missing bucket fails the job now, not after training.
 * A listing we may not do (AccessDenied) proves nothing either way: writing may still be allowed.
 */
static int s_check_bucket(struct knn_s3_client *s3, const struct knn_s3_uri *u)
{
    int rc = knn_s3_list_each(s3, u->bucket, u->key, NULL, s_stop_listing, NULL);
    if (rc == 1 || rc == 0)
        return 0;
    if (rc == KNN_ES3_ACCESS_DENIED) {
        KNN_LOG(KNN_LOG_WARN, KNN_LS_JOB, "cannot list s3://%s/%s to check the output bucket (access denied); going on",
                u->bucket, u->key);
        knn_error_clear();
        return 0;
    }
    if (rc == KNN_ES3_NO_SUCH_BUCKET)
        return knn_error_set(rc, "the output bucket '%s' does not exist", u->bucket);
    return rc;
}

int knn_train_output_exists(int *exists, const char *uri, struct knn_s3_client *s3)
{
    int rc;
    *exists = 0;
    if (knn_train_uri_is_s3(uri)) {
        struct knn_s3_uri u = {0};
        if ((rc = s_need_s3(s3, uri)) < 0)
            return rc;
        if ((rc = knn_s3_uri_parse(&u, uri)) == 0)
            rc = knn_s3_exists(exists, s3, u.bucket, u.key);
        if (rc == 0 && !*exists)
            rc = s_check_bucket(s3, &u);
        knn_s3_uri_clean_up(&u);
        return rc;
    }
    struct stat st;
    if (stat(s_local_path(uri), &st) == 0)
        *exists = 1;
    else if (errno != ENOENT && errno != ENOTDIR)
        return knn_error_set(KNN_EIO, "%s: %s", uri, strerror(errno));
    return 0;
}

int knn_train_output_put_file(const char *uri, const char *path, struct knn_s3_client *s3)
{
    int rc;
    if (!knn_train_uri_is_s3(uri))
        return knn_error_set(KNN_EINVAL, "%s: only s3:// outputs are uploaded", uri);
    struct knn_s3_uri u = {0};
    struct knn_s3_put_options opts = KNN_S3_PUT_OPTIONS_INIT;
    opts.content_type = "application/x-tar";
    if ((rc = s_need_s3(s3, uri)) < 0)
        return rc;
    if ((rc = knn_s3_uri_parse(&u, uri)) == 0)
        rc = knn_s3_put_file(NULL, s3, u.bucket, u.key, path, &opts);
    knn_s3_uri_clean_up(&u);
    return rc;
}

int knn_train_output_put(const char *uri, const void *data, size_t len, const char *content_type,
                         struct knn_s3_client *s3)
{
    int rc;
    if (knn_train_uri_is_s3(uri)) {
        struct knn_s3_uri u = {0};
        struct knn_s3_put_options opts = KNN_S3_PUT_OPTIONS_INIT;
        opts.content_type = content_type;
        if ((rc = s_need_s3(s3, uri)) < 0)
            return rc;
        if ((rc = knn_s3_uri_parse(&u, uri)) == 0)
            rc = knn_s3_put(NULL, s3, u.bucket, u.key, data, len, &opts);
        knn_s3_uri_clean_up(&u);
        return rc;
    }
    const char *path = s_local_path(uri);
    struct knn_file_writer w;
    if ((rc = knn_train_make_parent_dirs(path)) < 0 || (rc = knn_file_writer_open(&w, path)) < 0)
        return rc;
    if ((rc = knn_file_writer_write(&w, data, len)) < 0) {
        knn_file_writer_abort(&w);
        return rc;
    }
    return knn_file_writer_commit(&w);
}

int knn_train_output_delete(const char *uri, struct knn_s3_client *s3)
{
    int rc;
    if (knn_train_uri_is_s3(uri)) {
        struct knn_s3_uri u = {0};
        if ((rc = s_need_s3(s3, uri)) < 0)
            return rc;
        if ((rc = knn_s3_uri_parse(&u, uri)) == 0)
            rc = knn_s3_delete(s3, u.bucket, u.key);
        knn_s3_uri_clean_up(&u);
        return rc;
    }
    if (unlink(s_local_path(uri)) != 0 && errno != ENOENT)
        return knn_error_set(KNN_EIO, "%s: %s", uri, strerror(errno));
    return 0;
}
