#ifndef KNN_S3_TEST_ENV_H
#define KNN_S3_TEST_ENV_H

/**
 * The local S3 server for tests (library knn_s3_test_env; see tests/s3/README.md).
 *
 * A test that needs S3 declares FIXTURES_REQUIRED s3_server in CMake, then:
 *
 *     struct knn_s3_test_env env;
 *     int rc = knn_s3_test_env_load(&env);        // KNN_TEST_SKIP if there is no server
 *     if (rc) return rc;
 *     char prefix[256];
 *     knn_s3_test_env_prefix(prefix, sizeof prefix, "train.test_x");   // your own keys
 *     struct knn_s3_client *c;
 *     knn_s3_test_env_client(&c, &env, NULL);
 *     ... s3://env.bucket/<prefix>... ...
 *     knn_s3_test_env_clean_prefix(c, &env, prefix);                   // delete what you made
 *
 * The env file is ${KNN_S3_ENV_FILE} if set, else ${KNN_BINARY_DIR}/s3-local/env (written by the
 * s3_server fixture): shell KEY=value lines AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION, KNN_S3_BUCKET.
 */

#include "knn/s3/client.h"

#include <stddef.h>

struct knn_s3_test_env {
    char endpoint[256]; /* http://127.0.0.1:PORT */
    char access_key[128];
    char secret_key[256];
    char region[64];
    char bucket[64];
    char path[512]; /* the env file read */
};

/**
 * Read the env file. Returns 0, or KNN_TEST_SKIP (103) with a message on stderr if there is none
 * (the test was run without the fixture), or 1 for an unreadable or incomplete file.
 */
int knn_s3_test_env_load(struct knn_s3_test_env *env);

/** A key prefix unique to this test run: "tests/<name>/<pid>-<time>/" (ends with '/'). */
void knn_s3_test_env_prefix(char *buf, size_t size, const char *name);

/**
 * A client for the server: static credentials, path-style, `opts` for the rest (may be NULL;
 * its endpoint, region and credentials are overridden).
 */
int knn_s3_test_env_client(
    struct knn_s3_client **out, const struct knn_s3_test_env *env, const struct knn_s3_client_options *opts);

/** setenv() AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION,
 *  AWS_EC2_METADATA_DISABLED, KNN_S3_BUCKET, for child processes (knn-runner, aws). */
void knn_s3_test_env_export(const struct knn_s3_test_env *env);

/** Delete every object under `prefix` and abort its multipart uploads. */
int knn_s3_test_env_clean_prefix(struct knn_s3_client *client, const struct knn_s3_test_env *env, const char *prefix);

#endif
