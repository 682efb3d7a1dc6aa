#include "serve/serve_fetch.h"

#include "knn/common/error.h"
#include "knn/common/log.h"
#include "knn/s3/client.h"
#include "knn/s3/uri.h"

int knn_serve_fetch(const char *path, const char *s3_uri)
{
    struct knn_s3_uri uri = {NULL, NULL, NULL};
    struct knn_s3_client *client = NULL;
    struct knn_s3_client_options co = KNN_S3_CLIENT_OPTIONS_INIT;
    int rc = knn_s3_uri_parse(&uri, s3_uri);
    if (rc == 0) {
        co.region = uri.region;
        rc = knn_s3_client_new(&client, &co);
    }
    if (rc == 0) {
        KNN_LOG(KNN_LOG_INFO, KNN_LS_JOB, "downloading %s from %s", s3_uri, knn_s3_client_endpoint(client));
        rc = knn_s3_get_file(client, uri.bucket, uri.key, path);
    }
    knn_s3_client_destroy(client);
    knn_s3_uri_clean_up(&uri);
    return rc;
}
