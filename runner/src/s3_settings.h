#ifndef KNN_RUNNER_S3_SETTINGS_H
#define KNN_RUNNER_S3_SETTINGS_H

/**
 * The S3 settings a command takes on its command line (--endpoint-url, --region, --profile) for
 * every S3 client it makes later, in serve's model download and transform's stores. Set once,
 * before any thread starts (the command's option parsing); the strings must outlive the command
 * (argv's do). NULL leaves a setting to the S3 client's own resolution (environment, ~/.aws/config).
 */

struct knn_s3_client_options;

void knn_s3_settings_set(const char *endpoint_url, const char *region, const char *profile);

/**
 * Fill `co` from the settings; `uri_region` (the region an https:// S3 URL names, or NULL) is used
 * when --region is not given (as `knn-runner s3` does).
 */
void knn_s3_settings_apply(struct knn_s3_client_options *co, const char *uri_region);

#endif
