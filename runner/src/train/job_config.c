/* Pieces shared by the manifest and the container contract: content types, JSON files, data manifests. */
#include "train/job_config.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"
#include "knn/s3/uri.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void knn_job_config_init(struct knn_job_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->instance_count = 1;
    cfg->channels[KNN_CHANNEL_TRAIN].name = "train";
    cfg->channels[KNN_CHANNEL_TEST].name = "test";
    cfg->ext.recall_queries = -1;
}

void knn_job_config_clean_up(struct knn_job_config *cfg)
{
    knn_free(cfg->name);
    json_decref(cfg->hyperparameters);
    for (int i = 0; i < KNN_CHANNEL_COUNT; i++) {
        knn_free(cfg->channels[i].uri);
        knn_free(cfg->channels[i].content_type);
    }
    knn_free(cfg->output_path);
    knn_free(cfg->endpoint_url);
    knn_free(cfg->base_dir);
    knn_free(cfg->current_host);
    knn_job_free_strings(cfg->hosts, cfg->host_count);
    knn_job_config_init(cfg);
}

const char *knn_job_container_base_dir(void)
{
    const char *env = getenv("SAGEMAKER_BASE_DIR");
    return env && *env ? env : "/opt/ml";
}

int knn_job_name_is_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 63 || !isalnum((unsigned char)name[0]) || !isalnum((unsigned char)name[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)name[i]) && name[i] != '-')
            return 0;
    }
    return 1;
}

/* Trim spaces (and tabs) from both ends of [*s, *e). */
static void s_trim(const char **s, const char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

static int s_span_equals(const char *s, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - s) == n && strncasecmp(s, word, n) == 0;
}

int knn_content_type_parse(struct knn_content_type *out, const char *text)
{
    out->kind = KNN_CONTENT_RECORDIO_PROTOBUF;
    out->label_size = -1;
    if (!text)
        return 0;
    const char *s = text, *end = text + strlen(text);
    const char *semi = memchr(s, ';', (size_t)(end - s));
    const char *e = semi ? semi : end;
    s_trim(&s, &e);
    if (s == e) {
        if (!semi)
            return 0; /* blank: the default */
        return knn_error_set(KNN_ECONFIG, "ContentType '%s': no media type before ';'", text);
    }
    if (s_span_equals(s, e, "application/x-recordio-protobuf"))
        out->kind = KNN_CONTENT_RECORDIO_PROTOBUF;
    else if (s_span_equals(s, e, "text/csv"))
        out->kind = KNN_CONTENT_CSV;
    else
        return knn_error_set(KNN_ECONFIG,
                             "ContentType '%s' is not supported (expected application/x-recordio-protobuf or "
                             "text/csv;label_size=1)",
                             text);

    while (semi) {
        s = semi + 1;
        semi = memchr(s, ';', (size_t)(end - s));
        e = semi ? semi : end;
        s_trim(&s, &e);
        if (s == e)
            continue; /* "text/csv;" */
        const char *eq = memchr(s, '=', (size_t)(e - s));
        if (!eq)
            return knn_error_set(KNN_ECONFIG, "ContentType '%s': parameter '%.*s' has no '='", text, (int)(e - s),
                                 s);
        const char *ns = s, *ne = eq, *vs = eq + 1, *ve = e;
        s_trim(&ns, &ne);
        s_trim(&vs, &ve);
        if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
            vs++;
            ve--;
        }
        if (!s_span_equals(ns, ne, "label_size"))
            continue; /* charset and others do not change how we read numbers */
        long v = 0;
        if (vs == ve || ve - vs > 6)
            goto bad_label_size;
        for (const char *p = vs; p < ve; p++) {
            if (*p < '0' || *p > '9')
                goto bad_label_size;
            v = v * 10 + (*p - '0');
        }
        out->label_size = (int)v;
    }
    return 0;

bad_label_size:
    return knn_error_set(KNN_ECONFIG, "ContentType '%s': label_size must be a non-negative integer", text);
}

int knn_job_read_json_file(json_t **out, const char *path, size_t max_bytes)
{
    struct knn_buf buf = KNN_BUF_INIT(max_bytes);
    json_error_t jerr;
    int rc = 0, fd = -1;
    char chunk[65536];

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = knn_error_set(KNN_EIO, "%s: read failed: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        if ((rc = knn_buf_append(&buf, chunk, (size_t)n)) < 0) {
            if (rc == KNN_ETOOBIG)
                knn_error_set(rc, "%s: larger than %zu bytes", path, max_bytes);
            goto done;
        }
    }
    *out = json_loadb(buf.data ? (const char *)buf.data : "", buf.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out)
        rc = knn_error_set(KNN_ECONFIG, "%s: invalid JSON at line %d, column %d: %s", path, jerr.line, jerr.column,
                           jerr.text);
done:
    if (fd >= 0)
        close(fd);
    knn_buf_clean_up(&buf);
    return rc;
}

void knn_job_free_strings(char **strings, size_t count)
{
    if (!strings)
        return;
    for (size_t i = 0; i < count; i++)
        knn_free(strings[i]);
    knn_free(strings);
}

int knn_job_parse_data_manifest(char ***uris, size_t *count, const char *text, size_t len, const char *source)
{
    json_error_t jerr;
    json_t *root = NULL;
    char **out = NULL;
    size_t n = 0;
    int rc = 0;

    *uris = NULL;
    *count = 0;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rc = knn_error_set(KNN_ECONFIG, "manifest %s: invalid JSON at line %d, column %d: %s", source, jerr.line,
                           jerr.column, jerr.text);
        goto on_error;
    }
    if (!json_is_array(root) || json_array_size(root) < 1) {
        rc = knn_error_set(KNN_ECONFIG, "manifest %s: expected a JSON array [{\"prefix\": \"s3://...\"}, \"key\", ...]",
                           source);
        goto on_error;
    }
    const json_t *head = json_array_get(root, 0);
    const json_t *prefix = json_object_get(head, "prefix");
    if (!json_is_object(head) || !json_is_string(prefix) || json_object_size(head) != 1) {
        rc = knn_error_set(KNN_ECONFIG, "manifest %s: element 0 must be {\"prefix\": \"<uri>\"}", source);
        goto on_error;
    }
    const char *p = json_string_value(prefix);
    if (!knn_s3_uri_is_s3(p) && strncmp(p, "file://", 7) != 0) {
        rc = knn_error_set(KNN_ECONFIG, "manifest %s: prefix '%s' is not an s3://, https:// S3 or file:// URI", source, p);
        goto on_error;
    }
    size_t total = json_array_size(root) - 1;
    if (total == 0) {
        rc = knn_error_set(KNN_ECONFIG, "manifest %s: lists no objects", source);
        goto on_error;
    }
    if (!(out = knn_calloc(total, sizeof(*out)))) {
        rc = KNN_ENOMEM;
        goto on_error;
    }
    size_t plen = strlen(p);
    for (n = 0; n < total; n++) {
        const json_t *key = json_array_get(root, n + 1);
        if (!json_is_string(key) || json_string_length(key) == 0) {
            rc = knn_error_set(KNN_ECONFIG, "manifest %s: element %zu must be a non-empty key string", source, n + 1);
            goto on_error;
        }
        size_t klen = json_string_length(key), total_len;
        if (strlen(json_string_value(key)) != klen) {
            rc = knn_error_set(KNN_ECONFIG, "manifest %s: element %zu contains a NUL character", source, n + 1);
            goto on_error;
        }
        if (knn_add_size(&total_len, plen, klen) < 0 || knn_add_size(&total_len, total_len, 1) < 0 ||
            !(out[n] = knn_malloc(total_len))) {
            rc = KNN_ENOMEM;
            goto on_error;
        }
        memcpy(out[n], p, plen);
        memcpy(out[n] + plen, json_string_value(key), klen + 1);
    }
    json_decref(root);
    *uris = out;
    *count = total;
    return 0;

on_error:
    json_decref(root);
    knn_job_free_strings(out, n);
    return rc;
}
