/* The ordered reader: many objects (or ranges of one) fetched in parallel, delivered in order. */
#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/reader.h"
#include "s3_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct s_object {
    char *bucket;
    char *key;
    char *etag; /* NULL until known */
    uint64_t size;
    int known; /* size and ETag known */
};

struct s_slot {
    struct knn_s3__job job;
    uint8_t *buf;
    size_t cap;
    size_t object;
    uint64_t offset;
    uint64_t len;
    int flags;
    int submitted; /* a job runs for it (0 for an empty object's chunk) */
};

struct knn_s3_reader {
    struct knn_s3_client *client;
    size_t part_size;
    int max_in_flight;
    struct s_object *objects;
    size_t count;
    size_t cap;
    struct s_slot *slots;
    size_t head;          /* slot of the next chunk to deliver */
    size_t pending;       /* slots scheduled from head on */
    int head_delivered;   /* the head slot went out in the last call: recycle it first */
    size_t cursor_object; /* the next part to schedule */
    uint64_t cursor_offset;
    struct knn_s3__engine *engine;
    int started;
    int rc;
    char message[1024];
    uint64_t delivered;
    uint64_t total;
};

int knn_s3_reader_new(
    struct knn_s3_reader **out, struct knn_s3_client *client, const struct knn_s3_reader_options *opts)
{
    struct knn_s3_reader *r = knn_calloc(1, sizeof(*r));
    *out = NULL;
    if (!r)
        return KNN_ENOMEM;
    r->client = client;
    r->part_size = opts && opts->part_size ? opts->part_size : client->part_size;
    r->max_in_flight = opts && opts->max_in_flight > 0 ? opts->max_in_flight : client->max_concurrency;
    if (r->part_size < 64 * 1024 || r->max_in_flight > 64) {
        knn_free(r);
        return knn_error_set(
            KNN_EINVAL, "reader: part size %zu below 64 KiB or more than 64 parts in flight", r->part_size);
    }
    if (!(r->slots = knn_calloc((size_t)r->max_in_flight, sizeof(*r->slots)))) {
        knn_free(r);
        return KNN_ENOMEM;
    }
    for (int i = 0; i < r->max_in_flight; i++)
        knn__s3_job_init(&r->slots[i].job);
    *out = r;
    return 0;
}

static int
s_add(struct knn_s3_reader *r, const char *bucket, const char *key, const char *etag, uint64_t size, int known)
{
    if (r->started)
        return knn_error_set(KNN_EINVAL, "reader: objects must be added before reading starts");
    if (!bucket || !*bucket || !key || !*key)
        return knn_error_set(KNN_EINVAL, "reader: an object needs a bucket and a key");
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct s_object *o = knn_realloc_array(r->objects, cap, sizeof(*o));
        if (!o)
            return KNN_ENOMEM;
        r->objects = o;
        r->cap = cap;
    }
    struct s_object *o = &r->objects[r->count];
    memset(o, 0, sizeof(*o));
    if (!(o->bucket = knn_strdup(bucket)) || !(o->key = knn_strdup(key)) || (etag && !(o->etag = knn_strdup(etag)))) {
        knn_free(o->bucket);
        knn_free(o->key);
        knn_free(o->etag);
        return KNN_ENOMEM;
    }
    o->size = size;
    o->known = known;
    if (known)
        r->total += size;
    r->count++;
    return 0;
}

int knn_s3_reader_add(struct knn_s3_reader *r, const char *bucket, const struct knn_s3_object_info *info)
{
    if (!info)
        return knn_error_set(KNN_EINVAL, "reader: no object info");
    int known = info->etag && info->etag[0];
    return s_add(r, bucket, info->key, info->etag, info->size, known);
}

int knn_s3_reader_add_key(struct knn_s3_reader *r, const char *bucket, const char *key)
{
    return s_add(r, bucket, key, NULL, 0, 0);
}

static int s_fail(struct knn_s3_reader *r, int rc)
{
    r->rc = rc;
    snprintf(r->message, sizeof(r->message), "%s", knn_error_message()[0] ? knn_error_message() : knn_error_str(rc));
    return rc;
}

/* Schedule the next part at the cursor into the slot after the pending ones. */
static int s_schedule(struct knn_s3_reader *r)
{
    int rc;
    struct s_object *o = &r->objects[r->cursor_object];
    if (!o->known) {
        struct knn_s3_object_info info;
        if ((rc = knn_s3_head(&info, r->client, o->bucket, o->key)))
            return rc;
        knn_free(o->etag);
        o->etag = info.etag;
        info.etag = NULL;
        o->size = info.size;
        o->known = 1;
        r->total += o->size;
        knn_s3_object_info_clean_up(&info);
    }
    struct s_slot *s = &r->slots[(r->head + r->pending) % (size_t)r->max_in_flight];
    s->object = r->cursor_object;
    s->offset = r->cursor_offset;
    s->len = o->size - r->cursor_offset < r->part_size ? o->size - r->cursor_offset : r->part_size;
    s->flags = (s->offset == 0 ? KNN_S3_CHUNK_FIRST : 0) | (s->offset + s->len == o->size ? KNN_S3_CHUNK_LAST : 0);
    s->submitted = 0;
    if (s->len > 0) {
        if (s->cap < s->len) {
            uint8_t *b = knn_realloc_array(s->buf, s->len, 1);
            if (!b)
                return KNN_ENOMEM;
            s->buf = b;
            s->cap = s->len;
        }
        if (!r->engine && (rc = knn__s3_engine_new(&r->engine, r->client, r->max_in_flight)))
            return rc;
        struct knn_s3__job *j = &s->job;
        struct knn_s3__request req = {.op = "GetObject", .method = "GET", .bucket = o->bucket, .key = o->key};
        j->req = req;
        j->dst = s->buf;
        j->dst_len = s->len;
        j->range_start = s->offset;
        j->object_size = o->size;
        j->if_match = o->etag;
        j->whole_object = s->offset == 0 && s->len == o->size;
        if ((rc = knn__s3_engine_submit(r->engine, j)))
            return rc;
        s->submitted = 1;
    }
    r->pending++;
    r->cursor_offset += s->len;
    if (r->cursor_offset >= o->size) {
        r->cursor_object++;
        r->cursor_offset = 0;
    }
    return 0;
}

int knn_s3_reader_next(struct knn_s3_chunk *out, int *done, struct knn_s3_reader *r)
{
    int rc;
    *done = 0;
    memset(out, 0, sizeof(*out));
    if (r->rc)
        return knn_error_set(r->rc, "%s", r->message);
    r->started = 1;
    if (r->head_delivered) {
        r->head = (r->head + 1) % (size_t)r->max_in_flight;
        r->pending--;
        r->head_delivered = 0;
    }
    while (r->pending < (size_t)r->max_in_flight && r->cursor_object < r->count) {
        if ((rc = s_schedule(r)))
            return s_fail(r, rc);
    }
    if (r->pending == 0) {
        *done = 1;
        return 0;
    }
    struct s_slot *s = &r->slots[r->head];
    if (s->submitted && (rc = knn__s3_engine_wait(r->engine, &s->job)))
        return s_fail(r, rc);
    struct s_object *o = &r->objects[s->object];
    out->object_index = s->object;
    out->key = o->key;
    out->object_size = o->size;
    out->offset = s->offset;
    out->data = s->len ? s->buf : (const uint8_t *)""; /* never NULL, even for an empty object */
    out->len = (size_t)s->len;
    out->flags = s->flags;
    r->delivered += s->len;
    r->head_delivered = 1;
    return 0;
}

int knn_s3_reader_run(struct knn_s3_reader *r, knn_s3_chunk_fn *fn, void *user)
{
    for (;;) {
        struct knn_s3_chunk chunk;
        int done, rc = knn_s3_reader_next(&chunk, &done, r);
        if (rc || done)
            return rc;
        if ((rc = fn(user, &chunk)))
            return s_fail(r, rc);
    }
}

void knn_s3_reader_progress(const struct knn_s3_reader *r, uint64_t *delivered, uint64_t *total)
{
    if (delivered)
        *delivered = r->delivered;
    if (total)
        *total = r->total;
}

void knn_s3_reader_destroy(struct knn_s3_reader *r)
{
    if (!r)
        return;
    knn__s3_engine_destroy(r->engine); /* cancels the transfers before their buffers go */
    for (int i = 0; i < r->max_in_flight; i++) {
        knn__s3_job_clean_up(&r->slots[i].job);
        knn_free(r->slots[i].buf);
    }
    knn_free(r->slots);
    for (size_t i = 0; i < r->count; i++) {
        knn_free(r->objects[i].bucket);
        knn_free(r->objects[i].key);
        knn_free(r->objects[i].etag);
    }
    knn_free(r->objects);
    knn_free(r);
}

/* ---- download to a file ---- */

static int s_write_all(int fd, const uint8_t *data, size_t len, const char *path)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return knn_error_set(KNN_EIO, "%s: write failed: %s", path, strerror(errno));
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

struct s_fd_sink {
    int fd;
    const char *path;
};

static int s_fd_data(void *user, const uint8_t *data, size_t len)
{
    struct s_fd_sink *s = user;
    return s_write_all(s->fd, data, len, s->path);
}

static int s_fd_chunk(void *user, const struct knn_s3_chunk *c)
{
    struct s_fd_sink *s = user;
    return s_write_all(s->fd, c->data, c->len, s->path);
}

/* Parallel ranged GETs written with pwrite() straight to their place in a regular file: no
 * buffering, no waiting for order (the file is renamed into place only when complete). */
static int s_download_to_fd(struct knn_s3_client *client, const char *bucket, const char *key, int fd)
{
    struct knn_s3_object_info info;
    struct knn_s3__engine *engine = NULL;
    struct knn_s3__job *jobs = NULL;
    int rc = knn_s3_head(&info, client, bucket, key), k = 0;
    if (rc)
        return rc;
    uint64_t size = info.size, part = client->part_size;
    uint64_t nparts = (size + part - 1) / part, next = 0;
    if (nparts == 0)
        goto done;
    k = nparts < (uint64_t)client->max_concurrency ? (int)nparts : client->max_concurrency;
    if (!(jobs = knn_calloc((size_t)k, sizeof(*jobs)))) {
        rc = KNN_ENOMEM;
        goto done;
    }
    for (int i = 0; i < k; i++)
        knn__s3_job_init(&jobs[i]);
    if ((rc = knn__s3_engine_new(&engine, client, k)))
        goto done;
    for (uint64_t finished = 0; finished < nparts && !rc; finished++) {
        /* Keep k parts in flight: submit up to `finished + k`, then wait for the oldest. */
        while (next < nparts && next < finished + (uint64_t)k && !rc) {
            struct knn_s3__job *j = &jobs[next % (uint64_t)k];
            struct knn_s3__request req = {.op = "GetObject", .method = "GET", .bucket = bucket, .key = key};
            j->req = req;
            j->dst = NULL;
            j->to_fd = 1;
            j->fd = fd;
            j->range_start = next * part;
            j->dst_len = size - j->range_start < part ? size - j->range_start : part;
            j->object_size = size;
            j->if_match = info.etag;
            j->whole_object = nparts == 1;
            rc = knn__s3_engine_submit(engine, j);
            next++;
        }
        if (!rc)
            rc = knn__s3_engine_wait(engine, &jobs[finished % (uint64_t)k]);
    }
done:
    knn__s3_engine_destroy(engine); /* cancels what still runs after a failure */
    for (int i = 0; jobs && i < k; i++)
        knn__s3_job_clean_up(&jobs[i]);
    knn_free(jobs);
    knn_s3_object_info_clean_up(&info);
    return rc;
}

int knn_s3_get_file(struct knn_s3_client *client, const char *bucket, const char *key, const char *path)
{
    int rc;
    if (strcmp(path, "-") == 0) {
        struct s_fd_sink sink = {1, "standard output"};
        return knn_s3_get(NULL, client, bucket, key, NULL, s_fd_data, &sink);
    }
    struct knn_s3_reader *r = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            return knn_error_set(KNN_EINVAL, "%s is a folder, not a file", path);
        /* A device, FIFO or socket (/dev/null, a pipe): write into it; a temporary file renamed
         * over it would replace the device itself. */
        int dfd = open(path, O_WRONLY | O_CLOEXEC);
        if (dfd < 0)
            return knn_error_set(KNN_EIO, "%s: cannot open: %s", path, strerror(errno));
        struct s_fd_sink dsink = {dfd, path};
        if (!(rc = knn_s3_reader_new(&r, client, NULL)) && !(rc = knn_s3_reader_add_key(r, bucket, key)))
            rc = knn_s3_reader_run(r, s_fd_chunk, &dsink);
        knn_s3_reader_destroy(r);
        if (close(dfd) != 0 && !rc)
            rc = knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
        return rc;
    }
    size_t plen = strlen(path);
    char *tmp = knn_malloc(plen + 32);
    if (!tmp)
        return KNN_ENOMEM;
    snprintf(tmp, plen + 32, "%s.partial-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = knn_error_set(KNN_EIO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        knn_free(tmp);
        return rc;
    }
    if ((rc = s_download_to_fd(client, bucket, key, fd)))
        goto done;
    if (fchmod(fd, 0644) != 0 || close(fd) != 0) {
        fd = -1;
        rc = knn_error_set(KNN_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        rc = knn_error_set(KNN_EIO, "%s: cannot rename the download into place: %s", path, strerror(errno));
done:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    knn_s3_reader_destroy(r);
    knn_free(tmp);
    return rc;
}
