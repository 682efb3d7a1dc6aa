/* The local S3 server of the tests: its env file, a client for it, per-test prefixes. */
#include "s3_test_env.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/s3/credentials.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int knn_s3_test_env_load(struct knn_s3_test_env *env)
{
    memset(env, 0, sizeof(*env));
    const char *file = getenv("KNN_S3_ENV_FILE");
    const char *bin = getenv("KNN_BINARY_DIR");
    if (file && *file)
        snprintf(env->path, sizeof(env->path), "%s", file);
    else if (bin && *bin)
        snprintf(env->path, sizeof(env->path), "%s/s3-local/env", bin);
    else {
        fprintf(stderr, "SKIP: no KNN_S3_ENV_FILE or KNN_BINARY_DIR: no local S3 server\n");
        return 103;
    }
    FILE *f = fopen(env->path, "r");
    if (!f) {
        fprintf(stderr, "SKIP: %s: no local S3 server (the s3_server fixture did not run)\n", env->path);
        return 103;
    }
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#')
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(line, "AWS_ENDPOINT_URL") == 0)
            snprintf(env->endpoint, sizeof(env->endpoint), "%s", v);
        else if (strcmp(line, "AWS_ACCESS_KEY_ID") == 0)
            snprintf(env->access_key, sizeof(env->access_key), "%s", v);
        else if (strcmp(line, "AWS_SECRET_ACCESS_KEY") == 0)
            snprintf(env->secret_key, sizeof(env->secret_key), "%s", v);
        else if (strcmp(line, "AWS_REGION") == 0)
            snprintf(env->region, sizeof(env->region), "%s", v);
        else if (strcmp(line, "KNN_S3_BUCKET") == 0)
            snprintf(env->bucket, sizeof(env->bucket), "%s", v);
    }
    fclose(f);
    if (!env->endpoint[0] || !env->access_key[0] || !env->secret_key[0] || !env->bucket[0]) {
        fprintf(
            stderr,
            "%s: incomplete (needs AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
            "KNN_S3_BUCKET)\n",
            env->path);
        return 1;
    }
    if (!env->region[0])
        snprintf(env->region, sizeof(env->region), "us-east-1");
    return 0;
}

void knn_s3_test_env_prefix(char *buf, size_t size, const char *name)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "tests/%s/%ld-%ld%03ld/", name, (long)getpid(), (long)ts.tv_sec, ts.tv_nsec / 1000000);
}

int knn_s3_test_env_client(
    struct knn_s3_client **out, const struct knn_s3_test_env *env, const struct knn_s3_client_options *opts)
{
    struct knn_s3_client_options o = KNN_S3_CLIENT_OPTIONS_INIT;
    struct knn_s3_credentials_provider *creds;
    if (opts)
        o = *opts;
    int rc = knn_s3_credentials_provider_new_static(&creds, env->access_key, env->secret_key, NULL);
    if (rc)
        return rc;
    if (!o.endpoint_url)
        o.endpoint_url = env->endpoint;
    o.region = env->region;
    o.credentials = creds;
    if (o.addressing == KNN_S3_ADDRESSING_AUTO)
        o.addressing = KNN_S3_ADDRESSING_PATH;
    rc = knn_s3_client_new(out, &o);
    knn_s3_credentials_provider_release(creds);
    return rc;
}

void knn_s3_test_env_export(const struct knn_s3_test_env *env)
{
    setenv("AWS_ENDPOINT_URL", env->endpoint, 1);
    setenv("AWS_ACCESS_KEY_ID", env->access_key, 1);
    setenv("AWS_SECRET_ACCESS_KEY", env->secret_key, 1);
    setenv("AWS_REGION", env->region, 1);
    setenv("AWS_DEFAULT_REGION", env->region, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("KNN_S3_BUCKET", env->bucket, 1);
}

struct s_clean {
    struct knn_s3_client *client;
    const char *bucket;
    int rc;
};

static int s_delete_cb(void *user, const struct knn_s3_list_entry *e)
{
    struct s_clean *c = user;
    if (e->info && knn_s3_delete(c->client, c->bucket, e->info->key) != 0)
        c->rc = -1;
    return 0;
}

static int s_abort_cb(void *user, const struct knn_s3_upload_entry *e)
{
    struct s_clean *c = user;
    if (knn_s3_abort_upload(c->client, c->bucket, e->key, e->upload_id) != 0)
        c->rc = -1;
    return 0;
}

int knn_s3_test_env_clean_prefix(struct knn_s3_client *client, const struct knn_s3_test_env *env, const char *prefix)
{
    struct s_clean c = {client, env->bucket, 0};
    int rc = knn_s3_list_each(client, env->bucket, prefix, NULL, s_delete_cb, &c);
    if (!rc)
        rc = knn_s3_list_uploads(client, env->bucket, prefix, s_abort_cb, &c);
    return rc ? rc : c.rc;
}
