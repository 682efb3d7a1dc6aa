/* The S3 side of transform_store.h: list a prefix, stream objects in, upload outputs. */
#include "transform/transform_store_impl.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "s3_settings.h"
#include "knn/s3/client.h"
#include "knn/s3/reader.h"
#include "knn/s3/upload.h"
#include "knn/s3/uri.h"

#include <stdio.h>
#include <string.h>

struct s_s3_store {
    struct knn_s3_client *client;
    struct knn_s3_uri uri;
    char *list_dir;  /* key prefix names are relative to when listing: up to the last '/' */
    char *write_dir; /* key prefix outputs go under: the prefix with a trailing '/' */
};

struct s_s3_reader {
    struct knn_s3_reader *reader;
    struct knn_s3_chunk chunk; /* the current chunk */
    size_t used;               /* bytes of it already handed out */
    int done;
};

struct s_s3_writer {
    struct knn_s3_upload *upload;
};

int knn__transform_store_open_s3(struct knn_transform_store **out, const char *location)
{
    struct knn_transform_store *s = knn_calloc(1, sizeof(*s));
    struct s_s3_store *st = knn_calloc(1, sizeof(*st));
    struct knn_s3_client_options co = KNN_S3_CLIENT_OPTIONS_INIT;
    int rc;
    if (!s || !st) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    s->kind = KNN__STORE_S3;
    s->s3 = st;
    if (!(s->location = knn_strdup(location))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    if ((rc = knn_s3_uri_parse(&st->uri, location)) != 0)
        goto on_error;
    const char *key = st->uri.key;
    const char *slash = strrchr(key, '/');
    size_t dir_len = slash ? (size_t)(slash + 1 - key) : 0;
    size_t key_len = strlen(key);
    st->list_dir = knn_strndup(key, dir_len);
    st->write_dir = knn_malloc(key_len + 2);
    if (!st->list_dir || !st->write_dir) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    memcpy(st->write_dir, key, key_len);
    if (key_len && key[key_len - 1] != '/')
        st->write_dir[key_len++] = '/';
    st->write_dir[key_len] = '\0';
    knn_s3_settings_apply(&co, st->uri.region);
    if ((rc = knn_s3_client_new(&st->client, &co)) != 0)
        goto on_error;
    *out = s;
    return 0;
on_error:
    if (s) {
        knn__transform_store_destroy_s3(s);
        knn_free(s->location);
        knn_free(s);
    } else if (st) {
        knn_free(st);
    }
    return rc;
}

void knn__transform_store_destroy_s3(struct knn_transform_store *store)
{
    struct s_s3_store *st = store->s3;
    if (!st)
        return;
    knn_s3_client_destroy(st->client);
    knn_s3_uri_clean_up(&st->uri);
    knn_free(st->list_dir);
    knn_free(st->write_dir);
    knn_free(st);
    store->s3 = NULL;
}

static int s_on_entry(void *user, const struct knn_s3_list_entry *e)
{
    struct knn__transform_names *keys = user;
    size_t len = e->info ? strlen(e->info->key) : 0;
    if (len == 0 || e->info->key[len - 1] == '/') /* a common prefix, or a folder marker */
        return 0;
    return knn__transform_names_add(keys, e->info->key);
}

/*
 * Names relative to the input: below the prefix when it names a folder (s3://b/in/, or s3://b/in
 * with keys in/...: in/a/x.csv -> a/x.csv, and in-other.csv is not in it), else below the
 * prefix's last '/' (s3://b/in/part and in/part-1.csv -> part-1.csv; an exact key -> its base
 * name). list_dir becomes the key prefix the names are relative to (readers prepend it).
 */
int knn__transform_store_list_s3(struct knn_transform_store *store, struct knn__transform_names *l)
{
    struct s_s3_store *st = store->s3;
    struct knn__transform_names keys = {NULL, 0, 0};
    const char *prefix = st->uri.key;
    size_t plen = strlen(prefix);
    int rc = knn_s3_list_each(st->client, st->uri.bucket, prefix, NULL, s_on_entry, &keys);
    if (rc)
        goto done;
    int folder = plen == 0 || prefix[plen - 1] == '/';
    for (size_t i = 0; i < keys.n && !folder; i++)
        folder = keys.names[i][plen] == '/';
    if (folder && plen && prefix[plen - 1] != '/') {
        char *dir = knn_malloc(plen + 2);
        if (!dir) {
            rc = KNN_ENOMEM;
            goto done;
        }
        memcpy(dir, prefix, plen);
        dir[plen] = '/';
        dir[plen + 1] = '\0';
        knn_free(st->list_dir);
        st->list_dir = dir;
    }
    size_t dlen = strlen(st->list_dir);
    for (size_t i = 0; rc == 0 && i < keys.n; i++) {
        if (strncmp(keys.names[i], st->list_dir, dlen) == 0 && keys.names[i][dlen])
            rc = knn__transform_names_add(l, keys.names[i] + dlen);
    }
done:
    knn_transform_names_free(keys.names, keys.n);
    return rc;
}

int knn__transform_store_describe_s3(char *buf, size_t size, const struct knn_transform_store *store, const char *name)
{
    const struct s_s3_store *st = store->s3;
    snprintf(buf, size, "s3://%s/%s%s", st->uri.bucket, st->list_dir, name);
    return 0;
}

int knn__transform_reader_open_s3(struct knn_transform_reader **out, struct knn_transform_store *store, const char *name)
{
    struct s_s3_store *st = store->s3;
    struct knn_transform_reader *r = knn_calloc(1, sizeof(*r));
    struct s_s3_reader *sr = knn_calloc(1, sizeof(*sr));
    char *key = NULL;
    int rc;
    if (!r || !sr) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    r->kind = KNN__STORE_S3;
    r->fd = -1;
    r->s3 = sr;
    size_t n = strlen(st->list_dir) + strlen(name) + 1;
    if (!(key = knn_malloc(n))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    snprintf(key, n, "%s%s", st->list_dir, name);
    if ((rc = knn_s3_reader_new(&sr->reader, st->client, NULL)) != 0 ||
        (rc = knn_s3_reader_add_key(sr->reader, st->uri.bucket, key)) != 0)
        goto on_error;
    knn_free(key);
    *out = r;
    return 0;
on_error:
    knn_free(key);
    if (sr)
        knn_s3_reader_destroy(sr->reader);
    knn_free(sr);
    knn_free(r);
    return rc;
}

uint64_t knn__transform_reader_size_s3(const struct knn_transform_reader *r)
{
    const struct s_s3_reader *sr = r->s3;
    uint64_t delivered = 0, total = 0;
    knn_s3_reader_progress(sr->reader, &delivered, &total);
    return total ? total : UINT64_MAX;
}

int knn__transform_reader_read_s3(struct knn_transform_reader *r, void *buf, size_t cap, size_t *got)
{
    struct s_s3_reader *sr = r->s3;
    *got = 0;
    while (!sr->done && sr->used == sr->chunk.len) {
        int rc = knn_s3_reader_next(&sr->chunk, &sr->done, sr->reader);
        if (rc)
            return rc;
        sr->used = 0;
        if (sr->done)
            sr->chunk.len = 0;
    }
    if (sr->done)
        return 0;
    size_t n = sr->chunk.len - sr->used;
    if (n > cap)
        n = cap;
    memcpy(buf, sr->chunk.data + sr->used, n);
    sr->used += n;
    *got = n;
    return 0;
}

void knn__transform_reader_close_s3(struct knn_transform_reader *r)
{
    struct s_s3_reader *sr = r->s3;
    if (sr) {
        knn_s3_reader_destroy(sr->reader);
        knn_free(sr);
    }
}

int knn__transform_writer_open_s3(struct knn_transform_writer **out, struct knn_transform_store *store, const char *name)
{
    struct s_s3_store *st = store->s3;
    struct knn_transform_writer *w = knn_calloc(1, sizeof(*w));
    struct s_s3_writer *sw = knn_calloc(1, sizeof(*sw));
    struct knn_s3_upload_options uo = KNN_S3_UPLOAD_OPTIONS_INIT;
    int rc;
    if (!w || !sw) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    w->kind = KNN__STORE_S3;
    w->s3 = sw;
    if ((size_t)snprintf(w->path, sizeof(w->path), "%s%s", st->write_dir, name) >= sizeof(w->path)) {
        rc = knn_error_set(KNN_EINVAL, "s3://%s/%s%s: key too long", st->uri.bucket, st->write_dir, name);
        goto on_error;
    }
    if ((rc = knn_s3_upload_new(&sw->upload, st->client, st->uri.bucket, w->path, &uo)) != 0)
        goto on_error;
    if ((size_t)snprintf(w->tmp, sizeof(w->tmp), "s3://%s/%s", st->uri.bucket, w->path) >= sizeof(w->tmp))
        w->tmp[sizeof(w->tmp) - 1] = '\0'; /* only used in messages */
    *out = w;
    return 0;
on_error:
    knn_free(sw);
    knn_free(w);
    return rc;
}

int knn__transform_writer_write_s3(struct knn_transform_writer *w, const void *data, size_t len)
{
    struct s_s3_writer *sw = w->s3;
    return knn_s3_upload_write(sw->upload, data, len);
}

int knn__transform_writer_commit_s3(struct knn_transform_writer *w)
{
    struct s_s3_writer *sw = w->s3;
    int rc = knn_s3_upload_finish(sw->upload, NULL);
    if (rc)
        rc = knn_error_wrap(rc, "%s", w->tmp);
    knn_s3_upload_destroy(sw->upload);
    knn_free(sw);
    knn_free(w);
    return rc;
}

void knn__transform_writer_abort_s3(struct knn_transform_writer *w)
{
    struct s_s3_writer *sw = w->s3;
    knn_s3_upload_abort(sw->upload);
    knn_s3_upload_destroy(sw->upload);
    knn_free(sw);
    knn_free(w);
}
