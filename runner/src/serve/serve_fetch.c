#include "serve/serve_fetch.h"

#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/client.h"
#include "knn/s3/uri.h"
#include "s3_settings.h"

#include <stdio.h>
#include <string.h>

/* The first key ending in "model.tar.gz" under a prefix: a hint for a --model given a prefix. */
static int s_find_model(void *user, const struct knn_s3_list_entry *entry)
{
    char *found = user;
    if (!entry->info)
        return 0;
    size_t len = strlen(entry->info->key), want = strlen("model.tar.gz");
    if (len < want || strcmp(entry->info->key + len - want, "model.tar.gz") != 0)
        return 0;
    snprintf(found, 1024, "%s", entry->info->key);
    return 1; /* stop the listing */
}

/* The object is missing: if `key` is a prefix holding a model.tar.gz, say which one to give. */
static int s_missing_hint(int rc, struct knn_s3_client *client, const struct knn_s3_uri *uri, const char *s3_uri)
{
    char first[1024] = "", message[1024], prefix[1024];
    size_t len = strlen(uri->key);
    if (len >= 7 && strcmp(uri->key + len - 7, ".tar.gz") == 0)
        return rc;
    snprintf(message, sizeof(message), "%s", knn_error_message());
    snprintf(prefix, sizeof(prefix), "%s%s", uri->key, len && uri->key[len - 1] != '/' ? "/" : "");
    knn_s3_list_each(client, uri->bucket, prefix, NULL, s_find_model, first);
    if (first[0])
        return knn_error_set(rc, "%s: no such object; --model wants the model.tar.gz itself, e.g. s3://%s/%s",
                             s3_uri, uri->bucket, first);
    return knn_error_set(rc, "%s (--model wants the model.tar.gz object itself: <S3OutputPath>/<job>/output/model.tar.gz)",
                         message);
}

int knn_serve_fetch(const char *path, const char *s3_uri)
{
    struct knn_s3_uri uri = {NULL, NULL, NULL};
    struct knn_s3_client *client = NULL;
    struct knn_s3_client_options co = KNN_S3_CLIENT_OPTIONS_INIT;
    int rc = knn_s3_uri_parse(&uri, s3_uri);
    if (rc == 0) {
        knn_s3_settings_apply(&co, uri.region);
        rc = knn_s3_client_new(&client, &co);
    }
    if (rc == 0) {
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "downloading %s from %s", s3_uri, knn_s3_client_endpoint(client));
        rc = knn_s3_get_file(client, uri.bucket, uri.key, path);
        if (rc == KNN_ES3_NO_SUCH_KEY || rc == KNN_ENOTFOUND)
            rc = s_missing_hint(rc, client, &uri, s3_uri);
    }
    knn_s3_client_destroy(client);
    knn_s3_uri_clean_up(&uri);
    return rc;
}
