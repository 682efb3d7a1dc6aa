#ifndef KNN_RUNNER_SERVE_FETCH_H
#define KNN_RUNNER_SERVE_FETCH_H

/**
 * Download an s3:// object (a model.tar.gz) to a local file, with the S3 client's default
 * configuration (endpoint, region and credentials from the environment, as the AWS CLI does).
 * The file appears only when complete.
 */
int knn_serve_fetch(const char *path, const char *s3_uri);

#endif
