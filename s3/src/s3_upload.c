/* Streamed uploads: one PutObject when small, else a parallel multipart upload that is aborted on
 * any failure. Also knn_s3_put and knn_s3_put_file on top of it. */
#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/upload.h"
#include "s3_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_PARTS 10000
#define S_MAX_PART_SIZE (5ull * 1024 * 1024 * 1024)
#define S_MAX_HASHERS 4

enum s_state {
    S_OPEN,
    S_FAILED,
    S_FINISHED,
    S_ABORTED,
};

enum s_slot_state {
    S_SLOT_FREE = 0,  /* or being filled by the caller */
    S_SLOT_HASHING,   /* queued for (or in) a hashing thread */
    S_SLOT_SUBMITTED, /* hashed and handed to the engine (or hashing failed: hash_rc) */
};

struct s_slot {
    struct knn_s3__job job;
    uint8_t *buf;
    size_t cap;
    size_t len;
    int part_number;
    int busy;                /* between submission and retirement (caller's view) */
    enum s_slot_state state; /* guarded by the upload's lock */
    int hash_rc;
    char hash_message[512];
    unsigned char md5_raw[16];
    char md5[25];
    char sha[65];
    char part_str[16];
};

struct s_part {
    char *etag;
    unsigned char md5[16];
};

struct knn_s3_upload {
    struct knn_s3_client *client;
    char *bucket;
    char *key;
    char *content_type;
    size_t part_size;
    int max_in_flight;
    struct s_slot *slots; /* max_in_flight + 1: one filling while the others upload */
    int nslots;
    int cur;   /* the slot being filled */
    int *fifo; /* busy slots in submission order */
    int fifo_head;
    int fifo_count;
    char *upload_id;
    struct knn_s3__engine *engine;
    /* Hashing threads: a full part is hashed (Content-MD5) off the caller's thread, in parallel
     * with the next parts being read and the earlier ones uploading, then handed to the engine. */
    pthread_t hashers[S_MAX_HASHERS];
    int n_hashers;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int *hash_queue; /* slots to hash, FIFO */
    int hq_head;
    int hq_count;
    int stop_hashers;
    int sync_ready;       /* lock and cond initialized */
    struct s_part *parts; /* by part number - 1 */
    int part_count;
    uint64_t written;
    uint64_t uploaded;
    enum s_state state;
    int rc;
    char message[1024];
};

int knn_s3_upload_new(
    struct knn_s3_upload **out, struct knn_s3_client *client, const char *bucket, const char *key,
    const struct knn_s3_upload_options *opts)
{
    int rc = 0;
    struct knn_s3_upload *u = knn_calloc(1, sizeof(*u));
    *out = NULL;
    if (!u)
        return KNN_ENOMEM;
    u->client = client;
    u->part_size = opts && opts->part_size ? opts->part_size : client->part_size;
    u->max_in_flight = opts && opts->max_in_flight > 0 ? opts->max_in_flight : client->max_concurrency;
    if (!bucket || !*bucket || !key || !*key) {
        rc = knn_error_set(KNN_EINVAL, "upload: needs a bucket and a key");
        goto on_error;
    }
    if (u->part_size < 5u * 1024 * 1024 || u->part_size > S_MAX_PART_SIZE || u->max_in_flight > 64) {
        rc = knn_error_set(
            KNN_EINVAL,
            "upload s3://%s/%s: part size %zu outside 5 MiB..5 GiB, or more than 64 parts "
            "in flight",
            bucket, key, u->part_size);
        goto on_error;
    }
    u->nslots = u->max_in_flight + 1;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->cond, NULL);
    u->sync_ready = 1;
    if (!(u->bucket = knn_strdup(bucket)) || !(u->key = knn_strdup(key)) ||
        !(u->content_type = knn_strdup(opts && opts->content_type ? opts->content_type : "application/octet-stream")) ||
        !(u->slots = knn_calloc((size_t)u->nslots, sizeof(*u->slots))) ||
        !(u->fifo = knn_calloc((size_t)u->nslots, sizeof(*u->fifo))) ||
        !(u->hash_queue = knn_calloc((size_t)u->nslots, sizeof(*u->hash_queue)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    for (int i = 0; i < u->nslots; i++)
        knn__s3_job_init(&u->slots[i].job);
    *out = u;
    return 0;
on_error:
    knn_s3_upload_destroy(u);
    return rc;
}

static int s_fail(struct knn_s3_upload *u, int rc)
{
    if (u->state == S_OPEN) {
        u->state = S_FAILED;
        u->rc = rc;
        snprintf(
            u->message, sizeof(u->message), "%s", knn_error_message()[0] ? knn_error_message() : knn_error_str(rc));
        /* Abort now, so that no part is left behind whatever the caller does next. */
        (void)knn_s3_upload_abort(u); /* a failed abort logs how to abort by hand */
        u->state = S_FAILED;
    }
    return knn_error_set(u->rc, "%s", u->message);
}

struct s_orphans {
    const char *key;
    const char *ours; /* our own upload id, or NULL */
    int64_t since_s;
    char ids[16][256];
    int count;
};

static int s_orphans_cb(void *user, const struct knn_s3_upload_entry *e)
{
    struct s_orphans *o = user;
    if (strcmp(e->key, o->key) != 0 || (o->ours && strcmp(e->upload_id, o->ours) == 0) ||
        (e->initiated_s && e->initiated_s < o->since_s) || o->count == 16)
        return 0;
    snprintf(o->ids[o->count++], sizeof(o->ids[0]), "%s", e->upload_id);
    return 0;
}

/*
 * A CreateMultipartUpload attempt failed after the server may have acted on it (its answer was
 * lost or unreadable): an upload we never learnt the id of may exist. Abort the uploads of this
 * exact key that began since a minute before our request (best effort; errors are logged only).
 * Another writer of the same key in that same minute would lose its upload too, which S3's
 * last-writer-wins on a key makes no worse.
 */
static void s_abort_orphans(struct knn_s3_upload *u, int64_t started_s)
{
    struct s_orphans o = {u->key, u->upload_id, started_s - 60, {{0}}, 0};
    char message[1024];
    snprintf(message, sizeof(message), "%s", knn_error_message());
    if (knn_s3_list_uploads(u->client, u->bucket, u->key, s_orphans_cb, &o) != 0) {
        KNN_LOG(
            KNN_LOG_WARN, KNN_LS_S3, "s3://%s/%s: cannot look for an orphaned upload: %s", u->bucket, u->key,
            knn_error_message());
    }
    for (int i = 0; i < o.count; i++) {
        int rc = knn_s3_abort_upload(u->client, u->bucket, u->key, o.ids[i]);
        KNN_LOG(
            rc && rc != KNN_ES3_NO_SUCH_UPLOAD ? KNN_LOG_WARN : KNN_LOG_INFO, KNN_LS_S3,
            "s3://%s/%s: aborted upload %s, started by an attempt whose answer was lost%s%s", u->bucket, u->key,
            o.ids[i], rc && rc != KNN_ES3_NO_SUCH_UPLOAD ? ": " : "",
            rc && rc != KNN_ES3_NO_SUCH_UPLOAD ? knn_error_message() : "");
    }
    knn_error_set(KNN_OK, "%s", message); /* the caller's error message stands */
}

static int s_upload_id_cb(void *user, const char *path, const char *text, size_t len)
{
    char **id = user;
    if (strcmp(path, "InitiateMultipartUploadResult/UploadId") != 0)
        return 0;
    knn_free(*id);
    *id = knn_strndup(text, len);
    return *id ? 0 : KNN_ENOMEM;
}

/* CreateMultipartUpload -> u->upload_id. */
static int s_create(struct knn_s3_upload *u)
{
    struct knn_s3__request req = {.op = "CreateMultipartUpload", .method = "POST", .bucket = u->bucket, .key = u->key};
    struct knn_s3__response resp;
    int uncertain = 0;
    req.query[req.query_count++] = (struct knn_s3_kv){"uploads", ""};
    req.headers[req.header_count++] = (struct knn_s3_kv){"content-type", u->content_type};
    knn__s3_response_init(&resp, 64 * 1024);
    int64_t started = knn__s3_client_now(u->client);
    int rc = knn__s3_execute_counted(u->client, &req, &resp, &uncertain);
    if (!rc && (rc = knn__s3_xml_parse_root(resp.body.data, resp.body.len, "InitiateMultipartUploadResult",
                                            s_upload_id_cb, &u->upload_id)))
        rc = knn_error_wrap(rc, "CreateMultipartUpload s3://%s/%s", u->bucket, u->key);
    if (!rc && (!u->upload_id || !*u->upload_id))
        rc = knn_error_set(
            KNN_EFORMAT, "CreateMultipartUpload s3://%s/%s: no UploadId in the response", u->bucket, u->key);
    if (rc) {
        knn_free(u->upload_id);
        u->upload_id = NULL;
    }
    /* Not an S3 error answer, or an earlier attempt lost: an upload may exist that we cannot name. */
    if (uncertain > 0 || (rc && !(resp.status >= 300 && resp.error.code[0])))
        s_abort_orphans(u, started);
    if (!rc)
        KNN_LOG(
            KNN_LOG_DEBUG, KNN_LS_S3, "id=%p: multipart upload of s3://%s/%s started", (void *)u, u->bucket, u->key);
    knn__s3_response_clean_up(&resp);
    return rc;
}

/* Wait for the oldest part in flight and record its ETag. */
static int s_retire_oldest(struct knn_s3_upload *u)
{
    int idx = u->fifo[u->fifo_head];
    struct s_slot *s = &u->slots[idx];
    pthread_mutex_lock(&u->lock);
    while (s->state == S_SLOT_HASHING)
        pthread_cond_wait(&u->cond, &u->lock);
    int rc = s->hash_rc;
    pthread_mutex_unlock(&u->lock);
    if (rc)
        return knn_error_set(rc, "%s", s->hash_message);
    if ((rc = knn__s3_engine_wait(u->engine, &s->job)))
        return rc;
    if (!s->job.resp.etag[0])
        return knn_error_set(
            KNN_EFORMAT, "UploadPart s3://%s/%s part %d: no ETag in the response", u->bucket, u->key, s->part_number);
    struct s_part *p = &u->parts[s->part_number - 1];
    if (!(p->etag = knn_strdup(s->job.resp.etag)))
        return KNN_ENOMEM;
    memcpy(p->md5, s->md5_raw, sizeof(p->md5));
    u->uploaded += s->len;
    s->busy = 0;
    s->state = S_SLOT_FREE;
    s->len = 0;
    u->fifo_head = (u->fifo_head + 1) % u->nslots;
    u->fifo_count--;
    return 0;
}

/* Hash a part and hand it to the engine (a hashing thread). */
static void s_hash_and_submit(struct knn_s3_upload *u, struct s_slot *s)
{
    int rc = knn__s3_hash(s->buf, s->len, s->md5, s->md5_raw, u->client->sign_parts ? s->sha : NULL);
    if (!rc) {
        struct knn_s3__request req = {.op = "UploadPart", .method = "PUT", .bucket = u->bucket, .key = u->key};
        req.query[req.query_count++] = (struct knn_s3_kv){"partNumber", s->part_str};
        req.query[req.query_count++] = (struct knn_s3_kv){"uploadId", u->upload_id};
        req.headers[req.header_count++] = (struct knn_s3_kv){"content-md5", s->md5};
        req.body = s->buf;
        req.body_len = s->len;
        req.payload_hash = u->client->sign_parts ? s->sha : (s->len ? KNN_S3_UNSIGNED_PAYLOAD : KNN_S3_EMPTY_SHA256);
        s->job.req = req;
        s->job.dst = NULL;
        s->job.if_match = NULL;
        rc = knn__s3_engine_submit(u->engine, &s->job);
    }
    pthread_mutex_lock(&u->lock);
    s->hash_rc = rc;
    if (rc)
        snprintf(s->hash_message, sizeof(s->hash_message), "%s", knn_error_message());
    s->state = S_SLOT_SUBMITTED;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

static void *s_hasher(void *arg)
{
    struct knn_s3_upload *u = arg;
    pthread_mutex_lock(&u->lock);
    for (;;) {
        while (!u->stop_hashers && u->hq_count == 0)
            pthread_cond_wait(&u->cond, &u->lock);
        if (u->stop_hashers)
            break;
        int idx = u->hash_queue[u->hq_head];
        u->hq_head = (u->hq_head + 1) % u->nslots;
        u->hq_count--;
        pthread_mutex_unlock(&u->lock);
        s_hash_and_submit(u, &u->slots[idx]);
        pthread_mutex_lock(&u->lock);
    }
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

/* Stop the hashing threads; parts still queued are dropped (marked failed). */
static void s_stop_hashers(struct knn_s3_upload *u)
{
    pthread_mutex_lock(&u->lock);
    u->stop_hashers = 1;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
    for (int i = 0; i < u->n_hashers; i++)
        pthread_join(u->hashers[i], NULL);
    u->n_hashers = 0;
    for (; u->hq_count > 0; u->hq_count--) {
        struct s_slot *s = &u->slots[u->hash_queue[u->hq_head]];
        s->state = S_SLOT_SUBMITTED;
        s->hash_rc = KNN_ECANCELED;
        snprintf(s->hash_message, sizeof(s->hash_message), "upload stopped");
        u->hq_head = (u->hq_head + 1) % u->nslots;
    }
}

static int s_start_hashers(struct knn_s3_upload *u)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus < 1 ? 1 : cpus > S_MAX_HASHERS ? S_MAX_HASHERS : (int)cpus;
    if (n > u->max_in_flight)
        n = u->max_in_flight;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&u->hashers[i], NULL, s_hasher, u) != 0)
            break;
        u->n_hashers++;
    }
    if (u->n_hashers == 0)
        return knn_error_set(KNN_EINTERNAL, "upload s3://%s/%s: cannot start a hashing thread", u->bucket, u->key);
    return 0;
}

/* Queue the current slot as the next part (hashed and submitted by a hashing thread), then find a
 * free slot to fill. */
static int s_submit_part(struct knn_s3_upload *u)
{
    int rc;
    struct s_slot *s = &u->slots[u->cur];
    if (u->part_count >= S_MAX_PARTS)
        return knn_error_set(KNN_ETOOBIG, "upload s3://%s/%s: more than %d parts", u->bucket, u->key, S_MAX_PARTS);
    if (!u->upload_id && (rc = s_create(u)))
        return rc;
    if (!u->engine && (rc = knn__s3_engine_new(&u->engine, u->client, u->max_in_flight)))
        return rc;
    if (!u->n_hashers && (rc = s_start_hashers(u)))
        return rc;
    if ((u->part_count % 256) == 0) {
        struct s_part *parts = knn_realloc_array(u->parts, (size_t)u->part_count + 256, sizeof(*parts));
        if (!parts)
            return KNN_ENOMEM;
        memset(parts + u->part_count, 0, 256 * sizeof(*parts));
        u->parts = parts;
    }
    s->part_number = ++u->part_count;
    snprintf(s->part_str, sizeof(s->part_str), "%d", s->part_number);
    s->busy = 1;
    s->hash_rc = 0;
    pthread_mutex_lock(&u->lock);
    s->state = S_SLOT_HASHING;
    u->hash_queue[(u->hq_head + u->hq_count) % u->nslots] = u->cur;
    u->hq_count++;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
    u->fifo[(u->fifo_head + u->fifo_count) % u->nslots] = u->cur;
    u->fifo_count++;
    /* Grow the part size every 1,000 parts, so that 10,000 parts always suffice. */
    if (u->part_count % 1000 == 0 && u->part_size * 2 <= S_MAX_PART_SIZE)
        u->part_size *= 2;
    for (int i = 0; i < u->nslots; i++) {
        if (!u->slots[i].busy) {
            u->cur = i;
            u->slots[i].len = 0;
            return 0;
        }
    }
    int idx = u->fifo[u->fifo_head];
    if ((rc = s_retire_oldest(u)))
        return rc;
    u->cur = idx;
    return 0;
}

/* Room to write into: the current slot, after submitting it if it is full. */
static int s_space(struct knn_s3_upload *u, uint8_t **ptr, size_t *room)
{
    int rc;
    if (u->state != S_OPEN) {
        if (u->state == S_FAILED)
            return knn_error_set(u->rc, "%s", u->message);
        return knn_error_set(
            KNN_EINVAL, "upload s3://%s/%s is %s", u->bucket, u->key, u->state == S_FINISHED ? "finished" : "aborted");
    }
    struct s_slot *s = &u->slots[u->cur];
    if (s->len >= u->part_size) {
        if ((rc = s_submit_part(u)))
            return s_fail(u, rc);
        s = &u->slots[u->cur];
    }
    if (s->cap < u->part_size) {
        uint8_t *b = knn_realloc_array(s->buf, u->part_size, 1);
        if (!b)
            return s_fail(u, KNN_ENOMEM);
        s->buf = b;
        s->cap = u->part_size;
    }
    *ptr = s->buf + s->len;
    *room = u->part_size - s->len;
    return 0;
}

int knn_s3_upload_write(struct knn_s3_upload *u, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        uint8_t *dst;
        size_t room;
        int rc = s_space(u, &dst, &room);
        if (rc)
            return rc;
        size_t n = len < room ? len : room;
        memcpy(dst, p, n);
        u->slots[u->cur].len += n;
        u->written += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* The ETag S3 gives a multipart object: MD5 of the parts' MD5s, "-", the part count. */
static int s_expected_etag(struct knn_s3_upload *u, char out[64])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL)) {
        EVP_MD_CTX_free(ctx);
        return KNN_ENOMEM;
    }
    for (int i = 0; i < u->part_count; i++)
        EVP_DigestUpdate(ctx, u->parts[i].md5, 16);
    EVP_DigestFinal_ex(ctx, d, &dl);
    EVP_MD_CTX_free(ctx);
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (unsigned i = 0; i < dl; i++) {
        *o++ = hex[d[i] >> 4];
        *o++ = hex[d[i] & 15];
    }
    snprintf(o, 64 - (size_t)(o - out), "-%d\"", u->part_count);
    return 0;
}

struct s_complete {
    char *etag;
    int is_result;
};

static int s_complete_cb(void *user, const char *path, const char *text, size_t len)
{
    struct s_complete *c = user;
    if (strcmp(path, "CompleteMultipartUploadResult") == 0)
        c->is_result = 1;
    else if (strcmp(path, "CompleteMultipartUploadResult/ETag") == 0) {
        knn_free(c->etag);
        if (!(c->etag = knn_strndup(text, len)))
            return KNN_ENOMEM;
    }
    return 0;
}

static int s_complete(struct knn_s3_upload *u, char **etag_out)
{
    struct knn_buf body = KNN_BUF_INIT(4u * 1024 * 1024);
    struct knn_s3__response resp;
    struct s_complete result = {NULL, 0};
    int rc = knn_buf_append_str(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (int i = 0; i < u->part_count && !rc; i++) {
        rc = knn_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
        if (!rc)
            rc = knn__s3_xml_escape(&body, u->parts[i].etag);
        if (!rc)
            rc = knn_buf_append_str(&body, "</ETag></Part>");
    }
    if (!rc)
        rc = knn_buf_append_str(&body, "</CompleteMultipartUpload>");
    if (rc) {
        knn_buf_clean_up(&body);
        return rc;
    }
    struct knn_s3__request req = {
        .op = "CompleteMultipartUpload", .method = "POST", .bucket = u->bucket, .key = u->key};
    req.query[req.query_count++] = (struct knn_s3_kv){"uploadId", u->upload_id};
    req.headers[req.header_count++] = (struct knn_s3_kv){"content-type", "application/xml"};
    req.body = body.data;
    req.body_len = body.len;
    knn__s3_response_init(&resp, 64 * 1024);
    rc = knn__s3_execute(u->client, &req, &resp);
    if (rc == KNN_ES3_NO_SUCH_UPLOAD) {
        /* An earlier attempt may have completed it and lost its answer: is the object ours? */
        char expected[64];
        struct knn_s3_object_info info;
        char message[1024];
        snprintf(message, sizeof(message), "%s", knn_error_message());
        if (s_expected_etag(u, expected) == 0 && knn_s3_head(&info, u->client, u->bucket, u->key) == 0) {
            int ours = info.etag && strcmp(info.etag, expected) == 0 && info.size == u->written;
            if (ours) {
                KNN_LOG(
                    KNN_LOG_INFO, KNN_LS_S3, "s3://%s/%s: completed by an earlier attempt (ETag %s)", u->bucket, u->key,
                    expected);
                if (etag_out && !(*etag_out = knn_strdup(expected)))
                    rc = KNN_ENOMEM;
                else
                    rc = 0;
                knn_s3_object_info_clean_up(&info);
                u->state = S_FINISHED;
                goto done;
            }
            knn_s3_object_info_clean_up(&info);
        }
        knn_error_set(rc, "%s", message);
    }
    if (rc)
        goto done;
    if ((rc = knn__s3_xml_parse(resp.body.data, resp.body.len, s_complete_cb, &result))) {
        rc = knn_error_wrap(rc, "CompleteMultipartUpload s3://%s/%s", u->bucket, u->key);
        goto done;
    }
    if (!result.is_result) {
        rc = knn_error_set(
            KNN_EFORMAT,
            "CompleteMultipartUpload s3://%s/%s: the answer is not a "
            "CompleteMultipartUploadResult",
            u->bucket, u->key);
        goto done;
    }
    u->state = S_FINISHED;
    if (etag_out && (!result.etag || !result.etag[0])) {
        /* Ceph RGW 16 answers an empty <ETag></ETag>: ask for it. */
        struct knn_s3_object_info info;
        if ((rc = knn_s3_head(&info, u->client, u->bucket, u->key)))
            goto done;
        knn_free(result.etag);
        result.etag = info.etag;
        info.etag = NULL;
        knn_s3_object_info_clean_up(&info);
    }
    if (etag_out && result.etag[0] != '"') { /* some servers leave out the quotes S3 puts around ETags */
        size_t n = strlen(result.etag);
        char *quoted = knn_malloc(n + 3);
        if (!quoted) {
            rc = KNN_ENOMEM;
            goto done;
        }
        quoted[0] = '"';
        memcpy(quoted + 1, result.etag, n);
        memcpy(quoted + 1 + n, "\"", 2);
        knn_free(result.etag);
        result.etag = quoted;
    }
    if (etag_out) {
        *etag_out = result.etag;
        result.etag = NULL;
    }
done:
    knn_free(result.etag);
    knn_buf_clean_up(&body);
    knn__s3_response_clean_up(&resp);
    return rc;
}

int knn_s3_upload_finish(struct knn_s3_upload *u, char **etag_out)
{
    int rc;
    if (etag_out)
        *etag_out = NULL;
    if (u->state != S_OPEN) {
        if (u->state == S_FAILED)
            return knn_error_set(u->rc, "%s", u->message);
        return knn_error_set(
            KNN_EINVAL, "upload s3://%s/%s is already %s", u->bucket, u->key,
            u->state == S_FINISHED ? "finished" : "aborted");
    }
    struct s_slot *s = &u->slots[u->cur];
    if (!u->upload_id) { /* it all fits in one part: a single PutObject */
        rc = knn__s3_put_single(
            etag_out, u->client, u->bucket, u->key, s->buf ? s->buf : (const uint8_t *)"", s->len, u->content_type);
        if (rc)
            return s_fail(u, rc);
        u->uploaded = s->len;
        u->state = S_FINISHED;
        return 0;
    }
    if (s->len > 0 && (rc = s_submit_part(u)))
        return s_fail(u, rc);
    while (u->fifo_count > 0) {
        if ((rc = s_retire_oldest(u)))
            return s_fail(u, rc);
    }
    if ((rc = s_complete(u, etag_out)))
        return s_fail(u, rc);
    KNN_LOG(
        KNN_LOG_DEBUG, KNN_LS_S3, "id=%p: s3://%s/%s uploaded in %d parts", (void *)u, u->bucket, u->key,
        u->part_count);
    return 0;
}

/* `s` quoted for a POSIX shell, into out (truncated to fit). */
static void s_shell_quote(char *out, size_t size, const char *s)
{
    size_t n = 0;
    if (size < 3)
        return;
    out[n++] = '\'';
    for (; *s && n + 5 < size; s++) {
        if (*s == '\'') {
            memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            out[n++] = *s;
        }
    }
    out[n++] = '\'';
    out[n] = '\0';
}

/*
 * AbortMultipartUpload failed: log the command that aborts it by hand (a line of its own: a long key
 * would not fit in an error message), and set the message naming the bucket, key, UploadId and cause.
 */
static int s_abort_failed(struct knn_s3_upload *u, int rc)
{
    char cause[600], bucket[300], key[4200], id[2100];
    snprintf(cause, sizeof(cause), "%s", knn_error_message());
    s_shell_quote(bucket, sizeof(bucket), u->bucket);
    s_shell_quote(key, sizeof(key), u->key);
    s_shell_quote(id, sizeof(id), u->upload_id);
    KNN_LOG(
        KNN_LOG_ERROR, KNN_LS_S3,
        "s3://%s/%s: multipart upload %s was NOT aborted (%s); its parts stay stored, and billed, until it is. "
        "Abort it with: aws s3api abort-multipart-upload --bucket %s --key %s --upload-id %s (see "
        "docs/troubleshooting.md: a bucket lifecycle rule with AbortIncompleteMultipartUpload does it automatically)",
        u->bucket, u->key, u->upload_id, cause, bucket, key, id);
    return knn_error_set(
        rc, "s3://%s/%s: multipart upload %s was NOT aborted: %s", u->bucket, u->key, u->upload_id, cause);
}

int knn_s3_upload_abort(struct knn_s3_upload *u)
{
    int rc = 0;
    if (u->state == S_FINISHED || u->state == S_ABORTED)
        return 0;
    /* Stop the hashing and the part uploads first, so that no part lands after the abort. */
    s_stop_hashers(u);
    knn__s3_engine_destroy(u->engine);
    u->engine = NULL;
    for (int i = 0; i < u->nslots; i++) {
        u->slots[i].busy = 0;
        u->slots[i].state = S_SLOT_FREE;
    }
    u->fifo_count = 0;
    if (u->upload_id) {
        rc = knn_s3_abort_upload(u->client, u->bucket, u->key, u->upload_id);
        if (rc == KNN_ES3_NO_SUCH_UPLOAD)
            rc = 0;
        if (!rc)
            KNN_LOG(
                KNN_LOG_DEBUG, KNN_LS_S3, "id=%p: multipart upload of s3://%s/%s aborted", (void *)u, u->bucket,
                u->key);
        else
            rc = s_abort_failed(u, rc);
        knn_free(u->upload_id);
        u->upload_id = NULL;
    }
    if (u->state == S_OPEN)
        u->state = S_ABORTED;
    return rc;
}

void knn_s3_upload_destroy(struct knn_s3_upload *u)
{
    if (!u)
        return;
    if (u->state == S_OPEN && u->upload_id)
        (void)knn_s3_upload_abort(u); /* a failed abort logs how to abort by hand */
    if (u->sync_ready)
        s_stop_hashers(u);
    knn__s3_engine_destroy(u->engine);
    for (int i = 0; u->slots && i < u->nslots; i++) {
        knn__s3_job_clean_up(&u->slots[i].job);
        knn_free(u->slots[i].buf);
    }
    for (int i = 0; i < u->part_count; i++)
        knn_free(u->parts[i].etag);
    knn_free(u->parts);
    knn_free(u->slots);
    knn_free(u->fifo);
    knn_free(u->hash_queue);
    if (u->sync_ready) {
        pthread_cond_destroy(&u->cond);
        pthread_mutex_destroy(&u->lock);
    }
    knn_free(u->upload_id);
    knn_free(u->bucket);
    knn_free(u->key);
    knn_free(u->content_type);
    knn_free(u);
}

void knn_s3_upload_progress(const struct knn_s3_upload *u, uint64_t *written, uint64_t *uploaded)
{
    if (written)
        *written = u->written;
    if (uploaded)
        *uploaded = u->uploaded;
}

/* ---- whole buffers and files ---- */

int knn_s3_put(
    char **etag_out, struct knn_s3_client *client, const char *bucket, const char *key, const void *data, size_t len,
    const struct knn_s3_put_options *opts)
{
    const char *ctype = opts ? opts->content_type : NULL;
    if (etag_out)
        *etag_out = NULL;
    if (!bucket || !*bucket || !key || !*key)
        return knn_error_set(KNN_EINVAL, "PutObject: needs a bucket and a key");
    if (len < client->multipart_threshold)
        return knn__s3_put_single(etag_out, client, bucket, key, len ? data : "", len, ctype);
    struct knn_s3_upload *u;
    struct knn_s3_upload_options uo = KNN_S3_UPLOAD_OPTIONS_INIT;
    uo.content_type = ctype;
    int rc = knn_s3_upload_new(&u, client, bucket, key, &uo);
    if (rc)
        return rc;
    if (!(rc = knn_s3_upload_write(u, data, len)))
        rc = knn_s3_upload_finish(u, etag_out);
    knn_s3_upload_destroy(u);
    return rc;
}

static int s_read_full(int fd, uint8_t *dst, size_t want, size_t *got, const char *path)
{
    *got = 0;
    while (*got < want) {
        ssize_t n = read(fd, dst + *got, want - *got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return knn_error_set(KNN_EIO, "%s: read failed: %s", path, strerror(errno));
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

int knn_s3_put_file(
    char **etag_out, struct knn_s3_client *client, const char *bucket, const char *key, const char *path,
    const struct knn_s3_put_options *opts)
{
    struct knn_s3_upload *u = NULL;
    struct knn_s3_upload_options uo = KNN_S3_UPLOAD_OPTIONS_INIT;
    int rc = 0;
    int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "standard input" : path;
    if (etag_out)
        *etag_out = NULL;
    int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = knn_error_set(KNN_EINVAL, "%s is a directory (use --recursive)", path);
        goto done;
    }
    uo.content_type = opts ? opts->content_type : NULL;
    if ((rc = knn_s3_upload_new(&u, client, bucket, key, &uo)))
        goto done;
    /* Read straight into the upload's part buffers. */
    for (;;) {
        uint8_t *dst;
        size_t room, got;
        if ((rc = s_space(u, &dst, &room)))
            goto done;
        if ((rc = s_read_full(fd, dst, room, &got, name))) {
            s_fail(u, rc);
            goto done;
        }
        u->slots[u->cur].len += got;
        u->written += got;
        if (got < room)
            break; /* end of file */
    }
    rc = knn_s3_upload_finish(u, etag_out);
done:
    knn_s3_upload_destroy(u);
    if (!is_stdin)
        close(fd);
    return rc;
}
